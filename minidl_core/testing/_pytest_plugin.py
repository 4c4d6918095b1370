"""The pytest plugin minidl installs: conformance checks as a fixture.

pytest loads this module through the ``pytest11`` entry point of the
``minidl`` distribution, so any project whose test environment has minidl
installed can use the fixture with no ``conftest.py``::

    def test_scale_conforms(minidl_conformance):
        minidl_conformance.check_layer(Scale, input_shape=(3,))

The suite itself is imported only when a test asks for the fixture, so
projects that never use it pay nothing beyond importing this module.
"""

from __future__ import annotations

from types import ModuleType

import pytest

__all__ = ["minidl_conformance"]


@pytest.fixture
def minidl_conformance() -> ModuleType:
    """The :mod:`minidl_core.testing` module, for one-line conformance tests.

    Returns:
        The module; call its ``check_layer`` or ``check_loss``. A failed
        check raises :class:`~minidl_core.testing.ConformanceError`, which
        pytest reports as a failed assertion naming the property.
    """
    from minidl_core import testing

    return testing
