"""The minidl command line: the main job, data files, spec files, errors."""

from __future__ import annotations

import json
import re
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
        (
            "a,b,y",
            ["1,2,0", "3,inf,1"],
            "y",
            r"line 3, column 'b': 'inf' is not a finite",
        ),
        (
            "a,b,y",
            ["1,2,0", "1e39,4,1"],
            "y",
            r"line 3, column 'a': '1e39' is not a finite number within float32",
        ),
        ("y", ["0", "1"], "y", r"'.*d\.csv' has no feature columns"),
        ("a,y,y", ["1,2,0"], "y", r"the header names column 'y' more than once"),
    ],
    ids=[
        "missing-target",
        "non-numeric",
        "ragged",
        "inf",
        "beyond-float32",
        "target-only",
        "duplicate",
    ],
)
def test_bad_csv_is_one_clear_line(tmp_path, capsys, header, rows, target, match):
    path = write_csv(tmp_path / "d.csv", header, rows)
    code = main(["train", "--data", str(path), "--target", target, "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("minidl: error: data file") and err.count("\n") == 1, err
    assert re.search(match, err), err


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


def one_error_line(capsys) -> str:
    """The single ``minidl: error:`` line on stderr, without its prefix."""
    return error_line(capsys.readouterr().err)


def error_line(err: str) -> str:
    assert err.startswith("minidl: error: ") and err.count("\n") == 1, err
    return err.removeprefix("minidl: error: ").strip()


# Classification or regression for a data file.


def test_csv_task_is_inferred_and_printed(tmp_path: Path, capsys) -> None:
    rows = [f"{i % 7},{i % 3}" for i in range(50)]
    path = write_csv(tmp_path / "t.csv", "a,label", rows)
    assert (
        main(["train", "--data", str(path), "--target", "label", "--epochs", "1"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "task: classification with 3 classes (--task regress to change)"
    assert lines[-1].startswith("test accuracy: ")


def test_a_huge_whole_number_target_is_regressed(tmp_path: Path, capsys) -> None:
    # Classes 0 and 1,000,000 would make a 1,000,001-way classifier.
    rows = [f"{i},{1_000_000 * (i % 2)}" for i in range(50)]
    path = write_csv(tmp_path / "t.csv", "a,y", rows)
    assert main(["train", "--data", str(path), "--target", "y", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "task: regression (--task classify to change)" in out
    assert "accuracy" not in out


@pytest.mark.parametrize(
    ("y", "task", "expected"),
    [
        (np.arange(20) % 2 == 0, "auto", ("classification", 2)),
        (np.arange(20.0) % 4, "auto", ("classification", 4)),
        (np.arange(20.0) % 4, "regress", ("regression", None)),
        (np.arange(20) - 10, "auto", ("regression", None)),
        (np.arange(40.0).reshape(20, 2), "auto", ("regression", None)),
    ],
    ids=["bool", "whole-floats", "forced-regress", "negative-ints", "two-outputs"],
)
def test_npz_task_follows_the_same_rule(tmp_path: Path, capsys, y, task, expected):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(40.0).reshape(20, 2) / 40, y=y)
    args = ["train", "--data", str(path), "--task", task, "--epochs", "1", "--json"]
    assert main([*args, "--batch-size", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["task"], report["classes"]) == expected


def test_classify_with_negative_targets_is_one_line(tmp_path: Path, capsys) -> None:
    path = write_csv(tmp_path / "t.csv", "a,y", ["1,0", "2,-698", "3,4"])
    args = ["train", "--data", str(path), "--target", "y", "--task", "classify"]
    assert main(args) == 1
    assert re.fullmatch(
        r"task 'classify' needs class labels, but row 2 holds -698, not a whole "
        r"number from 0 up",
        one_error_line(capsys),
    )


def test_help_documents_the_task_option() -> None:
    out = run("train", "--help").stdout
    assert "--task {auto,classify,regress}" in out
    assert "whole number from 0 to 255" in " ".join(out.split())


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        (
            {"x": np.ones((10, 3)), "y": np.zeros(9)},
            r"array 'x' has 10 rows but 'y' has 9",
        ),
        (
            {"x": np.array([[1]], dtype=object), "y": np.zeros(1)},
            r"array 'x' holds Python objects",
        ),
        ({"x": np.ones((10, 3)), "y": np.float64(1)}, r"array 'y' is a single value"),
    ],
    ids=["row-counts", "objects", "scalar-y"],
)
def test_bad_npz_is_one_clear_line(tmp_path: Path, capsys, arrays, match) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    assert main(["train", "--data", str(path)]) == 1
    assert re.search(match, one_error_line(capsys))


def test_a_text_file_named_npz_is_one_clear_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "d.npz"
    path.write_text("a,b\n1,2\n")
    assert main(["train", "--data", str(path)]) == 1
    assert one_error_line(capsys).endswith(
        "d.npz' is not an NPZ archive (a zip of .npy files, as numpy.savez writes)"
    )


# Options checked before any data is read.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", ""], "--data needs a file name, got an empty string"),
        (["--target", "y"], "--target names a column of a --data file; give --data"),
        (["--task", "regress"], "--task regress applies to a --data file only"),
        (["--epochs", "-3"], "--epochs must be a positive int, got -3"),
        (["--batch-size", "0"], "--batch-size must be a positive int, got 0"),
        (["--lr", "0"], "--lr must be a positive, finite number, got 0.0"),
        (["--lr", "nan"], "--lr must be a positive, finite number, got nan"),
        (["--lr", "inf"], "--lr must be a positive, finite number, got inf"),
        (
            ["--seed", "99999999999999999999"],
            "--seed must be from 0 to 2**32 - 1, got 99999999999999999999",
        ),
        (["--seed", str(2**32)], f"--seed must be from 0 to 2**32 - 1, got {2**32}"),
        (["--seed", "-1"], "--seed must be from 0 to 2**32 - 1, got -1"),
    ],
    ids=[
        "empty-data",
        "target-alone",
        "task-alone",
        "epochs",
        "batch-size",
        "lr-zero",
        "lr-nan",
        "lr-inf",
        "seed-huge",
        "seed-2**32",
        "seed-negative",
    ],
)
def test_bad_option_is_one_line(capsys, args: list[str], message: str) -> None:
    assert main(["train", *args]) == 1
    assert one_error_line(capsys) == message


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--optimizer", "adma"], r"unknown optimizer 'adma'\. Did you mean: adam"),
        (["--loss", "mce"], r"unknown loss 'mce'"),
        (["--metrics", "accuracy,acuracy"], r"unknown metric 'acuracy'"),
        (["--dataset", "digit"], r"unknown dataset 'digit'\. Did you mean: digits"),
    ],
    ids=["optimizer", "loss", "metric", "dataset"],
)
def test_names_are_checked_before_the_data_is_read(
    tmp_path: Path, capsys, args: list[str], match: str
) -> None:
    # The data file does not exist: the name must be refused first.
    source = [] if "--dataset" in args else ["--data", str(tmp_path / "no.csv")]
    assert main(["train", *source, *args]) == 1
    assert re.match(match, one_error_line(capsys))


def test_a_folder_is_named_as_one(tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", str(tmp_path)]) == 1
    assert one_error_line(capsys).endswith(
        "' is a folder, expected a .csv or .npz file"
    )
    assert main(["train", "--model", str(tmp_path)]) == 1
    assert one_error_line(capsys).endswith("' is a folder, expected a .toml file")


def test_csv_without_target_lists_the_columns(tmp_path: Path, capsys) -> None:
    path = write_csv(tmp_path / "t.csv", "a,b,label", ["1,2,0"])
    assert main(["train", "--data", str(path)]) == 1
    assert one_error_line(capsys).endswith(
        "name the target column with --target; the columns are a, b, label"
    )


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("model = 5\n", r"\[model\] must be a table, got int 5"),
        (
            '[model]\nrequires = "minidl-conv"\n[[layers]]\ntype = "Relu"\n',
            r"requires must be a list of strings",
        ),
        (
            "[[layers]]\ntype = 5\n",
            r"layers\[0\]: type must be a string naming the layer",
        ),
    ],
    ids=["model-not-table", "requires-str", "type-int"],
)
def test_malformed_spec_is_one_line(tmp_path: Path, capsys, spec, match) -> None:
    path = tmp_path / "m.toml"
    path.write_text(spec)
    assert main(["train", "--model", str(path)]) == 1
    assert re.search(match, one_error_line(capsys))


