"""Export a trained `LogicNet` as an integer-exact network: to the IR, to QONNX and to QDQ ONNX.

**Folding** (`fold_network`). BatchNorm and the activation scales are folded into each neuron,
whose function of its F input codes is then written with integer weights ``W`` (``i8`` or
``i16``), an ``i32`` bias ``B`` and one requantize multiplier ``M = float32(1/K)``:

* relu / hardtanh: ``code = clamp(round_half_even(float32(W·x + B) * M), lo, hi)``;
* binary / bipolar: ``bit = clamp(W·x + B, 0, 1)`` (scale 1), an exact integer comparison.

``W = round(K·v)``, ``B = round(K·d)`` where ``v·x + d`` is the neuron's real pre-activation over
its output step. K (odd, so ``(W·x + B)/K`` is never a rounding tie and float evaluations of the
same network round the same way) grows until the integer neuron equals the torch neuron on
*every* input combination of its fan-in (2^(β·F) rows, enumerated through the torch module
itself), so the exported network computes exactly the fake-quantized torch model's codes. Neurons
with more than `max_table_bits` input bits are matched on the input rows seen in calibration
data instead (``exhaustive = False``). A bipolar layer's ±1 outputs are exported as bits b and
the next layer reads ``x = 2b - 1`` (its weights and bias absorb the rewrite).

**IR** (`to_program`): ``nn.quantize`` to ``ui<β_in>``; per layer ``nn.linear`` (integer
weights zero outside each neuron's fan-in, ``i32`` bias and accumulator) and ``nn.requantize
{mode = "onnx", scale = [per neuron], axis = 1, clamp = [lo, hi]}`` to ``ui<β>`` (relu, binary,
bipolar) or ``i<β>`` (hardtanh). Op names are the torch module paths. The function returns the
last layer's codes; the prediction is their argmax (ties: the lowest index).

The ONNX writers (QONNX and QDQ) of the same integer network are in `logicnet_onnx.py`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from xdsl.dialects.builtin import IntegerType, Signedness

from ircomp.dialects import nn as irnn
from ircomp.errors import InputError
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program
from ircomp.numerics import quantize_linear
from ircomp.train.logicnet import ActQuant, InputQuant, LogicLayer, LogicNet

__all__ = [
    "FoldedLayer",
    "FoldedNetwork",
    "fold_network",
    "interpreter_predictions",
    "to_program",
]

WEIGHT_LIMIT = 2**15 - 1  # i16
ACC_LIMIT = 2**22  # |acc| / K then rounds the same in float32 (onnx requantize, ONNX float paths)


@dataclass
class FoldedLayer:
    """One layer as integers: ``acc = W @ x + B`` (int64 math), then requantize or step."""

    name: str  # torch module path, e.g. "layers.0"
    activation: str
    bits: int
    weight: np.ndarray  # int64 [out, in], zero outside each neuron's fan-in
    bias: np.ndarray  # int64 [out]
    divisor: np.ndarray  # int64 [out]: K, the requantize multiplier is float32(1/K)
    fan_in: np.ndarray  # int64 [out, F]
    lo: int
    hi: int
    in_bits: int
    in_signed: bool
    in_code_scale: float  # real value of one input code step in the ONNX graphs
    out_code_scale: float  # real value of one output code step (1 for bits)
    mismatched_rows: np.ndarray  # int64 [out]: truth-table rows the integer neuron gets wrong
    rows_checked: int  # rows per neuron compared (2^(β·F) when exhaustive)
    exhaustive: bool

    @property
    def signed(self) -> bool:
        return self.activation == "hardtanh"

    @property
    def scale(self) -> np.ndarray:
        """Requantize multipliers, float32 [out] (1 for binary/bipolar)."""
        return (1.0 / self.divisor.astype(np.float64)).astype(np.float32)

    @property
    def weight_bits(self) -> int:
        """Smallest two's complement width (>= 2) holding every weight."""
        top = int(np.abs(self.weight).max(initial=0))
        return max(2, top.bit_length() + 1)

    @property
    def weight_width(self) -> int:
        return 8 if self.weight_bits <= 8 else 16

    @property
    def table_bits(self) -> int:
        return self.in_bits * int(self.fan_in.shape[1])

    @property
    def exact(self) -> bool:
        return not self.mismatched_rows.any()

    def ir_format(self) -> IntegerType:
        if self.signed:
            return IntegerType(self.bits)
        return IntegerType(self.bits, Signedness.UNSIGNED)

    def forward(self, codes: np.ndarray) -> np.ndarray:
        """Reference numpy evaluation (int64 accumulate, float32 multiply, half-even)."""
        acc = codes.astype(np.int64) @ self.weight.T + self.bias
        if self.activation in ("binary", "bipolar"):
            return np.clip(acc, 0, 1)
        y = np.rint(acc.astype(np.float32) * self.scale[None, :])
        return np.clip(y, self.lo, self.hi).astype(np.int64)


