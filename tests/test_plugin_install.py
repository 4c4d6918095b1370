"""Installing the example plugin's wheel adds its layers, with no core change.

The test builds ``plugins/minidl_conv`` into a wheel and makes a fresh
virtual environment that sees this environment's packages (jax, minidl)
through a ``.pth`` file, so nothing heavy is installed twice, but has no
``minidl-conv``. There ``Conv2D`` is unknown; after ``pip install`` of the
wheel it is found from code, from the command line and from a model spec.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "minidl_conv"

SPEC = """\
[model]
name = "tiny-cnn"
requires = ["minidl-conv"]

[[layers]]
type = "Conv2D"
filters = 4
padding = "same"

[[layers]]
type = "MaxPool2D"

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 10
"""

# Run in the fresh environment before the plugin is installed.
BEFORE = """\
import json, sys
import minidl_core
from minidl_core._spec import model_from_spec

errors = {}
try:
    minidl_core.get_layer("Conv2D")
except minidl_core.UnknownNameError as error:
    errors["get_layer"] = str(error)
try:
    model_from_spec(sys.argv[1])
except minidl_core.UnknownNameError as error:
    errors["spec"] = str(error)
errors["dense_from"] = minidl_core.get_entry("layer", "Dense").distribution
print(json.dumps(errors))
"""

# Run in the fresh environment after the plugin is installed.
AFTER = """\
import json, sys
import numpy as np
import minidl_core
from minidl_core._spec import model_from_spec
from minidl_core.layers import Conv2D

model, _ = model_from_spec(sys.argv[1])
y = model.predict(np.zeros((3, 8, 8, 1), np.float32))
print(json.dumps({
    "module": Conv2D.__module__,
    "distribution": minidl_core.get_entry("layer", "conv2d").distribution,
    "shapes": [list(model.shapes[layer.name]) for layer in model.layers],
    "predicted": list(y.shape),
}))
"""


def _outside_stdlib(path: str) -> bool:
    # Not "platstdlib": in a venv that is the venv's own lib folder.
    stdlib = Path(sysconfig.get_path("stdlib")).resolve()
    return not Path(path).resolve().is_relative_to(stdlib)


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env=env
    )
    assert result.returncode == 0, (
        f"{what} failed with exit status {result.returncode}:\n"
        f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def _build_wheel(out: Path) -> Path:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
    # Without hatchling here pip builds in isolation and fetches it.
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-build-isolation")
    _run([*command, "--wheel-dir", str(out), str(PLUGIN_DIR)], "building the wheel")
    wheels = list(out.glob("minidl_conv-0.1.0-*.whl"))
    assert len(wheels) == 1, f"expected one minidl-conv wheel in {out}, got {wheels}"
    return wheels[0]


def _fresh_env(env_dir: Path) -> Path:
    """A venv without pip whose ``.pth`` adds this environment's packages."""
    venv.EnvBuilder(with_pip=False).create(env_dir)
    paths = {"base": str(env_dir), "platbase": str(env_dir)}
    site_packages = Path(sysconfig.get_path("purelib", "venv", paths))
    # This process's path is already expanded (editable installs included),
    # so listing it is enough; the stdlib comes with the venv itself.
    parent = [p for p in sys.path if p and Path(p).is_dir() and _outside_stdlib(p)]
    lines = "".join(f"{Path(p).resolve()}\n" for p in dict.fromkeys(parent))
    (site_packages / "_parent_env.pth").write_text(lines, encoding="utf-8")
    scripts = Path(sysconfig.get_path("scripts", "venv", paths))
    name = "python.exe" if os.name == "nt" else "python"
    return scripts / name


def test_installing_the_plugin_wheel_adds_its_layers(tmp_path: Path) -> None:
    try:
        installed = importlib.metadata.distribution("minidl-conv")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        pytest.skip(
            f"minidl-conv {installed.version} is installed in this environment, "
            "so a fresh one that shares its packages would see it too"
        )
    wheel = _build_wheel(tmp_path / "dist")
    python = _fresh_env(tmp_path / "env")
    spec = tmp_path / "tiny_cnn.toml"
    spec.write_text(SPEC, encoding="utf-8")
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONPATH" and not k.startswith("MINIDL_")
    }
    env.update(MINIDL_STRICT_PLUGINS="1", JAX_PLATFORMS="cpu")

    # Before: the core and its builtins work, Conv2D is unknown.
    before = json.loads(
        _run([str(python), "-c", BEFORE, str(spec)], "the check before", env=env)
    )
    assert before["dense_from"] == "minidl"
    assert "Conv2D" in before["get_layer"]
    assert "layers[0]" in before["spec"]
    assert "minidl-conv" in before["spec"]

    # Install the wheel alone; --ignore-installed keeps pip off the parent env.
    install = ["install", "--no-deps", "--no-index", "--ignore-installed", "--quiet"]
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), *install, str(wheel)],
        "installing the wheel",
    )

    # After: importable by name, built from a spec, and listed by the CLI.
    after = json.loads(
        _run([str(python), "-c", AFTER, str(spec)], "the check after", env=env)
    )
    assert after["module"] == "minidl_conv._layers"
    assert after["distribution"] == "minidl-conv"
    assert after["shapes"] == [[8, 8, 4], [4, 4, 4], [64], [10]]
    assert after["predicted"] == [3, 10]

    listing = _run(
        [str(python), "-m", "minidl_core._cli", "layers", "--json"],
        "minidl layers",
        env=env,
    )
    by_name = {row["name"]: row for row in json.loads(listing)}
    for name in ("Conv2D", "MaxPool2D", "Flatten"):
        assert by_name[name]["distribution"] == "minidl-conv", textwrap.shorten(
            listing, 400
        )
        assert by_name[name]["version"] == "0.1.0"
    assert by_name["Dense"]["distribution"] == "minidl"

    # The README's convolutional spec trains on the digits from the CLI.
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    readme_spec = readme.split("```toml\n")[1].split("```")[0]
    assert 'type = "Conv2D"' in readme_spec
    (tmp_path / "conv.toml").write_text(readme_spec, encoding="utf-8")
    trained = _run(
        [
            str(python),
            "-m",
            "minidl_core._cli",
            "train",
            "--model",
            str(tmp_path / "conv.toml"),
            "--epochs",
            "3",
            "--json",
        ],
        "minidl train --model conv.toml",
        env=env,
    )
    assert json.loads(trained)["test"]["accuracy"] > 0.8
