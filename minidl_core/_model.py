"""Models: a graph of layers, its parameters and the pure forward pass."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minidl_core._errors import ShapeError
from minidl_core._layer import Layer, Params, Shape, snake_case

__all__ = ["Model", "Sequential"]


def _topological_order(output: Layer) -> list[Layer]:
    order: list[Layer] = []
    state: dict[int, str] = {}

    def visit(layer: Layer) -> None:
        mark = state.get(id(layer))
        if mark == "done":
            return
        if mark == "active":
            raise ValueError(f"the layer graph has a cycle through {layer.label}")
        state[id(layer)] = "active"
        for parent in layer.inputs:
            visit(parent)
        state[id(layer)] = "done"
        order.append(layer)

    visit(output)
    return order


class Model:
    """A network made from the output layer of a graph of layers.

    The model walks the graph back from ``output_layer`` through each layer's
    ``input_layer``, gives every layer a unique name, infers shapes and owns
    the parameters: a dict keyed by layer name, each value the dict the
    layer's :meth:`~minidl_core.Layer.init_params` returned.

    Args:
        output_layer: The last layer of the graph.
        name: The model's name, shown by :meth:`summary`.
        input_shape: The shape of one example, if no layer declares it; else
            it is inferred from the first data the model sees.
        seed: Seeds parameter initialization.

    Raises:
        TypeError: ``output_layer`` is not a Layer.
        ValueError: The graph has a cycle, several first layers, or two
            layers with one name.
    """

    def __init__(
        self,
        output_layer: Layer,
        *,
        name: str = "model",
        input_shape: Sequence[int] | int | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(output_layer, Layer):
            raise TypeError(
                "Model: output_layer must be a Layer (the last layer of the "
                f"graph), got {type(output_layer).__name__}: {output_layer!r}"
            )
        self.name = name
        self.output_layer = output_layer
        self.layers = _topological_order(output_layer)
        sources = [layer for layer in self.layers if not layer.inputs]
        if len(sources) != 1:
            raise ValueError(
                f"Model: the graph must start at exactly one layer with no "
                f"input_layer, found {len(sources)}: "
                + ", ".join(type(s).__name__ for s in sources)
            )
        self.input_layer = sources[0]
        self._assign_names()
        self._seed = seed
        self._input_shape: Shape | None = None
        declared = self.input_layer.declared_input_shape
        if input_shape is not None:
            self._input_shape = _as_shape(input_shape, "input_shape")
        elif declared is not None:
            self._input_shape = tuple(declared)
        self._params: Params | None = None
        self.shapes: dict[str, Shape] = {}
        self.history: Any = None
        self.stop_training = False
        self.stop_reason = ""
        self.loss: Any = None
        self.metrics: dict[str, Any] = {}
        self.opt_state: Any = None
        self.epoch = 0
        self.fit_seed: int | None = None
        self._eval_cache: OrderedDict[Any, Any] = OrderedDict()
        self._optimizer_used: Any = None
        if self._input_shape is not None:
            self.build(self._input_shape, seed=seed)

    def _assign_names(self) -> None:
        taken: dict[str, Layer] = {}
        for layer in self.layers:
            if layer.name is not None:
                if layer.name in taken and taken[layer.name] is not layer:
                    raise ValueError(
                        f"Model: two layers are named {layer.name!r}; layer "
                        "names must be unique within a model"
                    )
                taken[layer.name] = layer
        for layer in self.layers:
            if layer.name is None:
                base = snake_case(type(layer).__name__)
                candidate, n = base, 0
                while candidate in taken:
                    n += 1
                    candidate = f"{base}_{n}"
                layer.name = candidate
                taken[candidate] = layer

    # Building.

    @property
    def params(self) -> Params | None:
        """Parameters keyed by layer name; ``None`` until built."""
        return self._params

    @params.setter
    def params(self, params: Params | None) -> None:
        self._params = params
        for layer in self.layers:
            layer.params = (params or {}).get(layer.name or "", {})

    @property
    def built(self) -> bool:
        """Whether the parameters exist."""
        return self.params is not None

    @property
    def input_shape(self) -> Shape | None:
        """The shape of one input example, once known."""
        return self._input_shape

    @property
    def output_shape(self) -> Shape:
        """The shape of one output example."""
        self._require_built()
        return self.shapes[self.output_layer.name or ""]

    def infer_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """Each layer's output shape for an input of ``input_shape``.

        Raises:
            ShapeError: A layer cannot take what the layer before gives; the
                message names that layer.
        """
        shapes: dict[str, Shape] = {}
        for layer in self.layers:
            in_shape = self._input_of(layer, shapes, input_shape)
            try:
                layer.check_input_shape(in_shape)
                shapes[layer.name or ""] = tuple(layer.compute_output_shape(in_shape))
            except ShapeError:
                raise
            except Exception as error:
                raise ShapeError(
                    f"{layer.label}: cannot take input of shape {in_shape}: "
                    f"{type(error).__name__}: {error}"
                ) from error
        return shapes

    def build(
        self,
        input_shape: Sequence[int] | int,
        *,
        seed: int | None = None,
        key: jax.Array | None = None,
    ) -> Params:
        """Infer shapes and create fresh parameters for ``input_shape``.

        Args:
            input_shape: The shape of one example, without the batch axis.
            seed: Seeds the initializers (default: the model's seed).
            key: A PRNG key instead of ``seed``.

        Returns:
            The new parameters, also stored as ``self.params``.
        """
        shape = _as_shape(input_shape, "input_shape")
        declared = self.input_layer.declared_input_shape
        if declared is not None and tuple(declared) != shape:
            raise ShapeError(
                f"{self.input_layer.label}: declared input shape "
                f"{tuple(declared)}, but got examples of shape {shape}"
            )
        self.shapes = self.infer_shapes(shape)
        if key is None:
            key = jax.random.key(self._seed if seed is None else seed)
        params: Params = {}
        for index, layer in enumerate(self.layers):
            in_shape = self._input_of(layer, self.shapes, shape)
            layer_params = layer.init_params(jax.random.fold_in(key, index), in_shape)
            if layer_params:
                params[layer.name or ""] = layer_params
        self._input_shape = shape
        self.params = params
        return params

    def _input_of(
        self, layer: Layer, shapes: dict[str, Shape], model_input: Shape
    ) -> Any:
        if not layer.inputs:
            return model_input
        if isinstance(layer.input_layer, Layer):
            return shapes[layer.input_layer.name or ""]
        return [shapes[parent.name or ""] for parent in layer.inputs]

    def _require_built(self) -> None:
        if self.params is None:
            raise RuntimeError(
                f"Model '{self.name}' is not built yet: call build(input_shape), "
                "fit or predict first, or give the first layer an input shape"
            )

    # The forward pass.

    def apply(
        self,
        params: Params,
        x: jax.Array,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> jax.Array:
        """The pure forward pass: jit-, grad- and vmap-able.

        Args:
            params: Parameters keyed by layer name.
            x: A batch, shape ``(batch, *input_shape)``.
            key: A PRNG key for stochastic layers such as Dropout; each layer
                receives its own key folded from it.
            training: Whether layers act as in training (Dropout drops).

        Returns:
            The output batch, shape ``(batch, *output_shape)``.
        """
        values: dict[str, jax.Array] = {}
        for index, layer in enumerate(self.layers):
            if not layer.inputs:
                inputs: Any = x
            elif isinstance(layer.input_layer, Layer):
                inputs = values[layer.input_layer.name or ""]
            else:
                inputs = [values[p.name or ""] for p in layer.inputs]
            layer_key = None if key is None else jax.random.fold_in(key, index)
            values[layer.name or ""] = layer.apply(
                inputs,
                params.get(layer.name or "", {}),
                key=layer_key,
                training=training,
            )
        return values[self.output_layer.name or ""]

    def __call__(self, x: Any, params: Params | None = None) -> jax.Array:
        """The forward pass in inference mode, with the model's parameters."""
        if params is None:
            x = self._check_x(x, "x")
            params = self.params
        return self.apply(params or {}, jnp.asarray(x), training=False)

    # Trainable and frozen parameters.

    def partition(self, params: Params) -> tuple[Params, Params]:
        """Split ``params`` into (trainable, frozen) by each layer's flag."""
        trainable: Params = {}
        for layer in self.layers:
            layer.set_trainables(params, trainable)
        frozen = {k: v for k, v in params.items() if k not in trainable}
        return trainable, frozen

    def count_params(self) -> tuple[int, int]:
        """(trainable, frozen) parameter counts."""
        self._require_built()
        trainable, frozen = self.partition(self.params or {})
        return _size(trainable), _size(frozen)

    # Checking data.

    def _check_x(self, x: Any, argument: str) -> np.ndarray:
        """Validate a feature array and build the model if needed."""
        array = _as_float_array(x, argument)
        if array.ndim < 2:
            raise ShapeError(
                f"{argument}: expected a batch of shape (examples, features...), "
                f"got shape {array.shape}"
            )
        if array.shape[0] == 0:
            raise ValueError(f"{argument}: the dataset is empty (0 examples)")
        if not np.all(np.isfinite(array)):
            bad = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(
                f"{argument}: contains NaN or inf (first at index "
                f"{tuple(int(i) for i in bad)}); clean or impute the data first"
            )
        example = tuple(array.shape[1:])
        if self.params is None:
            self.build(example)
        elif example != self._input_shape:
            raise ShapeError(
                f"{argument}: examples have shape {example}, but model "
                f"'{self.name}' expects {self._input_shape} (its first layer is "
                f"{self.input_layer.label})"
            )
        return array

    # Reporting.

    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts."""
        self._require_built()
        rows = [("Layer (type)", "Output shape", "Params", "Trainable")]
        assert self.params is not None
        for layer in self.layers:
            name = layer.name or ""
            count = _size(self.params.get(name, {}))
            rows.append(
                (
                    f"{name} ({type(layer).__name__})",
                    str((None, *self.shapes[name])),
                    f"{count:,}",
                    "-" if not count else "yes" if layer.Trainable else "frozen",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        line = "-" * (sum(widths) + 6)
        out = [f"Model: {self.name}", line]
        for i, row in enumerate(rows):
            out.append(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            )
            if i == 0:
                out.append(line)
        trainable, frozen = self.count_params()
        out += [
            line,
            f"Total params: {trainable + frozen:,}",
            f"Trainable params: {trainable:,}",
            f"Frozen params: {frozen:,}",
        ]
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, layers={len(self.layers)})"

    # Training, evaluation and prediction live in _training.

    def fit(self, x: Any, y: Any, **options: Any) -> Any:
        """Train the model; see :func:`minidl_core.fit` for every option."""
        from minidl_core._training import fit

        return fit(self, x, y, **options)

    def evaluate(self, x: Any, y: Any, **options: Any) -> dict[str, float]:
        """Loss and metrics on data; see :func:`minidl_core.evaluate`."""
        from minidl_core._training import evaluate

        return evaluate(self, x, y, **options)

    def predict(self, x: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Outputs for ``x`` in inference mode; see :func:`minidl_core.predict`."""
        from minidl_core._training import predict

        return predict(self, x, batch_size=batch_size)

    def save(self, path: str | Path, *, include_optimizer: bool = True) -> Path:
        """Save the model to one file; see :func:`minidl_core.save_model`."""
        from minidl_core._serialization import save_model

        return save_model(self, path, include_optimizer=include_optimizer)


class Sequential(Model):
    """A model from a list of layers, each feeding the next.

    Layers given without ``input_layer`` are chained in order, so no layer
    need name the one before it or repeat an input shape.

    Example:
        >>> from minidl_core import Sequential
        >>> from minidl_core.layers import Dense, Relu
        >>> model = Sequential([Dense(units=8), Relu(), Dense(units=2)], input_shape=4)
        >>> model.output_shape
        (2,)
    """

    def __init__(self, layers: Iterable[Layer], **options: Any) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential: layers must hold at least one Layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: layers[{i}] must be a Layer, got "
                    f"{type(layer).__name__}: {layer!r}"
                )
        if layers[0].input_layer is not None:
            raise ValueError(
                f"Sequential: layers[0] ({layers[0].label}) already has an "
                f"input_layer ({layers[0].inputs[0].label}); the first layer of "
                "a Sequential starts the graph"
            )
        for before, layer in itertools.pairwise(layers):
            if layer.input_layer is None:
                layer.input_layer = before
            elif layer.input_layer is not before:
                raise ValueError(
                    f"Sequential: {type(layer).__name__} already has another "
                    "input_layer; leave input_layer unset in a Sequential"
                )
        super().__init__(layers[-1], **options)


