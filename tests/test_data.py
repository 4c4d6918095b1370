"""Reading a user's data files, telling classification from regression, specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minidl_core import SpecError, model_from_spec
from minidl_core._data import infer_task, load_features, load_table
from minidl_core._spec import load_spec

# Telling classification from regression.


@pytest.mark.parametrize(
    ("y", "classes"),
    [
        (np.array([0, 2, 1, 2], np.int64), 3),
        (np.array([0, 2, 1, 2], np.uint8), 3),
        (np.array([True, False, True]), 2),
        (np.array([0.0, 4.0, 1.0]), 5),
        (np.array([[1], [0], [3]], np.int32), 4),
        (np.array([0, 255, 7]), 256),
        (np.array([0, 0, 0]), 2),
        (np.array([0, 256, 7]), None),
        (np.array([0, 1_000_000]), None),
        (np.array([3, -698, 1]), None),
        (np.array([0.0, 0.5, 1.0]), None),
        (np.array([[0, 1], [1, 0]]), None),
    ],
    ids=[
        "int64",
        "uint8",
        "bool",
        "whole-floats",
        "column-vector",
        "max-255",
        "one-value",
        "max-256",
        "huge-label",
        "negative",
        "fractions",
        "two-columns",
    ],
)
def test_auto_task(y: np.ndarray, classes: int | None) -> None:
    targets, found = infer_task(y)
    assert found == classes
    if classes:
        assert targets.dtype == np.int32 and targets.shape == (len(y),)
        np.testing.assert_array_equal(targets, np.ravel(y).astype(int))
    else:
        assert targets.dtype == np.float32 and targets.ndim == 2
        np.testing.assert_array_equal(targets, np.reshape(y, (len(y), -1)))


def test_task_can_be_forced() -> None:
    targets, classes = infer_task(np.array([0, 1_000]), "classify")
    assert classes == 1_001 and targets.tolist() == [0, 1_000]
    targets, classes = infer_task(np.array([0, 1, 2]), "regress")
    assert classes is None and targets.tolist() == [[0.0], [1.0], [2.0]]


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.array([0.0, 2.5]), r"row 2 holds 2.5, not a whole number from 0 up"),
        (np.array([3, -698, 1]), r"row 2 holds -698, not a whole number"),
        (np.array([1.0, np.nan]), r"row 2 holds nan"),
        (np.array([[0, 1], [1, 0]]), r"targets have shape \(2, 2\)"),
    ],
    ids=["fraction", "negative", "nan", "two-columns"],
)
def test_classify_refuses_what_is_not_a_label(y: np.ndarray, match: str) -> None:
    with pytest.raises(
        ValueError, match=r"task 'classify' needs class labels.*" + match
    ):
        infer_task(y, "classify")


def test_unknown_task_and_bad_targets_are_named() -> None:
    with pytest.raises(
        ValueError, match=r"task must be one of auto, classify, regress, got 'clasify'"
    ):
        infer_task(np.array([0, 1]), "clasify")
    with pytest.raises(ValueError, match=r"one target per example, got the scalar 3"):
        infer_task(np.array(3))
    with pytest.raises(TypeError, match=r"y must hold numbers, got dtype <U1"):
        infer_task(np.array(["a", "b"]))


def test_csv_and_npz_get_the_same_task(tmp_path: Path) -> None:
    rows = [(0.5, 1.0), (1.5, 0.0), (2.5, 3.0), (3.5, 1.0)]
    csv = tmp_path / "t.csv"
    csv.write_text("a,y\n" + "".join(f"{a},{y}\n" for a, y in rows))
    npz = tmp_path / "t.npz"
    np.savez(npz, x=np.array([[a] for a, _ in rows]), y=np.array([y for _, y in rows]))
    for path, target in ((csv, "y"), (npz, None)):
        x, y = load_table(path, target)
        labels, classes = infer_task(y)
        assert classes == 4, path.suffix
        assert labels.tolist() == [1, 0, 3, 1]
        np.testing.assert_array_equal(x, [[0.5], [1.5], [2.5], [3.5]])


# CSV files.


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfy,a\r\n1,2\r\n0,4\r\n")
    x, y = load_table(path, "y")
    assert x.tolist() == [[2.0], [4.0]] and y.tolist() == [1.0, 0.0]


def test_csv_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,y\n1,0\n\n\n2,x\n")
    with pytest.raises(ValueError, match=r"line 5, column 'y': 'x' is not a number"):
        load_table(path, "y")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a,b,y\n1,2,0\n1,nan,1\n", r"line 3, column 'b': 'nan' is not a finite"),
        ("a,b,y\n1,2,0\n1,2,-inf\n", r"line 3, column 'y': '-inf' is not a finite"),
        (
            "a,b,y\n1e39,2,0\n",
            r"line 2, column 'a': '1e39' is not a finite number within float32's range",
        ),
        ("y\n1\n2\n", r"has no feature columns: its only column is the target 'y'"),
        ("a,b,a,y\n1,2,3,0\n", r"the header names column 'a' more than once"),
        ("a,b,y\n", r"has a header but no data rows"),
        ("a,b,c\n1,2,0\n", r"no column named 'y'; the columns are a, b, c"),
    ],
    ids=[
        "nan",
        "inf",
        "beyond-float32",
        "target-only",
        "duplicate",
        "no-rows",
        "no-target",
    ],
)
def test_bad_csv_is_named(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path / "d.csv", text)
    with pytest.raises(ValueError, match=r"data file '.*d\.csv'.*" + match):
        load_table(path, "y")


def test_csv_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,y\n1,0\n2,1\ncafé,0\n".encode("latin-1"))
    with pytest.raises(
        ValueError, match=r"latin1\.csv', line 4: byte 0xe9 is not UTF-8"
    ):
        load_table(path, "y")


def test_a_folder_or_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=r"data file '.*' is a folder"):
        load_table(tmp_path, "y")
    with pytest.raises(FileNotFoundError, match=r"'.*nope\.csv' does not exist"):
        load_table(tmp_path / "nope.csv", "y")
    with pytest.raises(
        ValueError, match=r"expected a \.csv or \.npz file, got '\.xlsx'"
    ):
        load_table(write(tmp_path / "t.xlsx", "a"), "y")


# NPZ files.


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        (
            {"x": np.ones((10, 3)), "y": np.zeros(9)},
            r"array 'x' has 10 rows but 'y' has 9",
        ),
        (
            {"x": np.array([[1], [2]], dtype=object), "y": np.zeros(2)},
            r"array 'x' holds Python objects; only numeric arrays are read",
        ),
        (
            {"x": np.ones((4, 2)), "y": np.float64(3.0)},
            r"array 'y' is a single value \(shape \(\)\)",
        ),
        (
            {"x": np.ones((2, 2)), "y": np.array(["a", "b"])},
            r"array 'y' has dtype <U1; only numeric arrays are read",
        ),
        (
            {"x": np.array([[1.0], [np.inf]]), "y": np.zeros(2)},
            r"array 'x' holds inf at index \(1, 0\)",
        ),
        (
            {"x": np.ones(5), "y": np.zeros(5)},
            r"array 'x' has shape \(5,\); features need the shape",
        ),
        ({"features": np.ones((2, 2))}, r"no array named 'x', 'y'; it holds features"),
    ],
    ids=["row-counts", "objects", "scalar-y", "strings", "inf", "1d-x", "missing"],
)
def test_bad_npz_is_named(tmp_path: Path, arrays: dict, match: str) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"data file '.*d\.npz': " + match):
        load_table(path, None)


@pytest.mark.parametrize(
    "content", [b"hello\n", b"\x93NUMPY not really"], ids=["text", "npy-magic"]
)
def test_a_file_that_is_not_an_npz_archive(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"'.*d\.npz' is not an NPZ archive") as info:
        load_table(path, None)
    assert "pickle" not in str(info.value)


def test_npz_arrays_named_by_target(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, inputs=np.arange(6.0).reshape(3, 2), labels=np.array([1, 0, 1]))
    x, y = load_table(path, "inputs,labels")
    assert x.dtype == np.float32 and x.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert y.tolist() == [1, 0, 1]
    with pytest.raises(
        ValueError, match=r"names two arrays as 'x_name,y_name', got 'inputs'"
    ):
        load_table(path, "inputs")


def test_features_to_predict_on(tmp_path: Path) -> None:
    csv = write(tmp_path / "f.csv", "\ufeffa,label,b\n1,0,2\n3,1,4\n")
    assert load_features(csv, "label").tolist() == [[1, 2], [3, 4]]
    assert load_features(csv).tolist() == [[1, 0, 2], [3, 1, 4]]
    npz = tmp_path / "f.npz"
    np.savez(npz, x=np.ones((2, 3)), other=np.zeros((2, 1)))
    assert load_features(npz).shape == (2, 3)
    assert load_features(npz, "other,y").tolist() == [[0.0], [0.0]]
    bad = write(tmp_path / "g.csv", "a,label\n1,cat\n")
    with pytest.raises(
        ValueError, match=r"column 'label': 'cat' is not a number; pass --target COLUMN"
    ):
        load_features(bad)


# Spec files.


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            {"model": 5, "layers": [{"type": "Dense", "units": 2}]},
            r"\[model\] must be a table, got int 5",
        ),
        (
            {"model": {"requires": "minidl-conv"}, "layers": [{"type": "Relu"}]},
            r"\[model\]: requires must be a list of strings .* got 'minidl-conv'",
        ),
        (
            {"model": {"requires": ["minidl", 3]}, "layers": [{"type": "Relu"}]},
            r"requires must be a list of strings .* got \['minidl', 3\]",
        ),
        (
            {"layers": [{"type": "Relu"}, {"type": 5}]},
            r"layers\[1\]: type must be a string naming the layer, got int 5",
        ),
        (
            {"layers": [{"type": ["Dense"]}]},
            r"layers\[0\]: type must be a string naming the layer, got list \['Dense'\]",
        ),
        (
            {"layers": [{"type": "Relu"}], "loss": {"type": 1.5}},
            r"spec loss: type must be a string naming the loss, got float",
        ),
    ],
    ids=[
        "model-not-table",
        "requires-str",
        "requires-mixed",
        "type-int",
        "type-list",
        "loss-type",
    ],
)
def test_bad_spec_is_named(spec: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        model_from_spec(spec)


def test_spec_path_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=r"model spec '.*' is a folder"):
        load_spec(tmp_path)
