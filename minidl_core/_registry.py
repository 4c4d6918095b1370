"""The catalogue of everything plugins contribute, looked up by name."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from minidl_core._errors import DuplicateNameError, UnknownNameError

__all__ = ["KINDS", "Entry", "PluginInfo", "Registry", "normalize_name"]

#: Kind of thing -> the hook that contributes it.
KINDS: dict[str, str] = {
    "layer": "minidl_layers",
    "loss": "minidl_losses",
    "optimizer": "minidl_optimizers",
    "metric": "minidl_metrics",
    "dataset": "minidl_datasets",
}

_IGNORED = re.compile(r"[\s_\-]+")


def normalize_name(name: str) -> str:
    """Return the key a name is looked up by.

    The one rule for case, applied everywhere: names compare
    case-insensitively, with underscores, hyphens and spaces ignored.

    >>> normalize_name("Sparse_Categorical_Crossentropy")
    'sparsecategoricalcrossentropy'
    """
    return _IGNORED.sub("", name).lower()


@dataclass(frozen=True)
class Entry:
    """One registered name and where it came from."""

    kind: str
    name: str
    obj: Any
    plugin: str
    distribution: str
    version: str


@dataclass
class PluginInfo:
    """What one plugin is and what it did at load time."""

    name: str
    distribution: str
    version: str
    module: str = ""
    registered: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    blocked: bool = False

    @property
    def label(self) -> str:
        """``distribution version``, the way users install it."""
        return f"{self.distribution} {self.version}".strip()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "registered": self.registered,
            "hooks": self.hooks,
            "problems": self.problems,
            "blocked": self.blocked,
        }


class Registry:
    """Names of one catalogue, per kind, with their provenance."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, list[Entry]]] = {k: {} for k in KINDS}
        self.plugins: dict[str, PluginInfo] = {}

    def add(self, entry: Entry) -> None:
        """Record ``entry``; a clash is kept and reported at look-up."""
        bucket = self._entries[entry.kind].setdefault(normalize_name(entry.name), [])
        for existing in bucket:
            if existing.obj is entry.obj and existing.plugin == entry.plugin:
                return  # the same object under a second spelling
        bucket.append(entry)

    def conflicts(self) -> Iterator[list[Entry]]:
        """Yield every group of entries that share one name."""
        for per_kind in self._entries.values():
            for bucket in per_kind.values():
                if len({e.plugin for e in bucket}) > 1:
                    yield bucket

    def names(self, kind: str) -> list[str]:
        """Registered names of ``kind``, sorted, each in its own spelling."""
        return sorted(
            (bucket[0].name for bucket in self._entries[kind].values()),
            key=str.lower,
        )

    def entries(self, kind: str) -> list[Entry]:
        """Every entry of ``kind`` (aliases of one object included)."""
        return [e for bucket in self._entries[kind].values() for e in bucket]

    def find(self, kind: str, name: str) -> Entry | None:
        """The entry for ``name``, or ``None``; a clash raises."""
        bucket = self._entries[kind].get(normalize_name(name))
        if not bucket:
            return None
        if len({e.plugin for e in bucket}) > 1:
            owners = " and ".join(
                f"'{e.distribution}' (plugin '{e.plugin}')" for e in bucket
            )
            raise DuplicateNameError(
                f"{kind} name {name!r} is registered by both {owners}; block "
                f"one with MINIDL_DISABLE_PLUGINS={bucket[-1].plugin} or "
                "uninstall it"
            )
        return bucket[0]

    def get(self, kind: str, name: str) -> Entry:
        """The entry for ``name``, or an error listing close matches."""
        if not isinstance(name, str):
            raise TypeError(
                f"{kind} name must be a str, got {type(name).__name__}: {name!r}"
            )
        entry = self.find(kind, name)
        if entry is None:
            raise UnknownNameError(self.unknown_message(kind, name))
        return entry

    def unknown_message(self, kind: str, name: str) -> str:
        """Explain that ``name`` is unknown, with close matches and plugins."""
        by_key = {normalize_name(n): n for n in self.names(kind)}
        close = difflib.get_close_matches(
            normalize_name(name), list(by_key), n=3, cutoff=0.6
        )
        message = f"unknown {kind} {name!r}."
        if close:
            message += " Did you mean: " + ", ".join(by_key[c] for c in close) + "?"
        elif by_key:
            shown = list(by_key.values())
            message += " Known: " + ", ".join(shown[:20])
            message += ", ..." if len(shown) > 20 else "."
        active = [p.label for p in self.plugins.values() if not p.blocked]
        blocked = [p.label for p in self.plugins.values() if p.blocked]
        if active:
            message += " Installed plugins: " + ", ".join(active) + "."
        else:
            message += " No minidl plugin is installed or enabled."
        if blocked:
            message += " Blocked: " + ", ".join(blocked) + "."
        return message
