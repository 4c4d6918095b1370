"""Tests of the minidl-conv plugin; run them with the plugin installed.

Every expected value comes from somewhere other than the code under test:
loops over numpy arrays, a hand-worked example, or finite differences.
"""

from __future__ import annotations

import doctest
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

try:
    import minidl_conv._layers
    from minidl_conv import Conv2D, Flatten, MaxPool2D
except ImportError as error:  # pragma: no cover - a set-up mistake
    raise ImportError(
        "the minidl-conv tests need the plugin installed, e.g. "
        "pip install -e plugins/minidl_conv"
    ) from error

from minidl_core import Sequential, ShapeError, get_entry
from minidl_core._spec import model_from_spec
from minidl_core.layers import Dense

# Independent numpy references.


def same_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    """Padding before and after for "same": the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def pad_images(
    x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], value: float
) -> np.ndarray:
    top, bottom = same_padding(x.shape[1], window[0], strides[0])
    left, right = same_padding(x.shape[2], window[1], strides[1])
    widths = ((0, 0), (top, bottom), (left, right), (0, 0))
    return np.pad(x, widths, constant_values=value)


def windows(x: np.ndarray, window: tuple[int, int], strides: tuple[int, int]) -> Any:
    """Yield (row, column, patch) for every whole window of ``x``."""
    rows = (x.shape[1] - window[0]) // strides[0] + 1
    cols = (x.shape[2] - window[1]) // strides[1] + 1
    for i in range(rows):
        for j in range(cols):
            top, left = i * strides[0], j * strides[1]
            yield i, j, x[:, top : top + window[0], left : left + window[1], :]


def conv_reference(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    strides: tuple[int, int],
    padding: str,
) -> np.ndarray:
    x = x.astype(np.float64)
    window = w.shape[:2]
    if padding == "same":
        x = pad_images(x, window, strides, 0.0)
    rows = (x.shape[1] - window[0]) // strides[0] + 1
    cols = (x.shape[2] - window[1]) // strides[1] + 1
    out = np.zeros((x.shape[0], rows, cols, w.shape[3]))
    for i, j, patch in windows(x, window, strides):
        out[:, i, j, :] = np.einsum("nhwc,hwcf->nf", patch, w)
    return out + b


def maxpool_reference(
    x: np.ndarray, pool: tuple[int, int], strides: tuple[int, int], padding: str
) -> np.ndarray:
    if padding == "same":
        x = pad_images(x, pool, strides, -np.inf)
    rows = (x.shape[1] - pool[0]) // strides[0] + 1
    cols = (x.shape[2] - pool[1]) // strides[1] + 1
    out = np.zeros((x.shape[0], rows, cols, x.shape[3]))
    for i, j, patch in windows(x, pool, strides):
        out[:, i, j, :] = patch.max(axis=(1, 2))
    return out


def random(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# Conv2D.

CONV_CASES = [
    pytest.param((2, 7, 6, 3), 4, 3, 1, "valid", id="3x3-valid"),
    pytest.param((2, 7, 6, 3), 4, 3, 1, "same", id="3x3-same"),
    pytest.param((2, 7, 8, 2), 3, (2, 3), 2, "valid", id="2x3-stride2-valid"),
    pytest.param((2, 7, 6, 3), 2, 4, 2, "same", id="4x4-stride2-same-uneven-pad"),
    pytest.param((1, 9, 7, 1), 2, 3, (3, 2), "same", id="3x3-stride3x2-same"),
    pytest.param((3, 5, 5, 2), 5, 1, 1, "valid", id="1x1-valid"),
    pytest.param((1, 4, 4, 1), 1, 4, 1, "valid", id="kernel-as-big-as-image"),
]


@pytest.mark.parametrize(
    ("shape", "filters", "kernel", "strides", "padding"), CONV_CASES
)
def test_conv2d_matches_numpy(
    shape: tuple[int, ...], filters: int, kernel: Any, strides: Any, padding: str
) -> None:
    layer = Conv2D(
        filters=filters, kernel_size=kernel, strides=strides, padding=padding
    )
    params = {
        "w": random((*layer.kernel_size, shape[-1], filters), 2),
        "b": random((filters,), 3),
    }
    x = random(shape)

    y = np.asarray(layer(jnp.asarray(x), params))

    expected = conv_reference(x, params["w"], params["b"], layer.strides, padding)
    assert y.shape == expected.shape
    assert y.shape[1:] == layer.compute_output_shape(shape[1:])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_conv2d_hand_worked_example() -> None:
    # 1..9 in a 3x3 image, a 2x2 kernel of ones: each output sums a 2x2 block.
    x = jnp.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    params = {"w": jnp.ones((2, 2, 1, 1)), "b": jnp.array([0.5])}
    y = Conv2D(filters=1, kernel_size=2)(x, params)
    np.testing.assert_array_equal(y[0, :, :, 0], [[12.5, 16.5], [24.5, 28.5]])


def test_conv2d_parameters_have_the_documented_shapes() -> None:
    layer = Conv2D(filters=5, kernel_size=(2, 3))
    params = layer.init_params(jax.random.key(0), (8, 8, 3))
    assert params["w"].shape == (2, 3, 3, 5)
    assert params["w"].dtype == jnp.float32
    np.testing.assert_array_equal(params["b"], np.zeros(5))
    limit = np.sqrt(6.0 / (2 * 3 * 3 + 2 * 3 * 5))
    assert float(jnp.abs(params["w"]).max()) <= limit


@pytest.mark.parametrize(
    ("strides", "padding"),
    [(1, "valid"), (2, "same")],
    ids=["stride1-valid", "stride2-same"],
)
def test_conv2d_gradients_match_finite_differences(strides: int, padding: str) -> None:
    layer = Conv2D(filters=2, kernel_size=3, strides=strides, padding=padding)
    with jax.enable_x64(True):
        x = jnp.asarray(random((2, 5, 4, 2), 0), jnp.float64)
        params = {
            "w": jnp.asarray(random((3, 3, 2, 2), 1), jnp.float64),
            "b": jnp.asarray(random((2,), 2), jnp.float64),
        }

        def loss(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
            return jnp.sum(jnp.tanh(layer(x, params)))

        grads = jax.grad(loss, argnums=(0, 1))(params, x)
        loss_at = jax.jit(loss)
        checks = [(grads[0]["w"], params, "w"), (grads[0]["b"], params, "b")]
        for grad, tree, key in checks:
            expected = _finite_differences(
                lambda v, key=key, tree=tree: loss_at({**tree, key: v}, x), tree[key]
            )
            np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)
        expected_dx = _finite_differences(lambda v: loss_at(params, v), x)
        np.testing.assert_allclose(grads[1], expected_dx, rtol=1e-6, atol=1e-8)


def _finite_differences(f: Any, value: jax.Array, step: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f`` at ``value``, entry by entry."""
    base = np.asarray(value, np.float64)
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        up, down = base.copy(), base.copy()
        up[index] += step
        down[index] -= step
        grad[index] = (float(f(jnp.asarray(up))) - float(f(jnp.asarray(down)))) / (
            2 * step
        )
    return grad


