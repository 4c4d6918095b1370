"""Every builtin layer and loss passes the conformance suite plugin authors run.

The cases cover each class in its usual configurations; a guard test fails
when the builtins register a layer or loss that no case covers, so a new
builtin cannot skip the suite.
"""

from __future__ import annotations

from typing import Any

import pytest

import minidl_core
from minidl_core.testing import check_layer, check_loss

# (id, registry name, config, input shape)
LAYER_CASES: list[tuple[str, str, dict[str, Any], tuple[int, ...]]] = [
    ("Dense-3to4", "Dense", {"units": 4}, (3,)),
    ("Dense-no-bias", "Dense", {"units": 2, "use_bias": False}, (5,)),
    ("Dense-declared-input", "Dense", {"input_shape": 3, "output_shape": 2}, (3,)),
    ("InputLayer", "InputLayer", {}, (3,)),
    ("InputLayer-2x3", "InputLayer", {"shape": [2, 3]}, (2, 3)),
    ("Relu", "Relu", {}, (4,)),
    ("Relu-2x3", "Relu", {}, (2, 3)),
    ("Sigmoid", "Sigmoid", {}, (4,)),
    ("Tanh", "Tanh", {}, (4,)),
    ("Softmax", "Softmax", {}, (4,)),
    ("Softmax-2x3", "Softmax", {}, (2, 3)),
    ("LeakyRelu", "LeakyRelu", {}, (4,)),
    ("LeakyRelu-alpha0.3", "LeakyRelu", {"alpha": 0.3}, (4,)),
    ("Dropout-0.5", "Dropout", {"fraction": 0.5}, (4,)),
    ("Dropout-0", "Dropout", {"fraction": 0.0}, (4,)),
    ("Dropout-1", "Dropout", {"fraction": 1.0}, (4,)),
    ("Reshape-to-image", "Reshape", {"target_shape": [2, 3, 1]}, (6,)),
    ("Reshape-flatten", "Reshape", {"target_shape": [-1]}, (2, 3)),
]

# (id, registry name, config, targets, y_pred shape)
LOSS_CASES: list[tuple[str, str, dict[str, Any], str, tuple[int, ...]]] = [
    ("MSE", "MSE", {}, "regression", (4, 3)),
    ("MSE-flat", "MSE", {}, "regression", (5,)),
    ("MAE", "MAE", {}, "regression", (4, 3)),
    ("Kl_divergence", "Kl_divergence", {}, "categorical", (4, 3)),
    ("BinaryCrossentropy", "BinaryCrossentropy", {}, "binary", (4, 1)),
    (
        "BinaryCrossentropy-logits",
        "BinaryCrossentropy",
        {"from_logits": True},
        "binary",
        (4, 2),
    ),
    ("CategoricalCrossentropy", "CategoricalCrossentropy", {}, "categorical", (4, 3)),
    (
        "CategoricalCrossentropy-logits",
        "CategoricalCrossentropy",
        {"from_logits": True},
        "categorical",
        (4, 3),
    ),
    ("SparseCCE", "Sparse_Categorical_Crossentropy", {}, "sparse", (4, 3)),
    (
        "SparseCCE-logits",
        "Sparse_Categorical_Crossentropy",
        {"from_logits": True},
        "sparse",
        (4, 3),
    ),
]


@pytest.mark.parametrize(
    ("name", "config", "input_shape"),
    [case[1:] for case in LAYER_CASES],
    ids=[case[0] for case in LAYER_CASES],
)
def test_builtin_layer_conforms(
    name: str, config: dict[str, Any], input_shape: tuple[int, ...]
) -> None:
    report = check_layer(minidl_core.get_layer(name), config, input_shape=input_shape)
    assert not report.failed
    assert {r.name for r in report.passed} >= {"build", "output_shape", "jit", "vmap"}


@pytest.mark.parametrize(
    ("name", "config", "targets", "shape"),
    [case[1:] for case in LOSS_CASES],
    ids=[case[0] for case in LOSS_CASES],
)
def test_builtin_loss_conforms(
    name: str, config: dict[str, Any], targets: str, shape: tuple[int, ...]
) -> None:
    report = check_loss(
        minidl_core.get_loss(name), config, targets=targets, shape=shape
    )
    assert not report.failed
    assert not report.skipped


def test_every_builtin_has_a_case() -> None:
    registry = minidl_core.get_registry()
    builtin = {
        kind: {e.obj for e in registry.entries(kind) if e.plugin == "builtins"}
        for kind in ("layer", "loss")
    }
    covered = {
        "layer": {minidl_core.get_layer(case[1]) for case in LAYER_CASES},
        "loss": {minidl_core.get_loss(case[1]) for case in LOSS_CASES},
    }
    for kind in ("layer", "loss"):
        missing = sorted(cls.__name__ for cls in builtin[kind] - covered[kind])
        assert not missing, f"builtin {kind}s with no conformance case: {missing}"
    assert builtin["layer"] and builtin["loss"]
