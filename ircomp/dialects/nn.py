"""The `nn` dialect: tensor dataflow ops whose values carry numeric formats.

`spec/ir.md` is the contract for every op here: operands, properties, shape rule, format rule.
Layouts: activations NCHW, linear weights [out, in], conv weights [out, in/groups, kh, kw],
2-D padding [top, left, bottom, right]. Build ops with `build(OpClass, operands, result_types,
**props)`; read properties with `op.get("name")`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from xdsl.dialects.builtin import (
    BoolAttr,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import Pure

from ircomp.dialects.base import NNOperation, Shape, result_shape, shapes_compatible
from ircomp.dialects.num import FixPType, PositType, UFixPType, format_of, is_float_type
from ircomp.ir import shapes
from ircomp.numerics import FormatError, posit_frac_bits
from ircomp.numerics.tflite import SOFTMAX_MAX_LENGTH, add_params, softmax_params

# Discardable attribute naming the source layer of an op (`blocks.3.attn.qkv`); `nn.weight`
# carries its tensor name as the `name` property instead.
NAME_ATTR = "name"


def op_name(op: Operation) -> str | None:
    """The source layer path of an op, if the frontend recorded one."""
    attr = op.attributes.get(NAME_ATTR) or op.properties.get(NAME_ATTR)
    return attr.data if isinstance(attr, StringAttr) else None


# ---- property helpers -------------------------------------------------------------------


def _i64(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


def _ints(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def _floats(values: Sequence[float]) -> DenseArrayBase:
    return DenseArrayBase.from_list(f64, [float(v) for v in values])


def to_attr(value: Any) -> Attribute:
    """Python value -> property attribute (bool, int, float, str, list of ints/floats)."""
    if isinstance(value, Attribute):
        return value
    if isinstance(value, bool):
        return BoolAttr.from_bool(value)
    if isinstance(value, int):
        return _i64(value)
    if isinstance(value, float):
        return FloatAttr(value, f64)
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, list | tuple):
        items = list(value)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return _ints(items)
        return _floats(items)
    raise TypeError(f"cannot turn {value!r} into a property")


def from_attr(attr: Attribute) -> Any:
    """Property attribute -> Python value (inverse of `to_attr`)."""
    if isinstance(attr, IntegerAttr):
        if attr.type == i1:
            return bool(attr.value.data)
        return attr.value.data
    if isinstance(attr, FloatAttr):
        return attr.value.data
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, DenseArrayBase):
        return list(attr.get_values())
    return attr


def elem(value: SSAValue) -> Attribute:
    assert isinstance(value.type, TensorType)
    return value.type.element_type


def _fmt(value: SSAValue) -> str:
    return str(elem(value))


def _is_fixp(t: Attribute) -> bool:
    return isinstance(t, FixPType | UFixPType)


def _is_int(t: Attribute) -> bool:
    return isinstance(t, IntegerType)


class NNOp(NNOperation):
    """Common helpers for `nn` ops."""

    traits = traits_def(Pure())

    def get(self, name: str) -> Any:
        attr = self.properties.get(name)
        if attr is None:
            return None
        return from_attr(attr)

    def shape_of(self, value: SSAValue) -> Shape:
        return result_shape(value)

    def require_same_format(self, *values: SSAValue) -> None:
        first = elem(values[0])
        if any(elem(v) != first for v in values[1:]):
            names = sorted({str(elem(v)) for v in values})
            raise self.fail(f"operands and result must share one format, got {names}")

    def require_float(self, *values: SSAValue) -> None:
        for v in values:
            if not is_float_type(elem(v)):
                raise self.fail(
                    f"needs float tensors, got {_fmt(v)}; dequantize first or use a "
                    "quantized variant"
                )
        self.require_same_format(*values)


OpT = TypeVar("OpT", bound=Operation)


def build(
    op_type: type[OpT],
    operands: Sequence[SSAValue | Operation],
    result_types: Attribute | Sequence[Attribute],
    **props: Any,
) -> OpT:
    """Create an op from Python values; missing properties take their declared defaults."""
    values = [o.results[0] if isinstance(o, Operation) else o for o in operands]
    results = [result_types] if isinstance(result_types, Attribute) else list(result_types)
    op_def = op_type.get_irdl_definition()
    properties: dict[str, Attribute] = {}
    for name, pdef in op_def.properties.items():
        if name in props and props[name] is not None:
            properties[name] = to_attr(props.pop(name))
        elif pdef.default_value is not None:
            properties[name] = pdef.default_value
        else:
            props.pop(name, None)
    if props:
        raise TypeError(f"{op_type.name} has no properties {sorted(props)}")
    return op_type.create(operands=values, result_types=results, properties=properties)


# ---- weights ----------------------------------------------------------------------------


@irdl_op_definition
class WeightOp(NNOp):
    """A tensor held in the module's weight store, found by name and content hash."""

    name = "nn.weight"
    weight_name = prop_def(StringAttr, prop_name="name")
    hash = prop_def(StringAttr)
    result = result_def(TensorType)
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("name", "hash")

    def verify_formats(self) -> None:
        digest = self.hash.data
        if len(digest) != 16 or any(c not in "0123456789abcdef" for c in digest):
            raise self.fail(f"hash must be 16 lowercase hex digits, got '{digest}'")
        if any(d < 0 for d in self.shape_of(self.result)):
            raise self.fail("a weight must have a static shape")

    def infer_result_shapes(self) -> list[Shape]:
        return [self.shape_of(self.result)]


