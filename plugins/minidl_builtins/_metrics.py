"""The built-in metrics. Every loss is a metric too, through the registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["accuracy"]


def accuracy(y_true: jax.Array, y_pred: jax.Array) -> jax.Array:
    """The fraction of examples classified right, a scalar.

    ``accuracy.per_sample`` gives 1.0 or 0.0 per example instead, which lets
    ``fit`` weight the rows of a padded batch.

    Reads the targets the way the losses do:

    - ``y_pred`` of shape ``(N, C)`` with ``C > 1``: the predicted class is the
      arg-max; ``y_true`` holds class indices, ``(N,)`` or ``(N, 1)``, or
      one-hot rows ``(N, C)``.
    - ``y_pred`` of shape ``(N,)`` or ``(N, 1)``: a probability of the positive
      class, thresholded at 0.5 against ``y_true`` in {0, 1} of the same shape.

    Raises:
        ValueError: The shapes fit none of these.
    """
    return jnp.mean(_correct(y_true, y_pred))


def _correct(y_true: jax.Array, y_pred: jax.Array) -> jax.Array:
    """1.0 for each example classified right, else 0.0; shape ``(batch,)``."""
    y_true = jnp.asarray(y_true)
    if y_pred.ndim == 2 and y_pred.shape[-1] > 1:
        predicted = jnp.argmax(y_pred, axis=-1)
        if y_true.shape == y_pred.shape:
            labels = jnp.argmax(y_true, axis=-1)
        elif y_true.shape in ((y_pred.shape[0],), (y_pred.shape[0], 1)):
            labels = y_true.reshape(-1)
        else:
            raise ValueError(
                f"accuracy: y_true of shape {y_true.shape} fits neither class "
                f"indices (N,) nor one-hot rows {y_pred.shape} for y_pred of "
                f"shape {y_pred.shape}"
            )
        return (predicted == labels.astype(predicted.dtype)).astype(jnp.float32)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"accuracy: y_true has shape {y_true.shape} but y_pred has shape "
            f"{y_pred.shape}; for binary accuracy they must match"
        )
    predicted = (y_pred > 0.5).astype(jnp.float32)
    correct = (predicted == y_true.astype(jnp.float32)).astype(jnp.float32)
    return correct.reshape(len(correct), -1).mean(axis=1)


accuracy.per_sample = _correct  # type: ignore[attr-defined]
