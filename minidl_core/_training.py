"""fit, evaluate and predict.

An epoch runs as one compiled function: the data is placed on the device
once, the epoch's permutation is drawn on the device, and ``lax.scan`` steps
through the batches. The rows left over for the last batch are padded with
rows of weight 0 (or, for a loss with no per-example form, run as one
smaller step), so nothing is dropped and nothing recompiles between epochs.
Python touches the device once per epoch, to read the epoch's loss and
metrics, and for short epochs it has already dispatched the next one by
then; a loss that turns NaN or inf keeps the epoch's starting state.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from minidl_core._callbacks import Callback, History
from minidl_core._catalog import get_loss, get_metric, get_optimizer
from minidl_core._errors import ShapeError
from minidl_core._loss import Loss
from minidl_core._registry import normalize_name

if TYPE_CHECKING:
    from pathlib import Path

    from minidl_core._model import Model

__all__ = ["evaluate", "fit", "predict"]

logger = logging.getLogger("minidl")

MetricFn = Callable[[jax.Array, jax.Array], jax.Array]

# fit dispatches the next epoch before reading the current one's results
# when an epoch takes less than this on the device, so its Python work per
# epoch (logs, history, callbacks) overlaps the device's work instead of
# adding to it. When training stops early, that dispatched epoch is wasted,
# which is why long epochs, where the Python work is a negligible part, are
# not dispatched ahead.
_AHEAD_BELOW_SECONDS = 0.1

# Evaluation functions a model keeps compiled, the least recently used
# dropped first.
_EVAL_CACHE_SIZE = 8


# Resolving what the user named.


def resolve_loss(loss: Any) -> Loss:
    """A Loss instance from a Loss, a Loss subclass or a registry name."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str):
        cls = get_loss(loss)
        return cls()  # type: ignore[no-any-return]
    raise TypeError(
        "loss must be a Loss instance or a registered loss name such as "
        f"'mse', got {type(loss).__name__}: {loss!r}"
    )


def resolve_optimizer(
    optimizer: Any,
    learning_rate: float | optax.Schedule | None = None,
    options: dict[str, Any] | None = None,
) -> optax.GradientTransformation:
    """An optax transformation from one, or from a registry name."""
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None or options:
            raise ValueError(
                "learning_rate and optimizer_options apply to an optimizer "
                "given by name; an optax transformation already has its own"
            )
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(
            "optimizer must be a registered name such as 'adam' or an "
            f"optax.GradientTransformation, got {type(optimizer).__name__}: "
            f"{optimizer!r}"
        )
    factory = get_optimizer(optimizer)
    bad_number = (
        isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float)
    ) or not (math.isfinite(learning_rate) and learning_rate > 0)
    if learning_rate is not None and not callable(learning_rate) and bad_number:
        raise ValueError(
            f"learning_rate must be a positive number or an optax "
            f"schedule, got {learning_rate!r}"
        )
    kwargs = dict(options or {})
    if learning_rate is not None:
        kwargs["learning_rate"] = learning_rate
    try:
        return factory(**kwargs)  # type: ignore[no-any-return]
    except TypeError as error:
        raise TypeError(f"optimizer {optimizer!r}: {error}") from None


def resolve_metrics(metrics: Iterable[Any] | None) -> dict[str, MetricFn]:
    """Metric callables keyed by the names shown in logs."""
    if metrics is None:
        return {}
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, Iterable):
        raise TypeError(
            f"metrics must be a list of names or callables, got {metrics!r}"
        )
    resolved: dict[str, MetricFn] = {}
    for metric in metrics:
        if isinstance(metric, str):
            resolved[metric] = get_metric(metric)
        elif isinstance(metric, Loss):
            resolved[metric.name] = metric
        elif callable(metric):
            resolved[getattr(metric, "__name__", type(metric).__name__)] = metric
        else:
            raise TypeError(f"metrics: expected names or callables, got {metric!r}")
    return resolved


# Checking data.


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed!r}")
    return int(seed)


