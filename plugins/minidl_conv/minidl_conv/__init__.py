"""minidl-conv: convolution layers for minidl, shipped as a plugin.

Installing the ``minidl-conv`` distribution makes :class:`Conv2D`,
:class:`MaxPool2D` and :class:`Flatten` usable by name wherever minidl looks a
layer up: ``from minidl_core.layers import Conv2D``, ``type = "Conv2D"`` in a
model spec, and ``minidl layers`` on the command line.

How it gets there: the ``[project.entry-points.minidl]`` table of
``pyproject.toml`` names this module; minidl imports it the first time a
layer is looked up and calls the hook below, marked with ``hookimpl``.
"""

from __future__ import annotations

from minidl_core import Layer, hookimpl

from minidl_conv._layers import Conv2D, Flatten, MaxPool2D

#: The minidl plugin API this plugin is written for. A minidl that does not
#: support it skips the plugin with a warning that says so, rather than
#: failing later in a confusing way.
MINIDL_PLUGIN_API = 1

__all__ = ["MINIDL_PLUGIN_API", "Conv2D", "Flatten", "MaxPool2D", "minidl_layers"]


@hookimpl
def minidl_layers() -> list[type[Layer]]:
    """Contribute the layers; each registers under its class name."""
    return [Conv2D, MaxPool2D, Flatten]
