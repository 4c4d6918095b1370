"""minidl: a small deep-learning framework on JAX built from plugins.

The core knows how to build a model from layers, differentiate its
parameters, train, evaluate, save and load. Every concrete layer, loss,
optimizer, metric and dataset comes from a plugin discovered through the
``minidl`` entry-point group; the built-in ones ship as the ``builtins``
plugin of the ``minidl`` distribution.
"""

# The registry's namespaces, so `minidl_core.layers.Dense` works after a
# plain `import minidl_core`.
from minidl_core import layers, losses
from minidl_core._callbacks import (
    Callback,
    EarlyStopping,
    History,
    LambdaCallback,
)
from minidl_core._catalog import (
    get_dataset,
    get_entry,
    get_layer,
    get_loss,
    get_metric,
    get_optimizer,
    list_names,
)
from minidl_core._checkpoint import ModelCheckpoint
from minidl_core._data import Dataset
from minidl_core._errors import (
    DuplicateNameError,
    MinidlError,
    MinidlWarning,
    ModelFileError,
    PluginLoadWarning,
    PluginProblem,
    ShapeError,
    UnknownNameError,
)
from minidl_core._hookspecs import hookimpl, hookspec
from minidl_core._layer import Layer, Params, Shape
from minidl_core._loss import Loss
from minidl_core._model import Model, Sequential
from minidl_core._plugins import (
    PLUGIN_API_VERSION,
    get_registry,
    register_plugin,
    reload_plugins,
    unregister_plugin,
)
from minidl_core._serialization import (
    MissingPluginError,
    PluginVersionWarning,
    load_model,
    save_model,
)
from minidl_core._spec import SpecError, load_spec, model_from_spec
from minidl_core._training import evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "PLUGIN_API_VERSION",
    "Callback",
    "Dataset",
    "DuplicateNameError",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "Layer",
    "Loss",
    "MinidlError",
    "MinidlWarning",
    "MissingPluginError",
    "Model",
    "ModelCheckpoint",
    "ModelFileError",
    "Params",
    "PluginLoadWarning",
    "PluginProblem",
    "PluginVersionWarning",
    "Sequential",
    "Shape",
    "ShapeError",
    "SpecError",
    "UnknownNameError",
    "evaluate",
    "fit",
    "get_dataset",
    "get_entry",
    "get_layer",
    "get_loss",
    "get_metric",
    "get_optimizer",
    "get_registry",
    "hookimpl",
    "hookspec",
    "layers",
    "list_names",
    "load_model",
    "load_spec",
    "losses",
    "model_from_spec",
    "predict",
    "register_plugin",
    "reload_plugins",
    "save_model",
    "unregister_plugin",
]