# ---- multiply-accumulate ops ------------------------------------------------------------


class MacOp(NNOp):
    """Shared format rule of linear / matmul / conv2d (see spec/numerics.md)."""

    input_zero_point = prop_def(IntegerAttr, _i64(0))
    weight_zero_point = prop_def(IntegerAttr, _i64(0))

    # Names of the (input, weight, optional bias) operands of the derived op.
    MAC_OPERANDS: ClassVar[tuple[str, str, str | None]] = ("input", "weight", "bias")

    def mac_operands(self) -> tuple[SSAValue, SSAValue, SSAValue | None]:
        x, w, b = self.MAC_OPERANDS
        return getattr(self, x), getattr(self, w), getattr(self, b) if b else None

    def verify_formats(self) -> None:
        x, w, bias = self.mac_operands()
        out = self.results[0]
        tx, tw, to = elem(x), elem(w), elem(out)
        if bias is not None and elem(bias) != to:
            raise self.fail(f"bias format {_fmt(bias)} must equal the result format {to}")
        zero_points = (self.get("input_zero_point"), self.get("weight_zero_point"))
        if not (_is_int(tx) and _is_int(tw)) and zero_points != (0, 0):
            raise self.fail("zero points are allowed only on integer operands")
        if is_float_type(tx) or is_float_type(tw):
            self.require_float(x, w, out)
        elif _is_int(tx) and _is_int(tw):
            if not _is_int(to):
                raise self.fail(f"integer operands accumulate into an integer, not {to}")
        elif _is_fixp(tx) and (_is_fixp(tw) or isinstance(tw, PositType)):
            if not _is_fixp(to):
                raise self.fail(f"fixed-point operands accumulate into fixp, not {to}")
            assert isinstance(tx, FixPType | UFixPType) and isinstance(to, FixPType | UFixPType)
            if isinstance(tw, PositType):
                want = tx.frac.data + posit_frac_bits(tw.n.data, tw.es.data)
            else:
                assert isinstance(tw, FixPType | UFixPType)
                want = tx.frac.data + tw.frac.data
            if to.frac.data != want:
                raise self.fail(
                    f"accumulator of {tx} x {tw} has {want} fraction bits, result type {to} "
                    f"has {to.frac.data}"
                )
        else:
            raise self.fail(f"no arithmetic defined for input {tx} with weight {tw}")


@irdl_op_definition
class LinearOp(MacOp):
    """y = x @ W^T + b; W is [out, in]."""

    name = "nn.linear"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)

    def infer_result_shapes(self) -> list[Shape]:
        bias = self.shape_of(self.bias) if self.bias is not None else None
        return self.shape_rule(
            shapes.linear, self.shape_of(self.input), self.shape_of(self.weight), bias
        )


@irdl_op_definition
class MatMulOp(MacOp):
    """Batched matrix product with numpy broadcasting of the batch dimensions."""

    name = "nn.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    MAC_OPERANDS: ClassVar[tuple[str, str, str | None]] = ("lhs", "rhs", None)

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(shapes.matmul, self.shape_of(self.lhs), self.shape_of(self.rhs))


@irdl_op_definition
class Conv2dOp(MacOp):
    """2-D convolution (cross-correlation), NCHW, weight [out, in/groups, kh, kw]."""

    name = "nn.conv2d"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    strides = prop_def(DenseArrayBase, _ints([1, 1]))
    padding = prop_def(DenseArrayBase, _ints([0, 0, 0, 0]))
    dilations = prop_def(DenseArrayBase, _ints([1, 1]))
    groups = prop_def(IntegerAttr, _i64(1))

    def infer_result_shapes(self) -> list[Shape]:
        bias = self.shape_of(self.bias) if self.bias is not None else None
        return self.shape_rule(
            shapes.conv2d,
            self.shape_of(self.input),
            self.shape_of(self.weight),
            bias,
            self.get("strides"),
            self.get("padding"),
            self.get("dilations"),
            self.get("groups"),
        )