def _positive_int(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{argument} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{argument} must be a positive int, got {value!r}")
    return int(value)


def _check_y(y: Any, n: int, argument: str = "y", x_argument: str = "x") -> np.ndarray:
    try:
        array = np.asarray(y)
    except Exception as error:
        raise TypeError(f"{argument}: cannot be read as an array: {error}") from None
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise TypeError(
            f"{argument}: expected numeric targets, got dtype {array.dtype}"
        )
    if array.ndim == 0:
        raise ShapeError(
            f"{argument}: expected one target per example ({n} rows), got a "
            f"single value {array.item()!r}"
        )
    if array.shape[0] != n:
        raise ShapeError(
            f"{argument}: has {array.shape[0]} rows but {x_argument} has {n}; "
            "each example needs one target"
        )
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise ValueError(f"{argument}: contains NaN or inf")
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int32)
    return array.astype(np.float32)


def _check_targets(
    model: Model,
    loss: Loss,
    metrics: dict[str, MetricFn],
    y: np.ndarray,
    argument: str = "y",
) -> None:
    """Check ``y`` against the loss and metrics before compiling anything.

    Shapes are checked by tracing each function abstractly on a prediction
    of the model's output shape (nothing is computed or compiled); values,
    such as labels outside the classes, by each loss's
    :meth:`~minidl_core.Loss.check_target_values` on the host.
    """
    prediction = jax.ShapeDtypeStruct((len(y), *model.output_shape), jnp.float32)  # type: ignore[no-untyped-call]
    checks: dict[str, MetricFn] = {"loss": loss, **metrics}
    for name, fn in checks.items():
        try:
            jax.eval_shape(lambda p, fn=fn: fn(y, p), prediction)
            owner = getattr(fn, "loss", fn)
            if isinstance(owner, Loss):
                owner.check_target_values(y, prediction.shape)
        except (ValueError, TypeError) as error:
            label = f"loss {loss.name}" if name == "loss" else f"metric {name!r}"
            raise type(error)(
                f"{argument} does not fit the {label} for a model whose output "
                f"has shape (batch, {', '.join(map(str, model.output_shape))}): "
                f"{error}"
            ) from None


# The compiled pieces.


@dataclass(frozen=True)
class _Plan:
    n: int
    batch_size: int
    shuffle: bool

    @property
    def full_batches(self) -> int:
        return self.n // self.batch_size

    @property
    def remainder(self) -> int:
        return self.n % self.batch_size


def _per_example(fn: Any) -> MetricFn | None:
    """``fn``'s per-example form, or ``None`` if it only gives a batch mean."""
    if isinstance(fn, Loss):
        cls = type(fn)
        overridden = cls.per_sample is not Loss.per_sample
        if overridden and cls.__call__ is Loss.__call__:
            return fn.per_sample
        return None
    per = getattr(fn, "per_sample", None)
    return per if callable(per) else None


