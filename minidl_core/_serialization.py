"""Saving and loading models: one zip file, the architecture as JSON.

A model file is a zip archive with fixed member names, stored uncompressed:

``minidl.json``
    The format marker and version; the model's name, input shape and seed;
    every layer in graph order with its registry name, its config, the names
    of the layers feeding it and the plugin distribution and version that
    provided it (``null`` for a class no plugin registers); the loss; a table
    of the arrays; and, after training, the epoch count, the ``fit`` seed and
    the optimizer state's structure.
``params/<i>.npy``
    One parameter array each, listed in ``params`` with its path
    (``["dense", "w"]``), shape and dtype.
``optimizer/<i>.npy``
    The optimizer state's leaves in ``jax.tree`` order, when saved.

Reading never unpickles (arrays are read with ``allow_pickle=False``), never
imports or runs anything the file names (a layer is rebuilt only from a class
an installed plugin registers or the caller passes), and never extracts to
disk: an archive with any member name other than the ones above is refused.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from minidl_core._catalog import get_entry
from minidl_core._errors import (
    DuplicateNameError,
    MinidlWarning,
    ModelFileError,
    UnknownNameError,
)
from minidl_core._layer import Layer, Params
from minidl_core._loss import Loss
from minidl_core._model_file import (
    _DTYPES,
    _REQUIREMENT,
    FORMAT,
    FORMAT_VERSION,
    _Invalid,
    _minidl_version,
    _Reader,
    _spec,
    _write_zip,
    atomic_write,
)
from minidl_core._plugins import get_registry
from minidl_core._registry import normalize_name

if TYPE_CHECKING:
    from minidl_core._model import Model

__all__ = [
    "FORMAT_VERSION",
    "MissingPluginError",
    "PluginVersionWarning",
    "atomic_write",
    "describe_model_file",
    "load_model",
    "save_model",
    "write_model",
]

logger = logging.getLogger("minidl")


class MissingPluginError(ModelFileError, UnknownNameError):
    """A model file needs a layer or loss that nothing installed provides.

    The message names the layer, the distribution and the version the file
    was saved with, or says to pass ``custom_objects`` for a class that came
    from no plugin.
    """


class PluginVersionWarning(MinidlWarning):
    """A model file was saved with a newer major version of a plugin."""


# Saving.


def save_model(
    model: Model, path: str | Path, *, include_optimizer: bool = True
) -> Path:
    """Save ``model`` to one file: architecture, weights and training state.

    Args:
        model: A built model.
        path: The file to write, conventionally ``NAME.minidl``. Written
            atomically: an interrupted save leaves the previous file intact.
        include_optimizer: Also save the optimizer state, the epoch count and
            the ``fit`` seed, so ``fit(..., resume_from=path)`` continues
            exactly where training stopped.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        RuntimeError: The model is not built.
        TypeError: A layer's config holds a value JSON cannot hold.
        NotImplementedError: A parameter has a dtype the format does not store.
    """
    return write_model(model, path, include_optimizer=include_optimizer)


def write_model(
    model: Model,
    path: str | Path,
    *,
    include_optimizer: bool = True,
    epoch: int | None = None,
    logs: Mapping[str, float] | None = None,
) -> Path:
    """:func:`save_model`, with the epoch and logs a checkpoint records."""
    from minidl_core._model import Sequential

    model._require_built()
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "minidl_version": _minidl_version(),
        "model": {
            "name": model.name,
            "sequential": isinstance(model, Sequential),
            "input_shape": list(model.input_shape or ()),
            "seed": int(model._seed),
        },
        "layers": [_layer_record(layer) for layer in model.layers],
        "output_layer": model.output_layer.name,
        "loss": None if model.loss is None else _loss_record(model.loss),
        "metrics": _metric_names(model),
    }
    arrays: list[tuple[str, np.ndarray]] = []
    meta["params"] = []
    for index, (key, leaf) in enumerate(_flatten(model.params or {})):
        member = f"params/{index}.npy"
        arrays.append((member, _as_numpy(leaf, "/".join(key))))
        meta["params"].append({"member": member, "path": list(key), **_spec(arrays)})
    meta["training"] = None
    state = model.opt_state if include_optimizer else None
    if state is not None or model.epoch or epoch:
        training: dict[str, Any] = {
            "epoch": int(model.epoch if epoch is None else epoch),
            "seed": model.fit_seed,
            "logs": {k: _finite_or_none(v) for k, v in (logs or {}).items()},
            "optimizer": None,
        }
        if state is not None:
            leaves, structure = jax.tree_util.tree_flatten(state)
            entries = []
            for index, leaf in enumerate(leaves):
                member = f"optimizer/{index}.npy"
                arrays.append((member, _as_numpy(leaf, f"optimizer state {index}")))
                entries.append({"member": member, **_spec(arrays)})
            training["optimizer"] = {"structure": str(structure), "arrays": entries}
        meta["training"] = training
    text = json.dumps(meta, indent=1, allow_nan=False).encode("utf-8")
    return atomic_write(path, lambda handle: _write_zip(handle, text, arrays))


def _as_numpy(leaf: Any, what: str) -> np.ndarray:
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        raise NotImplementedError(f"cannot save {what}: it holds a PRNG key")
    array = np.asarray(leaf, order="C")
    if array.dtype.name not in _DTYPES:
        raise NotImplementedError(
            f"cannot save {what}: dtype {array.dtype} is not one of "
            f"{', '.join(sorted(_DTYPES))}"
        )
    return array


def _flatten(
    tree: Any, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], Any]]:
    if not isinstance(tree, Mapping):
        return [(prefix, tree)]
    items = []
    for key in sorted(tree):
        if not isinstance(key, str):
            raise TypeError(f"parameter keys must be str, got {key!r} in {prefix}")
        items += _flatten(tree[key], (*prefix, key))
    return items


def _metric_names(model: Model) -> list[str]:
    """The model's metrics that a registry name brings back."""
    registry = get_registry()
    return [
        name
        for name in model.metrics
        if registry.find("metric", name) or registry.find("loss", name)
    ]


