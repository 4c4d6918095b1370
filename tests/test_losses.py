"""The built-in losses against float64 numpy references and hand-worked values.

JAX runs in float32; every reference below is written with numpy alone, in
float64, on the same (float32-rounded) inputs.
"""

from __future__ import annotations

import math
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

import minidl_core
from minidl_core import Loss, ShapeError
from minidl_core.losses import (
    MAE,
    MSE,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Kl_divergence,
    Sparse_Categorical_Crossentropy,
)

# Exactly representable in float32, and so is 1 - EPS: a clip to
# [EPS, 1 - EPS] means the same thing in float32 and in float64.
EPS = 2.0**-10
RTOL = 1e-5
FAST = settings(max_examples=25, deadline=None)


# Float64 references.


def _per_example_mean(values: np.ndarray) -> np.ndarray:
    return values.reshape(len(values), -1).mean(axis=1)


def ref_mse(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    return _per_example_mean((t - p) ** 2)


def ref_mae(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    return _per_example_mean(np.abs(t - p))


def ref_kl(t: np.ndarray, p: np.ndarray, eps: float = EPS) -> np.ndarray:
    p = np.maximum(p, eps)
    ratio = np.divide(t, p, out=np.ones_like(t), where=t > 0)
    return (t * np.log(ratio)).sum(axis=-1)


def ref_bce(t: np.ndarray, p: np.ndarray, eps: float = EPS) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return _per_example_mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))


