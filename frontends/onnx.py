"""ONNX frontend: an ONNX model (float, QDQ, QONNX) becomes an ircomp `Program`.

    program = ircomp.frontends.onnx.load("model.onnx", input_shapes={"x": [1, 3, 32, 32]})

**Reading.** A path (or bytes) is not parsed whole: its protobuf wire format is scanned
(memory-mapped) and everything is parsed except the `raw_data` of initializers of more than
4096 elements, whose place in the file is recorded; each is read from the file when it goes
into the weight store, so an import's peak memory is about the weight store plus one tensor
(a `ModelProto` given by the caller is used as it is). External-data locations must be
relative paths inside the model's folder (absolute paths, `..` and links that leave the folder
are refused) before any of them is read; large external initializers are read the same lazy
way. Nothing from the model is ever executed: only the standard ONNX ops listed below are
interpreted (constant subgraphs are evaluated with `onnx.reference` on standard-domain ops
only), custom domains other than QONNX are unsupported. Opsets 13 up to the installed onnx's
newest are accepted. The graph is sorted topologically (a cycle is an error naming its nodes)
and checked with `onnx.shape_inference` (strict mode, on a copy without the large
initializers' data), so mismatched shapes are reported with the node's name.

**Values.** Graph inputs become function arguments (a symbolic dim becomes `?`; `input_shapes`
overrides). An int64 input (token ids, indices) is typed `i32`, as the torch frontend does:
values outside int32 are rejected at run time by the interpreter's input check.
Initializers become `nn.weight` named after the initializer, created at first use. Subgraphs
computed only from constants (Constant, ConstantOfShape, Shape of a static tensor,
Gather/Concat/Unsqueeze/Cast/... chains feeding Reshape, Expand, Slice, ...) are folded at
import time. A dynamic dim read by `Shape` is tracked through the folded arithmetic so that a
reshape target depending on it becomes -1. Every op gets `name = <ONNX node name>`.

**Quantized models.** `DequantizeLinear` of constant codes keeps the codes in the weight store
with their format (`i8`, `ui8`, `i16`, `ui16`, `i4`, `ui4`, `i32` bias); `QuantizeLinear` /
`DequantizeLinear` of activations become `nn.quantize` / `nn.dequantize` (per tensor or per
axis). The QDQ pattern `DQ(x), DQ(w), DQ(b) -> Conv|MatMul|Gemm -> [Relu|Clip] -> Q` (and
QLinearConv / QLinearMatMul) becomes an integer `nn.conv2d` / `nn.linear` with zero points and
the int32 bias, then `nn.requantize {mode = "onnx"}` with the scale onnxruntime computes,
`float32(sx) * float32(sw) / float32(sy)` per output channel; a Relu/Clip in between becomes the
requantize clamp. A MatMul followed by an `Add` of a dequantized int32 bias (tf2onnx's
FULLY_CONNECTED) is fused the same way. `load(..., requant_mode="integer")` imports with TFLite /
TFLite Micro semantics instead (spec/numerics.md 5.8): `mode = "integer"` requantizations with
TFLite's double-precision scale `sx * sw / sy`, `DQ(a) + DQ(b) [-> Relu] -> Q` as `nn.qadd`,
`DQ -> Softmax -> Q(1/256)` as `nn.qsoftmax`, average pools on the codes.
`DQ -> (MaxPool | Reshape | Flatten | Transpose | Squeeze | Unsqueeze |
Identity | Concat of equal scales)` runs on the codes (exact: these ops commute with the
monotone dequantization), and a following `Q` with the same parameters is the identity. Any
other op on dequantized values computes in float between `nn.dequantize` and `nn.quantize`.
QONNX (`qonnx.custom_op.general`): `Quant` of a constant becomes codes of `iN`/`uiN` in the
store (narrow range, rounding modes ROUND/CEIL/FLOOR) plus `nn.dequantize`; `Quant` of an
activation becomes `nn.quantize` (+ an `nn.clip` on codes for a narrow range) + `nn.dequantize`
(zero point 0, ROUND); `BipolarQuant` and `Trunc` of constants are folded to codes/values.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    IntegerType,
    Signedness,
    TensorType,
)
from xdsl.ir import Attribute, SSAValue
from xdsl.utils.exceptions import VerifyException

from ircomp.dialects import nn
from ircomp.dialects.num import is_float_type
from ircomp.errors import InputError
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program
from ircomp.ir.shapes import ShapeError
from ircomp.numerics import quantize_linear

MIN_OPSET = 13
MAX_OPSET = onnx.defs.onnx_opset_version()
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")
DEFAULT_DOMAINS = ("", "ai.onnx")
# Initializers above this many elements are left out of the copy given to shape inference.
# They are also the ones whose raw_data is read from the file only when stored.
_LIGHT_LIMIT = 4096
# Constants up to this size are kept in the importer's environment once converted.
_CACHE_BYTES = 1 << 16
# Stand-in value of a dynamic dimension inside folded shape arithmetic.
_DYN_SENTINEL = 1_000_003

REQUANT_MODES = nn.REQUANT_MODES

__all__ = ["CONSTANT_INPUTS", "REQUANT_MODES", "load", "supported_ops"]


# ---- value kinds ----------------------------------------------------------------------------


@dataclass
class _Codes:
    """A constant tensor of codes in a format numpy has no dtype for (e.g. i3 from QONNX)."""

    array: np.ndarray  # int64
    elem: Attribute


@dataclass
class _QRef:
    """A dequantized tensor not materialized yet: float = (codes - zero_point) * scale."""

    codes: str  # env name of the codes (constant or SSA)
    scale: np.ndarray  # float32, 0-d or 1-d
    zero_point: np.ndarray  # int64, 0-d or 1-d
    axis: int  # normalized channel axis (meaningful for per-axis parameters)
    float_type: Attribute

    def per_tensor(self) -> bool:
        return self.scale.size == 1 and self.zero_point.size == 1

    def same_params(self, other: _QRef) -> bool:
        return (
            self.scale.shape == other.scale.shape
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
            and (self.per_tensor() or self.axis == other.axis)
        )


Value = Any  # SSAValue | np.ndarray | _Codes | _QRef


class _Env(dict):
    """Tensor name -> value; initializers stay TensorProtos until first read as constants.

    A small initializer is converted once and kept; a large one is read afresh at each read
    as a constant (rare: most go to the weight store once), so no copy of it stays here.
    """

    def __init__(self, read: Callable[[onnx.TensorProto], np.ndarray]) -> None:
        super().__init__()
        self.read = read

    def __getitem__(self, key: str) -> Value:
        v = super().__getitem__(key)
        if isinstance(v, onnx.TensorProto):
            v = self.read(v)
            if v.nbytes <= _CACHE_BYTES:
                super().__setitem__(key, v)
        return v

    def get(self, key: str, default: Value = None) -> Value:
        return self[key] if key in self else default  # noqa: SIM401 (resolves lazily)

    def raw(self, key: str) -> Value:
        return super().get(key)


def _set_hint(value: SSAValue, name: str) -> None:
    """Name the SSA value after the ONNX tensor (sanitized to MLIR's identifier rules)."""
    text = re.sub(r"[^A-Za-z0-9_$.-]", "_", name).strip("_") or "v"
    if text[0].isdigit() or text[0] in "$.-":
        text = "v" + text
    value.name_hint = text


def _signed(width: int) -> IntegerType:
    return IntegerType(width)


def _unsigned(width: int) -> IntegerType:
    return IntegerType(width, Signedness.UNSIGNED)


def _elem_of_dtype(dtype: np.dtype, what: str) -> Attribute:
    """IR element type of a numpy / ml_dtypes dtype (int64 maps to i32, values checked)."""
    name = np.dtype(dtype).name
    table: dict[str, Attribute] = {
        "float32": Float32Type(),
        "float16": Float16Type(),
        "bfloat16": BFloat16Type(),
        "int8": _signed(8),
        "uint8": _unsigned(8),
        "int16": _signed(16),
        "uint16": _unsigned(16),
        "int32": _signed(32),
        "uint32": _unsigned(32),
        "int64": _signed(32),
        "int4": _signed(4),
        "uint4": _unsigned(4),
        "int2": _signed(2),
        "uint2": _unsigned(2),
        "bool": IntegerType(1),
    }
    if name not in table:
        raise InputError(f"{what}: element type {name} has no ircomp format")
    return table[name]


def _storage_array(array: np.ndarray, what: str) -> np.ndarray:
    """A constant in the form the weight store keeps for its format."""
    name = array.dtype.name
    if name == "int64":
        if array.size and (array.min() < -(2**31) or array.max() >= 2**31):
            raise InputError(f"{what}: int64 values do not fit i32")
        return array.astype(np.int32)
    if name == "bfloat16":
        return array.view(np.uint16)
    if name in ("int4", "int2"):
        return array.astype(np.int8)
    if name in ("uint4", "uint2"):
        return array.astype(np.uint8)
    return array


def _ml_dtype_elem(elem_type: int) -> np.dtype:
    return helper.tensor_dtype_to_np_dtype(elem_type)


# ---- reading --------------------------------------------------------------------------------
#
# A model file is not parsed whole: the protobuf wire format is scanned (memory-mapped) and
# every part of it is parsed except the `raw_data` of large initializers, whose place in the
# file is recorded instead. Their bytes are read one tensor at a time when the tensor is
# stored, so the import never holds the file, the parsed proto's copy of the weights and the
# weight store at once (peak memory is about the weight store plus one tensor).

_WIRE_GRAPH = 7  # ModelProto.graph
_WIRE_INITIALIZER = 5  # GraphProto.initializer
_WIRE_RAW_DATA = 9  # TensorProto.raw_data
# Element types whose raw_data is the plain little-endian array (no packing).
_PLAIN_RAW = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.INT16,
    onnx.TensorProto.UINT16,
    onnx.TensorProto.INT32,
    onnx.TensorProto.UINT32,
    onnx.TensorProto.INT64,
    onnx.TensorProto.UINT64,
    onnx.TensorProto.BOOL,
}


class _WireError(Exception):
    pass


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _WireError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: Any, start: int, end: int) -> Any:
    """(field number, start of the field, start of its payload, end of the field)."""
    pos = start
    while pos < end:
        tag, body = _varint(buf, pos, end)
        wire = tag & 7
        if wire == 0:
            _, stop = _varint(buf, body, end)
        elif wire == 1:
            stop = body + 8
        elif wire == 5:
            stop = body + 4
        elif wire == 2:
            length, body = _varint(buf, body, end)
            stop = body + length
        else:
            raise _WireError(f"unexpected wire type {wire}")
        if tag >> 3 == 0 or stop > end:
            raise _WireError("field outside the message")
        yield tag >> 3, pos, body, stop
        pos = stop


@dataclass
class _Source:
    """Where the left-out raw_data of large initializers is: initializer name -> span."""

    spans: dict[str, tuple[Path | None, int, int]]  # (file, or None: `data`), offset, length
    data: Any = None  # the bytes a model was parsed from (bytes sources)

    def read(self, tensor: onnx.TensorProto) -> np.ndarray:
        span = self.spans.get(tensor.name)
        if span is None or tensor.HasField("raw_data"):
            return numpy_helper.to_array(tensor)
        path, offset, length = span
        if path is None:
            raw: Any = memoryview(self.data)[offset : offset + length]
        else:
            raw = bytearray(length)
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    got = f.readinto(raw)
            except OSError as err:
                raise InputError(f"cannot read tensor '{tensor.name}': {err}") from None
            if got != length:
                raise InputError(f"tensor '{tensor.name}': {path} is truncated")
        if tensor.data_type in _PLAIN_RAW and sys.byteorder == "little":
            dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
            if length != math.prod(tensor.dims) * np.dtype(dtype).itemsize:
                raise InputError(
                    f"tensor '{tensor.name}': raw_data holds {length} bytes, not "
                    f"{list(tensor.dims)} of {np.dtype(dtype).name}"
                )
            array = np.frombuffer(raw, dtype=dtype).reshape(tuple(tensor.dims))
            array.setflags(write=False)
            return array
        full = onnx.TensorProto()
        full.CopyFrom(tensor)
        full.raw_data = bytes(raw)
        return numpy_helper.to_array(full)


