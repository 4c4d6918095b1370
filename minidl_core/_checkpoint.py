"""Checkpoints: saving during training, and reading back to resume.

A checkpoint is an ordinary model file (see :func:`minidl_core.save_model`)
that also holds the optimizer state, the number of epochs completed and the
``fit`` seed. Epoch ``k``'s shuffling and Dropout keys are derived from the
seed and ``k`` alone, so ``fit(..., resume_from=path)`` continues a run
killed at any moment to exactly the weights an uninterrupted run reaches.
"""

from __future__ import annotations

import logging
import math
import re
import string
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from minidl_core._callbacks import Callback
from minidl_core._errors import ModelFileError
from minidl_core._layer import Params
from minidl_core._model_file import _Invalid, _Reader
from minidl_core._serialization import _match_params, write_model

if TYPE_CHECKING:
    from minidl_core._model import Model

__all__ = ["Checkpoint", "ModelCheckpoint", "read_checkpoint"]

logger = logging.getLogger("minidl")


class ModelCheckpoint(Callback):
    """Save the model while it trains, so a crash costs at most a few epochs.

    Every save is a complete model file with the optimizer state, the epoch
    count and the ``fit`` seed, written atomically: a save interrupted at any
    point leaves the previous file whole. Resume with
    ``fit(..., resume_from=path)`` or ``minidl train --resume PATH``.

    Args:
        path: The file to write. It may hold ``{epoch}``, the number of epochs
            completed (from 1), and the names of logs, as in
            ``"ckpt-{epoch:03d}-{val_loss:.3f}.minidl"``; without fields each
            save replaces the last.
        every: Save after every ``every``-th epoch.
        keep_last: Keep only the newest ``keep_last`` files the pattern
            matches, deleting older ones; needs ``{epoch}`` in the file name.
            ``None`` keeps them all.
        monitor: The log that decides which epoch is best, used with
            ``save_best_only``; default ``"val_loss"`` there.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for names containing
            ``acc``, else min).
        save_best_only: Save only when ``monitor`` beats the best so far.

    Raises:
        ValueError: An option is out of range, ``path`` is not a valid
            pattern, or ``keep_last`` is set without ``{epoch}`` in the name.
        KeyError: At an epoch end, if ``monitor`` or a field of ``path`` is
            not among the logs; the message lists the logs there are.

    Example:
        >>> from minidl_core import ModelCheckpoint
        >>> checkpoint = ModelCheckpoint("ckpt-{epoch}.minidl", keep_last=2)
    """

    def __init__(
        self,
        path: str | Path,
        every: int = 1,
        keep_last: int | None = None,
        monitor: str | None = None,
        mode: str = "auto",
        save_best_only: bool = False,
    ) -> None:
        if not isinstance(path, str | Path) or not str(path):
            raise TypeError(
                f"ModelCheckpoint: path must be a str or Path, got {path!r}"
            )
        try:
            fields = _fields(str(path))
        except ValueError as error:
            raise ValueError(f"ModelCheckpoint: path {str(path)!r}: {error}") from None
        _check_positive(every, "every")
        if keep_last is not None:
            _check_positive(keep_last, "keep_last")
        if keep_last is not None and "epoch" not in _fields(Path(path).name):
            raise ValueError(
                "ModelCheckpoint: keep_last needs '{epoch}' in the file name of "
                f"path, got {str(path)!r}"
            )
        if mode not in ("auto", "min", "max"):
            raise ValueError(
                f"ModelCheckpoint: mode must be 'auto', 'min' or 'max', got {mode!r}"
            )
        if save_best_only and monitor is None:
            monitor = "val_loss"
        if mode == "auto":
            mode = "max" if monitor is not None and "acc" in monitor else "min"
        self.path = str(path)
        self.fields = fields
        self.every = every
        self.keep_last = keep_last
        self.monitor = monitor
        self.mode = mode
        self.save_best_only = save_best_only
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.saved: list[Path] = []

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.saved = -1, []
        # A resumed run keeps the best value its one checkpoint file recorded.
        if self.save_best_only and not self.fields and self.model.epoch > 0:
            with suppress(ModelFileError):
                meta = _Reader(self.path).read(arrays=False).meta
                value = ((meta["training"] or {}).get("logs") or {}).get(self.monitor)
                if isinstance(value, int | float) and math.isfinite(value):
                    self.best = float(value)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        done = epoch + 1
        if done % self.every:
            return
        if self.save_best_only:
            if self.monitor not in logs:
                raise KeyError(
                    f"ModelCheckpoint: monitor {self.monitor!r} is not among the "
                    f"logs {sorted(logs)}; pass validation data for 'val_' logs"
                )
            value = logs[self.monitor]
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best, self.best_epoch = value, epoch
        try:
            path = Path(self.path.format(epoch=done, **logs))
        except KeyError as error:
            raise KeyError(
                f"ModelCheckpoint: path {self.path!r} names {error}, which is not "
                f"among the logs {sorted(logs)}"
            ) from None
        write_model(self.model, path, epoch=done, logs=logs)
        self.saved.append(path)
        logger.info("ModelCheckpoint: saved epoch %d to %s", done, path)
        if self.keep_last is not None:
            self._prune(path.parent, done, self.keep_last)

    def _prune(self, folder: Path, done: int, keep: int) -> None:
        """Delete all but the newest ``keep_last`` files up to epoch ``done``."""
        pattern = _name_pattern(Path(self.path).name)
        found = []
        for candidate in folder.iterdir():
            match = pattern.fullmatch(candidate.name)
            # Files of a later epoch belong to some other run: leave them.
            if match and candidate.is_file() and int(match["epoch"]) <= done:
                found.append((int(match["epoch"]), candidate))
        found.sort()
        for _, old in found[:-keep]:
            with suppress(FileNotFoundError):
                old.unlink()