def _make_epoch_fn(
    model: Model,
    loss: Loss,
    metrics: dict[str, MetricFn],
    tx: optax.GradientTransformation,
    plan: _Plan,
    progress: _Bars | None = None,
) -> Callable[..., Any]:
    """One compiled epoch: a scan over batches of the epoch's permutation.

    When the rows do not fill the last batch and the loss and every metric
    have a per-example form, the last batch is filled with repeated rows of
    weight 0, so one step body serves every batch and compiles once.
    Otherwise the short last batch runs as a second step body. With
    ``progress``, every ``progress.every`` steps the compiled code calls
    ``progress.advance`` on the host, which waits for nothing.
    """
    names = list(metrics)
    per_loss = _per_example(loss)
    per_metrics = [_per_example(metrics[m]) for m in names]
    weighted = (
        bool(plan.remainder)
        and per_loss is not None
        and all(m is not None for m in per_metrics)
    )

    def loss_fn(
        trainable: Any,
        frozen: Any,
        xb: jax.Array,
        yb: jax.Array,
        wb: jax.Array | None,
        key: jax.Array,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        pred = model.apply({**frozen, **trainable}, xb, key=key, training=True)
        if wb is None:
            value = loss(yb, pred)
            return value, (pred, value * len(xb))
        assert per_loss is not None
        total = jnp.sum(per_loss(yb, pred) * wb)
        return total / jnp.sum(wb), (pred, total)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(
        state: tuple[Any, Any],
        frozen: Any,
        xb: jax.Array,
        yb: jax.Array,
        wb: jax.Array | None,
        key: jax.Array,
    ) -> tuple[tuple[Any, Any], jax.Array]:
        """One update; returns the batch's summed loss and metrics."""
        trainable, opt_state = state
        (_, (pred, loss_sum)), grads = grad_fn(trainable, frozen, xb, yb, wb, key)
        updates, opt_state = tx.update(grads, opt_state, trainable)
        trainable = optax.apply_updates(trainable, updates)
        if wb is None:
            sums = [metrics[m](yb, pred) * len(xb) for m in names]
        else:
            sums = [jnp.sum(m(yb, pred) * wb) for m in per_metrics if m is not None]
        return (trainable, opt_state), jnp.stack([loss_sum, *sums])

    def epoch(
        trainable: Any,
        opt_state: Any,
        frozen: Any,
        x: jax.Array,
        y: jax.Array,
        base_key: jax.Array,
        epoch_index: jax.Array,
    ) -> tuple[Any, Any, jax.Array]:
        # Folding the epoch in here saves an eager dispatch per epoch.
        key = jax.random.fold_in(base_key, epoch_index)
        order_key, step_key = jax.random.split(key)
        if plan.shuffle:
            order = jax.random.permutation(order_key, plan.n)
        else:
            order = jnp.arange(plan.n)
        steps = plan.full_batches + (1 if weighted else 0)
        size = steps * plan.batch_size
        if weighted:
            order = jnp.concatenate([order, order[: size - plan.n]])
        batches = order[:size].reshape(steps, plan.batch_size)
        weights = (jnp.arange(size) < plan.n).astype(jnp.float32)
        weights = weights.reshape(steps, plan.batch_size)

        def body(
            state: tuple[Any, Any], inputs: tuple[jax.Array, jax.Array, jax.Array]
        ) -> tuple[tuple[Any, Any], jax.Array]:
            i, ids, wb = inputs
            out = step(
                state,
                frozen,
                x[ids],
                y[ids],
                wb if weighted else None,
                jax.random.fold_in(step_key, i),
            )
            if progress is not None:
                jax.lax.cond(
                    (i + 1) % progress.every == 0,
                    lambda: jax.debug.callback(progress.advance),
                    lambda: None,
                )
            return out

        state, stats = jax.lax.scan(
            body, (trainable, opt_state), (jnp.arange(steps), batches, weights)
        )
        totals = stats.sum(axis=0)
        if plan.remainder and not weighted:
            ids = order[size:]
            state, last = step(
                state, frozen, x[ids], y[ids], None, jax.random.fold_in(step_key, steps)
            )
            totals = totals + last
        # The first step's loss, after the means: it is the loss of the
        # parameters the epoch started from, on one batch.
        return state[0], state[1], jnp.append(totals / plan.n, stats[0, 0])

    # No buffer donation: fit keeps the epoch's inputs, the last good state,
    # in case the loss turns NaN, which costs one copy of the parameters and
    # optimizer state and compiles faster than selecting inside the graph.
    return jax.jit(epoch)


def _eval_fn(
    model: Model, fns: dict[str, MetricFn], batch_size: int
) -> Callable[..., jax.Array]:
    """Mean of each function over the rows given, in batches of ``batch_size``.

    Compiled once per number of rows and kept on the model, so evaluating
    the same functions again (each epoch's validation, repeated
    ``evaluate`` calls) compiles nothing.
    """
    key = (batch_size, tuple((name, id(fn)) for name, fn in fns.items()))
    cache = model._eval_cache
    if key in cache:
        cache.move_to_end(key)
        found: Callable[..., jax.Array] = cache[key][0]
        return found
    names = list(fns)

    def stats(params: Any, xb: jax.Array, yb: jax.Array) -> jax.Array:
        pred = model.apply(params, xb, training=False)
        return jnp.stack([fns[m](yb, pred) for m in names])

    def run(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        n = len(x)
        size = min(batch_size, n)
        full, remainder = n // size, n % size
        xs = x[: full * size].reshape(full, size, *x.shape[1:])
        ys = y[: full * size].reshape(full, size, *y.shape[1:])
        per: jax.Array = jax.lax.map(lambda b: stats(params, b[0], b[1]), (xs, ys))
        totals = per.sum(axis=0) * size
        if remainder:
            last = stats(params, x[full * size :], y[full * size :])
            totals = totals + last * remainder
        return totals / n

    compiled = jax.jit(run)
    # The functions stay referenced with it, so their ids stay unique.
    cache[key] = (compiled, fns)
    while len(cache) > _EVAL_CACHE_SIZE:
        cache.popitem(last=False)
    return compiled


def _optimizer_identity(
    optimizer: Any, learning_rate: Any, options: dict[str, Any] | None
) -> tuple[Any, ...]:
    """What makes two fit calls' optimizers the same one."""
    if isinstance(optimizer, str):
        return ("name", normalize_name(optimizer), learning_rate, repr(options or {}))
    return ("object", optimizer)


def _same_layout(old: Any, new: Any) -> bool:
    """Whether two optimizer states have the same structure, shapes and dtypes."""
    if old is None or jax.tree.structure(old) != jax.tree.structure(new):  # type: ignore[operator]
        return False
    return all(
        np.shape(a) == np.shape(b)
        and getattr(a, "dtype", type(a)) == getattr(b, "dtype", type(b))
        for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new), strict=True)
    )