def _read_model(
    source: str | os.PathLike | onnx.ModelProto | bytes,
) -> tuple[onnx.ModelProto, _Source | None]:
    if isinstance(source, onnx.ModelProto):
        _check_external_data(source, None, None)
        return source, None
    if isinstance(source, bytes):
        spans: dict[str, tuple[Path | None, int, int]] = {}
        model = _parse_wire(source, len(source), "<bytes>", None, spans)
        _check_external_data(model, None, spans)
        return model, _Source(spans, source)
    path = Path(source)
    spans = {}
    data = None
    try:
        with open(path, "rb") as f:
            try:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # an empty file, a pipe: read it whole
                data = f.read()
            else:
                with mm:
                    model = _parse_wire(mm, len(mm), str(path), path, spans)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err}") from None
    if data is not None:
        model = _parse_wire(data, len(data), str(path), None, spans)
    _check_external_data(model, path.resolve().parent, spans)
    return model, _Source(spans, data)


def _parse_wire(
    buf: Any,
    size: int,
    where: str,
    path: Path | None,
    spans: dict[str, tuple[Path | None, int, int]],
) -> onnx.ModelProto:
    """Parse a ModelProto, leaving out (and recording) the raw_data of large initializers."""
    model = onnx.ModelProto()
    try:
        rest = bytearray()
        graphs: list[tuple[bytes, list[onnx.TensorProto]]] = []
        for field, start, body, stop in _fields(buf, 0, size):
            if field != _WIRE_GRAPH or buf[start] & 7 != 2:
                rest += buf[start:stop]
                continue
            graph_rest = bytearray()
            inits = []
            for g_field, g_start, g_body, g_stop in _fields(buf, body, stop):
                if g_field != _WIRE_INITIALIZER or buf[g_start] & 7 != 2:
                    graph_rest += buf[g_start:g_stop]
                    continue
                tensor_rest = bytearray()
                raw = None
                for t_field, t_start, t_body, t_stop in _fields(buf, g_body, g_stop):
                    if t_field == _WIRE_RAW_DATA and buf[t_start] & 7 == 2:
                        raw = (t_body, t_stop)
                    else:
                        tensor_rest += buf[t_start:t_stop]
                tensor = onnx.TensorProto()
                tensor.ParseFromString(bytes(tensor_rest))
                if raw is not None:
                    if math.prod(tensor.dims) > _LIGHT_LIMIT:
                        spans[tensor.name] = (path, raw[0], raw[1] - raw[0])
                    else:
                        tensor.raw_data = bytes(buf[raw[0] : raw[1]])
                        spans.pop(tensor.name, None)
                inits.append(tensor)
            graphs.append((bytes(graph_rest), inits))
        model.ParseFromString(bytes(rest))
        for graph_rest, inits in graphs:
            model.graph.SetInParent()
            model.graph.MergeFromString(graph_rest)
            model.graph.initializer.extend(inits)
    except Exception as err:  # _WireError, protobuf DecodeError and friends
        raise InputError(
            f"{where} is not an ONNX model (truncated or not a protobuf file: {err})"
        ) from None
    if not model.HasField("graph") or model.ir_version <= 0 or not model.opset_import:
        raise InputError(
            f"{where} is not an ONNX model (no graph, IR version or opset import found)"
        )
    return model


def _check_external_data(
    model: onnx.ModelProto,
    folder: Path | None,
    spans: dict[str, tuple[Path | None, int, int]] | None,
) -> None:
    """Refuse unsafe external-data locations, then load the data from inside `folder`.

    With `spans` (a model read by this module), large initializers are not loaded: their file
    span is recorded and read when the tensor is stored.
    """
    from onnx import external_data_helper as ext

    tensors = [t for t in ext._get_all_tensors(model) if ext.uses_external_data(t)]
    if not tensors:
        return
    if folder is None:
        raise InputError(
            "the model refers to external data files; load it from its path so they can be "
            "found beside it"
        )
    for tensor in tensors:
        location = ext.ExternalDataInfo(tensor).location
        if (
            not location
            or os.path.isabs(location)
            or location.startswith(("/", "\\"))
            or ".." in Path(location.replace("\\", "/")).parts
            or ":" in location
        ):
            raise InputError(
                f"tensor '{tensor.name}': external data location '{location}' is refused "
                "(it must be a relative path inside the model's folder, without '..')"
            )
        resolved = (folder / location).resolve()
        if folder != resolved and folder not in resolved.parents:
            raise InputError(
                f"tensor '{tensor.name}': external data location '{location}' leaves the "
                "model's folder"
            )
        if not resolved.is_file():
            raise InputError(f"tensor '{tensor.name}': external data file {resolved} is missing")
    for tensor in model.graph.initializer if spans is not None else ():
        if not ext.uses_external_data(tensor) or math.prod(tensor.dims) <= _LIGHT_LIMIT:
            continue
        info = ext.ExternalDataInfo(tensor)
        resolved = (folder / info.location).resolve()
        offset = int(info.offset or 0)
        length = resolved.stat().st_size - offset if info.length is None else int(info.length)
        spans[tensor.name] = (resolved, offset, length)  # type: ignore[index]
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    try:
        ext.load_external_data_for_model(model, str(folder))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the model's external data: {err}") from None


# ---- graph checks ---------------------------------------------------------------------------