@dataclass
class FoldedNetwork:
    """The integer network a `LogicNet` exports to (see the module docstring)."""

    in_features: int
    input_bits: int
    input_scale: float
    layers: list[FoldedLayer]
    config: dict[str, Any] = field(default_factory=dict)

    def input_codes(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(len(x), -1)
        codes = quantize_linear(x, self.input_scale, 0, qmin=0, qmax=2**self.input_bits - 1)
        return np.asarray(codes, np.int64)

    def forward_codes(self, x: np.ndarray) -> np.ndarray:
        """Output codes [N, classes] of the integer network, in plain numpy."""
        h = self.input_codes(x)
        for layer in self.layers:
            h = layer.forward(h)
        return h

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.forward_codes(x), axis=1)

    @property
    def exact(self) -> bool:
        return all(layer.exact for layer in self.layers)

    def summary(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            "layers": [
                {
                    "name": layer.name,
                    "activation": layer.activation,
                    "outputs": int(layer.weight.shape[0]),
                    "out_format": str(layer.ir_format()),
                    "fan_in": int(layer.fan_in.shape[1]),
                    "table_bits": layer.table_bits,
                    "weight_format": f"i{layer.weight_width}",
                    "weight_bits_needed": layer.weight_bits,
                    "max_divisor": int(layer.divisor.max()),
                    "exhaustive": layer.exhaustive,
                    "rows_checked_per_neuron": layer.rows_checked,
                    "mismatched_rows": int(layer.mismatched_rows.sum()),
                }
                for layer in self.layers
            ],
        }


# --------------------------------------------------------------------------------------------
# folding


def _code_values(bits: int, signed: bool) -> np.ndarray:
    if signed:
        return np.arange(-(2 ** (bits - 1)), 2 ** (bits - 1), dtype=np.int64)
    return np.arange(0, 2**bits, dtype=np.int64)


def _all_rows(values: np.ndarray, fan_in: int) -> np.ndarray:
    """Every combination of `fan_in` codes from `values`: [len(values)^fan_in, fan_in]."""
    return np.array(list(itertools.product(values, repeat=fan_in)), dtype=np.int64).reshape(
        -1, fan_in
    )


def _divisors(limit: float) -> Iterator[int]:
    """Odd K = 1, 3, 5, ... then growing ~15% a step, up to `limit`."""
    k = 1
    while k <= limit:
        yield k
        k = k + 2 if k < 25 else int(k * 1.15) | 1


def _bias_interval(
    acc0: np.ndarray, target: np.ndarray, k: int, lo: int, hi: int
) -> tuple[int, int]:
    """Integer biases B with round((acc0 + B) / k) clamped to [lo, hi] equal to `target` on
    every row (k odd: (acc0 + B) / k is never a tie). Empty when the first exceeds the second."""
    # Row r needs k*(t - 1/2) < acc0 + B < k*(t + 1/2), open at the clamped ends.
    lower = np.where(target > lo, np.floor(k * (target - 0.5) - acc0) + 1, -np.inf)
    upper = np.where(target < hi, np.ceil(k * (target + 0.5) - acc0) - 1, np.inf)
    b_lo, b_hi = float(lower.max(initial=-np.inf)), float(upper.min(initial=np.inf))
    b_lo = b_lo if np.isfinite(b_lo) else -float(ACC_LIMIT)
    b_hi = b_hi if np.isfinite(b_hi) else float(ACC_LIMIT)
    return int(b_lo), int(b_hi)


def _requantize_rows(acc: np.ndarray, k: int, lo: int, hi: int) -> np.ndarray:
    return np.clip(np.rint(acc.astype(np.float32) * np.float32(1.0 / k)), lo, hi)


def _fit_multibit(
    x: np.ndarray, v: np.ndarray, d: float, target: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, int, int, int]:
    """(W, B, K, mismatches) with clamp(rint(f32(x@W + B) * f32(1/K))) == target if possible.

    For each odd K, W = round(K v) and B is the integer in the feasible interval nearest to
    round(K d); the result is checked with the float32 arithmetic of `nn.requantize`."""
    vmax = float(np.abs(v).max(initial=0.0))
    span = abs(d) + float(np.abs(v).sum()) * float(np.abs(x).max(initial=0)) + 1.0
    limit = min(WEIGHT_LIMIT / vmax if vmax > 0 else WEIGHT_LIMIT, ACC_LIMIT / span)
    best: tuple[np.ndarray, int, int, int] | None = None
    for k in _divisors(max(1.0, limit)):
        w = np.rint(k * v).astype(np.int64)
        acc0 = x @ w
        b = int(np.rint(k * d))
        b_lo, b_hi = _bias_interval(acc0, target, k, lo, hi)
        if b_lo <= b_hi:
            b = min(max(b, b_lo), b_hi)
        bad = int((_requantize_rows(acc0 + b, k, lo, hi) != target).sum())
        if best is None or bad < best[3]:
            best = (w, b, k, bad)
        if bad == 0:
            break
    assert best is not None
    return best


