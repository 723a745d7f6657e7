"""Torch kernels of the `nn` ops, one function per op (and a few helpers they share).

Every function takes tensors positionally and plain Python literals (ints, floats, bools, strings,
lists of them) as keywords, and needs nothing but `math` and `torch`: `IRModule` calls them,
and `ircomp build --target pytorch` copies the ones a model uses into its standalone `model.py`
(so this file must never import from ircomp).

Representation ("exact" mode, the golden interpreter's semantics, spec/numerics.md):
float tensors are float32 (f16/bf16 values are float32 tensors rounded to their format after
every op); every other format is held as int64 codes; integer arithmetic is exact in int64 (or
float64 where every partial sum is an integer below 2**53) and wraps to the result width.

"train" mode kernels (prefix `t_`) carry non-float tensors as float32 *code values* (posits as
their real values), so that everything is differentiable; format casts are fake quantization
through `FakeQuant`, whose gradient is chosen by the caller.
"""

import functools
import math

import torch
import torch.nn.functional as F

# ---- helpers -------------------------------------------------------------------------------


def along(values, axis, ndim, dtype, device):
    """A per-channel list as a tensor broadcasting along `axis` of `ndim`-D data (or a scalar)."""
    if len(values) == 1:
        return torch.tensor(values[0], dtype=dtype, device=device)
    shape = [1] * ndim
    shape[axis % ndim] = len(values)
    return torch.tensor(values, dtype=dtype, device=device).reshape(shape)


def round_float(x, kind):
    """Round float32 values to the float format `kind` ('f32', 'f16' or 'bf16'), as float32."""
    if kind == "f16":
        return x.to(torch.float16).to(torch.float32)
    if kind == "bf16":
        return x.to(torch.bfloat16).to(torch.float32)
    return x.to(torch.float32)


def wrap(acc, width, signed):
    """Two's complement wrap of int64 values to `width` bits."""
    if width >= 64:
        return acc
    unsigned = acc & ((1 << width) - 1)
    if not signed:
        return unsigned
    return torch.where(unsigned >= (1 << (width - 1)), unsigned - (1 << width), unsigned)


def check_range(x, lo, hi, what):
    if x.numel() and (int(x.min()) < lo or int(x.max()) > hi):
        raise ValueError(f"{what} must be in {lo}..{hi}, got {int(x.min())}..{int(x.max())}")


def exact_float64(a, b, k):
    """True when an integer product-sum of a and b over k terms is exact in float64."""
    if a.numel() == 0 or b.numel() == 0:
        return True
    bound = int(a.abs().max()) * int(b.abs().max()) * max(k, 1)
    return bound < (1 << 53)


@functools.cache
def posit_values(n, es):
    """Value of every posit<n, es> code (a list of floats; NaR is nan)."""
    out = []
    body = n - 1
    for code in range(1 << n):
        if code == 0:
            out.append(0.0)
            continue
        if code == 1 << body:
            out.append(math.nan)
            continue
        negative = code >> body
        word = ((-code) & ((1 << n) - 1)) if negative else code
        bits = word & ((1 << body) - 1)
        first = (bits >> (body - 1)) & 1
        i, run = body - 1, 0
        while i >= 0 and ((bits >> i) & 1) == first:
            run += 1
            i -= 1
        k = run - 1 if first else -run
        rest = max(i, 0)  # bits after the regime's terminating bit
        e_bits = min(es, rest)
        e = ((bits >> (rest - e_bits)) & ((1 << e_bits) - 1)) << (es - e_bits)
        f_bits = rest - e_bits
        f = bits & ((1 << f_bits) - 1)
        value = math.ldexp(1.0 + f / (1 << f_bits), k * (1 << es) + e)
        out.append(-value if negative else value)
    return tuple(out)


@functools.cache
def posit_midpoints(n, es):
    """Tie points between consecutive positive posit<n, es> codes c and c + 1."""
    wide = posit_values(n + 1, es)
    return tuple(wide[2 * c + 1] for c in range(1, (1 << (n - 1)) - 1))