# ---- normalization ------------------------------------------------------------------------


@irdl_op_definition
class BatchNormOp(NNOp):
    """Inference batch norm over axis 1: (x - mean) / sqrt(var + eps) * scale + bias."""

    name = "nn.batchnorm"
    input = operand_def(TensorType)
    scale = operand_def(TensorType)
    bias = operand_def(TensorType)
    mean = operand_def(TensorType)
    var = operand_def(TensorType)
    result = result_def(TensorType)
    epsilon = prop_def(FloatAttr, FloatAttr(1e-5, f64))

    def verify_formats(self) -> None:
        self.require_float(self.input, self.scale, self.bias, self.mean, self.var, self.result)

    def infer_result_shapes(self) -> list[Shape]:
        x = self.shape_of(self.input)
        if len(x) < 2:
            raise self.fail(f"input must have a channel axis, got shape {x}")
        for param in (self.scale, self.bias, self.mean, self.var):
            if not shapes_compatible(self.shape_of(param), (x[1],)):
                raise self.fail(f"parameters must have shape [{x[1]}]")
        return [x]


@irdl_op_definition
class LayerNormOp(NNOp):
    """Normalizes over the dimensions from `axis` to the last; scale/bias have those dims."""

    name = "nn.layernorm"
    input = operand_def(TensorType)
    scale = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    axis = prop_def(IntegerAttr, _i64(-1))
    epsilon = prop_def(FloatAttr, FloatAttr(1e-5, f64))

    def verify_formats(self) -> None:
        extra = (self.bias,) if self.bias is not None else ()
        self.require_float(self.input, self.scale, *extra, self.result)

    def infer_result_shapes(self) -> list[Shape]:
        x = self.shape_of(self.input)
        axis = self.shape_rule(shapes.normalize_axis, self.get("axis"), len(x))[0]
        for param in (self.scale, self.bias):
            if param is not None and not shapes_compatible(self.shape_of(param), x[axis:]):
                raise self.fail(f"scale/bias must have shape {list(x[axis:])}")
        return [x]


# ---- elementwise ------------------------------------------------------------------------


class BinaryOp(NNOp):
    """numpy-broadcasting binary op; float, or exact fixed-point / integer arithmetic."""

    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    FLOAT_ONLY: ClassVar[bool] = False

    def result_frac(self, frac_a: int, frac_b: int) -> int:
        return max(frac_a, frac_b)

    def verify_formats(self) -> None:
        ta, tb, to = elem(self.lhs), elem(self.rhs), elem(self.result)
        if self.FLOAT_ONLY or any(is_float_type(t) for t in (ta, tb, to)):
            self.require_float(self.lhs, self.rhs, self.result)
        elif _is_fixp(ta) and _is_fixp(tb) and _is_fixp(to):
            assert isinstance(ta, FixPType | UFixPType) and isinstance(tb, FixPType | UFixPType)
            assert isinstance(to, FixPType | UFixPType)
            want = self.result_frac(ta.frac.data, tb.frac.data)
            if to.frac.data != want:
                raise self.fail(f"result of {ta} and {tb} must have {want} fraction bits")
        elif not (_is_int(ta) and _is_int(tb) and _is_int(to)):
            raise self.fail(f"no arithmetic defined for {ta} with {tb} giving {to}")

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(shapes.broadcast, self.shape_of(self.lhs), self.shape_of(self.rhs))


@irdl_op_definition
class AddOp(BinaryOp):
    name = "nn.add"


@irdl_op_definition
class SubOp(BinaryOp):
    name = "nn.sub"


@irdl_op_definition
class MulOp(BinaryOp):
    name = "nn.mul"

    def result_frac(self, frac_a: int, frac_b: int) -> int:
        return frac_a + frac_b


@irdl_op_definition
class DivOp(BinaryOp):
    name = "nn.div"
    FLOAT_ONLY: ClassVar[bool] = True


class UnaryOp(NNOp):
    """Elementwise op whose result has the input's shape."""

    input = operand_def(TensorType)
    result = result_def(TensorType)

    def verify_formats(self) -> None:
        self.require_float(self.input, self.result)

    def infer_result_shapes(self) -> list[Shape]:
        return [self.shape_of(self.input)]


