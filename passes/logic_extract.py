"""logic-extract: turn each layer of neurons over low-bit codes into truth tables (`logic.table`).

A *neuron layer* is an `nn.linear` whose input is a tensor of integer-grid codes (directly or
through one `nn.dequantize`), followed by single-use, column-local ops (requantize, quantize,
activations, per-feature add/mul/batchnorm, ...) up to the first tensor of codes of at most
`max-output-bits` bits. Output neuron j then depends only on the inputs its weight row does not
zero out (its fan-in), so it is a Boolean function of `w_in * F` input bits. The pass enumerates
that function on every input pattern with the golden interpreter's kernels and replaces the layer
by one `logic.table` (identical tables stored once), which is exact by construction.

Options: `max-inputs` bounds `w_in * F` (a table has `2^(w_in*F)` rows); `max-rows` bounds the
rows enumerated per layer; `care-data` (a .npy/.npz of inputs of @main) adds the care set, the
rows each neuron sees on that data (`logic-minimize` may then change the other rows).
Requires: static weights (`nn.weight`) in the layers. Layers it cannot map are left alone; a
layer over `max-inputs` is an error naming it, its fan-in and what to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, i1, i32
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from ircomp.dialects import logic, nn
from ircomp.dialects.base import result_shape
from ircomp.errors import InputError
from ircomp.interpreter.kernels import KERNELS
from ircomp.interpreter.kernels import Context as KernelContext
from ircomp.interpreter.values import repr_of
from ircomp.ir.program import Program
from ircomp.ir.weights import WeightStore
from ircomp.logic.network import row_codes, row_index
from ircomp.pass_manager import IrcompPass, weights_of
from ircomp.passes._common import element_type, erase_unused_weights, functions, new_weight

# Ops that act on each feature (last axis) independently; binary ops also need a constant
# other operand broadcast along the features.
_UNARY_COLUMN_OPS = (
    nn.RequantizeOp,
    nn.QuantizeOp,
    nn.DequantizeOp,
    nn.ReluOp,
    nn.ClipOp,
    nn.HardTanhOp,
    nn.LeakyReluOp,
    nn.SigmoidOp,
    nn.TanhOp,
    nn.HardSigmoidOp,
    nn.HardSwishOp,
    nn.GeluOp,
    nn.BatchNormOp,
    nn.CastOp,
)
_BINARY_COLUMN_OPS = (nn.AddOp, nn.SubOp, nn.MulOp, nn.DivOp)
MAX_INPUT_CODE_BITS = 8


@dataclass
class NeuronLayer:
    """A recognised layer: the ops from the codes `source` to the codes `result`."""

    source: SSAValue
    ops: list[Operation]
    linear: nn.LinearOp
    fanin: list[np.ndarray]  # input indices of each neuron
    name: str

    @property
    def result(self) -> SSAValue:
        return self.ops[-1].results[0]

    @property
    def width_in(self) -> int:
        width = logic.code_width(element_type(self.source))
        assert width is not None
        return width[0]

    @property
    def signed_in(self) -> bool:
        width = logic.code_width(element_type(self.source))
        assert width is not None
        return width[1]

    @property
    def max_fanin(self) -> int:
        return max((len(f) for f in self.fanin), default=0)


@dataclass(frozen=True)
class LogicExtractPass(IrcompPass):
    """Replace neuron layers over low-bit codes by truth tables (`logic.table`), exactly.

    Requires: layers of `nn.linear` with `nn.weight` weights between tensors of codes.
    Guarantees: the program computes the same codes (tables enumerated by the golden kernels).
    """

    name = "logic-extract"
    max_inputs: int = 12
    max_rows: int = 1 << 24
    max_output_bits: int = 16
    care_data: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        weights = weights_of(ctx)
        for function in functions(op):
            layers = find_layers(function, self.max_output_bits, weights)
            self._check_limits(layers)
            care = self._care_rows(op, function, layers, weights) if self.care_data else {}
            renamed: dict[SSAValue, SSAValue] = {}
            for layer in layers:
                layer.source = renamed.get(layer.source, layer.source)
                tables = enumerate_layer(layer, weights)
                renamed[layer.result] = _replace(ctx, layer, tables, care.get(layer.name))

    def _check_limits(self, layers: list[NeuronLayer]) -> None:
        problems = []
        for layer in layers:
            bits = layer.width_in * layer.max_fanin
            wide = sum(1 for f in layer.fanin if layer.width_in * len(f) > self.max_inputs)
            if wide:
                problems.append(
                    f"layer '{layer.name}': {wide} of {len(layer.fanin)} neurons have more than "
                    f"{self.max_inputs // layer.width_in} inputs of {layer.width_in} bits (up to "
                    f"{layer.max_fanin} inputs = {bits} bits)"
                )
            rows = len(layer.fanin) << bits
            if rows > self.max_rows:
                problems.append(
                    f"layer '{layer.name}': enumerating {len(layer.fanin)} neurons x 2^{bits} "
                    f"rows = {rows:,} rows exceeds max-rows={self.max_rows:,}"
                )
        if problems:
            raise InputError(
                "cannot turn these layers into truth tables:\n  "
                + "\n  ".join(problems)
                + "\nretrain with a smaller fan-in or fewer activation bits (ircomp train "
                "--fan-in/--bits), or raise logic-extract{max-inputs=..., max-rows=...} "
                "(each extra input bit doubles every table)"
            )

    def _care_rows(
        self,
        module: ModuleOp,
        function: func.FuncOp,
        layers: list[NeuronLayer],
        weights: WeightStore,
    ) -> dict[str, list[np.ndarray]]:
        """Rows each neuron of each layer addresses on the calibration data."""
        from ircomp.interpreter import run

        data = _load_care_data(self.care_data)
        seen: dict[SSAValue, list[np.ndarray]] = {layer.source: [] for layer in layers}
        for arg in function.body.block.args[:1]:
            if arg in seen:
                seen[arg].append(np.asarray(data))

        def observe(op: Operation, results: list[np.ndarray]) -> None:
            for value, array in zip(op.results, results, strict=True):
                if value in seen:
                    seen[value].append(array)

        run(Program(module, weights), [data], function=function.sym_name.data, observer=observe)
        out = {}
        for layer in layers:
            x = np.concatenate([a.reshape(-1, a.shape[-1]) for a in seen[layer.source]])
            out[layer.name] = [np.unique(row_index(x[:, f], layer.width_in)) for f in layer.fanin]
        return out


def _load_care_data(path: str) -> np.ndarray:
    file = Path(path)
    try:
        loaded = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(f"logic-extract care-data: cannot read {file}: {err}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if not loaded.files:
                raise InputError(f"logic-extract care-data: {file} holds no arrays")
            key = "x" if "x" in loaded.files else loaded.files[0]
            return loaded[key]
    return loaded


# ---- recognising layers ---------------------------------------------------------------------


def _is_codes(value: SSAValue, max_bits: int) -> bool:
    width = logic.code_width(element_type(value))
    return width is not None and width[0] <= max_bits


def _constant(value: SSAValue) -> nn.WeightOp | None:
    owner = value.owner
    return owner if isinstance(owner, nn.WeightOp) else None


def _feature_constant(value: SSAValue, features: int) -> bool:
    """A weight that broadcasts along the last axis only (scalar, [M], [1, M])."""
    if _constant(value) is None:
        return False
    shape = result_shape(value)
    return all(d == 1 for d in shape[:-1]) and (not shape or shape[-1] in (1, features))


def _column_local(op: Operation, value: SSAValue, features: int) -> bool:
    rank = len(result_shape(value))
    if isinstance(op, nn.BatchNormOp):
        return rank == 2 and op.operands[0] is value
    if isinstance(op, nn.ScaledCastOp):
        scales = op.get("scale")
        return len(scales) == 1 or op.get("axis") in (rank - 1, -1)
    if isinstance(op, _UNARY_COLUMN_OPS):
        return op.operands[0] is value and all(_constant(v) is not None for v in op.operands[1:])
    if isinstance(op, _BINARY_COLUMN_OPS):
        others = [v for v in op.operands if v is not value]
        return len(others) == 1 and _feature_constant(others[0], features)
    return False


def _single_user(value: SSAValue) -> Operation | None:
    users = {use.operation for use in value.uses}
    return users.pop() if len(users) == 1 else None


def _layer_at(
    linear: nn.LinearOp, max_output_bits: int, weights: WeightStore
) -> NeuronLayer | None:
    source = linear.input
    ops: list[Operation] = [linear]
    dequant = source.owner
    if isinstance(dequant, nn.DequantizeOp) and _is_codes(dequant.input, MAX_INPUT_CODE_BITS):
        source = dequant.input
        if _single_user(dequant.result) is not linear:
            return None
        ops.insert(0, dequant)
    if not _is_codes(source, MAX_INPUT_CODE_BITS) or len(result_shape(linear.result)) != 2:
        return None
    if _constant(linear.weight) is None or (
        linear.bias is not None and _constant(linear.bias) is None
    ):
        return None
    features = result_shape(linear.result)[-1]
    value = linear.result
    while not _is_codes(value, max_output_bits):
        user = _single_user(value)
        if user is None or not _column_local(user, value, features) or len(user.results) != 1:
            return None
        ops.append(user)
        value = user.results[0]
    weight_op = _constant(linear.weight)
    assert weight_op is not None
    w = np.asarray(weights.get(weight_op.hash.data))
    zero = linear.get("weight_zero_point") or 0
    fanin = [np.flatnonzero(row != zero) for row in w]
    name = nn.op_name(linear) or weight_op.weight_name.data.removesuffix(".weight")
    return NeuronLayer(source, ops, linear, fanin, name)


def find_layers(
    function: func.FuncOp, max_output_bits: int, weights: WeightStore
) -> list[NeuronLayer]:
    """The neuron layers of a function, in program order (see the module docstring)."""
    layers = []
    for op in function.body.block.ops:
        if isinstance(op, nn.LinearOp):
            layer = _layer_at(op, max_output_bits, weights)
            if layer is not None:
                layers.append(layer)
    return layers


# ---- enumeration ----------------------------------------------------------------------------


def _prepare_chain(layer: NeuronLayer, weights: WeightStore) -> Callable[[np.ndarray], np.ndarray]:
    """The layer's ops as one function of the source codes, run by the golden kernels."""
    ctx = KernelContext(weights)
    constants: dict[SSAValue, np.ndarray] = {}
    steps = []
    for op in layer.ops:
        for operand in op.operands:
            owner = _constant(operand)
            if owner is not None and operand not in constants:
                constants[operand] = KERNELS[nn.WeightOp](owner, ctx)()[0]
        steps.append((KERNELS[type(op)](op, ctx), op))

    def run(x: np.ndarray) -> np.ndarray:
        env = dict(constants)
        env[layer.source] = x
        for fn, op in steps:
            env.update(zip(op.results, fn(*[env[v] for v in op.operands]), strict=True))
        return env[layer.result]

    return run


