"""The built-in losses: MSE, MAE, KL divergence and the cross-entropies.

Every loss implements ``per_sample(y_true, y_pred)``, one value per example of
shape ``(batch,)``; the base class's ``__call__`` averages it. Axes after the
batch axis are averaged too, except the class axis of the distribution losses,
which is summed.

Shapes are checked before anything is computed, from static shapes only, so
the checks hold under ``jax.jit`` as well: ``y_true`` and ``y_pred`` must have
the same shape (``(batch,)`` against ``(batch, 1)`` is a :class:`ShapeError`,
never a silent ``(batch, batch)`` broadcast). The sparse cross-entropy is the
one exception: its ``y_true`` holds a class label per example.

Probabilities are never passed to ``log`` as they come. A loss that takes
probabilities clips them to ``[epsilon, 1 - epsilon]`` once (nothing is added
on top), so predictions of exactly 0 or 1 give finite losses and finite
gradients. ``log(1 - p)`` is computed as ``log1p(-p)`` with ``p`` also capped
at the largest number below 1 of its dtype: ``1 - 1e-9`` is 1.0 in float32,
and an epsilon that small would otherwise give an infinite loss. Every epsilon
in ``(0, 0.5)`` is therefore accepted; below the dtype's resolution it simply
stops mattering. With ``from_logits=True`` the logarithms come straight from
``jax.nn.log_sigmoid`` and ``jax.nn.log_softmax``, exact for logits of any
size, and ``epsilon`` is not used.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minidl_core import Loss, ShapeError
from minidl_core._loss import is_concrete

__all__ = [
    "MAE",
    "MSE",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "KLDivergence",
    "Kl_divergence",
    "SparseCategoricalCrossentropy",
    "Sparse_Categorical_Crossentropy",
]

#: The default lower bound for probabilities, also the sparse loss's fixed one.
DEFAULT_EPSILON = 1e-7


def _check_epsilon(loss: str, epsilon: Any) -> float:
    rule = f"{loss}: epsilon must be a float in (0, 0.5), got {epsilon!r}"
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise TypeError(rule)
    if not 0.0 < float(epsilon) < 0.5:
        raise ValueError(rule)
    return float(epsilon)


def _check_from_logits(loss: str, from_logits: Any) -> bool:
    if not isinstance(from_logits, bool):
        raise TypeError(
            f"{loss}: from_logits must be True or False, got {from_logits!r}"
        )
    return from_logits


def _as_predictions(y_pred: Any) -> jax.Array:
    """``y_pred`` as a floating array; integers become float32."""
    array = jnp.asarray(y_pred)
    if jnp.issubdtype(array.dtype, jnp.floating):
        return array
    return jnp.asarray(array, jnp.float32)


def _require_rank(loss: str, y_pred: jax.Array, rank: int, layout: str) -> None:
    if y_pred.ndim < rank:
        raise ShapeError(
            f"{loss}: y_pred must have shape {layout}, got {tuple(y_pred.shape)}"
        )


def _mean_over_features(values: jax.Array) -> jax.Array:
    """Average every axis after the batch axis, leaving shape ``(batch,)``."""
    if values.ndim <= 1:
        return values
    return jnp.mean(values, axis=tuple(range(1, values.ndim)))


def _probability_bounds(epsilon: float, dtype: Any) -> tuple[float, float]:
    """Clip limits for probabilities of ``dtype`` that keep both logs finite.

    The upper limit never reaches 1.0 once rounded to ``dtype`` (``1 - 1e-9``
    would), and the lower limit never goes below the smallest normal number,
    which hardware that flushes subnormals would turn into 0.
    """
    info = jnp.finfo(dtype)
    low = max(epsilon, float(info.tiny))
    high = min(1.0 - epsilon, 1.0 - float(info.epsneg))
    return low, high


class _PairwiseLoss(Loss):
    """A loss whose ``y_true`` and ``y_pred`` have the same shape."""

    def _prepare(self, y_true: Any, y_pred: Any) -> tuple[jax.Array, jax.Array]:
        """Check the shapes, then cast ``y_true`` to ``y_pred``'s float dtype."""
        self.check_shapes(y_true, y_pred)
        y_pred = _as_predictions(y_pred)
        _require_rank(self.name, y_pred, 1, "(batch, ...)")
        return jnp.asarray(y_true).astype(y_pred.dtype), y_pred


