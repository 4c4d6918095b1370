"""Shared fixtures: fake installed distributions and a clean plugin registry."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import minidl_core

_PLUGIN_ENV = (
    "MINIDL_DISABLE_PLUGINS",
    "MINIDL_DISABLE_PLUGIN_AUTOLOAD",
    "MINIDL_STRICT_PLUGINS",
)


@pytest.fixture
def clean_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clear the plugin environment variables and reload around the test."""
    for name in _PLUGIN_ENV:
        monkeypatch.delenv(name, raising=False)
    minidl_core.reload_plugins()
    yield
    monkeypatch.undo()
    minidl_core.reload_plugins()


MakeDist = Callable[..., Path]


@pytest.fixture
def make_dist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_plugins: None
) -> MakeDist:
    """Install a fake distribution with one ``minidl`` entry point.

    It writes the module and a ``.dist-info`` folder on a fresh ``sys.path``
    entry, which is exactly what ``pip install`` leaves behind for
    ``importlib.metadata`` to find.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(
        dist: str,
        module: str,
        source: str,
        *,
        version: str = "1.0.0",
        entry_point: str | None = None,
        egg_info: bool = False,
    ) -> Path:
        module_path = site / f"{module}.py"
        if not module_path.exists():
            module_path.write_text(textwrap.dedent(source), encoding="utf-8")
        folder = f"{dist.replace('-', '_')}-{version}"
        meta = site / (f"{folder}.egg-info" if egg_info else f"{folder}.dist-info")
        meta.mkdir()
        metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
        (meta / ("PKG-INFO" if egg_info else "METADATA")).write_text(metadata)
        (meta / "entry_points.txt").write_text(
            f"[minidl]\n{entry_point or module} = {module}\n"
        )
        return site

    return make
