"""Datasets and reading a user's own data files."""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TASKS",
    "Dataset",
    "infer_task",
    "load_features",
    "load_table",
    "split_train_test",
]

#: The values ``infer_task`` accepts for ``task``.
TASKS = ("auto", "classify", "regress")

#: ``"auto"`` classifies only when every label is below this.
MAX_AUTO_CLASSES = 256

# Values are trained on as float32; anything larger would become inf.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Dataset:
    """Arrays for training and testing, and where they came from.

    Attributes:
        name: The registry name.
        x_train: Features, shape ``(n_train, *example_shape)``.
        y_train: Targets, shape ``(n_train,)`` for class labels.
        x_test: Features held out for the final score.
        y_test: Targets held out for the final score.
        num_classes: For classification, the number of classes; else
            ``None``.
        description: One line for listings.
        citation: How to cite the data.
        license: The data's licence.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None = None
    description: str = ""
    citation: str = ""
    license: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def split_train_test(
    x: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with ``seed`` and hold out ``test_fraction`` of the rows."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"test_fraction must be between 0 and 1, got {test_fraction!r}"
        )
    n = len(x)
    n_test = max(1, math.floor(n * test_fraction))
    if n - n_test < 1:
        raise ValueError(f"cannot split {n} rows into a train and a test part")
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def infer_task(y: Any, task: str = "auto") -> tuple[np.ndarray, int | None]:
    """Decide whether targets are class labels or values to regress.

    With ``task="auto"``, targets are class labels when there is one per
    example and every one is a whole number from 0 up to 255 (an integer or
    bool dtype, or floats such as ``3.0``); anything else is regressed. The
    rule is the same whatever file the targets came from.

    Args:
        y: Targets, shape ``(examples,)`` or ``(examples, outputs)``.
        task: ``"auto"``, ``"classify"`` or ``"regress"``.

    Returns:
        ``(targets, num_classes)``: for classification, int32 labels of shape
        ``(examples,)`` and the number of classes (at least 2); for
        regression, float32 targets of shape ``(examples, outputs)`` and
        ``None``.

    Raises:
        TypeError: ``y`` is not numeric.
        ValueError: ``task`` is unknown, ``y`` is a single value, or
            ``task="classify"`` with targets that are not class labels; the
            message names the first row that is not.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"y must hold numbers, got dtype {y.dtype}")
    if y.ndim == 0:
        raise ValueError(f"y must hold one target per example, got the scalar {y}")
    labels = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    problem = _not_labels(labels)
    if task == "classify" and problem:
        raise ValueError(f"task 'classify' needs class labels, but {problem}")

    top = int(labels.max()) if problem is None and labels.size else 0
    if task == "classify" or (
        task == "auto" and not problem and top < MAX_AUTO_CLASSES
    ):
        return labels.astype(np.int32), max(top + 1, 2)
    targets = y.astype(np.float32)
    return (targets.reshape(-1, 1) if targets.ndim == 1 else targets), None


def _not_labels(y: np.ndarray) -> str | None:
    """Why ``y`` is not class labels, or ``None`` if it is."""
    if y.ndim != 1:
        return f"the targets have shape {y.shape}, not one label per example"
    if y.dtype == bool or y.size == 0:
        return None
    whole = np.isfinite(y) & (y == np.round(y)) & (y >= 0) & (y < 2**31 - 1)
    if np.all(whole):
        return None
    row = int(np.argmin(whole))
    return f"row {row + 1} holds {y[row]:g}, not a whole number from 0 up"


