"""The model file's container: atomic writes, the zip layout, the JSON schema.

:mod:`minidl_core._serialization` decides what goes into a model file; this
module decides how it is laid out on disk and refuses anything else. See that
module's docstring for the layout.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import secrets
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from minidl_core._errors import (
    ModelFileError,
)

if TYPE_CHECKING:
    pass


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


def _minidl_version() -> str:
    from minidl_core import __version__

    return __version__
