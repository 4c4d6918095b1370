"""The core with the builtins blocked: it imports, knows nothing, says so."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import minidl_core
from minidl_core import Layer, Sequential, UnknownNameError


@pytest.fixture
def no_builtins(clean_plugins, monkeypatch):
    monkeypatch.setenv("MINIDL_DISABLE_PLUGINS", "builtins")
    minidl_core.reload_plugins()


def test_catalogue_is_empty(no_builtins) -> None:
    for kind in ("layer", "loss", "optimizer", "metric", "dataset"):
        assert minidl_core.list_names(kind) == []


@pytest.mark.parametrize(
    ("lookup", "kind"),
    [
        (lambda: minidl_core.get_layer("Dense"), "layer 'Dense'"),
        (lambda: minidl_core.get_loss("mse"), "loss 'mse'"),
        (lambda: minidl_core.get_optimizer("adam"), "optimizer 'adam'"),
        (lambda: minidl_core.get_dataset("digits"), "dataset 'digits'"),
    ],
    ids=["layer", "loss", "optimizer", "dataset"],
)
def test_look_ups_fail_with_the_clear_error(no_builtins, lookup, kind) -> None:
    with pytest.raises(UnknownNameError, match=f"unknown {kind}.*Blocked: minidl"):
        lookup()


def test_attribute_access_fails_the_same_way(no_builtins) -> None:
    from minidl_core import layers

    with pytest.raises(AttributeError, match="unknown layer 'Dense'"):
        layers.Dense  # noqa: B018


def test_core_still_runs_a_user_layer(no_builtins) -> None:
    class Double(Layer):
        def __call__(self, x, params):
            return 2 * x

    model = Sequential([Double()], input_shape=3)
    np.testing.assert_array_equal(model.predict(np.ones((2, 3))), 2 * np.ones((2, 3)))


def test_core_imports_without_importing_a_plugin() -> None:
    code = (
        "import sys, minidl_core\n"
        "assert 'minidl_builtins' not in sys.modules, 'imported at import time'\n"
        "print(minidl_core.list_names('layer'))\n"
    )
    env = dict(os.environ, MINIDL_DISABLE_PLUGINS="builtins")
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_cli_train_without_builtins_is_one_clear_line() -> None:
    env = dict(os.environ, MINIDL_DISABLE_PLUGINS="builtins")
    out = subprocess.run(
        [sys.executable, "-m", "minidl_core._cli", "train"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("minidl: error: unknown dataset 'digits'")
    assert "Traceback" not in out.stderr


def test_cli_lists_say_which_kind_is_empty(no_builtins, capsys) -> None:
    from minidl_core._cli import main

    for command in ("layers", "losses"):
        assert main([command]) == 0
        out = capsys.readouterr().out
        assert out == f"no {command}: is any minidl plugin installed and enabled?\n"
