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

import contextlib
import io
import json
import logging
import math
import os
import re
import secrets
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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

FORMAT = "minidl-model"
#: The newest file format this minidl writes and reads.
FORMAT_VERSION = 1

_META = "minidl.json"
_MEMBER = re.compile(r"(params|optimizer)/(0|[1-9][0-9]{0,8})\.npy")
_MAX_META_BYTES = 64 << 20
_NPY_HEADER_ROOM = 1 << 16
_DTYPES = frozenset(
    {"bool", "float16", "float32", "float64"}
    | {f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)}
)
_REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class MissingPluginError(ModelFileError, UnknownNameError):
    """A model file needs a layer or loss that nothing installed provides.

    The message names the layer, the distribution and the version the file
    was saved with, or says to pass ``custom_objects`` for a class that came
    from no plugin.
    """


class PluginVersionWarning(MinidlWarning):
    """A model file was saved with a newer major version of a plugin."""


class _Invalid(Exception):
    """A problem with a file's content; the reader adds the file's name."""


# Atomic writes.


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file so that a crash leaves either the old or the new one.

    ``write`` fills a temporary file in the target's folder, which is then
    flushed, synced to disk and renamed over ``path``; the folder is synced
    too, so the rename itself survives a power loss. If ``write`` raises, the
    temporary file is removed and ``path`` is untouched. A process killed
    outright may leave a hidden ``.NAME.*.tmp`` file behind; nothing reads it.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"cannot save to '{path}': folder '{folder}' does not exist"
        )
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to '{path}': it is a folder")
    temp = folder / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    # O_EXCL: never follow or reuse someone else's file; mode 666 & umask.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)
    return path


