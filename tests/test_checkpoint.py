"""Checkpoints during training, and resuming from them exactly."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minidl_core import (
    LambdaCallback,
    Model,
    ModelCheckpoint,
    ModelFileError,
    Sequential,
    load_model,
    save_model,
)
from minidl_core._cli import main
from minidl_core._serialization import describe_model_file
from minidl_core.layers import Dense, Dropout, Relu


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (np.sin(x) @ rng.normal(size=(4, 1))).astype(np.float32)
    return x, y


def _mlp() -> Model:
    layers = [Dense(units=8), Relu(), Dropout(0.3), Dense(units=1)]
    return Sequential(layers, input_shape=4, seed=3)


def _stop_after(model: Model, epochs: int) -> LambdaCallback:
    def stop(epoch: int, logs: dict[str, float]) -> None:
        if epoch + 1 == epochs:
            model.stop_training = True

    return LambdaCallback(on_epoch_end=stop)


def _saved_epoch(path: Path) -> int:
    training = describe_model_file(path)["training"]
    assert training is not None
    return int(training["epoch"])


def _assert_same_params(a: Model, b: Model) -> None:
    assert a.params is not None and b.params is not None
    assert a.params.keys() == b.params.keys()
    for layer in a.params:
        for name in a.params[layer]:
            assert np.array_equal(a.params[layer][name], b.params[layer][name]), (
                f"{layer}/{name} differs"
            )


FIT = {"loss": "mse", "batch_size": 6, "verbose": 0}


# Resuming gives what an uninterrupted run gives.


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": "adam"},
        {"optimizer": "sgd", "optimizer_options": {"momentum": 0.9}},
        {"optimizer": "adam", "validation_split": 0.25, "metrics": ["mae"]},
    ],
    ids=["adam", "sgd-momentum", "adam-validation"],
)
def test_resumed_run_matches_uninterrupted_run(
    options: dict[str, Any], tmp_path: Path
) -> None:
    x, y = _data()
    uninterrupted = _mlp()
    uninterrupted.fit(x, y, epochs=5, seed=11, **FIT, **options)

    first = _mlp()
    pattern = str(tmp_path / "ckpt-{epoch}.minidl")
    callbacks = [ModelCheckpoint(pattern), _stop_after(first, 2)]
    first.fit(x, y, epochs=5, seed=11, callbacks=callbacks, **FIT, **options)
    resumed = _mlp()
    history = resumed.fit(
        x, y, epochs=5, resume_from=tmp_path / "ckpt-2.minidl", **FIT, **options
    )

    assert history.epochs == [2, 3, 4]
    assert resumed.epoch == 5
    assert resumed.fit_seed == 11  # taken from the checkpoint
    _assert_same_params(resumed, uninterrupted)


def test_save_model_after_fit_can_be_resumed(tmp_path: Path) -> None:
    x, y = _data()
    uninterrupted = _mlp()
    uninterrupted.fit(x, y, epochs=4, seed=2, **FIT)
    first = _mlp()
    first.fit(x, y, epochs=3, seed=2, **FIT)
    path = first.save(tmp_path / "after-3.minidl")

    loaded = load_model(path)
    loaded.fit(x, y, epochs=4, resume_from=path, **FIT)

    _assert_same_params(loaded, uninterrupted)


def test_resume_refuses_another_architecture(tmp_path: Path) -> None:
    x, y = _data()
    model = _mlp()
    model.fit(x, y, epochs=1, **FIT)
    path = model.save(tmp_path / "m.minidl")
    other = Sequential([Dense(units=5), Dense(units=1)], input_shape=4)

    with pytest.raises(
        ModelFileError,
        match=r"does not fit model 'model': layer 'dense' parameter 'b' .*"
        r"shape \(8,\), but the architecture needs float32 \(5,\)",
    ):
        other.fit(x, y, epochs=2, resume_from=path, **FIT)


def test_resume_refuses_another_optimizer(tmp_path: Path) -> None:
    x, y = _data()
    model = _mlp()
    model.fit(x, y, epochs=1, optimizer="adam", **FIT)
    path = model.save(tmp_path / "m.minidl")

    with pytest.raises(ModelFileError, match="optimizer state was made by another"):
        _mlp().fit(x, y, epochs=2, optimizer="rmsprop", resume_from=path, **FIT)


def test_resume_without_optimizer_state_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = _data()
    model = _mlp()
    model.fit(x, y, epochs=1, **FIT)
    path = save_model(model, tmp_path / "m.minidl", include_optimizer=False)

    with caplog.at_level(logging.WARNING, logger="minidl"):
        history = _mlp().fit(x, y, epochs=2, resume_from=path, **FIT)

    assert history.epochs == [1]
    assert "holds no optimizer state" in caplog.text


# The callback's options.


def test_every_and_keep_last(tmp_path: Path) -> None:
    x, y = _data()
    checkpoint = ModelCheckpoint(
        tmp_path / "c-{epoch:02d}.minidl", every=2, keep_last=2
    )
    _mlp().fit(x, y, epochs=7, callbacks=[checkpoint], **FIT)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c-04.minidl",
        "c-06.minidl",
    ]
    assert [_saved_epoch(tmp_path / n) for n in ("c-04.minidl", "c-06.minidl")] == [
        4,
        6,
    ]


def test_save_best_only_keeps_the_best_epoch(tmp_path: Path) -> None:
    x, y = _data()
    path = tmp_path / "best.minidl"
    model = _mlp()
    history = model.fit(
        x,
        y,
        epochs=6,
        learning_rate=0.3,
        validation_split=0.25,
        callbacks=[ModelCheckpoint(path, save_best_only=True)],
        **FIT,
    )

    val_loss = history["val_loss"]
    best = int(np.argmin(val_loss))
    training = describe_model_file(path)["training"]
    assert training["epoch"] == best + 1
    assert training["logs"]["val_loss"] == val_loss[best]


def test_resumed_save_best_only_remembers_the_best_so_far(tmp_path: Path) -> None:
    x, y = _data()
    path = tmp_path / "best.minidl"
    first = _mlp()
    callbacks = [ModelCheckpoint(path, save_best_only=True), _stop_after(first, 2)]
    history = first.fit(
        x, y, epochs=6, validation_split=0.25, callbacks=callbacks, **FIT
    )

    checkpoint = ModelCheckpoint(path, save_best_only=True)
    checkpoint.model = load_model(path)
    checkpoint.on_train_begin()

    assert checkpoint.best == min(history["val_loss"])


def test_mode_auto_maximizes_accuracy() -> None:
    assert ModelCheckpoint("m.minidl", monitor="val_accuracy").mode == "max"
    assert ModelCheckpoint("m.minidl", save_best_only=True).monitor == "val_loss"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every": 0}, "every must be a positive int, got 0"),
        ({"keep_last": -1}, "keep_last must be a positive int, got -1"),
        ({"keep_last": 2}, r"keep_last needs '\{epoch\}'"),
        ({"mode": "up"}, "mode must be 'auto', 'min' or 'max', got 'up'"),
    ],
    ids=["every", "keep_last", "keep_last-without-epoch", "mode"],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelCheckpoint("model.minidl", **options)


def test_unknown_monitor_lists_the_logs(tmp_path: Path) -> None:
    x, y = _data()
    checkpoint = ModelCheckpoint(tmp_path / "m.minidl", save_best_only=True)
    with pytest.raises(KeyError, match=r"'val_loss' is not among the logs \['loss'\]"):
        _mlp().fit(x, y, epochs=1, callbacks=[checkpoint], **FIT)


# Killed processes.

TRAIN_SCRIPT = """
    import sys
    import time

    import numpy as np

    from minidl_core import LambdaCallback, ModelCheckpoint, Sequential
    from minidl_core.layers import Dense, Dropout, Relu

    mode, checkpoint, out = sys.argv[1], sys.argv[2], sys.argv[3]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (np.tanh(x) @ rng.normal(size=(4, 1))).astype(np.float32)
    model = Sequential(
        [Dense(units=16), Relu(), Dropout(0.2), Dense(units=1)], input_shape=4
    )
    callbacks = []
    if mode == "interrupted":
        # The pause comes before the save, so a kill in it loses that epoch.
        pause = LambdaCallback(on_epoch_end=lambda epoch, logs: time.sleep(0.4))
        callbacks = [pause, ModelCheckpoint(checkpoint)]
    options = {"loss": "mse", "epochs": 8, "batch_size": 10, "verbose": 0}
    if mode == "resume":
        model.fit(x, y, resume_from=checkpoint, callbacks=callbacks, **options)
    else:
        model.fit(x, y, seed=5, callbacks=callbacks, **options)
    np.savez(out, **{f"{k}/{n}": np.asarray(v) for k, p in model.params.items()
                     for n, v in p.items()})