def ref_bce_logits(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    log_p, log_not_p = -np.logaddexp(0, -z), -np.logaddexp(0, z)
    return _per_example_mean(-(t * log_p + (1 - t) * log_not_p))


def ref_cce(t: np.ndarray, p: np.ndarray, eps: float = EPS) -> np.ndarray:
    return -(t * np.log(np.maximum(p, eps))).sum(axis=-1)


def ref_log_softmax(z: np.ndarray) -> np.ndarray:
    top = z.max(axis=-1, keepdims=True)
    return z - top - np.log(np.exp(z - top).sum(axis=-1, keepdims=True))


def ref_cce_logits(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    return -(t * ref_log_softmax(z)).sum(axis=-1)


def ref_sparse(labels: np.ndarray, p: np.ndarray) -> np.ndarray:
    picked = p[np.arange(len(p)), labels.astype(int)]
    return -np.log(np.maximum(picked, 1e-7))


def ref_sparse_logits(labels: np.ndarray, z: np.ndarray) -> np.ndarray:
    return -ref_log_softmax(z)[np.arange(len(z)), labels.astype(int)]


def as32(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to float32, kept as float64 for the references."""
    return np.asarray(x, np.float32).astype(np.float64)


# Interior inputs: away from clips and kinks, so finite differences apply.

SHAPE = (4, 5)


def _distribution(rng: np.random.Generator) -> np.ndarray:
    x = rng.uniform(0.05, 1.0, SHAPE)
    return x / x.sum(axis=-1, keepdims=True)


def _one_hot(rng: np.random.Generator) -> np.ndarray:
    return np.eye(SHAPE[1])[rng.integers(0, SHAPE[1], SHAPE[0])]


def _labels(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, SHAPE[1], SHAPE[0])


def _sparse_kl_target(rng: np.random.Generator) -> np.ndarray:
    t = _distribution(rng)
    t[:, 0] = 0.0
    return t / t.sum(axis=-1, keepdims=True)


def _away_from(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sign = rng.choice([-1.0, 1.0], t.shape)
    return t + sign * rng.uniform(0.1, 1.0, t.shape)


Inputs = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]

CASES: list[Any] = [
    pytest.param(
        MSE(),
        lambda r: (r.normal(size=SHAPE), r.normal(size=SHAPE)),
        ref_mse,
        id="MSE",
    ),
    pytest.param(
        MAE(),
        lambda r: (t := r.normal(size=SHAPE), _away_from(t, r)),
        ref_mae,
        id="MAE",
    ),
    pytest.param(
        Kl_divergence(epsilon=EPS),
        lambda r: (_sparse_kl_target(r), _distribution(r)),
        ref_kl,
        id="KL",
    ),
    pytest.param(
        BinaryCrossentropy(epsilon=EPS),
        lambda r: (r.uniform(0, 1, SHAPE), r.uniform(0.05, 0.95, SHAPE)),
        ref_bce,
        id="BCE",
    ),
    pytest.param(
        BinaryCrossentropy(from_logits=True),
        lambda r: (r.uniform(0, 1, SHAPE), 3 * r.normal(size=SHAPE)),
        ref_bce_logits,
        id="BCE-logits",
    ),
    pytest.param(
        CategoricalCrossentropy(epsilon=EPS),
        lambda r: (_one_hot(r), _distribution(r)),
        ref_cce,
        id="CCE",
    ),
    pytest.param(
        CategoricalCrossentropy(from_logits=True),
        lambda r: (_distribution(r), 3 * r.normal(size=SHAPE)),
        ref_cce_logits,
        id="CCE-logits",
    ),
    pytest.param(
        Sparse_Categorical_Crossentropy(),
        lambda r: (_labels(r), _distribution(r)),
        ref_sparse,
        id="Sparse",
    ),
    pytest.param(
        Sparse_Categorical_Crossentropy(from_logits=True),
        lambda r: (_labels(r), 3 * r.normal(size=SHAPE)),
        ref_sparse_logits,
        id="Sparse-logits",
    ),
]


@pytest.mark.parametrize(("loss", "inputs", "reference"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_numpy_reference(
    loss: Loss, inputs: Inputs, reference: Callable[..., np.ndarray], seed: int
) -> None:
    t, p = inputs(np.random.default_rng(seed))
    expected = reference(as32(t), as32(p))

    per_sample = loss.per_sample(t, np.asarray(p, np.float32))
    assert per_sample.shape == (SHAPE[0],)
    assert per_sample.dtype == jnp.float32
    np.testing.assert_allclose(per_sample, expected, rtol=RTOL, atol=1e-7)
    total = loss(t, np.asarray(p, np.float32))
    assert total.shape == ()
    np.testing.assert_allclose(total, expected.mean(), rtol=RTOL, atol=1e-7)


@pytest.mark.parametrize(("loss", "inputs", "reference"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_finite_differences(
    loss: Loss, inputs: Inputs, reference: Callable[..., np.ndarray], seed: int
) -> None:
    t, p = inputs(np.random.default_rng(seed))
    t, p = as32(t), as32(p)

    grad = jax.grad(lambda y_pred: loss(t, y_pred))(jnp.asarray(p, jnp.float32))
    expected = central_difference(lambda y_pred: reference(t, y_pred).mean(), p)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_hand_worked_values() -> None:
    t = [[1.0, 2.0], [3.0, 4.0]]
    p = [[1.0, 0.0], [0.0, 4.0]]
    # Squared errors 0, 4 | 9, 0 and absolute errors 0, 2 | 3, 0.
    np.testing.assert_allclose(MSE().per_sample(t, p), [2.0, 4.5])
    np.testing.assert_allclose(MSE()(t, p), 3.25)
    np.testing.assert_allclose(MAE()(t, p), 1.25)
    # -log(1/2) for a fair coin and a uniform 4-way guess: log 2 and log 4.
    np.testing.assert_allclose(BinaryCrossentropy()([[1.0]], [[0.5]]), math.log(2))
    uniform = [[0.25] * 4]
    np.testing.assert_allclose(
        CategoricalCrossentropy()([[0.0, 1.0, 0.0, 0.0]], uniform),
        math.log(4),
        rtol=RTOL,
    )
    np.testing.assert_allclose(
        Sparse_Categorical_Crossentropy()([2], uniform), math.log(4), rtol=RTOL
    )
    # KL([1/2, 1/2] || [1/4, 3/4]) = 1/2 log 2 + 1/2 log(2/3).
    kl = Kl_divergence()([[0.5, 0.5]], [[0.25, 0.75]])
    np.testing.assert_allclose(kl, 0.5 * math.log(2) + 0.5 * math.log(2 / 3), RTOL)


# Random inputs, edges included.

probabilities = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(1e-3, 1 - 1e-3))


def _arrays(elements: st.SearchStrategy[float]) -> st.SearchStrategy[np.ndarray]:
    shapes = st.tuples(st.integers(1, 4), st.integers(1, 5))
    return shapes.flatmap(
        lambda shape: st.tuples(
            hnp.arrays(np.float64, shape, elements=elements),
            hnp.arrays(np.float64, shape, elements=elements),
        )
    )


@FAST
@given(_arrays(st.floats(-100, 100)))
def test_mse_and_mae_on_random_inputs(pair: tuple[np.ndarray, np.ndarray]) -> None:
    t, p = as32(pair[0]), as32(pair[1])
    np.testing.assert_allclose(MSE().per_sample(t, p), ref_mse(t, p), RTOL, 1e-3)
    np.testing.assert_allclose(MAE().per_sample(t, p), ref_mae(t, p), RTOL, 1e-4)


@FAST
@given(_arrays(probabilities))
def test_probability_losses_on_random_inputs(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    t, p = as32(pair[0]), as32(pair[1])
    cases = [
        (BinaryCrossentropy(epsilon=EPS), ref_bce),
        (CategoricalCrossentropy(epsilon=EPS), ref_cce),
        (Kl_divergence(epsilon=EPS), ref_kl),
    ]
    for loss, reference in cases:
        got = loss.per_sample(t, p)
        np.testing.assert_allclose(got, reference(t, p), RTOL, 1e-5, err_msg=loss.name)


@FAST
@given(_arrays(st.floats(-20, 20)))
def test_logit_losses_on_random_inputs(pair: tuple[np.ndarray, np.ndarray]) -> None:
    t, z = as32(np.abs(pair[0]) / 20), as32(pair[1])
    got = BinaryCrossentropy(from_logits=True).per_sample(t, z)
    np.testing.assert_allclose(got, ref_bce_logits(t, z), RTOL, 1e-5)
    got = CategoricalCrossentropy(from_logits=True).per_sample(t, z)
    np.testing.assert_allclose(got, ref_cce_logits(t, z), RTOL, 1e-5)


@FAST
@given(st.data())
def test_sparse_on_random_inputs(data: st.DataObject) -> None:
    batch, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    labels = np.array(
        data.draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch))
    )
    p = as32(
        data.draw(hnp.arrays(np.float64, (batch, classes), elements=probabilities))
    )
    got = Sparse_Categorical_Crossentropy().per_sample(labels, p)
    np.testing.assert_allclose(got, ref_sparse(labels, p), RTOL)
    got = Sparse_Categorical_Crossentropy(from_logits=True).per_sample(labels, 9 * p)
    np.testing.assert_allclose(got, ref_sparse_logits(labels, 9 * p), RTOL, 1e-6)


def test_extra_axes_are_averaged() -> None:
    rng = np.random.default_rng(3)
    t, p = as32(rng.uniform(size=(2, 3, 4))), as32(rng.uniform(0.1, 1, (2, 3, 4)))
    np.testing.assert_allclose(MSE().per_sample(t, p), ref_mse(t, p), RTOL)
    expected = -(t * np.log(p)).sum(axis=-1).mean(axis=1)
    got = CategoricalCrossentropy().per_sample(t, p)
    np.testing.assert_allclose(got, expected, RTOL)


# Shapes.

PAIRWISE = [
    pytest.param(MSE(), id="MSE"),
    pytest.param(MAE(), id="MAE"),
    pytest.param(Kl_divergence(), id="KL"),
    pytest.param(BinaryCrossentropy(), id="BCE"),
    pytest.param(CategoricalCrossentropy(), id="CCE"),
]


@pytest.mark.parametrize("loss", PAIRWISE)
@pytest.mark.parametrize(
    ("true_shape", "pred_shape"), [((4,), (4, 1)), ((4, 1), (4,))], ids=["N-N1", "N1-N"]
)
def test_column_against_vector_is_an_error(
    loss: Loss, true_shape: tuple[int, ...], pred_shape: tuple[int, ...]
) -> None:
    t, p = np.full(true_shape, 0.5), np.full(pred_shape, 0.5)
    match = rf"{loss.name}: .*{re_shape(true_shape)}.*{re_shape(pred_shape)}"
    with pytest.raises(ShapeError, match=match):
        loss(t, p)


def re_shape(shape: tuple[int, ...]) -> str:
    return str(shape).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("loss", PAIRWISE)
def test_shape_check_holds_under_jit(loss: Loss) -> None:
    with pytest.raises(ShapeError, match=loss.name):
        jax.jit(loss)(jnp.full((4,), 0.5), jnp.full((4, 1), 0.5))


@pytest.mark.parametrize(
    "label_shape", [(4, 2), (5,), (3, 1)], ids=["N2", "N+1", "fewer"]
)
def test_sparse_label_shape_must_fit_predictions(label_shape: tuple[int, ...]) -> None:
    loss = Sparse_Categorical_Crossentropy()
    match = rf"Sparse_Categorical_Crossentropy: .*{re_shape(label_shape)}.*\(4, 3\)"
    with pytest.raises(ShapeError, match=match):
        loss(np.zeros(label_shape, int), np.full((4, 3), 1 / 3))
    with pytest.raises(ShapeError, match=match):
        jax.jit(loss)(jnp.zeros(label_shape, int), jnp.full((4, 3), 1 / 3))


@pytest.mark.parametrize(
    "loss",
    [CategoricalCrossentropy(), Kl_divergence(), Sparse_Categorical_Crossentropy()],
    ids=["CCE", "KL", "Sparse"],
)
def test_distribution_losses_need_a_class_axis(loss: Loss) -> None:
    with pytest.raises(ShapeError, match=rf"{loss.name}: .*classes.*\(4,\)"):
        loss(np.zeros(4, int), np.full(4, 0.5))


def test_a_batch_axis_is_required() -> None:
    with pytest.raises(ShapeError, match=r"MSE: .*\(\)"):
        MSE()(1.0, 2.0)


# Numerical stability.


def _value_and_grad(loss: Loss, t: Any, p: Any) -> tuple[jax.Array, jax.Array]:
    return jax.value_and_grad(lambda y_pred: loss(t, y_pred))(
        jnp.asarray(p, jnp.float32)
    )


def assert_finite(*arrays: Any) -> None:
    for array in arrays:
        assert np.all(np.isfinite(array)), array


@pytest.mark.parametrize(
    ("loss", "t", "p"),
    [
        (BinaryCrossentropy(), [[1.0, 0.0, 1.0, 0.0]], [[0.0, 1.0, 1.0, 0.0]]),
        (CategoricalCrossentropy(), [[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]),
        (Kl_divergence(), [[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]),
        (Sparse_Categorical_Crossentropy(), [0, 1], [[0.0, 1.0], [0.0, 1.0]]),
    ],
    ids=["BCE", "CCE", "KL", "Sparse"],
)
def test_probabilities_of_exactly_zero_and_one(loss: Loss, t: Any, p: Any) -> None:
    assert_finite(*_value_and_grad(loss, t, p))


def test_confident_correct_probabilities_cost_almost_nothing() -> None:
    assert float(CategoricalCrossentropy()([[0.0, 1.0]], [[0.0, 1.0]])) == 0.0
    assert float(Sparse_Categorical_Crossentropy()([1], [[0.0, 1.0]])) == 0.0
    assert float(Kl_divergence()([[0.0, 1.0]], [[0.0, 1.0]])) == 0.0
    assert float(BinaryCrossentropy()([[1.0, 0.0]], [[1.0, 0.0]])) < 1e-6


@pytest.mark.parametrize(
    ("loss", "t", "wrong", "right"),
    [
        (
            BinaryCrossentropy(from_logits=True),
            [[1.0, 0.0]],
            [[-1e3, 1e3]],
            [[1e3, -1e3]],
        ),
        (
            CategoricalCrossentropy(from_logits=True),
            [[0.0, 1.0]],
            [[1e3, -1e3]],
            [[-1e3, 1e3]],
        ),
        (
            Sparse_Categorical_Crossentropy(from_logits=True),
            [1],
            [[1e3, -1e3]],
            [[-1e3, 1e3]],
        ),
    ],
    ids=["BCE", "CCE", "Sparse"],
)
def test_large_logits_are_exact(loss: Loss, t: Any, wrong: Any, right: Any) -> None:
    # Wrong by a margin of 1000 (BCE) or 2000 (softmax over +-1000) nats.
    value, grad = _value_and_grad(loss, t, wrong)
    expected = 1000.0 if isinstance(loss, BinaryCrossentropy) else 2000.0
    assert float(value) == expected
    assert_finite(grad)
    value, grad = _value_and_grad(loss, t, right)
    assert float(value) == 0.0
    assert_finite(grad)


@pytest.mark.parametrize("epsilon", [1e-9, 1e-20, 1e-45], ids=str)
def test_epsilon_below_float32_resolution_keeps_bce_finite(epsilon: float) -> None:
    # 1 - epsilon rounds to 1.0 in float32; p is held at the largest float32
    # below 1, which is 1 - 2**-24, so the loss of (y=0, p=1) is 24 log 2.
    loss = BinaryCrossentropy(epsilon=epsilon)
    value, grad = _value_and_grad(loss, [[0.0]], [[1.0]])
    np.testing.assert_allclose(value, 24 * math.log(2), rtol=1e-6)
    assert_finite(grad)
    # At the other end the float32 value of epsilon, or the smallest normal
    # float32 (2**-126) when epsilon is below it, bounds p.
    value, grad = _value_and_grad(loss, [[1.0]], [[0.0]])
    floor = max(float(np.float32(epsilon)), 2.0**-126)
    np.testing.assert_allclose(value, -math.log(floor), rtol=1e-6)
    assert_finite(grad)


@pytest.mark.parametrize(
    ("loss", "t", "p"),
    [
        (BinaryCrossentropy(epsilon=EPS), [[1.0]], [[0.0]]),
        (BinaryCrossentropy(epsilon=EPS), [[0.0]], [[1.0]]),
        (CategoricalCrossentropy(epsilon=EPS), [[1.0, 0.0]], [[0.0, 1.0]]),
        (Kl_divergence(epsilon=EPS), [[1.0, 0.0]], [[0.0, 1.0]]),
    ],
    ids=["BCE-1-0", "BCE-0-1", "CCE", "KL"],
)
def test_epsilon_is_applied_once(loss: Loss, t: Any, p: Any) -> None:
    # Clipped to EPS = 2**-10 and nothing added: exactly 10 log 2.
    np.testing.assert_allclose(loss(t, p), 10 * math.log(2), rtol=1e-6)


def test_all_zero_row_in_categorical_crossentropy() -> None:
    t = [[0.25, 0.75], [1.0, 0.0]]
    value, grad = _value_and_grad(
        CategoricalCrossentropy(epsilon=EPS), t, np.zeros((2, 2))
    )
    np.testing.assert_allclose(value, 10 * math.log(2), rtol=1e-6)
    assert_finite(grad)


def test_kl_with_zeros_in_y_true() -> None:
    t = jnp.asarray([[0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    p = jnp.asarray([[0.2, 0.4, 0.4], [0.0, 0.5, 0.5]])
    loss = Kl_divergence()
    both = jax.grad(lambda t, p: loss(t, p), argnums=(0, 1))(t, p)
    assert_finite(loss(t, p), *both)
    np.testing.assert_allclose(
        loss(t, p), ref_kl(as32(t), as32(p), 1e-7).mean(), rtol=RTOL
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logits_agree_with_probabilities(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=SHAPE).astype(np.float32)
    probs, sig = jax.nn.softmax(z), jax.nn.sigmoid(z)
    t, labels = _distribution(rng), _labels(rng)
    pairs = [
        (BinaryCrossentropy, t, sig),
        (CategoricalCrossentropy, t, probs),
    ]
    for cls, target, p in pairs:
        np.testing.assert_allclose(
            cls(from_logits=True)(target, z), cls()(target, p), 1e-5
        )
    sparse = Sparse_Categorical_Crossentropy
    np.testing.assert_allclose(
        sparse(from_logits=True)(labels, z), sparse()(labels, probs), 1e-5
    )


# Constructor arguments.

WITH_EPSILON = [Kl_divergence, BinaryCrossentropy, CategoricalCrossentropy]


@pytest.mark.parametrize("cls", WITH_EPSILON, ids=lambda c: c.__name__)
@pytest.mark.parametrize("epsilon", [0.0, -1e-7, 0.5, 1.0, math.nan, math.inf], ids=str)
def test_epsilon_out_of_range(cls: type[Loss], epsilon: float) -> None:
    with pytest.raises(ValueError, match=rf"{cls.__name__}: epsilon .*got {epsilon}"):
        cls(epsilon=epsilon)


@pytest.mark.parametrize("cls", WITH_EPSILON, ids=lambda c: c.__name__)
@pytest.mark.parametrize("epsilon", ["1e-7", True, None], ids=repr)
def test_epsilon_must_be_a_number(cls: type[Loss], epsilon: Any) -> None:
    with pytest.raises(TypeError, match=rf"{cls.__name__}: epsilon .*got {epsilon!r}"):
        cls(epsilon=epsilon)


@pytest.mark.parametrize(
    "cls",
    [BinaryCrossentropy, CategoricalCrossentropy, Sparse_Categorical_Crossentropy],
    ids=lambda c: c.__name__,
)
def test_from_logits_must_be_a_bool(cls: type[Loss]) -> None:
    with pytest.raises(TypeError, match=rf"{cls.__name__}: from_logits .*'yes'"):
        cls(from_logits="yes")


@pytest.mark.parametrize(
    "loss",
    [
        MSE(),
        Kl_divergence(epsilon=1e-3),
        BinaryCrossentropy(epsilon=0.01, from_logits=True),
        CategoricalCrossentropy(from_logits=True),
        Sparse_Categorical_Crossentropy(from_logits=True),
    ],
    ids=lambda loss: loss.name,
)
def test_config_round_trip(loss: Loss) -> None:
    config = loss.get_config()
    rebuilt = type(loss).from_config(config)
    assert rebuilt.get_config() == config
    assert repr(rebuilt) == repr(loss)


def test_config_holds_the_constructor_arguments() -> None:
    loss = BinaryCrossentropy(epsilon=1e-3, from_logits=True)
    assert loss.get_config() == {"epsilon": 1e-3, "from_logits": True}
    assert Kl_divergence().get_config() == {"epsilon": 1e-7}
    assert Sparse_Categorical_Crossentropy().get_config() == {"from_logits": False}
    assert MSE().get_config() == {}


# Sparse labels.

PROBS = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]], np.float32)


@pytest.mark.parametrize(
    "labels",
    [
        [1, 2, 0],
        np.array([1, 2, 0]),
        np.array([[1], [2], [0]]),
        np.array([1.0, 2.0, 0.0]),
        np.array([[1.0], [2.0], [0.0]], np.float32),
        jnp.array([1, 2, 0]),
        np.array([1, 2, 0], np.uint8),
    ],
    ids=["list", "N", "N1", "float", "float-N1", "jax", "uint8"],
)
def test_sparse_label_forms_agree(labels: Any) -> None:
    expected = -np.log([0.5, 0.8, 0.6]).mean()
    loss = Sparse_Categorical_Crossentropy()
    np.testing.assert_allclose(loss(labels, PROBS), expected, rtol=RTOL)
    np.testing.assert_allclose(
        jax.jit(loss)(jnp.asarray(labels), PROBS), expected, RTOL
    )


@pytest.mark.parametrize("bad", [1.5, math.nan], ids=str)
def test_sparse_fractional_label(bad: float) -> None:
    with pytest.raises(ValueError, match=rf"Sparse_Categorical_Crossentropy: .*{bad}"):
        Sparse_Categorical_Crossentropy()([1.0, bad, 0.0], PROBS)


@pytest.mark.parametrize("bad", [3, -1, 7.0], ids=str)
def test_sparse_label_out_of_range(bad: float) -> None:
    match = rf"Sparse_Categorical_Crossentropy: label {bad} .*3 classes"
    with pytest.raises(ValueError, match=match):
        Sparse_Categorical_Crossentropy()([0, bad, 1], PROBS)


@pytest.mark.parametrize(
    "labels", [[0, 3, 1], [0, -1, 1], [0.0, 1.5, 1.0]], ids=["3", "-1", "1.5"]
)
def test_sparse_bad_label_under_jit_is_nan(labels: list[float]) -> None:
    loss = Sparse_Categorical_Crossentropy()
    per_sample = np.asarray(jax.jit(loss.per_sample)(jnp.asarray(labels), PROBS))
    assert np.isnan(per_sample[1])
    assert np.all(np.isfinite(per_sample[[0, 2]]))
    assert np.isnan(jax.jit(loss)(jnp.asarray(labels), PROBS))


def test_sparse_labels_must_be_numbers() -> None:
    with pytest.raises(TypeError, match=r"Sparse_Categorical_Crossentropy: .*complex"):
        Sparse_Categorical_Crossentropy()(np.array([1j, 0, 0]), PROBS)


# Dtypes.


def test_targets_take_the_prediction_dtype() -> None:
    p = np.array([[0.5, 0.25]], np.float32)
    for t in ([[1, 0]], np.array([[1.0, 0.0]]), np.array([[True, False]])):
        for loss in (MSE(), BinaryCrossentropy(), CategoricalCrossentropy()):
            assert loss(t, p).dtype == jnp.float32
    assert MSE()([[1, 2]], [[1, 4]]).dtype == jnp.float32
    np.testing.assert_allclose(MSE()([[1, 2]], [[1, 4]]), 2.0)


# Registry.


def test_registry_lookups() -> None:
    from minidl_builtins import _losses

    assert minidl_core.get_loss("Kl_divergence") is minidl_core.get_loss("KLDivergence")
    assert minidl_core.get_loss("KLDivergence") is _losses.KLDivergence
    sparse = minidl_core.get_loss("sparse_categorical_crossentropy")
    assert sparse is Sparse_Categorical_Crossentropy
    assert sparse is _losses.SparseCategoricalCrossentropy
    assert minidl_core.get_loss("mse") is MSE
    assert MSE is _losses.MSE
