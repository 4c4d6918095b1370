"""Convolution, max pooling and flatten layers for images in NHWC layout.

One example is an image of shape ``(height, width, channels)``; a batch adds a
leading axis: ``(batch, height, width, channels)``. A grey-scale image with no
channel axis, shape ``(height, width)``, is refused with a message that says to
reshape it to ``(height, width, 1)``: guessing would hide a mistake in the data.

Every layer follows the recipe of minidl's built-in layers: parameters are
declared in ``init_params`` and used in ``__call__``, each constructor argument
is kept on ``self`` under its own name (so ``get_config`` needs no code), and
shapes are checked in ``check_input_shape`` before anything is traced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from minidl_core import Layer, Params, Shape, ShapeError

__all__ = ["PADDINGS", "Conv2D", "Flatten", "MaxPool2D"]

#: How a window meets the border: ``"valid"`` keeps whole windows only;
#: ``"same"`` pads so that the output has ``ceil(size / stride)`` rows and
#: columns.
PADDINGS = ("valid", "same")

# Which axis is which, for the input, the kernel and the output.
_CONV_LAYOUT = ("NHWC", "HWIO", "NHWC")


# Checking arguments and shapes.


def _pair(value: Any, layer: str, argument: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; a pair of positive ints is kept; else an error."""
    pair = (value, value) if isinstance(value, int) else value
    if (
        not isinstance(pair, Sequence)
        or isinstance(pair, str)
        or len(pair) != 2
        or not all(_is_positive_int(v) for v in pair)
    ):
        raise ValueError(
            f"{layer}: {argument} must be a positive int or a pair of positive "
            f"ints (height, width), got {value!r}"
        )
    return (pair[0], pair[1])


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _padding(value: Any, layer: str) -> str:
    if not isinstance(value, str) or value.lower() not in PADDINGS:
        raise ValueError(f"{layer}: padding must be 'valid' or 'same', got {value!r}")
    return value.lower()


def _check_image(layer: Layer, input_shape: Shape) -> None:
    if len(input_shape) == 3:
        return
    hint = ""
    if len(input_shape) == 2:
        hint = (
            f"; for one-channel images reshape the data to {(*input_shape, 1)}, "
            "e.g. x[..., None]"
        )
    raise ShapeError(
        f"{layer.label}: expected images of shape (height, width, channels), "
        f"got {tuple(input_shape)}{hint}"
    )


def _check_window(
    layer: Layer,
    input_shape: Shape,
    window: tuple[int, int],
    argument: str,
    padding: str,
) -> None:
    height, width = input_shape[:2]
    if padding == "valid" and (window[0] > height or window[1] > width):
        raise ShapeError(
            f"{layer.label}: {argument} {window} does not fit in an image of "
            f"height and width {(height, width)} with padding='valid'; use a "
            f"smaller {argument} or padding='same'"
        )


def _output_size(size: int, window: int, stride: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - window) // stride + 1