def _check_positive(value: Any, argument: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"ModelCheckpoint: {argument} must be a positive int, got {value!r}"
        )


def _fields(template: str) -> set[str]:
    """The names of the replacement fields in a ``str.format`` template."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def _name_pattern(template: str) -> re.Pattern[str]:
    """A regex matching the names ``template`` produces, epoch captured."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field == "epoch" and "(?P<epoch>" not in "".join(parts):
            parts.append(r"(?P<epoch>\d+)")
        elif field is not None:
            parts.append(r".+?")
    return re.compile("".join(parts))


# Reading a checkpoint back.


@dataclass(frozen=True)
class Checkpoint:
    """The training state a model file holds, read for ``fit(resume_from=)``.

    Attributes:
        path: The file.
        epoch: Epochs completed; training resumes at this epoch index.
        seed: The ``fit`` seed of the run that saved it, if recorded.
        params: The saved arrays by path, ``("dense", "w")``.
        optimizer_structure: The optimizer state's tree structure, as text.
        optimizer_leaves: The optimizer state's leaves, if saved.
    """

    path: Path
    epoch: int
    seed: int | None
    params: dict[tuple[str, ...], np.ndarray]
    optimizer_structure: str | None
    optimizer_leaves: list[np.ndarray] | None

    def params_for(self, model: Model) -> Params:
        """The saved parameters, checked against ``model``'s own.

        Raises:
            ModelFileError: A parameter is missing, extra or of another
                shape; the message names the layer.
        """
        try:
            return _match_params(model.params or {}, self.params)
        except _Invalid as error:
            raise ModelFileError(
                f"checkpoint '{self.path}' does not fit model '{model.name}': {error}"
            ) from None

    def optimizer_state_for(self, fresh: Any) -> Any:
        """The saved optimizer state, in the structure of ``fresh``.

        Args:
            fresh: What the optimizer's ``init`` returns for the parameters.

        Raises:
            ModelFileError: The saved state belongs to another optimizer or
                other parameters.
        """
        if self.optimizer_leaves is None:
            logger.warning(
                "checkpoint '%s' holds no optimizer state; the optimizer starts "
                "afresh, so results will differ from an uninterrupted run",
                self.path,
            )
            return fresh
        leaves, structure = jax.tree_util.tree_flatten(fresh)
        same = (
            str(structure) == self.optimizer_structure
            and len(leaves) == len(self.optimizer_leaves)
            and all(
                saved.shape == np.shape(leaf) and saved.dtype == np.asarray(leaf).dtype
                for saved, leaf in zip(self.optimizer_leaves, leaves, strict=True)
            )
        )
        if not same:
            raise ModelFileError(
                f"checkpoint '{self.path}': its optimizer state was made by "
                "another optimizer or for other parameters; resume with the "
                f"optimizer it was saved with (saved: {self.optimizer_structure}; "
                f"now: {structure})"
            )
        restored = [jnp.asarray(leaf) for leaf in self.optimizer_leaves]
        return jax.tree_util.tree_unflatten(structure, restored)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read the weights and training state of a model file.

    Raises:
        ModelFileError: The file is missing, damaged or not a model file, as
            for :func:`minidl_core.load_model`.
    """
    reader = _Reader(path)
    contents = reader.read()
    training = contents.meta["training"] or {}
    optimizer = training.get("optimizer") or {}
    return Checkpoint(
        reader.path,
        training.get("epoch", 0),
        training.get("seed"),
        contents.params,
        optimizer.get("structure"),
        contents.optimizer,
    )
