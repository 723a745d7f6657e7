"""The `logic` dialect: layers of neurons as Boolean functions (`spec/logic.md`).

`logic.table` holds each neuron as a truth table over the codes of its fan-in (what
`logic-extract` produces); `logic.lut_network` holds a layer as a network of k-input LUTs over
the bits of its input (what `logic-minimize` produces). Both read and write tensors of codes of
integer-grid formats (`i<w>`, `ui<w>`, `fixp`, `ufixp`, `num.bit`) along the last axis; their
tables and networks are weights, so they live in the weight store and print as `nn.weight` ops.
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

    def static_shape(self, value: SSAValue, what: str, rank: int, element: Attribute) -> Shape:
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


Logic = Dialect("logic", [TableOp, LutNetworkOp], [])
