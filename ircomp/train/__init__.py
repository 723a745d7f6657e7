"""Training and evaluation utilities and the reference models.

`data` loads data sets as numpy arrays, `fit` is the one training/evaluation engine (also
Hessian traces and per-layer capture for passes that need data), `zoo` holds the reference
architectures and loads their trained weights.
"""

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
from ircomp.train.zoo import build_model, load_reference

__all__ = [
    "Dataset",
    "DatasetMissingError",
    "FitResult",
    "LayerCapture",
    "build_model",
    "cosine_similarity",
    "distillation_loss",
    "evaluate",
    "fit",
    "get_dataset",
    "hutchinson_trace",
    "load_arrays",
    "load_digits",
    "load_fashion_mnist",
    "load_reference",
    "seed_everything",
]
