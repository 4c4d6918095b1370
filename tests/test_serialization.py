"""Model files: round trips, provenance, corrupt input and atomic writes."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

import minidl_core
from minidl_core import (
    Layer,
    MissingPluginError,
    Model,
    ModelFileError,
    PluginVersionWarning,
    Sequential,
    UnknownNameError,
    hookimpl,
    load_model,
    save_model,
)
from minidl_core import _model_file as model_file
from minidl_core._cli import main
from minidl_core.layers import Dense, Dropout, InputLayer, Relu


def _data(n: int = 48, features: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x @ rng.normal(size=(features, 1))).astype(np.float32)
    return x, y


def _mlp(seed: int = 1) -> Model:
    layers = [Dense(units=8), Relu(), Dropout(0.25), Dense(units=1)]
    return Sequential(layers, input_shape=4, seed=seed, name="regressor")


def _graph_model() -> Model:
    inputs = InputLayer(shape=4)
    hidden = Dense(inputs, 4, 6)
    frozen = Dense(Relu(hidden), output_shape=3, Trainable=False, name="frozen")
    return Model(Dense(frozen, output_shape=2), name="graph")


def _assert_same_params(a: Model, b: Model) -> None:
    assert a.params is not None and b.params is not None
    assert a.params.keys() == b.params.keys()
    for layer in a.params:
        assert a.params[layer].keys() == b.params[layer].keys()
        for name in a.params[layer]:
            assert np.array_equal(a.params[layer][name], b.params[layer][name])


# Round trips.


@pytest.mark.parametrize("trained", [False, True], ids=["untrained", "trained"])
@pytest.mark.parametrize("make", [_mlp, _graph_model], ids=["sequential", "graph"])
def test_loaded_model_predicts_bit_for_bit(
    make: Callable[[], Model], trained: bool, tmp_path: Path
) -> None:
    x, y = _data()
    model = make()
    if trained:
        y_fit = y if model.output_shape == (1,) else np.repeat(y, 2, axis=1)
        model.fit(x, y_fit, loss="mse", epochs=2, batch_size=10, verbose=0)
    expected = model.predict(x)

    path = save_model(model, tmp_path / "model.minidl")
    loaded = load_model(path)

    assert type(loaded) is type(model)
    assert loaded.name == model.name
    assert np.array_equal(loaded.predict(x), expected)
    _assert_same_params(model, loaded)
    assert [layer.name for layer in loaded.layers] == [
        layer.name for layer in model.layers
    ]
    assert [layer.Trainable for layer in loaded.layers] == [
        layer.Trainable for layer in model.layers
    ]


def test_model_save_method_writes_a_loadable_file(tmp_path: Path) -> None:
    x, y = _data()
    model = _mlp()
    model.fit(x, y, loss="mse", metrics=["mae"], epochs=3, seed=4, verbose=0)

    path = model.save(tmp_path / "m.minidl")
    loaded = load_model(path)

    assert path == tmp_path / "m.minidl"
    assert type(loaded.loss).__name__ == "MSE"
    assert list(loaded.metrics) == ["mae"]
    assert (loaded.epoch, loaded.fit_seed) == (3, 4)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_loss_config_survives(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    labels = np.arange(30) % 3
    model = Sequential([Dense(units=3)], input_shape=4)
    loss = minidl_core.get_loss("sparse_categorical_crossentropy")(from_logits=True)
    model.fit(x, labels, loss=loss, epochs=1, batch_size=8, verbose=0)

    loaded = load_model(model.save(tmp_path / "c.minidl"))

    assert loaded.loss.get_config() == {"from_logits": True}


def test_file_holds_json_architecture_and_npy_weights(tmp_path: Path) -> None:
    model = _mlp()
    path = save_model(model, tmp_path / "m.minidl")

    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("minidl.json"))
        arrays = {
            tuple(entry["path"]): np.load(
                io.BytesIO(archive.read(entry["member"])), allow_pickle=False
            )
            for entry in meta["params"]
        }

    assert meta["format_version"] == 1
    assert meta["model"]["input_shape"] == [4]
    by_name = {layer["name"]: layer for layer in meta["layers"]}
    assert by_name["dense"]["type"] == "Dense"
    assert by_name["dense"]["config"]["output_shape"] == 8
    assert by_name["dense_1"]["inputs"] == ["dropout"]
    assert by_name["dropout"]["config"]["fraction"] == 0.25
    assert {layer["distribution"] for layer in meta["layers"]} == {"minidl"}
    assert by_name["relu"]["version"] == metadata.version("minidl")
    assert meta["training"] is None
    assert model.params is not None
    assert np.array_equal(arrays[("dense", "w")], model.params["dense"]["w"])
    assert np.array_equal(arrays[("dense_1", "b")], model.params["dense_1"]["b"])


def test_save_refuses_an_unbuilt_model(tmp_path: Path) -> None:
    model = Sequential([Dense(units=2)])
    with pytest.raises(RuntimeError, match="not built"):
        save_model(model, tmp_path / "m.minidl")
    assert not (tmp_path / "m.minidl").exists()


# Layers that no plugin provides, and missing plugins.


class Scale(Layer):
    """A custom layer: one learned factor per feature."""

    def __init__(self, input_layer: Any = None, start: float = 2.0) -> None:
        super().__init__(input_layer)
        self.start = start

    def init_params(self, key: Any, input_shape: Any) -> dict[str, Any]:
        return {"s": jnp.full(input_shape, self.start, jnp.float32)}

    def __call__(self, x: Any, params: dict[str, Any]) -> Any:
        return x * params["s"]


class _ConvPlugin:
    @hookimpl
    def minidl_layers(self) -> list[type]:
        return [Scale]


class _EmptyPlugin:
    """A plugin that registers nothing."""


def test_custom_layer_needs_custom_objects(tmp_path: Path) -> None:
    x, _ = _data()
    model = Sequential([Dense(units=3), Scale(start=0.5)], input_shape=4)
    path = save_model(model, tmp_path / "m.minidl")
    with zipfile.ZipFile(path) as archive:
        layers = json.loads(archive.read("minidl.json"))["layers"]
    assert layers[1]["distribution"] is None

    with pytest.raises(MissingPluginError, match=r"custom_objects=\{'Scale'"):
        load_model(path)

    loaded = load_model(path, custom_objects={"Scale": Scale})
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[1].start == 0.5


def test_missing_plugin_names_distribution_and_version(
    tmp_path: Path, clean_plugins: None
) -> None:
    minidl_core.register_plugin(
        _ConvPlugin(), "conv", distribution="minidl-conv", version="0.1.0"
    )
    model = Sequential([Dense(units=3), Scale()], input_shape=4)
    path = save_model(model, tmp_path / "m.minidl")
    minidl_core.unregister_plugin("conv")

    with pytest.raises(MissingPluginError) as caught:
        load_model(path)

    message = str(caught.value)
    assert "layer 'scale' (Scale)" in message
    assert 'pip install "minidl-conv>=0.1.0"' in message
    assert isinstance(caught.value, ModelFileError)
    assert isinstance(caught.value, UnknownNameError)


def test_installed_plugin_without_the_layer_is_named(
    tmp_path: Path, clean_plugins: None
) -> None:
    minidl_core.register_plugin(
        _ConvPlugin(), "conv", distribution="minidl-conv", version="0.2.0"
    )
    path = save_model(Sequential([Scale()], input_shape=3), tmp_path / "m.minidl")
    minidl_core.unregister_plugin("conv")
    minidl_core.register_plugin(
        _EmptyPlugin(), "conv", distribution="minidl-conv", version="0.1.5"
    )

    with pytest.raises(
        MissingPluginError,
        match=r"installed minidl-conv 0\.1\.5 "
        r"provides no layer.*minidl-conv>=0\.2\.0",
    ):
        load_model(path)


def test_older_major_plugin_version_warns(tmp_path: Path, clean_plugins: None) -> None:
    minidl_core.register_plugin(
        _ConvPlugin(), "conv", distribution="minidl-conv", version="2.1.0"
    )
    x, _ = _data()
    model = Sequential([Scale()], input_shape=4)
    path = save_model(model, tmp_path / "m.minidl")
    minidl_core.unregister_plugin("conv")
    minidl_core.register_plugin(
        _ConvPlugin(), "conv", distribution="minidl-conv", version="1.4.0"
    )

    with pytest.warns(PluginVersionWarning, match=r"minidl-conv 2\.1\.0.*1\.4\.0"):
        loaded = load_model(path)
    assert np.array_equal(loaded.predict(x), model.predict(x))


# Corrupt and hostile files.


def _rewrite(
    source: Path,
    target: Path,
    *,
    edit: Callable[[dict[str, Any]], None] | None = None,
    replace: dict[str, bytes] | None = None,
    add: dict[str, bytes] | None = None,
) -> Path:
    """Copy a model file, editing its JSON and members on the way."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["minidl.json"])
    if edit is not None:
        edit(meta)
    members["minidl.json"] = json.dumps(meta).encode()
    members.update(replace or {})
    members.update(add or {})
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