def _disjoint_groups(fanin: list[np.ndarray]) -> list[list[int]]:
    """Neurons grouped so that fan-ins within a group do not overlap (one batch per group)."""
    groups: list[list[int]] = []
    used: list[set[int]] = []
    for j, inputs in enumerate(fanin):
        wanted = set(inputs.tolist())
        for group, taken in zip(groups, used, strict=True):
            if not taken & wanted:
                group.append(j)
                taken |= wanted
                break
        else:
            groups.append([j])
            used.append(wanted)
    return groups


def enumerate_layer(layer: NeuronLayer, weights: WeightStore) -> np.ndarray:
    """[M, 2^(w_in * F)] output codes of every neuron on every row (F = the layer's max)."""
    chain = _prepare_chain(layer, weights)
    width = layer.width_in
    fan_max = layer.max_fanin
    features_in = result_shape(layer.source)[-1]
    dtype = repr_of(layer.source).dtype
    tables = np.zeros((len(layer.fanin), 1 << (width * fan_max)), dtype=np.int64)
    for group in _disjoint_groups(layer.fanin):
        rows = 1 << (width * max(len(layer.fanin[j]) for j in group))
        x = np.zeros((rows, features_in), dtype=dtype)
        for j in group:
            inputs = layer.fanin[j]
            x[:, inputs] = row_codes(np.arange(rows), width, len(inputs), layer.signed_in)
        y = chain(x)
        for j in group:
            own = 1 << (width * len(layer.fanin[j]))
            low_rows = np.arange(tables.shape[1]) & (own - 1)
            tables[j] = y[:own, j][low_rows]
    return tables


