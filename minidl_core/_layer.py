"""The base class every layer derives from."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import IO, Any

import jax
import jax.numpy as jnp

from minidl_core._config import Configurable

__all__ = ["Layer", "Params", "Shape"]

#: A layer's parameters: names to arrays (nested dicts allowed).
Params = dict[str, Any]
#: The shape of one example, without the batch axis.
Shape = tuple[int, ...]


def snake_case(name: str) -> str:
    """``LeakyRelu`` -> ``leaky_relu``, ``Conv2D`` -> ``conv2d``: default names."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class Layer(Configurable):
    """Base class for creating neural network layers with trainable parameters.

    A layer is a pure function of its input and its parameters. It declares
    its parameters in :meth:`init_params` (any names, shapes and
    initializers) and uses them in :meth:`__call__`; the model differentiates
    them with no registration step. Layers are chained by passing the layer
    before as ``input_layer`` and a :class:`~minidl_core.Model` is made from
    the last one.

    A layer that needs randomness or behaves differently in training accepts
    keyword-only ``key`` and/or ``training`` arguments in ``__call__``; the
    model passes them only to layers that take them.

    Args:
        input_layer: The layer whose output feeds this one, a list of layers
            for a layer with several inputs, or ``None`` for the first layer.
        Trainable: Whether the optimizer updates this layer's parameters.
            ``False`` freezes them exactly.
        name: A unique name within the model; by default the class name in
            snake case with a numeric suffix (``dense``, ``dense_1``).

    Example:
        A layer with one parameter per feature::

            class Scale(Layer):
                def init_params(self, key, input_shape):
                    return {"scale": jnp.ones(input_shape[-1:])}

                def __call__(self, x, params):
                    return x * params["scale"]
    """

    def __init__(
        self,
        input_layer: Layer | Sequence[Layer] | None = None,
        Trainable: bool = True,
        *,
        name: str | None = None,
    ) -> None:
        cls = type(self).__name__
        several = (
            isinstance(input_layer, list | tuple)
            and len(input_layer) > 0
            and all(isinstance(x, Layer) for x in input_layer)
        )
        if not (input_layer is None or isinstance(input_layer, Layer) or several):
            raise TypeError(
                f"{cls}: input_layer must be a Layer, a list of Layers or "
                f"None, got {type(input_layer).__name__}: {input_layer!r}"
            )
        if not isinstance(Trainable, bool):
            raise TypeError(
                f"{cls}: Trainable must be True or False, got {Trainable!r}"
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{cls}: name must be a non-empty str, got {name!r}")
        self.input_layer = input_layer
        self.Trainable = Trainable
        self.name = name
        #: This layer's current parameters, kept in step by the model that
        #: holds it; empty until that model is built.
        self.params: Params = {}

    # The contract a subclass fills in.

    def init_params(self, key: jax.Array, input_shape: Shape) -> Params:
        """Create this layer's parameters.

        Args:
            key: A PRNG key for random initializers.
            input_shape: The shape of one input example (no batch axis); a
                list of shapes for a layer with several inputs.

        Returns:
            A dict of arrays (nested dicts allowed); empty for a layer with no
            parameters.
        """
        return {}

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        """Apply the layer to a batch.

        Args:
            x: The input batch, shape ``(batch, *input_shape)``.
            params: What :meth:`init_params` returned, possibly updated.

        Returns:
            The output batch, shape ``(batch, *output_shape)``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement __call__(x, params)"
        )

    def check_input_shape(self, input_shape: Shape) -> None:
        """Raise :class:`ShapeError` if this layer cannot take ``input_shape``.

        Called before any tracing, so a wrong shape gives this message rather
        than an XLA error. The default accepts any shape.
        """

    @property
    def declared_input_shape(self) -> Shape | None:
        """The input shape the layer was told, if any (``None``: infer it)."""
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The shape of one output example for ``input_shape``.

        The default traces the layer abstractly with :func:`jax.eval_shape`;
        nothing is computed.
        """
        self.check_input_shape(input_shape)
        single = not _is_shape_list(input_shape)
        shapes: list[Shape] = [input_shape] if single else list(input_shape)  # type: ignore[arg-type]
        key = jax.random.key(0)
        params = jax.eval_shape(lambda k: self.init_params(k, input_shape), key)
        xs = [
            jax.ShapeDtypeStruct((1, *s), jnp.float32)  # type: ignore[no-untyped-call]
            for s in shapes
        ]

        def run(params: Params, *xs: jax.Array) -> jax.Array:
            x: Any = xs[0] if single else list(xs)
            return self.apply(x, params, key=key, training=False)

        out = jax.eval_shape(run, params, *xs)
        return tuple(out.shape[1:])

    # Conveniences built on the contract.

    @property
    def inputs(self) -> list[Layer]:
        """The layers feeding this one."""
        if self.input_layer is None:
            return []
        if isinstance(self.input_layer, Layer):
            return [self.input_layer]
        return list(self.input_layer)

    def apply(
        self,
        x: Any,
        params: Params,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> jax.Array:
        """Call the layer, passing ``key``/``training`` only if it takes them."""
        kwargs: dict[str, Any] = {}
        takes_key, takes_training = _call_options(type(self))
        if takes_key:
            kwargs["key"] = key
        if takes_training:
            kwargs["training"] = training
        return self(x, params, **kwargs)

    def set_trainables(
        self, params: Params | None = None, trainables: Params | None = None
    ) -> Params:
        """Adds trainable parameters to the model parameters if the layer is trainable.

        Args:
            params: Parameters keyed by layer name; by default this layer's
                own, ``{self.name: self.params}``.
            trainables: The dict of trainable parameters to add to, updated in
                place; by default a new one.

        Returns:
            ``trainables``: with this layer's parameters under its name if it
            is trainable and has parameters, else unchanged.
        """
        name = self.name or snake_case(type(self).__name__)
        if params is None:
            params = {name: self.params}
        if trainables is None:
            trainables = {}
        if self.Trainable and params.get(name):
            trainables[name] = params[name]
        return trainables

    def describe(self) -> str:
        """One line naming the layer's type, name and whether it trains."""
        state = "trainable" if self.Trainable else "frozen"
        return f"{type(self).__name__} '{self.name or '?'}' ({state})"

    def display(self, file: IO[str] | None = None) -> str:
        """Displays the type of layer: prints :meth:`describe` and returns it.

        The one method of the library that prints, because printing is what
        it is for. ``file`` defaults to standard output.
        """
        text = self.describe()
        print(text, file=file if file is not None else sys.stdout)
        return text

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            config = {}
        shown = ", ".join(
            f"{k}={v!r}" for k, v in config.items() if k not in ("Trainable", "name")
        )
        return f"{type(self).__name__}({shown})"

    @property
    def label(self) -> str:
        """How errors name the layer: ``Dense 'dense_2'``."""
        kind = type(self).__name__
        return f"{kind} '{self.name}'" if self.name else kind


def _is_shape_list(shape: Any) -> bool:
    return isinstance(shape, list) and all(isinstance(s, tuple) for s in shape)


_CALL_OPTIONS: dict[type, tuple[bool, bool]] = {}


def _call_options(cls: type) -> tuple[bool, bool]:
    import inspect

    if cls not in _CALL_OPTIONS:
        params = inspect.signature(cls.__call__).parameters
        _CALL_OPTIONS[cls] = ("key" in params, "training" in params)
    return _CALL_OPTIONS[cls]
