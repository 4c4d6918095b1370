"""The ``minidl`` command: a thin layer that parses, calls the library, prints."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import os
import sys
import traceback
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
  minidl train --checkpoint ckpt.minidl         # then, after a crash:
  minidl train --resume ckpt.minidl
"""

MODEL_FILE_EXAMPLE = """\
examples:
  minidl train --output digits.minidl
  minidl inspect digits.minidl
  minidl predict digits.minidl --data rows.csv --json
"""

_EXPECTED_ERRORS = (ValueError, TypeError, KeyError, OSError, RuntimeError)


def _plural(kind: str) -> str:
    """``layer`` -> ``layers``, ``loss`` -> ``losses``: command and heading names."""
    return "losses" if kind == "loss" else f"{kind}s"


def _out(text: str = "") -> None:
    print(text, flush=True)


# minidl train


def _check_train_options(args: argparse.Namespace) -> None:
    """Refuse bad options and unknown names before any data is read."""
    from minidl_core import get_entry, get_metric
    from minidl_core._training import _positive_int

    if args.data is not None and not args.data.strip():
        raise ValueError("--data needs a file name, got an empty string")
    if args.data is None and args.target is not None:
        raise ValueError("--target names a column of a --data file; give --data")
    if args.data is None and args.task != "auto":
        raise ValueError(f"--task {args.task} applies to a --data file only")
    _positive_int(args.epochs, "--epochs")
    _positive_int(args.batch_size, "--batch-size")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a positive, finite number, got {args.lr}")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed must be from 0 to 2**32 - 1, got {args.seed}")

    if not args.data:
        get_entry("dataset", args.dataset)
    get_entry("optimizer", args.optimizer)
    if args.loss:
        get_entry("loss", args.loss)
    for name in args.metrics or []:
        get_metric(name)


def _load_data(args: argparse.Namespace) -> tuple[Any, str]:
    """The dataset, and for a data file a line saying which task it trains."""
    from minidl_core import Dataset, get_dataset
    from minidl_core._data import infer_task, load_table, split_train_test

    if args.data:
        x, y = load_table(args.data, args.target)
        y, classes = infer_task(y, args.task)
        x_train, y_train, x_test, y_test = split_train_test(x, y, seed=args.seed)
        data = Dataset(args.data, x_train, y_train, x_test, y_test, classes)
        task, other = "regression", "classify"
        if classes:
            task, other = f"classification with {classes} classes", "regress"
        change = f" (--task {other} to change)" if args.task == "auto" else ""
        return data, f"task: {task}{change}"
    dataset = get_dataset(args.dataset)()
    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"dataset {args.dataset!r}: its loader returned "
            f"{type(dataset).__name__}, expected a minidl_core.Dataset"
        )
    return dataset, ""


def _default_model(data: Any, seed: int) -> tuple[Any, Any]:
    """An MLP for ``data`` and its loss; when classifying it outputs logits."""
    from minidl_core import Sequential
    from minidl_core.layers import Dense, Relu
    from minidl_core.losses import MSE, SparseCategoricalCrossentropy

    y = data.y_train
    outputs = data.num_classes or (y.shape[1] if y.ndim == 2 else 1)
    model = Sequential(
        [Dense(units=128), Relu(), Dense(units=128), Relu(), Dense(units=outputs)],
        name="mlp",
        seed=seed,
    )
    if data.num_classes:
        return model, SparseCategoricalCrossentropy(from_logits=True)
    return model, MSE()


def _loss_for(cls: Any, logits: bool) -> Any:
    """An instance of the loss class ``cls``, reading logits if it can."""
    if logits and "from_logits" in inspect.signature(cls).parameters:
        return cls(from_logits=True)
    return cls()


def _metrics_for(names: list[str], logits: bool) -> list[Any]:
    """The metrics to pass to fit; a loss named as a metric reads logits too."""
    from minidl_core import Loss, get_metric

    metrics: list[Any] = []
    for name in names:
        metric = get_metric(name)
        if not isinstance(metric, Loss):
            metrics.append(name)
            continue
        loss = _loss_for(type(metric), logits)

        # Logs and the saved model keep the name as it was typed.
        def named(y_true: Any, y_pred: Any, loss: Any = loss) -> Any:
            return loss(y_true, y_pred)

        named.__name__ = name
        named.per_sample = loss.per_sample  # type: ignore[attr-defined]
        named.loss = loss  # type: ignore[attr-defined]
        metrics.append(named)
    return metrics


