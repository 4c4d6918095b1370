"""Plugin discovery: loading, isolation, blocking, clashes and look-ups."""

from __future__ import annotations

import json
import re

import pytest

import minidl_core
from minidl_core import (
    DuplicateNameError,
    PluginLoadWarning,
    PluginProblem,
    UnknownNameError,
    get_layer,
    get_registry,
)
from minidl_core._cli import main

SCALE_PLUGIN = """
    import jax.numpy as jnp
    from minidl_core import Layer, hookimpl

    class Scale(Layer):
        def init_params(self, key, input_shape):
            return {"s": jnp.full(input_shape, 2.0)}

        def __call__(self, x, params):
            return x * params["s"]

    @hookimpl
    def minidl_layers():
        return [Scale]
"""


def test_builtins_arrive_through_their_entry_point(clean_plugins: None) -> None:
    registry = get_registry()
    info = registry.plugins["builtins"]
    assert info.distribution == "minidl"
    assert info.module == "minidl_builtins"
    assert "Dense" in info.registered["layer"]
    assert get_registry().find("layer", "Dense").distribution == "minidl"


@pytest.mark.parametrize("spelling", ["Dense", "dense", "DENSE", "de_nse"])
def test_one_case_rule_for_layer_names(spelling: str, clean_plugins: None) -> None:
    from minidl_builtins import Dense

    assert get_layer(spelling) is Dense


def test_seed_and_pep8_loss_spellings_are_one_entry(clean_plugins: None) -> None:
    assert minidl_core.get_loss("Kl_divergence") is minidl_core.get_loss("KLDivergence")
    assert minidl_core.get_loss("sparse_categorical_crossentropy") is (
        minidl_core.get_loss("SparseCategoricalCrossentropy")
    )


def test_unknown_name_lists_close_matches_and_plugins(clean_plugins: None) -> None:
    with pytest.raises(UnknownNameError, match=r"'Dnse'.*Did you mean: Dense") as info:
        get_layer("Dnse")
    assert re.search(r"Installed plugins: .*minidl 0.1.0", str(info.value))


def test_layers_module_resolves_through_the_registry(clean_plugins: None) -> None:
    from minidl_builtins import Relu
    from minidl_core import layers
    from minidl_core.layers import Relu as imported

    assert imported is Relu
    assert layers.RELU is Relu
    assert "Dense" in dir(layers)
    assert not hasattr(layers, "NoSuchLayer")
    with pytest.raises(AttributeError, match="unknown layer 'Relux'"):
        layers.Relux  # noqa: B018


def test_installed_plugin_appears_in_layers_module(make_dist) -> None:
    from minidl_core import layers

    with pytest.raises(AttributeError):
        layers.Scale  # noqa: B018
    make_dist("scale-layers", "scale_plugin", SCALE_PLUGIN)
    # No reload call: a miss re-scans the installed entry points.
    assert layers.Scale.__module__ == "scale_plugin"
    entry = minidl_core.get_entry("layer", "scale")
    assert (entry.distribution, entry.version) == ("scale-layers", "1.0.0")


def test_plugin_that_fails_to_import_is_isolated(make_dist) -> None:
    make_dist("broken-dist", "broken_plugin", "raise ImportError('no numpy 9')\n")
    make_dist("scale-layers", "scale_plugin", SCALE_PLUGIN)
    with pytest.warns(PluginLoadWarning, match=r"'broken-dist'.*no numpy 9"):
        minidl_core.reload_plugins()
    assert get_layer("Scale").__name__ == "Scale"
    assert get_layer("Dense").__name__ == "Dense"
    assert get_registry().plugins["broken_plugin"].problems


def test_hook_that_raises_is_isolated(make_dist) -> None:
    make_dist(
        "raising-dist",
        "raising_plugin",
        """
        from minidl_core import hookimpl

        @hookimpl
        def minidl_losses():
            raise RuntimeError("boom in hook")
        """,
    )
    with pytest.warns(PluginLoadWarning, match=r"'raising-dist'.*minidl_losses.*boom"):
        minidl_core.reload_plugins()
    assert minidl_core.get_loss("mse").__name__ == "MSE"


def test_hookimpl_with_unknown_argument_is_refused(make_dist) -> None:
    make_dist(
        "odd-args",
        "odd_plugin",
        """
        from minidl_core import hookimpl

        @hookimpl
        def minidl_layers(config):
            return []
        """,
    )
    with pytest.warns(PluginLoadWarning, match=r"'odd-args'.*config"):
        minidl_core.reload_plugins()
    assert get_layer("dense").__name__ == "Dense"


def test_misspelt_hook_is_reported(make_dist) -> None:
    make_dist(
        "typo-dist",
        "typo_plugin",
        """
        from minidl_core import hookimpl

        @hookimpl
        def minidl_layer():
            return []
        """,
    )
    with pytest.warns(PluginLoadWarning, match=r"unknown hook 'minidl_layer'"):
        minidl_core.reload_plugins()