def _rollback(
    model: Model,
    epoch: int,
    state: tuple[Any, Any],
    before: tuple[Any, Any] | None,
    frozen: Any,
    first: float,
) -> str:
    """Keep the last parameters whose loss was measured finite; say which.

    ``state`` is what the diverged epoch started from; its first step
    measured that state's loss (``first``). If that was already NaN or inf,
    ``before``, the state the previous epoch started from, is the last one
    measured finite (by that epoch's first step).
    """
    if epoch == 0:
        where = "the initial parameters"
    else:
        where = f"the parameters from the end of epoch {epoch}"
    if np.isfinite(first):
        return f"{where} are kept"
    if before is None:
        return f"{where} are kept, though their loss is already NaN or inf"
    model.params = {**frozen, **before[0]}
    model.opt_state = before[1]
    model.epoch -= 1
    earlier = (
        "the initial parameters"
        if epoch == 1
        else f"the parameters from the end of epoch {epoch - 1}"
    )
    return f"{earlier} are kept: {where} already gave a NaN or inf loss"


# The public functions.


def fit(
    model: Model,
    x: Any,
    y: Any,
    *,
    loss: Any,
    optimizer: Any = "adam",
    learning_rate: float | optax.Schedule | None = None,
    optimizer_options: dict[str, Any] | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = None,
    validation_data: tuple[Any, Any] | None = None,
    validation_split: float = 0.0,
    metrics: Sequence[Any] | None = None,
    callbacks: Sequence[Callback] | None = None,
    verbose: int | str = "auto",
    resume_from: str | Path | None = None,
) -> History:
    """Train ``model`` on ``(x, y)`` and return the per-epoch history.

    Calling ``fit`` again continues training: epochs keep counting from
    ``model.epoch``, so each draws a new order and new Dropout masks, and the
    optimizer keeps its state when it is the same one (the same name and
    options, or the same optax object). ``fit(epochs=1)`` three times trains
    exactly as ``fit(epochs=3)`` does.

    A loss that turns NaN or inf stops training; the parameters kept are the
    last ones whose loss was measured finite, which may be those from one
    epoch earlier. To allow that, and to overlap short epochs, ``fit`` holds
    up to three copies of the parameters and optimizer state.

    Args:
        model: The model; built from ``x``'s shape if it is not yet.
        x: Features, shape ``(examples, *input_shape)``, finite numbers.
        y: Targets, one row per example, in the shape the loss expects.
        loss: A :class:`Loss` or a registered loss name.
        optimizer: A registered optimizer name (``"adam"``, ``"sgd"``,
            ``"adamw"``, ``"rmsprop"``, ...) or an ``optax``
            transformation.
        learning_rate: For a named optimizer: a number or an optax schedule.
        optimizer_options: For a named optimizer: its other options, e.g.
            ``{"momentum": 0.9}``.
        epochs: Passes over the data, a positive int.
        batch_size: Examples per step, between 1 and the number of examples.
            The last batch of an epoch holds the remaining rows; none are
            dropped.
        shuffle: Draw a new order of the examples every epoch.
        seed: Seeds shuffling and Dropout; the same seed gives the same
            weights and history, bit for bit on one machine. Default 0, or
            when resuming, the seed the checkpoint was saved with.
        validation_data: ``(x_val, y_val)`` scored after every epoch.
        validation_split: Instead, the fraction of rows, taken from the end
            before shuffling, to hold out for validation.
        metrics: Names (``"accuracy"`` or any loss) or callables
            ``metric(y_true, y_pred)``.
        callbacks: :class:`Callback` objects.
        verbose: 0 silent; 1 a progress bar for each epoch, over its
            steps, ending with the epoch's loss and metrics (only when
            stderr is a terminal); 2 one line per epoch on stderr;
            ``"auto"`` is 1.
        resume_from: A model file saved with its optimizer state (by
            :class:`ModelCheckpoint` or :func:`save_model` after ``fit``):
            its parameters, optimizer state and epoch count replace the
            model's, and training continues at that epoch up to ``epochs``.
            With the same data and options, the weights end bit for bit as
            an uninterrupted run's.

    Returns:
        A :class:`History` of the epochs this call ran; also kept as
        ``model.history``.

    Raises:
        ValueError, TypeError, ShapeError: For bad data or options, before
            anything is compiled; the message names the argument.
        ModelFileError: ``resume_from`` is unreadable or does not fit the
            model or the optimizer.
    """
    # Check everything before compiling anything.
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    if isinstance(verbose, np.integer):
        verbose = int(verbose)
    if not isinstance(verbose, str | int) or verbose not in (0, 1, 2, "auto"):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    if not isinstance(shuffle, bool | np.bool_):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    if seed is not None:
        seed = _check_seed(seed)
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    if callbacks is not None and not isinstance(callbacks, Sequence):
        raise TypeError(
            f"callbacks must be a list of Callback objects, got {callbacks!r}"
        )
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks: expected Callback objects, got {callback!r}")
    if isinstance(validation_split, bool) or not isinstance(
        validation_split, int | float
    ):
        raise TypeError(
            f"validation_split must be a number in [0, 1), got {validation_split!r}"
        )
    loss_obj = resolve_loss(loss)
    metric_fns = resolve_metrics(metrics)
    tx = resolve_optimizer(optimizer, learning_rate, optimizer_options)
    x_arr = model._check_x(x, "x")
    y_arr = _check_y(y, len(x_arr))
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(
            f"validation_split must be in [0, 1), got {validation_split!r}"
        )
    if validation_data is not None and validation_split:
        raise ValueError("give validation_data or validation_split, not both")
    if validation_split:
        n_val = round(len(x_arr) * validation_split)
        if n_val < 1 or n_val >= len(x_arr):
            raise ValueError(
                f"validation_split={validation_split} of {len(x_arr)} rows leaves "
                "no validation or no training rows"
            )
        validation_data = (x_arr[-n_val:], y_arr[-n_val:])
        x_arr, y_arr = x_arr[:-n_val], y_arr[:-n_val]
    if batch_size > len(x_arr):
        raise ValueError(
            f"batch_size={batch_size} is larger than the {len(x_arr)} training "
            "examples; use a batch_size of at most that"
        )
    _check_targets(model, loss_obj, metric_fns, y_arr)
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (x_val, y_val)")
        x_val = model._check_x(validation_data[0], "validation_data x")
        y_val = _check_y(
            validation_data[1], len(x_val), "validation_data y", "validation_data x"
        )
        _check_targets(model, loss_obj, metric_fns, y_val, "validation_data y")
        val = (x_val, y_val)
    resumed = None
    if resume_from is not None:
        from minidl_core._checkpoint import read_checkpoint

        resumed = read_checkpoint(resume_from)
        model.params = resumed.params_for(model)
    if seed is None:
        seed = 0 if resumed is None or resumed.seed is None else resumed.seed
    initial_epoch = 0 if resumed is None else resumed.epoch
    # A model fit before continues: its epochs keep counting, so each draws
    # a new order and new Dropout masks, and the optimizer keeps its state
    # when it is the same optimizer.
    offset = model.epoch if resumed is None else 0
    optimizer_used = _optimizer_identity(optimizer, learning_rate, optimizer_options)

    # Place the data once and compile.
    assert model.params is not None
    model.loss, model.metrics = loss_obj, metric_fns
    plan = _Plan(len(x_arr), batch_size, shuffle)
    bars = _progress(epochs, -(-plan.n // plan.batch_size), verbose)
    shown = bars is not None or verbose == 2  # progress was asked for and shows
    epoch_fn = _make_epoch_fn(model, loss_obj, metric_fns, tx, plan, bars)
    x_dev, y_dev = jax.device_put(x_arr), jax.device_put(y_arr)
    trainable, frozen = model.partition(model.params)
    opt_state = tx.init(trainable)
    if resumed is not None:
        opt_state = resumed.optimizer_state_for(opt_state)
    elif model._optimizer_used == optimizer_used and _same_layout(
        model.opt_state, opt_state
    ):
        opt_state = model.opt_state
    model.opt_state, model._optimizer_used = opt_state, optimizer_used
    val_fn = None
    if val is not None:
        val_fn = _eval_fn(
            model, {"loss": loss_obj, **metric_fns}, max(batch_size, 1024)
        )
        x_val_dev, y_val_dev = jax.device_put(val[0]), jax.device_put(val[1])

    history = History()
    model.history = history
    model.stop_training, model.stop_reason = False, ""
    model.epoch, model.fit_seed = offset + initial_epoch, seed
    params = model.params
    for callback in callbacks:
        callback.model = model
    for callback in callbacks:
        callback.on_train_begin()
    names = ["loss", *metric_fns]
    base_key = jax.random.key(seed)

    def start(state: tuple[Any, Any], epoch: int) -> Any:
        """Dispatch one epoch; returns at once with its (future) outputs."""
        index = np.int32(offset + epoch)
        return epoch_fn(*state, frozen, x_dev, y_dev, base_key, index)

    state = (trainable, opt_state)  # the last good state
    before = None  # the state the last epoch started from, while it is needed
    ahead = None  # the next epoch, dispatched before this one's logs were read
    seconds = math.inf  # how long the last epoch took on the device
    ready = 0.0  # when the last epoch's results were read back
    try:
        for epoch in range(initial_epoch, epochs):
            for callback in callbacks:
                callback.on_epoch_begin(epoch)
            if model.params is not params or model.opt_state is not state[1]:
                # A callback replaced the parameters or the optimizer state:
                # train on from those, not from what the last epoch left.
                params = model.params
                trainable, frozen = model.partition(params)
                state, ahead, before = (trainable, model.opt_state), None, None
            if bars is not None:
                bars.begin(epoch)
            if ahead is None:
                out = start(state, epoch)
                began = time.perf_counter()
            else:
                out, began = ahead, ready
            val_out = None
            if val_fn is not None:
                val_out = val_fn({**frozen, **out[0]}, x_val_dev, y_val_dev)
            ahead = None
            # A bar per epoch needs its steps reported in order: not ahead.
            if epoch + 1 < epochs and seconds < _AHEAD_BELOW_SECONDS and bars is None:
                ahead = start((out[0], out[1]), epoch + 1)
            means = np.asarray(out[2])
            means, first = means[:-1], means[-1]
            ready = time.perf_counter()
            seconds = ready - began
            if not np.isfinite(means[0]):
                kept = _rollback(model, epoch, state, before, frozen, first)
                model.stop_training = True
                model.stop_reason = (
                    f"the loss became NaN or inf in epoch {epoch + 1}; {kept} "
                    "(lower the learning rate or check the data)"
                )
                logger.info("fit stopped: %s", model.stop_reason)
                if shown:
                    _write(f"stopped: {model.stop_reason}")
                history.stopped_early, history.stop_reason = True, model.stop_reason
                history.diverged = True
                break
            before, state = state, (out[0], out[1])
            params = {**frozen, **state[0]}
            model.params, model.opt_state = params, state[1]
            logs = {n: float(v) for n, v in zip(names, means, strict=True)}
            if val_out is not None:
                logs.update(
                    {
                        f"val_{n}": float(v)
                        for n, v in zip(names, np.asarray(val_out), strict=True)
                    }
                )
            history.append(epoch, logs)
            model.epoch += 1
            if bars is not None:
                bars.end(logs)
            elif verbose == 2:
                # Asked for by the caller: one line per epoch on stderr.
                _write(f"epoch {epoch + 1}/{epochs} {_logs_text(logs)}")
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs)
            if model.stop_training:
                history.stopped_early, history.stop_reason = True, model.stop_reason
                logger.info(
                    "fit stopped after epoch %d: %s", epoch + 1, model.stop_reason
                )
                if shown:
                    _write(f"stopped after epoch {epoch + 1}: {model.stop_reason}")
                break
    finally:
        if bars is not None:
            bars.close()
    for callback in callbacks:
        callback.on_train_end(history.last())
    return history


def evaluate(
    model: Model,
    x: Any,
    y: Any,
    *,
    loss: Any = None,
    metrics: Sequence[Any] | None = None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Mean loss and metrics of ``model`` on ``(x, y)``, in inference mode.

    Args:
        model: A built model.
        x: Features, shape ``(examples, *input_shape)``.
        y: Targets in the shape the loss expects.
        loss: A loss or its name; default, the one ``fit`` last used.
        metrics: Metric names or callables; default, those ``fit`` last used.
        batch_size: Examples per compiled batch; no effect on the result
            for a loss or metric that is a mean over examples (the builtins
            are), but a metric that is not, such as a maximum, is averaged
            over batches.

    Returns:
        ``{"loss": ..., "accuracy": ..., ...}``.
    """
    batch_size = _positive_int(batch_size, "batch_size")
    if loss is None and model.loss is None:
        raise ValueError(
            "evaluate: no loss given and the model was never fit; pass loss="
        )
    loss_obj = model.loss if loss is None else resolve_loss(loss)
    metric_fns = model.metrics if metrics is None else resolve_metrics(metrics)
    x_arr = model._check_x(x, "x")
    y_arr = _check_y(y, len(x_arr))
    _check_targets(model, loss_obj, metric_fns, y_arr)
    fns = {"loss": loss_obj, **metric_fns}
    run = _eval_fn(model, fns, batch_size)
    means = np.asarray(run(model.params, jax.device_put(x_arr), jax.device_put(y_arr)))
    return {n: float(v) for n, v in zip(fns, means, strict=True)}


def predict(model: Model, x: Any, *, batch_size: int = 1024) -> np.ndarray:
    """``model``'s outputs for ``x``, in inference mode, as a numpy array.

    Rows are processed ``batch_size`` at a time; the last batch is padded, so
    one compilation serves any number of rows.
    """
    batch_size = _positive_int(batch_size, "batch_size")
    x_arr = model._check_x(x, "x")
    n = len(x_arr)
    size = min(batch_size, n)
    batches = -(-n // size)
    padded = np.zeros((batches * size, *x_arr.shape[1:]), np.float32)
    padded[:n] = x_arr
    out = _predict_fn(model)(
        model.params, jnp.asarray(padded.reshape(batches, size, *x_arr.shape[1:]))
    )
    return np.asarray(out).reshape(batches * size, *out.shape[2:])[:n]


def _predict_fn(model: Model) -> Callable[..., jax.Array]:
    cached = getattr(model, "_predict_jit", None)
    if cached is None:

        def run(params: Any, xs: jax.Array) -> jax.Array:
            out: jax.Array = jax.lax.map(
                lambda b: model.apply(params, b, training=False), xs
            )
            return out

        cached = jax.jit(run)
        model._predict_jit = cached  # type: ignore[attr-defined]
    return cached  # type: ignore[no-any-return]


# Progress.


def _progress(epochs: int, steps: int, verbose: int | str) -> _Bars | None:
    """Bars for a terminal at verbose 1 (or "auto"), else ``None``."""
    level = 1 if verbose == "auto" else verbose
    if level != 1 or not sys.stderr.isatty():
        return None
    return _Bars(epochs, steps)


class _Bars:
    """One progress bar per epoch, over its steps, on stderr.

    The compiled epoch calls :meth:`advance` every ``every`` steps (about
    twenty times an epoch, so the calls cost little), on the device's
    thread; nothing waits for the device to report progress. When the
    epoch ends its bar gives way to one line with the epoch's loss and
    metrics, which a narrow terminal wraps instead of cutting.
    """

    def __init__(self, epochs: int, steps: int) -> None:
        self.epochs, self.steps = epochs, steps
        self.every = max(1, -(-steps // 20))
        self.bar: Any = None
        self.epoch = 0

    def begin(self, epoch: int) -> None:
        from tqdm.auto import tqdm

        self.close()
        self.epoch = epoch
        self.bar = tqdm(
            total=self.steps,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            unit="step",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def advance(self) -> None:
        bar = self.bar
        if bar is not None:
            bar.update(min(self.every, self.steps - bar.n))

    def end(self, logs: dict[str, float]) -> None:
        bar = self.bar
        if bar is not None:
            seconds = bar.format_dict["elapsed"]
            self.close()
            _write(
                f"epoch {self.epoch + 1}/{self.epochs} {self.steps}/{self.steps} "
                f"{seconds:.1f}s {_logs_text(logs)}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _logs_text(logs: dict[str, float]) -> str:
    """``loss=0.1234 accuracy=0.9805``; huge values in exponent form."""
    return " ".join(
        f"{k}={v:.4f}" if abs(v) < 1e6 else f"{k}={v:.4g}" for k, v in logs.items()
    )


def _write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)
