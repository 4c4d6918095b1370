"""The minidl command line: the main job, data files, spec files, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minidl_core import get_dataset
from minidl_core._cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minidl_core._cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_with_no_argument_reaches_096_on_the_digits() -> None:
    out = run("train")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("training on digits: 1438 train / 359 test")
    assert sum(line.startswith("epoch ") for line in lines) == 40
    accuracy = float(lines[-1].removeprefix("test accuracy: "))
    assert accuracy >= 0.96


def test_train_json_scores_match_an_independent_count(capsys) -> None:
    assert main(["train", "--epochs", "5", "--json", "--seed", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["epochs"] == 5
    assert set(report["test"]) == {"loss", "accuracy"}
    # 359 test images: an accuracy is a whole number of them.
    correct = report["test"]["accuracy"] * 359
    assert correct == pytest.approx(round(correct), abs=1e-3)


def test_digits_dataset_ships_with_the_package() -> None:
    digits = get_dataset("digits")()
    assert digits.x_train.shape == (1438, 64) and digits.x_test.shape == (359, 64)
    labels = np.concatenate([digits.y_train, digits.y_test])
    assert np.bincount(labels).tolist() == [
        178,
        182,
        177,
        183,
        181,
        182,
        181,
        179,
        174,
        180,
    ]
    assert digits.x_train.min() == 0.0 and digits.x_train.max() == 1.0
    assert "Alpaydin" in digits.citation


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_train_on_a_users_csv(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    y = (x[:, 0] > x[:, 1]).astype(int)
    rows = [f"{a:.5f},{b:.5f},{c}" for (a, b), c in zip(x, y, strict=True)]
    path = write_csv(tmp_path / "t.csv", "a,b,label", rows)
    code = main(
        ["train", "--data", str(path), "--target", "label", "--epochs", "30", "--json"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["test"]["accuracy"] > 0.85


def test_train_with_a_spec_file(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "m.toml"
    spec.write_text(
        '[model]\nname = "small"\n\n[[layers]]\ntype = "dense"\nunits = 32\n\n'
        '[[layers]]\ntype = "LeakyReLU"\nalpha = 0.1\n\n[[layers]]\ntype = "Dense"\n'
        'units = 10\n\n[loss]\ntype = "sparse_categorical_crossentropy"\n'
        "from_logits = true\n"
    )
    assert main(["train", "--model", str(spec), "--epochs", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["accuracy"] > 0.5


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            '[[layers]]\ntype = "Dens"\nunits = 3\n',
            r"layers\[0\]: unknown layer 'Dens'.*Dense",
        ),
        (
            '[[layers]]\ntype = "Dense"\n',
            r"layers\[0\] \(Dense\).*output_shape \(or units\) is required",
        ),
        (
            '[[layers]]\ntype = "Dense"\nunit = 3\n',
            r"layers\[0\] \(Dense\): Dense: unknown option\(s\) unit; it takes",
        ),
        ("[[layers]]\nunits = 3\n", r"layers\[0\]: needs a 'type' key"),
        ("[[layers]\n", r"not valid TOML"),
        (
            '[model]\nrequires = ["minidl-conv>=0.1"]\n[[layers]]\ntype = "Conv2D"\n',
            r"unknown layer 'Conv2D'.*requires: minidl-conv>=0.1",
        ),
    ],
    ids=[
        "unknown-layer",
        "missing-option",
        "typo-option",
        "no-type",
        "bad-toml",
        "names-package",
    ],
)
def test_bad_spec_is_one_clear_line(tmp_path: Path, capsys, spec, match) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(spec)
    assert main(["train", "--model", str(path), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minidl: error: model spec")
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(match, err), err


@pytest.mark.parametrize(
    ("header", "rows", "target", "match"),
    [
        (
            "a,b,y",
            ["1,2,0", "3,4,1"],
            "label",
            r"no column named 'label'; the columns are a, b, y",
        ),
        ("a,b,y", ["1,2,0", "3,x,1"], "y", r"line 3, column 'b': 'x' is not a number"),
        ("a,b,y", ["1,2,0", "3,1"], "y", r"line 3: 2 cells, expected 3"),
    ],
    ids=["missing-target", "non-numeric", "ragged"],
)
def test_bad_csv_is_one_clear_line(tmp_path, capsys, header, rows, target, match):
    path = write_csv(tmp_path / "d.csv", header, rows)
    assert main(["train", "--data", str(path), "--target", target]) == 1
    err = capsys.readouterr().err
    import re

    assert re.search(match, err), err
    assert "Traceback" not in err


def test_bad_numbers_on_the_command_line(capsys) -> None:
    assert main(["train", "--epochs", "0"]) == 1
    assert "epochs must be a positive int, got 0" in capsys.readouterr().err
    assert main(["train", "--batch-size", "5000", "--epochs", "1"]) == 1
    assert "batch_size=5000 is larger than the 1438" in capsys.readouterr().err
    assert main(["train", "--optimizer", "adma", "--epochs", "1"]) == 1
    assert "Did you mean: adam" in capsys.readouterr().err


def test_help_shows_a_working_example() -> None:
    out = run("train", "--help")
    assert "minidl train --epochs 30 --optimizer sgd --lr 0.05 --json" in out.stdout
