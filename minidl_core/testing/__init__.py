"""Tools for plugin authors: the conformance suite every layer and loss passes.

Call :func:`check_layer` or :func:`check_loss` on your classes from a test.
Each runs a fixed list of properties (shapes, ``jit``, ``vmap``, gradients
against finite differences, freezing, config round trips, finite values at
the edges, refusal of silent broadcasts) and raises one
:class:`ConformanceError` naming every property that failed and by how much.
The builtin layers and losses pass the same suite.

With pytest, the ``minidl_conformance`` fixture (installed with minidl, no
``conftest.py`` needed) is this module::

    from my_plugin import LogCosh, Scale

    def test_scale(minidl_conformance):
        minidl_conformance.check_layer(Scale, {"init": 2.0}, input_shape=(3,))

    def test_log_cosh(minidl_conformance):
        minidl_conformance.check_loss(LogCosh, targets="regression")
"""

from minidl_core.testing._conformance import (
    CheckResult,
    ConformanceError,
    ConformanceReport,
    Tolerance,
)
from minidl_core.testing._layer_checks import LAYER_CHECKS, away_from_zero, check_layer
from minidl_core.testing._loss_checks import LOSS_CHECKS, TARGET_KINDS, check_loss

__all__ = [
    "LAYER_CHECKS",
    "LOSS_CHECKS",
    "TARGET_KINDS",
    "CheckResult",
    "ConformanceError",
    "ConformanceReport",
    "Tolerance",
    "away_from_zero",
    "check_layer",
    "check_loss",
]