def posit_encode(x, n, es):
    """Nearest posit<n, es> codes (int64) of float64 reals; nan and inf give NaR."""
    mids = torch.tensor([*posit_midpoints(n, es), math.inf], dtype=torch.float64, device=x.device)
    mag = x.abs()
    below = torch.searchsorted(mids[:-1].contiguous(), mag.contiguous())
    code = below + 1
    tie = mids[below] == mag
    code = torch.where(tie & (code % 2 == 1), code + 1, code)
    code = torch.where(mag == 0, torch.zeros_like(code), code)
    code = torch.where(x < 0, (-code) & ((1 << n) - 1), code)
    return torch.where(torch.isfinite(x), code, torch.full_like(code, 1 << (n - 1)))


def posit_decode(codes, n, es):
    """float64 values of posit<n, es> codes."""
    table = torch.tensor(posit_values(n, es), dtype=torch.float64, device=codes.device)
    return table[codes]


def posit_quantize(x, n, es):
    """Nearest posit<n, es> value of reals (float64)."""
    return posit_decode(posit_encode(x, n, es), n, es)


def posit_fixed(codes, n, es, frac):
    """Posit codes as exact fixed-point integers value * 2**frac (int64); NaR is an error."""
    if bool((codes == (1 << (n - 1))).any()):
        raise ValueError("a posit MAC operand holds NaR, which has no value")
    ints = [0 if math.isnan(v) else int(math.ldexp(v, frac)) for v in posit_values(n, es)]
    return torch.tensor(ints, dtype=torch.int64, device=codes.device)[codes]


def pad2d(x, padding, fill):
    """Pad the H and W of NCHW `x` by [top, left, bottom, right] with `fill`."""
    top, left, bottom, right = padding
    if top or left or bottom or right:
        return F.pad(x, [left, right, top, bottom], value=fill)
    return x


def window_out(size, kernel, stride, lo, hi, dilation, ceil_mode):
    span = dilation * (kernel - 1) + 1
    room = size + lo + hi - span
    out = (room + stride - 1) // stride + 1 if ceil_mode else room // stride + 1
    if ceil_mode and (out - 1) * stride >= size + lo:
        out -= 1
    return out


def window_pad(x, kernel, strides, padding, dilations, ceil_mode, fill):
    """Pad so that a padding-free window op gives the output size of `padding` and `ceil_mode`."""
    top, left, bottom, right = padding
    h, w = x.shape[2], x.shape[3]
    oh = window_out(h, kernel[0], strides[0], top, bottom, dilations[0], ceil_mode)
    ow = window_out(w, kernel[1], strides[1], left, right, dilations[1], ceil_mode)
    span_h, span_w = dilations[0] * (kernel[0] - 1) + 1, dilations[1] * (kernel[1] - 1) + 1
    extra_h = max(0, (oh - 1) * strides[0] + span_h - (h + top + bottom))
    extra_w = max(0, (ow - 1) * strides[1] + span_w - (w + left + right))
    return pad2d(x, [top, left, bottom + extra_h, right + extra_w], fill), (oh, ow)


def average_counts(hw, kernel, strides, padding, out_hw, include_pad, device):
    """[OH, OW] divisors of an average pool (PyTorch's rule)."""

    def axis(size, k, stride, lo, hi, out):
        starts = torch.arange(out, dtype=torch.int64, device=device) * stride - lo
        ends = starts + k
        if include_pad:
            return torch.clamp(ends, max=size + hi) - starts
        return torch.clamp(ends, max=size) - torch.clamp(starts, min=0)

    top, left, bottom, right = padding
    ch = axis(hw[0], kernel[0], strides[0], top, bottom, out_hw[0])
    cw = axis(hw[1], kernel[1], strides[1], left, right, out_hw[1])
    return ch[:, None] * cw[None, :]