def _cmd_train(args: argparse.Namespace) -> int:
    from minidl_core import LambdaCallback, get_loss
    from minidl_core._spec import model_from_spec

    _check_train_options(args)
    if args.seed is None:
        args.seed = _resume_seed(args.resume)
    data, task = _load_data(args)

    # The model and its loss: a spec, the resumed run's, or an MLP.
    model, loss = _default_model(data, args.seed)
    if args.model:
        model, spec_loss = model_from_spec(args.model, seed=args.seed)
        loss = spec_loss or loss
    elif args.resume:
        from minidl_core._serialization import load_model

        model = load_model(args.resume)
        loss = model.loss or loss
    # The default model ends in a Dense layer, so its outputs are logits.
    if args.loss:
        loss = _loss_for(get_loss(args.loss), logits=not args.model)
    logits = not args.model or getattr(loss, "from_logits", False) is True
    names = args.metrics
    if names is None:
        names = ["accuracy"] if data.num_classes else []
    metrics = _metrics_for(names, logits)

    callbacks: list[Any] = []
    if args.checkpoint:
        from minidl_core import ModelCheckpoint

        callbacks.append(ModelCheckpoint(args.checkpoint))
    if not args.json:

        def show(epoch: int, logs: dict[str, float]) -> None:
            text = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
            _out(f"epoch {epoch + 1}/{args.epochs}  {text}")

        callbacks.append(LambdaCallback(on_epoch_end=show))
        _out(
            f"training on {data.name}: {len(data.x_train)} train / "
            f"{len(data.x_test)} test examples"
        )
        if task:
            _out(task)
        if args.resume:
            _out(f"resuming from {args.resume} (seed {args.seed})")
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
        resume_from=args.resume,
    )
    if history.diverged:
        raise RuntimeError(f"training stopped: {history.stop_reason}")

    scores = model.evaluate(data.x_test, data.y_test)
    if args.output:
        from minidl_core._serialization import save_model

        save_model(model, args.output)
    if args.json:
        report = {
            "dataset": data.name,
            "task": "classification" if data.num_classes else "regression",
            "classes": data.num_classes,
            "epochs": len(history.epochs),
            "train": history.last(),
            "test": scores,
            "stopped_early": history.stopped_early,
            "stop_reason": history.stop_reason,
            "output": args.output,
        }
        _out(json.dumps(report, indent=2))
        return 0
    if history.stopped_early:
        print(f"minidl: stopped early: {history.stop_reason}", file=sys.stderr)
    for name, value in scores.items():
        _out(f"test {name}: {value:.4f}")
    if args.output:
        _out(f"saved the model to {args.output}")
    return 0


def _resume_seed(resume: str | None) -> int:
    """The seed when none is given: the checkpoint's, else 0."""
    if not resume:
        return 0
    from minidl_core._serialization import describe_model_file

    seed = (describe_model_file(resume)["training"] or {}).get("seed")
    return 0 if seed is None else int(seed)


# minidl predict / inspect


def _class_indices(model: Any, outputs: np.ndarray) -> list[int] | None:
    """Class indices when the model's loss says it classifies, else None."""
    from minidl_core._registry import normalize_name

    name = normalize_name(model.loss.name) if model.loss is not None else ""
    if "categorical" in name and outputs.ndim == 2 and outputs.shape[1] > 1:
        return [int(i) for i in np.argmax(outputs, axis=1)]
    if "binary" in name and outputs.shape[1:] == (1,):
        threshold = 0.0 if getattr(model.loss, "from_logits", False) else 0.5
        return [int(v > threshold) for v in outputs[:, 0]]
    return None


