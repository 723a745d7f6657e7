"""Train-mode kernels: non-float tensors are float32 *code values* and casts fake-quantize.

In "train" mode an `IRModule` carries every integer / fixed-point / bit tensor as a float32
tensor holding its codes (posit tensors hold their real values), so every op is differentiable:

* format casts (`nn.quantize`, `nn.requantize`, code weights) round through `FakeQuant`, whose
  backward is straight-through (`"ste"`), clipped straight-through (`"clipped_ste"`: zero where
  the input lies outside the representable range) or a user hook
  `gradient(u, q, fmt) -> grad_scale` (e.g. a posit-aware gradient);
* multiply-accumulate and add/sub/mul on codes are float arithmetic on the code values (no
  wrap-around, float32 accumulation); average pools on codes round with the same gradient.

The forward of a train-mode module therefore equals the exact module wherever no accumulator
wraps and no double rounding (`mode="integer"` requantize) or rounding tie differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ircomp.backends.pytorch import runtime as rt

# (u, q) -> gradient scale, or None for the plain straight-through estimator.
GradFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None


class FakeQuant(torch.autograd.Function):
    """Forward: `rounder(u)`. Backward: grad * `gradient(u, q)` (None: straight through)."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, rounder: Any, gradient: Any) -> torch.Tensor:
        q = rounder(u.detach())
        ctx.gradient = gradient
        if gradient is not None:
            ctx.save_for_backward(u, q)
        return q

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None]:
        if ctx.gradient is None:
            return grad, None, None
        u, q = ctx.saved_tensors
        return grad * ctx.gradient(u, q).to(grad.dtype), None, None


def grid_rounder(lo: Any, hi: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Round half to even onto the integers, then clamp to [lo, hi] (numbers or tensors)."""
    return lambda u: torch.clamp(torch.round(u), lo, hi)


def posit_rounder(n: int, es: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda u: rt.posit_quantize(u.double(), n, es).to(u.dtype)


def fake_quant(u: torch.Tensor, rounder: Any, gradient: GradFn) -> torch.Tensor:
    return FakeQuant.apply(u, rounder, gradient)


# ---- weights --------------------------------------------------------------------------------


def t_weight_grid(w: torch.Tensor, lo: int = 0, hi: int = 0, gradient: GradFn = None):
    """A latent float parameter holding integer / fixed-point codes, rounded to the grid."""
    return fake_quant(w, grid_rounder(lo, hi), gradient)


def t_weight_posit(w: torch.Tensor, n: int = 8, es: int = 0, gradient: GradFn = None):
    """A latent float parameter holding posit values, rounded to the nearest posit."""
    return fake_quant(w, posit_rounder(n, es), gradient)


def t_codes(w: torch.Tensor, posit: tuple[int, int] | None = None) -> torch.Tensor:
    """A frozen code buffer (int64) as train-mode code values."""
    if posit is not None:
        return rt.posit_decode(w, posit[0], posit[1]).float()
    return w.float()


# ---- multiply-accumulate and arithmetic on codes --------------------------------------------


def _operand(v: torch.Tensor, zp: int, posit: Any, frac: int) -> torch.Tensor:
    if posit is not None:  # posit values -> fixed-point code values
        return v * (2.0**frac)
    return v - zp if zp else v


def t_qlinear(x, w, b=None, x_zp=0, w_zp=0, w_posit=None, w_frac=0):
    return F.linear(_operand(x, x_zp, None, 0), _operand(w, w_zp, w_posit, w_frac), b)


def t_qmatmul(a, b, a_zp=0, b_zp=0, b_posit=None, b_frac=0):
    return torch.matmul(_operand(a, a_zp, None, 0), _operand(b, b_zp, b_posit, b_frac))


def t_qconv2d(
    x,
    w,
    b=None,
    strides=(1, 1),
    padding=(0, 0, 0, 0),
    dilations=(1, 1),
    groups=1,
    x_zp=0,
    w_zp=0,
    w_posit=None,
    w_frac=0,
):
    xm = rt.pad2d(_operand(x, x_zp, None, 0), padding, 0.0)
    return F.conv2d(xm, _operand(w, w_zp, w_posit, w_frac), b, strides, 0, dilations, groups)


def t_qbinary(a, b, op="add", shift_a=0, shift_b=0):
    a = a * (2.0**shift_a) if shift_a else a
    b = b * (2.0**shift_b) if shift_b else b
    return {"add": torch.add, "sub": torch.sub, "mul": torch.mul}[op](a, b)


def t_avgpool2d(x, gradient: GradFn = None, **window: Any):
    return fake_quant(rt.avgpool2d(x, **window).float(), torch.round, gradient)


def t_global_avgpool2d(x, gradient: GradFn = None):
    return fake_quant(torch.mean(x, dim=(2, 3), keepdim=True), torch.round, gradient)


# ---- format casts ---------------------------------------------------------------------------


def _per_channel(values: Any, axis: int, x: torch.Tensor) -> torch.Tensor:
    return rt.along(list(values), axis, x.dim(), torch.float32, x.device)


def t_quantize_grid(
    x, scale=(1.0,), zero_point=(0,), axis=1, frac=0, lo=0, hi=0, gradient: GradFn = None
):
    """Fake quantization into integer / fixp / bit codes: clamp(round(x / s * 2**f) + zp)."""
    u = x / _per_channel(scale, axis, x) * (2.0**frac)
    zp = _per_channel(zero_point, axis, x)
    return fake_quant(u, grid_rounder(lo - zp, hi - zp), gradient) + zp


def t_quantize_posit(x, scale=(1.0,), axis=1, n=8, es=0, gradient: GradFn = None):
    u = x / _per_channel(scale, axis, x)
    return fake_quant(u, posit_rounder(n, es), gradient)


def t_dequantize(q, scale=(1.0,), zero_point=(0,), axis=1, frac=0, kind="f32"):
    zp = _per_channel(zero_point, axis, q)
    value = (q - zp) * (2.0**-frac) * _per_channel(scale, axis, q)
    return rt.round_float(value, kind)


def t_requantize(
    x, scale=(1.0,), zero_point=(0,), axis=1, in_zp=0, lo=0, hi=0, gradient: GradFn = None
):
    u = (x - in_zp) * _per_channel(scale, axis, x)
    zp = _per_channel(zero_point, axis, x)
    return fake_quant(u, grid_rounder(lo - zp, hi - zp), gradient) + zp


# ---- TFLite integer kernels -------------------------------------------------------------------


def t_tflite_add(
    a,
    b,
    lhs_scale=1.0,
    rhs_scale=1.0,
    out_scale=1.0,
    lhs_zp=0,
    rhs_zp=0,
    out_zp=0,
    lo=-128,
    hi=127,
    gradient: GradFn = None,
):
    """nn.qadd on code values: the real sum of the dequantized operands, fake-quantized to the
    result (the exact kernel's fixed-point rescaling rounds a few times more)."""
    u = ((a - lhs_zp) * lhs_scale + (b - rhs_zp) * rhs_scale) / out_scale
    return fake_quant(u, grid_rounder(lo - out_zp, hi - out_zp), gradient) + out_zp


def t_tflite_softmax(x, axis=-1, input_scale=1.0, beta=1.0, qmin=-128, gradient: GradFn = None):
    """nn.qsoftmax on code values: float softmax of the dequantized codes, fake-quantized to
    scale 1/256 and zero point qmin (the exact kernel uses gemmlowp's fixed-point exp)."""
    p = torch.softmax(x * (input_scale * beta), dim=axis)
    return fake_quant(p * 256.0, grid_rounder(0, 255), gradient) + qmin
