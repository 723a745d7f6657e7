"""LogicNets / NullaNet Tiny style networks for the `fpga-lut` flow: the torch side.

A network is an MLP whose every neuron reads a fixed number F of inputs (its *fan-in*) and whose
activations are quantized to few bits, so that each neuron is a Boolean function of β·F input
bits that the compiler can enumerate, minimize and map to LUTs.

* `SparseLinear`: a linear layer with a per-neuron 0/1 fan-in mask, either fixed random masks of
  exactly F inputs per neuron (LogicNets, seeded) or learned: train dense with a fan-in penalty,
  prune each neuron to its F most important inputs (|w| times the input's standard deviation),
  fine-tune with the mask (`ircomp.train.logicnet_train`).
* `ActQuant`: the activation quantizer of a layer: ``binary`` (0/1 step), ``bipolar`` (±1),
  ``relu`` (β-bit unsigned codes 0..2^β-1) or ``hardtanh`` (β-bit signed codes), trained with a
  clipped straight-through estimator; multi-bit scales are calibrated (MSE) and then learned
  (LSQ gradient) or kept. `InputQuant` turns features in [0, 1] into β_in-bit unsigned codes
  with exactly the arithmetic of `nn.quantize` (ONNX QuantizeLinear).
* `LogicNet`: ``input_quant`` then ``layers.i`` = ``linear`` (SparseLinear) -> ``bn``
  (BatchNorm1d, folded into the neuron at export) -> ``act`` (ActQuant). Its output is the last
  layer's dequantized codes times a learned positive temperature (training only needs it; the
  argmax, ties to the lowest index, is the prediction).
* `LogicNetConfig` and `PRESETS`: ``logicnets-digits``, ``nullanet-digits``, ``jsc-s``,
  ``jsc-m``.

Training lives in `logicnet_train.py`, export to the IR, QONNX and QDQ ONNX in
`logicnet_export.py`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ircomp.errors import InputError
from ircomp.numerics import quantize_linear
from ircomp.train.logicnet_config import (
    ACTIVATIONS,
    MASK_MODES,
    MAX_BITS,
    PRESETS,
    LogicNetConfig,
    code_range,
    preset,
)

__all__ = [
    "ACTIVATIONS",
    "MASK_MODES",
    "MAX_BITS",
    "PRESETS",
    "ActQuant",
    "InputQuant",
    "LogicLayer",
    "LogicNet",
    "LogicNetConfig",
    "SparseLinear",
    "code_range",
    "first_argmax",
    "preset",
]

# --------------------------------------------------------------------------------------------
# quantizers


class _GradScale(torch.autograd.Function):
    """Identity forward (bit-exact), gradient times `factor` backward (LSQ's step-size scale)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


class _RoundSTE(torch.autograd.Function):
    """round half to even forward, identity gradient (the straight-through estimator)."""

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor) -> torch.Tensor:
        return torch.round(v)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad


