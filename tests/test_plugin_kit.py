"""The plugin authors' kit: the conformance suite catches broken classes, the
plugin-API version is enforced, the scaffold writes a working plugin, and
``minidl plugins --verbose`` shows hook order and where names come from.
"""

from __future__ import annotations

import importlib
import sys
import tomllib
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import minidl_core
from minidl_core import Layer, Loss, PluginLoadWarning, hookimpl
from minidl_core._cli import main
from minidl_core._plugins import SUPPORTED_PLUGIN_APIS
from minidl_core._scaffold import new_plugin, plugin_names
from minidl_core.testing import (
    LAYER_CHECKS,
    ConformanceError,
    Tolerance,
    check_layer,
    check_loss,
)

# Layers and losses that each break one property.


class Scale(Layer):
    """A correct layer: one learned factor per feature."""

    def __init__(self, input_layer=None, Trainable=True, *, init=1.0, name=None):
        super().__init__(input_layer, Trainable, name=name)
        self.init = init

    def init_params(self, key, input_shape):
        return {"scale": jnp.full(input_shape[-1:], self.init, jnp.float32)}

    def __call__(self, x, params):
        return x * params["scale"]


@jax.custom_vjp
def _times(x, s):
    return x * s


def _times_fwd(x, s):
    return x * s, (x, s)


def _times_bwd(res, g):
    x, s = res
    # Wrong on purpose: the factor's gradient is doubled.
    return g * s, jnp.sum(2.0 * g * x, axis=0)


_times.defvjp(_times_fwd, _times_bwd)


class WrongGradient(Scale):
    def __call__(self, x, params):
        return _times(x, params["scale"])


class LyingShape(Scale):
    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


class IgnoresTrainable(Scale):
    def set_trainables(self, params, trainables):
        trainables[self.name] = params[self.name]
        return trainables


class ForgetsOption(Scale):
    def __init__(self, input_layer=None, Trainable=True, *, factor=1.0, name=None):
        super().__init__(input_layer, Trainable, name=name, init=factor)


class ArrayConfig(Scale):
    def __init__(self, input_layer=None, Trainable=True, *, init=1.0, name=None):
        super().__init__(input_layer, Trainable, name=name, init=init)
        self.init = np.float32(init)


