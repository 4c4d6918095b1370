"""Conformance checks for loss classes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minidl_core._loss import Loss
from minidl_core.testing._conformance import (
    Check,
    CheckFailed,
    CheckSkipped,
    ConformanceReport,
    Tolerance,
    describe,
    require_close,
    require_finite,
    require_gradient,
    run_checks,
)

__all__ = ["LOSS_CHECKS", "TARGET_KINDS", "check_loss"]

#: The properties :func:`check_loss` checks, in the order it checks them.
LOSS_CHECKS = (
    "construct",
    "scalar",
    "jit",
    "edges",
    "gradients",
    "broadcasting",
    "config",
)

#: What ``y_true`` and ``y_pred`` hold, one of these per loss.
TARGET_KINDS = ("regression", "binary", "categorical", "sparse")

_BIG = 1e3


class _LossChecks:
    """The state the loss checks share: the loss and its test data."""

    def __init__(
        self,
        loss_cls: type[Loss],
        config: Mapping[str, Any],
        targets: str,
        shape: tuple[int, ...],
        seed: int,
        tol: Tolerance,
    ) -> None:
        self.cls, self.options = loss_cls, dict(config)
        self.targets, self.shape, self.tol = targets, shape, tol
        true_key, pred_key, self.probe_key = jax.random.split(jax.random.key(seed), 3)
        self.loss: Loss | None = None
        self.from_logits = False
        self.true_key, self.pred_key = true_key, pred_key

    @property
    def classes(self) -> int:
        return self.shape[-1]

    def built(self) -> Loss:
        if self.loss is None:
            raise CheckSkipped("needs a loss that constructs (see 'construct')")
        return self.loss

    def sample(self) -> tuple[jax.Array, jax.Array]:
        """Typical targets and predictions, clear of clipping bounds and kinks."""
        shape, kind = self.shape, self.targets
        if kind == "regression":
            return (
                jax.random.normal(self.true_key, shape),
                jax.random.normal(self.pred_key, shape),
            )
        if kind == "binary":
            y_true = jax.random.bernoulli(self.true_key, 0.5, shape).astype(jnp.float32)
            if self.from_logits:
                return y_true, 2.0 * jax.random.normal(self.pred_key, shape)
            return y_true, jax.random.uniform(
                self.pred_key, shape, jnp.float32, 0.05, 0.95
            )
        logits = jax.random.normal(self.pred_key, shape)
        y_pred = logits if self.from_logits else jax.nn.softmax(logits, axis=-1)
        if kind == "sparse":
            labels = jax.random.randint(self.true_key, shape[:-1], 0, self.classes)
            return labels, y_pred
        return jax.nn.softmax(jax.random.normal(self.true_key, shape)), y_pred

    def edge_cases(self) -> list[tuple[str, jax.Array, jax.Array]]:
        """Confident right and wrong answers at the extremes of the inputs."""
        shape, kind = self.shape, self.targets
        if kind == "regression":
            size = int(np.prod(shape))
            big = jnp.where(jnp.arange(size) % 2 == 0, _BIG, -_BIG).reshape(shape)
            y_true = jax.random.normal(self.true_key, shape)
            return [
                (f"y_pred of +-{_BIG:g}", y_true, big),
                (f"y_true of +-{_BIG:g}", big, y_true),
            ]
        low, high = (-_BIG, _BIG) if self.from_logits else (0.0, 1.0)
        what = f"logits of +-{_BIG:g}" if self.from_logits else "probabilities 0 and 1"
        if kind == "binary":
            index = jnp.arange(int(np.prod(shape))).reshape(shape)
            y_pred = jnp.where(index % 2 == 1, high, low).astype(jnp.float32)
            y_true = ((index // 2) % 2).astype(jnp.float32)
            return [(what, y_true, y_pred)]
        # Row i predicts class i % C and is labelled (i // 2) % C: some right,
        # most wrong, every prediction as confident as it can be.
        rows = jnp.arange(int(np.prod(shape[:-1]))).reshape(shape[:-1])
        predicted = jax.nn.one_hot(rows % self.classes, self.classes) > 0
        y_pred = jnp.where(predicted, high, low).astype(jnp.float32)
        labels = (rows // 2) % self.classes
        if kind == "sparse":
            return [(what, labels, y_pred)]
        return [(what, jax.nn.one_hot(labels, self.classes), y_pred)]

    # The checks, in order.

    def construct(self) -> str:
        self.loss = self.cls(**self.options)
        self.from_logits = bool(getattr(self.loss, "from_logits", False))
        try:
            self.cls()
        except TypeError as error:
            raise CheckFailed(
                f"{self.cls.__name__}() must work with no argument (the "
                f"registry and loss names rely on it): {error}"
            ) from None
        return "from_logits" if self.from_logits else ""

    def scalar(self) -> str:
        loss = self.built()
        y_true, y_pred = self.sample()
        value = loss(y_true, y_pred)
        if np.shape(value) != ():
            raise CheckFailed(
                f"returned shape {np.shape(value)} for y_true {tuple(y_true.shape)} "
                f"and y_pred {tuple(y_pred.shape)}; a loss returns a scalar"
            )
        if not jnp.issubdtype(jnp.asarray(value).dtype, jnp.floating):
            raise CheckFailed(f"returned dtype {jnp.asarray(value).dtype}, not float")
        require_finite("value", value)
        return f"{float(value):.4g}"

    def jit(self) -> str:
        loss = self.built()
        y_true, y_pred = self.sample()
        jitted = jax.jit(lambda t, p: loss(t, p))(y_true, y_pred)
        return require_close("jit", jitted, loss(y_true, y_pred))

    def edges(self) -> str:
        loss = self.built()
        for what, y_true, y_pred in self.edge_cases():
            require_finite(f"loss at {what}", loss(y_true, y_pred))
            grad = jax.grad(lambda p, t=y_true: loss(t, p))(y_pred)
            require_finite(f"gradient at {what}", grad)
        return ", ".join(case[0] for case in self.edge_cases())

    def gradients(self) -> str:
        loss = self.built()
        y_true, y_pred = self.sample()
        found = require_gradient(
            "d loss / d y_pred",
            jax.jit(lambda p: loss(y_true, p)),
            y_pred,
            jax.jit(jax.grad(lambda p: loss(y_true, p)))(y_pred),
            self.tol,
            self.probe_key,
        )
        if self.targets == "sparse":
            return f"max abs error {found[0]:.2g}"
        also = require_gradient(
            "d loss / d y_true",
            jax.jit(lambda t: loss(t, y_pred)),
            y_true,
            jax.jit(jax.grad(lambda t: loss(t, y_pred)))(y_true),
            self.tol,
            jax.random.fold_in(self.probe_key, 1),
        )
        return f"max abs error {max(found[0], also[0]):.2g}"

    def broadcasting(self) -> str:
        loss = self.built()
        y_true, y_pred = self.sample()
        n = self.shape[0]
        if self.targets == "sparse":
            cases = [
                ("labels of shape (1,)", jnp.zeros((1,), jnp.int32), y_pred),
                (
                    "one-hot y_true",
                    jax.nn.one_hot(y_true, self.classes),
                    y_pred,
                ),
            ]
        else:
            columns_true, columns_pred = y_true.reshape(n, -1), y_pred.reshape(n, -1)
            cases = [
                ("(N,) against (N, 1)", columns_true[:, 0], columns_pred[:, :1]),
                ("(N, 1) against (N,)", columns_true[:, :1], columns_pred[:, 0]),
                ("one row against N rows", y_true[:1], y_pred),
            ]
        for what, bad_true, bad_pred in cases:
            for mode, fn in (("eager", loss), ("jit", jax.jit(loss.__call__))):
                _require_rejected(what, mode, fn, bad_true, bad_pred)
        return f"{len(cases)} mismatched pairs refused, eager and under jit"

    def config(self) -> str:
        loss = self.built()
        config = loss.get_config()
        try:
            text = json.dumps(config)
        except (TypeError, ValueError) as error:
            raise CheckFailed(
                f"get_config() is not JSON-serializable: {error}"
            ) from None
        y_true, y_pred = self.sample()
        expected = loss(y_true, y_pred)
        for label, cfg in (("get_config()", config), ("JSON", json.loads(text))):
            clone = self.cls.from_config(cfg)
            if type(clone) is not self.cls:
                raise CheckFailed(
                    f"from_config returned {type(clone).__name__}, not "
                    f"{self.cls.__name__}"
                )
            got = clone(y_true, y_pred)
            require_close(f"from_config({label}) value", got, expected, atol=0.0)
        return f"{len(config)} options"


def _require_rejected(
    what: str,
    mode: str,
    fn: Callable[[Any, Any], Any],
    y_true: jax.Array,
    y_pred: jax.Array,
) -> None:
    try:
        value = fn(y_true, y_pred)
    except (ValueError, TypeError):
        return
    broadcast = np.broadcast_shapes(np.shape(y_true), np.shape(y_pred))
    raise CheckFailed(
        f"{what} ({mode}): y_true of shape {tuple(y_true.shape)} and y_pred of "
        f"shape {tuple(y_pred.shape)} gave a loss of {float(np.mean(value)):.4g} "
        f"instead of an error (broadcasting them makes shape {broadcast}); "
        "call self.check_shapes(y_true, y_pred) first"
    )


def check_loss(
    loss_cls: type[Loss],
    config: Mapping[str, Any] | None = None,
    *,
    targets: str = "regression",
    shape: Sequence[int] = (4, 3),
    seed: int = 0,
    tolerance: Tolerance | None = None,
    skip: Iterable[str] = (),
) -> ConformanceReport:
    """Check that a loss class keeps the loss contract.

    - ``construct``: it builds from ``config`` and with no argument at all.
    - ``scalar``: it returns a finite float scalar.
    - ``jit``: ``jax.jit`` gives the eager value.
    - ``edges``: value and gradient stay finite for the most confident right
      and wrong predictions: probabilities of exactly 0 and 1, logits of
      ``+-1e3`` where the loss has ``from_logits=True``, values of ``+-1e3``
      for regression.
    - ``gradients``: autodiff matches central finite differences with
      respect to ``y_pred`` (and a float ``y_true``).
    - ``broadcasting``: shapes that would broadcast silently are refused
      with a ``ValueError`` or ``TypeError``, eagerly and under ``jax.jit``:
      ``(N,)`` against ``(N, 1)`` either way round and one row against
      ``N``; for sparse labels, labels of shape ``(1,)`` and one-hot rows.
    - ``config``: ``get_config()`` is JSON-serializable and ``from_config``
      of it gives the same value.

    Args:
        loss_cls: The :class:`~minidl_core.Loss` subclass.
        config: Constructor arguments, e.g. ``{"from_logits": True}``.
        targets: What the loss compares, one of :data:`TARGET_KINDS`:
            ``"regression"`` (any reals), ``"binary"`` (0/1 targets,
            probabilities or logits), ``"categorical"`` (distributions over
            the last axis) or ``"sparse"`` (integer labels of shape
            ``shape[:-1]`` against ``shape`` predictions).
        shape: The shape of ``y_pred``; at least 2 rows, and for
            categorical or sparse targets at least 2 classes on the last axis.
        seed: Seeds the test data.
        tolerance: Gradient-check tolerances; float32 defaults.
        skip: Names from :data:`LOSS_CHECKS` not to run.

    Returns:
        The report; every check passed or was skipped.

    Raises:
        ConformanceError: A check failed; the message names each failed
            property and by how much.
        TypeError: ``loss_cls`` is not a Loss subclass.
        ValueError: ``targets``, ``shape`` or ``skip`` is invalid.
    """
    __tracebackhide__ = True
    if not (isinstance(loss_cls, type) and issubclass(loss_cls, Loss)):
        raise TypeError(
            f"check_loss: loss_cls must be a subclass of minidl_core.Loss, got "
            f"{loss_cls!r}"
        )
    if targets not in TARGET_KINDS:
        raise ValueError(
            f"check_loss: targets must be one of {', '.join(TARGET_KINDS)}, got "
            f"{targets!r}"
        )
    dims = tuple(int(s) for s in shape)
    needs_classes = targets in ("categorical", "sparse")
    if (
        len(dims) < (2 if needs_classes else 1)
        or dims[0] < 2
        or min(dims) < 1
        or (needs_classes and dims[-1] < 2)
    ):
        raise ValueError(
            f"check_loss: shape {shape!r} does not suit {targets!r} targets; give "
            "at least 2 rows" + (" and 2 classes, e.g. (4, 3)" if needs_classes else "")
        )
    config = dict(config or {})
    checks = _LossChecks(
        loss_cls, config, targets, dims, seed, tolerance or Tolerance()
    )
    table: dict[str, Check] = {name: getattr(checks, name) for name in LOSS_CHECKS}
    subject = describe(loss_cls, config) + f" with {targets} targets"
    return run_checks(subject, table, skip)
