"""fit, evaluate and predict: results, determinism, compilation, bad input."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from minidl_core import (
    EarlyStopping,
    LambdaCallback,
    Loss,
    Sequential,
    ShapeError,
    UnknownNameError,
)
from minidl_core.layers import Dense, Dropout, InputLayer, Relu


def data(n: int = 40, features: int = 5, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, classes, size=n).astype(np.int32)
    return x, y


def classifier(features: int = 5, classes: int = 3, dropout: float = 0.0):
    layers = [InputLayer(shape=features), Dense(units=16), Relu()]
    if dropout:
        layers.append(Dropout(dropout))
    return Sequential([*layers, Dense(units=classes)])


def scce():
    from minidl_core.losses import SparseCategoricalCrossentropy

    return SparseCategoricalCrossentropy(from_logits=True)


def numpy_scce(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits.astype(np.float64)
    log_probs = z - z.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())


def assert_same_params(actual, expected) -> None:
    """Two parameter trees, equal leaf for leaf, bit for bit."""
    leaves = zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True)
    for a, b in leaves:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@contextlib.contextmanager
def counting_compiles() -> Iterator[list[str]]:
    """A list that gains an entry for every XLA compilation in the block."""
    compiles: list[str] = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiles
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_fit_learns_a_separable_problem() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    model = classifier(features=2, classes=2)
    history = model.fit(
        x, y, loss=scce(), epochs=30, batch_size=16, metrics=["accuracy"], verbose=0
    )
    assert history["loss"][-1] < history["loss"][0] / 3
    predicted = model.predict(x).argmax(1)
    assert history["accuracy"][-1] == pytest.approx((predicted == y).mean(), abs=0.05)
    assert (predicted == y).mean() > 0.95


def test_same_seed_same_weights_and_history_bit_for_bit() -> None:
    x, y = data()
    runs = []
    for _ in range(2):
        model = classifier(dropout=0.3)
        history = model.fit(
            x, y, loss=scce(), epochs=3, batch_size=8, seed=7, verbose=0
        )
        runs.append((jax.tree.map(np.asarray, model.params), history.history))
    (p1, h1), (p2, h2) = runs
    assert h1 == h2
    assert_same_params(p1, p2)


@pytest.fixture(params=["ahead", "in turn"])
def dispatch(request, monkeypatch) -> str:
    """Run a test with every epoch dispatched ahead of the logs, or none."""
    from minidl_core import _training

    limit = float("inf") if request.param == "ahead" else 0.0
    monkeypatch.setattr(_training, "_AHEAD_BELOW_SECONDS", limit)
    return request.param


def test_dispatching_epochs_ahead_changes_no_bit(monkeypatch) -> None:
    from minidl_core import _training

    x, y = data(n=37)
    runs = []
    for limit in (0.0, float("inf")):
        monkeypatch.setattr(_training, "_AHEAD_BELOW_SECONDS", limit)
        model = classifier(dropout=0.3)
        history = model.fit(
            x,
            y,
            loss=scce(),
            epochs=4,
            batch_size=8,
            metrics=["accuracy"],
            validation_data=(x[:9], y[:9]),
            seed=3,
            verbose=0,
        )
        runs.append((jax.tree.map(np.asarray, model.params), history.history))
    (p1, h1), (p2, h2) = runs
    assert h1 == h2
    assert_same_params(p1, p2)


def test_parameters_a_callback_sets_are_trained_on(dispatch) -> None:
    # Plain SGD in a fixed order: an epoch from the same start repeats
    # exactly, so if the callback's reset is honoured, epoch 2 repeats epoch 1.
    x, y = data()
    model = classifier()
    start: dict = {}
    after_first: list = []

    def reset(epoch: int, logs: dict) -> None:
        if epoch == 0:
            after_first.append(jax.tree.map(np.asarray, model.params))
            model.params, model.opt_state = start["params"], start["opt_state"]

    history = model.fit(
        x,
        y,
        loss=scce(),
        optimizer=optax.sgd(0.5),
        epochs=2,
        batch_size=8,
        shuffle=False,
        callbacks=[
            LambdaCallback(
                on_train_begin=lambda logs: start.update(
                    params=model.params, opt_state=model.opt_state
                ),
                on_epoch_end=reset,
            )
        ],
        verbose=0,
    )
    assert history["loss"][1] == history["loss"][0]
    assert_same_params(model.params, after_first[0])


def test_stopping_keeps_the_last_epoch_run_and_nothing_after(dispatch) -> None:
    x, y = data()
    model = classifier()
    seen: list = []

    def stop(epoch: int, logs: dict) -> None:
        seen.append(jax.tree.map(np.asarray, model.params))
        if epoch == 1:
            model.stop_training = True

    history = model.fit(
        x,
        y,
        loss=scce(),
        epochs=6,
        batch_size=8,
        callbacks=[LambdaCallback(on_epoch_end=stop)],
        verbose=0,
    )
    assert history.epochs == [0, 1]
    assert model.epoch == 2
    assert_same_params(model.params, seen[-1])
    expected = numpy_scce(np.asarray(model.predict(x)), y)
    assert model.evaluate(x, y)["loss"] == pytest.approx(expected, rel=1e-5)


def test_fitting_again_continues_where_the_last_fit_stopped() -> None:
    x, y = data(n=37)
    options = dict(loss=scce(), batch_size=8, seed=5, verbose=0)
    once = classifier(dropout=0.3)
    whole = once.fit(x, y, epochs=3, **options)
    again = classifier(dropout=0.3)
    parts = [again.fit(x, y, epochs=1, **options) for _ in range(3)]
    assert [h["loss"][0] for h in parts] == whole["loss"]
    assert_same_params(once.params, again.params)
    assert again.epoch == once.epoch == 3
    # Another optimizer starts from a fresh state.
    again.fit(x, y, epochs=1, optimizer="adamw", **options)
    count = int(jax.tree.leaves(again.opt_state)[0])
    assert count == -(-len(x) // 8)


def test_a_fit_refused_for_bad_options_leaves_the_model_as_it_was() -> None:
    x, y = data()
    model = classifier()
    model.fit(x, y, loss=scce(), epochs=2, metrics=["accuracy"], verbose=0)
    before = (model.epoch, model.history, model.metrics, model.opt_state)
    params = jax.tree.map(np.asarray, model.params)
    for bad in (dict(callbacks=[print]), dict(shuffle="no"), dict(verbose=None)):
        with pytest.raises((TypeError, ValueError)):
            model.fit(x, y, loss=scce(), **bad)
    assert (model.epoch, model.history, model.metrics, model.opt_state) == before
    assert_same_params(model.params, params)


def test_parameters_set_when_training_begins_are_trained_on() -> None:
    x, y = data()
    model = classifier()

    def zero(logs) -> None:
        model.params = jax.tree.map(jnp.zeros_like, model.params)

    history = model.fit(
        x,
        y,
        loss=scce(),
        optimizer=optax.set_to_zero(),
        callbacks=[LambdaCallback(on_train_begin=zero)],
        verbose=0,
    )
    # Zero weights give every class the same logit: the loss is log(3).
    assert history["loss"][0] == pytest.approx(np.log(3), rel=1e-6)


def test_epoch_loss_is_the_mean_over_every_row_with_a_short_last_batch() -> None:
    # 10 rows at batch 4 is batches of 4, 4 and 2; a frozen optimizer keeps
    # the parameters fixed so the epoch loss must equal the full-data mean.
    x, y = data(n=10)
    model = classifier()
    history = model.fit(
        x, y, loss=scce(), optimizer=optax.set_to_zero(), batch_size=4, verbose=0
    )
    expected = numpy_scce(np.asarray(model.predict(x)), y)
    assert history["loss"][0] == pytest.approx(expected, rel=1e-5)
    assert model.evaluate(x, y)["loss"] == pytest.approx(expected, rel=1e-5)


def test_epochs_do_not_recompile() -> None:
    after_epoch: list[int] = []
    # 37 rows at batch 8: four full batches and a short one of 5 every epoch.
    x, y = data(n=37)
    with counting_compiles() as compiles:
        count = LambdaCallback(
            on_epoch_end=lambda e, logs: after_epoch.append(len(compiles))
        )
        classifier(dropout=0.2).fit(
            x,
            y,
            loss=scce(),
            epochs=5,
            batch_size=8,
            metrics=["accuracy"],
            validation_data=(x[:9], y[:9]),
            callbacks=[count],
            verbose=0,
        )
    assert after_epoch[0] >= 1
    assert after_epoch == [after_epoch[0]] * 5


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_per_epoch_fed_from_the_compiled_steps(
    monkeypatch,
) -> None:
    from minidl_core import _training

    advances: list[int] = []
    original = _training._Bars.advance

    def counted(self) -> None:
        advances.append(self.bar.n)
        original(self)

    monkeypatch.setattr(_training._Bars, "advance", counted)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    # 98 rows at batch 4: 25 steps, the last one short; with at most
    # twenty reports an epoch, the steps report every second step.
    x, y = data(n=98)
    history = classifier().fit(
        x, y, loss=scce(), epochs=3, batch_size=4, metrics=["accuracy"], verbose=1
    )
    monkeypatch.undo()
    assert len(advances) == 3 * (25 // 2)
    assert advances[:12] == list(range(0, 24, 2))
    lines = [line.split("\r")[-1] for line in terminal.getvalue().split("\n")[:-1]]
    assert len(lines) == 3
    for epoch, line in enumerate(lines):
        assert line.startswith(f"epoch {epoch + 1}/3 25/25 ")
        assert f"loss={history['loss'][epoch]:.4f}" in line
        assert f"accuracy={history['accuracy'][epoch]:.4f}" in line

    quiet = classifier().fit(
        x, y, loss=scce(), epochs=3, batch_size=4, metrics=["accuracy"], verbose=0
    )
    assert quiet.history == history.history


@pytest.mark.parametrize("verbose", [0, 1, "auto"])
def test_no_output_when_silent_or_not_a_terminal(verbose, capsys) -> None:
    x, y = data()
    classifier().fit(x, y, loss=scce(), epochs=2, verbose=verbose)
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_verbose_2_writes_a_line_per_epoch(capsys) -> None:
    x, y = data()
    history = classifier().fit(x, y, loss=scce(), epochs=2, verbose=2)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"epoch {e + 1}/2 loss={history['loss'][e]:.4f}" for e in range(2)
    ]


def test_verbose_2_says_why_training_stopped(capsys) -> None:
    x, y = data()
    stop = LambdaCallback(
        on_epoch_end=lambda e, logs: setattr(model, "stop_training", True)
    )
    model = classifier()
    model.stop_reason = ""
    model.fit(x, y, loss=scce(), epochs=3, callbacks=[stop], verbose=2)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("stopped after epoch 1")

    rng = np.random.default_rng(0)
    big = rng.normal(size=(64, 3)).astype(np.float32) * 1e3
    target = big[:, :1] * 1e6
    diverging = Sequential([InputLayer(shape=3), Dense(units=1)])
    history = diverging.fit(
        big,
        target,
        loss="mse",
        optimizer="sgd",
        learning_rate=10.0,
        epochs=50,
        batch_size=64,
        verbose=2,
    )
    assert history.diverged
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == f"stopped: {history.stop_reason}"
    assert f"in epoch {len(history.epochs) + 1}" in last


def test_validation_data_errors_name_validation_data() -> None:
    x, y = data()
    with pytest.raises(
        ShapeError,
        match=r"validation_data y: has 10 rows but "
        r"validation_data x has 12",
    ):
        classifier().fit(x, y, loss=scce(), validation_data=(x[:12], y[:10]))
    with pytest.raises(ValueError, match=r"^validation_data y does not fit"):
        classifier().fit(x, y, loss=scce(), validation_data=(x[:5], y[:5] + 7))
    with pytest.raises(
        ShapeError,
        match=r"y: expected one target per example "
        r"\(40 rows\), got a single value 3",
    ):
        classifier().fit(x, 3, loss=scce())


def test_shuffle_must_be_a_bool() -> None:
    x, y = data()
    with pytest.raises(TypeError, match=r"shuffle must be True or False, got 'no'"):
        classifier().fit(x, y, loss=scce(), shuffle="no")


@pytest.mark.parametrize("verbose", [3, -1, "yes", None, 1.5])
def test_verbose_outside_its_levels_is_refused(verbose) -> None:
    x, y = data()
    with pytest.raises(ValueError, match=r"verbose must be 0, 1, 2 or 'auto'"):
        classifier().fit(x, y, loss=scce(), verbose=verbose)


def test_evaluating_the_same_functions_again_compiles_nothing() -> None:
    x, y = data(n=37)
    model = classifier()
    model.fit(x, y, loss=scce(), metrics=["accuracy"], verbose=0)
    expected = numpy_scce(np.asarray(model.predict(x)), y)
    with counting_compiles() as compiles:
        first = model.evaluate(x, y, batch_size=8)
        compiled_once = len(compiles)
        again = model.evaluate(x, y, batch_size=8)
        assert len(compiles) == compiled_once >= 1
        model.evaluate(x[:20], y[:20], batch_size=8)
        assert len(compiles) > compiled_once
    assert again == first
    assert first["loss"] == pytest.approx(expected, rel=1e-5)


def test_dropout_draws_a_new_mask_every_step_and_none_in_inference() -> None:
    x, y = data()
    model = Sequential([InputLayer(shape=5), Dropout(0.5), Dense(units=3)])
    history = model.fit(
        x,
        y,
        loss=scce(),
        optimizer=optax.set_to_zero(),
        epochs=3,
        batch_size=40,
        verbose=0,
    )
    losses = history["loss"]
    assert len(set(losses)) == 3  # fixed weights, different masks
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
    p = model.params["dense"]
    expected = x @ np.asarray(p["w"]) + np.asarray(p["b"])
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_validation_split_and_early_stopping_restore_best_weights() -> None:
    x, y = data(n=60)
    model = classifier()
    stopper = EarlyStopping(monitor="val_loss", patience=0, restore_best_weights=True)
    seen: list[dict] = []
    history = model.fit(
        x,
        y,
        loss=scce(),
        learning_rate=0.2,
        epochs=50,
        batch_size=8,
        validation_split=0.25,
        callbacks=[
            stopper,
            LambdaCallback(
                on_epoch_end=lambda epoch, logs: seen.append(
                    (logs["val_loss"], jax.tree.map(np.copy, model.params))
                )
            ),
        ],
        verbose=0,
    )
    assert history.stopped_early
    assert len(history.epochs) < 50
    best_loss, best_params = min(seen, key=lambda item: item[0])
    assert_same_params(model.params, best_params)
    x_val, y_val = x[-15:], y[-15:]
    assert model.evaluate(x_val, y_val)["loss"] == pytest.approx(best_loss, rel=1e-5)


def test_nan_mid_training_stops_and_keeps_the_last_good_weights() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 3)).astype(np.float32) * 100
    y = rng.normal(size=(32, 1)).astype(np.float32) * 1e4
    model = Sequential([InputLayer(shape=3), Dense(units=1)])
    snapshots: list = []
    history = model.fit(
        x,
        y,
        loss="mse",
        optimizer="sgd",
        learning_rate=1.0,
        epochs=20,
        batch_size=32,
        verbose=0,
        callbacks=[
            LambdaCallback(
                on_epoch_end=lambda e, logs: snapshots.append(
                    jax.tree.map(np.copy, model.params)
                )
            )
        ],
    )
    assert history.stopped_early
    assert "NaN or inf in epoch" in history.stop_reason

    def loss64(params) -> float:
        leaves = [np.float64(v) for v in jax.tree.leaves(params)]
        (w,) = (v for v in leaves if v.ndim == 2)
        (b,) = (v for v in leaves if v.ndim == 1)
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.mean((x @ w + b - y) ** 2))

    # Kept: the last epoch's end whose loss fits in float32, which the
    # diverged epoch's first step measured.
    limit = float(np.finfo(np.float32).max)
    finite = [s for s in snapshots if loss64(s) < limit]
    assert finite, "the run diverged before any parameters were measured"
    assert_same_params(model.params, finite[-1])
    assert np.isfinite(model.evaluate(x, y)["loss"])


def test_a_nan_stop_never_keeps_parameters_whose_loss_is_already_nan() -> None:
    # One batch a epoch: each epoch's loss is that of the parameters it
    # started from, so the epoch before the NaN one ended on parameters whose
    # loss was never measured until the NaN epoch's first step.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 10)).astype(np.float32)
    y = x[:, :1] * 100
    model = Sequential([InputLayer(shape=10), Dense(units=16), Relu(), Dense(units=1)])
    history = model.fit(
        x,
        y,
        loss="mse",
        optimizer="sgd",
        learning_rate=2.0,
        epochs=20,
        batch_size=1000,
        verbose=0,
    )
    assert history.diverged
    kept = model.evaluate(x, y)["loss"]
    assert np.isfinite(kept)
    assert np.all(np.isfinite(model.predict(x)))
    # The kept parameters are the start of the last epoch recorded, whose
    # loss that epoch measured; the model's epoch count says so too.
    assert kept == pytest.approx(history["loss"][-1], rel=1e-4)
    assert model.epoch == len(history.epochs) - 1
    assert f"end of epoch {model.epoch}" in history.stop_reason or (
        model.epoch == 0 and "initial parameters" in history.stop_reason
    )


def test_schedules_and_optax_transformations_are_accepted() -> None:
    x, y = data()
    schedule = optax.exponential_decay(0.1, transition_steps=5, decay_rate=0.5)
    for optimizer, lr in (("sgd", schedule), (optax.adamw(1e-2), None)):
        history = classifier().fit(
            x,
            y,
            loss=scce(),
            optimizer=optimizer,
            learning_rate=lr,
            epochs=2,
            verbose=0,
        )
        assert np.isfinite(history["loss"][-1])
    history = classifier().fit(
        x,
        y,
        loss=scce(),
        optimizer="sgd",
        optimizer_options={"momentum": 0.9},
        epochs=2,
        verbose=0,
    )
    assert np.isfinite(history["loss"][-1])


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"x": "nan"}, ValueError, r"x: contains NaN or inf"),
        ({"x": "wide"}, ShapeError, r"x: examples have shape \(6,\).*expects \(5,\)"),
        ({"y": "out_of_range"}, ValueError, r"label.*7|7.*label"),
        ({"y": "column"}, ShapeError, r"y does not fit the loss"),
        ({"x": "empty"}, ValueError, r"x: the dataset is empty"),
        ({"batch_size": 41}, ValueError, r"batch_size=41 is larger than the 40"),
        ({"batch_size": 0}, ValueError, r"batch_size must be a positive int, got 0"),
        ({"epochs": 0}, ValueError, r"epochs must be a positive int, got 0"),
        ({"epochs": -2}, ValueError, r"epochs must be a positive int, got -2"),
        ({"optimizer": "adamm"}, UnknownNameError, r"optimizer 'adamm'.*adam"),
        ({"loss": "mse_loss"}, UnknownNameError, r"unknown loss 'mse_loss'"),
        ({"metrics": ["acuracy"]}, UnknownNameError, r"metric 'acuracy'.*accuracy"),
        ({"y": "short"}, ShapeError, r"y: has 39 rows but x has 40"),
        ({"validation_split": 1.5}, ValueError, r"validation_split must be in"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_bad_input_is_named_before_compiling(change, error, match) -> None:
    x, y = data()
    kwargs = {"loss": scce(), "epochs": 1, "batch_size": 8, "verbose": 0}
    if change.get("x") == "nan":
        x = x.copy()
        x[3, 2] = np.nan
    elif change.get("x") == "wide":
        x = np.ones((40, 6), np.float32)
    elif change.get("x") == "empty":
        x, y = x[:0], y[:0]
    if change.get("y") == "out_of_range":
        y = y.copy()
        y[5] = 7
    elif change.get("y") == "column":
        y = np.zeros((40, 2), np.int32) + 0.5
    elif change.get("y") == "short":
        y = y[:-1]
    for key in (
        "batch_size",
        "epochs",
        "optimizer",
        "loss",
        "metrics",
        "validation_split",
    ):
        if key in change:
            kwargs[key] = change[key]
    with pytest.raises(error, match=match):
        classifier().fit(x, y, **kwargs)


def test_evaluate_without_fit_needs_a_loss() -> None:
    x, y = data()
    with pytest.raises(ValueError, match="pass loss="):
        classifier().evaluate(x, y)
    scores = classifier().evaluate(x, y, loss=scce(), metrics=["accuracy"])
    assert set(scores) == {"loss", "accuracy"}


def test_predict_pads_its_last_batch_without_changing_results() -> None:
    x, _ = data(n=23)
    model = classifier()
    whole = model.predict(x, batch_size=1024)
    np.testing.assert_allclose(
        model.predict(x, batch_size=5), whole, rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (
            {"seed": 2**32},
            ValueError,
            r"seed must be in \[0, 2\*\*32\), got 4294967296",
        ),
        ({"seed": -1}, ValueError, r"seed must be in \[0, 2\*\*32\), got -1"),
        ({"seed": 1.5}, TypeError, r"seed must be an int, got float: 1.5"),
        (
            {"metrics": 5},
            TypeError,
            r"metrics must be a list of names or callables, got 5",
        ),
        ({"validation_split": "a"}, TypeError, r"validation_split must be a number"),
        (
            {"learning_rate": True},
            ValueError,
            r"learning_rate must be a positive number",
        ),
        ({"callbacks": 3}, TypeError, r"callbacks must be a list of Callback objects"),
    ],
    ids=[
        "seed-big",
        "seed-negative",
        "seed-float",
        "metrics-int",
        "split-str",
        "lr-bool",
        "callbacks-int",
    ],
)
def test_bad_options_name_the_argument(options, error, match) -> None:
    x, y = data()
    with pytest.raises(error, match=match):
        classifier().fit(x, y, loss=scce(), verbose=0, **options)


def test_a_single_callback_needs_no_list() -> None:
    x, y = data()
    seen: list[int] = []
    classifier().fit(
        x,
        y,
        loss=scce(),
        epochs=2,
        verbose=0,
        callbacks=LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e)),
    )
    assert seen == [0, 1]


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (
            np.ones((4, 5), np.complex64),
            TypeError,
            r"x: expected real numbers, got an array of dtype complex64",
        ),
        (
            np.full((4, 5), 1e300),
            ValueError,
            r"x: holds values up to 1e\+300, beyond float32's range",
        ),
        (np.array([["a"] * 5] * 4), TypeError, r"x: expected real numbers"),
    ],
    ids=["complex", "too-large", "strings"],
)
def test_features_that_are_not_float32_numbers_are_refused(x, error, match) -> None:
    with pytest.raises(error, match=match):
        classifier().predict(x)


def test_a_layer_reused_as_the_first_of_a_second_sequential_is_an_error() -> None:
    layers = [Dense(units=4), Relu(), Dense(units=2)]
    Sequential(layers, input_shape=3)
    with pytest.raises(
        ValueError,
        match=r"layers\[0\] \(Relu 'relu'\) already has an input_layer \(Dense 'dense'\)",
    ):
        Sequential(layers[1:])


def test_divergence_in_the_first_epoch_keeps_the_initial_parameters() -> None:
    x, _ = data()
    y = np.full((40, 3), 1e30, np.float32)
    model = Sequential([InputLayer(shape=5), Dense(units=3)])
    initial = jax.tree.map(np.copy, model.params)
    history = model.fit(x, y, loss="mse", epochs=3, verbose=0)
    assert history.diverged
    assert (
        "NaN or inf in epoch 1; the initial parameters are kept" in history.stop_reason
    )
    assert_same_params(model.params, initial)
    # The layers see the model's parameters, as set_trainables reports them.
    np.testing.assert_array_equal(model.layers[1].params["w"], initial["dense"]["w"])


class MeanOnlyMSE(Loss):
    """A loss that gives only a batch mean, so fit cannot weight padded rows."""

    def __call__(self, y_true, y_pred):
        return jnp.mean((y_true - y_pred) ** 2)


@pytest.mark.parametrize(
    "loss", [MeanOnlyMSE(), "mse"], ids=["batch-mean-only", "per-example"]
)
def test_a_short_last_batch_counts_each_row_once_either_way(loss) -> None:
    # 11 rows at batch 4: 4, 4 and 3 rows. A per-example loss pads the last
    # batch with weight-0 rows; a mean-only loss runs it as its own step.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(11, 3)).astype(np.float32)
    y = rng.normal(size=(11, 2)).astype(np.float32)
    model = Sequential([InputLayer(shape=3), Dense(units=2)])
    history = model.fit(
        x, y, loss=loss, optimizer=optax.set_to_zero(), batch_size=4, verbose=0
    )
    p = {k: np.asarray(v, np.float64) for k, v in model.params["dense"].items()}
    expected = np.mean((y - (x @ p["w"] + p["b"])) ** 2)
    assert history["loss"][0] == pytest.approx(expected, rel=1e-5)