def _as_shape(value: Sequence[int] | int, argument: str) -> Shape:
    if isinstance(value, int | np.integer):
        value = (int(value),)
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{argument}: expected an int or a tuple of ints, got {value!r}"
        ) from None
    if any(s <= 0 for s in shape) or any(not float(v).is_integer() for v in value):
        raise ValueError(f"{argument}: sizes must be positive ints, got {value!r}")
    return shape


def _as_float_array(x: Any, argument: str) -> np.ndarray:
    try:
        array = np.asarray(x)
    except Exception as error:
        raise TypeError(f"{argument}: cannot be read as an array: {error}") from None
    if (
        array.dtype == object
        or np.issubdtype(array.dtype, np.complexfloating)
        or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool)
    ):
        raise TypeError(
            f"{argument}: expected real numbers, got an array of dtype {array.dtype}"
        )
    if np.issubdtype(array.dtype, np.floating) and array.dtype.itemsize > 4:
        finite = np.abs(array[np.isfinite(array)])
        limit = float(np.finfo(np.float32).max)
        if finite.size and float(finite.max()) > limit:
            raise ValueError(
                f"{argument}: holds values up to {float(finite.max()):.3g}, "
                f"beyond float32's range of {limit:.3g}; rescale the data"
            )
    return array.astype(np.float32, copy=False)


def _size(tree: Any) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(tree)))