# MaxPool2D.

POOL_CASES = [
    pytest.param((2, 6, 8, 3), 2, None, "valid", id="2x2-default"),
    pytest.param((2, 7, 7, 2), 2, None, "valid", id="2x2-odd-size-drops-edge"),
    pytest.param((1, 7, 8, 2), 3, 2, "valid", id="3x3-stride2-valid"),
    pytest.param((1, 7, 8, 2), 3, 2, "same", id="3x3-stride2-same"),
    pytest.param((2, 5, 6, 1), (2, 3), 1, "same", id="2x3-stride1-same"),
    pytest.param((2, 7, 7, 2), 2, None, "same", id="2x2-same-odd-size"),
]


@pytest.mark.parametrize(("shape", "pool", "strides", "padding"), POOL_CASES)
def test_maxpool2d_matches_numpy(
    shape: tuple[int, ...], pool: Any, strides: Any, padding: str
) -> None:
    # All values negative, so padding with zeros instead of -inf would show.
    x = random(shape) - 10.0
    layer = MaxPool2D(pool_size=pool, strides=strides, padding=padding)

    y = np.asarray(layer(jnp.asarray(x), {}))

    expected = maxpool_reference(x, layer.pool_size, layer.strides, padding)
    assert y.shape == expected.shape
    assert y.shape[1:] == layer.compute_output_shape(shape[1:])
    np.testing.assert_array_equal(y, expected)