def _node_label(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _describe(node: onnx.NodeProto, opset: int) -> str:
    domain = node.domain or "ai.onnx"
    return f"'{_node_label(node)}' ({node.op_type}, domain {domain}, opset {opset})"


def _toposort(graph: onnx.GraphProto, known: set[str]) -> list[onnx.NodeProto]:
    """Nodes in dependency order; a cycle or an undefined input is an InputError."""
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                if out in producer or out in known:
                    raise InputError(
                        f"node '{_node_label(node)}' ({node.op_type}) writes '{out}', which is "
                        "already defined"
                    )
                producer[out] = i
    deps: list[set[int]] = []
    for node in nodes:
        d = set()
        for name in node.input:
            if not name or name in known:
                continue
            if name not in producer:
                raise InputError(
                    f"node '{_node_label(node)}' ({node.op_type}) reads '{name}', which no "
                    "node, input or initializer defines"
                )
            d.add(producer[name])
        deps.append(d)
    users: list[list[int]] = [[] for _ in nodes]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    pending = [len(d) for d in deps]
    ready = [i for i, n in enumerate(pending) if n == 0]
    order: list[int] = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for u in users[i]:
            pending[u] -= 1
            if pending[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):
        stuck = [
            f"'{_node_label(nodes[i])}' ({nodes[i].op_type})"
            for i in range(len(nodes))
            if pending[i]
        ]
        raise InputError(f"the graph has a cycle through the nodes {', '.join(stuck)}")
    return [nodes[i] for i in order]


def _shape_check(model: onnx.ModelProto) -> None:
    """Strict ONNX shape inference on a copy without the large initializers' data."""
    graph = model.graph
    small, holes = [], []
    for init in graph.initializer:
        if math.prod(init.dims) > _LIGHT_LIMIT:
            holes.append(helper.make_tensor_value_info(init.name, init.data_type, init.dims))
        else:
            small.append(init)
    input_names = {i.name for i in graph.input}
    light_graph = helper.make_graph(
        list(graph.node),
        graph.name or "main",
        [*graph.input, *(h for h in holes if h.name not in input_names)],
        list(graph.output),
        initializer=small,
        value_info=list(graph.value_info),
    )
    light = helper.make_model(light_graph, opset_imports=list(model.opset_import))
    light.ir_version = model.ir_version
    strict = not any(n.domain not in DEFAULT_DOMAINS for n in graph.node)
    try:
        onnx.shape_inference.infer_shapes(light, check_type=True, strict_mode=strict)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as err:
        raise InputError(f"the model is inconsistent: {err}") from None


# ---- the importer ---------------------------------------------------------------------------

Converter = Callable[["_Importer", onnx.NodeProto], list[Value]]
CONVERTERS: dict[str, Converter] = {}
QONNX_CONVERTERS: dict[str, Converter] = {}
# Ops evaluated only when all their inputs are constants (shape arithmetic).
FOLD_ONLY = {
    "Constant",
    "ConstantOfShape",
    "Range",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "ReduceProd",
    "ReduceMin",
    "Floor",
    "Ceil",
    "Round",
    "Mod",
    "Tile",
    "Size",
}
# Never folded: their constant inputs stay codes in the weight store.
NO_FOLD = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"}

# Inputs (by position) that must be constants at import time, per op type. The conformance
# backend bakes graph inputs at these positions into initializers.
CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Expand": (1,),
    "Slice": (1, 2, 3, 4),
    "Split": (1,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "ReduceMean": (1,),
    "ReduceSum": (1,),
    "ReduceMax": (1,),
    "Clip": (1, 2),
    "Gather": (1,),
    "Dropout": (1, 2),
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "QLinearConv": (1, 2, 3, 4, 5, 6, 7, 8),
    "QLinearMatMul": (1, 2, 3, 4, 5, 6, 7),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
}


def converts(*op_types: str, table: dict[str, Converter] = CONVERTERS) -> Callable:
    def register(fn: Converter) -> Converter:
        for t in op_types:
            table[t] = fn
        return fn

    return register


def supported_ops() -> list[str]:
    """Standard ONNX op types the frontend imports (QONNX ops are listed apart)."""
    return sorted(set(CONVERTERS) | FOLD_ONLY | {"Shape"})


class _Importer:
    def __init__(
        self,
        model: onnx.ModelProto,
        input_shapes: dict[str, Sequence[int]] | None,
        constants: dict[str, np.ndarray] | None,
        owned: bool = False,
        source: _Source | None = None,
        requant_mode: str = "onnx",
    ) -> None:
        self.model = model
        self.requant_mode = requant_mode  # "onnx" or "integer" (nn.requantize modes)
        self.owned = owned  # the proto is ours: initializer bytes may be dropped once stored
        self.source = source  # where large initializers' raw_data is, when left out of `model`
        self.graph = model.graph
        self.opset = self._opset()
        self.b = GraphBuilder("main")
        self.env: _Env = _Env(self.read_tensor)
        self.tainted: set[str] = set()  # constants derived from a dynamic dimension
        self.materialized: dict[str, SSAValue] = {}
        self.done: set[int] = set()  # ids of nodes consumed by a fused pattern
        self.fused: dict[int, Callable[[], None]] = {}
        self.graph_outputs = {o.name for o in self.graph.output}
        self.input_shapes = {k: list(v) for k, v in (input_shapes or {}).items()}
        self.constants = dict(constants or {})
        self.initializers = {init.name: init for init in self.graph.initializer}

    # ---- setup ------------------------------------------------------------------------

    def _opset(self) -> int:
        version = None
        for imp in self.model.opset_import:
            if imp.domain in DEFAULT_DOMAINS:
                version = imp.version
        if version is None:
            raise InputError("the model imports no version of the default ONNX domain")
        if not MIN_OPSET <= version <= MAX_OPSET:
            raise InputError(
                f"opset {version} is not supported (ircomp imports opsets {MIN_OPSET} to "
                f"{MAX_OPSET}); convert the model with onnx.version_converter"
            )
        return version

    def check_supported(self) -> None:
        unsupported = []
        for node in self.graph.node:
            if node.domain in DEFAULT_DOMAINS:
                ok = node.op_type in CONVERTERS or node.op_type in FOLD_ONLY
            elif node.domain in QONNX_DOMAINS:
                ok = node.op_type in QONNX_CONVERTERS
            else:
                ok = False
            if not ok:
                opset = (
                    self.opset
                    if node.domain in DEFAULT_DOMAINS
                    else self._domain_version(node.domain)
                )
                unsupported.append(_describe(node, opset))
        if unsupported:
            raise InputError(f"{len(unsupported)} unsupported node(s): " + "; ".join(unsupported))

    def _domain_version(self, domain: str) -> int:
        for imp in self.model.opset_import:
            if imp.domain == domain:
                return imp.version
        return 0

    def add_inputs(self) -> list[str]:
        names = []
        for vi in self.graph.input:
            name = vi.name
            if name in self.constants:
                self.env[name] = np.asarray(self.constants[name])
                continue
            if name in self.initializers:
                continue
            t = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                raise InputError(f"input '{name}' is not a tensor")
            dtype = _ml_dtype_elem(t.elem_type)
            elem = _elem_of_dtype(dtype, f"input '{name}'")
            # int64 (token ids, indices) is typed i32: ircomp holds integers of at most 32
            # bits, and the interpreter's input check rejects values outside int32.
            if name in self.input_shapes:
                shape = [int(d) for d in self.input_shapes[name]]
            else:
                shape = [
                    d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
                    for d in t.shape.dim
                ]
                if not t.HasField("shape"):
                    raise InputError(f"input '{name}' has no shape; pass input_shapes")
            value = self.b.input(shape, elem)
            _set_hint(value, name)
            self.env[name] = value
            names.append(name)
        for name, init in self.initializers.items():
            if name not in self.env:
                self.env[name] = init
        return names

    # ---- values -----------------------------------------------------------------------

    def read_tensor(self, tensor: onnx.TensorProto) -> np.ndarray:
        if self.source is None:
            return numpy_helper.to_array(tensor)
        return self.source.read(tensor)

    def has(self, node: onnx.NodeProto, i: int) -> bool:
        return len(node.input) > i and bool(node.input[i])

    def is_const(self, name: str) -> bool:
        return isinstance(self.env.raw(name), np.ndarray | _Codes | onnx.TensorProto)

    def const(self, node: onnx.NodeProto, i: int) -> np.ndarray:
        name = node.input[i]
        v = self.env[name]
        if isinstance(v, _Codes):
            return v.array
        if not isinstance(v, np.ndarray):
            raise InputError(
                f"node '{_node_label(node)}' ({node.op_type}): input {i} ('{name}') must be a "
                "constant (an initializer or computed from constants only)"
            )
        return v

    def value(self, name: str) -> SSAValue:
        """The tensor `name` as an SSA value (constants become weights, DQs dequantize)."""
        if name in self.materialized:
            return self.materialized[name]
        raw = self.env.raw(name)
        if isinstance(raw, onnx.TensorProto):
            return self._stream_initializer(name, raw)
        v = self.env[name]
        if isinstance(v, SSAValue):
            return v
        if name in self.tainted:
            raise InputError(
                f"'{name}' depends on a dynamic dimension and is used as data; import with "
                "static input_shapes"
            )
        if isinstance(v, _Codes):
            out = self.b.weight(name, v.array, v.elem)
        elif isinstance(v, np.ndarray):
            elem = _elem_of_dtype(v.dtype, f"constant '{name}'")
            out = self.b.weight(name, _storage_array(v, f"constant '{name}'"), elem)
            if "#" in name and v.nbytes > _CACHE_BYTES:
                self.env[name] = out  # a large derived constant (e.g. a transpose): now stored
        else:
            assert isinstance(v, _QRef)
            codes = self.value(v.codes)
            out = self.b.op(
                nn.DequantizeOp,
                [codes],
                v.float_type,
                name=name,
                scale=[float(s) for s in v.scale.reshape(-1)],
                zero_point=[int(z) for z in v.zero_point.reshape(-1)],
                axis=v.axis,
            )
        self.materialized[name] = out
        return out

    def _stream_initializer(self, name: str, init: onnx.TensorProto) -> SSAValue:
        """Store an initializer as a weight; drop its bytes from the proto when it is ours."""
        array = self.read_tensor(init)
        what = f"initializer '{name}'"
        out = self.b.weight(name, _storage_array(array, what), _elem_of_dtype(array.dtype, what))
        del array
        self.materialized[name] = out
        if self.owned and len(self.consumers(name)) <= 1:
            init.ClearField("raw_data")
            self.env[name] = out
        return out

    def shape(self, name: str) -> tuple[int, ...]:
        raw = self.env.raw(name)
        if isinstance(raw, onnx.TensorProto):
            return tuple(int(d) for d in raw.dims)
        v = self.env[name]
        if isinstance(v, np.ndarray | _Codes):
            return tuple((v.array if isinstance(v, _Codes) else v).shape)
        if isinstance(v, _QRef):
            return self.shape(v.codes)
        assert isinstance(v.type, TensorType)
        return tuple(-1 if d < 0 else d for d in v.type.get_shape())

    def elem(self, name: str) -> Attribute:
        raw = self.env.raw(name)
        if isinstance(raw, onnx.TensorProto):
            return _elem_of_dtype(_ml_dtype_elem(raw.data_type), f"'{name}'")
        v = self.env[name]
        if isinstance(v, _Codes):
            return v.elem
        if isinstance(v, np.ndarray):
            return _elem_of_dtype(v.dtype, f"'{name}'")
        if isinstance(v, _QRef):
            return v.float_type
        return nn.elem(v)

    def op(
        self,
        node: onnx.NodeProto,
        op_type: type[nn.NNOp],
        operands: Sequence[SSAValue],
        result_format: Attribute | None = None,
        **props: Any,
    ) -> SSAValue:
        return self.b.op(op_type, operands, result_format, name=_node_label(node), **props)

    def consumers(self, name: str) -> list[onnx.NodeProto]:
        return self._consumers.get(name, [])

    # ---- run --------------------------------------------------------------------------

    def run(self) -> Program:
        self.check_supported()
        arg_names = self.add_inputs()
        known = set(self.env) | {i.name for i in self.graph.input}
        nodes = _toposort(self.graph, known)
        self._consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in nodes:
            for name in node.input:
                if name:
                    self._consumers.setdefault(name, []).append(node)
        _find_layernorms(self, nodes)
        for node in nodes:
            if id(node) in self.done:
                continue
            self.convert(node)
        outputs = []
        for out in self.graph.output:
            if out.name not in self.env:
                raise InputError(f"graph output '{out.name}' is not computed by any node")
            value = self.value(out.name)
            outputs.append(value)
        for value, out in zip(outputs, self.graph.output, strict=True):
            if value.name_hint is None:
                _set_hint(value, out.name)
        del arg_names
        try:
            return self.b.finish(outputs)
        except (VerifyException, ShapeError) as err:
            raise InputError(f"the imported module does not verify: {err}") from None

    def convert(self, node: onnx.NodeProto) -> None:
        where = f"node '{_node_label(node)}' ({node.op_type})"
        try:
            if id(node) in self.fused:
                self.fused.pop(id(node))()
                return
            if node.domain in QONNX_DOMAINS:
                results = QONNX_CONVERTERS[node.op_type](self, node)
            elif self._foldable(node):
                results = _fold(self, node)
            elif node.op_type in FOLD_ONLY:
                raise InputError(
                    f"{where}: ircomp evaluates {node.op_type} only on constants (shape "
                    "arithmetic); its inputs are computed at run time"
                )
            else:
                results = CONVERTERS[node.op_type](self, node)
        except (VerifyException, ShapeError) as err:
            raise InputError(f"{where}: {err}") from None
        except InputError as err:
            message = str(err)
            if not message.startswith(("node '", "graph ")):
                message = f"{where}: {message}"
            raise InputError(message) from None
        for name, result in zip(node.output, results, strict=False):
            if name:
                self.env[name] = result
                if isinstance(result, SSAValue) and result.name_hint is None:
                    _set_hint(result, name)

    def _foldable(self, node: onnx.NodeProto) -> bool:
        if node.op_type in NO_FOLD or node.domain not in DEFAULT_DOMAINS:
            return False
        if node.op_type == "Dropout":
            return False
        inputs = [n for n in node.input if n]
        return all(isinstance(self.env.raw(n), np.ndarray | onnx.TensorProto) for n in inputs)


def _fold(imp: _Importer, node: onnx.NodeProto) -> list[np.ndarray]:
    """Evaluate a standard-domain node on constants with onnx's reference implementation."""
    from onnx.reference import ReferenceEvaluator

    if node.op_type == "Identity":
        results = [imp.env[node.input[0]]]
    else:
        feeds = {n: imp.env[n] for n in node.input if n}
        inputs = [
            helper.make_tensor_value_info(
                n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape)
            )
            for n, a in feeds.items()
        ]
        outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = helper.make_graph([node], "fold", inputs, outputs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", imp.opset)])
        model.ir_version = imp.model.ir_version
        try:
            results = ReferenceEvaluator(model).run(None, feeds)
        except Exception as err:
            raise InputError(f"cannot evaluate it on its constant inputs: {err}") from None
    if any(n in imp.tainted for n in node.input if n):
        imp.tainted.update(o for o in node.output if o)
    return [np.asarray(r) for r in results]


def load(
    source: str | os.PathLike | onnx.ModelProto | bytes,
    *,
    input_shapes: dict[str, Sequence[int]] | None = None,
    constants: dict[str, np.ndarray] | None = None,
    requant_mode: str = "onnx",
) -> Program:
    """Import an ONNX model (path, bytes or ModelProto) as a verified Program.

    `input_shapes` overrides input shapes (e.g. to fix a symbolic batch); `constants` turns
    graph inputs into constants (values given as arrays), for inputs that ircomp needs at
    import time (shapes, indices, quantization parameters). `requant_mode` picks the integer
    semantics of QDQ graphs: "onnx" (onnxruntime, the default) or "integer" (TFLite / TFLite
    Micro; see the module docstring).
    """
    if requant_mode not in REQUANT_MODES:
        raise InputError(
            f"requant_mode must be one of {', '.join(REQUANT_MODES)}, got {requant_mode!r}"
        )
    owned = not isinstance(source, onnx.ModelProto)
    model, data = _read_model(source)
    imp = _Importer(model, input_shapes, constants, owned, data, requant_mode)
    _shape_check(model)
    return imp.run()


# ---- attribute helpers ----------------------------------------------------------------------


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _norm_axis(axis: int, rank: int, node: onnx.NodeProto) -> int:
    if not -rank <= axis < max(rank, 1):
        raise InputError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def _single(node: onnx.NodeProto) -> None:
    if any(o for o in list(node.output)[1:]):
        raise InputError("only the first output is supported")


# ---- elementwise ----------------------------------------------------------------------------

_BINARY = {
    "Add": nn.AddOp,
    "Sub": nn.SubOp,
    "Mul": nn.MulOp,
    "Div": nn.DivOp,
    "Pow": nn.PowOp,
}


@converts(*_BINARY)
def _binary(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    a_name, b_name = node.input[0], node.input[1]
    if node.op_type == "Add" and imp.requant_mode == "integer" and _try_tflite_add(imp, node):
        return [None]
    if node.op_type == "Pow":
        base = imp.elem(a_name)
        if not is_float_type(base):
            raise InputError("Pow needs a float base")
        if imp.is_const(b_name) and not is_float_type(imp.elem(b_name)):
            exp = imp.const(node, 1)
            cast = exp.astype(_float_dtype(base))
            if not np.array_equal(cast.astype(exp.dtype), exp):
                raise InputError("integer exponent is not exact in the base's float type")
            imp.env[b_name + "#float"] = cast
            b_name = b_name + "#float"
    a, b = imp.value(a_name), imp.value(b_name)
    return [imp.op(node, _BINARY[node.op_type], [a, b])]


def _float_dtype(elem: Attribute) -> np.dtype:
    if isinstance(elem, Float16Type):
        return np.dtype(np.float16)
    return np.dtype(np.float32)


_UNARY = {
    "Relu": nn.ReluOp,
    "Sigmoid": nn.SigmoidOp,
    "Tanh": nn.TanhOp,
    "Sqrt": nn.SqrtOp,
    "Reciprocal": nn.ReciprocalOp,
    "Exp": nn.ExpOp,
    "Log": nn.LogOp,
    "Erf": nn.ErfOp,
    "Neg": nn.NegOp,
    "Abs": nn.AbsOp,
    "HardSwish": nn.HardSwishOp,
}


@converts(*_UNARY)
def _unary(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    return [imp.op(node, _UNARY[node.op_type], [imp.value(node.input[0])])]


@converts("LeakyRelu")
def _leaky_relu(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    alpha = float(_attrs(node).get("alpha", 0.01))
    return [imp.op(node, nn.LeakyReluOp, [imp.value(node.input[0])], alpha=alpha)]


@converts("HardSigmoid")
def _hardsigmoid(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    a = _attrs(node)
    return [
        imp.op(
            node,
            nn.HardSigmoidOp,
            [imp.value(node.input[0])],
            alpha=float(a.get("alpha", 0.2)),
            beta=float(a.get("beta", 0.5)),
        )
    ]


@converts("Gelu")
def _gelu(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    approximate = _attrs(node).get("approximate", "none")
    return [imp.op(node, nn.GeluOp, [imp.value(node.input[0])], approximate=approximate)]


@converts("Softmax", "LogSoftmax")
def _softmax(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    axis = _norm_axis(int(_attrs(node).get("axis", -1)), len(imp.shape(node.input[0])), node)
    if (
        node.op_type == "Softmax"
        and imp.requant_mode == "integer"
        and _try_tflite_softmax(imp, node, axis)
    ):
        return [None]
    op_type = nn.SoftmaxOp if node.op_type == "Softmax" else nn.LogSoftmaxOp
    x = imp.value(node.input[0])
    return [imp.op(node, op_type, [x], axis=axis)]


@converts("Sum")
def _sum(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    names = [n for n in node.input if n]
    acc = imp.value(names[0])
    for name in names[1:]:
        acc = imp.op(node, nn.AddOp, [acc, imp.value(name)])
    return [acc]


@converts("Max", "Min")
def _max_min(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    op_type = nn.MaxOp if node.op_type == "Max" else nn.MinOp
    names = [n for n in node.input if n]
    acc = imp.value(names[0])
    for name in names[1:]:
        acc = imp.op(node, op_type, [acc, imp.value(name)])
    return [acc]


@converts("Clip")
def _clip(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    x = imp.value(node.input[0])
    lo = imp.const(node, 1) if imp.has(node, 1) else None
    hi = imp.const(node, 2) if imp.has(node, 2) else None
    elem = nn.elem(x)
    if not is_float_type(elem):
        lo_v = float(lo) if lo is not None else -math.inf
        hi_v = float(hi) if hi is not None else math.inf
        lo_v, hi_v = max(lo_v, -(2.0**63)), min(hi_v, 2.0**63)
        if lo_v > hi_v:
            lo_v = hi_v  # ONNX: min > max gives max everywhere
        return [imp.op(node, nn.ClipOp, [x], min=lo_v, max=hi_v)]
    if lo is not None and hi is not None:
        if float(lo) > float(hi):
            # ONNX: every element becomes max (std::clamp with min > max is undefined).
            return [
                imp.op(
                    node,
                    nn.MinOp,
                    [
                        imp.op(node, nn.MaxOp, [x, imp.value(node.input[1])]),
                        imp.value(node.input[2]),
                    ],
                )
            ]
        if float(lo) == 0.0 and math.isinf(float(hi)):
            return [imp.op(node, nn.ReluOp, [x])]
        return [imp.op(node, nn.ClipOp, [x], min=float(lo), max=float(hi))]
    if lo is not None:
        return [imp.op(node, nn.MaxOp, [x, imp.value(node.input[1])])]
    if hi is not None:
        return [imp.op(node, nn.MinOp, [x, imp.value(node.input[2])])]
    return [x]


@converts("Identity")
def _identity(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    return [imp.env[node.input[0]]]


@converts("Dropout")
def _dropout(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    if imp.has(node, 2) and bool(imp.const(node, 2)):
        raise InputError("Dropout in training mode is not supported")
    x = imp.env[node.input[0]]
    mask: Value = None
    if len(node.output) > 1 and node.output[1]:
        shape = imp.shape(node.input[0])
        if -1 in shape:
            raise InputError("the mask output of Dropout needs a static shape")
        mask = np.ones(shape, dtype=bool)
    return [x, mask]


def _np_dtype_of_elem(elem: Attribute) -> np.dtype:
    import ml_dtypes

    if isinstance(elem, Float32Type):
        return np.dtype(np.float32)
    if isinstance(elem, Float16Type):
        return np.dtype(np.float16)
    if isinstance(elem, BFloat16Type):
        return np.dtype(ml_dtypes.bfloat16)
    assert isinstance(elem, IntegerType)
    width = elem.width.data
    if width == 1:
        return np.dtype(bool)
    unsigned = elem.signedness.data == Signedness.UNSIGNED
    bits = 8 if width <= 8 else 16 if width <= 16 else 32
    return np.dtype(f"{'u' if unsigned else ''}int{bits}")


@converts("Cast", "CastLike")
def _cast(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    if node.op_type == "Cast":
        dtype = _ml_dtype_elem(int(_attrs(node)["to"]))
    else:
        dtype = _np_dtype_of_elem(imp.elem(node.input[1]))
    if imp.is_const(node.input[0]):
        return [np.asarray(imp.const(node, 0)).astype(dtype)]
    x = imp.value(node.input[0])
    target = _elem_of_dtype(dtype, "Cast target")
    src = nn.elem(x)
    if src == target:
        return [x]
    if not (is_float_type(src) and is_float_type(target)):
        raise InputError(
            f"Cast from {src} to {target} at run time is not supported (float<->float only)"
        )
    return [imp.op(node, nn.CastOp, [x], target)]


@converts("Where")
def _where(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    c, a, b = (imp.value(n) for n in node.input[:3])
    return [imp.op(node, nn.WhereOp, [c, a, b])]


# ---- multiply-accumulate --------------------------------------------------------------------


def _window_attrs(
    imp: _Importer, node: onnx.NodeProto, x_shape: Sequence[int], kernel: Sequence[int]
) -> tuple[list[int], list[int], list[int]]:
    """strides, padding [top, left, bottom, right], dilations of a 2-D window op."""
    a = _attrs(node)
    if len(x_shape) != 4 or len(kernel) != 2:
        raise InputError(
            f"only 2-D {node.op_type} (NCHW input) is supported, got input rank {len(x_shape)}"
        )
    strides = list(a.get("strides", [1, 1]))
    dilations = list(a.get("dilations", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    auto_pad = a.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i in range(2):
            size = x_shape[2 + i]
            if size < 0:
                raise InputError(f"auto_pad {auto_pad} needs a static spatial size")
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
            small = total // 2
            begin, end = (
                (small, total - small)
                if auto_pad == "SAME_UPPER"
                else (
                    total - small,
                    small,
                )
            )
            pads[i], pads[2 + i] = begin, end
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    elif auto_pad != "NOTSET":
        raise InputError(f"auto_pad {auto_pad} is not supported")
    return strides, pads, dilations


@converts("Conv")
def _conv(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    if _try_qdq_mac(imp, node):
        return [None]
    w_shape = imp.shape(node.input[1])
    strides, pads, dilations = _window_attrs(imp, node, imp.shape(node.input[0]), w_shape[2:])
    group = int(_attrs(node).get("group", 1))
    operands = [imp.value(node.input[0]), imp.value(node.input[1])]
    if imp.has(node, 2):
        operands.append(imp.value(node.input[2]))
    return [
        imp.op(
            node,
            nn.Conv2dOp,
            operands,
            strides=strides,
            padding=pads,
            dilations=dilations,
            groups=group,
        )
    ]


def _reshape_to(imp: _Importer, node: onnx.NodeProto, x: SSAValue, shape: Sequence[int]) -> Any:
    current = tuple(-1 if d < 0 else d for d in x.type.get_shape())  # type: ignore[union-attr]
    if current == tuple(shape) and -1 not in shape:
        return x
    if list(shape).count(-1) > 1:
        raise InputError(
            f"reshape to {list(shape)} has more than one dynamic dimension; import with static "
            "input_shapes"
        )
    return imp.op(node, nn.ReshapeOp, [x], shape=list(shape))


@converts("MatMul")
def _matmul(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    if _try_qdq_mac(imp, node):
        return [None]
    a, b = imp.value(node.input[0]), imp.value(node.input[1])
    sa, sb = imp.shape(node.input[0]), imp.shape(node.input[1])
    if len(sa) == 1:
        a = _reshape_to(imp, node, a, [1, sa[0]])
    if len(sb) == 1:
        b = _reshape_to(imp, node, b, [sb[0], 1])
    out = imp.op(node, nn.MatMulOp, [a, b])
    if len(sa) == 1 or len(sb) == 1:
        shape = [-1 if d < 0 else d for d in out.type.get_shape()]  # type: ignore[union-attr]
        rank = len(shape)
        drop = {rank - 2} if len(sa) == 1 else set()
        drop |= {rank - 1} if len(sb) == 1 else set()
        out = _reshape_to(imp, node, out, [d for i, d in enumerate(shape) if i not in drop])
    return [out]


@converts("Gemm")
def _gemm(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    if _try_qdq_mac(imp, node):
        return [None]
    at = _attrs(node)
    alpha, beta = float(at.get("alpha", 1.0)), float(at.get("beta", 1.0))
    trans_a, trans_b = int(at.get("transA", 0)), int(at.get("transB", 0))
    a = imp.value(node.input[0])
    if trans_a:
        a = imp.op(node, nn.TransposeOp, [a], perm=[1, 0])
    b_name = node.input[1]
    if isinstance(imp.env.raw(b_name), np.ndarray | onnx.TensorProto):
        if not trans_b:
            imp.env[b_name + "#T"] = np.ascontiguousarray(imp.env[b_name].T)
            b_name = b_name + "#T"
        weight = imp.value(b_name)
    else:
        weight = imp.value(b_name)
        if not trans_b:
            weight = imp.op(node, nn.TransposeOp, [weight], perm=[1, 0])
    n_out = imp.shape(node.input[1])[0 if trans_b else 1]
    c_name = node.input[2] if imp.has(node, 2) else None
    bias = None
    if (
        c_name
        and alpha == 1.0
        and beta == 1.0
        and imp.is_const(c_name)
        and isinstance(imp.env[c_name], np.ndarray)
        and imp.env[c_name].size == n_out
        and imp.env[c_name].ndim >= 1
        and imp.env[c_name].shape[-1] == n_out
    ):
        c = imp.env[c_name]
        if c.ndim != 1:
            imp.env[c_name + "#1d"] = c.reshape(-1)
            c_name = c_name + "#1d"
        bias = imp.value(c_name)
        c_name = None
    operands = [a, weight] + ([bias] if bias is not None else [])
    out = imp.op(node, nn.LinearOp, operands)
    if alpha != 1.0:
        out = imp.op(node, nn.MulOp, [out, _scalar(imp, node, alpha, out, "alpha")])
    if c_name:
        c = imp.value(c_name)
        if beta != 1.0:
            c = imp.op(node, nn.MulOp, [c, _scalar(imp, node, beta, c, "beta")])
        out = imp.op(node, nn.AddOp, [out, c])
    return [out]


def _scalar(
    imp: _Importer, node: onnx.NodeProto, value: float, like: SSAValue, what: str
) -> SSAValue:
    name = f"{_node_label(node)}.{what}"
    imp.env[name] = np.array(value, dtype=_float_dtype(nn.elem(like)))
    return imp.value(name)


# ---- normalization --------------------------------------------------------------------------


@converts("BatchNormalization")
def _batchnorm(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    a = _attrs(node)
    if int(a.get("training_mode", 0)):
        raise InputError("BatchNormalization in training mode is not supported")
    _single(node)
    operands = [imp.value(n) for n in node.input[:5]]
    eps = float(a.get("epsilon", 1e-5))
    return [imp.op(node, nn.BatchNormOp, operands, epsilon=eps)]


@converts("LayerNormalization")
def _layernorm(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    a = _attrs(node)
    x_shape = imp.shape(node.input[0])
    axis = _norm_axis(int(a.get("axis", -1)), len(x_shape), node)
    eps = float(a.get("epsilon", 1e-5))
    norm_shape = list(x_shape[axis:])
    operands = [imp.value(node.input[0])]
    for i in (1, 2):
        if not imp.has(node, i):
            continue
        name = node.input[i]
        shape = imp.shape(name)
        if list(shape) != norm_shape:
            if not imp.is_const(name) or -1 in norm_shape:
                raise InputError(
                    f"scale/bias of shape {list(shape)} must have the normalized shape {norm_shape}"
                )
            imp.env[name + "#full"] = np.broadcast_to(imp.const(node, i), norm_shape).copy()
            name = name + "#full"
        operands.append(imp.value(name))
    y = imp.op(node, nn.LayerNormOp, operands, axis=axis, epsilon=eps)
    results: list[Value] = [y]
    if any(o for o in list(node.output)[1:]):
        # Mean and InvStdDev outputs (keepdims over the normalized axes).
        x = operands[0]
        axes = list(range(axis, len(x_shape)))
        mean = imp.op(node, nn.ReduceMeanOp, [x], axes=axes, keepdims=True)
        centered = imp.op(node, nn.SubOp, [x, mean])
        var = imp.op(
            node,
            nn.ReduceMeanOp,
            [imp.op(node, nn.MulOp, [centered, centered])],
            axes=axes,
            keepdims=True,
        )
        var = imp.op(node, nn.AddOp, [var, _scalar(imp, node, eps, var, "epsilon")])
        inv = imp.op(node, nn.ReciprocalOp, [imp.op(node, nn.SqrtOp, [var])])
        results += [mean, inv]
    return results


def _find_layernorms(imp: _Importer, nodes: list[onnx.NodeProto]) -> None:
    """Recognize ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div (+ Mul, Add) as nn.layernorm."""
    producer = {o: n for n in nodes for o in n.output if o}

    def only_user(name: str) -> onnx.NodeProto | None:
        users = imp.consumers(name)
        if len(users) != 1 or name in imp.graph_outputs:
            return None
        return users[0]

    def reduce_axes(node: onnx.NodeProto) -> list[int] | None:
        a = _attrs(node)
        if int(a.get("keepdims", 1)) != 1:
            return None
        if "axes" in a:
            return list(a["axes"])
        if imp.has(node, 1):
            v = const_of(node.input[1])
            return None if v is None else [int(x) for x in v.reshape(-1)]
        return None

    def const_of(name: str) -> np.ndarray | None:
        if imp.is_const(name):
            v = imp.env[name]
            return v if isinstance(v, np.ndarray) else None
        node = producer.get(name)
        if node is not None and node.op_type == "Constant":
            a = _attrs(node)
            if "value" in a:
                return numpy_helper.to_array(a["value"])
            if "value_float" in a:
                return np.array(a["value_float"], np.float32)
        return None

    for div in nodes:
        if div.op_type != "Div" or div.domain not in DEFAULT_DOMAINS:
            continue
        sub, sqrt = producer.get(div.input[0]), producer.get(div.input[1])
        if not sub or not sqrt or sub.op_type != "Sub" or sqrt.op_type != "Sqrt":
            continue
        mean1 = producer.get(sub.input[1])
        add = producer.get(sqrt.input[0])
        if not mean1 or mean1.op_type != "ReduceMean" or mean1.input[0] != sub.input[0]:
            continue
        if not add or add.op_type != "Add":
            continue
        var, eps_name = add.input[0], add.input[1]
        if const_of(eps_name) is None:
            var, eps_name = eps_name, var
        eps = const_of(eps_name)
        mean2 = producer.get(var)
        if eps is None or eps.size != 1 or not mean2 or mean2.op_type != "ReduceMean":
            continue
        square = producer.get(mean2.input[0])
        if not square:
            continue
        d = sub.output[0]
        if square.op_type == "Pow":
            p = const_of(square.input[1])
            if square.input[0] != d or p is None or p.size != 1 or float(p) != 2.0:
                continue
        elif square.op_type == "Mul":
            if list(square.input) != [d, d]:
                continue
        else:
            continue
        x_name = sub.input[0]
        if x_name not in imp.env and x_name not in producer:
            continue
        axes1, axes2 = reduce_axes(mean1), reduce_axes(mean2)
        if axes1 is None or axes2 is None:
            continue
        chain = [mean1, square, mean2, add, sqrt]
        if (
            only_user(mean1.output[0]) is not sub
            or only_user(square.output[0]) is not mean2
            or only_user(mean2.output[0]) is not add
            or only_user(add.output[0]) is not sqrt
            or only_user(sqrt.output[0]) is not div
            or sorted(id(u) for u in imp.consumers(d)) != sorted([id(square), id(div)])
            or d in imp.graph_outputs
        ):
            continue
        # Optional affine tail: Mul(y, gamma) then Add(., beta) with constants.
        tail_nodes: list[onnx.NodeProto] = []
        gamma = beta = None
        out_name = div.output[0]
        mul = only_user(out_name)
        if mul is not None and mul.op_type == "Mul":
            other = mul.input[1] if mul.input[0] == out_name else mul.input[0]
            if const_of(other) is not None:
                gamma = other
                tail_nodes.append(mul)
                out_name = mul.output[0]
                add2 = only_user(out_name)
                if add2 is not None and add2.op_type == "Add":
                    other = add2.input[1] if add2.input[0] == out_name else add2.input[0]
                    if const_of(other) is not None:
                        beta = other
                        tail_nodes.append(add2)
                        out_name = add2.output[0]
        for n in (sub, *chain, *tail_nodes):
            imp.done.add(id(n))
        imp.fused[id(div)] = _layernorm_emitter(
            imp,
            div,
            x_name,
            axes1,
            axes2,
            float(eps.reshape(-1)[0]),
            gamma,
            beta,
            out_name,
            [mean1, sub, square, mean2, add, sqrt, div, *tail_nodes],
        )
        imp.done.discard(id(div))


def _layernorm_emitter(
    imp: _Importer,
    div: onnx.NodeProto,
    x_name: str,
    axes1: list[int],
    axes2: list[int],
    eps: float,
    gamma: str | None,
    beta: str | None,
    out_name: str,
    pattern: list[onnx.NodeProto],
) -> Callable[[], None]:
    def emit() -> None:
        shape = imp.shape(x_name)
        rank = len(shape)
        a1 = sorted(a % rank for a in axes1)
        a2 = sorted(a % rank for a in axes2)
        trailing = list(range(rank - len(a1), rank))
        if a1 != a2 or a1 != trailing or -1 in shape[a1[0] :]:
            # Not the layernorm shape: convert the nodes one by one.
            for n in pattern:
                imp.convert_plain(n)
            return
        norm_shape = list(shape[a1[0] :])
        x = imp.value(x_name)
        ftype = _float_dtype(nn.elem(x))
        params = []
        for what, name, default in (("scale", gamma, 1.0), ("bias", beta, 0.0)):
            key = f"{_node_label(div)}.{what}"
            if name is None:
                if what == "bias":
                    continue
                arr = np.full(norm_shape, default, ftype)
            else:
                arr = imp.env[name]
                try:
                    full = np.broadcast_shapes(arr.shape, norm_shape)
                except ValueError:
                    full = None
                if full is None or list(full) != norm_shape:
                    for n in pattern:
                        imp.convert_plain(n)
                    return
                arr = np.broadcast_to(arr, norm_shape).astype(ftype)
                key = name if arr.shape == imp.env[name].shape else f"{name}.{what}"
            imp.env.setdefault(key, np.ascontiguousarray(arr))
            params.append(imp.value(key))
        y = imp.op(div, nn.LayerNormOp, [x, *params], axis=a1[0], epsilon=eps)
        _set_hint(y, out_name)
        imp.env[out_name] = y

    return emit


def _convert_plain(self: _Importer, node: onnx.NodeProto) -> None:
    self.fused.pop(id(node), None)
    self.convert(node)


_Importer.convert_plain = _convert_plain  # type: ignore[attr-defined]


# ---- pooling --------------------------------------------------------------------------------


@converts("MaxPool", "AveragePool")
def _pool(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    a = _attrs(node)
    _single(node)
    if int(a.get("storage_order", 0)):
        raise InputError("storage_order=1 is not supported")
    x_name = node.input[0]
    kernel = list(a["kernel_shape"])
    strides, pads, dilations = _window_attrs(imp, node, imp.shape(x_name), kernel)
    ceil = bool(a.get("ceil_mode", 0))
    if node.op_type == "MaxPool":
        return _on_codes(
            imp,
            node,
            lambda x: imp.op(
                node,
                nn.MaxPool2dOp,
                [x],
                kernel=kernel,
                strides=strides,
                padding=pads,
                dilations=dilations,
                ceil_mode=ceil,
            ),
        )
    if dilations != [1, 1]:
        raise InputError("AveragePool with dilations is not supported")

    def emit(x: SSAValue) -> SSAValue:
        return imp.op(
            node,
            nn.AvgPool2dOp,
            [x],
            kernel=kernel,
            strides=strides,
            padding=pads,
            ceil_mode=ceil,
            count_include_pad=bool(a.get("count_include_pad", 0)),
        )

    if imp.requant_mode == "integer":  # TFLite: the average of the codes, rounded
        return _on_codes(imp, node, emit)
    return [emit(imp.value(x_name))]


@converts("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    rank = len(imp.shape(node.input[0]))
    if node.op_type == "GlobalAveragePool":
        if rank == 4 and imp.requant_mode == "integer":  # TFLite: average of the codes
            return _on_codes(imp, node, lambda x: imp.op(node, nn.GlobalAvgPool2dOp, [x]))
        x = imp.value(node.input[0])
        if rank == 4:
            return [imp.op(node, nn.GlobalAvgPool2dOp, [x])]
        return [imp.op(node, nn.ReduceMeanOp, [x], axes=list(range(2, rank)), keepdims=True)]
    return _on_codes(
        imp,
        node,
        lambda x: imp.op(node, nn.ReduceMaxOp, [x], axes=list(range(2, rank)), keepdims=True),
    )


# ---- reductions -----------------------------------------------------------------------------

_REDUCE = {"ReduceMean": nn.ReduceMeanOp, "ReduceSum": nn.ReduceSumOp, "ReduceMax": nn.ReduceMaxOp}


@converts(*_REDUCE)
def _reduce(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    a = _attrs(node)
    if "axes" in a:
        axes = [int(v) for v in a["axes"]]
    elif imp.has(node, 1):
        axes = [int(v) for v in imp.const(node, 1).reshape(-1)]
    else:
        axes = []
    keep = bool(a.get("keepdims", 1))
    rank = len(imp.shape(node.input[0]))
    if not axes and int(a.get("noop_with_empty_axes", 0)):
        return [imp.env[node.input[0]]]
    axes = sorted(_norm_axis(ax, rank, node) for ax in axes) if axes else list(range(rank))
    op_type = _REDUCE[node.op_type]
    if op_type is nn.ReduceMaxOp:
        return _on_codes(imp, node, lambda x: imp.op(node, op_type, [x], axes=axes, keepdims=keep))
    x = imp.value(node.input[0])
    return [imp.op(node, op_type, [x], axes=axes, keepdims=keep)]


# ---- shape ops ------------------------------------------------------------------------------


def _on_codes(
    imp: _Importer, node: onnx.NodeProto, emit: Callable[..., SSAValue], count: int = 1
) -> list[Value]:
    """Run a value-order-preserving op on codes when its inputs are dequantized activations.

    Max/pool/shape ops commute with the monotone dequantization, so `emit(codes)` followed by
    the same dequantization is exact; the result stays a pending dequantization (`_QRef`).
    """
    names = [n for n in node.input[:count] if n]
    refs = [imp.env.raw(n) for n in names]
    if refs and all(isinstance(r, _QRef) for r in refs):
        first = refs[0]
        if all(first.same_params(r) for r in refs) and first.per_tensor():  # type: ignore[union-attr]
            codes = [imp.value(r.codes) for r in refs]  # type: ignore[union-attr]
            outs = emit(*codes)
            outs = outs if isinstance(outs, list) else [outs]
            results: list[Value] = []
            for k, out in enumerate(outs):
                key = f"{node.output[k]}#codes"
                imp.env[key] = out
                _set_hint(out, key)
                results.append(
                    _QRef(key, first.scale, first.zero_point, 0, first.float_type)  # type: ignore[union-attr]
                )
            return results
    outs = emit(*[imp.value(n) for n in names])
    return outs if isinstance(outs, list) else [outs]


def _resolve_target(shape: Sequence[int], target: Sequence[int], allowzero: bool) -> list[int]:
    """An ONNX Reshape target as an nn.reshape shape (-1 marks the one dynamic/inferred dim).

    Entries that copy the input's one dynamic dim (0, or the value `Shape` gave it) stay
    dynamic; an explicit -1 next to them is then computed from the static dims.
    """
    out: list[int | str] = []
    for i, t in enumerate(int(v) for v in target):
        if t == 0 and not allowzero:
            if i >= len(shape):
                raise InputError(f"reshape target {list(target)} copies a missing dim {i}")
            out.append("dyn" if shape[i] == -1 else shape[i])
        elif t == _DYN_SENTINEL:
            out.append("dyn")
        elif t != 0 and t % _DYN_SENTINEL == 0:
            out.append(-1)
        else:
            out.append(t)
    static_in = math.prod(d for d in shape if d != -1)
    known = math.prod(d for d in out if isinstance(d, int) and d != -1)
    if -1 not in shape and out.count("dyn") == 0 and out.count(-1) == 1:
        if known == 0 or static_in % known:
            raise InputError(f"cannot reshape {list(shape)} to {list(target)}")
        return [static_in // known if d == -1 else d for d in out]  # type: ignore[misc]
    if shape.count(-1) == 1 and out.count("dyn") == 1 and out.count(-1) == 1:
        if known == 0 or static_in % known:
            raise InputError(f"cannot reshape {list(shape)} to {list(target)}")
        out = [static_in // known if d == -1 else d for d in out]
    return [-1 if d == "dyn" else d for d in out]  # type: ignore[misc]


@converts("Reshape")
def _reshape(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    target = imp.const(node, 1).reshape(-1)
    allowzero = bool(_attrs(node).get("allowzero", 0))
    shape = _resolve_target(imp.shape(node.input[0]), target, allowzero)
    return _on_codes(imp, node, lambda x: _reshape_to(imp, node, x, shape))


@converts("Flatten")
def _flatten(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    rank = len(imp.shape(node.input[0]))
    axis = int(_attrs(node).get("axis", 1))
    if not -rank <= axis <= rank:
        raise InputError(f"Flatten axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    return _on_codes(imp, node, lambda x: imp.op(node, nn.FlattenOp, [x], axis=axis))


def _axes_of(imp: _Importer, node: onnx.NodeProto) -> list[int] | None:
    a = _attrs(node)
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if imp.has(node, 1):
        return [int(v) for v in imp.const(node, 1).reshape(-1)]
    return None


@converts("Squeeze")
def _squeeze(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    shape = list(imp.shape(node.input[0]))
    axes = _axes_of(imp, node)
    if axes is None:
        if -1 in shape:
            raise InputError("Squeeze without axes needs a static shape")
        drop = {i for i, d in enumerate(shape) if d == 1}
    else:
        drop = {_norm_axis(a, len(shape), node) for a in axes}
        for i in drop:
            if shape[i] not in (1, -1):
                raise InputError(f"cannot squeeze dim {i} of size {shape[i]}")
    target = [d for i, d in enumerate(shape) if i not in drop]
    return _on_codes(imp, node, lambda x: _reshape_to(imp, node, x, target))


@converts("Unsqueeze")
def _unsqueeze(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    shape = list(imp.shape(node.input[0]))
    axes = _axes_of(imp, node) or []
    rank = len(shape) + len(axes)
    norm = sorted(_norm_axis(a, rank, node) for a in axes)
    target = list(shape)
    for a in norm:
        target.insert(a, 1)
    return _on_codes(imp, node, lambda x: _reshape_to(imp, node, x, target))


@converts("Transpose")
def _transpose(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    rank = len(imp.shape(node.input[0]))
    perm = [int(p) for p in _attrs(node).get("perm", list(range(rank))[::-1])]
    return _on_codes(imp, node, lambda x: imp.op(node, nn.TransposeOp, [x], perm=perm))


@converts("Concat")
def _concat(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    names = [n for n in node.input if n]
    rank = len(imp.shape(names[0]))
    axis = _norm_axis(int(_attrs(node)["axis"]), rank, node)
    return _on_codes(
        imp, node, lambda *xs: imp.op(node, nn.ConcatOp, list(xs), axis=axis), count=len(names)
    )


@converts("Split")
def _split(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    a = _attrs(node)
    shape = imp.shape(node.input[0])
    axis = _norm_axis(int(a.get("axis", 0)), len(shape), node)
    n_out = len(node.output)
    if imp.has(node, 1):
        sizes = [int(s) for s in imp.const(node, 1).reshape(-1)]
    elif "split" in a:
        sizes = [int(s) for s in a["split"]]
    else:
        dim = shape[axis]
        if dim < 0:
            raise InputError("Split without sizes needs a static dimension")
        parts = int(a.get("num_outputs", n_out))
        chunk = -(-dim // parts)
        sizes = [min(chunk, dim - i * chunk) for i in range(parts)]
    x = imp.value(node.input[0])
    outs = imp.b.op_multi(nn.SplitOp, [x], name=_node_label(node), axis=axis, sizes=sizes)
    return list(outs)


@converts("Slice")
def _slice(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    shape = imp.shape(node.input[0])
    starts = [int(v) for v in imp.const(node, 1).reshape(-1)]
    ends = [int(v) for v in imp.const(node, 2).reshape(-1)]
    rank = len(shape)
    axes = (
        [int(v) for v in imp.const(node, 3).reshape(-1)]
        if imp.has(node, 3)
        else list(range(len(starts)))
    )
    steps = (
        [int(v) for v in imp.const(node, 4).reshape(-1)] if imp.has(node, 4) else [1] * len(starts)
    )
    axes = [_norm_axis(ax, rank, node) for ax in axes]
    limit = 2**62

    def clamp(v: int, dim: int) -> int:
        bound = dim + 1 if dim >= 0 else limit
        return max(-bound, min(bound, v))

    starts = [clamp(s, shape[ax]) for s, ax in zip(starts, axes, strict=True)]
    ends = [clamp(e, shape[ax]) for e, ax in zip(ends, axes, strict=True)]
    return _on_codes(
        imp,
        node,
        lambda x: imp.op(node, nn.SliceOp, [x], starts=starts, ends=ends, axes=axes, steps=steps),
    )


@converts("Gather")
def _gather(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    rank = len(imp.shape(node.input[0]))
    axis = _norm_axis(int(_attrs(node).get("axis", 0)), rank, node)
    data = imp.value(node.input[0])
    idx_name = node.input[1]
    if isinstance(imp.env[idx_name], np.ndarray):
        idx = imp.env[idx_name]
        size = imp.shape(node.input[0])[axis]
        if size >= 0 and idx.size and (idx.min() < -size or idx.max() >= size):
            raise InputError(f"Gather index out of range for axis {axis} of size {size}")
    indices = imp.value(idx_name)
    return [imp.op(node, nn.GatherOp, [data, indices], axis=axis)]


@converts("Expand")
def _expand(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    raw = [int(v) for v in imp.const(node, 1).reshape(-1)]
    shape = [-1 if (v and v % _DYN_SENTINEL == 0) else v for v in raw]
    x = imp.value(node.input[0])
    return [imp.op(node, nn.ExpandOp, [x], shape=shape)]


@converts("Shape")
def _shape(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    shape = imp.shape(node.input[0])
    a = _attrs(node)
    rank = len(shape)
    start = int(a.get("start", 0))
    end = int(a.get("end", rank))
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = max(0, min(rank, end + rank if end < 0 else end))
    dims = shape[start:end]
    out = np.array([_DYN_SENTINEL if d < 0 else d for d in dims], dtype=np.int64)
    if -1 in dims:
        imp.tainted.add(node.output[0])
    return [out]


@converts("Size")
def _size(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    shape = imp.shape(node.input[0])
    if -1 in shape:
        raise InputError("Size of a tensor with a dynamic dimension")
    return [np.array(math.prod(shape), dtype=np.int64)]


# ---- quantization ---------------------------------------------------------------------------


def _qparams(
    imp: _Importer, node: onnx.NodeProto, scale_i: int, zp_i: int, codes_elem: Attribute | None
) -> tuple[np.ndarray, np.ndarray, Attribute]:
    """(scale float32, zero point int64, code format) of a Q/DQ-style node."""
    scale = imp.const(node, scale_i)
    if not np.issubdtype(scale.dtype, np.floating) and scale.dtype.name != "bfloat16":
        raise InputError("scale must be a float tensor")
    if imp.has(node, zp_i):
        zp_arr = imp.const(node, zp_i)
        elem = _elem_of_dtype(zp_arr.dtype, "zero point")
        zp = zp_arr.astype(np.int64)
    else:
        zp = np.zeros(scale.shape, np.int64)
        elem = codes_elem
    if elem is None:
        to = int(_attrs(node).get("output_dtype", 0))
        elem = _elem_of_dtype(_ml_dtype_elem(to), "output_dtype") if to else _unsigned(8)
    if scale.ndim > 1 or zp.ndim > 1:
        raise InputError("blocked quantization (scale of rank > 1) is not supported")
    if int(_attrs(node).get("block_size", 0)):
        raise InputError("blocked quantization (block_size) is not supported")
    return scale.astype(np.float32), zp, elem


def _axis(imp: _Importer, node: onnx.NodeProto, rank: int, scale: np.ndarray) -> int:
    """The channel axis of per-axis parameters; 0 (unused) for per-tensor ones."""
    axis = int(_attrs(node).get("axis", 1))
    if scale.size > 1:
        return _norm_axis(axis, rank, node)
    return axis % rank if rank and -rank <= axis < rank else 0


def _float_elem(scale: np.ndarray) -> Attribute:
    return _elem_of_dtype(scale.dtype, "scale")


@converts("DequantizeLinear")
def _dequantize(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    x_name = node.input[0]
    v = imp.env[x_name]
    if isinstance(v, _QRef):
        raise InputError("DequantizeLinear of a float tensor")
    x_elem = imp.elem(x_name)
    if is_float_type(x_elem):
        raise InputError(f"DequantizeLinear of {x_elem} (float8 and float inputs unsupported)")
    raw_scale = imp.const(node, 1)
    scale, zp, _ = _qparams(imp, node, 1, 2, x_elem)
    rank = len(imp.shape(x_name))
    axis = _axis(imp, node, rank, scale)
    if isinstance(v, np.ndarray):
        elem = _elem_of_dtype(v.dtype, "codes")
        imp.env[x_name] = _Codes(_storage_array(v, "codes"), elem)
    return [_QRef(x_name, scale, zp, axis, _float_elem(raw_scale))]


@converts("QuantizeLinear")
def _quantize(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    x_name = node.input[0]
    scale, zp, elem = _qparams(imp, node, 1, 2, None)
    if int(_attrs(node).get("saturate", 1)) == 0:
        raise InputError("saturate=0 is not supported")
    v = imp.env[x_name]
    rank = len(imp.shape(x_name))
    axis = _axis(imp, node, rank, scale)
    per_tensor = scale.size == 1 and zp.size == 1
    if (
        isinstance(v, _QRef)
        and v.per_tensor()
        and per_tensor
        and float(v.scale.reshape(-1)[0]) == float(scale.reshape(-1)[0])
        and int(v.zero_point.reshape(-1)[0]) == int(zp.reshape(-1)[0])
        and imp.elem(v.codes) == elem
    ):
        return [imp.env[v.codes]]  # Q(DQ(c)) with the same parameters is c
    from ircomp.dialects.num import format_of

    lo, hi = (int(x) for x in (format_of(elem).min_value, format_of(elem).max_value))
    if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating):
        sc = scale.reshape(-1)
        z = zp.reshape(-1)
        codes = quantize_linear(
            v.astype(np.float32),
            float(sc[0]) if sc.size == 1 else sc,
            int(z[0]) if z.size == 1 else z,
            None if sc.size == 1 else axis,
            qmin=lo,
            qmax=hi,
        )
        return [_Codes(np.asarray(codes, np.int64), elem)]
    x = imp.value(x_name)
    return [
        imp.op(
            node,
            nn.QuantizeOp,
            [x],
            elem,
            scale=[float(s) for s in scale.reshape(-1)],
            zero_point=[int(z) for z in zp.reshape(-1)],
            axis=axis,
        )
    ]


def _codes_value(imp: _Importer, v: Value) -> np.ndarray | None:
    return v.array if isinstance(v, _Codes) else None


def _output_chain(
    imp: _Importer, out: str, allow_act: bool = True
) -> tuple[onnx.NodeProto | None, onnx.NodeProto] | None:
    """The single-consumer chain `out -> [Relu|Clip] -> QuantizeLinear` (per-tensor Q with
    constant clip bounds), as (activation or None, Q); None when `out` has another shape."""
    users = imp.consumers(out)
    act = None
    if (
        allow_act
        and len(users) == 1
        and out not in imp.graph_outputs
        and users[0].op_type in ("Relu", "Clip")
    ):
        act = users[0]
        if act.op_type == "Clip" and any(
            imp.has(act, i) and not imp.is_const(act.input[i]) for i in (1, 2)
        ):
            return None
        out = act.output[0]
        users = imp.consumers(out)
    if len(users) != 1 or out in imp.graph_outputs or users[0].op_type != "QuantizeLinear":
        return None
    q = users[0]
    y_scale, y_zp, _ = _qparams(imp, q, 1, 2, None)
    if y_scale.size != 1 or y_zp.size != 1:
        return None
    return act, q


def _act_clamp(
    imp: _Importer, act: onnx.NodeProto | None, sy: float, zy: int, qmin: int, qmax: int
) -> list[int]:
    """The output-code range a fused Relu/Clip leaves ([] without one), TFLite's
    `CalculateActivationRangeQuantized`: the bounds quantized with the output parameters."""
    if act is None:
        return []
    lo, hi = qmin, qmax
    if act.op_type == "Relu":
        lo = max(lo, zy)
    else:
        bounds = [imp.const(act, i) if imp.has(act, i) else None for i in (1, 2)]
        for k, bnd in enumerate(bounds):
            if bnd is None:
                continue
            code = int(
                quantize_linear(
                    np.asarray(bnd, np.float32).reshape(1), sy, zy, None, qmin=qmin, qmax=qmax
                )[0]
            )
            lo, hi = (max(lo, code), hi) if k == 0 else (lo, min(hi, code))
    return [lo, min(hi, qmax)] if lo <= hi else [hi, hi]


def _code_range(elem: Attribute) -> tuple[int, int]:
    from ircomp.dialects.num import format_of

    fmt = format_of(elem)
    return int(fmt.min_value), int(fmt.max_value)


def _finish_chain(
    imp: _Importer, y: SSAValue, act: onnx.NodeProto | None, q: onnx.NodeProto, extra=()
) -> None:
    """Bind the fused pattern's result to the Q output and mark the chain as converted."""
    _set_hint(y, q.output[0])
    imp.env[q.output[0]] = y
    for n in (*extra, *((act,) if act is not None else ()), q):
        imp.done.add(id(n))


def _bias_add(
    imp: _Importer, out: str, sx: np.float32, sw: np.ndarray
) -> tuple[onnx.NodeProto, str] | None:
    """`out -> Add(DQ(int32 bias constant))` after a QDQ MatMul (tf2onnx's FULLY_CONNECTED):
    the Add node and the env name of the bias codes, when the bias is per tensor or per output
    channel with zero point 0 and the scale of the accumulator (sx * sw, as TFLite requires)."""
    users = imp.consumers(out)
    if len(users) != 1 or out in imp.graph_outputs or users[0].op_type != "Add":
        return None
    add = users[0]
    other = add.input[1] if add.input[0] == out else add.input[0]
    bs = imp.env.raw(other)
    if not (isinstance(bs, _QRef) and isinstance(imp.env[bs.codes], _Codes)):
        return None
    if imp.elem(bs.codes) != _signed(32) or np.any(bs.zero_point != 0):
        return None
    if not bs.per_tensor() and bs.scale.size != sw.size:
        return None
    want = (sx * sw).astype(np.float64)
    if not np.allclose(bs.scale.astype(np.float64), want, rtol=1e-6, atol=0):
        return None
    return add, bs.codes


def _try_qdq_mac(imp: _Importer, node: onnx.NodeProto) -> bool:
    """DQ(x), DQ(w)[, DQ(b)] -> Conv/MatMul/Gemm [-> Add(DQ(b))] -> [Relu|Clip] -> Q as an
    integer MAC and one `nn.requantize` in the importer's requantization mode."""
    xs = imp.env.raw(node.input[0])
    ws = imp.env.raw(node.input[1])
    if not (isinstance(xs, _QRef) and isinstance(ws, _QRef)):
        return False
    if not isinstance(imp.env[ws.codes], _Codes) or not xs.per_tensor():
        return False
    b_key = None  # env name of the int32 bias codes
    if node.op_type in ("Conv", "Gemm") and imp.has(node, 2):
        bs = imp.env.raw(node.input[2])
        if not (isinstance(bs, _QRef) and isinstance(imp.env[bs.codes], _Codes)):
            return False
        if imp.elem(bs.codes) != _signed(32) or np.any(bs.zero_point != 0):
            return False
        b_key = bs.codes
    w_codes = imp.env[ws.codes].array
    w_zp = np.unique(ws.zero_point)
    if w_zp.size != 1:
        return False
    at = _attrs(node)
    kind = node.op_type
    w_axis_ok = ws.per_tensor()
    if kind == "Conv":
        w_axis_ok = w_axis_ok or ws.axis == 0
    elif kind == "Gemm":
        if float(at.get("alpha", 1.0)) != 1.0 or float(at.get("beta", 1.0)) != 1.0:
            return False
        if int(at.get("transA", 0)):
            return False
        trans_b = int(at.get("transB", 0))
        w_axis_ok = w_axis_ok or ws.axis == (0 if trans_b else 1)
        if not trans_b:
            w_codes = np.ascontiguousarray(w_codes.T)
    elif w_codes.ndim == 2 and len(imp.shape(node.input[0])) >= 2:
        # MatMul: B [K, N] -> linear weight [N, K], per-channel along N.
        w_axis_ok = w_axis_ok or ws.axis == 1
        w_codes = np.ascontiguousarray(w_codes.T)
        kind = "Linear"
    elif w_codes.ndim < 2 or len(imp.shape(node.input[0])) < 2:
        return False
    if not w_axis_ok:
        return False
    sx = np.float32(xs.scale.reshape(-1)[0])
    sw = ws.scale.reshape(-1).astype(np.float32)
    # The single consumer chain up to QuantizeLinear (MatMul: through a bias Add).
    out = node.output[0]
    bias_add = None
    if kind == "Linear" and b_key is None:
        found = _bias_add(imp, out, sx, sw)
        if found is not None:
            bias_add, b_key = found
            out = bias_add.output[0]
    n_out = w_codes.shape[0] if kind != "MatMul" else w_codes.shape[-1]
    if b_key is not None and imp.env[b_key].array.size not in (1, n_out):
        return False
    chain = _output_chain(imp, out)
    if chain is None:
        return False
    act, q = chain
    y_scale, y_zp, y_elem = _qparams(imp, q, 1, 2, None)
    qmin, qmax = _code_range(y_elem)
    sy, zy = float(y_scale.reshape(-1)[0]), int(y_zp.reshape(-1)[0])
    clamp = _act_clamp(imp, act, sy, zy, qmin, qmax)
    if imp.requant_mode == "integer":
        # TFLite: double(s_x) * double(s_w) / double(s_y), QuantizeMultiplier at run time.
        scale = [float(sx) * float(s) / sy for s in sw]
    else:  # onnxruntime's float32 arithmetic
        scale = [float(s) for s in (sx * sw / np.float32(sy)).astype(np.float32)]
    x_codes = imp.value(xs.codes)
    w_name = ws.codes
    w_elem = imp.elem(ws.codes)
    w_key = w_name if w_codes is imp.env[w_name].array else f"{w_name}#T"
    if w_key not in imp.env:
        imp.env[w_key] = _Codes(w_codes, w_elem)
    w_val = imp.value(w_key)
    operands = [x_codes, w_val]
    if b_key is not None:
        codes = imp.env[b_key].array
        if codes.shape != (n_out,):
            imp.env[b_key + "#1d"] = _Codes(
                np.broadcast_to(codes.reshape(-1), (n_out,)).copy(), _signed(32)
            )
            b_key = b_key + "#1d"
        operands.append(imp.value(b_key))
    zx, zw = int(xs.zero_point.reshape(-1)[0]), int(w_zp[0])
    label = _node_label(node)
    if kind == "Conv":
        strides, pads, dilations = _window_attrs(
            imp, node, imp.shape(node.input[0]), w_codes.shape[2:]
        )
        acc = imp.b.op(
            nn.Conv2dOp,
            operands,
            _signed(32),
            name=label,
            strides=strides,
            padding=pads,
            dilations=dilations,
            groups=int(at.get("group", 1)),
            input_zero_point=zx,
            weight_zero_point=zw,
        )
        axis = 1
    else:  # MatMul: batched weight, integer nn.matmul with per-tensor scales; else linear
        acc = imp.b.op(
            nn.MatMulOp if kind == "MatMul" else nn.LinearOp,
            operands,
            _signed(32),
            name=label,
            input_zero_point=zx,
            weight_zero_point=zw,
        )
        axis = len(acc.type.get_shape()) - 1  # type: ignore[union-attr]
    _set_hint(acc, f"{node.output[0]}_acc")
    y = imp.b.op(
        nn.RequantizeOp,
        [acc],
        y_elem,
        name=q.name or label,
        scale=scale,
        zero_point=[zy],
        axis=axis,
        mode=imp.requant_mode,
        clamp=clamp,
    )
    _finish_chain(imp, y, act, q, () if bias_add is None else (bias_add,))
    return True


def _byte_qref(imp: _Importer, name: str) -> _QRef | None:
    """The pending dequantization of 8-bit activation codes (per tensor), else None."""
    ref = imp.env.raw(name)
    if not isinstance(ref, _QRef) or not ref.per_tensor():
        return None
    if imp.is_const(ref.codes):
        return None
    elem = imp.elem(ref.codes)
    if not isinstance(elem, IntegerType) or elem.width.data != 8:
        return None
    return ref


def _try_tflite_add(imp: _Importer, node: onnx.NodeProto) -> bool:
    """Integer mode: `DQ(a) + DQ(b) -> [Relu|Clip] -> Q` (8-bit, per tensor) as `nn.qadd`,
    TFLite's integer ADD."""
    refs = [_byte_qref(imp, n) for n in node.input[:2]]
    if any(r is None for r in refs):
        return False
    chain = _output_chain(imp, node.output[0])
    if chain is None:
        return False
    act, q = chain
    y_scale, y_zp, y_elem = _qparams(imp, q, 1, 2, None)
    if not isinstance(y_elem, IntegerType) or y_elem.width.data != 8:
        return False
    qmin, qmax = _code_range(y_elem)
    sy, zy = float(y_scale.reshape(-1)[0]), int(y_zp.reshape(-1)[0])
    a, b = refs[0], refs[1]
    assert a is not None and b is not None
    y = imp.b.op(
        nn.QAddOp,
        [imp.value(a.codes), imp.value(b.codes)],
        y_elem,
        name=_node_label(node),
        lhs_scale=float(a.scale.reshape(-1)[0]),
        lhs_zero_point=int(a.zero_point.reshape(-1)[0]),
        rhs_scale=float(b.scale.reshape(-1)[0]),
        rhs_zero_point=int(b.zero_point.reshape(-1)[0]),
        scale=sy,
        zero_point=zy,
        clamp=_act_clamp(imp, act, sy, zy, qmin, qmax),
    )
    _finish_chain(imp, y, act, q)
    return True


# TFLite's int8/uint8 softmax output: scale 1/256, zero point the lowest code.
_SOFTMAX_OUT_SCALE = 1.0 / 256.0


def _try_tflite_softmax(imp: _Importer, node: onnx.NodeProto, axis: int) -> bool:
    """Integer mode: `DQ(x) -> Softmax -> Q(1/256, lowest code)` (8-bit) as `nn.qsoftmax`,
    TFLite's integer softmax."""
    ref = _byte_qref(imp, node.input[0])
    if ref is None:
        return False
    chain = _output_chain(imp, node.output[0], allow_act=False)
    if chain is None:
        return False
    _, q = chain
    y_scale, y_zp, y_elem = _qparams(imp, q, 1, 2, None)
    if not isinstance(y_elem, IntegerType) or y_elem.width.data != 8:
        return False
    qmin, _ = _code_range(y_elem)
    if float(y_scale.reshape(-1)[0]) != _SOFTMAX_OUT_SCALE or int(y_zp.reshape(-1)[0]) != qmin:
        return False
    y = imp.b.op(
        nn.QSoftmaxOp,
        [imp.value(ref.codes)],
        y_elem,
        name=_node_label(node),
        input_scale=float(ref.scale.reshape(-1)[0]),
        axis=axis,
    )
    _finish_chain(imp, y, None, q)
    return True


@converts("QLinearConv", "QLinearMatMul")
def _qlinear(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    """QLinearConv / QLinearMatMul: integer MAC + requantize (same as the fused QDQ pattern)."""
    if node.op_type == "QLinearConv":
        x, xs, xz, w, ws, wz, ys, yz = node.input[:8]
        b = node.input[8] if len(node.input) > 8 else ""
    else:
        x, xs, xz, w, ws, wz, ys, yz = node.input[:8]
        b = ""
    # Rewrite as DQ/MAC/Q on synthetic names and reuse the QDQ path.
    tag = _node_label(node)
    x_elem = imp.elem(x)
    w_arr = imp.env[w]
    if not isinstance(w_arr, np.ndarray | _Codes):
        raise InputError("the weight of QLinear ops must be a constant")
    dq = []
    for name, s, z, axis in (
        (x, xs, xz, 1),
        (w, ws, wz, 0 if node.op_type == "QLinearConv" else 1),
    ):
        dq_node = helper.make_node(
            "DequantizeLinear", [name, s, z], [f"{tag}#dq_{name}"], axis=axis
        )
        imp.convert(dq_node)
        dq.append(dq_node.output[0])
    del x_elem
    if b:
        bz = f"{tag}#bias_zp"
        imp.env[bz] = np.zeros((), np.int32)
        bs_name = f"{tag}#bias_scale"
        imp.env[bs_name] = (
            imp.const(node, 1).astype(np.float32) * imp.const(node, 4).astype(np.float32)
        ).reshape(-1)
        dq_b = helper.make_node("DequantizeLinear", [b, bs_name, bz], [f"{tag}#dq_b"], axis=0)
        imp.convert(dq_b)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    op_type = "Conv" if node.op_type == "QLinearConv" else "MatMul"
    mac_out = f"{tag}#mac"
    mac = helper.make_node(
        op_type, dq + ([f"{tag}#dq_b"] if b else []), [mac_out], name=tag, **attrs
    )
    q = helper.make_node("QuantizeLinear", [mac_out, ys, yz], [node.output[0]], name=tag)
    imp._consumers[mac_out] = [q]
    for i, name in enumerate(mac.input):
        imp._consumers.setdefault(name, []).append(mac)
        del i
    if not _try_qdq_mac(imp, mac):
        raise InputError(
            f"{node.op_type} with these parameters (per-channel input scale or unequal weight "
            "zero points) is not supported"
        )
    return [imp.env[node.output[0]]]


# ---- QONNX ----------------------------------------------------------------------------------


def _qonnx_range(signed: bool, narrow: bool, bits: int) -> tuple[int, int]:
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - int(narrow)


_ROUNDING = {"ROUND": np.round, "CEIL": np.ceil, "FLOOR": np.floor}


@converts("Quant", table=QONNX_CONVERTERS)
def _qonnx_quant(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    a = _attrs(node)
    signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    mode = str(a.get("rounding_mode", "ROUND")).upper()
    scale = imp.const(node, 1).astype(np.float32)
    zp = imp.const(node, 2).astype(np.float32)
    bits_arr = imp.const(node, 3)
    if bits_arr.size != 1 or float(bits_arr) != int(bits_arr):
        raise InputError("Quant bit width must be one integer")
    bits = int(bits_arr)
    if bits == 1 and signed:
        return _bipolar(imp, node, scale)
    if not 1 <= bits <= 32 or (signed and bits < 2):
        raise InputError(f"Quant bit width {bits} has no ircomp integer format")
    if mode not in _ROUNDING:
        raise InputError(f"Quant rounding_mode {mode} is not supported")
    if np.any(zp != np.round(zp)):
        raise InputError("Quant with a non-integer zero point is not supported")
    lo, hi = _qonnx_range(signed, narrow, bits)
    elem = _signed(bits) if signed else _unsigned(bits)
    x_name = node.input[0]
    v = imp.env[x_name]
    rank = len(imp.shape(x_name))
    scale_axis, scale_list = _qonnx_axis(scale, rank)
    zp_axis, zp_list = _qonnx_axis(zp, rank)
    if isinstance(v, np.ndarray):
        y = v.astype(np.float32) / scale + zp
        y = np.clip(y, lo, hi)
        codes = _ROUNDING[mode](y).astype(np.int64)
        imp.env[x_name + "#codes"] = _Codes(codes, elem)
        axis = scale_axis if scale_axis is not None else (zp_axis or 0)
        zp_codes = np.asarray(zp_list, np.int64)
        return [
            _QRef(
                x_name + "#codes", np.asarray(scale_list, np.float32), zp_codes, axis, Float32Type()
            )
        ]
    if mode != "ROUND":
        raise InputError(f"Quant of an activation with rounding_mode {mode} is not supported")
    if np.any(zp != 0):
        raise InputError("Quant of an activation needs a zero point of 0")
    x = imp.value(x_name)
    q = imp.op(
        node,
        nn.QuantizeOp,
        [x],
        elem,
        scale=[float(s) for s in scale_list],
        axis=scale_axis if scale_axis is not None else 1,
    )
    fmt_lo, fmt_hi = _qonnx_range(signed, False, bits)
    if (lo, hi) != (fmt_lo, fmt_hi):
        q = imp.op(node, nn.ClipOp, [q], min=float(lo), max=float(hi))
    key = node.output[0] + "#codes"
    imp.env[key] = q
    return [
        _QRef(
            key,
            np.asarray(scale_list, np.float32),
            np.zeros(1, np.int64),
            scale_axis if scale_axis is not None else 1,
            nn.elem(x),
        )
    ]


def _qonnx_axis(param: np.ndarray, rank: int) -> tuple[int | None, list[float]]:
    """A QONNX scale/zero point broadcast against the input: per tensor or along one axis."""
    if param.size == 1:
        return None, [float(param.reshape(-1)[0])]
    shape = list(param.shape)
    shape = [1] * (rank - len(shape)) + shape
    axes = [i for i, d in enumerate(shape) if d != 1]
    if len(axes) != 1:
        raise InputError(f"QONNX parameter of shape {list(param.shape)} is not per-channel")
    return axes[0], [float(v) for v in param.reshape(-1)]


def _bipolar(imp: _Importer, node: onnx.NodeProto, scale: np.ndarray) -> list[Value]:
    x_name = node.input[0]
    v = imp.env[x_name]
    if not isinstance(v, np.ndarray):
        raise InputError(
            "BipolarQuant (or 1-bit signed Quant) of an activation is not supported; "
            "only constant weights"
        )
    rank = len(imp.shape(x_name))
    axis, scale_list = _qonnx_axis(scale, rank)
    y = v.astype(np.float32) / scale
    codes = np.where(y >= 0, 1, -1).astype(np.int64)
    imp.env[x_name + "#codes"] = _Codes(codes, _signed(2))
    return [
        _QRef(
            x_name + "#codes",
            np.asarray(scale_list, np.float32),
            np.zeros(1, np.int64),
            axis or 0,
            Float32Type(),
        )
    ]


@converts("BipolarQuant", table=QONNX_CONVERTERS)
def _qonnx_bipolar(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    return _bipolar(imp, node, imp.const(node, 1).astype(np.float32))


@converts("Trunc", table=QONNX_CONVERTERS)
def _qonnx_trunc(imp: _Importer, node: onnx.NodeProto) -> list[Value]:
    x = imp.env[node.input[0]]
    if not isinstance(x, np.ndarray):
        raise InputError("Trunc of an activation is not supported; only constants are folded")
    a = _attrs(node)
    scale, zp = imp.const(node, 1), imp.const(node, 2)
    out_scale, out_bits = imp.const(node, 4), imp.const(node, 6)
    signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    mode = str(a.get("rounding_mode", "FLOOR")).upper()
    y = np.round(x / scale + zp)
    trunc_scale = 2.0 ** np.round(np.log2(out_scale / scale))
    y = y / trunc_scale
    lo, hi = _qonnx_range(signed, narrow, int(out_bits))
    y = np.clip(y, lo, hi)
    y = _ROUNDING[mode](y)
    y = (y - zp / trunc_scale) * out_scale
    return [np.asarray(y, dtype=np.float32)]