def _output_hw(
    input_shape: Shape,
    window: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> tuple[int, int]:
    height, width = (
        _output_size(size, w, s, padding)
        for size, w, s in zip(input_shape[:2], window, strides, strict=True)
    )
    return height, width


# The layers.


class Conv2D(Layer):
    """A 2-D convolution: ``filters`` learned kernels slide over each image.

    Each output pixel is the sum, over a ``kernel_size`` window and every input
    channel, of input times kernel, plus one bias per filter. The parameters
    are ``w``, the kernels, of shape ``(kernel_height, kernel_width, channels,
    filters)`` and initialized Glorot-uniform, and ``b``, the biases, of shape
    ``(filters,)`` and initialized to zeros.

    Args:
        input_layer: The layer before, or ``None`` for the first layer.
        filters: The number of kernels, which is the number of output
            channels. Required.
        kernel_size: The window's height and width: an int for a square window
            or a pair ``(height, width)``.
        strides: The step between windows: an int or a pair
            ``(height, width)``.
        padding: ``"valid"`` uses whole windows only, so an image shrinks by
            ``kernel_size - 1`` (at stride 1); ``"same"`` pads the border
            with zeros so the output has ``ceil(size / strides)`` rows and
            columns.
        Trainable: Whether ``w`` and ``b`` are trained.
        name: A unique name within the model.

    Input shape: ``(batch, height, width, channels)``. Output shape:
    ``(batch, out_height, out_width, filters)``, where with ``"valid"``
    ``out_height = (height - kernel_height) // stride_height + 1`` and with
    ``"same"`` ``out_height = ceil(height / stride_height)``; the same for the
    width.

    Raises:
        TypeError: ``filters`` is missing.
        ValueError: An argument is out of range; the message names it.

    Example:
        >>> Conv2D(filters=8, padding="same").compute_output_shape((28, 28, 1))
        (28, 28, 8)
    """

    def __init__(
        self,
        input_layer: Layer | None = None,
        filters: int | None = None,
        kernel_size: int | Sequence[int] = 3,
        strides: int | Sequence[int] = 1,
        padding: str = "valid",
        Trainable: bool = True,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(input_layer, Trainable, name=name)
        cls = type(self).__name__
        if filters is None:
            raise TypeError(f"{cls}: filters is required, e.g. {cls}(filters=32)")
        if not _is_positive_int(filters):
            raise ValueError(f"{cls}: filters must be a positive int, got {filters!r}")
        self.filters = filters
        self.kernel_size = _pair(kernel_size, cls, "kernel_size")
        self.strides = _pair(strides, cls, "strides")
        self.padding = _padding(padding, cls)

    def check_input_shape(self, input_shape: Shape) -> None:
        _check_image(self, input_shape)
        _check_window(self, input_shape, self.kernel_size, "kernel_size", self.padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self.check_input_shape(input_shape)
        height, width = _output_hw(
            input_shape, self.kernel_size, self.strides, self.padding
        )
        return (height, width, self.filters)

    def init_params(self, key: jax.Array, input_shape: Shape) -> Params:
        self.check_input_shape(input_shape)
        kernel_height, kernel_width = self.kernel_size
        channels = input_shape[2]
        fan_in = kernel_height * kernel_width * channels
        fan_out = kernel_height * kernel_width * self.filters
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        shape = (kernel_height, kernel_width, channels, self.filters)
        return {
            "w": jax.random.uniform(key, shape, jnp.float32, -limit, limit),
            "b": jnp.zeros((self.filters,), jnp.float32),
        }

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Convolve a batch of images with the kernels and add the biases."""
        w: jax.Array = params["w"]
        b: jax.Array = params["b"]
        self.check_input_shape(tuple(x.shape[1:]))
        if x.shape[-1] != w.shape[2]:
            raise ShapeError(
                f"{self.label}: input has {x.shape[-1]} channels, but the "
                f"kernels were made for {w.shape[2]}"
            )

        dtype = jnp.result_type(x, w)
        y = jax.lax.conv_general_dilated(
            x.astype(dtype),
            w.astype(dtype),
            window_strides=self.strides,
            padding=self.padding.upper(),
            dimension_numbers=_CONV_LAYOUT,
        )
        return y + b

    def display(self) -> str:
        """Describe the layer: filters, window, strides, padding, state."""
        state = "trainable" if self.Trainable else "frozen"
        height, width = self.kernel_size
        return (
            f"Conv2D '{self.name}' {self.filters} filters {height}x{width} "
            f"strides={self.strides} padding={self.padding!r} ({state})"
        )


class MaxPool2D(Layer):
    """Max pooling: each output pixel is the largest value in its window.

    Channels are pooled one by one, so the channel count is kept.

    Args:
        input_layer: The layer before, or ``None`` for the first layer.
        pool_size: The window's height and width: an int or a pair.
        strides: The step between windows: an int, a pair, or ``None`` for
            ``pool_size`` (windows side by side, not overlapping).
        padding: ``"valid"`` drops the rows and columns a whole window does
            not cover; ``"same"`` keeps them, each border window taking the
            maximum of the pixels it does cover.
        Trainable: Kept for the uniform signature; the layer has no
            parameters.
        name: A unique name within the model.

    Input shape: ``(batch, height, width, channels)``. Output shape:
    ``(batch, out_height, out_width, channels)``, the sizes given by the
    rule of :class:`Conv2D` with ``pool_size`` as the window.

    Raises:
        ValueError: An argument is out of range; the message names it.

    Example:
        >>> MaxPool2D().compute_output_shape((28, 28, 8))
        (14, 14, 8)
    """

    def __init__(
        self,
        input_layer: Layer | None = None,
        pool_size: int | Sequence[int] = 2,
        strides: int | Sequence[int] | None = None,
        padding: str = "valid",
        Trainable: bool = True,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(input_layer, Trainable, name=name)
        cls = type(self).__name__
        self.pool_size = _pair(pool_size, cls, "pool_size")
        self.strides = (
            self.pool_size if strides is None else _pair(strides, cls, "strides")
        )
        self.padding = _padding(padding, cls)

    def check_input_shape(self, input_shape: Shape) -> None:
        _check_image(self, input_shape)
        _check_window(self, input_shape, self.pool_size, "pool_size", self.padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self.check_input_shape(input_shape)
        height, width = _output_hw(
            input_shape, self.pool_size, self.strides, self.padding
        )
        return (height, width, input_shape[2])

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Take the maximum of each window, channel by channel."""
        self.check_input_shape(tuple(x.shape[1:]))
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)

        # Starting from -inf makes padded pixels lose every comparison.
        pooled: jax.Array = jax.lax.reduce_window(
            x,
            -jnp.inf,
            jax.lax.max,
            window_dimensions=(1, *self.pool_size, 1),
            window_strides=(1, *self.strides, 1),
            padding=self.padding.upper(),
        )
        return pooled

    def display(self) -> str:
        """Describe the layer: window, strides and padding."""
        height, width = self.pool_size
        return (
            f"MaxPool2D '{self.name}' {height}x{width} strides={self.strides} "
            f"padding={self.padding!r}"
        )


class Flatten(Layer):
    """Flattens each example to one axis, e.g. between convolutions and Dense.

    The order is row-major (C order): for an image, all channels of the first
    pixel, then those of the next pixel along the row, and so on.

    Args:
        input_layer: The layer before, or ``None`` for the first layer.
        Trainable: Kept for the uniform signature; the layer has no
            parameters.
        name: A unique name within the model.

    Input shape: ``(batch, *dims)``. Output shape: ``(batch, prod(dims))``.

    Example:
        >>> Flatten().compute_output_shape((7, 7, 32))
        (1568,)
    """

    def __init__(
        self,
        input_layer: Layer | None = None,
        Trainable: bool = True,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(input_layer, Trainable, name=name)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Reshape ``(batch, *dims)`` to ``(batch, prod(dims))``."""
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))