def rounding_average(total, count):
    """int64 total / count rounded half away from zero (TFLite Micro)."""
    half = count // 2
    num = torch.where(total > 0, total + half, total - half)
    return torch.div(num, count, rounding_mode="trunc")


# ---- weights and multiply-accumulate --------------------------------------------------------


def float_weight(w, kind):
    """A float parameter rounded to its format (a no-op for f32)."""
    return w if kind == "f32" else round_float(w, kind)


def linear(x, w, b=None, kind="f32"):
    """nn.linear on floats: x @ w.T + b."""
    return round_float(F.linear(x, w, b), kind) if kind != "f32" else F.linear(x, w, b)


def matmul(a, b, kind="f32"):
    return round_float(torch.matmul(a, b), kind)


def conv2d(
    x, w, b=None, strides=(1, 1), padding=(0, 0, 0, 0), dilations=(1, 1), groups=1, kind="f32"
):
    """nn.conv2d on floats (padding [top, left, bottom, right])."""
    top, left, bottom, right = padding
    if top == bottom and left == right:
        y = F.conv2d(x, w, b, strides, [top, left], dilations, groups)
    else:
        y = F.conv2d(pad2d(x, padding, 0.0), w, b, strides, 0, dilations, groups)
    return y if kind == "f32" else round_float(y, kind)


def mac_operand(codes, zero_point=0, posit=None, frac=0):
    """Codes as exact int64 MAC operands: minus the zero point; posits as fixed point."""
    if posit is not None:
        return posit_fixed(codes, posit[0], posit[1], frac)
    return codes - zero_point if zero_point else codes


def int_matmul(a, b):
    """Exact int64 matmul (float64 BLAS when exact, else int64 on the CPU)."""
    if exact_float64(a, b, a.shape[-1]):
        return torch.matmul(a.double(), b.double()).long()
    return torch.matmul(a.cpu(), b.cpu()).to(a.device)


def qlinear(x, w, b=None, width=32, signed=True, x_zp=0, w_zp=0, w_posit=None, w_frac=0):
    """nn.linear on codes: sum((x - x_zp) * (w - w_zp)) + b, exact, wrapped to the result."""
    xm = mac_operand(x, x_zp)
    wm = mac_operand(w, w_zp, w_posit, w_frac)
    acc = int_matmul(xm, wm.t())
    if b is not None:
        acc = acc + b
    return wrap(acc, width, signed)


def qmatmul(a, b, width=32, signed=True, a_zp=0, b_zp=0, b_posit=None, b_frac=0):
    acc = int_matmul(mac_operand(a, a_zp), mac_operand(b, b_zp, b_posit, b_frac))
    return wrap(acc, width, signed)


def qconv2d(
    x,
    w,
    b=None,
    strides=(1, 1),
    padding=(0, 0, 0, 0),
    dilations=(1, 1),
    groups=1,
    width=32,
    signed=True,
    x_zp=0,
    w_zp=0,
    w_posit=None,
    w_frac=0,
):
    """nn.conv2d on codes: exact integer cross-correlation (float64 where exact), wrapped."""
    xm = pad2d(mac_operand(x, x_zp), padding, 0)
    wm = mac_operand(w, w_zp, w_posit, w_frac)
    if not exact_float64(xm, wm, wm[0].numel()):
        raise ValueError("integer conv2d partial sums exceed 2**53; not supported by torch")
    acc = F.conv2d(xm.double(), wm.double(), None, strides, 0, dilations, groups).long()
    if b is not None:
        acc = acc + b.reshape(-1, 1, 1)
    return wrap(acc, width, signed)


# ---- normalization --------------------------------------------------------------------------


def batchnorm(x, scale, bias, mean, var, epsilon=1e-5, kind="f32"):
    y = F.batch_norm(x, mean, var, scale, bias, False, 0.0, epsilon)
    return y if kind == "f32" else round_float(y, kind)


def layernorm(x, scale, bias=None, axis=-1, epsilon=1e-5, kind="f32"):
    dims = x.shape[axis % x.dim() :]
    y = F.layer_norm(x, dims, scale, bias, epsilon)
    return y if kind == "f32" else round_float(y, kind)