def _fit_step(x: np.ndarray, v: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(W, B, mismatches) with clamp(x@W + B, 0, 1) == target (a threshold) if possible."""
    vmax = float(np.abs(v).max(initial=0.0))
    if vmax == 0.0:
        ones = int(target.sum())
        b = 1 if ones * 2 >= len(target) else 0
        return np.zeros_like(v, dtype=np.int64), b, int((target != b).sum())
    best: tuple[np.ndarray, int, int] | None = None
    for k in _divisors(WEIGHT_LIMIT):
        w = np.rint(k * v / vmax).astype(np.int64)
        acc = x @ w
        on, off = acc[target == 1], acc[target == 0]
        if on.size == 0:
            t = int(acc.max()) + 1
        elif off.size == 0:
            t = int(acc.min())
        elif off.max() < on.min():
            t = int(on.min())
        else:
            # Not separable at this K: the cut point with the fewest rows wrong.
            cuts = np.unique(acc)
            off_s, on_s = np.sort(off), np.sort(on)
            errs = (len(off_s) - np.searchsorted(off_s, cuts)) + np.searchsorted(on_s, cuts)
            t = int(cuts[int(np.argmin(errs))])
        bad = int(((acc >= t).astype(np.int64) != target).sum())
        if best is None or bad < best[2]:
            best = (w, 1 - t, bad)
        if bad == 0:
            break
    assert best is not None
    return best


def _input_values(prev: ActQuant | InputQuant, codes: torch.Tensor) -> torch.Tensor:
    """What the torch model feeds the next layer for `codes` (bit-identical to its forward)."""
    if isinstance(prev, InputQuant):
        return codes.to(torch.float32) * prev.scale
    if prev.multibit:
        return codes.to(torch.float32) * prev.scale.detach()
    return prev.values(codes)


@torch.no_grad()
def _fold_layer(
    layer: LogicLayer,
    name: str,
    prev: ActQuant | InputQuant,
    in_bits: int,
    in_signed: bool,
    max_table_bits: int,
    data_codes: np.ndarray | None,
) -> FoldedLayer:
    lin, bn, act = layer.linear, layer.bn, layer.act
    idx = lin.fan_in_indices()
    n_out, fan = idx.shape
    # Real pre-activation over the output step, as a function of the input *codes*:
    # pre/s = sum_i u_i * (s_in * c_i + o_in) + c  =  v . c + d.
    w = lin.masked_weight().double()
    a = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = a * (lin.bias.double() - bn.running_mean.double()) + bn.bias.double()
    step = float(act.scale.detach()) if act.multibit else 1.0
    u = (a[:, None] * w / step).numpy()
    c = (shift / step).numpy()
    if isinstance(prev, InputQuant):
        in_scale, in_offset = prev.scale, 0.0
    else:
        in_scale, in_offset = prev.value_scale, prev.value_offset
    exhaustive = in_bits * fan <= max_table_bits
    if exhaustive:
        shared_rows = _all_rows(_code_values(in_bits, in_signed), fan)
    elif data_codes is None:
        raise InputError(
            f"{name}: neurons read {in_bits * fan} bits (> max_table_bits = {max_table_bits}); "
            "give calibration data to check them on"
        )
    weight = np.zeros((n_out, lin.in_features), np.int64)
    bias = np.zeros(n_out, np.int64)
    divisor = np.ones(n_out, np.int64)
    mismatched = np.zeros(n_out, np.int64)
    rows_checked = 0
    layer.eval()
    for j in range(n_out):
        cols = idx[j]
        rows = shared_rows if exhaustive else np.unique(data_codes[:, cols], axis=0)
        rows_checked = max(rows_checked, len(rows))
        full = torch.zeros(len(rows), lin.in_features, dtype=torch.int64)
        full[:, torch.from_numpy(cols)] = torch.from_numpy(rows)
        values = _input_values(prev, full)  # columns outside the fan-in meet zero weights
        target = act.codes(layer.pre_activation(values)[:, j]).numpy()
        v = u[j, cols] * in_scale
        d = float(c[j] + in_offset * u[j].sum())
        if act.multibit:
            wj, bj, kj, bad = _fit_multibit(rows, v, d, target, act.lo, act.hi)
            divisor[j] = kj
        else:
            wj, bj, bad = _fit_step(rows, v, target)
        weight[j, cols] = wj
        bias[j] = bj
        mismatched[j] = bad
    out_scale = float(act.scale.detach()) if act.multibit else 1.0
    in_code_scale = prev.scale if isinstance(prev, InputQuant) else _code_step(prev)
    return FoldedLayer(
        name=name,
        activation=act.kind,
        bits=act.bits,
        weight=weight,
        bias=bias,
        divisor=divisor,
        fan_in=idx,
        lo=act.lo,
        hi=act.hi,
        in_bits=in_bits,
        in_signed=in_signed,
        in_code_scale=float(np.float32(in_code_scale)),
        out_code_scale=float(np.float32(out_scale)),
        mismatched_rows=mismatched,
        rows_checked=rows_checked,
        exhaustive=exhaustive,
    )


def _code_step(act: ActQuant) -> float:
    return float(act.scale.detach()) if act.multibit else 1.0


@torch.no_grad()
def layer_input_codes(model: LogicNet, x: torch.Tensor | np.ndarray) -> list[np.ndarray]:
    """The codes each layer reads on `x` (the torch model's own rounding), in eval mode."""
    xt = torch.as_tensor(np.asarray(x, np.float32)).flatten(1)
    was = model.training
    model.eval()
    try:
        codes = model.input_quant.codes(xt)
        out = [codes.numpy()]
        h = _input_values(model.input_quant, codes)
        for layer in model.layers[:-1]:
            codes = layer.act.codes(layer.pre_activation(h))
            out.append(codes.numpy())
            h = _input_values(layer.act, codes)
        return out
    finally:
        model.train(was)


def fold_network(
    model: LogicNet,
    *,
    max_table_bits: int | None = None,
    calibration: torch.Tensor | np.ndarray | None = None,
) -> FoldedNetwork:
    """Fold `model` (quantized, any mode; evaluated in eval mode) into a `FoldedNetwork`.

    Neurons with at most `max_table_bits` input bits (default: the config's) are matched on
    every input combination; wider ones on the rows `calibration` inputs produce.
    """
    cfg = model.config
    limit = cfg.max_table_bits if max_table_bits is None else max_table_bits
    was = model.training
    model.eval()
    try:
        data = None
        if calibration is not None and any(b > limit for b in cfg.table_bits()):
            data = layer_input_codes(model, calibration)
        layers = []
        prev: ActQuant | InputQuant = model.input_quant
        in_bits, in_signed = cfg.input_bits, False
        for i, layer in enumerate(model.layers):
            layers.append(
                _fold_layer(
                    layer,
                    f"layers.{i}",
                    prev,
                    in_bits,
                    in_signed,
                    limit,
                    None if data is None else data[i],
                )
            )
            prev = layer.act
            in_bits, in_signed = layer.act.bits, layer.act.kind == "hardtanh"
    finally:
        model.train(was)
    return FoldedNetwork(
        in_features=cfg.in_features,
        input_bits=cfg.input_bits,
        input_scale=model.input_quant.scale,
        layers=layers,
        config=cfg.to_dict(),
    )


# --------------------------------------------------------------------------------------------
# IR


def to_program(model: LogicNet | FoldedNetwork, *, batch: int = -1) -> Program:
    """The integer network as a verified `Program` (see the module docstring for its form).

    `batch` is the input's first dimension (-1: dynamic).
    """
    folded = model if isinstance(model, FoldedNetwork) else fold_network(model)
    b = GraphBuilder("main")
    x = b.input((batch, folded.in_features))
    codes = b.op(
        irnn.QuantizeOp,
        [x],
        IntegerType(folded.input_bits, Signedness.UNSIGNED),
        name="input_quant",
        scale=[folded.input_scale],
    )
    for layer in folded.layers:
        w = b.weight(f"{layer.name}.linear.weight", layer.weight, IntegerType(layer.weight_width))
        bias = b.weight(f"{layer.name}.linear.bias", layer.bias, IntegerType(32))
        acc = b.op(irnn.LinearOp, [codes, w, bias], IntegerType(32), name=f"{layer.name}.linear")
        codes = b.op(
            irnn.RequantizeOp,
            [acc],
            layer.ir_format(),
            name=f"{layer.name}.act",
            scale=[float(s) for s in layer.scale],
            axis=1,
            mode="onnx",
            clamp=[layer.lo, layer.hi],
        )
    return b.finish([codes])


def interpreter_predictions(program: Program, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """argmax (ties: lowest index) of the golden interpreter's output on `x` (flattened)."""
    from ircomp.interpreter import Interpreter

    interp = Interpreter(program)
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    preds = []
    for i in range(0, len(x), batch_size):
        (out,) = interp([x[i : i + batch_size]])
        preds.append(np.argmax(np.asarray(out), axis=1))
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)