class _Touch:
    """Unpickling this would create a file: proof that nothing unpickles."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = _mlp()
    model.fit(*_data(), loss="mse", epochs=1, verbose=0)
    return save_model(model, tmp_path_factory.mktemp("good") / "good.minidl")


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        node = meta
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return edit


_DELETE = object()


def _truncated(good: Path, bad: Path) -> None:
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])


def _flipped_array_byte(good: Path, bad: Path) -> None:
    data = bytearray(good.read_bytes())
    w = np.asarray(load_model(good).params["dense"]["w"]).tobytes()  # type: ignore[index]
    at = data.find(w) + 5
    data[at] ^= 0xFF
    bad.write_bytes(bytes(data))


def _flipped_json_byte(good: Path, bad: Path) -> None:
    data = bytearray(good.read_bytes())
    at = data.find(b'"format_version"') + 3
    data[at] ^= 0x01
    bad.write_bytes(bytes(data))


def _png(good: Path, bad: Path) -> None:
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))


def _plain_zip(good: Path, bad: Path) -> None:
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("readme.txt", "hello")


def _wrong_shape(good: Path, bad: Path) -> None:
    with zipfile.ZipFile(good) as archive:
        meta = json.loads(archive.read("minidl.json"))
    entry = next(e for e in meta["params"] if e["path"] == ["dense", "w"])
    replace = {entry["member"]: _npy(np.zeros((3, 8), np.float32))}

    def edit(meta: dict[str, Any]) -> None:
        for entry in meta["params"]:
            if entry["path"] == ["dense", "w"]:
                entry["shape"] = [3, 8]

    _rewrite(good, bad, edit=edit, replace=replace)


def _npy_disagrees_with_json(good: Path, bad: Path) -> None:
    _rewrite(good, bad, replace={"params/0.npy": _npy(np.zeros((2, 2), np.float32))})


def _pickled_member(good: Path, bad: Path) -> None:
    payload = np.array([_Touch(bad.parent / "pwned")], dtype=object)
    _rewrite(good, bad, replace={"params/0.npy": _npy(payload)})


CORRUPTIONS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "truncated": (_truncated, "truncated or damaged"),
    "flipped-array-byte": (_flipped_array_byte, r"params/\d+\.npy' is corrupted"),
    "flipped-json-byte": (_flipped_json_byte, "'minidl.json' is corrupted"),
    "png": (_png, "not a minidl model file: it is a PNG image"),
    "empty": (lambda g, b: b.write_bytes(b""), "it is empty"),
    "plain-zip": (_plain_zip, "no 'minidl.json' member.*readme.txt"),
    "not-json": (
        lambda g, b: _rewrite(g, b, replace={"minidl.json": b"{oops"}),
        "minidl.json is not valid JSON",
    ),
    "newer-format": (
        lambda g, b: _rewrite(g, b, edit=_set(["format_version"], 99)),
        "format version 99.*upgrade minidl",
    ),
    "other-format": (
        lambda g, b: _rewrite(g, b, edit=_set(["format"], "keras")),
        "not a minidl model: format is 'keras'",
    ),
    "missing-layers": (
        lambda g, b: _rewrite(g, b, edit=_set(["layers"], _DELETE)),
        "missing the field 'layers'",
    ),
    "missing-config": (
        lambda g, b: _rewrite(g, b, edit=_set(["layers", 0, "config"], _DELETE)),
        r"missing the field 'layers\[0\]\.config'",
    ),
    "wrong-type": (
        lambda g, b: _rewrite(g, b, edit=_set(["model", "input_shape"], "4")),
        "'model.input_shape' must be list",
    ),
    "wrong-shape": (
        _wrong_shape,
        r"layer 'dense' parameter 'w' .* shape \(3, 8\).*needs float32 \(4, 8\)",
    ),
    "npy-disagrees": (_npy_disagrees_with_json, r"shape \(2, 2\), but minidl.json"),
    "missing-member": (
        lambda g, b: _rewrite(
            g,
            b,
            edit=lambda m: m["params"].append(
                {
                    "member": "params/99.npy",
                    "path": ["x", "y"],
                    "shape": [1],
                    "dtype": "float32",
                }
            ),
        ),
        "'params/99.npy' listed in minidl.json is missing",
    ),
    "unknown-layer": (
        lambda g, b: _rewrite(g, b, edit=_set(["layers", 0, "type"], "Warp")),
        r"layer 'dense' \(Warp\).*provides no layer",
    ),
    "bad-config": (
        lambda g, b: _rewrite(
            g, b, edit=_set(["layers", 0, "config", "output_shape"], -3)
        ),
        r"layer 'dense' \(Dense\) cannot be rebuilt from its config",
    ),
    "pickle": (_pickled_member, "not a plain .npy array.*allow_pickle"),
    "extra-member": (
        lambda g, b: _rewrite(g, b, add={"notes.txt": b"hi"}),
        "unexpected member 'notes.txt'",
    ),
    "dotdot-member": (
        lambda g, b: _rewrite(g, b, add={"../../x": b"owned"}),
        r"member '\.\./\.\./x' has an unsafe path",
    ),
    "absolute-member": (
        lambda g, b: _rewrite(g, b, add={"/tmp/x": b"owned"}),
        "member '/tmp/x' has an unsafe path",
    ),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_corrupt_file_gives_a_clear_error(
    corruption: str, good_file: Path, tmp_path: Path
) -> None:
    make, message = CORRUPTIONS[corruption]
    bad = tmp_path / "sub" / "bad.minidl"
    bad.parent.mkdir()
    make(good_file, bad)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    with pytest.raises(ModelFileError, match=message) as caught:
        load_model(bad)

    assert "bad.minidl" in str(caught.value)
    # Nothing was extracted, written or unpickled anywhere.
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "x").exists()


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"nope\.minidl.*does not exist"):
        load_model(tmp_path / "nope.minidl")


# Atomic writes.


def test_failed_save_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _data()
    path = tmp_path / "m.minidl"
    old = _mlp(seed=1)
    save_model(old, path)
    expected = old.predict(x)
    real = model_file._write_array

    def failing(archive: zipfile.ZipFile, member: str, array: np.ndarray) -> None:
        if member == "params/1.npy":
            with archive.open(member, "w") as out:
                out.write(b"\x93NUMPY half an array")
            raise OSError("disk full")
        real(archive, member, array)

    monkeypatch.setattr(model_file, "_write_array", failing)
    new = _mlp(seed=2)
    new.fit(x, y, loss="mse", epochs=1, verbose=0)
    with pytest.raises(OSError, match="disk full"):
        save_model(new, path)
    with pytest.raises(OSError, match="disk full"):
        save_model(new, tmp_path / "fresh.minidl")

    assert np.array_equal(load_model(path).predict(x), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.minidl"]


KILL_SCRIPT = """
    import sys
    import numpy as np
    from minidl_core import Sequential, save_model
    from minidl_core.layers import Dense

    path, ready = sys.argv[1], sys.argv[2]
    model = Sequential([Dense(units=1024), Dense(units=1024)], input_shape=1024)
    for step in range(1_000_000):
        # Every array of save `step` is filled with `step`, so a file that
        # mixes two saves is easy to spot.
        model.params = {
            layer: {k: np.full(v.shape, step, np.float32) for k, v in p.items()}
            for layer, p in model.params.items()
        }
        save_model(model, path)
        if step == 0:
            open(ready, "w").close()