def load_table(path: str | Path, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Read features and targets from a CSV or NPZ file.

    A CSV has a header row; ``target`` names the target column and every
    other column is a feature. An NPZ holds arrays ``x`` and ``y`` (or the
    arrays named by ``target`` as ``"x_name,y_name"``); it is read with
    pickling off. Pass the targets to :func:`infer_task` to make them class
    labels or regression values.

    Returns:
        ``(x, y)``: float32 features of shape ``(examples, *features)`` and
        the targets as stored (a CSV's as float64), one row per example.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a folder.
        ValueError: The file is neither CSV nor NPZ, is not UTF-8, has a
            cell that is not a finite float32 number, a repeated column, no
            feature column, no target column, or arrays that are not numeric
            or whose rows differ in number; the message names the line and
            column or the array.
    """
    path = _existing_file(path)
    where = f"data file {str(path)!r}"
    if path.suffix.lower() == ".npz":
        names = ("x", "y") if not target else tuple(target.split(","))
        if len(names) != 2:
            raise ValueError(
                f"--target for an NPZ file names two arrays as 'x_name,y_name', "
                f"got {target!r}"
            )
        x, y = _read_npz(path, names)
        if len(x) != len(y):
            raise ValueError(
                f"{where}: array {names[0]!r} has {len(x)} rows but "
                f"{names[1]!r} has {len(y)}; each example needs one target"
            )
        return _as_features(x, names[0], where), y

    header, values = _read_csv(path)
    if target is None:
        raise ValueError(
            f"{where}: name the target column with --target; the columns are "
            f"{', '.join(header)}"
        )
    column = _column_index(header, target, where)
    if len(header) == 1:
        raise ValueError(
            f"{where} has no feature columns: its only column is the target {target!r}"
        )
    if not len(values):
        raise ValueError(f"{where} has a header but no data rows")
    return np.delete(values, column, axis=1).astype(np.float32), values[:, column]


def load_features(path: str | Path, target: str | None = None) -> np.ndarray:
    """Read the features to predict on from a CSV or NPZ file.

    A CSV's columns are all features except ``target``, if given. From an
    NPZ, the array named ``target`` is read (default ``x``); of
    ``"x_name,y_name"`` the first.

    Returns:
        float32 features of shape ``(examples, *features)``.

    Raises:
        FileNotFoundError, IsADirectoryError, ValueError: As for
            :func:`load_table`.
    """
    path = _existing_file(path)
    where = f"data file {str(path)!r}"
    if path.suffix.lower() == ".npz":
        name = (target or "x").split(",")[0]
        return _as_features(_read_npz(path, [name])[0], name, where)
    hint = "" if target else "; pass --target COLUMN to leave out a target column"
    header, values = _read_csv(path, hint)
    if target is not None:
        values = np.delete(values, _column_index(header, target, where), axis=1)
    if not len(values):
        raise ValueError(f"{where} has a header but no data rows")
    return values.astype(np.float32)


def _existing_file(path: str | Path) -> Path:
    if not str(path).strip():
        raise ValueError("data file: the path is an empty string")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"data file {str(path)!r} is a folder, expected a .csv or .npz file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    if path.suffix.lower() not in (".npz", ".csv", ".txt"):
        raise ValueError(
            f"data file {str(path)!r}: expected a .csv or .npz file, got "
            f"{path.suffix or 'no extension'!r}"
        )
    return path


def _column_index(header: list[str], target: str, where: str) -> int:
    if target not in header:
        raise ValueError(
            f"{where}: no column named {target!r}; the columns are " + ", ".join(header)
        )
    return header.index(target)


def _as_features(x: np.ndarray, name: str, where: str) -> np.ndarray:
    if x.ndim < 2:
        raise ValueError(
            f"{where}: array {name!r} has shape {x.shape}; features need the "
            "shape (examples, features...)"
        )
    return x.astype(np.float32)


# Reading the two formats.


def _read_csv(path: Path, hint: str = "") -> tuple[list[str], np.ndarray]:
    """The stripped header and every data row as float64, checked cell by cell.

    Rows that are blank are skipped; messages give the line in the file.
    """
    where = f"data file {str(path)!r}"
    raw = path.read_bytes()
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet programs write.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{where}, line {line}: byte {raw[error.start]:#04x} is not UTF-8 "
            f"({error.reason}); save the file as UTF-8"
        ) from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except csv.Error as error:
        raise ValueError(f"{where} is not a readable CSV file: {error}") from None
    if not rows:
        raise ValueError(f"{where} is empty")

    header = [cell.strip() for cell in rows[0][1]]
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        raise ValueError(
            f"{where}: the header names column {repeated[0]!r} more than once; "
            "column names must be unique"
        )

    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for index, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise ValueError(
                f"{where}, line {line}: {len(row)} cells, expected "
                f"{len(header)} like the header"
            )
        for column, cell in enumerate(row):
            try:
                value = float(cell)
            except ValueError:
                raise ValueError(
                    f"{where}, line {line}, column {header[column]!r}: {cell!r} "
                    f"is not a number{hint}"
                ) from None
            if not abs(value) <= _FLOAT32_MAX:  # false for nan too
                raise ValueError(
                    f"{where}, line {line}, column {header[column]!r}: "
                    f"{cell.strip()!r} is not a finite number within float32's "
                    "range (about 3.4e38)"
                )
            values[index, column] = value
    return header, values


def _read_npz(path: Path, names: Sequence[str]) -> list[np.ndarray]:
    """The arrays ``names`` of an NPZ archive, each numeric, finite, not 0-d."""
    where = f"data file {str(path)!r}"
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{where} is not an NPZ archive (a zip of .npy files, as "
            "numpy.savez writes)"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # a damaged archive fails in many ways
        raise ValueError(f"{where} is not a readable NPZ archive: {error}") from None
    with archive:
        missing = [name for name in names if name not in archive.files]
        if missing:
            raise ValueError(
                f"{where}: no array named {', '.join(map(repr, missing))}; it "
                f"holds {', '.join(archive.files) or 'nothing'}"
            )
        return [_read_array(archive, name, where) for name in names]


def _read_array(archive: Any, name: str, where: str) -> np.ndarray:
    try:
        array = np.asarray(archive[name])
    except Exception as error:
        # numpy refuses object arrays with pickling off; say so plainly.
        if "allow_pickle" in str(error):
            raise ValueError(
                f"{where}: array {name!r} holds Python objects; only numeric "
                "arrays are read"
            ) from None
        raise ValueError(f"{where}: array {name!r} cannot be read: {error}") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"{where}: array {name!r} has dtype {array.dtype}; only numeric "
            "arrays are read"
        )
    if array.ndim == 0:
        raise ValueError(
            f"{where}: array {name!r} is a single value (shape ()); it needs "
            "one row per example"
        )
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (np.abs(array) > _FLOAT32_MAX)
        if np.any(bad):
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{where}: array {name!r} holds {array[index]} at index {index}; "
                "every value must be finite and within float32's range"
            )
    return array
