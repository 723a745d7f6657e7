"""logic-extract: turn each layer of neurons over low-bit codes into logic: truth tables
(`logic.table`) or, for integer layers too wide for a table, thresholded constant-coefficient sums
(`logic.threshold`).

A *neuron layer* is an `nn.linear` whose input is a tensor of integer-grid codes (directly or
through one `nn.dequantize`), followed by single-use, column-local ops (requantize, quantize,
activations, per-feature add/mul/batchnorm, ...) up to the first tensor of codes of at most
`max-output-bits` bits. Output neuron j then depends only on the inputs its weight row does not
zero out (its fan-in), so it is a Boolean function of `w_in * F` input bits. The pass enumerates
that function on every input pattern with the golden interpreter's kernels and replaces the layer
by one `logic.table` (identical tables stored once), which is exact by construction.

A layer whose neurons have more than `max-inputs` input bits cannot be a table. With
`decompose=threshold` (the default) an **integer** layer (codes -> integer `nn.linear`, no
`nn.dequantize` in front) becomes a `logic.threshold` instead (the FINN MultiThreshold idea):
neuron j is `base_j + #{t : acc_j >= T_jt}` with `acc_j = sum_k W_jk x_k` the exact integer sum
of its fan-in codes times its weights (minus the weight zero point; the input zero point and the
bias move into the thresholds). The thresholds come from enumerating the column-local chain after
the sum (bias, requantize, clamp, activations) with the golden kernels on every accumulator value
the neuron can reach, so the realization is exact; a chain that is not monotone in the
accumulator (a neuron whose output falls then rises), an accumulator that would wrap, or a float
sum (`dequantize -> float linear`: float sums cannot be split exactly, their rounding depends on
the order of the additions) cannot be thresholded and stays an error naming the layer and why.
With `decompose=none` every layer over the limit is an error.

`realize` picks the realization of every layer: `table` (default; thresholds only over the limit,
as `decompose` says), `threshold` (every recognised layer; an error where impossible), `auto`
(threshold exactly when a neuron is over `max-inputs`, else table). Each new op records what it
got in the discardable attribute `logic.realization` ("table" or "threshold").

Options: `max-inputs` bounds `w_in * F` (a table has `2^(w_in*F)` rows); `max-rows` bounds the
rows enumerated per layer (table rows, or accumulator values for thresholds); `care-data` (a
.npy/.npz of inputs of @main) adds the care set, the rows each neuron sees on that data
(`logic-minimize` may then change the other rows; threshold layers have none).
Requires: static weights (`nn.weight`) in the layers. Layers it cannot map are left alone; a
layer over `max-inputs` that cannot be thresholded is an error naming it, its fan-in and what to
change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerType, ModuleOp, StringAttr, i1, i32
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from ircomp.dialects import logic, nn
from ircomp.dialects.base import result_shape
from ircomp.errors import InputError, IrcompError
from ircomp.interpreter.kernels import KERNELS
from ircomp.interpreter.kernels import Context as KernelContext
from ircomp.interpreter.logic_kernels import threshold_counts
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
REALIZATIONS = ("table", "threshold", "auto")
DECOMPOSITIONS = ("threshold", "none")
REALIZATION_ATTR = "logic.realization"
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
# Accumulator values evaluated per batch of the post-sum chain.
CHAIN_BATCH_VALUES = 1 << 22


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
    """Replace neuron layers over low-bit codes by truth tables (`logic.table`) or, for integer
    layers over `max-inputs`, by thresholded constant-coefficient sums (`logic.threshold`),
    exactly.

    Requires: layers of `nn.linear` with `nn.weight` weights between tensors of codes.
    Guarantees: the program computes the same codes (tables enumerated by the golden kernels,
    thresholds from the golden kernels on every reachable accumulator value).
    """

    name = "logic-extract"
    max_inputs: int = 12
    max_rows: int = 1 << 24
    max_output_bits: int = 16
    care_data: str = ""
    decompose: str = "threshold"
    realize: str = "table"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self._check_options()
        weights = weights_of(ctx)
        for function in functions(op):
            layers = find_layers(function, self.max_output_bits, weights)
            plans = self._plan(layers, weights)
            table_layers = [
                layer for layer, plan in zip(layers, plans, strict=True) if plan is None
            ]
            care = self._care_rows(op, function, table_layers, weights) if self.care_data else {}
            renamed: dict[SSAValue, SSAValue] = {}
            for layer, plan in zip(layers, plans, strict=True):
                layer.source = renamed.get(layer.source, layer.source)
                if plan is None:
                    tables = enumerate_layer(layer, weights)
                    new = _replace(ctx, layer, tables, care.get(layer.name))
                else:
                    new = _replace_threshold(ctx, layer, plan)
                renamed[layer.result] = new

    def _check_options(self) -> None:
        if self.realize not in REALIZATIONS:
            raise InputError(
                f"logic-extract realize={self.realize!r}: use one of {', '.join(REALIZATIONS)}"
            )
        if self.decompose not in DECOMPOSITIONS:
            raise InputError(
                f"logic-extract decompose={self.decompose!r}: use one of "
                f"{', '.join(DECOMPOSITIONS)}"
            )
        if self.realize == "auto" and self.decompose == "none":
            raise InputError(
                "logic-extract realize=auto realizes the layers over max-inputs as thresholds, "
                "which contradicts decompose=none; use realize=table with decompose=none"
            )

    def _wants_threshold(self, over: bool) -> bool:
        if self.realize == "threshold":
            return True
        return over and (self.realize == "auto" or self.decompose == "threshold")

    def _plan(self, layers: list[NeuronLayer], weights: WeightStore) -> list[ThresholdLayer | None]:
        """The realization of each layer (None: a table); InputError listing every layer that
        has none."""
        problems = []
        plans: list[ThresholdLayer | None] = []
        for layer in layers:
            bits = layer.width_in * layer.max_fanin
            wide = sum(1 for f in layer.fanin if layer.width_in * len(f) > self.max_inputs)
            over = (
                f"layer '{layer.name}': {wide} of {len(layer.fanin)} neurons have more than "
                f"{self.max_inputs // layer.width_in} inputs of {layer.width_in} bits (up to "
                f"{layer.max_fanin} inputs = {bits} bits)"
            )
            if self._wants_threshold(bool(wide)):
                try:
                    plans.append(threshold_layer(layer, weights, self.max_rows))
                    continue
                except NotThresholdable as err:
                    why = f"not realizable as thresholds: {err}"
                    problems.append(
                        f"{over}, and {why}" if wide else f"layer '{layer.name}': {why}"
                    )
                    plans.append(None)
                    continue
            plans.append(None)
            if wide:
                problems.append(over)
            rows = len(layer.fanin) << bits
            if rows > self.max_rows:
                problems.append(
                    f"layer '{layer.name}': enumerating {len(layer.fanin)} neurons x 2^{bits} "
                    f"rows = {rows:,} rows exceeds max-rows={self.max_rows:,}"
                )
        if problems:
            hints = []
            if any(" neurons have more than " in p or "max-rows" in p for p in problems):
                hints.append(
                    "retrain with a smaller fan-in or fewer activation bits (ircomp train "
                    "--fan-in/--bits), or raise logic-extract{max-inputs=..., max-rows=...} "
                    "(ircomp build: --max-inputs, --max-rows) "
                    "(each extra input bit doubles every table)"
                )
            if self.decompose == "none" and self.realize == "table":
                hints.append(
                    "or use decompose=threshold for integer layers (an exact sum of constant "
                    "multiples compared against thresholds)"
                )
            if self.realize == "threshold":
                hints.append("realize=auto keeps tables where they fit")
            raise InputError(
                "cannot turn these layers into logic (truth tables or thresholds):\n  "
                + "\n  ".join(problems)
                + "\n"
                + ", ".join(hints)
            )
        return plans

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


def _prepare_chain(
    ops: list[Operation], source: SSAValue, result: SSAValue, weights: WeightStore
) -> Callable[[np.ndarray], np.ndarray]:
    """`ops` as one function from `source` to `result`, run by the golden kernels."""
    ctx = KernelContext(weights)
    constants: dict[SSAValue, np.ndarray] = {}
    steps = []
    for op in ops:
        for operand in op.operands:
            owner = _constant(operand)
            if owner is not None and operand not in constants:
                constants[operand] = KERNELS[nn.WeightOp](owner, ctx)()[0]
        steps.append((KERNELS[type(op)](op, ctx), op))

    def run(x: np.ndarray) -> np.ndarray:
        env = dict(constants)
        env[source] = x
        for fn, op in steps:
            env.update(zip(op.results, fn(*[env[v] for v in op.operands]), strict=True))
        return env[result]

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
    chain = _prepare_chain(layer.ops, layer.source, layer.result, weights)
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


# ---- thresholds -----------------------------------------------------------------------------


class NotThresholdable(Exception):
    """Why a layer cannot be realized as thresholds (becomes part of an InputError)."""


@dataclass(frozen=True)
class ThresholdLayer:
    """The operands of a `logic.threshold` for a layer (see `threshold_layer`)."""

    fanin: np.ndarray  # int32 [M, F], -1 = unused slot
    weights: np.ndarray  # int64 [M, F], 0 on unused slots
    thresholds: np.ndarray  # int64 [M, T], ascending per neuron, INT32_MAX = never reached
    base: np.ndarray  # int64 [M], the output code below the first threshold

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """[n, N] input codes -> [n, M] counts above the base (the op's semantics, no wrap)."""
        codes = np.where(self.fanin >= 0, x.astype(np.int64)[:, np.maximum(self.fanin, 0)], 0)
        return threshold_counts((codes * self.weights).sum(axis=-1), self.thresholds)


def _code_range(value: SSAValue) -> tuple[int, int]:
    low, high = repr_of(value).code_range()
    return int(low), int(high)


def _sum_range(weights: np.ndarray, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the least and largest `sum_k weights[k] * x_k` over codes x_k in [low, high]."""
    at_low, at_high = weights * low, weights * high
    return np.minimum(at_low, at_high).sum(axis=-1), np.maximum(at_low, at_high).sum(axis=-1)


def _effective_weights(layer: NeuronLayer, weights: WeightStore) -> np.ndarray:
    """[M, F] integer weights (minus the weight zero point) of each neuron's fan-in."""
    linear = layer.linear
    if isinstance(layer.ops[0], nn.DequantizeOp):
        raise NotThresholdable(
            "its sum is in floating point (nn.dequantize -> float nn.linear), and float sums "
            "cannot be split exactly (their rounding depends on the order of the additions); "
            "only a truth table is exact (or quantize the layer to an integer MAC)"
        )
    for what, value in (("weights", linear.weight), ("sum", linear.result)):
        if logic.code_width(element_type(value)) is None:
            raise NotThresholdable(
                f"its {what} are {element_type(value)}, not integer or fixed-point codes"
            )
    weight_op = _constant(linear.weight)
    assert weight_op is not None
    w = np.asarray(weights.get(weight_op.hash.data)).astype(np.int64)
    w = w - int(linear.get("weight_zero_point") or 0)
    out = np.zeros((len(layer.fanin), max(layer.max_fanin, 1)), dtype=np.int64)
    for j, inputs in enumerate(layer.fanin):
        out[j, : len(inputs)] = w[j, inputs]
    if out.size and np.abs(out).max() > INT32_MAX:
        raise NotThresholdable("its weights minus their zero point do not fit 32 bits")
    return out


def _chain_outputs(
    layer: NeuronLayer, weights: WeightStore, low: np.ndarray, high: np.ndarray
) -> list[np.ndarray]:
    """Per neuron j, the layer's output codes for accumulators `low[j] .. high[j]` (the values
    of the linear's result), computed by the golden kernels of the ops after the linear."""
    after = layer.ops[layer.ops.index(layer.linear) + 1 :]
    start = layer.linear.result
    chain = _prepare_chain(after, start, layer.result, weights) if after else None
    dtype = repr_of(start).dtype
    span = int((high - low).max()) + 1 if len(low) else 0
    batch = max(1, CHAIN_BATCH_VALUES // max(len(low), 1))
    pieces = []
    for first in range(0, span, batch):
        offsets = np.arange(first, min(first + batch, span), dtype=np.int64)
        acc = np.minimum(low[None, :] + offsets[:, None], high[None, :]).astype(dtype)
        pieces.append(np.asarray(chain(acc) if chain else acc).astype(np.int64))
    values = np.concatenate(pieces) if pieces else np.zeros((0, len(low)), np.int64)
    return [values[: int(high[j] - low[j]) + 1, j] for j in range(len(low))]


def threshold_layer(layer: NeuronLayer, weights: WeightStore, max_values: int) -> ThresholdLayer:
    """The exact `logic.threshold` of an integer layer, or NotThresholdable saying why not.

    Neuron j's raw sum `s = sum_k W_jk x_k` ranges over [lo_j, hi_j] (input codes in their
    format's range); the linear's value is `s - x_zp * sum_k W_jk + bias_j`. The chain after the
    linear is evaluated on every such value; when it is non-increasing in `s`, the neuron's
    weights are negated (the sum becomes `-s`) so that it is non-decreasing; the thresholds are
    the first sums reaching each next output code.
    """
    w = _effective_weights(layer, weights)
    linear = layer.linear
    low, high = _code_range(layer.source)
    lo, hi = _sum_range(w, low, high)
    total = int((hi - lo + 1).sum())
    if total > max_values:
        raise NotThresholdable(
            f"enumerating its accumulator ranges ({total:,} values) exceeds max-rows={max_values:,}"
        )
    bias = np.zeros(len(w), dtype=np.int64)
    if linear.bias is not None:
        bias_op = _constant(linear.bias)
        assert bias_op is not None
        bias = np.broadcast_to(
            np.asarray(weights.get(bias_op.hash.data)).astype(np.int64).reshape(-1), bias.shape
        )
    offset = bias - int(linear.get("input_zero_point") or 0) * w.sum(axis=-1)
    acc_low, acc_high = _code_range(linear.result)
    bad = np.flatnonzero((lo + offset < acc_low) | (hi + offset > acc_high))
    if bad.size:
        j = int(bad[0])
        raise NotThresholdable(
            f"neuron {j}'s accumulator reaches [{lo[j] + offset[j]}, {hi[j] + offset[j]}], "
            f"beyond its {element_type(linear.result)} result (the sum would wrap)"
        )
    if lo.min(initial=0) <= INT32_MIN or hi.max(initial=0) >= INT32_MAX:
        raise NotThresholdable("its sums do not fit the i32 thresholds")
    outputs = _chain_outputs(layer, weights, lo + offset, hi + offset)
    fanin = np.full(w.shape, -1, dtype=np.int32)
    for j, inputs in enumerate(layer.fanin):
        fanin[j, : len(inputs)] = inputs
    steps: list[np.ndarray] = []
    base = np.zeros(len(w), dtype=np.int64)
    for j, y in enumerate(outputs):
        diff = np.diff(y)
        start = int(lo[j])
        if np.any(diff < 0):
            if np.any(diff > 0):
                rise, fall = int(np.argmax(diff > 0)), int(np.argmax(diff < 0))
                raise NotThresholdable(
                    f"neuron {j}'s output is not monotone in its accumulator (the chain after "
                    f"the sum rises at sum {start + rise} and falls at sum {start + fall}), so "
                    "no set of thresholds gives it"
                )
            y, w[j], start = y[::-1], -w[j], -int(hi[j])
        base[j] = y[0]
        levels = base[j] + np.arange(1, int(y[-1] - y[0]) + 1)
        steps.append(start + np.searchsorted(y, levels, side="left"))
    width = max((len(t) for t in steps), default=0) or 1
    thresholds = np.full((len(w), width), INT32_MAX, dtype=np.int64)
    for j, t in enumerate(steps):
        thresholds[j, : len(t)] = t
    plan = ThresholdLayer(fanin, w, thresholds, base)
    _spot_check(layer, weights, plan)
    return plan


def _spot_check(layer: NeuronLayer, weights: WeightStore, plan: ThresholdLayer) -> None:
    """The thresholds against the layer's golden chain on random inputs and the extremes: the
    derivation is exact by construction, so a difference is a bug in ircomp."""
    rng = np.random.default_rng(0)
    low, high = _code_range(layer.source)
    features = result_shape(layer.source)[-1]
    x = rng.integers(low, high + 1, (64, features))
    x[0], x[1] = low, high
    rep = repr_of(layer.result)
    expected = _prepare_chain(layer.ops, layer.source, layer.result, weights)(
        x.astype(repr_of(layer.source).dtype)
    )
    got = rep.wrap(plan.base + plan.evaluate(x))
    if not np.array_equal(np.asarray(expected).astype(np.int64), got.astype(np.int64)):
        raise IrcompError(
            f"logic-extract: the thresholds of layer '{layer.name}' differ from the layer on "
            "test inputs; this is a bug in ircomp"
        )


def _narrow_int(values: np.ndarray) -> tuple[np.ndarray, IntegerType]:
    """`values` in the narrowest of i8, i16, i32 that holds them (store dtype, type)."""
    for bits, dtype in ((8, np.int8), (16, np.int16)):
        if values.size == 0 or (
            values.min() >= -(1 << (bits - 1)) and values.max() < 1 << (bits - 1)
        ):
            return values.astype(dtype), IntegerType(bits)
    return values.astype(np.int32), IntegerType(32)  # |values| < 2^31: checked when planned


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
    return _swap(layer, weight_ops, table, "table")


def _replace_threshold(ctx: Context, layer: NeuronLayer, plan: ThresholdLayer) -> SSAValue:
    """Put the `logic.threshold` in place of the layer; returns its result."""
    weights, weight_type = _narrow_int(plan.weights)
    rep = repr_of(layer.result)
    weight_ops = [
        new_weight(ctx, f"{layer.name}.fanin", plan.fanin.astype(np.int32), i32),
        new_weight(ctx, f"{layer.name}.weights", weights, weight_type),
        new_weight(ctx, f"{layer.name}.thresholds", plan.thresholds.astype(np.int32), i32),
        new_weight(
            ctx, f"{layer.name}.base", plan.base.astype(rep.dtype), element_type(layer.result)
        ),
    ]
    op = nn.build(
        logic.ThresholdOp, [layer.source, *(w.result for w in weight_ops)], layer.result.type
    )
    return _swap(layer, weight_ops, op, "threshold")


def _swap(
    layer: NeuronLayer, weight_ops: list[nn.WeightOp], new: Operation, realization: str
) -> SSAValue:
    """Insert `new` (after its weights) in place of the layer's ops, which are erased."""
    new.attributes[nn.NAME_ATTR] = StringAttr(layer.name)
    new.attributes[REALIZATION_ATTR] = StringAttr(realization)
    Rewriter.insert_op([*weight_ops, new], InsertPoint.after(layer.ops[-1]))
    layer.result.replace_all_uses_with(new.results[0])
    dead_operands = [v for op in layer.ops for v in op.operands]
    for op in reversed(layer.ops):
        Rewriter.erase_op(op)
    erase_unused_weights(dead_operands)
    return new.results[0]


__all__ = [
    "LogicExtractPass",
    "NeuronLayer",
    "NotThresholdable",
    "ThresholdLayer",
    "enumerate_layer",
    "find_layers",
    "threshold_layer",
]