# Training results.


def test_a_loss_as_metric_reads_the_default_models_logits(capsys) -> None:
    args = ["train", "--epochs", "2", "--json"]
    assert main([*args, "--metrics", "accuracy,sparse_categorical_crossentropy"]) == 0
    report = json.loads(capsys.readouterr().out)
    for part in ("train", "test"):
        scores = report[part]
        assert set(scores) == {"loss", "accuracy", "sparse_categorical_crossentropy"}
        # The training loss is the same cross-entropy, computed from logits.
        metric = scores["sparse_categorical_crossentropy"]
        assert metric > 0
        assert metric == pytest.approx(scores["loss"], rel=1e-5)


def test_a_diverged_run_exits_1_naming_why(capsys) -> None:
    args = ["train", "--optimizer", "sgd", "--lr", "1e8", "--epochs", "3"]
    assert main(args) == 1
    captured = capsys.readouterr()
    message = error_line(captured.err)
    assert message.startswith("training stopped: the loss became NaN or inf in epoch")
    assert captured.err.count("NaN or inf") == 1
    assert "test accuracy" not in captured.out


# The program itself.


def test_version_is_the_distributions() -> None:
    import tomllib

    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    expected = tomllib.loads(pyproject.read_text())["project"]["version"]
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout == f"minidl {expected}\n"