"""


def _run(script: Path, *args: Path | str) -> None:
    subprocess.run(
        [sys.executable, str(script), *map(str, args)], check=True, timeout=60
    )


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_to_the_same_weights(
    tmp_path: Path,
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN_SCRIPT))
    checkpoint = tmp_path / "ckpt.minidl"

    process = subprocess.Popen(
        [sys.executable, str(script), "interrupted", str(checkpoint), "unused"]
    )
    try:
        deadline = time.monotonic() + 60
        while not (checkpoint.exists() and _saved_epoch(checkpoint) >= 2):
            assert process.poll() is None, "training ended before it was killed"
            assert time.monotonic() < deadline, "no second checkpoint in 60 s"
            time.sleep(0.02)
        time.sleep(0.2)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = _saved_epoch(checkpoint)
    assert 2 <= killed_at < 8

    _run(script, "resume", checkpoint, tmp_path / "resumed.npz")
    _run(script, "full", checkpoint.with_name("none"), tmp_path / "full.npz")

    with (
        np.load(tmp_path / "resumed.npz") as resumed,
        np.load(tmp_path / "full.npz") as full,
    ):
        assert sorted(resumed.files) == sorted(full.files)
        for name in full.files:
            assert np.array_equal(resumed[name], full[name]), name


# The command line.


def test_cli_train_resume_matches_an_uninterrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    data = tmp_path / "table.npz"
    np.savez(data, x=x, y=(x[:, 0] > 0).astype(np.int64))
    common = ["train", "--data", str(data), "--batch-size", "8", "--json"]
    checkpoint, resumed, full = (
        tmp_path / name for name in ("c.minidl", "r.minidl", "f.minidl")
    )

    assert (
        main([*common, "--epochs", "2", "--seed", "4", "--checkpoint", str(checkpoint)])
        == 0
    )
    assert (
        main(
            [
                *common,
                "--epochs",
                "4",
                "--resume",
                str(checkpoint),
                "--output",
                str(resumed),
            ]
        )
        == 0
    )
    assert main([*common, "--epochs", "4", "--seed", "4", "--output", str(full)]) == 0
    outputs = _json_blocks(capsys.readouterr().out)

    assert [o["epochs"] for o in outputs] == [2, 2, 4]
    assert outputs[1]["test"] == outputs[2]["test"]
    _assert_same_params(load_model(resumed), load_model(full))


def _json_blocks(text: str) -> list[dict[str, Any]]:
    """Each JSON object printed one after another in ``text``."""
    decoder, objects, index = json.JSONDecoder(), [], 0
    while text[index:].strip():
        index += len(text[index:]) - len(text[index:].lstrip())
        value, index = decoder.raw_decode(text, index)
        objects.append(value)
    return objects