class MSE(_PairwiseLoss):
    """Subclass of Loss representing the Mean Squared Error loss function.

    The loss of an example is the mean of ``(y_true - y_pred) ** 2`` over its
    features.

    Example:
        >>> float(MSE()([[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [0.0, 4.0]]))
        3.25
    """

    def per_sample(self, y_true: Any, y_pred: Any) -> jax.Array:
        """Calculates the Mean Squared Error of each example.

        Args:
            y_true: Targets, shape ``(batch, ...)``; cast to ``y_pred``'s dtype.
            y_pred: Predictions, the same shape.

        Returns:
            Shape ``(batch,)``.

        Raises:
            ShapeError: The shapes differ.
        """
        y_true, y_pred = self._prepare(y_true, y_pred)
        return _mean_over_features(jnp.square(y_true - y_pred))


class MAE(_PairwiseLoss):
    """Subclass of Loss representing the Mean Absolute Error loss function.

    The loss of an example is the mean of ``|y_true - y_pred|`` over its
    features.

    Example:
        >>> float(MAE()([[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [0.0, 4.0]]))
        1.25
    """

    def per_sample(self, y_true: Any, y_pred: Any) -> jax.Array:
        """Calculates the Mean Absolute Error of each example.

        Args:
            y_true: Targets, shape ``(batch, ...)``; cast to ``y_pred``'s dtype.
            y_pred: Predictions, the same shape.

        Returns:
            Shape ``(batch,)``.

        Raises:
            ShapeError: The shapes differ.
        """
        y_true, y_pred = self._prepare(y_true, y_pred)
        return _mean_over_features(jnp.abs(y_true - y_pred))


class Kl_divergence(_PairwiseLoss):
    """Subclass of Loss representing the Kullback-Leibler divergence loss function.

    The loss of an example is ``sum(y_true * (log(y_true) - log(y_pred)))``
    over the class axis, with ``0 * log(0)`` taken as 0 so that classes the
    target gives no mass cost nothing (and their gradients stay finite). Also
    available as ``KLDivergence``.

    Args:
        epsilon: Lower bound ``y_pred`` is clipped to before its logarithm, so
            a predicted 0 costs ``-log(epsilon)`` rather than infinity. A float
            in ``(0, 0.5)``; default ``1e-7``.

    Raises:
        ValueError: ``epsilon`` is not in ``(0, 0.5)``.
        TypeError: ``epsilon`` is not a number.
    """

    def __init__(self, epsilon: float = DEFAULT_EPSILON) -> None:
        super().__init__()
        self.epsilon = _check_epsilon(type(self).__name__, epsilon)

    def per_sample(self, y_true: Any, y_pred: Any) -> jax.Array:
        """Calculates the KL divergence of each example.

        Args:
            y_true: Target distributions, shape ``(batch, ..., classes)``,
                non-negative; cast to ``y_pred``'s dtype.
            y_pred: Predicted probabilities, the same shape.

        Returns:
            Shape ``(batch,)``; axes between batch and classes are averaged.

        Raises:
            ShapeError: The shapes differ or there is no class axis.
        """
        y_true, y_pred = self._prepare(y_true, y_pred)
        _require_rank(self.name, y_pred, 2, "(batch, ..., classes)")

        low, _ = _probability_bounds(self.epsilon, y_pred.dtype)
        log_pred = jnp.log(jnp.maximum(y_pred, low))
        # 0 * log(0) counts as 0. Taking the log of 1 instead of 0 keeps the
        # gradient with respect to y_true finite as well.
        safe_true = jnp.where(y_true == 0, jnp.ones_like(y_true), y_true)
        terms = y_true * (jnp.log(safe_true) - log_pred)
        return _mean_over_features(jnp.sum(terms, axis=-1))


KLDivergence = Kl_divergence


