"""Conformance checks for layer classes."""

from __future__ import annotations

import inspect
import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import minidl_core
from minidl_core._layer import Layer, Params, Shape, _call_options
from minidl_core._loss import Loss
from minidl_core._model import Model, Sequential
from minidl_core.testing._conformance import (
    Check,
    CheckFailed,
    CheckSkipped,
    ConformanceReport,
    Tolerance,
    describe,
    require_close,
    require_finite,
    require_gradient,
    require_identical,
    run_checks,
)

__all__ = ["LAYER_CHECKS", "away_from_zero", "check_layer"]

#: The properties :func:`check_layer` checks, in the order it checks them.
LAYER_CHECKS = (
    "build",
    "output_shape",
    "jit",
    "vmap",
    "gradients",
    "trainable",
    "config",
    "save_load",
    "determinism",
)

InputFn = Callable[[jax.Array, tuple[int, ...]], jax.Array]


class _Feed(Layer):
    """Passes its input on, so the layer under test gets an inferred shape."""

    def __init__(self) -> None:
        super().__init__(None, Trainable=False, name="conformance_feed")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def __call__(self, x: jax.Array, params: Params) -> jax.Array:
        return x


class _SquaredError(Loss):
    """A loss of its own, so the check needs no loss from any plugin."""

    def per_sample(self, y_true: Any, y_pred: Any) -> jax.Array:
        self.check_shapes(y_true, y_pred)
        error = jnp.square(jnp.asarray(y_pred) - jnp.asarray(y_true))
        return jnp.mean(error.reshape(error.shape[0], -1), axis=1)


