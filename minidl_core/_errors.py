"""Exceptions and warnings raised by minidl.

Every error minidl raises for a user's mistake derives from :class:`MinidlError`
and also from the built-in exception a caller would naturally catch
(``ValueError``, ``TypeError``, ``KeyError``), so ``except ValueError`` keeps
working.
"""

from __future__ import annotations

__all__ = [
    "DuplicateNameError",
    "MinidlError",
    "MinidlWarning",
    "ModelFileError",
    "PluginLoadWarning",
    "PluginProblem",
    "ShapeError",
    "UnknownNameError",
]


class MinidlError(Exception):
    """Base class of every error minidl raises on purpose."""


class ShapeError(MinidlError, ValueError):
    """An array has a shape the layer, loss or model cannot accept."""


class UnknownNameError(MinidlError, KeyError):
    """A registry look-up found no entry under the given name."""

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(MinidlError, ValueError):
    """Two plugins registered the same name for the same kind of thing."""


class PluginProblem(MinidlError, RuntimeError):
    """A plugin could not be used; raised instead of warned in strict mode."""


class ModelFileError(MinidlError, ValueError):
    """A model file is missing, truncated, corrupted or not a minidl model."""


class MinidlWarning(UserWarning):
    """Base class of every warning minidl issues."""


class PluginLoadWarning(MinidlWarning):
    """A plugin failed to import, register or run one of its hooks.

    The plugin is skipped; every other plugin keeps working. Set
    ``MINIDL_STRICT_PLUGINS=1`` to raise the original error instead.
    """