class BinaryCrossentropy(_PairwiseLoss):
    """Subclass of Loss representing the Binary Crossentropy loss function for
    binary classification.

    The loss of an example is the mean over its outputs of
    ``-(y_true * log(p) + (1 - y_true) * log(1 - p))``.

    Args:
        epsilon: With probabilities, ``y_pred`` is clipped to
            ``[epsilon, 1 - epsilon]`` before the logarithms, and never to
            more than the largest number below 1 of its dtype, so a confident
            wrong answer costs about ``-log(epsilon)`` rather than infinity. A
            float in ``(0, 0.5)``; default ``1e-7``. Unused with logits.
        from_logits: Whether ``y_pred`` holds logits rather than probabilities
            in ``[0, 1]``; logits are handled exactly at any size.

    Raises:
        ValueError: ``epsilon`` is not in ``(0, 0.5)``.
        TypeError: ``epsilon`` is not a number or ``from_logits`` not a bool.
    """

    def __init__(
        self, epsilon: float = DEFAULT_EPSILON, from_logits: bool = False
    ) -> None:
        super().__init__()
        self.epsilon = _check_epsilon(type(self).__name__, epsilon)
        self.from_logits = _check_from_logits(type(self).__name__, from_logits)

    def per_sample(self, y_true: Any, y_pred: Any) -> jax.Array:
        """Calculates the Binary Crossentropy of each example.

        Args:
            y_true: Targets in ``[0, 1]`` (0/1 labels or soft labels), shape
                ``(batch, ...)``; not checked, cast to ``y_pred``'s dtype.
            y_pred: Probabilities of the positive class, or logits, the same
                shape.

        Returns:
            Shape ``(batch,)``.

        Raises:
            ShapeError: The shapes differ.
        """
        y_true, y_pred = self._prepare(y_true, y_pred)

        if self.from_logits:
            log_p = jax.nn.log_sigmoid(y_pred)
            log_not_p = jax.nn.log_sigmoid(-y_pred)
        else:
            low, high = _probability_bounds(self.epsilon, y_pred.dtype)
            probs = jnp.clip(y_pred, low, high)
            log_p = jnp.log(probs)
            log_not_p = jnp.log1p(-probs)

        losses = -(y_true * log_p + (1 - y_true) * log_not_p)
        return _mean_over_features(losses)


class CategoricalCrossentropy(_PairwiseLoss):
    """Subclass of Loss representing the Categorical Crossentropy loss function
    for multi-class classification.

    The loss of an example is ``-sum(y_true * log(p))`` over the class axis.
    Probabilities are used as given, not renormalized.

    Args:
        epsilon: With probabilities, the lower bound ``y_pred`` is clipped to
            before its logarithm, so a predicted 0 costs ``-log(epsilon)``
            rather than infinity, even for a row of zeros. A float in
            ``(0, 0.5)``; default ``1e-7``. Unused with logits.
        from_logits: Whether ``y_pred`` holds logits rather than probabilities
            (e.g. a Softmax output); logits go through ``log_softmax``.

    Raises:
        ValueError: ``epsilon`` is not in ``(0, 0.5)``.
        TypeError: ``epsilon`` is not a number or ``from_logits`` not a bool.
    """

    def __init__(
        self, epsilon: float = DEFAULT_EPSILON, from_logits: bool = False
    ) -> None:
        super().__init__()
        self.epsilon = _check_epsilon(type(self).__name__, epsilon)
        self.from_logits = _check_from_logits(type(self).__name__, from_logits)

    def per_sample(self, y_true: Any, y_pred: Any) -> jax.Array:
        """Calculates the Categorical Crossentropy of each example.

        Args:
            y_true: One-hot or soft targets, shape ``(batch, ..., classes)``;
                cast to ``y_pred``'s dtype.
            y_pred: Probabilities or logits, the same shape.

        Returns:
            Shape ``(batch,)``; axes between batch and classes are averaged.

        Raises:
            ShapeError: The shapes differ or there is no class axis.
        """
        y_true, y_pred = self._prepare(y_true, y_pred)
        _require_rank(self.name, y_pred, 2, "(batch, ..., classes)")

        if self.from_logits:
            log_probs = jax.nn.log_softmax(y_pred, axis=-1)
        else:
            low, _ = _probability_bounds(self.epsilon, y_pred.dtype)
            log_probs = jnp.log(jnp.maximum(y_pred, low))
        return _mean_over_features(-jnp.sum(y_true * log_probs, axis=-1))


