"""The logic flow: neurons as Boolean functions, LUT networks, minimization (`spec/logic.md`)."""

from ircomp.logic.network import (
    CONST0,
    CONST1,
    LutNetwork,
    bits_to_codes,
    codes_to_bits,
    row_codes,
    row_index,
)

__all__ = [
    "CONST0",
    "CONST1",
    "LutNetwork",
    "bits_to_codes",
    "codes_to_bits",
    "row_codes",
    "row_index",
]