# ---- elementwise ----------------------------------------------------------------------------


def add(a, b, kind="f32"):
    return round_float(a + b, kind) if kind != "f32" else a + b


def sub(a, b, kind="f32"):
    return round_float(a - b, kind) if kind != "f32" else a - b


def mul(a, b, kind="f32"):
    return round_float(a * b, kind) if kind != "f32" else a * b


def div(a, b, kind="f32"):
    return round_float(a / b, kind) if kind != "f32" else a / b


def shift_left(codes, shift):
    if shift >= 64:
        return torch.zeros_like(codes)
    return codes << shift if shift else codes


def qadd(a, b, shift_a=0, shift_b=0, width=32, signed=True):
    """Exact add of codes aligned to the result's fraction bits, wrapped."""
    return wrap(shift_left(a, shift_a) + shift_left(b, shift_b), width, signed)


def qsub(a, b, shift_a=0, shift_b=0, width=32, signed=True):
    return wrap(shift_left(a, shift_a) - shift_left(b, shift_b), width, signed)


def qmul(a, b, shift_a=0, shift_b=0, width=32, signed=True):
    return wrap(shift_left(a, shift_a) * shift_left(b, shift_b), width, signed)


def relu(x):
    return torch.relu(x)


def clip(x, min=0.0, max=0.0, kind="f32"):
    """Clamp to [min, max] (real bounds rounded to float32, or code bounds)."""
    y = torch.clamp(x, min, max)
    return y if kind == "f32" else round_float(y, kind)


def sigmoid(x, kind="f32"):
    return round_float(torch.sigmoid(x), kind)


def tanh(x, kind="f32"):
    return round_float(torch.tanh(x), kind)


def gelu(x, approximate="none", kind="f32"):
    return round_float(F.gelu(x, approximate=approximate), kind)


def softmax(x, axis=-1, kind="f32"):
    return round_float(torch.softmax(x, axis), kind)


def log_softmax(x, axis=-1, kind="f32"):
    return round_float(torch.log_softmax(x, axis), kind)


def pow(a, b, kind="f32"):
    return round_float(torch.pow(a, b), kind)


def unary(x, fn="sqrt", kind="f32"):
    """sqrt / reciprocal / exp / log / erf / neg / abs on floats."""
    return round_float(getattr(torch, fn)(x), kind)


def leaky_relu(x, alpha=0.01, kind="f32"):
    return round_float(torch.where(x >= 0, x, x * alpha), kind)


def hardsigmoid(x, alpha=0.2, beta=0.5, kind="f32"):
    return round_float(torch.clamp(x * alpha + beta, 0.0, 1.0), kind)


def hardswish(x, kind="f32"):
    return round_float(F.hardswish(x), kind)


def maximum(a, b):
    return torch.maximum(a, b)


def minimum(a, b):
    return torch.minimum(a, b)


def where(c, a, b):
    return torch.where(c.bool(), a, b)


def cast(x, kind="f32"):
    return round_float(x, kind)


# ---- reductions and pooling -----------------------------------------------------------------


def reduce_mean(x, axes=(), keepdims=True, kind="f32"):
    return round_float(torch.mean(x.double(), dim=list(axes), keepdim=keepdims), kind)


def reduce_sum(x, axes=(), keepdims=True, kind="f32"):
    return round_float(torch.sum(x.double(), dim=list(axes), keepdim=keepdims), kind)


def reduce_max(x, axes=(), keepdims=True):
    return torch.amax(x, dim=list(axes), keepdim=keepdims)


def maxpool2d(
    x, kernel=(1, 1), strides=(1, 1), padding=(0, 0, 0, 0), dilations=(1, 1), ceil_mode=False
):
    """Max over windows; padding never wins. Codes go through float64 (exact)."""
    codes = not x.is_floating_point()
    v = x.double() if codes else x
    v, _ = window_pad(v, kernel, strides, padding, dilations, ceil_mode, -math.inf)
    y = F.max_pool2d(v, kernel, strides, 0, dilations)
    return y.long() if codes else y


