"""The built-in layers: Input, Dense, the activations and Dropout.

Read this file to learn how to write a layer: declare parameters in
``init_params``, use them in ``__call__``, store every constructor argument on
``self`` under its own name, and check shapes in ``check_input_shape`` so a
user's mistake is reported in words before anything is traced.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from minidl_core import Layer, Params, Shape, ShapeError

__all__ = [
    "Dense",
    "Dropout",
    "InputLayer",
    "LeakyRelu",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Tanh",
]


def _positive_int(value: Any, layer: str, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{layer}: {argument} must be a positive int, got {value!r}")
    return int(value)


def _number(value: Any, layer: str, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{layer}: {argument} must be a number, got {value!r}")
    return float(value)


class InputLayer(Layer):
    """Subclass of Layer representing an input layer that returns its input unchanged.

    Args:
        input_layer: Kept for the original signature; must be ``None``.
        shape: The shape of one example, e.g. ``64`` or ``(8, 8)``. Optional:
            without it the shape is taken from the first data seen.

    Input shape: ``(batch, *shape)``. Output shape: the same.
    """

    def __init__(
        self,
        input_layer: Layer | None = None,
        shape: int | Sequence[int] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if input_layer is not None:
            raise ValueError(
                f"InputLayer: input_layer must be None (an InputLayer starts "
                f"the graph), got {input_layer!r}"
            )
        super().__init__(None, Trainable=False, name=name)
        if shape is not None:
            if isinstance(shape, numbers.Integral):
                shape = (shape,)
            elif not isinstance(shape, Sequence) or isinstance(shape, str):
                raise TypeError(
                    f"InputLayer: shape must be an int or a tuple of ints, got "
                    f"{shape!r}"
                )
            shape = tuple(_positive_int(size, "InputLayer", "shape") for size in shape)
        self.shape = shape

    def get_config(self) -> dict[str, Any]:
        shape = None if self.shape is None else list(self.shape)
        return {"shape": shape, "name": self.name}

    @property
    def declared_input_shape(self) -> Shape | None:
        return self.shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Returns the input unchanged."""
        return x

    def describe(self) -> str:
        """Describes the type of layer."""
        return f"InputLayer '{self.name}' shape={self.shape}"


