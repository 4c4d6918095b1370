"""Datasets and reading a user's own data files."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Dataset", "load_table", "split_train_test"]


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


def load_table(path: str | Path, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Read features and targets from a CSV or NPZ file.

    A CSV has a header row; ``target`` names the target column and every
    other column is a feature. An NPZ holds arrays ``x`` and ``y`` (or the
    arrays named by ``target`` as ``"x_name,y_name"``); it is read with
    pickling off.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The target column is missing, a cell is not a number, or
            the file is neither CSV nor NPZ; the message names the row and
            column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, target)
    if suffix in (".csv", ".txt"):
        return _load_csv(path, target)
    raise ValueError(
        f"data file {str(path)!r}: expected a .csv or .npz file, got "
        f"{suffix or 'no extension'!r}"
    )


def _load_npz(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    names = ("x", "y") if not target else tuple(target.split(","))
    if len(names) != 2:
        raise ValueError(
            f"--target for an NPZ file names two arrays as 'x_name,y_name', "
            f"got {target!r}"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [n for n in names if n not in archive.files]
            if missing:
                raise ValueError(
                    f"data file {str(path)!r}: no array named "
                    f"{', '.join(map(repr, missing))}; it holds "
                    f"{', '.join(archive.files) or 'nothing'}"
                )
            return archive[names[0]], archive[names[1]]
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(
            f"data file {str(path)!r} is not a readable NPZ archive: {error}"
        ) from None


def _load_csv(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"data file {str(path)!r} is empty")
    header = [cell.strip() for cell in rows[0]]
    if target is None:
        raise ValueError(
            f"data file {str(path)!r}: name the target column with --target; "
            f"the columns are {', '.join(header)}"
        )
    if target not in header:
        raise ValueError(
            f"data file {str(path)!r}: no column named {target!r}; the columns "
            f"are {', '.join(header)}"
        )
    if len(rows) < 2:
        raise ValueError(f"data file {str(path)!r} has a header but no data rows")
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(
                f"data file {str(path)!r}, line {r}: {len(row)} cells, expected "
                f"{len(header)} like the header"
            )
        for c, cell in enumerate(row):
            try:
                values[r - 2, c] = float(cell)
            except ValueError:
                raise ValueError(
                    f"data file {str(path)!r}, line {r}, column "
                    f"{header[c]!r}: {cell!r} is not a number"
                ) from None
    column = header.index(target)
    y = values[:, column]
    x = np.delete(values, column, axis=1).astype(np.float32)
    if np.all(y == np.round(y)):
        return x, y.astype(np.int32)
    return x, y.astype(np.float32)
