"""Layers, graphs and models: the seed's style, shape inference, parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _numeric import central_difference

from minidl_core import Layer, Model, Sequential, ShapeError
from minidl_core.layers import Dense, InputLayer, LeakyRelu, Relu, Sigmoid


def test_seed_style_graph_matches_numpy() -> None:
    inp = InputLayer(None)
    hidden = Dense(inp, 4, 3, True)
    act = Relu(hidden, True)
    out = Sigmoid(Dense(act, 3, 2, True), True)
    model = Model(out)
    model.build(4)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    p = model.params
    h = np.maximum(x @ np.asarray(p["dense"]["w"]) + np.asarray(p["dense"]["b"]), 0)
    logits = h @ np.asarray(p["dense_1"]["w"]) + np.asarray(p["dense_1"]["b"])
    expected = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    assert [layer.name for layer in model.layers] == [
        "input_layer",
        "dense",
        "relu",
        "dense_1",
        "sigmoid",
    ]


def test_shape_inference_needs_no_repeated_input_shape() -> None:
    model = Sequential(
        [InputLayer(shape=7), Dense(units=5), LeakyRelu(alpha=0.2), Dense(units=3)]
    )
    assert model.shapes == {
        "input_layer": (7,),
        "dense": (5,),
        "leaky_relu": (5,),
        "dense_1": (3,),
    }
    assert model.params["dense"]["w"].shape == (7, 5)
    assert model.params["dense_1"]["w"].shape == (5, 3)


def test_model_builds_from_the_first_data_it_sees() -> None:
    model = Sequential([Dense(units=2)])
    assert not model.built
    out = model.predict(np.ones((3, 6)))
    assert out.shape == (3, 2)
    assert model.input_shape == (6,)


def test_dense_input_shape_mismatch_names_the_layer() -> None:
    inp = InputLayer(shape=32)
    out = Dense(Dense(inp, 32, 16), 64, 8, name="dense_2")
    with pytest.raises(
        ShapeError,
        match=r"Dense 'dense_2': input has 16 features, expected 64 \(from input_shape\)",
    ):
        Model(out)


def test_wrong_feature_width_at_predict_names_argument_and_model() -> None:
    model = Sequential([InputLayer(shape=4), Dense(units=2)])
    with pytest.raises(ShapeError, match=r"x: examples have shape \(5,\).*\(4,\)"):
        model.predict(np.ones((2, 5)))


class Bilinear(Layer):
    """A custom layer with parameters of three different ranks."""

    def __init__(self, input_layer=None, Trainable=True, *, name=None):
        super().__init__(input_layer, Trainable, name=name)

    def init_params(self, key, input_shape):
        k1, k2 = jax.random.split(key)
        n = input_shape[0]
        return {
            "m": jax.random.normal(k1, (n, n, 2)) * 0.3,
            "v": jax.random.normal(k2, (2,)),
            "c": jnp.array(0.5),
        }

    def __call__(self, x, params):
        return (
            jnp.einsum("bi,ijk,bj->bk", x, params["m"], x) * params["v"] + params["c"]
        )


def test_custom_layer_params_get_exact_gradients_without_registration() -> None:
    model = Sequential([InputLayer(shape=3), Bilinear()])
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)

    def loss(params):
        return jnp.sum(model.apply(params, x) ** 2)

    grads = jax.grad(loss)(model.params)
    for name in ("m", "v", "c"):
        base = {
            k: np.asarray(v, np.float64) for k, v in model.params["bilinear"].items()
        }

        def f(value, name=name, base=base):
            p = dict(base, **{name: value})
            m, v, c = p["m"], p["v"], p["c"]
            out = np.einsum("bi,ijk,bj->bk", x.astype(np.float64), m, x) * v + c
            return float(np.sum(out**2))

        expected = central_difference(f, base[name], h=1e-3)
        np.testing.assert_allclose(
            np.asarray(grads["bilinear"][name]), expected, rtol=2e-3, atol=2e-3
        )


def test_trainable_false_freezes_exactly_that_layer() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = rng.normal(size=(32, 1)).astype(np.float32)
    first = Dense(InputLayer(shape=4), 4, 8, False)
    model = Model(Dense(Relu(first), output_shape=1))
    before = jax.tree.map(np.asarray, model.params)
    model.fit(x, y, loss="mse", optimizer="sgd", epochs=3, batch_size=8, verbose=0)
    after = jax.tree.map(np.asarray, model.params)
    np.testing.assert_array_equal(after["dense"]["w"], before["dense"]["w"])
    np.testing.assert_array_equal(after["dense"]["b"], before["dense"]["b"])
    assert not np.array_equal(after["dense_1"]["w"], before["dense_1"]["w"])
    trainable, frozen = model.count_params()
    assert (trainable, frozen) == (8 + 1, 4 * 8 + 8)


def test_set_trainables_adds_only_trainable_layers() -> None:
    frozen = Dense(None, 2, 2, False, name="a")
    live = Dense(frozen, 2, 2, True, name="b")
    model = Model(live)
    trainables: dict = {}
    for layer in model.layers:
        layer.set_trainables(model.params, trainables)
    assert list(trainables) == ["b"]
    # The seed's form, with no argument: the layer's own parameters.
    assert frozen.set_trainables() == {}
    only_b = live.set_trainables()
    np.testing.assert_array_equal(only_b["b"]["w"], model.params["b"]["w"])


def test_display_describes_each_layer(capsys) -> None:
    model = Sequential([Dense(None, 3, 2), Relu(), Dense(units=1, Trainable=False)])
    shown = [layer.display() for layer in model.layers]
    assert capsys.readouterr().out.splitlines() == shown
    assert shown[0] == "Dense 'dense' 3 -> 2 (trainable)"
    assert "Relu" in shown[1]
    assert shown[2].endswith("(frozen)")


def test_summary_counts_match_the_arrays() -> None:
    model = Sequential([InputLayer(shape=10), Dense(units=6), Relu(), Dense(units=2)])
    text = model.summary()
    assert f"Total params: {10 * 6 + 6 + 6 * 2 + 2:,}" in text
    assert "dense_1 (Dense)" in text and "(None, 2)" in text


def test_duplicate_layer_names_are_an_error() -> None:
    with pytest.raises(ValueError, match="two layers are named 'x'"):
        Sequential([Dense(units=2, name="x"), Dense(units=2, name="x")], input_shape=2)


def test_graph_must_have_one_start() -> None:
    class Add(Layer):
        def __call__(self, x, params):
            return x[0] + x[1]

    a, b = Dense(None, 2, 2), Dense(None, 2, 2)
    with pytest.raises(ValueError, match="exactly one layer with no input_layer"):
        Model(Add([a, b]))


def test_layers_with_two_inputs_share_one_source() -> None:
    class Add(Layer):
        def __call__(self, x, params):
            return x[0] + x[1]

    inp = InputLayer(shape=3)
    left, right = Dense(inp, output_shape=2), Dense(inp, output_shape=2)
    model = Model(Add([left, right]))
    x = np.ones((1, 3), np.float32)
    p = {k: {n: np.asarray(a) for n, a in v.items()} for k, v in model.params.items()}
    expected = (
        x @ p["dense"]["w"]
        + p["dense"]["b"]
        + x @ p["dense_1"]["w"]
        + p["dense_1"]["b"]
    )
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Dense(units=0), r"Dense: output_shape must be a positive int, got 0"),
        (lambda: Dense(), r"Dense: output_shape \(or units\) is required"),
        (lambda: Dense("x", units=2), r"Dense: input_layer must be a Layer"),
        (lambda: Relu(None, "yes"), r"Relu: Trainable must be True or False"),
        (lambda: InputLayer(shape=-3), r"InputLayer: shape must be a positive int"),
    ],
    ids=["zero-units", "no-units", "bad-input-layer", "bad-trainable", "bad-shape"],
)
def test_bad_layer_arguments_name_the_layer(make, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_model_of_a_non_layer_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="output_layer must be a Layer"):
        Model([Dense(units=2)])


def test_reshape_turns_rows_into_images_like_numpy() -> None:
    from minidl_core.layers import Reshape

    x = np.arange(2 * 64, dtype=np.float32).reshape(2, 64)
    model = Sequential([InputLayer(shape=64), Reshape(target_shape=(8, 8, 1))])
    assert model.output_shape == (8, 8, 1)
    np.testing.assert_array_equal(model.predict(x), x.reshape(2, 8, 8, 1))
    with pytest.raises(
        ShapeError,
        match=r"Reshape 'reshape': cannot reshape examples of shape \(64,\) \(64 values\) to \(7, 7\)",
    ):
        Sequential([InputLayer(shape=64), Reshape(target_shape=(7, 7))])
    with pytest.raises(ValueError, match="at most one entry of target_shape may be -1"):
        Reshape(target_shape=(-1, -1))


def test_numpy_scalars_are_accepted_as_sizes() -> None:
    y = np.array([0, 3, 1])
    layer = Dense(units=y.max() + 1)
    assert layer.output_shape == 4 and type(layer.output_shape) is int
    assert InputLayer(shape=np.int64(4)).shape == (4,)
    assert LeakyRelu(None, np.float32(0.25)).alpha == 0.25