class Sparse_Categorical_Crossentropy(Loss):
    """Subclass of Loss representing the Sparse Categorical Crossentropy loss
    function for multi-class classification with integer labels.

    The loss of an example is ``-log(p[label])``. Also available as
    ``SparseCategoricalCrossentropy``.

    Labels may be a list, an array of shape ``(batch,)`` or ``(batch, 1)``,
    integers or floats holding whole numbers; all give the same loss. Called
    eagerly, a fractional label or one outside ``[0, classes)`` is a
    ``ValueError``. Under ``jax.jit`` the values cannot be inspected, so such a
    label makes its example's loss NaN instead of a plausible number.

    Probabilities are clipped below at ``1e-7`` before the logarithm; there is
    no ``epsilon`` argument.

    Args:
        from_logits: Whether ``y_pred`` holds logits rather than probabilities;
            logits go through ``log_softmax``.

    Raises:
        TypeError: ``from_logits`` is not a bool.
    """

    def __init__(self, from_logits: bool = False) -> None:
        super().__init__()
        self.from_logits = _check_from_logits(type(self).__name__, from_logits)

    def per_sample(self, y_true: Any, y_pred: Any) -> jax.Array:
        """Calculates the Sparse Categorical Crossentropy of each example.

        Args:
            y_true: Class labels, shape ``(batch, ...)`` or ``(batch, ..., 1)``
                where ``y_pred`` is ``(batch, ..., classes)``.
            y_pred: Probabilities or logits, shape ``(batch, ..., classes)``.

        Returns:
            Shape ``(batch,)``; axes between batch and classes are averaged.

        Raises:
            ShapeError: The shapes do not fit together.
            ValueError: A label is fractional or outside ``[0, classes)``
                (eager calls only).
            TypeError: The labels are not numbers.
        """
        y_pred = _as_predictions(y_pred)
        _require_rank(self.name, y_pred, 2, "(batch, ..., classes)")
        labels = jnp.asarray(y_true)
        self._check_label_shape(labels.shape, y_pred.shape)
        classes = y_pred.shape[-1]
        if is_concrete(labels):
            self._check_label_values(np.asarray(y_true), classes)

        # Labels as one integer per example; bad ones are marked, not checked.
        if labels.shape != y_pred.shape[:-1]:
            labels = labels[..., 0]
        if labels.dtype == jnp.bool_:
            labels = labels.astype(jnp.int32)
        valid = (labels >= 0) & (labels < classes)
        if jnp.issubdtype(labels.dtype, jnp.floating):
            valid &= labels == jnp.floor(labels)
        index = jnp.where(valid, labels, 0).astype(jnp.int32)

        if self.from_logits:
            log_probs = jax.nn.log_softmax(y_pred, axis=-1)
        else:
            low, _ = _probability_bounds(DEFAULT_EPSILON, y_pred.dtype)
            log_probs = jnp.log(jnp.maximum(y_pred, low))
        picked = jnp.take_along_axis(log_probs, index[..., None], axis=-1)[..., 0]
        losses = jnp.where(valid, -picked, jnp.nan)
        return _mean_over_features(losses)

    def _check_label_shape(
        self, label_shape: tuple[int, ...], pred_shape: tuple[int, ...]
    ) -> None:
        allowed = (pred_shape[:-1], (*pred_shape[:-1], 1))
        if label_shape not in allowed:
            raise ShapeError(
                f"{self.name}: y_true has shape {tuple(label_shape)} but y_pred "
                f"has shape {tuple(pred_shape)}; y_true must hold one class "
                f"label per example, shape {allowed[0]} or {allowed[1]}"
            )

    def check_target_values(
        self, y_true: np.ndarray, y_pred_shape: tuple[int, ...]
    ) -> None:
        """Refuse fractional labels and labels outside ``[0, classes)``."""
        self._check_label_values(np.asarray(y_true), y_pred_shape[-1])

    def _check_label_values(self, labels: np.ndarray, classes: int) -> None:
        if labels.dtype.kind not in "biuf":
            raise TypeError(
                f"{self.name}: y_true must hold integer class labels, got dtype "
                f"{labels.dtype}"
            )
        if labels.dtype.kind == "f":
            whole = np.isfinite(labels) & (labels == np.round(labels))
            if not whole.all():
                raise ValueError(
                    f"{self.name}: y_true must hold whole-number class labels, "
                    f"got {labels[~whole][0].item()!r}"
                )
        outside = (labels < 0) | (labels >= classes)
        if outside.any():
            raise ValueError(
                f"{self.name}: label {labels[outside][0].item()!r} is out of "
                f"range for {classes} classes; labels must be in [0, {classes})"
            )


SparseCategoricalCrossentropy = Sparse_Categorical_Crossentropy