def _finite_or_none(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _provenance(kind: str, cls: type) -> tuple[str, str | None, str | None]:
    """(registry name, distribution, version) of ``cls``; no plugin: None."""
    try:
        entry: Any = get_entry(kind, cls.__name__)
    except (UnknownNameError, DuplicateNameError):
        entry = None
    if entry is None or entry.obj is not cls:
        found = (e for e in get_registry().entries(kind) if e.obj is cls)
        entry = next(found, None)
    if entry is None:
        return cls.__name__, None, None
    return entry.name, entry.distribution, entry.version


def _json_config(config: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{what}: get_config() returned a value a model file cannot hold "
            f"({error}); return plain numbers, strings, lists and dicts"
        ) from None
    return config


def _layer_record(layer: Layer) -> dict[str, Any]:
    name, distribution, version = _provenance("layer", type(layer))
    return {
        "name": layer.name,
        "type": name,
        "config": _json_config(layer.get_config(), layer.label),
        "inputs": [parent.name for parent in layer.inputs],
        "input_is_list": isinstance(layer.input_layer, list | tuple),
        "trainable": bool(layer.Trainable),
        "distribution": distribution,
        "version": version,
    }


def _loss_record(loss: Loss) -> dict[str, Any]:
    name, distribution, version = _provenance("loss", type(loss))
    config = _json_config(loss.get_config(), f"loss {loss.name}")
    return {
        "type": name,
        "config": config,
        "distribution": distribution,
        "version": version,
    }


# Reading the archive.


# Loading.


def load_model(
    path: str | Path, custom_objects: Mapping[str, type] | None = None
) -> Model:
    """Rebuild a model saved by :func:`save_model`, weights included.

    Each layer is rebuilt from the class its plugin registers under the saved
    name, with the saved config; nothing in the file is imported, unpickled
    or run. A loaded model predicts exactly what the saved one did.

    Args:
        path: The model file.
        custom_objects: Classes for layers or losses that no plugin provides,
            by the name they were saved under: ``{"MyLayer": MyLayer}``. They
            take precedence over registered classes of the same name.

    Returns:
        The model, with its loss, metrics, epoch count and ``fit`` seed.

    Raises:
        ModelFileError: The file is missing, truncated, corrupted, from
            another program or a newer minidl, or does not match the
            architecture it describes; the message says which.
        MissingPluginError: A layer's plugin is not installed; the message
            names the distribution and version to install.

    Warns:
        PluginVersionWarning: An installed plugin is an older major version
            than the one the file was saved with.
    """
    reader = _Reader(path)
    contents = reader.read()
    model = _build_model(reader, contents.meta, dict(custom_objects or {}))
    try:
        model.params = _match_params(model.params or {}, contents.params)
    except _Invalid as error:
        raise reader.error(str(error)) from None
    training = contents.meta["training"]
    if training is not None:
        model.epoch, model.fit_seed = training["epoch"], training["seed"]
    return model


def _build_model(
    reader: _Reader, meta: dict[str, Any], custom: dict[str, type]
) -> Model:
    from minidl_core._model import Model, Sequential
    from minidl_core._training import resolve_metrics

    for name, cls in custom.items():
        if not (isinstance(cls, type) and issubclass(cls, Layer | Loss)):
            raise TypeError(
                f"custom_objects[{name!r}] must be a Layer or Loss subclass, "
                f"got {cls!r}"
            )
    layers: dict[str, Layer] = {}
    for record in meta["layers"]:
        what = f"layer '{record['name']}' ({record['type']})"
        cls = _resolve(reader, "layer", record, what, custom)
        try:
            layer = cls.from_config(record["config"])
        except Exception as error:  # a plugin's constructor refused the config
            raise reader.error(
                f"{what} cannot be rebuilt from its config: {error}"
            ) from None
        parents = [layers[parent] for parent in record["inputs"]]
        layer.name, layer.Trainable = record["name"], record["trainable"]
        if record["input_is_list"]:
            layer.input_layer = parents
        else:
            layer.input_layer = parents[0] if parents else None
        layers[record["name"]] = layer

    info = meta["model"]
    options = {
        "name": info["name"],
        "input_shape": info["input_shape"],
        "seed": info["seed"],
    }
    try:
        if info["sequential"]:
            model: Model = Sequential(list(layers.values()), **options)
        else:
            model = Model(layers[meta["output_layer"]], **options)
    except (ValueError, TypeError) as error:
        raise reader.error(f"its architecture cannot be built: {error}") from None
    if meta["loss"] is not None:
        record = meta["loss"]
        what = f"loss '{record['type']}'"
        cls = _resolve(reader, "loss", record, what, custom)
        try:
            model.loss = cls.from_config(record["config"])
        except Exception as error:  # a plugin's constructor refused the config
            raise reader.error(
                f"{what} cannot be rebuilt from its config: {error}"
            ) from None
    for name in meta["metrics"]:
        try:
            model.metrics.update(resolve_metrics([name]))
        except (UnknownNameError, DuplicateNameError):
            logger.warning("load_model: metric %r is not installed; skipped", name)
    return model


def _resolve(
    reader: _Reader,
    kind: str,
    record: dict[str, Any],
    what: str,
    custom: dict[str, type],
) -> Any:
    name, dist, version = record["type"], record["distribution"], record["version"]
    wanted = Layer if kind == "layer" else Loss
    for key, cls in custom.items():
        if normalize_name(key) == normalize_name(name) and issubclass(cls, wanted):
            return cls
    if dist is None:
        raise reader.error(
            f"{what} is a class that no plugin provides; pass it to load_model "
            f"as custom_objects={{{name!r}: {name}}}",
            MissingPluginError,
        )
    try:
        entry = get_entry(kind, name)
    except UnknownNameError:
        raise reader.error(
            _missing(what, kind, dist, version), MissingPluginError
        ) from None
    if normalize_name(entry.distribution) != normalize_name(dist):
        logger.warning(
            "%s was saved from %s %s; %s %s provides it now",
            what,
            dist,
            version,
            entry.distribution,
            entry.version,
        )
    elif _major(entry.version) < _major(version):
        warnings.warn(
            f"model file '{reader.path}': {what} was saved with {dist} {version}, "
            f"but {dist} {entry.version} is installed, an older major version; "
            f"it may not load or behave as saved: pip install "
            f'--upgrade "{_requirement(dist, version)}"',
            PluginVersionWarning,
            stacklevel=4,
        )
    return entry.obj


def _missing(what: str, kind: str, dist: str, version: str | None) -> str:
    saved = f"{dist} {version or ''}".strip()
    if not _REQUIREMENT.fullmatch(dist):
        return (
            f"{what} came from a plugin registered at run time ({saved}); "
            "register it with minidl_core.register_plugin or pass the class "
            "in custom_objects"
        )
    install = f'pip install "{_requirement(dist, version)}"'
    info = _plugin_of(dist)
    if info is None:
        return f"{what} comes from {saved}, which is not installed: {install}"
    if info.blocked:
        return (
            f"{what} comes from {saved}, which is installed but blocked by "
            "MINIDL_DISABLE_PLUGINS; unblock it"
        )
    problems = f" (its problems: {'; '.join(info.problems)})" if info.problems else ""
    return (
        f"{what} was saved with {saved}, but the installed {info.label} "
        f"provides no {kind} of that name{problems}: {install}"
    )


def _plugin_of(dist: str) -> Any:
    for info in get_registry().plugins.values():
        if normalize_name(info.distribution) == normalize_name(dist):
            return info
    return None


def _requirement(dist: str, version: str | None) -> str:
    return f"{dist}>={version}" if version else dist


def _major(version: str | None) -> int:
    match = re.match(r"\s*v?(\d+)", version or "")
    return int(match.group(1)) if match else -1


def _match_params(expected: Params, saved: dict[tuple[str, ...], np.ndarray]) -> Params:
    """``saved`` arranged like ``expected``, after checking every shape."""
    wanted = dict(_flatten(expected))
    missing = [p for p in wanted if p not in saved]
    extra = [p for p in saved if p not in wanted]
    if missing or extra:
        parts = []
        if missing:
            parts.append("it lacks " + ", ".join("/".join(p) for p in missing[:5]))
        if extra:
            parts.append(
                "the architecture has no " + ", ".join("/".join(p) for p in extra[:5])
            )
        raise _Invalid("its weights do not match its architecture: " + "; ".join(parts))
    for path, ref in wanted.items():
        array = saved[path]
        if array.shape != tuple(ref.shape) or array.dtype != np.dtype(ref.dtype):
            raise _Invalid(
                f"layer '{path[0]}' parameter '{'/'.join(path[1:])}' is a "
                f"{array.dtype} array of shape {array.shape}, but the architecture "
                f"needs {np.dtype(ref.dtype)} {tuple(ref.shape)}"
            )

    def rebuild(tree: Any, prefix: tuple[str, ...]) -> Any:
        if isinstance(tree, Mapping):
            return {key: rebuild(value, (*prefix, key)) for key, value in tree.items()}
        return jnp.asarray(saved[prefix])

    return rebuild(expected, ())  # type: ignore[no-any-return]


# Describing a file without loading it.


def describe_model_file(path: str | Path) -> dict[str, Any]:
    """What a model file holds and which plugins it needs, ready for JSON.

    Reads only the architecture; no layer is built and no array is read.

    Raises:
        ModelFileError: As :func:`load_model`.
    """
    meta = _Reader(path).read(arrays=False).meta
    counts: dict[str, int] = {}
    for entry in meta["params"]:
        size = math.prod(entry["shape"])
        counts[entry["path"][0]] = counts.get(entry["path"][0], 0) + size
    layers = [
        {
            "name": r["name"],
            "type": r["type"],
            "inputs": r["inputs"],
            "params": counts.get(r["name"], 0),
            "trainable": r["trainable"],
            "distribution": r["distribution"],
            "version": r["version"],
        }
        for r in meta["layers"]
    ]
    trainable = sum(layer["params"] for layer in layers if layer["trainable"])
    records = [*meta["layers"], *([meta["loss"]] if meta["loss"] else [])]
    plugins: dict[str, dict[str, Any]] = {}
    for record in records:
        dist = record["distribution"]
        if dist is None or dist in plugins:
            continue
        info = _plugin_of(dist)
        installed = _installed_version(dist, info)
        plugins[dist] = {
            "distribution": dist,
            "saved_version": record["version"],
            "installed": info is not None and not info.blocked,
            "installed_version": installed,
            "older_major": installed is not None
            and _major(installed) < _major(record["version"]),
            "blocked": bool(info is not None and info.blocked),
        }
    training = meta["training"]
    return {
        "path": str(path),
        "name": meta["model"]["name"],
        "format_version": meta["format_version"],
        "minidl_version": meta.get("minidl_version"),
        "input_shape": meta["model"]["input_shape"],
        "layers": layers,
        "custom_layers": sorted(
            {r["type"] for r in meta["layers"] if r["distribution"] is None}
        ),
        "loss": meta["loss"],
        "plugins": list(plugins.values()),
        "params": {
            "total": sum(counts.values()),
            "trainable": trainable,
            "frozen": sum(counts.values()) - trainable,
        },
        "training": None
        if training is None
        else {
            "epoch": training["epoch"],
            "seed": training["seed"],
            "optimizer_state": training["optimizer"] is not None,
            "logs": training["logs"],
        },
    }


def _installed_version(dist: str, info: Any) -> str | None:
    if info is not None:
        return str(info.version)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