class CodeDomainOp(UnaryOp):
    """Acts on any format's codes monotonically, so the result format equals the input's."""

    def verify_formats(self) -> None:
        if isinstance(elem(self.input), PositType):
            raise self.fail("posit values must be converted to fixp or float first")
        self.require_same_format(self.input, self.result)


@irdl_op_definition
class ReluOp(CodeDomainOp):
    name = "nn.relu"


@irdl_op_definition
class ClipOp(CodeDomainOp):
    """Clamp to [min, max]; bounds are real values for float tensors, codes otherwise."""

    name = "nn.clip"
    min = prop_def(FloatAttr)
    max = prop_def(FloatAttr)
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("min", "max")

    def verify_formats(self) -> None:
        super().verify_formats()
        if self.get("min") > self.get("max"):
            raise self.fail(f"min {self.get('min')} is above max {self.get('max')}")


@irdl_op_definition
class HardTanhOp(UnaryOp):
    """clamp(x, min, max) on float tensors (PyTorch's Hardtanh)."""

    name = "nn.hardtanh"
    min = prop_def(FloatAttr, FloatAttr(-1.0, f64))
    max = prop_def(FloatAttr, FloatAttr(1.0, f64))


@irdl_op_definition
class SigmoidOp(UnaryOp):
    name = "nn.sigmoid"


@irdl_op_definition
class TanhOp(UnaryOp):
    name = "nn.tanh"


@irdl_op_definition
class GeluOp(UnaryOp):
    """GELU; `approximate` is "none" (erf) or "tanh"."""

    name = "nn.gelu"
    approximate = prop_def(StringAttr, StringAttr("none"))

    def verify_formats(self) -> None:
        super().verify_formats()
        if self.get("approximate") not in ("none", "tanh"):
            raise self.fail("approximate must be 'none' or 'tanh'")


@irdl_op_definition
class SoftmaxOp(UnaryOp):
    name = "nn.softmax"
    axis = prop_def(IntegerAttr, _i64(-1))

    def infer_result_shapes(self) -> list[Shape]:
        x = self.shape_of(self.input)
        self.shape_rule(shapes.normalize_axis, self.get("axis"), len(x))
        return [x]


# ---- pooling ----------------------------------------------------------------------------


class Pool2dOp(NNOp):
    input = operand_def(TensorType)
    result = result_def(TensorType)
    kernel = prop_def(DenseArrayBase)
    strides = prop_def(DenseArrayBase, _ints([1, 1]))
    padding = prop_def(DenseArrayBase, _ints([0, 0, 0, 0]))
    ceil_mode = prop_def(IntegerAttr, BoolAttr.from_bool(False))
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("kernel",)

    def dilations(self) -> list[int]:
        return [1, 1]

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(
            shapes.pool2d,
            self.shape_of(self.input),
            self.get("kernel"),
            self.get("strides"),
            self.get("padding"),
            self.dilations(),
            self.get("ceil_mode"),
        )


def _verify_average_formats(op: NNOp) -> None:
    t = elem(op.operands[0])
    if not (is_float_type(t) or _is_int(t) or _is_fixp(t)):
        raise op.fail(f"needs float, integer or fixp tensors, got {t}")
    op.require_same_format(op.operands[0], op.results[0])


@irdl_op_definition
class MaxPool2dOp(Pool2dOp):
    """Max over windows; padding never wins (it is -inf / the lowest code)."""

    name = "nn.maxpool2d"
    dilation = prop_def(DenseArrayBase, _ints([1, 1]), prop_name="dilations")

    def dilations(self) -> list[int]:
        return self.get("dilations")

    def verify_formats(self) -> None:
        if isinstance(elem(self.input), PositType):
            raise self.fail("posit values must be converted to fixp or float first")
        self.require_same_format(self.input, self.result)


@irdl_op_definition
class AvgPool2dOp(Pool2dOp):
    """Mean over windows; integer codes round half away from zero (TFLite Micro)."""

    name = "nn.avgpool2d"
    count_include_pad = prop_def(IntegerAttr, BoolAttr.from_bool(False))

    def verify_formats(self) -> None:
        _verify_average_formats(self)


@irdl_op_definition
class GlobalAvgPool2dOp(NNOp):
    """Mean over H and W of NCHW input, keeping them as size 1."""

    name = "nn.global_avgpool2d"
    input = operand_def(TensorType)
    result = result_def(TensorType)

    def verify_formats(self) -> None:
        _verify_average_formats(self)

    def infer_result_shapes(self) -> list[Shape]:
        x = self.shape_of(self.input)
        if len(x) != 4:
            raise self.fail(f"expected NCHW input, got shape {x}")
        return [(x[0], x[1], 1, 1)]