class PythonBranch(Layer):
    """Branches on values in Python: fine eagerly, broken under jit."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def __call__(self, x, params):
        return x if float(jnp.sum(x)) > 0 else -x


class Jittery(Layer):
    """Different every call, even with the same key."""

    calls = 0

    def __call__(self, x, params):
        type(self).calls += 1
        return x + 1e-3 * type(self).calls


class SilentBroadcast(Loss):
    def __call__(self, y_true, y_pred):
        return jnp.mean(jnp.square(jnp.asarray(y_true) - jnp.asarray(y_pred)))


class NaiveBinary(Loss):
    def per_sample(self, y_true, y_pred):
        self.check_shapes(y_true, y_pred)
        terms = y_true * jnp.log(y_pred) + (1 - y_true) * jnp.log(1 - y_pred)
        return -jnp.mean(terms, axis=-1)


class NotScalar(Loss):
    def __call__(self, y_true, y_pred):
        self.check_shapes(y_true, y_pred)
        return jnp.square(jnp.asarray(y_true) - jnp.asarray(y_pred))


class NeedsArgument(Loss):
    def __init__(self, power):
        super().__init__()
        self.power = power

    def per_sample(self, y_true, y_pred):
        self.check_shapes(y_true, y_pred)
        diff = jnp.abs(jnp.asarray(y_true) - jnp.asarray(y_pred))
        return jnp.mean(diff**self.power, axis=-1)


# The conformance suite.


def test_a_correct_layer_passes_every_check() -> None:
    report = check_layer(Scale, {"init": 0.5}, input_shape=(3,))
    assert [r.name for r in report.results] == list(LAYER_CHECKS)
    assert not report.failed
    assert "Scale(init=0.5): 9 passed" in str(report)


@pytest.mark.parametrize(
    ("cls", "config", "check", "match"),
    [
        (WrongGradient, {}, "gradients", r"parameter \['scale'\].*max abs error"),
        (LyingShape, {}, "output_shape", r"\(2, 3\).*promises \(2, 4\)"),
        (IgnoresTrainable, {}, "trainable", r"Trainable=False: after one.*differs"),
        (ForgetsOption, {"factor": 2.0}, "config", r"'factor' is not stored"),
        (ArrayConfig, {}, "config", r"not JSON-serializable.*'init': 'float32'"),
        (PythonBranch, {}, "jit", r"jit.*raised|raised .*Tracer|Concretization"),
        (Jittery, {}, "determinism", r"training output twice with one key"),
    ],
    ids=[
        "wrong-gradient",
        "lying-shape",
        "ignores-trainable",
        "forgets-option",
        "array-config",
        "python-branch",
        "not-deterministic",
    ],
)
def test_a_broken_layer_fails_the_property_it_breaks(
    cls: type[Layer], config: dict[str, Any], check: str, match: str
) -> None:
    with pytest.raises(ConformanceError, match=match) as caught:
        check_layer(cls, config, input_shape=(3,))
    assert check in caught.value.checks
    assert isinstance(caught.value, AssertionError)
    assert caught.value.report.subject.startswith(cls.__name__)


def test_the_gradient_failure_gives_the_numbers() -> None:
    with pytest.raises(ConformanceError) as caught:
        check_layer(WrongGradient, input_shape=(3,), skip=["vmap"])
    (failure,) = caught.value.failures
    # The doubled gradient of sum(w * x * s) by s is off by exactly its size.
    assert "autodiff" in failure.detail and "finite differences" in failure.detail
    assert "max rel error 1;" in failure.detail
    assert "shape (3,)" in failure.detail


@pytest.mark.parametrize(
    ("cls", "targets", "check", "match"),
    [
        (SilentBroadcast, "regression", "broadcasting", r"\(N,\) against \(N, 1\)"),
        (NaiveBinary, "binary", "edges", r"probabilities 0 and 1.*non-finite"),
        (NotScalar, "regression", "scalar", r"returned shape \(4, 3\)"),
        (NeedsArgument, "regression", "construct", r"no argument"),
    ],
    ids=["silent-broadcast", "naive-log", "not-scalar", "needs-argument"],
)
def test_a_broken_loss_fails_the_property_it_breaks(
    cls: type[Loss], targets: str, check: str, match: str
) -> None:
    config = {"power": 2} if cls is NeedsArgument else {}
    with pytest.raises(ConformanceError, match=match) as caught:
        check_loss(cls, config, targets=targets)
    assert check in caught.value.checks


def test_broadcasting_failure_names_the_broadcast_shape() -> None:
    with pytest.raises(ConformanceError) as caught:
        check_loss(SilentBroadcast, targets="regression", shape=(4, 1))
    assert "broadcasting them makes shape (4, 4)" in str(caught.value)


def test_skip_and_tolerance_options() -> None:
    report = check_layer(
        WrongGradient,
        input_shape=(3,),
        skip=["gradients"],
        tolerance=Tolerance(rtol=1e-3, atol=1e-4),
    )
    assert [r.name for r in report.skipped][:1] == ["gradients"]
    with pytest.raises(ValueError, match=r"unknown check\(s\) gradient;"):
        check_layer(Scale, skip=["gradient"])
    with pytest.raises(ValueError, match="Tolerance: step must be > 0"):
        Tolerance(step=0.0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: check_layer(int), TypeError, r"subclass of minidl_core.Layer.*int"),
        (lambda: check_layer(Scale, input_shape=()), ValueError, r"input_shape"),
        (lambda: check_loss(Scale), TypeError, r"subclass of minidl_core.Loss"),
        (
            lambda: check_loss(NotScalar, targets="ordinal"),
            ValueError,
            r"targets must be one of .*'ordinal'",
        ),
        (
            lambda: check_loss(NotScalar, targets="sparse", shape=(4,)),
            ValueError,
            r"shape \(4,\) does not suit 'sparse'",
        ),
    ],
    ids=["not-a-layer", "empty-shape", "not-a-loss", "bad-targets", "bad-shape"],
)
def test_bad_arguments_are_refused(call: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_the_pytest_fixture_is_the_suite(minidl_conformance: Any) -> None:
    assert minidl_conformance.check_layer is check_layer
    minidl_conformance.check_layer(Scale, input_shape=(2,))


# The plugin-API version.


@pytest.fixture
def runtime_plugins(clean_plugins: None) -> Iterator[list[str]]:
    """Names passed to register_plugin in the test; unregistered after it."""
    names: list[str] = []
    yield names
    # A refused plugin warns at every reload until it is gone itself.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        for name in reversed(names):
            minidl_core.unregister_plugin(name)


def _plugin(*layers: type[Layer], api: int | None = None) -> types.SimpleNamespace:
    plugin = types.SimpleNamespace(minidl_layers=hookimpl(lambda: list(layers)))
    if api is not None:
        plugin.MINIDL_PLUGIN_API = api
    return plugin


class FutureLayer(Scale):
    pass


class CurrentLayer(Scale):
    pass


def test_a_plugin_for_another_api_is_refused_and_others_keep_working(
    runtime_plugins: list[str],
) -> None:
    good = minidl_core.register_plugin(_plugin(CurrentLayer, api=1), name="current")
    runtime_plugins.append(good)
    fits = ", ".join(str(v) for v in sorted(SUPPORTED_PLUGIN_APIS))
    with pytest.warns(PluginLoadWarning) as caught:
        runtime_plugins.append(
            minidl_core.register_plugin(_plugin(FutureLayer, api=99), name="future")
        )
    (warning,) = caught
    message = str(warning.message)
    assert "'future'" in message
    assert f"plugin API 99, but this minidl supports {fits}" in message

    registry = minidl_core.get_registry()
    assert registry.plugins["future"].problems
    assert "FutureLayer" not in registry.names("layer")
    with pytest.raises(minidl_core.UnknownNameError, match="FutureLayer"):
        minidl_core.get_layer("FutureLayer")
    assert minidl_core.get_layer("CurrentLayer") is CurrentLayer
    assert minidl_core.get_layer("Dense").__module__.startswith("minidl_builtins")


def test_a_plugin_without_an_api_version_is_accepted(
    runtime_plugins: list[str],
) -> None:
    runtime_plugins.append(
        minidl_core.register_plugin(_plugin(CurrentLayer), name="unversioned")
    )
    assert minidl_core.get_layer("CurrentLayer") is CurrentLayer


# minidl plugins --verbose.


class FirstLayer(Scale):
    pass


class SecondLayer(Scale):
    pass


def test_plugins_verbose_shows_hook_order_and_origins(
    runtime_plugins: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    for name, cls in (("early", FirstLayer), ("late", SecondLayer)):
        runtime_plugins.append(minidl_core.register_plugin(_plugin(cls), name=name))
    registry = minidl_core.get_registry()
    # The order the catalogue was filled in, which is the order hooks ran.
    ran = []
    for entry in registry.entries("layer"):
        if entry.plugin not in ran:
            ran.append(entry.plugin)

    assert main(["plugins", "--verbose"]) == 0
    out = capsys.readouterr().out
    sections = {block.split(":", 1)[0]: block for block in _sections(out)}
    total = len(ran)
    for position, plugin in enumerate(ran, start=1):
        (order,) = [
            line
            for line in sections[plugin].splitlines()
            if line.startswith("  hook order: ")
        ]
        assert f"minidl_layers {position}/{total}" in order.split(": ", 1)[1].split(
            ", "
        )
    assert ran.index("late") < ran.index("early")
    origin = f"{SecondLayer.__module__}.{SecondLayer.__qualname__}"
    assert f"    SecondLayer <- {origin}" in sections["late"].splitlines()
    assert "    Dense <- minidl_builtins._layers.Dense" in sections["builtins"]


def _sections(out: str) -> list[str]:
    """The listing split into one block per plugin."""
    blocks: list[str] = []
    for line in out.splitlines():
        if line and not line.startswith(" "):
            blocks.append(line)
        elif blocks:
            blocks[-1] += "\n" + line
    return blocks


# The scaffold, in process (the built wheel is tested in test_scaffold.py).


@pytest.mark.parametrize(
    ("name", "module", "entry_point"),
    [
        ("minidl-acme", "minidl_acme", "acme"),
        ("Acme.Layers", "acme_layers", "acme_layers"),
        ("minidl", "minidl", "minidl"),
    ],
    ids=["prefixed", "dotted", "bare"],
)
def test_plugin_names(name: str, module: str, entry_point: str) -> None:
    names = plugin_names(name)
    assert (names["module"], names["entry_point"]) == (module, entry_point)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("bad name", r"'bad name' is not a valid distribution name"),
        ("-acme", r"'-acme' is not a valid distribution name"),
        ("acme-", r"'acme-' is not a valid distribution name"),
        ("3d-layers", r"'3d_layers', which is not a Python identifier"),
        ("class", r"'class', which is not a Python identifier"),
    ],
    ids=["space", "leading-dash", "trailing-dash", "digit-first", "keyword"],
)
def test_bad_plugin_names_are_refused(name: str, match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match):
        new_plugin(name, tmp_path / "project")
    assert not (tmp_path / "project").exists()


def test_scaffold_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FileExistsError, match="already exists and is not an empty"):
        new_plugin("minidl-acme", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_cli_plugin_new(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "acme"
    target.mkdir()  # an empty folder is fine
    assert main(["plugin", "new", "minidl-acme", "--directory", str(target)]) == 0
    assert f"created the minidl plugin minidl-acme in {target}" in (
        capsys.readouterr().out
    )
    assert main(["plugin", "new", "minidl-acme", "--directory", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err


def test_scaffolded_plugin_works_when_registered(
    tmp_path: Path, runtime_plugins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = new_plugin("minidl-kit-demo", tmp_path / "demo")
    meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["entry-points"]["minidl"] == {"kit_demo": "minidl_kit_demo"}
    assert meta["build-system"]["build-backend"] == "hatchling.build"
    assert (root / "tox.ini").is_file() and (root / "README.md").is_file()
    for path in root.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")

    monkeypatch.syspath_prepend(str(root / "src"))
    module = importlib.import_module("minidl_kit_demo")
    try:
        assert module.MINIDL_PLUGIN_API == 1
        runtime_plugins.append(minidl_core.register_plugin(module, name="kit_demo"))
        layer, loss = minidl_core.get_layer("Scale"), minidl_core.get_loss("LogCosh")
        assert not check_layer(layer, {"init": 0.5}, input_shape=(3,)).failed
        assert not check_loss(loss, targets="regression").failed
        # log(cosh(d)) for d = 2, worked by hand: 2 + log1p(e^-4) - log 2.
        expected = 2 + np.log1p(np.exp(-4.0)) - np.log(2.0)
        assert float(loss()([[0.0]], [[2.0]])) == pytest.approx(expected, rel=1e-6)
    finally:
        for name in [n for n in sys.modules if n.startswith("minidl_kit_demo")]:
            del sys.modules[name]
