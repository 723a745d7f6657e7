"""ircomp's numeric formats and the integer semantics of quantized ops.

The torch codecs live in `ircomp.numerics.torch` (imported on demand, so that numpy-only users
do not pay for torch).
"""

from __future__ import annotations

from ircomp.numerics.errors import FormatError
from ircomp.numerics.formats import (
    Bit,
    FixP,
    Float,
    FloatKind,
    Int,
    NumericFormat,
    Posit,
    broadcast_along_axis,
    format_from_name,
    quantize_scaled,
)
from ircomp.numerics.posit import (
    posit_decode,
    posit_encode,
    posit_frac_bits,
    posit_maxpos,
    posit_midpoint_table,
    posit_minpos,
    posit_value_table,
)
from ircomp.numerics.requant import (
    RequantMode,
    dequantize_linear,
    multiply_by_quantized_multiplier,
    quantize_linear,
    quantize_multiplier,
    quantize_multiplier_array,
    requantize,
    rounding_average,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_to_width,
)

__all__ = [
    "Bit",
    "FixP",
    "Float",
    "FloatKind",
    "FormatError",
    "Int",
    "NumericFormat",
    "Posit",
    "RequantMode",
    "broadcast_along_axis",
    "dequantize_linear",
    "format_from_name",
    "multiply_by_quantized_multiplier",
    "posit_decode",
    "posit_encode",
    "posit_frac_bits",
    "posit_maxpos",
    "posit_midpoint_table",
    "posit_minpos",
    "posit_value_table",
    "quantize_linear",
    "quantize_multiplier",
    "quantize_multiplier_array",
    "quantize_scaled",
    "requantize",
    "rounding_average",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul",
    "wrap_to_width",
]