def avgpool2d(
    x,
    kernel=(1, 1),
    strides=(1, 1),
    padding=(0, 0, 0, 0),
    ceil_mode=False,
    count_include_pad=False,
    kind="f32",
):
    """Mean over windows (floats); codes round half away from zero."""
    codes = not x.is_floating_point()
    v, out_hw = window_pad(x.double(), kernel, strides, padding, [1, 1], ceil_mode, 0.0)
    sums = F.avg_pool2d(v, kernel, strides, 0, divisor_override=1)
    counts = average_counts(
        x.shape[2:], kernel, strides, padding, out_hw, count_include_pad, x.device
    )
    if codes:
        return rounding_average(torch.round(sums).long(), counts)
    return round_float(sums / counts, kind)


def global_avgpool2d(x, kind="f32"):
    if x.is_floating_point():
        return round_float(torch.mean(x, dim=(2, 3), keepdim=True), kind)
    sums = torch.sum(x, dim=(2, 3), keepdim=True)
    return rounding_average(sums, x.shape[2] * x.shape[3])


# ---- shape ops ------------------------------------------------------------------------------


def reshape(x, shape=()):
    return x.reshape(shape)


def flatten(x, axis=1):
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def transpose(x, perm=()):
    return x.permute(perm)


def concat(*xs, axis=0):
    return torch.cat(xs, dim=axis)


def slice_(x, starts=(), ends=(), axes=(), steps=()):
    """Python slicing per listed axis (negative steps included)."""
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis = axis % x.dim()
        index = range(*slice(start, end, step).indices(x.shape[axis]))
        if step == 1:
            x = x.narrow(axis, index.start, len(index))
        else:
            x = x.index_select(axis, torch.tensor(list(index), dtype=torch.int64, device=x.device))
    return x


def split(x, axis=0, sizes=()):
    return tuple(torch.split(x, list(sizes), dim=axis))


def expand(x, shape=()):
    known = [1 if d == -1 else d for d in shape]
    return torch.broadcast_to(x, torch.broadcast_shapes(x.shape, torch.Size(known))).clone()


def gather(data, indices, axis=0):
    """numpy take(data, indices, axis); out-of-range indices are an error."""
    size = data.shape[axis]
    idx = indices.long()
    if idx.numel() and (int(idx.min()) < -size or int(idx.max()) >= size):
        raise ValueError(f"gather index out of range [{-size}, {size - 1}] on axis {axis}")
    taken = data.index_select(axis, (idx % size).reshape(-1))
    return taken.reshape(*data.shape[:axis], *idx.shape, *data.shape[axis + 1 :])


# ---- format casts (exact) -------------------------------------------------------------------


def quantize_int(x, scale=(1.0,), zero_point=(0,), axis=1, lo=-128, hi=127):
    """ONNX QuantizeLinear: saturate(round_half_even(float32(x) / float32(scale)) + zp)."""
    if bool(torch.isnan(x).any()):
        raise ValueError("cannot quantize nan")
    s = along(scale, axis, x.dim(), torch.float32, x.device)
    zp = along(zero_point, axis, x.dim(), torch.float64, x.device)
    q = torch.round(x.float() / s).double() + zp
    return torch.clamp(q, lo, hi).long()


def quantize_grid(x, scale=(1.0,), axis=1, frac=0, lo=-128, hi=127):
    """Fixed point / bit: code = round_half_even(float64(x) / scale * 2**frac), saturated."""
    if bool(torch.isnan(x).any()):
        raise ValueError("cannot quantize nan")
    s = along(scale, axis, x.dim(), torch.float64, x.device)
    u = torch.round(x.double() / s * (2.0**frac))
    return torch.clamp(u, lo, hi).long()


