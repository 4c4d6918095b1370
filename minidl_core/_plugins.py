"""Finding, loading and isolating plugins.

Plugins are the modules named by entry points of the ``minidl`` group. They
are loaded lazily, the first time a catalogue is needed, one at a time. A
plugin that fails to import or to validate is skipped, and a hook that raises
loses only that hook's contribution; either way a
:class:`~minidl_core.PluginLoadWarning` names the distribution and the cause,
and every other plugin keeps working.

Environment variables, read at load time:

``MINIDL_DISABLE_PLUGINS``
    Comma-separated plugin (entry-point) or distribution names to block.
``MINIDL_DISABLE_PLUGIN_AUTOLOAD``
    Any non-empty value other than ``0``: load no entry point at all. Plugins
    registered with :func:`register_plugin` still count.
``MINIDL_STRICT_PLUGINS``
    Any non-empty value other than ``0``: raise the original error instead of
    warning, for CI and plugin authors.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

import pluggy

from minidl_core import _hookspecs
from minidl_core._errors import PluginLoadWarning, PluginProblem
from minidl_core._registry import KINDS, Entry, PluginInfo, Registry, normalize_name

__all__ = [
    "PLUGIN_API_VERSION",
    "SUPPORTED_PLUGIN_APIS",
    "get_registry",
    "register_plugin",
    "reload_plugins",
    "unregister_plugin",
]

logger = logging.getLogger("minidl")

GROUP = "minidl"

#: The plugin-API version this core implements. A plugin may declare the
#: version it was written for as a module attribute ``MINIDL_PLUGIN_API``.
PLUGIN_API_VERSION = 1
SUPPORTED_PLUGIN_APIS = frozenset({1})

_lock = threading.RLock()
_registry: Registry | None = None
_entry_point_signature: frozenset[tuple[str, str]] | None = None
_manual: dict[str, tuple[Any, str, str]] = {}


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def _blocked_names() -> set[str]:
    raw = os.environ.get("MINIDL_DISABLE_PLUGINS", "")
    return {normalize_name(n) for n in raw.split(",") if n.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=GROUP))


def _signature(eps: Iterable[metadata.EntryPoint]) -> frozenset[tuple[str, str]]:
    return frozenset((ep.name, ep.value) for ep in eps)


def _validators() -> dict[str, Any]:
    from minidl_core._layer import Layer
    from minidl_core._loss import Loss

    def layer(obj: Any) -> str | None:
        if isinstance(obj, type) and issubclass(obj, Layer):
            return None
        return f"expected a subclass of minidl_core.Layer, got {obj!r}"

    def loss(obj: Any) -> str | None:
        if isinstance(obj, type) and issubclass(obj, Loss):
            return None
        return f"expected a subclass of minidl_core.Loss, got {obj!r}"

    def any_callable(obj: Any) -> str | None:
        return None if callable(obj) else f"expected a callable, got {obj!r}"

    return {
        "layer": layer,
        "loss": loss,
        "optimizer": any_callable,
        "metric": any_callable,
        "dataset": any_callable,
    }


class _Loader:
    """Builds one :class:`Registry` from entry points and manual plugins."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(_hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(_hookspecs)
        self.registry = Registry()
        self.strict = _flag("MINIDL_STRICT_PLUGINS")

    def problem(self, info: PluginInfo, message: str, error: BaseException) -> None:
        message = "; ".join(line.strip() for line in message.splitlines() if line)
        info.problems.append(message)
        if self.strict:
            raise PluginProblem(
                f"plugin '{info.name}' from distribution '{info.distribution}': "
                f"{message}"
            ) from error
        warnings.warn(
            f"minidl plugin '{info.name}' from distribution "
            f"'{info.distribution}': {message}",
            PluginLoadWarning,
            stacklevel=4,
        )

    def load(self) -> Registry:
        blocked = _blocked_names()
        if not _flag("MINIDL_DISABLE_PLUGIN_AUTOLOAD"):
            seen_distributions: set[str] = set()
            for ep in _entry_points():
                dist = ep.dist
                dist_name = dist.metadata["Name"] if dist is not None else "unknown"
                version = dist.version if dist is not None else ""
                # One distribution found twice on the path (a stale egg-info
                # beside its dist-info, an editable install) registers once.
                key = f"{normalize_name(dist_name)}:{ep.name}"
                if key in seen_distributions:
                    continue
                seen_distributions.add(key)
                plugin_name = ep.name
                if plugin_name in self.registry.plugins:
                    plugin_name = f"{dist_name}:{ep.name}"
                info = PluginInfo(plugin_name, dist_name, version, module=ep.value)
                self.registry.plugins[plugin_name] = info
                if {normalize_name(ep.name), normalize_name(dist_name)} & blocked:
                    info.blocked = True
                    continue
                try:
                    # A plugin that prints while importing must not corrupt
                    # output a machine reads, such as `minidl plugins --json`.
                    with contextlib.redirect_stdout(sys.stderr):
                        plugin = ep.load()
                except (Exception, SystemExit) as error:
                    self.problem(
                        info, f"skipped, import failed: {_describe(error)}", error
                    )
                    continue
                self.register(plugin, info)
        for name, (plugin, dist_name, version) in _manual.items():
            info = PluginInfo(name, dist_name, version, module=_module_name(plugin))
            self.registry.plugins[name] = info
            if {normalize_name(name), normalize_name(dist_name)} & blocked:
                info.blocked = True
                continue
            self.register(plugin, info)
        self.collect()
        return self.registry

    def register(self, plugin: Any, info: PluginInfo) -> None:
        api = getattr(plugin, "MINIDL_PLUGIN_API", None)
        if api is not None and api not in SUPPORTED_PLUGIN_APIS:
            fits = ", ".join(str(v) for v in sorted(SUPPORTED_PLUGIN_APIS))
            error = PluginProblem(f"plugin API {api!r}")
            self.problem(
                info,
                f"skipped, written for minidl plugin API {api!r}, but this minidl "
                f"supports {fits}; install a version of the plugin made for "
                f"plugin API {fits}",
                error,
            )
            return
        try:
            self.pm.register(plugin, name=info.name)
        except (pluggy.PluginValidationError, ValueError) as error:
            self.problem(info, f"skipped, invalid hook implementation: {error}", error)
            return
        # A misspelt hook name would otherwise be ignored without a word.
        for caller in self.pm.get_hookcallers(plugin) or []:
            if not caller.has_spec():
                self.problem(
                    info,
                    f"skipped, unknown hook {caller.name!r}; known hooks are "
                    + ", ".join(sorted(KINDS.values())),
                    PluginProblem(caller.name),
                )
                self.pm.unregister(plugin)
                return
            info.hooks.append(caller.name)

    def collect(self) -> None:
        validators = _validators()
        for kind, hook_name in KINDS.items():
            caller = getattr(self.pm.hook, hook_name)
            # Called one implementation at a time so that one raising hook
            # costs only its own plugin's contribution.
            for impl in reversed(caller.get_hookimpls()):
                info = self.registry.plugins[impl.plugin_name]
                try:
                    result = impl.function()
                    items = _as_items(result)
                except Exception as error:
                    self.problem(
                        info,
                        f"hook {hook_name} raised {_describe(error)}; nothing "
                        "from that hook is registered",
                        error,
                    )
                    continue
                for name, obj in items:
                    reason = validators[kind](obj)
                    if reason is not None:
                        self.problem(
                            info,
                            f"{kind} {name!r} refused: {reason}",
                            PluginProblem(reason),
                        )
                        continue
                    self.registry.add(
                        Entry(
                            kind, name, obj, info.name, info.distribution, info.version
                        )
                    )
                    info.registered.setdefault(kind, []).append(name)
        for bucket in self.registry.conflicts():
            for entry in bucket:
                others = [e for e in bucket if e.plugin != entry.plugin]
                info = self.registry.plugins[entry.plugin]
                info.problems.append(
                    f"{entry.kind} name {entry.name!r} is also registered by "
                    + ", ".join(f"'{o.distribution}'" for o in others)
                )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _module_name(plugin: Any) -> str:
    return getattr(plugin, "__name__", type(plugin).__name__)


