"""The ``minidl`` command: a thin layer that parses, calls the library, prints."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["main"]

TRAIN_EXAMPLE = """\
examples:
  minidl train                                  # an MLP on the shipped digits
  minidl train --epochs 30 --optimizer sgd --lr 0.05 --json
  minidl train --data table.csv --target label --model spec.toml
"""

_EXPECTED_ERRORS = (ValueError, TypeError, KeyError, OSError, RuntimeError)


def _out(text: str = "") -> None:
    print(text, flush=True)


# minidl train


def _default_model(num_classes: int | None, seed: int) -> tuple[Any, Any]:
    from minidl_core import Sequential
    from minidl_core.layers import Dense, Relu

    outputs = num_classes if num_classes else 1
    model = Sequential(
        [Dense(units=128), Relu(), Dense(units=128), Relu(), Dense(units=outputs)],
        name="mlp",
        seed=seed,
    )
    if num_classes:
        from minidl_core.losses import SparseCategoricalCrossentropy

        return model, SparseCategoricalCrossentropy(from_logits=True)
    from minidl_core.losses import MSE

    return model, MSE()


def _load_data(args: argparse.Namespace) -> Any:
    from minidl_core import Dataset, get_dataset
    from minidl_core._data import load_table, split_train_test

    if args.data:
        x, y = load_table(args.data, args.target)
        x_train, y_train, x_test, y_test = split_train_test(x, y, seed=args.seed)
        classes = int(y.max()) + 1 if np.issubdtype(y.dtype, np.integer) else None
        if classes is None:
            y_train, y_test = y_train.reshape(-1, 1), y_test.reshape(-1, 1)
        return Dataset(str(args.data), x_train, y_train, x_test, y_test, classes)
    dataset = get_dataset(args.dataset)()
    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"dataset {args.dataset!r}: its loader returned "
            f"{type(dataset).__name__}, expected a minidl_core.Dataset"
        )
    return dataset


def _cmd_train(args: argparse.Namespace) -> int:
    from minidl_core import LambdaCallback
    from minidl_core._spec import model_from_spec

    data = _load_data(args)
    model, loss = _default_model(data.num_classes, args.seed)
    if args.model:
        model, spec_loss = model_from_spec(args.model, seed=args.seed)
        loss = spec_loss or loss
    if args.loss:
        loss = args.loss
    metrics = args.metrics
    if metrics is None:
        metrics = ["accuracy"] if data.num_classes else []
    callbacks = []
    if not args.json:

        def show(epoch: int, logs: dict[str, float]) -> None:
            text = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
            _out(f"epoch {epoch + 1}/{args.epochs}  {text}")

        callbacks.append(LambdaCallback(on_epoch_end=show))
        _out(
            f"training on {data.name}: {len(data.x_train)} train / "
            f"{len(data.x_test)} test examples"
        )
    history = model.fit(
        data.x_train,
        data.y_train,
        loss=loss,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        metrics=metrics,
        callbacks=callbacks,
        verbose=0,
    )
    scores = model.evaluate(data.x_test, data.y_test)
    if args.output:
        from minidl_core._serialization import save_model

        save_model(model, args.output)
    if args.json:
        _out(
            json.dumps(
                {
                    "dataset": data.name,
                    "epochs": len(history.epochs),
                    "train": history.last(),
                    "test": scores,
                    "stopped_early": history.stopped_early,
                    "stop_reason": history.stop_reason,
                    "output": args.output,
                },
                indent=2,
            )
        )
        return 0
    if history.stopped_early:
        _out(f"stopped early: {history.stop_reason}")
    for name, value in scores.items():
        _out(f"test {name}: {value:.4f}")
    if args.output:
        _out(f"saved the model to {args.output}")
    return 0


# minidl plugins / layers / losses


def _cmd_plugins(args: argparse.Namespace) -> int:
    from minidl_core import get_registry
    from minidl_core._plugins import refresh_if_installed

    # Problems are listed below; the warnings would only repeat them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refresh_if_installed()
        registry = get_registry()
    plugins = list(registry.plugins.values())
    if args.json:
        _out(json.dumps([p.as_dict() for p in plugins], indent=2))
        return 0
    if not plugins:
        _out("no minidl plugin is installed")
        return 0
    for info in plugins:
        state = " [blocked]" if info.blocked else ""
        _out(f"{info.name}: {info.distribution} {info.version}{state}")
        if args.verbose:
            _out(f"  module: {info.module}")
            _out(f"  hooks: {', '.join(info.hooks) or 'none'}")
        for kind, names in sorted(info.registered.items()):
            plural = "losses" if kind == "loss" else f"{kind}s"
            _out(f"  {plural}: {', '.join(names)}")
        for problem in info.problems:
            _out(f"  problem: {problem}")
    return 0


def _cmd_list(kind: str, args: argparse.Namespace) -> int:
    from minidl_core import get_registry

    registry = get_registry()
    entries = sorted(registry.entries(kind), key=lambda e: e.name.lower())
    if args.json:
        _out(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "plugin": e.plugin,
                        "distribution": e.distribution,
                        "version": e.version,
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return 0
    if not entries:
        _out(f"no {kind}s: is any minidl plugin installed and enabled?")
    for e in entries:
        _out(f"{e.name:<34} {e.distribution} {e.version}")
    return 0


# The parser.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minidl",
        description="Train and inspect minidl models; list installed plugins.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=TRAIN_EXAMPLE,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model and print its test scores",
        description="Train a model on a dataset or a data file and print its "
        "test scores. With no option, trains an MLP on the shipped "
        "handwritten digits.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=TRAIN_EXAMPLE,
    )
    source = train.add_mutually_exclusive_group()
    source.add_argument("--dataset", default="digits", help="a registered dataset")
    source.add_argument("--data", metavar="FILE", help="a .csv or .npz file")
    train.add_argument("--target", help="the CSV target column (NPZ: 'x_name,y_name')")
    train.add_argument("--model", metavar="SPEC.toml", help="a model spec file")
    train.add_argument("--loss", help="a registered loss name")
    train.add_argument("--optimizer", default="adam", help="a registered optimizer")
    train.add_argument("--lr", type=float, default=None, help="the learning rate")
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--metrics",
        type=lambda s: [m for m in s.split(",") if m],
        default=None,
        help="comma-separated metric names (default: accuracy)",
    )
    train.add_argument("--output", metavar="FILE", help="save the trained model")
    train.add_argument("--json", action="store_true", help="print scores as JSON")
    train.set_defaults(run=_cmd_train)

    plugins = commands.add_parser("plugins", help="list installed plugins")
    plugins.add_argument("--json", action="store_true")
    plugins.add_argument(
        "--verbose", action="store_true", help="show modules and hooks"
    )
    plugins.set_defaults(run=_cmd_plugins)
    for kind in ("layer", "loss", "optimizer", "metric", "dataset"):
        sub = commands.add_parser(
            f"{kind}s" if kind != "loss" else "losses", help=f"list registered {kind}s"
        )
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(run=lambda args, kind=kind: _cmd_list(kind, args))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    if (
        args.command == "train"
        and args.data
        and not args.target
        and (str(args.data).lower().endswith(".csv"))
    ):
        parser.error("train: --data FILE.csv needs --target COLUMN")
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("minidl: interrupted", file=sys.stderr)
        return 130
    except _EXPECTED_ERRORS as error:
        message = (
            str(error.args[0])
            if isinstance(error, KeyError) and error.args
            else str(error)
        )
        print(f"minidl: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