def quantize_posit(x, scale=(1.0,), axis=1, n=8, es=0):
    s = along(scale, axis, x.dim(), torch.float64, x.device)
    return posit_encode(x.double() / s, n, es)


def dequantize_int(q, scale=(1.0,), zero_point=(0,), axis=1, kind="f32"):
    """ONNX DequantizeLinear: float32(q - zp) * float32(scale)."""
    s = along(scale, axis, q.dim(), torch.float32, q.device)
    zp = along(zero_point, axis, q.dim(), torch.int64, q.device)
    return round_float((q - zp).float() * s, kind)


def dequantize_grid(q, scale=(1.0,), axis=1, frac=0, kind="f32"):
    """decode(code) * scale in float64, rounded once."""
    s = along(scale, axis, q.dim(), torch.float64, q.device)
    return round_float(q.double() * (2.0**-frac) * s, kind)


def dequantize_posit(q, scale=(1.0,), axis=1, n=8, es=0, kind="f32"):
    s = along(scale, axis, q.dim(), torch.float64, q.device)
    return round_float(posit_decode(q, n, es) * s, kind)


def high_mul(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64."""
    ab = a * b
    nudge = torch.where(ab >= 0, torch.full_like(ab, 1 << 30), torch.full_like(ab, 1 - (1 << 30)))
    high = torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")
    overflow = (a == -(1 << 31)) & (b == -(1 << 31))
    return torch.where(overflow, torch.full_like(high, (1 << 31) - 1), high)


def divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2**exponent, ties away from zero."""
    mask = (torch.ones_like(exponent) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).long()
    return (x >> exponent) + (remainder > threshold).long()


def mbqm(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier (double rounding) of int32 values held in int64,
    for one (multiplier, shift); x * 2**left wraps to int32."""
    left, right = max(shift, 0), max(-shift, 0)
    shifted = wrap(x << left, 32, True)
    high = high_mul(shifted, torch.full_like(shifted, multiplier))
    return divide_by_pot(high, torch.full_like(high, right))


def tflite_add(
    a,
    b,
    left_shift=20,
    lhs_multiplier=0,
    lhs_shift=0,
    rhs_multiplier=0,
    rhs_shift=0,
    out_multiplier=0,
    out_shift=0,
    lhs_zp=0,
    rhs_zp=0,
    out_zp=0,
    lo=-128,
    hi=127,
):
    """nn.qadd: TFLite's 8-bit ADD (spec/numerics.md 5.6), parameters from add_params."""
    a, b = torch.broadcast_tensors(a, b)
    scaled_a = mbqm(wrap((a - lhs_zp) << left_shift, 32, True), lhs_multiplier, lhs_shift)
    scaled_b = mbqm(wrap((b - rhs_zp) << left_shift, 32, True), rhs_multiplier, rhs_shift)
    raw = mbqm(wrap(scaled_a + scaled_b, 32, True), out_multiplier, out_shift)
    return torch.clamp(raw + out_zp, lo, hi)


def saturating_shift_left(x, exponent):
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> (exponent > 0) on int32 values."""
    threshold = (1 << (31 - exponent)) - 1
    low = torch.where(x < -threshold, torch.full_like(x, -(1 << 31)), x << exponent)
    return torch.where(x > threshold, torch.full_like(x, (1 << 31) - 1), low)


def exp_on_negative_values(a):
    """gemmlowp exp_on_negative_values of Q5.26 raws a <= 0, as Q0.31 raws (numerics.md 5.7)."""

    def srdhm(p, q):
        return high_mul(p, q if torch.is_tensor(q) else torch.full_like(p, q))

    def add32(p, q):
        return wrap(p + q, 32, True)

    quarter = 1 << 24
    a_mod = (a & (quarter - 1)) - quarter
    x = add32(saturating_shift_left(a_mod, 5), 1 << 28)  # exp on [-1/4, 0) around -1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = divide_by_pot(x4, torch.full_like(x4, 2))
    poly = srdhm(add32(x4_over_4, x3), 715827883)
    poly = divide_by_pot(add32(poly, x2), torch.full_like(x2, 1))
    constant = torch.full_like(x, 1895147668)  # exp(-1/8)
    result = add32(constant, srdhm(constant, add32(x, poly)))
    remainder = wrap(a_mod - a, 32, True)
    for k, multiplier in enumerate(
        (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)
    ):
        bit = (remainder & (1 << (24 + k))) != 0
        result = torch.where(bit, srdhm(result, multiplier), result)
    return torch.where(a == 0, torch.full_like(result, (1 << 31) - 1), result)


def one_over_one_plus_x(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 of Q0.31 raws (Newton-Raphson)."""
    total = a + ((1 << 31) - 1)
    half = torch.div(total + torch.where(total >= 0, 1, -1), 2, rounding_mode="trunc")
    x = wrap(1515870810 + high_mul(half, torch.full_like(half, -1010580540)), 32, True)
    for _ in range(3):
        one_minus = wrap((1 << 29) - high_mul(half, x), 32, True)
        x = wrap(x + saturating_shift_left(high_mul(x, one_minus), 2), 32, True)
    return saturating_shift_left(x, 1)


def tflite_softmax(x, axis=-1, multiplier=0, left_shift=0, diff_min=0, qmin=-128):
    """nn.qsoftmax: TFLite's 8-bit softmax (spec/numerics.md 5.7), parameters from
    softmax_params; output scale 1/256, zero point qmin."""
    moved = torch.movedim(x, axis, -1)
    diff = moved - moved.max(dim=-1, keepdim=True).values
    valid = diff >= diff_min
    safe = torch.where(valid, diff, torch.zeros_like(diff))
    rescaled = high_mul(wrap(safe << left_shift, 32, True), torch.full_like(safe, multiplier))
    exps = exp_on_negative_values(rescaled)
    terms = torch.where(valid, divide_by_pot(exps, torch.full_like(exps, 12)), 0)
    sums = wrap(terms.sum(dim=-1, keepdim=True), 32, True)
    headroom = torch.zeros_like(sums)  # leading zeros of the (positive) 32-bit sum
    v = sums.clone()
    for bits in (16, 8, 4, 2, 1):
        small = v < (1 << (32 - bits))
        headroom = torch.where(small, headroom + bits, headroom)
        v = torch.where(small, v << bits, v)
    headroom = torch.where(sums == 0, torch.full_like(headroom, 32), headroom)
    scale = one_over_one_plus_x(wrap((sums << headroom) - (1 << 31), 32, True))
    exponent = (12 - headroom + 31 - 8).expand_as(exps)
    unsat = divide_by_pot(high_mul(scale.expand_as(exps), exps), exponent)
    out = torch.where(valid, torch.clamp(unsat + qmin, qmin, qmin + 255), qmin)
    return torch.movedim(out, -1, axis)


def requantize(
    x,
    scale=(1.0,),
    zero_point=(0,),
    axis=1,
    mode="onnx",
    in_zp=0,
    lo=-128,
    hi=127,
    multiplier=(0,),
    shift=(0,),
):
    """nn.requantize: clamp(round_mode(scale * (code - in_zp)) + zp, lo, hi)."""
    acc = x - in_zp if in_zp else x
    check_range(acc, -(1 << 31), (1 << 31) - 1, "requantize accumulators")
    zp = along(zero_point, axis, x.dim(), torch.int64, x.device)
    if mode == "onnx":
        s = along(scale, axis, x.dim(), torch.float32, x.device)
        y = torch.round(acc.float() * s).long()
    else:
        m = along(multiplier, axis, x.dim(), torch.int64, x.device)
        sh = along(shift, axis, x.dim(), torch.int64, x.device)
        left = torch.clamp(sh, min=0)
        right = torch.clamp(-sh, min=0)
        y = divide_by_pot(high_mul(wrap(acc << left, 32, True), m), right.expand_as(acc))
    return torch.clamp(y + zp, lo, hi)
