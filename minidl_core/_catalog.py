"""Look-ups by name, one function per kind of thing plugins contribute."""

from __future__ import annotations

from typing import Any

from minidl_core._errors import UnknownNameError
from minidl_core._plugins import get_registry, refresh_if_installed
from minidl_core._registry import Entry

__all__ = [
    "get_dataset",
    "get_entry",
    "get_layer",
    "get_loss",
    "get_metric",
    "get_optimizer",
    "list_names",
]


def get_entry(kind: str, name: str) -> Entry:
    """The registry entry for ``name``, with the plugin that provided it.

    A miss re-scans the installed packages once, so a plugin installed while
    the program runs is found.

    Raises:
        UnknownNameError: No plugin registered ``name``; the message lists
            close matches and the installed plugins.
        DuplicateNameError: Two plugins registered ``name``.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"{kind} name must be a str, got {type(name).__name__}: {name!r}"
        )
    registry = get_registry()
    if registry.find(kind, name) is None and refresh_if_installed():
        registry = get_registry()
    return registry.get(kind, name)


def list_names(kind: str) -> list[str]:
    """Every name registered for ``kind`` (``"layer"``, ``"loss"``, ...)."""
    return get_registry().names(kind)


def get_layer(name: str) -> Any:
    """The layer class registered as ``name`` (case and ``_`` ignored)."""
    return get_entry("layer", name).obj


def get_loss(name: str) -> Any:
    """The loss class registered as ``name`` (case and ``_`` ignored)."""
    return get_entry("loss", name).obj


def get_optimizer(name: str) -> Any:
    """The optimizer factory registered as ``name``."""
    return get_entry("optimizer", name).obj


def get_metric(name: str) -> Any:
    """A metric callable for ``name``: a registered metric, else a loss.

    Every loss is usable as a metric under its own name.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"metric name must be a str, got {type(name).__name__}: {name!r}"
        )
    registry = get_registry()
    entry = registry.find("metric", name)
    if entry is None:
        loss = registry.find("loss", name)
        if loss is not None:
            return loss.obj()
        try:
            entry = get_entry("metric", name)
        except UnknownNameError as error:
            raise UnknownNameError(
                str(error)
                + " Losses are metrics too: "
                + ", ".join(registry.names("loss"))
                + "."
            ) from None
    obj = entry.obj
    return obj() if isinstance(obj, type) else obj


def get_dataset(name: str) -> Any:
    """The dataset loader registered as ``name``."""
    return get_entry("dataset", name).obj