def _cmd_predict(args: argparse.Namespace) -> int:
    from minidl_core._data import load_features
    from minidl_core._serialization import load_model

    model = load_model(args.model)
    outputs = model.predict(load_features(args.data, args.target))
    classes = _class_indices(model, outputs)
    if args.json:
        result = {"model": args.model, "predictions": outputs.tolist()}
        _out(json.dumps({**result, "classes": classes}))
        return 0
    for index, row in enumerate(outputs):
        if classes is not None:
            _out(str(classes[index]))
        else:
            _out(" ".join(f"{value:.9g}" for value in np.ravel(row)))
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from minidl_core._serialization import describe_model_file

    info = describe_model_file(args.model)
    if args.json:
        _out(json.dumps(info, indent=2))
        return 0
    _out(
        f"model {info['name']!r} in {args.model} (format {info['format_version']}, "
        f"saved by minidl {info['minidl_version']})"
    )
    _out(f"input shape: {tuple(info['input_shape'])}")
    rows = [("layer", "type", "inputs", "params", "trainable", "from")]
    for layer in info["layers"]:
        origin = "custom (no plugin)"
        if layer["distribution"]:
            origin = f"{layer['distribution']} {layer['version'] or ''}".strip()
        inputs = ", ".join(layer["inputs"]) or "-"
        trainable = "yes" if layer["trainable"] else "no"
        params = f"{layer['params']:,}"
        rows.append((layer["name"], layer["type"], inputs, params, trainable, origin))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        _out("  " + "  ".join(cells).rstrip())
    if info["loss"]:
        _out(f"loss: {info['loss']['type']} {json.dumps(info['loss']['config'])}")
    _out("plugins needed:")
    for plugin in info["plugins"]:
        need = plugin["distribution"]
        if plugin["saved_version"]:
            need += f">={plugin['saved_version']}"
        if plugin["blocked"]:
            state = "installed but blocked by MINIDL_DISABLE_PLUGINS"
        elif not plugin["installed"]:
            state = f'NOT installed: pip install "{need}"'
        else:
            state = f"installed ({plugin['installed_version']})"
            if plugin["older_major"]:
                state += f', an older major version: pip install --upgrade "{need}"'
        _out(f"  {need}: {state}")
    for name in info["custom_layers"]:
        _out(f"  {name}: not from a plugin; load with custom_objects={{{name!r}: ...}}")
    counts = info["params"]
    _out(
        f"parameters: {counts['total']:,} ({counts['trainable']:,} trainable, "
        f"{counts['frozen']:,} frozen)"
    )
    training = info["training"]
    if training:
        saved = "saved" if training["optimizer_state"] else "not saved"
        _out(
            f"training: {training['epoch']} epochs done, seed {training['seed']}, "
            f"optimizer state {saved}"
        )
    return 0


def _add_model_file_commands(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        help="print a saved model's predictions for a data file",
        description="Load a model file and print one prediction per row of "
        "FILE: the class index for a classifier, else the output values.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=MODEL_FILE_EXAMPLE,
    )
    predict.add_argument("model", metavar="MODEL", help="a model file")
    predict.add_argument(
        "--data", metavar="FILE", required=True, help="a .csv or .npz of features"
    )
    predict.add_argument(
        "--target",
        metavar="COL",
        help="a CSV column to leave out (NPZ: the features array, default x)",
    )
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.set_defaults(run=_cmd_predict)

    inspect = commands.add_parser(
        "inspect",
        help="describe a model file and the plugins it needs",
        description="Show a model file's layers, parameter counts and the "
        "plugins it needs, and whether each is installed. Nothing is built.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=MODEL_FILE_EXAMPLE,
    )
    inspect.add_argument("model", metavar="MODEL", help="a model file")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(run=_cmd_inspect)


# minidl plugin new

PLUGIN_EXAMPLE = """\
examples:
  minidl plugin new minidl-acme                 # writes ./minidl-acme
  minidl plugin new minidl-acme --directory ~/src/acme
"""


def _cmd_plugin_new(args: argparse.Namespace) -> int:
    from minidl_core._scaffold import new_plugin, plugin_names

    root = new_plugin(args.name, args.directory)
    module = plugin_names(args.name)["module"]
    _out(f"created the minidl plugin {args.name} in {root}")
    _out(f"  package src/{module}: the layer Scale and the loss LogCosh")
    _out("next:")
    _out(f"  cd {root}")
    _out('  pip install -e ".[test]" && pytest')
    return 0


def _add_plugin_commands(commands: Any) -> None:
    plugin = commands.add_parser(
        "plugin",
        help="tools for plugin authors",
        description="Tools for writing minidl plugins.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=PLUGIN_EXAMPLE,
    )
    actions = plugin.add_subparsers(dest="plugin_command", metavar="ACTION")
    actions.required = True
    new = actions.add_parser(
        "new",
        help="write a ready-to-build plugin project",
        description="Write a plugin distribution: pyproject.toml with the minidl "
        "entry point, a package with an example layer and loss, tests that run "
        "the conformance suite, tox.ini and a README.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=PLUGIN_EXAMPLE,
    )
    new.add_argument("name", metavar="NAME", help="the distribution name")
    new.add_argument(
        "--directory",
        metavar="DIR",
        help="the project folder to create (default: ./NAME); must be new or empty",
    )
    new.set_defaults(run=_cmd_plugin_new)