class Dense(Layer):
    """Subclass of Layer representing a Dense (fully connected) layer.

    Computes ``x @ w + b`` with ``w`` of shape ``(input_shape, output_shape)``
    initialized Glorot-uniform and ``b`` zeros.

    Args:
        input_layer: The layer before, or ``None`` for the first layer.
        input_shape: Number of input features. Optional: inferred from the
            layer before; when given, a mismatch is an error.
        output_shape: Number of output features (also accepted as ``units``).
        Trainable: Whether ``w`` and ``b`` are trained.
        units: Keras-style spelling of ``output_shape``.
        use_bias: Whether to add ``b``.

    Input shape: ``(batch, input_shape)``. Output shape:
    ``(batch, output_shape)``.
    """

    def __init__(
        self,
        input_layer: Layer | None = None,
        input_shape: int | None = None,
        output_shape: int | None = None,
        Trainable: bool = True,
        *,
        units: int | None = None,
        use_bias: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(input_layer, Trainable, name=name)
        if units is not None and output_shape is not None and units != output_shape:
            raise ValueError(
                f"Dense: output_shape={output_shape!r} and units={units!r} "
                "disagree; give one of them"
            )
        output_shape = output_shape if output_shape is not None else units
        if output_shape is None:
            raise TypeError(
                "Dense: output_shape (or units) is required, e.g. "
                "Dense(previous, output_shape=64) or Dense(units=64)"
            )
        self.output_shape = _positive_int(output_shape, "Dense", "output_shape")
        self.input_shape = (
            None
            if input_shape is None
            else _positive_int(input_shape, "Dense", "input_shape")
        )
        self.units = self.output_shape
        self.use_bias = bool(use_bias)

    def get_config(self) -> dict[str, Any]:
        return {
            "input_shape": self.input_shape,
            "output_shape": self.output_shape,
            "Trainable": self.Trainable,
            "use_bias": self.use_bias,
            "name": self.name,
        }

    @property
    def declared_input_shape(self) -> Shape | None:
        return None if self.input_shape is None else (self.input_shape,)

    def check_input_shape(self, input_shape: Shape) -> None:
        if len(input_shape) != 1:
            raise ShapeError(
                f"{self.label}: expected a flat input of shape (features,), got "
                f"{input_shape}; flatten it first (e.g. with the Flatten layer of "
                "the minidl-conv plugin)"
            )
        if self.input_shape is not None and input_shape[0] != self.input_shape:
            raise ShapeError(
                f"{self.label}: input has {input_shape[0]} features, expected "
                f"{self.input_shape} (from input_shape)"
            )

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self.check_input_shape(input_shape)
        return (self.output_shape,)

    def init_params(self, key: jax.Array, input_shape: Shape) -> Params:
        self.check_input_shape(input_shape)
        fan_in, fan_out = input_shape[0], self.output_shape
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        params = {
            "w": jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -limit, limit)
        }
        if self.use_bias:
            params["b"] = jnp.zeros((fan_out,), jnp.float32)
        return params

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Applies the Dense layer forward pass to the inputs."""
        y = x @ params["w"]
        return y + params["b"] if self.use_bias else y

    def describe(self) -> str:
        """Describes information about the Dense layer."""
        state = "trainable" if self.Trainable else "frozen"
        return (
            f"Dense '{self.name}' {self.input_shape or '?'} -> "
            f"{self.output_shape} ({state})"
        )


class Reshape(Layer):
    """Gives each example a new shape with the same number of values.

    Useful to turn flat rows into images, e.g. the 64 digits pixels into
    ``(8, 8, 1)`` for a convolution layer from a plugin.

    Args:
        input_layer: The layer before.
        target_shape: The new shape of one example (no batch axis); one entry
            may be ``-1`` to be inferred.

    Input shape: ``(batch, *input_shape)``. Output shape:
    ``(batch, *target_shape)``.
    """

    def __init__(
        self,
        input_layer: Layer | None = None,
        target_shape: Sequence[int] = (-1,),
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(input_layer, Trainable=False, name=name)
        if isinstance(target_shape, numbers.Integral):
            target_shape = (target_shape,)
        if not isinstance(target_shape, Sequence) or isinstance(target_shape, str):
            raise TypeError(
                f"Reshape: target_shape must be a tuple of ints, got {target_shape!r}"
            )
        sizes = []
        for size in target_shape:
            if isinstance(size, numbers.Integral) and size == -1:
                sizes.append(-1)
            else:
                sizes.append(_positive_int(size, "Reshape", "target_shape"))
        if sizes.count(-1) > 1:
            raise ValueError(
                f"Reshape: at most one entry of target_shape may be -1, got "
                f"{tuple(target_shape)!r}"
            )
        self.target_shape = tuple(sizes)

    def get_config(self) -> dict[str, Any]:
        return {"target_shape": list(self.target_shape), "name": self.name}

    def check_input_shape(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        total = math.prod(input_shape)
        known = math.prod(s for s in self.target_shape if s != -1)
        if -1 in self.target_shape and total % known == 0:
            return tuple(total // known if s == -1 else s for s in self.target_shape)
        if known != total or -1 in self.target_shape:
            raise ShapeError(
                f"{self.label}: cannot reshape examples of shape {input_shape} "
                f"({total} values) to {self.target_shape}"
            )
        return self.target_shape

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Reshapes each example of the batch."""
        return x.reshape(x.shape[0], *self.target_shape)