def _as_items(result: Any) -> list[tuple[str, Any]]:
    if result is None:
        return []
    if isinstance(result, Mapping):
        items = list(result.items())
    elif isinstance(result, Iterable) and not isinstance(result, str | bytes):
        items = [(getattr(obj, "__name__", None), obj) for obj in result]
    else:
        raise TypeError(
            f"expected a mapping of name to object or an iterable of named "
            f"objects, got {type(result).__name__}"
        )
    for name, obj in items:
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"every entry needs a non-empty str name; {obj!r} has none")
    return items


def get_registry() -> Registry:
    """The catalogue, loading plugins on first use."""
    global _registry, _entry_point_signature
    with _lock:
        if _registry is None:
            _entry_point_signature = _signature(_entry_points())
            _registry = _Loader().load()
        return _registry


def refresh_if_installed() -> bool:
    """Reload when the set of entry points changed since the last load.

    Lets a package installed while the program runs take effect at the next
    look-up that would otherwise fail. Returns whether a reload happened.
    """
    with _lock:
        if _registry is not None and _signature(_entry_points()) == (
            _entry_point_signature
        ):
            return False
        reload_plugins()
        return True


def reload_plugins() -> Registry:
    """Forget the loaded catalogue and load every plugin again."""
    global _registry
    with _lock:
        _registry = None
        return get_registry()


def register_plugin(
    plugin: Any,
    name: str | None = None,
    *,
    distribution: str = "(registered at run time)",
    version: str = "",
) -> str:
    """Register a plugin object that no entry point names.

    Useful for layers defined in a script or a notebook, and in tests. The
    catalogue is reloaded so the plugin's names are usable at once.

    Args:
        plugin: A module, class or object with hook implementations.
        name: The plugin's name; defaults to the module or class name.
        distribution: Shown in listings and errors as its origin.
        version: Shown beside the distribution.

    Returns:
        The name the plugin was registered under.
    """
    plugin_name = name or _module_name(plugin)
    if inspect.ismodule(plugin) or hasattr(plugin, "__dict__"):
        _manual[plugin_name] = (plugin, distribution, version)
    else:
        raise TypeError(f"plugin must be a module or an object, got {plugin!r}")
    reload_plugins()
    return plugin_name


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin`."""
    if name not in _manual:
        raise KeyError(f"no plugin named {name!r} was registered at run time")
    del _manual[name]
    reload_plugins()