# ---- shape ops ----------------------------------------------------------------------------


class ShapeOp(NNOp):
    """Moves elements without changing them: any format, result format = input format."""

    def verify_formats(self) -> None:
        self.require_same_format(*self.operands, *self.results)


@irdl_op_definition
class ReshapeOp(ShapeOp):
    name = "nn.reshape"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    shape = prop_def(DenseArrayBase)
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("shape",)

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(shapes.reshape, self.shape_of(self.input), self.get("shape"))


@irdl_op_definition
class FlattenOp(ShapeOp):
    """ONNX Flatten: dims before `axis` become one, dims from `axis` become the other."""

    name = "nn.flatten"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    axis = prop_def(IntegerAttr, _i64(1))

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(shapes.flatten, self.shape_of(self.input), self.get("axis"))


@irdl_op_definition
class TransposeOp(ShapeOp):
    name = "nn.transpose"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    perm = prop_def(DenseArrayBase)
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("perm",)

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(shapes.transpose, self.shape_of(self.input), self.get("perm"))


@irdl_op_definition
class ConcatOp(ShapeOp):
    name = "nn.concat"
    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    axis = prop_def(IntegerAttr)
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("axis",)

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(
            shapes.concat, [self.shape_of(v) for v in self.inputs], self.get("axis")
        )


@irdl_op_definition
class SliceOp(ShapeOp):
    """Python-style slicing per listed axis (negative indices count from the end)."""

    name = "nn.slice"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    starts = prop_def(DenseArrayBase)
    ends = prop_def(DenseArrayBase)
    axes = prop_def(DenseArrayBase)
    steps = prop_def(DenseArrayBase)
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("starts", "ends", "axes", "steps")

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(
            shapes.slice_,
            self.shape_of(self.input),
            self.get("starts"),
            self.get("ends"),
            self.get("axes"),
            self.get("steps"),
        )


@irdl_op_definition
class SplitOp(ShapeOp):
    name = "nn.split"
    input = operand_def(TensorType)
    outputs = var_result_def(TensorType)
    axis = prop_def(IntegerAttr)
    sizes = prop_def(DenseArrayBase)
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("axis", "sizes")

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(
            shapes.split, self.shape_of(self.input), self.get("axis"), self.get("sizes")
        )


# ---- format casts -------------------------------------------------------------------------


class ScaledCastOp(NNOp):
    """Shared checks of the scale / zero-point / axis properties of format casts."""

    input = operand_def(TensorType)
    result = result_def(TensorType)
    scale = prop_def(DenseArrayBase)
    zero_point = prop_def(DenseArrayBase, _ints([0]))
    axis = prop_def(IntegerAttr, _i64(1))
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("scale",)

    def infer_result_shapes(self) -> list[Shape]:
        return [self.shape_of(self.input)]

    def verify_scales(self, coded: SSAValue) -> None:
        scale, zero_point = self.get("scale"), self.get("zero_point")
        if not scale or any(not (s > 0) or s == float("inf") for s in scale):
            raise self.fail(f"scales must be positive and finite, got {scale}")
        if len(zero_point) not in (1, len(scale)):
            raise self.fail("zero_point must have one value or one per scale")
        x = self.shape_of(self.input)
        if len(scale) > 1 or len(zero_point) > 1:
            axis = self.shape_rule(shapes.normalize_axis, self.get("axis"), len(x))[0]
            if x[axis] not in (-1, len(scale)):
                raise self.fail(f"{len(scale)} scales for axis {axis} of size {x[axis]}")
        try:
            fmt = format_of(elem(coded))
        except FormatError as err:
            raise self.fail(str(err)) from err
        if any(zp != 0 for zp in zero_point) and not _is_int(elem(coded)):
            raise self.fail("zero points are allowed only on integer formats")
        if any(not fmt.min_value <= zp <= fmt.max_value for zp in zero_point):
            raise self.fail(f"zero point outside the range of {elem(coded)}")


@irdl_op_definition
class QuantizeOp(ScaledCastOp):
    """float -> format: code = encode(x / scale) + zero_point (ONNX QuantizeLinear)."""

    name = "nn.quantize"

    def verify_formats(self) -> None:
        if not is_float_type(elem(self.input)) or is_float_type(elem(self.result)):
            raise self.fail("converts a float tensor into a non-float format")
        self.verify_scales(self.result)


