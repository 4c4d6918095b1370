"""Hook specifications: what a minidl plugin may contribute.

A plugin is any importable module (or object) named by an entry point in the
``minidl`` group. It implements the hooks it needs, marked with
:data:`minidl_core.hookimpl`; the rest it leaves out.

Every hook takes no argument and is called once, the first time anything of
its kind is looked up (and again after :func:`minidl_core.reload_plugins`).
Each returns either a mapping from the name users type to the object, or an
iterable of objects whose ``__name__`` is taken as the name. Names compare
case-insensitively with ``_``, ``-`` and spaces ignored, so ``"Dense"``,
``"dense"`` and ``"DENSE"`` are one name, as are ``"Kl_divergence"`` and
``"KLDivergence"``.

Example:
    A plugin module declaring one layer::

        from minidl_core import Layer, hookimpl

        class Scale(Layer):
            ...

        @hookimpl
        def minidl_layers():
            return [Scale]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from minidl_core._layer import Layer
    from minidl_core._loss import Loss

__all__ = ["hookimpl", "hookspec"]

PROJECT_NAME = "minidl"

#: Marks a function in a plugin as the implementation of a minidl hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: Marks a function as a minidl hook specification.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def minidl_layers() -> Mapping[str, type[Layer]] | Iterable[type[Layer]]:  # type: ignore[empty-body]
    """Contribute layer classes.

    Called once when the layer catalogue is first needed.

    Returns:
        Subclasses of :class:`minidl_core.Layer`, as a mapping from name to
        class or as an iterable of classes named by their ``__name__``. An
        object that is not a ``Layer`` subclass is refused with a
        :class:`~minidl_core.PluginLoadWarning`.
    """


@hookspec
def minidl_losses() -> Mapping[str, type[Loss]] | Iterable[type[Loss]]:  # type: ignore[empty-body]
    """Contribute loss classes.

    Called once when the loss catalogue is first needed. Every loss is also
    usable as a metric under the same name.

    Returns:
        Subclasses of :class:`minidl_core.Loss` whose constructor can be
        called with no argument, as a mapping or an iterable of classes.
    """


@hookspec
def minidl_optimizers() -> Mapping[str, Callable[..., Any]]:  # type: ignore[empty-body]
    """Contribute optimizers.

    Called once when the optimizer catalogue is first needed.

    Returns:
        A mapping from name to a factory. The factory takes the learning rate
        as its first argument (a float or an optax schedule) and keyword
        options, and returns an ``optax.GradientTransformation``.
    """


@hookspec
def minidl_metrics() -> Mapping[str, Callable[..., Any]] | Iterable[Any]:  # type: ignore[empty-body]
    """Contribute metrics.

    Called once when the metric catalogue is first needed.

    Returns:
        A mapping from name to a callable ``metric(y_true, y_pred)`` that
        returns a scalar mean over the batch, or a class whose no-argument
        instances are such callables.
    """


@hookspec
def minidl_datasets() -> Mapping[str, Callable[..., Any]]:  # type: ignore[empty-body]
    """Contribute datasets.

    Called once when the dataset catalogue is first needed.

    Returns:
        A mapping from name to a loader. The loader takes no required
        argument and returns a :class:`minidl_core.Dataset`.
    """
