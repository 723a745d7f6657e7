"""The built-in LUT example: a NullaNet Tiny style network on scikit-learn's digits.

``model.mlir`` + ``model.safetensors`` beside this module hold the ``nullanet-digits`` preset
trained with seed 0 (learned fan-in 6/6/12, 2-bit relu -> binary -> 3-bit output; every neuron
a function of 12 input bits) in the exact integer form the ``fpga-lut`` flow reads;
``meta.json`` records the data set ("digits", split seed 0, 20 % test), the float, fake-quantized
and golden-interpreter accuracies and the configuration. Regenerate with
``python examples/digits_lut/make_example.py``.

    from ircomp.examples import digits_lut
    program, meta = digits_lut.load(), digits_lut.meta()
"""

from __future__ import annotations

import json
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ircomp.ir.program import Program

__all__ = ["load", "meta", "path"]


def path() -> Path:
    """The folder holding ``model.mlir``, ``model.safetensors`` and ``meta.json`` (a plain
    directory for normal and editable installs)."""
    with as_file(files(__name__)) as folder:
        where = Path(folder)
    if not (where / "model.mlir").is_file():
        raise FileNotFoundError(f"the digits LUT example is missing from {where}")
    return where


def load() -> Program:
    """The example as a verified `Program`."""
    from ircomp.ir.program import load_program

    return load_program(path() / "model.mlir")


def meta() -> dict[str, Any]:
    """The example's metadata (``meta.json``)."""
    return json.loads((path() / "meta.json").read_text())
