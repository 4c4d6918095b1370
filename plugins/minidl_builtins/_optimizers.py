"""The built-in optimizers: optax's, by name.

Each factory takes ``learning_rate`` (a number or an optax schedule) and the
optax options of that optimizer, and returns an
``optax.GradientTransformation``. No update rule is written here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax

__all__ = ["OPTIMIZERS"]


def _factory(
    name: str, build: Callable[..., optax.GradientTransformation], default_lr: float
) -> Callable[..., optax.GradientTransformation]:
    def make(
        learning_rate: Any = default_lr, **options: Any
    ) -> optax.GradientTransformation:
        return build(learning_rate=learning_rate, **options)

    make.__name__ = name
    make.__doc__ = f"``optax.{name}`` with a default learning rate of {default_lr}."
    return make


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": _factory("sgd", optax.sgd, 0.01),
    "adam": _factory("adam", optax.adam, 1e-3),
    "adamw": _factory("adamw", optax.adamw, 1e-3),
    "rmsprop": _factory("rmsprop", optax.rmsprop, 1e-3),
    "adagrad": _factory("adagrad", optax.adagrad, 1e-2),
    "lamb": _factory("lamb", optax.lamb, 1e-3),
    "nadam": _factory("nadam", optax.nadam, 1e-3),
}
