"""The built-in activations and Dropout against float64 numpy references."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _numeric import central_difference
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minidl_core import Layer
from minidl_core.layers import Dropout, LeakyRelu, Relu, Sigmoid, Softmax, Tanh

RTOL = 1e-5


# Float64 references.


def ref_sigmoid(x: np.ndarray) -> np.ndarray:
    # Written through tanh so that it holds for any x without overflow.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def ref_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_leaky(alpha: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.where(x > 0, x, alpha * x)


CASES = [
    pytest.param(Relu(), lambda x: np.maximum(x, 0.0), id="Relu"),
    pytest.param(Sigmoid(), ref_sigmoid, id="Sigmoid"),
    pytest.param(Tanh(), np.tanh, id="Tanh"),
    pytest.param(Softmax(), ref_softmax, id="Softmax"),
    pytest.param(LeakyRelu(), ref_leaky(0.01), id="LeakyRelu"),
    pytest.param(LeakyRelu(alpha=0.3), ref_leaky(0.3), id="LeakyRelu-0.3"),
]
SHAPES = [pytest.param((3, 4), id="3x4"), pytest.param((2, 3, 5), id="2x3x5")]


def _inputs(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Float32-representable values at least 0.1 away from the kink at 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * 2
    x += np.where(x >= 0, 0.1, -0.1)
    return np.asarray(x, np.float32).astype(np.float64)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("layer", "reference"), CASES)
def test_matches_numpy_reference(
    layer: Layer, reference: Callable[[np.ndarray], np.ndarray], shape: Any
) -> None:
    x = _inputs(shape)
    out = layer(jnp.asarray(x, jnp.float32), {})
    assert out.shape == x.shape
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, reference(x), rtol=RTOL, atol=1e-7)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("layer", "reference"), CASES)
def test_gradient_matches_finite_differences(
    layer: Layer, reference: Callable[[np.ndarray], np.ndarray], shape: Any
) -> None:
    # Weighting the outputs at random checks the whole Jacobian, not its sum.
    x = _inputs(shape)
    weights = _inputs(shape, seed=1)

    def objective(v: jax.Array) -> jax.Array:
        return jnp.sum(layer(v, {}) * jnp.asarray(weights, jnp.float32))

    grad = jax.grad(objective)(jnp.asarray(x, jnp.float32))
    expected = central_difference(lambda v: float(np.sum(reference(v) * weights)), x)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        # A few shapes only: each new shape costs a compilation.
        st.sampled_from([(6,), (2, 3), (2, 1, 3)]),
        elements=st.floats(-30, 30, width=32),
    )
)
def test_random_inputs(x: np.ndarray) -> None:
    x64 = x.astype(np.float64)
    for layer, reference in [(case.values[0], case.values[1]) for case in CASES]:
        got = layer(jnp.asarray(x), {})
        np.testing.assert_allclose(
            got, reference(x64), rtol=RTOL, atol=1e-7, err_msg=type(layer).__name__
        )


def test_softmax_rows_sum_to_one() -> None:
    out = Softmax()(jnp.asarray(_inputs((4, 7)), jnp.float32), {})
    np.testing.assert_allclose(np.sum(out, axis=-1), 1.0, rtol=1e-6)


# Extremes.


def test_softmax_at_plus_minus_1000() -> None:
    x = jnp.asarray([[1000.0, -1000.0], [-1000.0, 1000.0], [1000.0, 1000.0]])
    out = Softmax()(x, {})
    np.testing.assert_array_equal(out, [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    grad = jax.grad(lambda v: jnp.sum(Softmax()(v, {})[:, 0]))(x)
    assert np.all(np.isfinite(grad))


def test_sigmoid_and_tanh_at_plus_minus_1000() -> None:
    x = jnp.asarray([1000.0, -1000.0])
    np.testing.assert_array_equal(Sigmoid()(x, {}), [1.0, 0.0])
    np.testing.assert_array_equal(Tanh()(x, {}), [1.0, -1.0])
    for layer in (Sigmoid(), Tanh()):
        grad = jax.grad(lambda v, f=layer: jnp.sum(f(v, {})))(x)
        np.testing.assert_array_equal(grad, [0.0, 0.0])


# LeakyRelu's slope.


def test_leaky_relu_default_alpha() -> None:
    layer = LeakyRelu()
    assert layer.alpha == 0.01
    assert "0.01" in (LeakyRelu.__doc__ or "")
    np.testing.assert_allclose(layer(jnp.asarray([-2.0, 3.0]), {}), [-0.02, 3.0])


@pytest.mark.parametrize("alpha", [-0.1, -1.0], ids=str)
def test_leaky_relu_rejects_negative_alpha(alpha: float) -> None:
    with pytest.raises(ValueError, match=rf"LeakyRelu: alpha .*{alpha}"):
        LeakyRelu(alpha=alpha)


# Dropout.

KEY = jax.random.key(0)


def _ones_and_more(n: int = 100_000) -> np.ndarray:
    """Non-zero float32 values, so an exact 0 in the output means dropped."""
    return np.random.default_rng(0).uniform(1.0, 2.0, n).astype(np.float32)


def test_dropout_is_identity_outside_training() -> None:
    x = _ones_and_more(100)
    layer = Dropout(0.5)
    np.testing.assert_array_equal(layer(jnp.asarray(x), {}), x)
    np.testing.assert_array_equal(layer(jnp.asarray(x), {}, key=KEY), x)
    np.testing.assert_array_equal(layer(jnp.asarray(x), {}, key=KEY, training=False), x)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.9], ids=str)
def test_dropout_drops_about_fraction_and_rescales(fraction: float) -> None:
    x = _ones_and_more()
    out = np.asarray(Dropout(fraction)(jnp.asarray(x), {}, key=KEY, training=True))

    dropped = out == 0.0
    # The standard error of the dropped share is below 0.0016 for n = 100000.
    assert abs(dropped.mean() - fraction) < 0.01
    kept = ~dropped
    expected = x[kept].astype(np.float64) / (1.0 - fraction)
    np.testing.assert_allclose(out[kept], expected, rtol=1e-6)


def test_dropout_of_everything_gives_zeros() -> None:
    x = jnp.asarray(_ones_and_more(1000))
    layer = Dropout(1.0)
    out = layer(x, {}, key=KEY, training=True)
    np.testing.assert_array_equal(out, np.zeros(1000))
    grad = jax.grad(lambda v: jnp.sum(layer(v, {}, key=KEY, training=True)))(x)
    np.testing.assert_array_equal(grad, np.zeros(1000))


def test_dropout_mask_follows_the_key() -> None:
    x = jnp.asarray(_ones_and_more(1000))
    layer = Dropout(0.5)
    first = np.asarray(layer(x, {}, key=jax.random.key(1), training=True))
    again = np.asarray(layer(x, {}, key=jax.random.key(1), training=True))
    other = np.asarray(layer(x, {}, key=jax.random.key(2), training=True))
    np.testing.assert_array_equal(first, again)
    assert np.any((first == 0) != (other == 0))


def test_dropout_training_needs_a_key() -> None:
    x = jnp.asarray(_ones_and_more(10))
    with pytest.raises(ValueError, match="Dropout"):
        Dropout(0.5)(x, {}, training=True)
    with pytest.raises(ValueError, match="Dropout 'drop'"):
        Dropout(0.5, name="drop")(x, {}, training=True)


@pytest.mark.parametrize("fraction", [-0.1, 1.5], ids=str)
def test_dropout_fraction_must_be_in_unit_interval(fraction: float) -> None:
    with pytest.raises(ValueError, match=rf"Dropout: fraction .*{fraction}"):
        Dropout(fraction)
