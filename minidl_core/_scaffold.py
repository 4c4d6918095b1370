"""``minidl plugin new``: a ready-to-build plugin distribution from templates.

The generated project is the shortest path from nothing to a published
plugin: one example layer, one example loss, the ``minidl`` entry point,
tests that run minidl's conformance suite on both, a tox file and a README.
It builds with hatchling and passes its own tests as generated.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

__all__ = ["new_plugin", "plugin_names"]

# A distribution name as the packaging specifications define it.
_DISTRIBUTION_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.I)

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "${distribution}"
version = "0.1.0"
description = "Layers and losses for minidl."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["minidl>=${minidl_version}"]

[project.optional-dependencies]
test = ["pytest>=8.0"]

# This table makes the distribution a minidl plugin: once it is installed,
# its layers and losses are usable by name wherever minidl looks one up.
[project.entry-points.minidl]
${entry_point} = "${module}"

[tool.hatch.build.targets.wheel]
packages = ["src/${module}"]
# An editable install puts src/ on the path; no other build tool is needed.
dev-mode-dirs = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-ra --strict-markers"
filterwarnings = ["error"]
"""

PACKAGE_INIT = '''\
"""${distribution}: a minidl plugin.

minidl finds this module through the ``minidl`` entry point in
pyproject.toml and calls the hooks below the first time it needs a layer or
a loss. Replace the examples with your own classes and list them here.
"""

from minidl_core import hookimpl

from ${module}._layers import Scale
from ${module}._losses import LogCosh

#: The plugin API this plugin is written for. A minidl that does not support
#: it skips the plugin with a warning naming the versions it supports.
MINIDL_PLUGIN_API = 1

__all__ = ["LogCosh", "Scale"]


@hookimpl
def minidl_layers():
    """Contribute the layers; each registers under its class name."""
    return [Scale]


@hookimpl
def minidl_losses():
    """Contribute the losses; each registers under its class name."""
    return [LogCosh]
'''

LAYERS = '''\
"""The example layer: a learned factor per feature."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from minidl_core import Layer, Params, Shape


class Scale(Layer):
    """Multiplies each feature by a learned factor.

    Args:
        input_layer: The layer before; inferred inside a ``Sequential``.
        Trainable: Whether the factors are trained.
        init: The factors' starting value.
        name: A unique name within the model.

    Input shape: ``(batch, ..., features)``. Output shape: the same.
    """

    def __init__(
        self,
        input_layer: Layer | None = None,
        Trainable: bool = True,
        *,
        init: float = 1.0,
        name: str | None = None,
    ) -> None:
        super().__init__(input_layer, Trainable, name=name)
        if isinstance(init, bool) or not isinstance(init, int | float):
            raise TypeError(f"Scale: init must be a number, got {init!r}")
        # Each constructor argument is kept under its own name, which is all
        # get_config() and from_config() need.
        self.init = float(init)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def init_params(self, key: jax.Array, input_shape: Shape) -> Params:
        return {"scale": jnp.full(input_shape[-1:], self.init, jnp.float32)}

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        return x * params["scale"]
'''

LOSSES = '''\
"""The example loss: log-cosh, smooth near zero and linear far from it."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from minidl_core import Loss


class LogCosh(Loss):
    """The mean of ``log(cosh(y_pred - y_true))``.

    Close to half the squared error for small differences and to the
    absolute error for large ones. Computed as
    ``|d| + log1p(exp(-2|d|)) - log(2)``, finite for any difference.
    """

    def per_sample(self, y_true: Any, y_pred: Any) -> jax.Array:
        """The loss of each example, shape ``(batch,)``.

        Raises:
            ShapeError: ``y_true`` and ``y_pred`` differ in shape.
        """
        self.check_shapes(y_true, y_pred)
        y_pred = jnp.asarray(y_pred)
        if not jnp.issubdtype(y_pred.dtype, jnp.floating):
            y_pred = y_pred.astype(jnp.float32)
        size = jnp.abs(y_pred - jnp.asarray(y_true).astype(y_pred.dtype))
        values = size + jnp.log1p(jnp.exp(-2.0 * size)) - math.log(2.0)
        return jnp.mean(values.reshape(values.shape[0], -1), axis=1)
'''