def test_maxpool2d_strides_default_to_pool_size() -> None:
    assert MaxPool2D(pool_size=3).strides == (3, 3)
    assert MaxPool2D(pool_size=3, strides=1).strides == (1, 1)


def test_maxpool2d_gradient_goes_to_each_window_maximum() -> None:
    x = jnp.asarray(random((1, 4, 4, 1)))
    grad = jax.grad(lambda x: jnp.sum(MaxPool2D()(x, {})))(x)
    expected = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            block = np.asarray(x[0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 0])
            row, col = np.unravel_index(block.argmax(), block.shape)
            expected[2 * i + row, 2 * j + col] = 1.0
    np.testing.assert_array_equal(grad[0, :, :, 0], expected)


def test_maxpool2d_accepts_integer_images() -> None:
    x = jnp.arange(16, dtype=jnp.int32).reshape(1, 4, 4, 1)
    y = MaxPool2D()(x, {})
    np.testing.assert_array_equal(y[0, :, :, 0], [[5.0, 7.0], [13.0, 15.0]])


# Flatten.


@pytest.mark.parametrize(
    "shape",
    [(3, 4, 5, 2), (2, 7), (1, 2, 3)],
    ids=["image", "already-flat", "rank-2-examples"],
)
def test_flatten_matches_numpy_reshape(shape: tuple[int, ...]) -> None:
    x = random(shape)
    y = np.asarray(Flatten()(jnp.asarray(x), {}))
    np.testing.assert_array_equal(y, x.reshape(shape[0], -1))
    assert y.shape[1:] == Flatten().compute_output_shape(shape[1:])


def test_flatten_keeps_an_empty_batch() -> None:
    assert Flatten()(jnp.zeros((0, 3, 3, 2)), {}).shape == (0, 18)


# Through a model.


def test_shapes_are_inferred_through_a_model() -> None:
    model = Sequential(
        [Conv2D(filters=4), MaxPool2D(), Flatten(), Dense(units=10)],
        input_shape=(8, 8, 1),
    )
    assert [model.shapes[layer.name or ""] for layer in model.layers] == [
        (6, 6, 4),
        (3, 3, 4),
        (36,),
        (10,),
    ]
    assert model.output_shape == (10,)
    conv, _, _, dense = model.layers
    assert model.params is not None
    assert model.params[conv.name or ""]["w"].shape == (3, 3, 1, 4)
    assert model.params[dense.name or ""]["w"].shape == (36, 10)


def test_model_output_matches_the_numpy_pipeline() -> None:
    model = Sequential([Conv2D(filters=3, padding="same"), MaxPool2D(), Flatten()])
    x = random((5, 6, 6, 2))

    y = model.predict(x)

    assert model.input_shape == (6, 6, 2)
    assert model.params is not None
    conv = model.params[model.layers[0].name or ""]
    features = conv_reference(
        x, np.asarray(conv["w"]), np.asarray(conv["b"]), (1, 1), "same"
    )
    expected = maxpool_reference(features, (2, 2), (2, 2), "valid").reshape(5, -1)
    assert y.shape == (5, 27)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_frozen_conv2d_parameters_are_not_trainable() -> None:
    model = Sequential(
        [Conv2D(filters=2, Trainable=False, name="conv"), Flatten(), Dense(units=1)],
        input_shape=(4, 4, 1),
    )
    assert model.params is not None
    trainable, frozen = model.partition(model.params)
    assert set(frozen) == {"conv"}
    assert "conv" not in trainable