# minidl plugins / layers / losses


def _hook_order(registry: Any, info: Any) -> str:
    """Where ``info``'s hooks run among all plugins': ``minidl_layers 2/3``.

    pluggy calls the plugin registered last first, and the catalogue is
    collected in that order.
    """
    positions = []
    for hook in info.hooks:
        callers = [p.name for p in registry.plugins.values() if hook in p.hooks]
        callers.reverse()
        positions.append(f"{hook} {callers.index(info.name) + 1}/{len(callers)}")
    return ", ".join(positions)


def _origin(obj: Any) -> str:
    """The import path of a registered object: ``package.module.Name``."""
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}" if module else name


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
            _out(f"  hook order: {_hook_order(registry, info) or 'none'}")
        for kind, names in sorted(info.registered.items()):
            _out(f"  {_plural(kind)}: {', '.join(names)}")
            if args.verbose:
                for entry in registry.entries(kind):
                    if entry.plugin == info.name:
                        _out(f"    {entry.name} <- {_origin(entry.obj)}")
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
        _out(f"no {_plural(kind)}: is any minidl plugin installed and enabled?")
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
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log details; after an error, print its traceback",
    )
    parser.add_argument("--version", action="version", version=_version())
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
    train.add_argument(
        "--task",
        choices=("auto", "classify", "regress"),
        default="auto",
        help="for --data: classify (targets are class labels), regress, or auto "
        "(default): classify when every target is a whole number from 0 to 255",
    )
    train.add_argument("--model", metavar="SPEC.toml", help="a model spec file")
    train.add_argument(
        "--loss",
        help="a registered loss name; with the default model, whose outputs "
        "are logits, a loss that has from_logits gets from_logits=true",
    )
    train.add_argument("--optimizer", default="adam", help="a registered optimizer")
    train.add_argument("--lr", type=float, default=None, help="the learning rate")
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seeds the split, initialization and shuffling (default: 0, or "
        "with --resume the checkpoint's)",
    )
    train.add_argument(
        "--metrics",
        type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
        default=None,
        help="comma-separated metric or loss names (default: accuracy when "
        "classifying)",
    )
    train.add_argument("--output", metavar="FILE", help="save the trained model")
    train.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="save a checkpoint after every epoch; FILE may hold {epoch}",
    )
    train.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue the run that saved CKPT, with the same data and options",
    )
    train.add_argument("--json", action="store_true", help="print scores as JSON")
    train.set_defaults(run=_cmd_train)
    _add_model_file_commands(commands)

    plugins = commands.add_parser("plugins", help="list installed plugins")
    plugins.add_argument("--json", action="store_true")
    # SUPPRESS: left out, it keeps the value of minidl's own -v.
    plugins.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show modules, hooks, hook order and where each name comes from",
    )
    plugins.set_defaults(run=_cmd_plugins)
    _add_plugin_commands(commands)
    for kind in ("layer", "loss", "optimizer", "metric", "dataset"):
        sub = commands.add_parser(
            _plural(kind), help=f"list registered {_plural(kind)}"
        )
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(run=lambda args, kind=kind: _cmd_list(kind, args))
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"minidl {version('minidl')}"
    except PackageNotFoundError:
        return "minidl (version unknown: the distribution is not installed)"


def _show_warning(message: Warning | str, *where: Any, **more: Any) -> None:
    """Show a warning as one line, without the source line that raised it."""
    print(f"minidl: warning: {message}", file=sys.stderr)


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
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args.run(args))
        except KeyboardInterrupt:
            print("minidl: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # The reader went away (`minidl layers | head`): stop quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except _EXPECTED_ERRORS as error:
            # KeyError quotes its message; show it as written.
            keyed = isinstance(error, KeyError) and error.args
            message = str(error.args[0]) if keyed else str(error)
            print(f"minidl: error: {message}", file=sys.stderr)
            if args.verbose:
                traceback.print_exc()
            return 1


if __name__ == "__main__":
    sys.exit(main())
