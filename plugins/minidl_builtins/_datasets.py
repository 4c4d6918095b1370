"""The built-in dataset: UCI optical recognition of handwritten digits."""

from __future__ import annotations

from importlib import resources

import numpy as np

from minidl_core import Dataset
from minidl_core._data import split_train_test

__all__ = ["DIGITS_CITATION", "load_digits"]

DIGITS_CITATION = (
    "Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten "
    "Digits [Dataset]. UCI Machine Learning Repository. "
    "https://doi.org/10.24432/C50P49"
)


def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The 1,797 8x8 handwritten digits, shipped with minidl.

    Features are the 64 pixels scaled from 0..16 to 0..1, as float32 rows of
    shape ``(64,)``; labels are int32 classes 0..9. The split is fixed by
    ``seed``: with the defaults, 1,438 training and 359 test images.

    Args:
        test_fraction: The share of images held out for testing.
        seed: Fixes which images are held out.

    Returns:
        A :class:`~minidl_core.Dataset` with ``num_classes=10``.
    """
    path = resources.files("minidl_builtins") / "data" / "digits.npz"
    with resources.as_file(path) as file, np.load(file, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    x = images.reshape(len(images), -1).astype(np.float32) / 16.0
    y = labels.astype(np.int32)
    x_train, y_train, x_test, y_test = split_train_test(
        x, y, test_fraction=test_fraction, seed=seed
    )
    return Dataset(
        name="digits",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=10,
        description="UCI handwritten digits: 1,797 8x8 images, 10 classes",
        citation=DIGITS_CITATION,
        license="CC BY 4.0",
    )