@irdl_op_definition
class DequantizeOp(ScaledCastOp):
    """format -> float: (decode(code) - zero_point) * scale (ONNX DequantizeLinear)."""

    name = "nn.dequantize"

    def verify_formats(self) -> None:
        if is_float_type(elem(self.input)) or not is_float_type(elem(self.result)):
            raise self.fail("converts a non-float format into a float tensor")
        self.verify_scales(self.input)


REQUANT_MODES = ("onnx", "integer")


@irdl_op_definition
class RequantizeOp(ScaledCastOp):
    """Integer/fixp codes -> integer/fixp codes: round(scale * (code - in_zp)) + zp, clamped.

    `mode` picks the rounding: "onnx" (float32 multiply, half to even) or "integer"
    (TFLite multiplier + shift). `clamp` is [lo, hi] in output codes (fused activation).
    """

    name = "nn.requantize"
    mode = prop_def(StringAttr)
    input_zero_point = prop_def(IntegerAttr, _i64(0))
    clamp = prop_def(DenseArrayBase, _ints([]))
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("scale", "mode")

    def verify_formats(self) -> None:
        for v in (self.input, self.result):
            if not (_is_int(elem(v)) or _is_fixp(elem(v))):
                raise self.fail(f"works on integer or fixp codes, got {_fmt(v)}")
        if self.get("mode") not in REQUANT_MODES:
            raise self.fail(f"mode must be one of {REQUANT_MODES}, got '{self.get('mode')}'")
        clamp = self.get("clamp")
        if clamp and (len(clamp) != 2 or clamp[0] > clamp[1]):
            raise self.fail(f"clamp must be [lo, hi] with lo <= hi, got {clamp}")
        self.verify_scales(self.result)


# ---- TFLite integer kernels (requantization mode "integer" of 8-bit QDQ graphs) -------------


def _byte_codes(op: NNOp, *values: SSAValue) -> list[int]:
    """Check that `values` hold 8-bit integer codes (i8 or ui8); their code minima."""
    lows = []
    for v in values:
        t = elem(v)
        fmt = format_of(t) if _is_int(t) else None
        if fmt is None or getattr(fmt, "width", 0) != 8:
            raise op.fail(f"works on 8-bit integer codes (i8 or ui8), got {_fmt(v)}")
        lows.append(int(fmt.min_value))
    return lows


def _positive_finite(op: NNOp, *names: str) -> None:
    for name in names:
        value = op.get(name)
        if not (value > 0 and value != float("inf")):
            raise op.fail(f"{name} must be positive and finite, got {value}")


@irdl_op_definition
class QAddOp(NNOp):
    """TFLite int8 ADD of two quantized tensors (numpy broadcasting): both operands rescaled
    into one 2^20-scaled int32 domain, summed, rescaled to the result (spec/numerics.md 5.6).
    """

    name = "nn.qadd"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    lhs_scale = prop_def(FloatAttr)
    lhs_zero_point = prop_def(IntegerAttr, _i64(0))
    rhs_scale = prop_def(FloatAttr)
    rhs_zero_point = prop_def(IntegerAttr, _i64(0))
    scale = prop_def(FloatAttr)
    zero_point = prop_def(IntegerAttr, _i64(0))
    clamp = prop_def(DenseArrayBase, _ints([]))
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("lhs_scale", "rhs_scale", "scale")

    def verify_formats(self) -> None:
        _byte_codes(self, self.lhs, self.rhs, self.result)
        _positive_finite(self, "lhs_scale", "rhs_scale", "scale")
        for name, value in (
            ("lhs_zero_point", self.lhs),
            ("rhs_zero_point", self.rhs),
            ("zero_point", self.result),
        ):
            fmt = format_of(elem(value))
            if not fmt.min_value <= self.get(name) <= fmt.max_value:
                raise self.fail(f"{name} {self.get(name)} is outside the range of {_fmt(value)}")
        clamp = self.get("clamp")
        if clamp and (len(clamp) != 2 or clamp[0] > clamp[1]):
            raise self.fail(f"clamp must be [lo, hi] with lo <= hi, got {clamp}")
        try:
            add_params(self.get("lhs_scale"), self.get("rhs_scale"), self.get("scale"))
        except FormatError as err:
            raise self.fail(str(err)) from err

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(shapes.broadcast, self.shape_of(self.lhs), self.shape_of(self.rhs))


