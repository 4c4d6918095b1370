"""Every registered layer, as attributes: ``minidl_core.layers.Dense``.

Attributes are resolved through the plugin registry at access time, so a
layer from a plugin installed a moment ago appears here too. Names follow the
registry's rule: case, ``_`` and ``-`` are ignored.
"""

from minidl_core._namespace import namespace_hooks

__getattr__, __dir__ = namespace_hooks("layer")
