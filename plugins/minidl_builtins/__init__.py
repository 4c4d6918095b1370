"""minidl's first-party plugin: the built-in layers, losses, optimizers,
metrics and the digits dataset.

It is registered through the ``minidl`` entry point of the ``minidl``
distribution, exactly as a third-party plugin registers through its own, so
blocking it (``MINIDL_DISABLE_PLUGINS=builtins``) leaves the core with an
empty catalogue.
"""

from minidl_builtins._datasets import load_digits
from minidl_builtins._layers import (
    Dense,
    Dropout,
    InputLayer,
    LeakyRelu,
    Relu,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
)
from minidl_builtins._losses import (
    MAE,
    MSE,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Kl_divergence,
    Sparse_Categorical_Crossentropy,
)
from minidl_builtins._metrics import accuracy
from minidl_builtins._optimizers import OPTIMIZERS
from minidl_core import hookimpl

MINIDL_PLUGIN_API = 1

__all__ = [
    "MAE",
    "MSE",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Dense",
    "Dropout",
    "InputLayer",
    "Kl_divergence",
    "LeakyRelu",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Sparse_Categorical_Crossentropy",
    "Tanh",
]


@hookimpl
def minidl_layers():
    return [
        InputLayer,
        Dense,
        Relu,
        Sigmoid,
        Tanh,
        Softmax,
        LeakyRelu,
        Dropout,
        Reshape,
    ]


@hookimpl
def minidl_losses():
    # The registry ignores case and underscores, so "KLDivergence",
    # "kl_divergence" and "SparseCategoricalCrossentropy" reach these too.
    return {
        "MSE": MSE,
        "MAE": MAE,
        "Kl_divergence": Kl_divergence,
        "BinaryCrossentropy": BinaryCrossentropy,
        "CategoricalCrossentropy": CategoricalCrossentropy,
        "Sparse_Categorical_Crossentropy": Sparse_Categorical_Crossentropy,
    }


@hookimpl
def minidl_optimizers():
    return OPTIMIZERS


@hookimpl
def minidl_metrics():
    return {"accuracy": accuracy}


@hookimpl
def minidl_datasets():
    return {"digits": load_digits}
