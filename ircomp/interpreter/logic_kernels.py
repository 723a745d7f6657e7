"""Kernels of the `logic` dialect (`spec/logic.md`): table lookups, LUT-network evaluation and
thresholded constant-coefficient sums."""

from __future__ import annotations

import numpy as np

from ircomp.dialects import logic, nn
from ircomp.errors import InputError
from ircomp.interpreter.kernels import Context, Fn, kernel
from ircomp.interpreter.values import repr_of
from ircomp.ir.weights import WeightStore
from ircomp.logic.network import LutNetwork, bits_to_codes, codes_to_bits, row_index


def _weight_array(op: logic.LogicOp, operand: int, store: WeightStore) -> np.ndarray:
    """The stored value of a weight operand (logic tables must be constants)."""
    owner = op.operands[operand].owner
    if not isinstance(owner, nn.WeightOp):
        raise InputError(f"{op.name}: operand {operand} must be an nn.weight, got {owner.name}")
    return np.asarray(store.get(owner.hash.data))


@kernel(logic.TableOp)
def table(op: logic.TableOp, ctx: Context) -> Fn:
    width_in, _ = op.widths()
    fanin = _checked_fanin(op, ctx.weights)
    tables = _weight_array(op, 2, ctx.weights)
    table_index = _weight_array(op, 3, ctx.weights).astype(np.int64)
    if table_index.size and (table_index.min() < 0 or table_index.max() >= len(tables)):
        raise InputError(f"{op.name}: table_index must be in 0..{len(tables) - 1}")
    dtype = repr_of(op.result).dtype
    lookup = tables.astype(dtype)[table_index]  # [M, R]
    slots = np.where(fanin < 0, 0, fanin)
    used = fanin >= 0
    neurons = np.arange(len(fanin))

    def run(x: np.ndarray, *_weights: np.ndarray) -> tuple[np.ndarray]:
        codes = np.where(used, x[..., slots], 0)  # [..., M, F]
        rows = row_index(codes, width_in)
        return (lookup[neurons, rows],)

    return run


def lut_network_of(op: logic.LutNetworkOp, store: WeightStore) -> LutNetwork:
    """The LUT network a `logic.lut_network` op holds."""
    width_in, _ = op.widths()
    inputs = _weight_array(op, 1, store)
    init = LutNetwork.init_from_halves(_weight_array(op, 2, store))
    outputs = _weight_array(op, 3, store)
    width = op.input.type.get_shape()[-1]  # type: ignore[union-attr]
    try:
        return LutNetwork(width * width_in, inputs, init, outputs)
    except ValueError as err:
        raise InputError(f"{op.name}: {err}") from None


@kernel(logic.LutNetworkOp)
def lut_network(op: logic.LutNetworkOp, ctx: Context) -> Fn:
    width_in, width_out = op.widths()
    network = lut_network_of(op, ctx.weights)
    rep = repr_of(op.result)
    signed = rep.code_range()[0] < 0

    def run(x: np.ndarray, *_weights: np.ndarray) -> tuple[np.ndarray]:
        lead = x.shape[:-1]
        bits = codes_to_bits(x.reshape(-1, x.shape[-1]), width_in)
        out = network.evaluate(bits)
        codes = bits_to_codes(out, width_out, signed).astype(rep.dtype)
        return (codes.reshape(*lead, -1),)

    return run


def _checked_fanin(op: logic.LogicOp, store: WeightStore) -> np.ndarray:
    """The fan-in indices of a table or threshold op, checked against the input's width."""
    fanin = _weight_array(op, 1, store).astype(np.int64)
    width = op.operands[0].type.get_shape()[-1]  # type: ignore[attr-defined]
    if fanin.size and (fanin.min() < -1 or (width >= 0 and fanin.max() >= width)):
        raise InputError(f"{op.name}: fan-in indices must be -1 or in 0..{width - 1}")
    return fanin


def threshold_counts(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """[..., M] accumulators, [M, T] thresholds -> [..., M] count of thresholds each reaches."""
    ordered = np.sort(np.asarray(thresholds, dtype=np.int64), axis=-1)
    counts = np.zeros(acc.shape, dtype=np.int64)
    for j, row in enumerate(ordered):
        counts[..., j] = np.searchsorted(row, acc[..., j], side="right")
    return counts


@kernel(logic.ThresholdOp)
def threshold(op: logic.ThresholdOp, ctx: Context) -> Fn:
    fanin = _checked_fanin(op, ctx.weights)
    weights = _weight_array(op, 2, ctx.weights).astype(np.int64)
    thresholds = _weight_array(op, 3, ctx.weights).astype(np.int64)
    base = _weight_array(op, 4, ctx.weights).astype(np.int64)
    rep = repr_of(op.result)
    used = fanin >= 0
    slots = np.where(used, fanin, 0)
    weights = np.where(used, weights, 0)

    def run(x: np.ndarray, *_weights: np.ndarray) -> tuple[np.ndarray]:
        codes = x.astype(np.int64)[..., slots]  # [..., M, F]
        acc = (codes * weights).sum(axis=-1)
        return (rep.wrap(base + threshold_counts(acc, thresholds)),)

    return run
