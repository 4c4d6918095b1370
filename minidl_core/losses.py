"""Every registered loss, as attributes: ``minidl_core.losses.MSE``.

Resolved through the plugin registry at access time; names follow the
registry's rule (case, ``_`` and ``-`` ignored), so ``Kl_divergence`` and
``KLDivergence`` are the same class.
"""

from minidl_core._namespace import namespace_hooks

__getattr__, __dir__ = namespace_hooks("loss")
