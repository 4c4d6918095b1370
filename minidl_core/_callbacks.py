"""Training history and callbacks."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from minidl_core._model import Model

__all__ = ["Callback", "EarlyStopping", "History", "LambdaCallback"]

logger = logging.getLogger("minidl")


@dataclass
class History:
    """Per-epoch loss and metrics of one :func:`~minidl_core.fit` call.

    Attributes:
        history: Metric name -> one value per completed epoch, e.g.
            ``{"loss": [...], "accuracy": [...], "val_loss": [...]}``.
        epochs: The epoch numbers completed (0-based).
        stopped_early: Whether a callback stopped training.
        stop_reason: Why training stopped before its last epoch, if it did.
        diverged: Whether it stopped because the loss became NaN or inf.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    epochs: list[int] = field(default_factory=list)
    stopped_early: bool = False
    stop_reason: str = ""
    diverged: bool = False

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record one epoch's logs."""
        self.epochs.append(epoch)
        for name, value in logs.items():
            self.history.setdefault(name, []).append(float(value))

    def __getitem__(self, name: str) -> list[float]:
        return self.history[name]

    def last(self) -> dict[str, float]:
        """The final epoch's logs."""
        return {name: values[-1] for name, values in self.history.items() if values}


class Callback:
    """Base class of training callbacks; override the hooks you need.

    ``model`` is set before training starts. Set ``model.stop_training =
    True`` from a hook to end training after the current epoch. Assigning
    ``model.params`` or ``model.opt_state`` from ``on_epoch_end`` or
    ``on_epoch_begin`` makes the next epoch start from what was assigned
    (same structure, same trainable layers).
    """

    model: Model

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        """Called once before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Called before each epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Called after each epoch with that epoch's loss and metrics."""

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        """Called once after training, however it ended."""


class LambdaCallback(Callback):
    """A callback from plain functions, for a quick per-epoch hook.

    Args:
        on_epoch_end: Called as ``on_epoch_end(epoch, logs)``.
        on_train_begin: Called as ``on_train_begin(logs)``.
        on_train_end: Called as ``on_train_end(logs)``.
    """

    def __init__(
        self,
        on_epoch_end: Callable[[int, dict[str, float]], Any] | None = None,
        on_train_begin: Callable[[dict[str, float] | None], Any] | None = None,
        on_train_end: Callable[[dict[str, float] | None], Any] | None = None,
    ) -> None:
        self._epoch_end = on_epoch_end
        self._train_begin = on_train_begin
        self._train_end = on_train_end

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self._epoch_end is not None:
            self._epoch_end(epoch, logs)

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        if self._train_begin is not None:
            self._train_begin(logs)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self._train_end is not None:
            self._train_end(logs)


class EarlyStopping(Callback):
    """Stop when a monitored value has stopped improving.

    Args:
        monitor: The log to watch, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        patience: Epochs in a row without improvement after which training
            stops, as in Keras; 0 stops at the first, like 1.
        min_delta: The least change that counts as an improvement.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for names containing
            ``accuracy``, else min).
        restore_best_weights: Put back the parameters of the best epoch when
            training ends.

    Raises:
        ValueError: ``patience`` is negative or ``mode`` is unknown.
        KeyError: At the first epoch end, if ``monitor`` is not in the logs;
            the message lists the logs there are.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(
                f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}"
            )
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(min_delta)
        self.mode = mode
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.best_params: Any = None
        self.wait = 0

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.best_params, self.wait = -1, None, 0

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping: monitor {self.monitor!r} is not among the "
                f"logs {sorted(logs)}; pass validation data for 'val_' logs"
            )
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                # A copy, so nothing a later epoch or callback does reaches it.
                self.best_params = jax.tree.map(jnp.copy, self.model.params)
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.model.stop_training = True
            self.model.stop_reason = (
                f"{self.monitor} did not improve for {self.wait} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch + 1})"
            )

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.restore_best_weights and self.best_params is not None:
            logger.info(
                "EarlyStopping: restoring the parameters of epoch %d",
                self.best_epoch + 1,
            )
            self.model.params = self.best_params