"""


@pytest.mark.slow
def test_save_killed_mid_write_leaves_a_loadable_file(tmp_path: Path) -> None:
    script = tmp_path / "saver.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    target, ready = tmp_path / "big.minidl", tmp_path / "ready"
    for delay in (0.05, 0.23, 0.41):
        ready.unlink(missing_ok=True)
        process = subprocess.Popen(
            [sys.executable, str(script), str(target), str(ready)]
        )
        try:
            deadline = time.monotonic() + 20
            while not ready.exists():
                assert process.poll() is None, "the saving script died"
                assert time.monotonic() < deadline, "the first save never finished"
                time.sleep(0.01)
            time.sleep(delay)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

        model = load_model(target)
        leaves = [np.asarray(v) for p in model.params.values() for v in p.values()]
        step = leaves[0].flat[0]
        assert all(np.all(leaf == step) for leaf in leaves), "a save was mixed"


# The command line.


def test_cli_predict_prints_class_indices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    model = Sequential([Dense(units=3)], input_shape=4)
    model.fit(
        x,
        np.arange(20) % 3,
        loss="sparse_categorical_crossentropy",
        epochs=1,
        batch_size=5,
        verbose=0,
    )
    path = save_model(model, tmp_path / "m.minidl")
    data = tmp_path / "rows.csv"
    rows = [",".join(["a", "b", "c", "d", "label"])]
    rows += [",".join([*map(str, row), "0"]) for row in x.tolist()]
    data.write_text("\n".join(rows) + "\n")
    expected = np.argmax(load_model(path).predict(x), axis=1)

    assert main(["predict", str(path), "--data", str(data), "--target", "label"]) == 0
    assert [int(line) for line in capsys.readouterr().out.split()] == list(expected)

    assert (
        main(["predict", str(path), "--data", str(data), "--target", "label", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == list(expected)
    assert np.array_equal(np.asarray(out["predictions"], np.float32), model.predict(x))


def test_cli_predict_prints_values_from_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = _data(n=6)
    model = _mlp()
    model.fit(x, y, loss="mse", epochs=1, batch_size=3, verbose=0)
    path = save_model(model, tmp_path / "m.minidl")
    np.savez(tmp_path / "rows.npz", x=x)

    assert main(["predict", str(path), "--data", str(tmp_path / "rows.npz")]) == 0

    printed = np.array([float(v) for v in capsys.readouterr().out.split()])
    assert np.allclose(printed, model.predict(x)[:, 0], rtol=1e-6, atol=0)


def test_cli_inspect_lists_layers_and_plugins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_plugins: None
) -> None:
    minidl_core.register_plugin(
        _ConvPlugin(), "conv", distribution="minidl-conv", version="0.3.0"
    )
    model = Sequential([Dense(units=5), Scale()], input_shape=4)
    path = save_model(model, tmp_path / "m.minidl")

    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [layer["type"] for layer in info["layers"]] == ["Dense", "Scale"]
    assert info["params"] == {"total": 4 * 5 + 5 + 5, "trainable": 30, "frozen": 0}
    plugins = {p["distribution"]: p for p in info["plugins"]}
    assert plugins["minidl-conv"]["installed_version"] == "0.3.0"
    assert plugins["minidl"]["installed"] is True

    minidl_core.unregister_plugin("conv")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'minidl-conv>=0.3.0: NOT installed: pip install "minidl-conv>=0.3.0"' in out
    assert "parameters: 30 (30 trainable, 0 frozen)" in out


def test_cli_reports_a_bad_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.minidl"
    bad.write_bytes(pickle.dumps({"weights": [1, 2]}))

    assert main(["inspect", str(bad)]) == 1

    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "bad.minidl" in err and "pickle" in err