def _fsync_folder(folder: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows cannot open a folder; its rename is already durable.
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _write_zip(handle: IO[bytes], text: bytes, arrays: list[tuple[str, Any]]) -> None:
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(_META, text)
        for member, array in arrays:
            _write_array(archive, member, array)


def _write_array(archive: zipfile.ZipFile, member: str, array: np.ndarray) -> None:
    with archive.open(member, "w", force_zip64=array.nbytes > 1 << 30) as out:
        np.lib.format.write_array(out, array, allow_pickle=False)


def _spec(arrays: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    array = arrays[-1][1]
    return {"shape": list(array.shape), "dtype": array.dtype.name}


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


def _minidl_version() -> str:
    from minidl_core import __version__

    return __version__


# Reading the archive.


@dataclass(frozen=True)
class _Contents:
    meta: dict[str, Any]
    params: dict[tuple[str, ...], np.ndarray]
    optimizer: list[np.ndarray] | None


class _Reader:
    """Reads one model file, turning every problem into a ModelFileError."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def error(
        self, message: str, cls: type[ModelFileError] = ModelFileError
    ) -> ModelFileError:
        """An error of class ``cls`` that names the file."""
        return cls(f"model file '{self.path}': {message}")

    def read(self, *, arrays: bool = True) -> _Contents:
        with self._open() as archive:
            names = self._check_members(archive)
            meta = self._read_meta(archive)
            tables = _array_tables(meta)
            listed = {entry["member"]: entry for entry in tables}
            for name in sorted(names - set(listed)):
                raise self.error(f"unexpected member {name!r}, not listed in {_META}")
            for name in sorted(set(listed) - names):
                raise self.error(f"member {name!r} listed in {_META} is missing")
            if not arrays:
                return _Contents(meta, {}, None)
            params = {
                tuple(entry["path"]): self._read_array(archive, entry)
                for entry in meta["params"]
            }
            optimizer = None
            if meta["training"] and meta["training"]["optimizer"]:
                entries = meta["training"]["optimizer"]["arrays"]
                optimizer = [self._read_array(archive, entry) for entry in entries]
        return _Contents(meta, params, optimizer)

    def _open(self) -> zipfile.ZipFile:
        if not self.path.is_file():
            what = "is a folder" if self.path.is_dir() else "does not exist"
            raise self.error(what)
        with open(self.path, "rb") as handle:
            head = handle.read(8)
        if not head.startswith(b"PK\x03\x04"):
            raise self.error(f"is not a minidl model file: {_sniff(head)}")
        try:
            return zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
            raise self.error(
                f"is truncated or damaged: its zip directory cannot be read ({e})"
            ) from None

    def _check_members(self, archive: zipfile.ZipFile) -> set[str]:
        names = archive.namelist()
        for name in names:
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or ":" in name:
                raise self.error(f"refused: member {name!r} has an unsafe path")
        if _META not in names:
            shown = ", ".join(repr(n) for n in names[:5]) or "nothing"
            raise self.error(
                f"is a zip archive but not a minidl model: it has no {_META!r} "
                f"member (it holds {shown})"
            )
        seen: set[str] = set()
        for name in names:
            if name != _META and not _MEMBER.fullmatch(name):
                raise self.error(f"unexpected member {name!r}")
            if name in seen:
                raise self.error(f"member {name!r} appears more than once")
            seen.add(name)
        return seen - {_META}

    def _member_bytes(self, archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
        info = archive.getinfo(name)
        if info.file_size > limit:
            raise self.error(
                f"member {name!r} claims {info.file_size} bytes, more than the "
                f"{limit} its listed shape allows"
            )
        try:
            return archive.read(name)
        except zipfile.BadZipFile as error:
            raise self.error(f"member {name!r} is corrupted ({error})") from None
        except (zlib.error, EOFError, OSError, RuntimeError, ValueError) as error:
            raise self.error(f"member {name!r} cannot be read ({error})") from None

    def _read_meta(self, archive: zipfile.ZipFile) -> dict[str, Any]:
        raw = self._member_bytes(archive, _META, _MAX_META_BYTES)
        try:
            meta = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise self.error(f"{_META} is not valid JSON ({error})") from None
        try:
            _validate(meta)
        except _Invalid as error:
            raise self.error(str(error)) from None
        return meta  # type: ignore[no-any-return]

    def _read_array(
        self, archive: zipfile.ZipFile, entry: dict[str, Any]
    ) -> np.ndarray:
        name, shape, dtype = entry["member"], tuple(entry["shape"]), entry["dtype"]
        size = math.prod(shape) * np.dtype(dtype).itemsize
        raw = self._member_bytes(archive, name, size + _NPY_HEADER_ROOM)
        try:
            array = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
        except Exception as error:  # untrusted bytes: any parse failure
            raise self.error(
                f"member {name!r} is not a plain .npy array ({error})"
            ) from None
        if array.shape != shape or array.dtype != np.dtype(dtype):
            raise self.error(
                f"member {name!r} holds a {array.dtype} array of shape "
                f"{array.shape}, but {_META} lists {dtype} {shape}"
            )
        return array


def _sniff(head: bytes) -> str:
    known = {
        b"\x89PNG": "it is a PNG image",
        b"\x89HDF": "it is an HDF5 file (a Keras .h5 model?)",
        b"\x1f\x8b": "it is gzip-compressed",
        b"%PDF": "it is a PDF document",
        b"\x80": "it looks like a Python pickle, which minidl never loads",
        b"{": "it is a JSON or text file",
        b"PK\x05\x06": "it is an empty zip archive",
    }
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    if not head:
        return "it is empty"
    return f"it starts with {head!r}, not a zip archive's signature"


# The schema of minidl.json.

_NONE = type(None)
_MODEL = {"name": str, "sequential": bool, "input_shape": list, "seed": int}
_LAYER = {
    "name": str,
    "type": str,
    "config": dict,
    "inputs": list,
    "input_is_list": bool,
    "trainable": bool,
    "distribution": (str, _NONE),
    "version": (str, _NONE),
}
_LOSS = {
    "type": str,
    "config": dict,
    "distribution": (str, _NONE),
    "version": (str, _NONE),
}
_TRAINING = {
    "epoch": int,
    "seed": (int, _NONE),
    "logs": dict,
    "optimizer": (dict, _NONE),
}
_ARRAY = {"member": str, "shape": list, "dtype": str}


def _fields(obj: Any, spec: dict[str, Any], where: str) -> None:
    """Check that ``obj`` is an object with each field of ``spec``'s types."""
    if not isinstance(obj, dict):
        raise _Invalid(f"field '{where}' must be an object, got {type(obj).__name__}")
    for key, kinds in spec.items():
        name = f"{where}.{key}" if where else key
        if key not in obj:
            raise _Invalid(f"{_META} is missing the field '{name}'")
        value, kinds = obj[key], kinds if isinstance(kinds, tuple) else (kinds,)
        if not isinstance(value, kinds) or (
            isinstance(value, bool) and bool not in kinds
        ):
            wanted = " or ".join("null" if k is _NONE else k.__name__ for k in kinds)
            raise _Invalid(
                f"field '{name}' must be {wanted}, got "
                f"{type(value).__name__} {str(value)[:40]!r}"
            )


def _validate(meta: Any) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise _Invalid(
            f"not a minidl model: format is {str(found)[:40]!r}, not {FORMAT!r}"
        )
    _fields(meta, {"format_version": int}, "")
    version = meta["format_version"]
    if version > FORMAT_VERSION:
        raise _Invalid(
            f"written in format version {version} by minidl "
            f"{meta.get('minidl_version', '?')}, but this minidl "
            f"({_minidl_version()}) reads format versions up to {FORMAT_VERSION}; "
            "upgrade minidl"
        )
    if version < 1:
        raise _Invalid(f"format_version must be >= 1, got {version}")
    top = {
        "model": dict,
        "layers": list,
        "output_layer": str,
        "loss": (dict, _NONE),
        "metrics": list,
        "params": list,
        "training": (dict, _NONE),
    }
    _fields(meta, top, "")
    _fields(meta["model"], _MODEL, "model")
    _shape(meta["model"]["input_shape"], "model.input_shape", minimum=1)
    _validate_layers(meta)
    if meta["loss"] is not None:
        _fields(meta["loss"], _LOSS, "loss")
    if not all(isinstance(m, str) for m in meta["metrics"]):
        raise _Invalid("field 'metrics' must be a list of names")
    training = meta["training"]
    if training is not None:
        _fields(training, _TRAINING, "training")
        if training["epoch"] < 0:
            raise _Invalid(f"training.epoch must be >= 0, got {training['epoch']}")
        if training["optimizer"] is not None:
            optimizer_spec = {"structure": str, "arrays": list}
            _fields(training["optimizer"], optimizer_spec, "training.optimizer")
    _validate_arrays(meta)


def _validate_layers(meta: dict[str, Any]) -> None:
    seen: set[str] = set()
    for index, layer in enumerate(meta["layers"]):
        where = f"layers[{index}]"
        _fields(layer, _LAYER, where)
        for parent in layer["inputs"]:
            if parent not in seen:
                raise _Invalid(
                    f"'{where}.inputs' names {parent!r}, not an earlier layer"
                )
        if layer["name"] in seen or not layer["name"]:
            raise _Invalid(f"'{where}.name' {layer['name']!r} is empty or repeated")
        if "input_layer" in layer["config"]:
            raise _Invalid(f"'{where}.config' must not hold 'input_layer'")
        seen.add(layer["name"])
    if meta["output_layer"] not in seen:
        raise _Invalid(f"output_layer {meta['output_layer']!r} is not a layer")


def _validate_arrays(meta: dict[str, Any]) -> None:
    tables = [(f"params[{i}]", entry) for i, entry in enumerate(meta["params"])]
    if meta["training"] and meta["training"]["optimizer"]:
        arrays = meta["training"]["optimizer"]["arrays"]
        tables += [(f"training.optimizer.arrays[{i}]", e) for i, e in enumerate(arrays)]
    paths: set[tuple[str, ...]] = set()
    members: set[str] = set()
    for where, entry in tables:
        _fields(entry, _ARRAY, where)
        _shape(entry["shape"], f"'{where}.shape'", minimum=0)
        if entry["dtype"] not in _DTYPES:
            raise _Invalid(f"'{where}.dtype' {entry['dtype']!r} is not supported")
        member = entry["member"]
        if not _MEMBER.fullmatch(member) or member in members:
            raise _Invalid(f"'{where}.member' {member!r} is invalid or repeated")
        members.add(member)
        if where.startswith("params"):
            _fields(entry, {"path": list}, where)
            path = tuple(entry["path"])
            if not path or not all(isinstance(p, str) for p in path) or path in paths:
                raise _Invalid(f"'{where}.path' is empty, not strings or repeated")
            paths.add(path)


def _array_tables(meta: dict[str, Any]) -> list[Any]:
    tables = list(meta["params"])
    training = meta.get("training")
    if training and training.get("optimizer"):
        tables += training["optimizer"]["arrays"]
    return tables


def _shape(value: list[Any], what: str, *, minimum: int) -> None:
    if not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= minimum for s in value
    ):
        raise _Invalid(f"{what} must be a list of ints >= {minimum}, got {value!r}")


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