@irdl_op_definition
class QSoftmaxOp(NNOp):
    """TFLite int8 SOFTMAX along `axis` of codes with scale `input_scale`: gemmlowp
    fixed-point exp and reciprocal; result codes have scale 1/256 and zero point = the lowest
    code (-128 for i8, 0 for ui8) (spec/numerics.md 5.7)."""

    name = "nn.qsoftmax"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    input_scale = prop_def(FloatAttr)
    beta = prop_def(FloatAttr, FloatAttr(1.0, f64))
    axis = prop_def(IntegerAttr, _i64(-1))
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("input_scale",)

    def verify_formats(self) -> None:
        _byte_codes(self, self.input, self.result)
        _positive_finite(self, "input_scale", "beta")
        try:
            softmax_params(self.get("input_scale"), self.get("beta"))
        except FormatError as err:
            raise self.fail(str(err)) from err

    def infer_result_shapes(self) -> list[Shape]:
        x = self.shape_of(self.input)
        axis = self.shape_rule(shapes.normalize_axis, self.get("axis"), len(x))[0]
        if x[axis] > SOFTMAX_MAX_LENGTH:
            raise self.fail(
                f"length {x[axis]} along axis {axis} is above {SOFTMAX_MAX_LENGTH} (the "
                "fixed-point sum of exponentials would overflow its range)"
            )
        return [x]


# ---- ops added for the frontends (ONNX, torch.export) ----------------------------------------


@irdl_op_definition
class PowOp(BinaryOp):
    """a ** b with numpy broadcasting (float)."""

    name = "nn.pow"
    FLOAT_ONLY: ClassVar[bool] = True


class CodeBinaryOp(BinaryOp):
    """Binary elementwise op on floats or on codes of one non-posit format (monotone)."""

    def verify_formats(self) -> None:
        if isinstance(elem(self.lhs), PositType):
            raise self.fail("posit values must be converted to fixp or float first")
        self.require_same_format(self.lhs, self.rhs, self.result)


@irdl_op_definition
class MaxOp(CodeBinaryOp):
    """Elementwise maximum (numpy broadcasting); floats or codes of one format."""

    name = "nn.max"


@irdl_op_definition
class MinOp(CodeBinaryOp):
    """Elementwise minimum (numpy broadcasting); floats or codes of one format."""

    name = "nn.min"


@irdl_op_definition
class SqrtOp(UnaryOp):
    name = "nn.sqrt"


@irdl_op_definition
class ReciprocalOp(UnaryOp):
    name = "nn.reciprocal"


@irdl_op_definition
class ExpOp(UnaryOp):
    name = "nn.exp"


@irdl_op_definition
class LogOp(UnaryOp):
    name = "nn.log"


@irdl_op_definition
class ErfOp(UnaryOp):
    name = "nn.erf"


@irdl_op_definition
class NegOp(UnaryOp):
    name = "nn.neg"


@irdl_op_definition
class AbsOp(UnaryOp):
    name = "nn.abs"


@irdl_op_definition
class LeakyReluOp(UnaryOp):
    """x if x >= 0 else alpha * x."""

    name = "nn.leaky_relu"
    alpha = prop_def(FloatAttr, FloatAttr(0.01, f64))


@irdl_op_definition
class HardSigmoidOp(UnaryOp):
    """max(0, min(1, alpha * x + beta)) (ONNX defaults)."""

    name = "nn.hardsigmoid"
    alpha = prop_def(FloatAttr, FloatAttr(0.2, f64))
    beta = prop_def(FloatAttr, FloatAttr(0.5, f64))


@irdl_op_definition
class HardSwishOp(UnaryOp):
    """x * max(0, min(1, x / 6 + 1/2))."""

    name = "nn.hardswish"


@irdl_op_definition
class LogSoftmaxOp(UnaryOp):
    name = "nn.log_softmax"
    axis = prop_def(IntegerAttr, _i64(-1))

    def infer_result_shapes(self) -> list[Shape]:
        x = self.shape_of(self.input)
        self.shape_rule(shapes.normalize_axis, self.get("axis"), len(x))
        return [x]


class ReduceOp(NNOp):
    """Reduction over `axes` ([] = every axis); `keepdims` keeps them as size 1 (ONNX)."""

    input = operand_def(TensorType)
    result = result_def(TensorType)
    axes = prop_def(DenseArrayBase, _ints([]))
    keepdims = prop_def(IntegerAttr, BoolAttr.from_bool(True))
    CODES: ClassVar[bool] = False

    def reduced_axes(self) -> list[int]:
        rank = len(self.shape_of(self.input))
        axes = self.get("axes") or list(range(rank))
        norm = [self.shape_rule(shapes.normalize_axis, a, rank)[0] for a in axes]
        if len(set(norm)) != len(norm):
            raise self.fail(f"axes {self.get('axes')} repeat an axis")
        return sorted(norm)

    def verify_formats(self) -> None:
        if self.CODES and not is_float_type(elem(self.input)):
            if isinstance(elem(self.input), PositType):
                raise self.fail("posit values must be converted to fixp or float first")
            self.require_same_format(self.input, self.result)
        else:
            self.require_float(self.input, self.result)

    def infer_result_shapes(self) -> list[Shape]:
        x = self.shape_of(self.input)
        return self.shape_rule(
            shapes.reduce_axes, x, self.reduced_axes(), bool(self.get("keepdims"))
        )