class _Activation(Layer):
    """A parameter-free, shape-preserving elementwise function."""

    def __init__(
        self,
        input_layer: Layer | None = None,
        Trainable: bool = True,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(input_layer, Trainable, name=name)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def describe(self) -> str:
        """Describes the type of activation function."""
        return f"{type(self).__name__} activation '{self.name}'"


class Relu(_Activation):
    """Subclass of Layer representing a ReLU activation: ``max(x, 0)``.

    Input shape: any. Output shape: the same.
    """

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Applies the ReLU activation to the inputs."""
        return jax.nn.relu(x)


class Sigmoid(_Activation):
    """Subclass of Layer representing a Sigmoid activation: ``1 / (1 + e^-x)``.

    Exact 0 and 1 at large ``|x|``, never NaN.

    Input shape: any. Output shape: the same.
    """

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Applies the Sigmoid activation to the inputs."""
        return jax.nn.sigmoid(x)


class Tanh(_Activation):
    """Subclass of Layer representing a Tanh activation.

    Input shape: any. Output shape: the same.
    """

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Applies the Tanh activation to the inputs."""
        return jnp.tanh(x)


class Softmax(_Activation):
    """Subclass of Layer representing a Softmax activation over the last axis.

    Computed after subtracting the row maximum, so logits of +-1000 give exact
    0 and 1, never NaN.

    Input shape: ``(batch, ..., classes)``. Output shape: the same, each row
    summing to 1.
    """

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Applies the Softmax activation to the inputs."""
        return jax.nn.softmax(x, axis=-1)


class LeakyRelu(_Activation):
    """Subclass of Layer representing a Leaky ReLU: ``x if x > 0 else alpha * x``.

    Args:
        input_layer: The layer before.
        alpha: Slope for negative inputs; default 0.01. Must be >= 0 (a
            negative slope would make the activation non-monotonic).
        Trainable: Kept for the original signature; the layer has no
            parameters.

    Input shape: any. Output shape: the same.
    """

    def __init__(
        self,
        input_layer: Layer | None = None,
        alpha: float = 0.01,
        Trainable: bool = True,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(input_layer, Trainable, name=name)
        alpha = _number(alpha, "LeakyRelu", "alpha")
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError(
                f"LeakyRelu: alpha must be a finite number >= 0, got {alpha!r}"
            )
        self.alpha = float(alpha)

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Applies the Leaky ReLU activation to the inputs."""
        return jnp.where(x > 0, x, self.alpha * x)


class Dropout(Layer):
    """Subclass of Layer representing a Dropout layer.

    In training, zeroes each unit with probability ``fraction`` using a fresh
    mask for every step and scales the kept units by ``1 / (1 - fraction)``;
    in inference it is the identity. ``fraction=1.0`` gives zeros.

    Args:
        fraction: Probability of dropping a unit, in ``[0, 1]``.
        input_layer: The layer before.
        Trainable: Kept for the original signature; no parameters.

    Input shape: any. Output shape: the same.

    Raises:
        ValueError: In training without a PRNG key (``fit`` always passes
            one, derived from its ``seed``).
    """

    def __init__(
        self,
        fraction: float = 0.5,
        input_layer: Layer | None = None,
        Trainable: bool = True,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(input_layer, Trainable, name=name)
        fraction = _number(fraction, "Dropout", "fraction")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"Dropout: fraction must be in [0, 1], got {fraction!r}")
        self.fraction = float(fraction)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def __call__(
        self,
        x: jax.Array,
        params: Params,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> jax.Array:
        """Applies dropout to the inputs."""
        if not training or self.fraction == 0.0:
            return x
        if self.fraction == 1.0:
            return jnp.zeros_like(x)
        if key is None:
            raise ValueError(
                f"{self.label}: training mode needs a PRNG key; pass key= to "
                "Model.apply (fit derives one per step from its seed)"
            )
        keep = 1.0 - self.fraction
        mask = jax.random.bernoulli(key, keep, x.shape)
        return jnp.where(mask, x / keep, jnp.zeros_like(x))

    def describe(self) -> str:
        """Describes information about the Dropout layer."""
        return f"Dropout '{self.name}' fraction={self.fraction}"