def test_model_from_a_spec_naming_the_layers() -> None:
    spec = {
        "layers": [
            {"type": "Conv2D", "filters": 2, "kernel_size": [3, 3], "padding": "same"},
            {"type": "max_pool2d"},
            {"type": "flatten"},
            {"type": "Dense", "units": 3},
        ]
    }
    model, loss = model_from_spec(spec, input_shape=(4, 4, 1))
    assert loss is None
    assert [type(layer) for layer in model.layers[:3]] == [Conv2D, MaxPool2D, Flatten]
    assert model.output_shape == (3,)


# Registration and configuration.


@pytest.mark.parametrize("name", ["Conv2D", "conv2d", "MaxPool2D", "Flatten"])
def test_layers_are_registered_by_the_plugin(name: str) -> None:
    entry = get_entry("layer", name)
    assert entry.distribution == "minidl-conv"
    assert entry.plugin == "conv"
    assert entry.obj in (Conv2D, MaxPool2D, Flatten)


def test_plugin_declares_its_api_version() -> None:
    assert minidl_conv.MINIDL_PLUGIN_API == 1


@pytest.mark.parametrize(
    "layer",
    [
        Conv2D(filters=4, kernel_size=(3, 5), strides=2, padding="SAME", name="c"),
        MaxPool2D(pool_size=3, strides=(1, 2), padding="same", Trainable=False),
        Flatten(name="flat"),
    ],
    ids=["Conv2D", "MaxPool2D", "Flatten"],
)
def test_config_round_trips_through_json(layer: Any) -> None:
    config = layer.get_config()
    rebuilt = type(layer).from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config


def test_conv2d_config_holds_every_argument() -> None:
    layer = Conv2D(filters=4, kernel_size=(3, 5), strides=2, padding="SAME")
    assert layer.get_config() == {
        "filters": 4,
        "kernel_size": [3, 5],
        "strides": [2, 2],
        "padding": "same",
        "Trainable": True,
        "name": None,
    }


def test_docstring_examples_run() -> None:
    results = doctest.testmod(minidl_conv._layers)
    assert results.attempted >= 3
    assert results.failed == 0