@irdl_op_definition
class ReduceMeanOp(ReduceOp):
    name = "nn.reduce_mean"


@irdl_op_definition
class ReduceSumOp(ReduceOp):
    name = "nn.reduce_sum"


@irdl_op_definition
class ReduceMaxOp(ReduceOp):
    """Maximum over axes; floats or codes of any non-posit format."""

    name = "nn.reduce_max"
    CODES: ClassVar[bool] = True


@irdl_op_definition
class GatherOp(NNOp):
    """numpy `take(data, indices, axis)`: indices are integer codes, negative from the end."""

    name = "nn.gather"
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    result = result_def(TensorType)
    axis = prop_def(IntegerAttr, _i64(0))

    def verify_formats(self) -> None:
        if not _is_int(elem(self.indices)):
            raise self.fail(f"indices must be an integer tensor, got {_fmt(self.indices)}")
        self.require_same_format(self.data, self.result)

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(
            shapes.gather, self.shape_of(self.data), self.shape_of(self.indices), self.get("axis")
        )


@irdl_op_definition
class ExpandOp(ShapeOp):
    """ONNX Expand: broadcast the input against `shape` (result = broadcast(x, shape))."""

    name = "nn.expand"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    shape = prop_def(DenseArrayBase)
    ALWAYS_PRINT: ClassVar[tuple[str, ...]] = ("shape",)

    def infer_result_shapes(self) -> list[Shape]:
        return self.shape_rule(shapes.expand, self.shape_of(self.input), self.get("shape"))


@irdl_op_definition
class WhereOp(NNOp):
    """cond ? a : b elementwise, with numpy broadcasting of all three; cond is `i1`."""

    name = "nn.where"
    condition = operand_def(TensorType)
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    # The builder takes the default result format from this operand (a), not from cond.
    FORMAT_OPERAND: ClassVar[int] = 1

    def verify_formats(self) -> None:
        cond = elem(self.condition)
        if not (isinstance(cond, IntegerType) and cond.width.data == 1):
            raise self.fail(f"condition must be i1, got {cond}")
        self.require_same_format(self.lhs, self.rhs, self.result)

    def infer_result_shapes(self) -> list[Shape]:
        ab = self.shape_rule(shapes.broadcast, self.shape_of(self.lhs), self.shape_of(self.rhs))
        return self.shape_rule(shapes.broadcast, self.shape_of(self.condition), ab[0])


@irdl_op_definition
class CastOp(UnaryOp):
    """Float -> float format conversion (f32 / f16 / bf16), rounding to nearest even."""

    name = "nn.cast"

    def verify_formats(self) -> None:
        for v in (self.input, self.result):
            if not is_float_type(elem(v)):
                raise self.fail(
                    f"converts between float formats only, got {_fmt(v)}; use "
                    "nn.quantize / nn.dequantize for other formats"
                )


NN = Dialect(
    "nn",
    [
        WeightOp,
        LinearOp,
        MatMulOp,
        Conv2dOp,
        BatchNormOp,
        LayerNormOp,
        AddOp,
        SubOp,
        MulOp,
        DivOp,
        ReluOp,
        ClipOp,
        HardTanhOp,
        SigmoidOp,
        TanhOp,
        GeluOp,
        SoftmaxOp,
        MaxPool2dOp,
        AvgPool2dOp,
        GlobalAvgPool2dOp,
        ReshapeOp,
        FlattenOp,
        TransposeOp,
        ConcatOp,
        SliceOp,
        SplitOp,
        QuantizeOp,
        DequantizeOp,
        RequantizeOp,
        QAddOp,
        QSoftmaxOp,
        PowOp,
        MaxOp,
        MinOp,
        SqrtOp,
        ReciprocalOp,
        ExpOp,
        LogOp,
        ErfOp,
        NegOp,
        AbsOp,
        LeakyReluOp,
        HardSigmoidOp,
        HardSwishOp,
        LogSoftmaxOp,
        ReduceMeanOp,
        ReduceSumOp,
        ReduceMaxOp,
        GatherOp,
        ExpandOp,
        WhereOp,
        CastOp,
    ],
    [],
)
