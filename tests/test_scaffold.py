"""``minidl plugin new`` gives a project that builds, installs and passes its
own tests with no edit, and every command of CONTRIBUTING.md's plugin
walkthrough runs.

Both tests work in a fresh virtual environment that sees this environment's
packages (jax, minidl, pytest) through a ``.pth`` file, so nothing heavy is
installed twice, and whose installs land in the fresh environment alone.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GUIDE = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"
NOT_RUN = "# not run:"
HAVE_HATCHLING = importlib.util.find_spec("hatchling") is not None

# Shims for the fresh environment's bin folder, as pip would write them.
SHIMS = {
    "minidl": "from minidl_core._cli import main",
    "pip": "from pip._internal.cli.main import main",
    "twine": "from twine.__main__ import main",
}


def _fresh_env(folder: Path) -> Path:
    """A venv without pip that sees this one's packages; returns its bin."""
    venv.EnvBuilder(with_pip=False).create(folder)
    paths = {"base": str(folder), "platbase": str(folder)}
    site_packages = Path(sysconfig.get_path("purelib", "venv", paths))
    # addsitedir, unlike a bare path line, also runs the .pth files there, so
    # editable installs of minidl are seen too.
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)
    (site_packages / "_parent_env.pth").write_text(lines, encoding="utf-8")
    scripts = Path(sysconfig.get_path("scripts", "venv", paths))
    for name, source in SHIMS.items():
        shim = scripts / name
        python = scripts / "python"
        shim.write_text(
            f"#!{python}\nimport sys\n{source}\nsys.exit(main())\n", encoding="utf-8"
        )
        shim.chmod(0o755)
    return scripts


def _environ(scripts: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV")
        and not k.startswith("MINIDL_DISABLE")
    }
    env.update(
        PATH=f"{scripts}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(scripts.parent),
        JAX_PLATFORMS="cpu",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
    )
    return env


def _run(command: str | list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        command,
        shell=isinstance(command, str),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    shown = command if isinstance(command, str) else " ".join(command)
    assert result.returncode == 0, (
        f"$ {shown}\nexit status {result.returncode} in {cwd}\n"
        f"{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def test_generated_plugin_builds_installs_and_passes_its_tests(tmp_path: Path) -> None:
    assert importlib.util.find_spec("minidl_acme") is None
    scripts = _fresh_env(tmp_path / "env")
    env = _environ(scripts)
    python = str(scripts / "python")

    _run(["minidl", "plugin", "new", "minidl-acme"], tmp_path, env)
    project = tmp_path / "minidl-acme"

    # Build the wheel; without hatchling here the isolated build fetches it.
    build = [sys.executable, "-m", "build", "--wheel", "--outdir", "dist", "."]
    _run([*build, "--no-isolation"] if HAVE_HATCHLING else build, project, env)
    (wheel,) = (project / "dist").glob("minidl_acme-0.1.0-py3-none-any.whl")

    # minidl, its dependency, is found through the .pth, so nothing is fetched.
    _run([python, "-m", "pip", "install", "--no-index", str(wheel)], tmp_path, env)
    where = _run(
        [python, "-c", "import minidl_acme; print(minidl_acme.__file__)"],
        tmp_path,
        env,
    )
    assert Path(where.strip()).is_relative_to(tmp_path / "env")

    listing = _run(["minidl", "layers"], tmp_path, env)
    assert re.search(r"^Scale +minidl-acme 0\.1\.0$", listing, re.M), listing
    losses = _run(["minidl", "losses"], tmp_path, env)
    assert re.search(r"^LogCosh +minidl-acme 0\.1\.0$", losses, re.M), losses

    # The generated tests, against the installed wheel, unedited.
    report = _run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "-q"], project, env
    )
    assert re.search(r"^5 passed", report, re.M), report


def guide_commands(text: str) -> list[tuple[str, list[str]]]:
    """The ``$ command`` lines of the guide's console blocks, with the output
    lines shown under each."""
    commands: list[tuple[str, list[str]]] = []
    for block in re.findall(r"^```console\n(.*?)^```", text, re.M | re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:].strip(), []))
            elif commands:
                commands[-1][1].append(line)
    return commands


# Isolated builds would fetch hatchling from the index; with hatchling
# installed here the same commands run offline with these flags added.
OFFLINE = {
    "python -m build": "--no-isolation",
    "pip install": "--no-index --no-build-isolation",
}


def _offline(command: str) -> str:
    if not HAVE_HATCHLING:
        return command
    for prefix, flags in OFFLINE.items():
        if command.startswith(prefix + " ") or command == prefix:
            return f"{prefix} {flags}{command[len(prefix) :]}"
    return command


def _normal(line: str) -> str:
    return " ".join(line.split())


def test_every_command_of_the_plugin_guide_runs(tmp_path: Path) -> None:
    pytest.importorskip("twine", reason="the guide's 'twine check' needs twine")
    commands = guide_commands(GUIDE.read_text(encoding="utf-8"))
    assert len(commands) >= 6
    skipped = [c for c, _ in commands if NOT_RUN in c]
    assert skipped == ["twine upload dist/*  # not run: needs an index account"]

    scripts = _fresh_env(tmp_path / "env")
    env = _environ(scripts)
    cwd = tmp_path / "work"
    cwd.mkdir()
    for command, shown in commands:
        if NOT_RUN in command:
            continue
        if command.startswith("cd "):
            cwd = (cwd / command[3:].strip()).resolve()
            assert cwd.is_dir(), f"$ {command}: no such folder"
            continue
        out = _run(_offline(command), cwd, env)
        lines = {_normal(line) for line in out.splitlines()}
        for expected in shown:
            if expected.strip() and expected.strip() != "...":
                assert _normal(expected) in lines, f"$ {command}\n{out}"