TESTS = '''\
"""The plugin's classes pass minidl's conformance suite, and minidl finds them."""

import math

import pytest
from minidl_core import get_layer, get_loss

from ${module} import LogCosh, Scale


@pytest.mark.parametrize(
    ("config", "input_shape"),
    [({}, (3,)), ({"init": 0.5}, (2, 4))],
    ids=["default-3", "init0.5-2x4"],
)
def test_scale_conforms(minidl_conformance, config, input_shape):
    minidl_conformance.check_layer(Scale, config, input_shape=input_shape)


def test_log_cosh_conforms(minidl_conformance):
    minidl_conformance.check_loss(LogCosh, targets="regression")


def test_log_cosh_value():
    # One example, two features: differences 1 and 0.
    expected = (math.log(math.cosh(1.0)) + 0.0) / 2
    value = LogCosh()([[0.0, 2.0]], [[1.0, 2.0]])
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_minidl_finds_the_plugin():
    assert get_layer("Scale") is Scale
    assert get_loss("LogCosh") is LogCosh
'''

TOX = """\
[tox]
env_list = py311, py312, py313

[testenv]
description = run the tests, minidl's conformance suite included
extras = test
commands = pytest {posargs}
"""

README = """\
# ${distribution}

A plugin for [minidl](https://pypi.org/project/minidl/): the layer `Scale`
and the loss `LogCosh`, usable by name once the distribution is installed.

```console
$$ pip install ${distribution}
$$ minidl layers
```

```python
from minidl_core import Sequential
from minidl_core.layers import Dense, Scale

model = Sequential([Dense(units=8), Scale(init=0.5)], input_shape=4)
```

## Developing

```console
$$ pip install -e ".[test]"
$$ pytest
```

The tests run minidl's conformance suite on every class (shapes, `jax.jit`,
`jax.vmap`, gradients against finite differences, freezing, config round
trips); a new class gets one line in `tests/`.

## Publishing

```console
$$ python -m build
$$ twine check dist/*
$$ twine upload dist/*
```
"""

GITIGNORE = """\
__pycache__/
*.egg-info/
.tox/
build/
dist/
"""


def plugin_names(name: str) -> dict[str, str]:
    """The names a plugin project called ``name`` uses.

    Args:
        name: The distribution name, e.g. ``"minidl-acme"``.

    Returns:
        ``distribution`` (as given), ``module`` (``minidl_acme``) and
        ``entry_point`` (``acme``: the module without a ``minidl_`` prefix).

    Raises:
        ValueError: ``name`` is not a valid distribution name, or its module
            name is not a Python identifier.
    """
    if not isinstance(name, str) or not _DISTRIBUTION_NAME.match(name):
        raise ValueError(
            f"plugin name {name!r} is not a valid distribution name: use "
            "letters, digits, '-', '_' and '.', starting and ending with a "
            "letter or digit (e.g. minidl-acme)"
        )
    module = re.sub(r"[-_.]+", "_", name).lower()
    if not module.isidentifier() or keyword.iskeyword(module):
        raise ValueError(
            f"plugin name {name!r} gives the module name {module!r}, which is "
            "not a Python identifier; start the name with a letter"
        )
    entry_point = module.removeprefix("minidl_") or module
    return {"distribution": name, "module": module, "entry_point": entry_point}


def _minidl_version() -> str:
    from minidl_core import __version__

    return ".".join(__version__.split(".")[:2])


def new_plugin(name: str, directory: str | Path | None = None) -> Path:
    """Write a new plugin project called ``name``.

    Args:
        name: The distribution name, e.g. ``"minidl-acme"``; the package is
            ``minidl_acme`` and the entry point ``acme``.
        directory: The project folder to create; default ``./NAME``. It may
            exist if it is empty.

    Returns:
        The project folder.

    Raises:
        ValueError: ``name`` is not a valid distribution name.
        FileExistsError: ``directory`` exists and is a file or not empty.
    """
    names = plugin_names(name)
    root = Path(name if directory is None else directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{str(root)!r} already exists and is not an empty folder; nothing "
            "was written (choose another --directory)"
        )
    values = {**names, "minidl_version": _minidl_version()}
    module = names["module"]
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        "tox.ini": TOX,
        ".gitignore": GITIGNORE,
        f"src/{module}/__init__.py": PACKAGE_INIT,
        f"src/{module}/_layers.py": LAYERS,
        f"src/{module}/_losses.py": LOSSES,
        f"src/{module}/py.typed": "",
        f"tests/test_{module}.py": TESTS,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values), encoding="utf-8")
    return root