class _StepSTE(torch.autograd.Function):
    """Exact step forward (binary: x >= 0 -> 1 else 0; bipolar: +1 / -1); clipped STE
    backward: the gradient of clamp((x + 1) / 2, 0, 1) resp. clamp(x, -1, 1)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bipolar: bool) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.slope = 1.0 if bipolar else 0.5
        hard = (x >= 0).to(x.dtype)
        return hard * 2 - 1 if bipolar else hard

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype) * ctx.slope, None


class ActQuant(nn.Module):
    """Activation quantizer with a clipped straight-through estimator.

    * ``binary``: 1 if x >= 0 else 0; gradient that of clamp((x + 1) / 2, 0, 1).
    * ``bipolar``: +1 if x >= 0 else -1; gradient that of clamp(x, -1, 1).
    * ``relu`` (codes 0..2^β-1) and ``hardtanh`` (codes -2^(β-1)..2^(β-1)-1):
      ``s * round(clamp(x / s, lo, hi))`` (round half to even); the gradient passes inside the
      clamp range only, and the scale `s` gets LSQ's gradient (scaled by 1/sqrt(N·hi)).

    With ``quantize = False`` the layer is its float counterpart (ReLU, hardtanh, a [0, 1]
    ramp for binary, or the identity for the output layer), used in the float phase.
    """

    def __init__(self, kind: str, bits: int, *, is_output: bool = False, learn_scale: bool = True):
        super().__init__()
        if kind not in ACTIVATIONS:
            raise InputError(f"unknown activation {kind!r}")
        self.kind = kind
        self.bits = 1 if kind in ("binary", "bipolar") else bits
        self.lo, self.hi = code_range(kind, self.bits)
        self.is_output = is_output
        self.quantize = True
        self.multibit = kind in ("relu", "hardtanh")
        self.scale = nn.Parameter(torch.ones(()), requires_grad=learn_scale and self.multibit)

    def extra_repr(self) -> str:
        return f"{self.kind}, bits={self.bits}, codes={self.lo}..{self.hi}"

    @property
    def value_scale(self) -> float:
        """Real value of one output code step (bipolar's ±1 is 2·bit - 1)."""
        if self.kind == "binary":
            return 1.0
        if self.kind == "bipolar":
            return 2.0
        return float(self.scale.detach())

    @property
    def value_offset(self) -> float:
        return -1.0 if self.kind == "bipolar" else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize:
            if self.is_output:
                return x
            if self.kind == "relu":
                return F.relu(x)
            if self.kind == "binary":
                return torch.clamp((x + 1) * 0.5, 0.0, 1.0)
            return torch.clamp(x, -1.0, 1.0)
        if self.kind in ("binary", "bipolar"):
            return _StepSTE.apply(x, self.kind == "bipolar")
        s = self.scale
        if self.training and s.requires_grad:
            s = _GradScale.apply(s, 1.0 / math.sqrt(max(1, x[0].numel()) * max(1, self.hi)))
        # Forward value: exactly round(clamp(x / s)) * s, i.e. codes(x) * scale.
        return _RoundSTE.apply(torch.clamp(x / s, self.lo, self.hi)) * s

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The integer output codes (int64) for pre-activations `x`, as `forward` rounds them."""
        if self.kind in ("binary", "bipolar"):
            return (x >= 0).to(torch.int64)
        return torch.round(torch.clamp(x / self.scale, self.lo, self.hi)).to(torch.int64)

    def values(self, codes: torch.Tensor) -> torch.Tensor:
        """Real values of codes (what the next layer reads)."""
        return codes.to(torch.float32) * self.value_scale + self.value_offset

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """Set a multi-bit scale to the grid step with the least squared error on `x`."""
        if not self.multibit:
            return
        x = x.detach().double().reshape(-1)
        if self.kind == "relu":
            x = x.clamp_min(0.0)
        top = float(x.abs().max())
        if top == 0.0:
            self.scale.fill_(1.0)
            return
        best, best_err = 1.0, math.inf
        for t in torch.linspace(0.05, 1.0, 60, dtype=torch.float64):
            s = top * float(t) / max(self.hi, -self.lo)
            q = torch.round(torch.clamp(x / s, self.lo, self.hi)) * s
            err = float(((q - x) ** 2).mean())
            if err < best_err:
                best, best_err = s, err
        self.scale.fill_(best)


class InputQuant(nn.Module):
    """Features (any real, nominally in [0, 1]) -> β_in-bit unsigned codes times `scale`.

    The codes are ``saturate(round_half_even(float32(x) / float32(scale)))`` computed by
    `ircomp.numerics.quantize_linear`, the function `nn.quantize` runs in the golden
    interpreter, so both see the same codes. No gradient flows to the input.
    """

    def __init__(self, bits: int, scale: float):
        super().__init__()
        self.bits = bits
        self.scale = float(np.float32(scale))
        self.quantize = True

    def extra_repr(self) -> str:
        return f"bits={self.bits}, scale={self.scale:.6g}"

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).numpy()
        codes = quantize_linear(array, self.scale, 0, qmin=0, qmax=2**self.bits - 1)
        return torch.from_numpy(np.asarray(codes, np.int64)).to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize:
            return x
        return self.codes(x).to(x.dtype) * self.scale


# --------------------------------------------------------------------------------------------
# sparse linear layer


class _FanInPenalty(torch.autograd.Function):
    """Identity on the weight forward; backward adds ``strength * dR/dw`` where, per neuron,
    ``R = (importance outside the F largest) / (total importance)`` and importance is
    ``|w_i| * c_i`` (c = input standard deviation). The penalty is scale-free, so it shapes
    each neuron towards F inputs without shrinking the weights BatchNorm rescales anyway."""

    @staticmethod
    def forward(
        ctx: Any, w: torch.Tensor, c: torch.Tensor, fan_in: int, strength: float
    ) -> torch.Tensor:
        ctx.save_for_backward(w, c)
        ctx.fan_in, ctx.strength = fan_in, strength
        return w.view_as(w)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        w, c = ctx.saved_tensors
        a = w.abs() * c
        total = a.sum(dim=1, keepdim=True).clamp_min(1e-12)
        keep = torch.zeros_like(a, dtype=torch.bool)
        keep.scatter_(1, a.topk(min(ctx.fan_in, a.shape[1]), dim=1).indices, True)
        outside = (~keep).to(a.dtype)
        ratio = (a * outside).sum(dim=1, keepdim=True) / total
        d_a = (outside - ratio) / total
        return grad + ctx.strength * d_a * torch.sign(w) * c, None, None, None


class SparseLinear(nn.Linear):
    """`nn.Linear` whose weight is multiplied by a fixed 0/1 `mask` buffer ([out, in]).

    `fan_in` is the number of inputs each neuron may read. A new layer is dense (every mask
    entry 1); `set_random_mask` draws exactly `fan_in` distinct inputs per neuron (LogicNets),
    `prune_to_fan_in` keeps each neuron's `fan_in` most important inputs. While
    `penalty > 0` and training, the fan-in penalty (`_FanInPenalty`) is added to the gradient.
    """

    def __init__(self, in_features: int, out_features: int, fan_in: int):
        super().__init__(in_features, out_features, bias=True)
        if not 1 <= fan_in <= in_features:
            raise InputError(f"fan-in {fan_in} must be in 1..{in_features}")
        self.fan_in = fan_in
        self.penalty = 0.0
        self.register_buffer("mask", torch.ones(out_features, in_features))
        self.register_buffer("input_std", torch.ones(in_features))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fan_in={self.fan_in}, dense={self.is_dense()}"

    def is_dense(self) -> bool:
        return bool((self.mask != 0).all())

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if self.training and self.penalty > 0:
            w = _FanInPenalty.apply(w, self.input_std, self.fan_in, self.penalty)
        return F.linear(x, w * self.mask, self.bias)

    @torch.no_grad()
    def set_random_mask(self, generator: torch.Generator, fan_in: int | None = None) -> None:
        """Exactly `fan_in` distinct random inputs per neuron, drawn from `generator`."""
        if fan_in is not None:
            self.fan_in = fan_in
        mask = torch.zeros_like(self.mask)
        for j in range(self.out_features):
            idx = torch.randperm(self.in_features, generator=generator)[: self.fan_in]
            mask[j, idx] = 1.0
        self.mask.copy_(mask)

    def importance(self) -> torch.Tensor:
        """|w| times the standard deviation of each input: how much an input moves a neuron."""
        return self.weight.detach().abs() * self.input_std

    @torch.no_grad()
    def prune_to_fan_in(self, fan_in: int | None = None) -> None:
        """Keep each neuron's `fan_in` most important inputs (ties: the lower input index)."""
        if fan_in is not None:
            self.fan_in = fan_in
        score = self.importance() * self.mask
        # A stable descending sort keeps lower indices first among equal scores.
        order = torch.sort(score, dim=1, descending=True, stable=True).indices[:, : self.fan_in]
        mask = torch.zeros_like(self.mask)
        mask.scatter_(1, order, 1.0)
        self.mask.copy_(mask)

    def fan_in_indices(self) -> np.ndarray:
        """[out, F] input indices of each neuron (ascending); every neuron has exactly F."""
        nz = self.mask.detach().cpu().numpy() != 0
        counts = nz.sum(axis=1)
        if not (counts == counts[0]).all():
            raise InputError(f"neurons read different numbers of inputs: {sorted(set(counts))}")
        return np.stack([np.flatnonzero(row) for row in nz]).astype(np.int64)


# --------------------------------------------------------------------------------------------
# the network


class LogicLayer(nn.Module):
    """``linear`` (SparseLinear) -> ``bn`` (BatchNorm1d) -> ``act`` (ActQuant)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        fan_in: int,
        activation: str,
        bits: int,
        *,
        is_output: bool,
        learn_scale: bool,
    ):
        super().__init__()
        self.linear = SparseLinear(in_features, out_features, fan_in)
        self.bn = nn.BatchNorm1d(out_features)
        self.act = ActQuant(activation, bits, is_output=is_output, learn_scale=learn_scale)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pre_activation(x))


class LogicNet(nn.Module):
    """The trainable network of a `LogicNetConfig` (see the module docstring)."""

    def __init__(self, config: LogicNetConfig):
        super().__init__()
        config.validate()
        self.config = copy.deepcopy(config)
        self.input_quant = InputQuant(config.input_bits, config.in_scale)
        widths = config.widths
        learn = config.scale_mode == "learned"
        self.layers = nn.ModuleList(
            LogicLayer(
                widths[i],
                widths[i + 1],
                config.fan_in[i],
                config.activations[i],
                config.bits[i],
                is_output=i == config.num_layers - 1,
                learn_scale=learn,
            )
            for i in range(config.num_layers)
        )
        # Softmax temperature of the output (training only: positive, so the argmax is kept).
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def set_quantized(self, enabled: bool) -> None:
        """Switch every quantizer between quantized (QAT) and float behaviour."""
        self.input_quant.quantize = enabled
        for layer in self.layers:
            layer.act.quantize = enabled

    @property
    def quantized(self) -> bool:
        return self.input_quant.quantize

    def linears(self) -> list[SparseLinear]:
        return [layer.linear for layer in self.layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_quant(x.flatten(1))
        for layer in self.layers:
            h = layer(h)
        return h * self.log_temperature.exp()

    @torch.no_grad()
    def output_codes(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """The quantized model's output codes (int64 [N, classes]), in eval mode."""
        was = self.training
        self.eval()
        try:
            outs = []
            for i in range(0, len(x), batch_size):
                h = self.input_quant(x[i : i + batch_size].flatten(1).float())
                for layer in self.layers[:-1]:
                    h = layer(h)
                last = self.layers[-1]
                outs.append(last.act.codes(last.pre_activation(h)))
            return torch.cat(outs)
        finally:
            self.train(was)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted classes: argmax of the output codes (ties: the lowest index), or of the
        float outputs while not quantized."""
        if not self.quantized:
            was = self.training
            self.eval()
            try:
                return self(x.float()).argmax(dim=1)
            finally:
                self.train(was)
        return first_argmax(self.output_codes(x))

    def fan_ins(self) -> list[int]:
        return [lin.fan_in for lin in self.linears()]

    def describe(self) -> str:
        cfg = self.config
        parts = [f"in {cfg.in_features} x ui{cfg.input_bits}"]
        for i, layer in enumerate(self.layers):
            a = layer.act
            parts.append(
                f"layers.{i}: {layer.linear.out_features} {a.kind}{a.bits} F={layer.linear.fan_in}"
            )
        return "; ".join(parts)


def first_argmax(values: torch.Tensor | np.ndarray) -> Any:
    """Row-wise argmax, ties broken towards the lowest index (numpy's rule), for torch or numpy."""
    if isinstance(values, np.ndarray):
        return np.argmax(values, axis=1)
    top = values.max(dim=1, keepdim=True).values
    idx = torch.arange(values.shape[1], device=values.device).expand_as(values)
    return torch.where(values == top, idx, values.shape[1]).min(dim=1).values
