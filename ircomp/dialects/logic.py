"""The `logic` dialect: layers of neurons as Boolean functions (`spec/logic.md`).

`logic.table` holds each neuron as a truth table over the codes of its fan-in (what
`logic-extract` produces); `logic.lut_network` holds a layer as a network of k-input LUTs over
the bits of its input (what `logic-minimize` produces); `logic.threshold` holds a neuron too wide
for a table as constant-coefficient arithmetic: an exact integer weighted sum of its fan-in codes
compared against sorted thresholds (FINN's MultiThreshold; what `logic-extract` produces for
integer layers over its `max-inputs`). All read and write tensors of codes of integer-grid
formats (`i<w>`, `ui<w>`, `fixp`, `ufixp`, `num.bit`) along the last axis; their tables,
networks and thresholds are weights, so they live in the weight store and print as `nn.weight`
ops.
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerType, Signedness, TensorType, i1, i32
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import irdl_op_definition, operand_def, opt_operand_def, result_def, traits_def
from xdsl.traits import Pure

from ircomp.dialects.base import NNOperation, Shape, result_shape
from ircomp.dialects.num import format_of
from ircomp.logic.network import MAX_LUT_INPUTS
from ircomp.numerics import Bit, FixP, FormatError, Int

UI32 = IntegerType(32, Signedness.UNSIGNED)
# Truth tables beyond 2^MAX_TABLE_INPUT_BITS rows are refused by the verifier (1M rows/neuron).
MAX_TABLE_INPUT_BITS = 20


def code_width(element_type: Attribute) -> tuple[int, bool] | None:
    """(bits, signed) of an integer-grid format, None for floats and posits."""
    try:
        fmt = format_of(element_type)
    except FormatError:
        return None
    if isinstance(fmt, Bit):
        return 1, False
    if isinstance(fmt, FixP | Int):
        return fmt.width, fmt.signed
    return None


def _elem(value: SSAValue) -> Attribute:
    assert isinstance(value.type, TensorType)
    return value.type.element_type


class LogicOp(NNOperation):
    """Shared checks: an integer-grid input and result along the last axis."""

    traits = traits_def(Pure())

    def widths(self) -> tuple[int, int]:
        """Code widths of the input and of the result."""
        out = []
        for what, value in (("input", self.operands[0]), ("result", self.results[0])):
            width = code_width(_elem(value))
            if width is None:
                raise self.fail(
                    f"{what} must hold integer, fixed-point or bit codes, got {_elem(value)}"
                )
            out.append(width[0])
        if not result_shape(self.operands[0]):
            raise self.fail("input must have at least one axis")
        return out[0], out[1]

    def static_shape(
        self, value: SSAValue, what: str, rank: int, element: Attribute | None
    ) -> Shape:
        shape = result_shape(value)
        if len(shape) != rank or any(d < 0 for d in shape):
            raise self.fail(f"{what} must be a static rank-{rank} tensor, got {value.type}")
        if element is not None and _elem(value) != element:
            raise self.fail(f"{what} must hold {element}, got {_elem(value)}")
        return shape

    def layer_result_shape(self, neurons: int) -> list[Shape]:
        return [(*result_shape(self.operands[0])[:-1], neurons)]


@irdl_op_definition
class TableOp(LogicOp):
    """Each output neuron j is `tables[table_index[j], row]`, `row` built from its fan-in codes.

    `row = sum_k raw(x[..., fanin[j, k]]) << (w_in * k)`: raw = the code's w_in-bit two's
    complement pattern; a fan-in slot of -1 reads code 0. `care` (optional, i1, the shape of
    `tables`) marks the rows seen on data; the other rows are don't-cares for minimization, the
    op's value is still the table.
    """

    name = "logic.table"
    input = operand_def(TensorType)
    fanin = operand_def(TensorType)
    tables = operand_def(TensorType)
    table_index = operand_def(TensorType)
    care = opt_operand_def(TensorType)
    result = result_def(TensorType)

    def verify_formats(self) -> None:
        width_in, _ = self.widths()
        neurons, fan_in = self.static_shape(self.fanin, "fanin", 2, i32)
        unique, rows = self.static_shape(self.tables, "tables", 2, _elem(self.result))
        (indexed,) = self.static_shape(self.table_index, "table_index", 1, i32)
        if indexed != neurons:
            raise self.fail(f"table_index has {indexed} entries for {neurons} neurons")
        if width_in * fan_in > MAX_TABLE_INPUT_BITS:
            raise self.fail(
                f"{fan_in} inputs of {width_in} bits make {width_in * fan_in}-bit tables; the "
                f"limit is {MAX_TABLE_INPUT_BITS}"
            )
        if rows != 1 << (width_in * fan_in):
            raise self.fail(
                f"tables need 2^({width_in}*{fan_in}) = {1 << (width_in * fan_in)} rows, got {rows}"
            )
        if unique == 0 and neurons:
            raise self.fail("no tables for a non-empty layer")
        if self.care is not None:
            care = self.static_shape(self.care, "care", 2, i1)
            if care != (unique, rows):
                raise self.fail(f"care must have the shape of tables, {unique}x{rows}")

    def infer_result_shapes(self) -> list[Shape]:
        return self.layer_result_shape(result_shape(self.fanin)[0])


@irdl_op_definition
class LutNetworkOp(LogicOp):
    """A layer as a network of k-LUTs (k <= 6) over the input's bits (`ircomp.logic.network`).

    Primary input `i * w_in + b` is bit b (LSB first, raw two's complement) of input element i;
    output bit `j * w_out + b` is bit b of result element j. `lut_inputs` [L, k] i32 holds node
    ids (-1 = constant 0, -2 = constant 1), `lut_init` [L, 2] ui32 the INIT words as (low, high)
    32-bit halves (`LutNetwork.init_halves`), `outputs` [M * w_out] i32 the node each result
    bit reads.
    """

    name = "logic.lut_network"
    input = operand_def(TensorType)
    lut_inputs = operand_def(TensorType)
    lut_init = operand_def(TensorType)
    outputs = operand_def(TensorType)
    result = result_def(TensorType)

    def verify_formats(self) -> None:
        _, width_out = self.widths()
        luts, k = self.static_shape(self.lut_inputs, "lut_inputs", 2, i32)
        inits, halves = self.static_shape(
            self.lut_init, "lut_init (INIT as low, high ui32)", 2, UI32
        )
        if halves != 2:
            raise self.fail(f"lut_init must be [L, 2] (low, high 32-bit halves), got {halves}")
        (bits,) = self.static_shape(self.outputs, "outputs", 1, i32)
        if inits != luts:
            raise self.fail(f"{inits} INIT words for {luts} LUTs")
        if luts and not 1 <= k <= MAX_LUT_INPUTS:
            raise self.fail(f"LUTs must have 1..{MAX_LUT_INPUTS} inputs, got {k}")
        if bits % width_out:
            raise self.fail(f"{bits} output bits are not a whole number of {width_out}-bit codes")

    def infer_result_shapes(self) -> list[Shape]:
        _, width_out = self.widths()
        return self.layer_result_shape(result_shape(self.outputs)[0] // width_out)


# Bits of the exact int64 accumulation of `logic.threshold`: w_in + w_weight + bits(F) <= this.
MAX_THRESHOLD_ACC_BITS = 63


@irdl_op_definition
class ThresholdOp(LogicOp):
    """Each output neuron j is `base[j] + #{t : acc_j >= thresholds[j, t]}` (wrapped to w_out).

    `acc_j = sum_k weights[j, k] * x[..., fanin[j, k]]`, exact integer arithmetic on the input
    codes (their integer values: signed codes are negative), a fan-in slot of -1 adds nothing.
    `thresholds` [M, T] i32 are sorted ascending per neuron (the count does not depend on the
    order), `T <= 2^w_out - 1`; `base` [M] holds the output code of `acc = -inf`. The count is
    added to the base and wrapped to the result's `w_out`-bit two's complement.
    """

    name = "logic.threshold"
    input = operand_def(TensorType)
    fanin = operand_def(TensorType)
    weights = operand_def(TensorType)
    thresholds = operand_def(TensorType)
    base = operand_def(TensorType)
    result = result_def(TensorType)

    def verify_formats(self) -> None:
        width_in, width_out = self.widths()
        neurons, fan_in = self.static_shape(self.fanin, "fanin", 2, i32)
        weight_shape = self.static_shape(self.weights, "weights", 2, None)
        weight_fmt = code_width(_elem(self.weights))
        if (
            weight_fmt is None
            or not isinstance(format_of(_elem(self.weights)), Int)
            or weight_fmt[0] > 32
        ):
            raise self.fail(
                f"weights must hold integers of at most 32 bits, got {_elem(self.weights)}"
            )
        if weight_shape != (neurons, fan_in):
            raise self.fail(f"weights must have the shape of fanin, {neurons}x{fan_in}")
        acc_bits = width_in + weight_fmt[0] + fan_in.bit_length()
        if acc_bits > MAX_THRESHOLD_ACC_BITS:
            raise self.fail(
                f"{fan_in} products of {width_in}-bit codes and {weight_fmt[0]}-bit weights may "
                f"need {acc_bits} bits; the limit is {MAX_THRESHOLD_ACC_BITS}"
            )
        rows, steps = self.static_shape(self.thresholds, "thresholds", 2, i32)
        if rows != neurons:
            raise self.fail(f"thresholds has {rows} rows for {neurons} neurons")
        if steps >= 1 << width_out:
            raise self.fail(
                f"{steps} thresholds per neuron for {width_out}-bit outputs; at most "
                f"{(1 << width_out) - 1} (2^{width_out} - 1) steps are distinct"
            )
        (based,) = self.static_shape(self.base, "base", 1, _elem(self.result))
        if based != neurons:
            raise self.fail(f"base has {based} entries for {neurons} neurons")

    def infer_result_shapes(self) -> list[Shape]:
        return self.layer_result_shape(result_shape(self.fanin)[0])


# The logic ops that hold a whole layer (input codes -> result codes).
LAYER_OPS = (TableOp, LutNetworkOp, ThresholdOp)

Logic = Dialect("logic", [TableOp, LutNetworkOp, ThresholdOp], [])