# ---- rewriting ------------------------------------------------------------------------------


def _unique_tables(tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique tables in order of first use, index of each neuron's table)."""
    seen: dict[bytes, int] = {}
    index = np.zeros(len(tables), dtype=np.int32)
    for j, table in enumerate(tables):
        index[j] = seen.setdefault(table.tobytes(), len(seen))
    firsts = sorted({v: k for k, v in reversed(list(enumerate(index)))}.items())
    return tables[[j for _, j in firsts]], index


def _replace(
    ctx: Context, layer: NeuronLayer, tables: np.ndarray, care_rows: list[np.ndarray] | None
) -> SSAValue:
    """Put the `logic.table` in place of the layer; returns its result."""
    unique, index = _unique_tables(tables)
    fanin = np.full((len(layer.fanin), max(layer.max_fanin, 1)), -1, dtype=np.int32)
    for j, inputs in enumerate(layer.fanin):
        fanin[j, : len(inputs)] = inputs
    out_elem = element_type(layer.result)
    weight_ops = [
        new_weight(ctx, f"{layer.name}.fanin", fanin, i32),
        new_weight(
            ctx, f"{layer.name}.tables", unique.astype(repr_of(layer.result).dtype), out_elem
        ),
        new_weight(ctx, f"{layer.name}.table_index", index, i32),
    ]
    if care_rows is not None:
        care = np.zeros(unique.shape, dtype=bool)
        for j, rows in enumerate(care_rows):
            care[index[j], rows] = True
        weight_ops.append(new_weight(ctx, f"{layer.name}.care", care, i1))
    table = nn.build(
        logic.TableOp,
        [layer.source, *(w.result for w in weight_ops)],
        layer.result.type,
    )
    table.attributes[nn.NAME_ATTR] = StringAttr(layer.name)
    Rewriter.insert_op([*weight_ops, table], InsertPoint.after(layer.ops[-1]))
    layer.result.replace_all_uses_with(table.result)
    dead_operands = [v for op in layer.ops for v in op.operands]
    for op in reversed(layer.ops):
        Rewriter.erase_op(op)
    erase_unused_weights(dead_operands)
    return table.result


__all__ = ["LogicExtractPass", "NeuronLayer", "enumerate_layer", "find_layers"]