def away_from_zero(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Float32 values with ``0.2 <= |x| <= 1``, a random sign each.

    Keeping clear of 0 keeps activations with a kink there (ReLU and kin)
    differentiable at every input the gradient check probes.
    """
    sign_key, size_key = jax.random.split(key)
    size = jax.random.uniform(size_key, shape, jnp.float32, 0.2, 1.0)
    return jnp.where(jax.random.bernoulli(sign_key, 0.5, shape), size, -size)


class _LayerChecks:
    """The state the layer checks share: the class, its data, the built layer."""

    def __init__(
        self,
        layer_cls: type[Layer],
        config: Mapping[str, Any],
        input_shape: Shape,
        batch_size: int,
        seed: int,
        tol: Tolerance,
        make_input: InputFn,
    ) -> None:
        self.cls = layer_cls
        self.options = dict(config)
        self.input_shape = input_shape
        self.tol = tol
        key = jax.random.key(seed)
        self.init_key, self.call_key, self.data_key, self.probe_key = jax.random.split(
            key, 4
        )
        self.seed = seed
        self.x = make_input(self.data_key, (batch_size, *input_shape))
        self.batches = make_input(
            jax.random.fold_in(self.data_key, 1), (3, batch_size, *input_shape)
        )
        self.layer: Layer | None = None
        self.model: Model | None = None
        self.params: Params = {}

    def make(self, **overrides: Any) -> Layer:
        return self.cls(**{**self.options, **overrides})

    def built(self) -> Layer:
        if self.layer is None:
            raise CheckSkipped("needs a layer that builds (see 'build')")
        return self.layer

    def run(self, layer: Layer, x: jax.Array, params: Params, **kw: Any) -> Any:
        kw.setdefault("key", self.call_key)
        return layer.apply(x, params, **kw)

    def float_leaves(self) -> list[tuple[Any, jax.Array]]:
        return [
            (path, leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(self.params)
            if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating)
        ]

    # The checks, in order.

    def build(self) -> str:
        layer = self.make()
        model = Sequential(
            [_Feed(), layer], input_shape=self.input_shape, seed=self.seed
        )
        self.layer, self.model = layer, model
        self.params = (model.params or {}).get(layer.name or "", {})
        count = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(self.params))
        return f"inferred input {self.input_shape}, {count} parameter values"

    def output_shape(self) -> str:
        layer, model = self.built(), self.model
        promised = tuple(layer.compute_output_shape(self.input_shape))
        expected = (self.x.shape[0], *promised)
        for training in (False, True):
            out = self.run(layer, self.x, self.params, training=training)
            if tuple(out.shape) != expected:
                raise CheckFailed(
                    f"training={training}: output has shape {tuple(out.shape)} "
                    f"for input {tuple(self.x.shape)}, but compute_output_shape"
                    f"({self.input_shape}) promises {expected}"
                )
            require_finite(f"output (training={training})", out)
        if model is not None and model.output_shape != promised:
            raise CheckFailed(
                f"the model infers {model.output_shape}, compute_output_shape "
                f"gives {promised}"
            )
        return f"{tuple(self.x.shape)} -> {expected}"

    def jit(self) -> str:
        layer, found = self.built(), []
        for training in (False, True):
            eager = self.run(layer, self.x, self.params, training=training)

            def call(p: Params, x: jax.Array, k: jax.Array, t: bool = training) -> Any:
                return layer.apply(x, p, key=k, training=t)

            jitted = jax.jit(call)(self.params, self.x, self.call_key)
            found.append(require_close(f"jit, training={training}", jitted, eager))
        return found[-1]

    def vmap(self) -> str:
        layer, found = self.built(), []
        for training in (False, True):
            eager = jnp.stack(
                [
                    self.run(layer, b, self.params, training=training)
                    for b in self.batches
                ]
            )
            mapped = jax.vmap(
                lambda b, t=training: self.run(layer, b, self.params, training=t)
            )(self.batches)
            found.append(
                require_close(
                    f"vmap over {self.batches.shape[0]} batches, training={training}",
                    mapped,
                    eager,
                )
            )
        return found[-1]

    def gradients(self) -> str:
        layer = self.built()
        out = self.run(layer, self.x, self.params, training=True)
        weights = jax.random.normal(self.probe_key, out.shape, jnp.float32)

        # A random projection keeps errors from cancelling out in a plain sum.
        def objective(params: Params, x: jax.Array) -> jax.Array:
            y = self.run(layer, x, params, training=True)
            return jnp.sum(y * weights)

        float_x = jnp.issubdtype(self.x.dtype, jnp.floating)
        argnums = (0, 1) if float_x else (0,)
        grads = jax.jit(jax.grad(objective, argnums=argnums))(self.params, self.x)
        compiled = jax.jit(objective)
        checked, worst = [], 0.0
        for i, (path, leaf) in enumerate(self.float_leaves()):
            name = f"parameter {jax.tree_util.keystr(path)}"

            def fn(value: jax.Array, path: Any = path) -> jax.Array:
                params = _replace_leaf(self.params, path, value)
                result: jax.Array = compiled(params, self.x)
                return result

            grad = _leaf_at(grads[0], path)
            key = jax.random.fold_in(self.probe_key, i)
            worst = max(worst, require_gradient(name, fn, leaf, grad, self.tol, key)[0])
            checked.append(name)
        if float_x:
            key = jax.random.fold_in(self.probe_key, 10_000)
            found = require_gradient(
                "input x",
                lambda x: compiled(self.params, x),
                self.x,
                grads[1],
                self.tol,
                key,
            )
            worst = max(worst, found[0])
            checked.append("input")
        if not checked:
            raise CheckSkipped("no float parameter and no float input")
        return f"{len(checked)} arrays, max abs error {worst:.2g}"

    def trainable(self) -> str:
        self.built()
        if not self.float_leaves():
            raise CheckSkipped("the layer has no float parameters to freeze")
        takes_flag = "Trainable" in inspect.signature(self.cls.__init__).parameters
        frozen = self.make(Trainable=False) if takes_flag else self.make()
        if frozen.Trainable:
            raise CheckSkipped("the constructor takes no Trainable argument")
        before, after = self._one_sgd_step(frozen)
        require_identical(
            f"Trainable=False: after one SGD step of {frozen.label}, parameter",
            after,
            before,
        )
        if not takes_flag:
            return "frozen by construction"
        model = Sequential([_Feed(), self.make()], input_shape=self.input_shape)
        trainable, _ = model.partition(model.params or {})
        name = model.output_layer.name
        if name not in trainable:
            raise CheckFailed(
                f"Trainable=True: Model.partition leaves {model.output_layer.label}"
                "'s parameters out of the trainable ones"
            )
        return "frozen bit for bit after one SGD step; trainable when asked"

    def _one_sgd_step(self, layer: Layer) -> tuple[Params, Params]:
        from minidl_core._training import fit

        model = Sequential(
            [_Feed(), layer], input_shape=self.input_shape, seed=self.seed
        )
        name = layer.name or ""
        before = jax.tree.map(np.array, (model.params or {}).get(name, {}))
        y = jax.random.normal(self.probe_key, (len(self.x), *model.output_shape))
        fit(
            model,
            np.asarray(self.x),
            np.asarray(y),
            loss=_SquaredError(),
            optimizer=optax.sgd(0.1),
            epochs=1,
            batch_size=len(self.x),
            seed=self.seed,
            verbose=0,
        )
        return before, (model.params or {}).get(name, {})

    def config(self) -> str:
        layer = self.built()
        config = layer.get_config()
        try:
            text = json.dumps(config)
        except (TypeError, ValueError) as error:
            bad = {k: type(v).__name__ for k, v in config.items() if not _jsonable(v)}
            raise CheckFailed(
                f"get_config() is not JSON-serializable ({error}); offending "
                f"keys: {bad}"
            ) from None
        expected = self.run(layer, self.x, self.params, training=False)
        for label, cfg in (("get_config()", config), ("JSON", json.loads(text))):
            clone = self.cls.from_config(cfg)
            if type(clone) is not self.cls:
                raise CheckFailed(
                    f"from_config returned {type(clone).__name__}, not "
                    f"{self.cls.__name__}"
                )
            got = self.run(clone, self.x, self.params, training=False)
            require_close(f"from_config({label}) output", got, expected, atol=0.0)
            again = json.dumps(clone.get_config(), sort_keys=True)
            if again != json.dumps(json.loads(text), sort_keys=True):
                raise CheckFailed(
                    f"from_config({label}).get_config() gives {again}, the "
                    f"original gives {text}"
                )
        return f"{len(config)} options"

    def save_load(self) -> str:
        self.built()
        save = getattr(minidl_core, "save_model", None)
        load = getattr(minidl_core, "load_model", None)
        if save is None or load is None:
            raise CheckSkipped("this minidl has no save_model/load_model")
        options: dict[str, Any] = {}
        registry = minidl_core.get_registry()
        if not any(e.obj is self.cls for e in registry.entries("layer")):
            # An unregistered class is saved under its class name and found
            # again through custom_objects.
            if "custom_objects" not in inspect.signature(load).parameters:
                raise CheckSkipped(
                    f"{self.cls.__name__} is not registered by any plugin, and "
                    "load_model takes no custom_objects"
                )
            options["custom_objects"] = {self.cls.__name__: self.cls}
        model = Sequential([self.make()], input_shape=self.input_shape, seed=self.seed)
        expected = model.apply(model.params or {}, self.x)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.minidl"
            save(model, path)
            loaded = load(path, **options)
        require_identical(
            "parameters after save_model/load_model", loaded.params, model.params
        )
        return require_close(
            "output after save_model/load_model",
            loaded.apply(loaded.params, self.x),
            expected,
            atol=0.0,
        )

    def determinism(self) -> str:
        layer = self.built()
        first = layer.init_params(self.init_key, self.input_shape)
        require_identical(
            "init_params twice with one key",
            layer.init_params(self.init_key, self.input_shape),
            first,
        )
        out = self.run(layer, self.x, self.params, training=True)
        again = self.run(layer, self.x, self.params, training=True)
        require_identical("training output twice with one key", again, out)
        if not _call_options(type(layer))[0]:
            return "same key, same parameters and output"
        other = self.run(
            layer, self.x, self.params, training=True, key=jax.random.key(self.seed + 1)
        )
        differs = not np.array_equal(np.asarray(other), np.asarray(out))
        return (
            f"same key, same output; another key {'differs' if differs else 'agrees'}"
        )


def _leaf_at(tree: Any, path: Sequence[Any]) -> Any:
    for entry in path:
        tree = tree[entry.key if hasattr(entry, "key") else entry.idx]
    return tree


def _replace_leaf(tree: Any, path: Sequence[Any], value: Any) -> Any:
    if not path:
        return value
    entry, rest = path[0], path[1:]
    index = entry.key if hasattr(entry, "key") else entry.idx
    if isinstance(tree, dict):
        return {**tree, index: _replace_leaf(tree[index], rest, value)}
    items = list(tree)
    items[index] = _replace_leaf(items[index], rest, value)
    return type(tree)(items)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def check_layer(
    layer_cls: type[Layer],
    config: Mapping[str, Any] | None = None,
    *,
    input_shape: Sequence[int] = (3,),
    batch_size: int = 2,
    seed: int = 0,
    tolerance: Tolerance | None = None,
    make_input: InputFn | None = None,
    skip: Iterable[str] = (),
) -> ConformanceReport:
    """Check that a layer class keeps the layer contract.

    The layer is built from ``config`` after a pass-through layer inside a
    :class:`~minidl_core.Sequential`, so its input shape is inferred. Then:

    - ``build``: it builds by shape inference alone.
    - ``output_shape``: the output's shape is what ``compute_output_shape``
      promises, in inference and in training, and it is finite.
    - ``jit``: ``jax.jit`` gives the eager output.
    - ``vmap``: ``jax.vmap`` over a leading axis of whole batches gives the
      outputs of the batches one at a time.
    - ``gradients``: autodiff matches central finite differences for every
      float parameter and for the input (integer parameters are skipped).
    - ``trainable``: with ``Trainable=False`` one ``optax.sgd`` step of
      :func:`minidl_core.fit` leaves the parameters bit for bit; with
      ``Trainable=True`` it moves them.
    - ``config``: ``get_config()`` is JSON-serializable and
      ``from_config`` of it (also after JSON) gives the same outputs for the
      same parameters.
    - ``save_load``: where minidl has ``save_model``/``load_model`` and a
      plugin registers the class, a model survives a file round trip.
    - ``determinism``: one key gives one set of parameters and one output.

    Args:
        layer_cls: The :class:`~minidl_core.Layer` subclass.
        config: Constructor arguments, e.g. ``{"units": 4}``.
        input_shape: The shape of one example, without the batch axis.
        batch_size: Examples per test batch.
        seed: Seeds parameters and test data.
        tolerance: Gradient-check tolerances; float32 defaults.
        make_input: ``make_input(key, shape) -> array`` for layers that need
            particular inputs (token ids, positive numbers). By default,
            float32 values with ``0.2 <= |x| <= 1``.
        skip: Names from :data:`LAYER_CHECKS` not to run.

    Returns:
        The report; every check passed or was skipped.

    Raises:
        ConformanceError: A check failed; the message names each failed
            property and by how much.
        TypeError: ``layer_cls`` is not a Layer subclass.
        ValueError: ``skip`` names an unknown check.

    Example:
        >>> from minidl_core.layers import Relu
        >>> report = check_layer(Relu, input_shape=(4,))
        >>> [r.name for r in report.failed]
        []
    """
    __tracebackhide__ = True
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, Layer)):
        raise TypeError(
            f"check_layer: layer_cls must be a subclass of minidl_core.Layer, got "
            f"{layer_cls!r}"
        )
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(
            f"check_layer: input_shape must hold positive sizes, got {input_shape!r}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"check_layer: batch_size must be >= 1, got {batch_size!r}")
    config = dict(config or {})
    checks = _LayerChecks(
        layer_cls,
        config,
        shape,
        batch_size,
        seed,
        tolerance or Tolerance(),
        make_input or away_from_zero,
    )
    table: dict[str, Check] = {name: getattr(checks, name) for name in LAYER_CHECKS}
    return run_checks(describe(layer_cls, config), table, skip)