def test_verbose_adds_the_traceback_after_the_line(tmp_path: Path, capsys) -> None:
    args = ["train", "--data", str(tmp_path / "no.csv"), "--target", "y"]
    assert main(args) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert main(["-v", *args]) == 1
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith("minidl: error: data file") and first.endswith(
        "does not exist"
    )
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1].startswith("FileNotFoundError: data file")


@pytest.mark.parametrize(
    "args", [["plugins", "--verbose"], ["plugins", "-v"], ["-v", "plugins"]]
)
def test_plugins_verbose_either_way(capsys, args: list[str]) -> None:
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "  module: minidl_builtins" in out
    assert "  hook order: " in out


def test_plugins_without_verbose_is_short(capsys) -> None:
    assert main(["plugins"]) == 0
    assert "module:" not in capsys.readouterr().out


def test_a_warning_is_one_line(monkeypatch, capsys) -> None:
    import warnings

    from minidl_core import MinidlWarning, _cli

    def warn(kind: str, args) -> int:
        warnings.warn("plugin 'acme' failed to load: boom", MinidlWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(_cli, "_cmd_list", warn)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["layers"]) == 0
        shown = warnings.showwarning
    assert (
        capsys.readouterr().err
        == "minidl: warning: plugin 'acme' failed to load: boom\n"
    )
    assert shown is not _cli._show_warning  # put back when main returns


BROKEN_PLUGIN = "raise ImportError('needs numpy 9')\n"


def test_a_broken_plugin_is_one_warning_line(make_dist, capsys) -> None:
    import warnings

    make_dist("broken-dist", "broken_plugin", BROKEN_PLUGIN)
    # An unknown name re-scans the installed plugins and finds the new one.
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["train", "--dataset", "nope"]) == 1
    warning, error = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        r"minidl: warning: .*'broken-dist'.*ImportError: needs numpy 9", warning
    )
    assert error.startswith("minidl: error: unknown dataset 'nope'")


def test_strict_plugins_and_verbose_show_the_original_error(
    make_dist, monkeypatch, capsys
) -> None:
    make_dist("broken-dist", "broken_plugin", BROKEN_PLUGIN)
    monkeypatch.setenv("MINIDL_STRICT_PLUGINS", "1")
    assert main(["-v", "plugins"]) == 1
    first, *rest = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"minidl: error: .*'broken-dist'.*needs numpy 9", first)
    assert "Traceback (most recent call last):" in rest
    assert "ImportError: needs numpy 9" in rest
