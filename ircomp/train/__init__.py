"""Training and evaluation utilities and the reference models.

`data` loads data sets as numpy arrays, `fit` is the one training/evaluation engine (also
Hessian traces and per-layer capture for passes that need data), `zoo` holds the reference
architectures and loads their trained weights. `logicnet` (with `logicnet_train` and
`logicnet_export`) trains LUT-friendly sparse quantized MLPs (LogicNets / NullaNet Tiny) and
exports them to the IR and ONNX; `cli` is the `ircomp train` command.

Names are loaded on first use (PEP 562), so importing `ircomp.train.cli` (which the `ircomp`
command line does for every command) does not import torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Dataset": "data",
    "DatasetMissingError": "data",
    "get_dataset": "data",
    "load_arrays": "data",
    "load_digits": "data",
    "load_fashion_mnist": "data",
    "FitResult": "fit",
    "LayerCapture": "fit",
    "cosine_similarity": "fit",
    "distillation_loss": "fit",
    "evaluate": "fit",
    "fit": "fit",
    "hutchinson_trace": "fit",
    "seed_everything": "fit",
    "build_model": "zoo",
    "load_reference": "zoo",
    "LogicNet": "logicnet",
    "LogicNetConfig": "logicnet",
    "preset": "logicnet",
    "train_logicnet": "logicnet_train",
    "fold_network": "logicnet_export",
    "to_program": "logicnet_export",
    "to_qonnx": "logicnet_onnx",
    "to_qdq": "logicnet_onnx",
}

if TYPE_CHECKING:
    from ircomp.train.data import (
        Dataset,
        DatasetMissingError,
        get_dataset,
        load_arrays,
        load_digits,
        load_fashion_mnist,
    )
    from ircomp.train.fit import (
        FitResult,
        LayerCapture,
        cosine_similarity,
        distillation_loss,
        evaluate,
        fit,
        hutchinson_trace,
        seed_everything,
    )
    from ircomp.train.logicnet import LogicNet, LogicNetConfig, preset
    from ircomp.train.logicnet_export import fold_network, to_program
    from ircomp.train.logicnet_onnx import to_qdq, to_qonnx
    from ircomp.train.logicnet_train import train_logicnet
    from ircomp.train.zoo import build_model, load_reference

__all__ = [
    "Dataset",
    "DatasetMissingError",
    "FitResult",
    "LayerCapture",
    "LogicNet",
    "LogicNetConfig",
    "build_model",
    "cosine_similarity",
    "distillation_loss",
    "evaluate",
    "fit",
    "fold_network",
    "get_dataset",
    "hutchinson_trace",
    "load_arrays",
    "load_digits",
    "load_fashion_mnist",
    "load_reference",
    "preset",
    "seed_everything",
    "to_program",
    "to_qdq",
    "to_qonnx",
    "train_logicnet",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ircomp.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ircomp.train.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Importing the submodule `ircomp.train.fit` sets the package attribute `fit` to the
    module; the package exports the function `fit` under that name, so keep the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
