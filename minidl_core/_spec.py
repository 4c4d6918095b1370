"""Model spec files: a TOML list of layers named by registry name.

Example spec::

    [model]
    name = "digits-mlp"
    # Packages a reader of this file must install (pip requirement strings).
    requires = ["minidl"]

    [[layers]]
    type = "Dense"
    units = 128

    [[layers]]
    type = "Relu"

    [[layers]]
    type = "Dense"
    units = 10

    [loss]
    type = "sparse_categorical_crossentropy"
    from_logits = true

The layers form a sequence; every key but ``type`` is passed to the layer's
constructor. ``[loss]`` is optional.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from minidl_core._catalog import get_entry
from minidl_core._errors import MinidlError, UnknownNameError
from minidl_core._loss import Loss
from minidl_core._model import Model, Sequential

__all__ = ["SpecError", "load_spec", "model_from_spec"]


class SpecError(MinidlError, ValueError):
    """A model spec is malformed; the message names the table and key."""


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read a spec TOML file into a dict, with a clear error if unreadable."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"model spec {str(path)!r} is a folder, expected a .toml file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"model spec {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SpecError(
            f"model spec {str(path)!r} is not valid TOML: {error}"
        ) from None


def model_from_spec(
    spec: dict[str, Any] | str | Path, *, input_shape: Any = None, seed: int = 0
) -> tuple[Model, Loss | None]:
    """Build the model (and loss, if the spec has one) a spec describes.

    Raises:
        SpecError: ``[model]`` is not a table or its ``requires`` not a list
            of strings; a missing ``type`` or one that is not a string, an
            option the layer does not take or a required one left out; the
            message names ``[model]`` or ``layers[i]``.
        UnknownNameError: A layer type no installed plugin provides; the
            message lists close matches, the installed plugins and the
            packages the spec says it requires.
    """
    if not isinstance(spec, dict):
        spec = load_spec(spec)
    meta = spec.get("model", {})
    if not isinstance(meta, dict):
        raise SpecError(
            f"model spec: [model] must be a table, got {type(meta).__name__} {meta!r}"
        )
    requires = meta.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise SpecError(
            "model spec [model]: requires must be a list of strings such as "
            f'["minidl-conv>=0.1"], got {requires!r}'
        )
    unknown_keys = sorted(set(spec) - {"model", "layers", "loss"})
    if unknown_keys:
        raise SpecError(
            f"model spec: unknown table(s) {', '.join(unknown_keys)}; expected "
            "[model], [[layers]] and [loss]"
        )
    tables = spec.get("layers")
    if not isinstance(tables, list) or not tables:
        raise SpecError("model spec: needs at least one [[layers]] table")
    layers = []
    for index, table in enumerate(tables):
        layers.append(_build(table, "layer", f"layers[{index}]", requires))
    model = Sequential(
        layers,
        name=str(meta.get("name", "model")),
        input_shape=input_shape,
        seed=seed,
    )
    loss = None
    if "loss" in spec:
        loss = _build(spec["loss"], "loss", "loss", requires)
    return model, loss


def _build(table: Any, kind: str, where: str, requires: list[str]) -> Any:
    if not isinstance(table, dict) or "type" not in table:
        raise SpecError(f"model spec {where}: needs a 'type' key naming the {kind}")
    name = table["type"]
    if not isinstance(name, str):
        raise SpecError(
            f"model spec {where}: type must be a string naming the {kind}, got "
            f"{type(name).__name__} {name!r}"
        )
    options = {k: v for k, v in table.items() if k != "type"}
    try:
        cls = get_entry(kind, name).obj
    except TypeError as error:
        raise SpecError(f"model spec {where}: {error}") from None
    except UnknownNameError as error:
        hint = ""
        if requires:
            hint = (
                " This spec requires: " + ", ".join(requires) + " (pip install them)."
            )
        raise UnknownNameError(f"model spec {where}: {error}{hint}") from None
    try:
        return cls.from_config(options)
    except (TypeError, ValueError) as error:
        raise SpecError(f"model spec {where} ({name}): {error}") from None
