"""Module-level attribute access resolved through the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minidl_core._errors import UnknownNameError

__all__ = ["UnknownAttributeError", "namespace_hooks"]


class UnknownAttributeError(UnknownNameError, AttributeError):
    """An attribute of a catalogue module names nothing registered."""


def namespace_hooks(
    kind: str,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a module that mirrors ``kind``."""
    from minidl_core._catalog import get_entry, list_names

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return get_entry(kind, name).obj
        except UnknownNameError as error:
            raise UnknownAttributeError(str(error)) from None

    def __dir__() -> list[str]:
        return list_names(kind)

    return __getattr__, __dir__
