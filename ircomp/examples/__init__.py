"""Built-in examples shipped inside the package (installed as package data).

* `ircomp.examples.digits_lut`: a NullaNet Tiny style LUT network trained on scikit-learn's
  digits (``nullanet-digits`` preset), in the exact integer form the ``fpga-lut`` flow reads,
  with ``meta.json`` (data set, split seed, accuracies, config).

    from ircomp.examples import digits_lut_path, load_digits_lut
    program, meta = load_digits_lut()
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ircomp.ir.program import Program

__all__ = ["digits_lut_path", "load_digits_lut"]


def digits_lut_path() -> Path:
    """The folder of the digits LUT example (``model.mlir``, ``model.safetensors``,
    ``meta.json``)."""
    from ircomp.examples import digits_lut

    return digits_lut.path()


def load_digits_lut() -> tuple[Program, dict[str, Any]]:
    """The digits LUT example's verified `Program` and its metadata."""
    from ircomp.examples import digits_lut

    return digits_lut.load(), digits_lut.meta()