def test_strict_mode_raises_the_original_error(make_dist, monkeypatch) -> None:
    make_dist("broken-dist", "broken_plugin", "raise ImportError('no numpy 9')\n")
    monkeypatch.setenv("MINIDL_STRICT_PLUGINS", "1")
    with pytest.raises(PluginProblem, match="broken-dist") as info:
        minidl_core.reload_plugins()
    assert isinstance(info.value.__cause__, ImportError)


def test_object_that_is_not_a_layer_is_refused(make_dist) -> None:
    make_dist(
        "bad-kind",
        "bad_kind_plugin",
        """
        from minidl_core import hookimpl

        def not_a_layer(x):
            return x

        @hookimpl
        def minidl_layers():
            return {"Thing": not_a_layer, "Other": 3}
        """,
    )
    with pytest.warns(PluginLoadWarning) as record:
        minidl_core.reload_plugins()
    messages = sorted(str(w.message) for w in record)
    assert "layer 'Other' refused: expected a subclass of" in messages[0]
    assert "layer 'Thing' refused: expected a subclass of" in messages[1]
    with pytest.raises(UnknownNameError):
        get_layer("Thing")


def test_same_name_from_two_distributions_names_both(make_dist) -> None:
    make_dist("scale-layers", "scale_plugin", SCALE_PLUGIN)
    make_dist("other-scale", "scale_plugin2", SCALE_PLUGIN)
    minidl_core.reload_plugins()
    with pytest.raises(DuplicateNameError, match=r"'scale-layers'.*'other-scale'"):
        get_layer("Scale")
    # Every other name keeps working.
    assert get_layer("Dense").__name__ == "Dense"


def test_blocking_one_of_two_clashing_plugins_resolves_it(make_dist, monkeypatch):
    make_dist("scale-layers", "scale_plugin", SCALE_PLUGIN)
    make_dist("other-scale", "scale_plugin2", SCALE_PLUGIN)
    monkeypatch.setenv("MINIDL_DISABLE_PLUGINS", "other-scale")
    minidl_core.reload_plugins()
    assert get_layer("Scale").__module__ == "scale_plugin"
    assert get_registry().plugins["scale_plugin2"].blocked


def test_distribution_seen_twice_registers_once(make_dist) -> None:
    make_dist("scale-layers", "scale_plugin", SCALE_PLUGIN)
    make_dist("scale-layers", "scale_plugin", SCALE_PLUGIN, egg_info=True)
    minidl_core.reload_plugins()
    assert get_layer("Scale").__name__ == "Scale"
    assert list(get_registry().plugins).count("scale_plugin") == 1


def test_blocking_the_builtins_empties_the_catalogue(clean_plugins, monkeypatch):
    monkeypatch.setenv("MINIDL_DISABLE_PLUGINS", "builtins")
    minidl_core.reload_plugins()
    assert minidl_core.list_names("layer") == []
    with pytest.raises(UnknownNameError, match=r"No minidl plugin .*Blocked: minidl"):
        get_layer("Dense")


def test_autoload_off_loads_no_entry_point(clean_plugins, monkeypatch) -> None:
    monkeypatch.setenv("MINIDL_DISABLE_PLUGIN_AUTOLOAD", "1")
    minidl_core.reload_plugins()
    assert get_registry().plugins == {}


def test_register_plugin_at_run_time(clean_plugins) -> None:
    from minidl_core import Layer, hookimpl

    class Twice(Layer):
        def __call__(self, x, params):
            return 2 * x

    class Plugin:
        @staticmethod
        @hookimpl
        def minidl_layers():
            return [Twice]

    name = minidl_core.register_plugin(Plugin, name="twice", distribution="mine")
    try:
        assert get_layer("twice") is Twice
        assert minidl_core.get_entry("layer", "Twice").distribution == "mine"
    finally:
        minidl_core.unregister_plugin(name)
    with pytest.raises(UnknownNameError):
        get_layer("twice")


def test_cli_plugins_json_reports_problems(make_dist, capsys) -> None:
    make_dist("broken-dist", "broken_plugin", "raise ImportError('no numpy 9')\n")
    assert main(["plugins", "--json"]) == 0
    listing = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listing["builtins"]["distribution"] == "minidl"
    assert "Dense" in listing["builtins"]["registered"]["layer"]
    assert "no numpy 9" in listing["broken_plugin"]["problems"][0]


def test_cli_layers_lists_the_builtins(clean_plugins, capsys) -> None:
    assert main(["layers"]) == 0
    out = capsys.readouterr().out
    for name in ("Dense", "Relu", "Dropout", "InputLayer", "LeakyRelu"):
        assert name in out
    assert main(["losses"]) == 0
    assert "Kl_divergence" in capsys.readouterr().out
