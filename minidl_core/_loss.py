"""The base class every loss derives from."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minidl_core._config import Configurable
from minidl_core._errors import ShapeError

__all__ = ["Loss", "is_concrete"]


def is_concrete(x: Any) -> bool:
    """Whether ``x`` holds values now (not a tracer inside ``jit``)."""
    return not isinstance(x, jax.core.Tracer)


class Loss(Configurable):
    """Base class for defining various loss functions used in training.

    A subclass implements :meth:`__call__`, or, better, :meth:`per_sample`,
    which returns one value per example; ``__call__`` then averages it.
    Shapes are checked before anything is computed: ``y_true`` and
    ``y_pred`` must have the same shape unless the loss documents otherwise,
    so ``(N,)`` against ``(N, 1)`` is an error, never an ``(N, N)``
    broadcast.
    """

    def __init__(self) -> None:
        pass

    @property
    def name(self) -> str:
        """The class name, which is also its registry name."""
        return type(self).__name__

    def __call__(self, y_true: Any, y_pred: Any) -> jax.Array:
        """The mean loss over the batch, a float scalar.

        Args:
            y_true: Targets, shape ``(batch, ...)``.
            y_pred: Predictions, shape ``(batch, ...)``.

        Returns:
            A scalar array.
        """
        return jnp.mean(self.per_sample(y_true, y_pred))

    def per_sample(self, y_true: Any, y_pred: Any) -> jax.Array:
        """The loss of each example, shape ``(batch,)``."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement per_sample(y_true, y_pred) "
            "or __call__(y_true, y_pred)"
        )

    def check_target_values(
        self, y_true: np.ndarray, y_pred_shape: tuple[int, ...]
    ) -> None:
        """Raise ``ValueError`` for target values this loss cannot take.

        ``fit`` and ``evaluate`` call it on the host, with the whole target
        array, before compiling anything; the shapes have already been
        checked by tracing the loss. Checks of values written inside
        :meth:`per_sample` cannot run there, because the loss is traced, not
        run. The default accepts any value.

        Args:
            y_true: The targets as a numpy array.
            y_pred_shape: The shape the model's predictions will have.
        """

    def check_shapes(self, y_true: Any, y_pred: Any) -> None:
        """Raise :class:`ShapeError` unless the shapes match exactly."""
        true_shape, pred_shape = tuple(np.shape(y_true)), tuple(np.shape(y_pred))
        if true_shape == pred_shape:
            return
        hint = "targets are never broadcast against predictions"
        if true_shape == pred_shape[:1] and len(pred_shape) == 2:
            hint = (
                "for class indices use sparse_categorical_crossentropy"
                if pred_shape[1] > 1
                else "reshape y to (N, 1)"
            )
        raise ShapeError(
            f"{self.name}: y_true has shape {true_shape} but y_pred has shape "
            f"{pred_shape}; they must be equal ({hint})"
        )

    def __repr__(self) -> str:
        config = self.get_config()
        shown = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{self.name}({shown})"