# Bad arguments and shapes.


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Conv2D(), TypeError, r"Conv2D: filters is required"),
        (
            lambda: Conv2D(filters=0),
            ValueError,
            r"Conv2D: filters must be a positive int, got 0",
        ),
        (lambda: Conv2D(filters=2.5), ValueError, r"filters .* got 2\.5"),
        (lambda: Conv2D(filters=True), ValueError, r"filters .* got True"),
        (
            lambda: Conv2D(filters=2, kernel_size=0),
            ValueError,
            r"Conv2D: kernel_size must be a positive int or a pair .* got 0",
        ),
        (
            lambda: Conv2D(filters=2, kernel_size=(3,)),
            ValueError,
            r"kernel_size .* got \(3,\)",
        ),
        (
            lambda: Conv2D(filters=2, kernel_size="3"),
            ValueError,
            r"kernel_size .* got '3'",
        ),
        (
            lambda: Conv2D(filters=2, strides=(1, -1)),
            ValueError,
            r"Conv2D: strides .* got \(1, -1\)",
        ),
        (
            lambda: Conv2D(filters=2, padding="full"),
            ValueError,
            r"Conv2D: padding must be 'valid' or 'same', got 'full'",
        ),
        (
            lambda: MaxPool2D(pool_size=(2, 0)),
            ValueError,
            r"MaxPool2D: pool_size .* got \(2, 0\)",
        ),
        (
            lambda: MaxPool2D(strides=1.5),
            ValueError,
            r"MaxPool2D: strides .* got 1\.5",
        ),
        (
            lambda: MaxPool2D(padding=None),
            ValueError,
            r"MaxPool2D: padding .* got None",
        ),
        (
            lambda: Flatten(Trainable="no"),
            TypeError,
            r"Flatten: Trainable must be True or False, got 'no'",
        ),
    ],
    ids=[
        "filters-missing",
        "filters-zero",
        "filters-float",
        "filters-bool",
        "kernel-zero",
        "kernel-one-number-tuple",
        "kernel-str",
        "strides-negative",
        "padding-unknown",
        "pool-zero",
        "pool-strides-float",
        "pool-padding-none",
        "flatten-trainable-str",
    ],
)
def test_bad_arguments_name_the_layer_argument_and_value(
    make: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("layer", "label"),
    [
        (Conv2D(filters=4, name="conv"), "Conv2D 'conv'"),
        (MaxPool2D(name="pool"), "MaxPool2D 'pool'"),
    ],
    ids=["Conv2D", "MaxPool2D"],
)
def test_images_without_a_channel_axis_are_refused(layer: Any, label: str) -> None:
    with pytest.raises(
        ShapeError,
        match=rf"{label}: expected images of shape \(height, width, channels\), "
        r"got \(8, 8\); .*reshape the data to \(8, 8, 1\)",
    ):
        Sequential([layer], input_shape=(8, 8))


def test_a_flat_input_is_refused_without_a_reshape_hint() -> None:
    with pytest.raises(ShapeError, match=r"Conv2D 'conv': .* got \(64,\)$"):
        Sequential([Conv2D(filters=4, name="conv")], input_shape=64)


def test_a_kernel_bigger_than_the_image_is_refused_with_valid_padding() -> None:
    with pytest.raises(
        ShapeError,
        match=r"Conv2D 'conv': kernel_size \(5, 5\) does not fit in an image of "
        r"height and width \(4, 4\) with padding='valid'",
    ):
        Sequential(
            [Conv2D(filters=2, kernel_size=5, name="conv")], input_shape=(4, 4, 1)
        )
    model = Sequential(
        [Conv2D(filters=2, kernel_size=5, padding="same")], input_shape=(4, 4, 1)
    )
    assert model.output_shape == (4, 4, 2)


def test_a_call_with_the_wrong_channel_count_is_refused() -> None:
    layer = Conv2D(filters=2, name="conv")
    params = {"w": jnp.zeros((3, 3, 3, 2)), "b": jnp.zeros(2)}
    with pytest.raises(
        ShapeError, match=r"Conv2D 'conv': input has 2 channels, .* made for 3"
    ):
        layer(jnp.zeros((1, 5, 5, 2)), params)


def test_dense_after_conv2d_without_flatten_is_refused() -> None:
    with pytest.raises(ShapeError, match=r"Dense 'out'.*Flatten"):
        Sequential(
            [Conv2D(filters=2), Dense(units=3, name="out")], input_shape=(5, 5, 1)
        )


# The contract every minidl layer keeps.


@pytest.mark.parametrize(
    ("layer_cls", "config", "input_shape"),
    [
        (
            Conv2D,
            {"filters": 2, "kernel_size": (2, 3), "strides": 2, "padding": "same"},
            (5, 6, 1),
        ),
        (MaxPool2D, {"pool_size": 3, "strides": 2, "padding": "same"}, (5, 5, 1)),
        (Flatten, {}, (3, 3, 2)),
    ],
    ids=["Conv2D", "MaxPool2D", "Flatten"],
)
def test_layers_pass_the_conformance_suite(
    minidl_conformance: Any,
    layer_cls: type[Any],
    config: dict[str, Any],
    input_shape: tuple[int, ...],
) -> None:
    minidl_conformance.check_layer(layer_cls, config, input_shape=input_shape)
