"""Vector C kernels (`kernels="vector"`) for hosts with SIMD units (x86-64 SSE/AVX2/AVX-512,
Arm NEON/SVE): plain C99 loops shaped so that gcc and clang at `-O3` vectorize them, for 8-bit
multiply-accumulate fused with its requantization, bit-exact with the portable kernels.

* `vconv`: `nn.conv2d` with one group: the input is copied once, offset by its zero point and
  padded, into an int16 buffer in channel-last order (`[Hp][Wp][C]`); im2col of a block of
  output pixels is then one contiguous copy per kernel row; 16 output channels x 8 pixels of
  int16 dot products at a time (`ircomp_vmk8x16`: AVX-512 VNNI `vpdpwssd`, AVX-512BW / AVX2
  `vpmaddwd`, or plain C, all exact int32 sums), the accumulators of the block land in an
  int32 buffer, and each channel's row of accumulators is requantized by one vectorizable
  loop;
* `vdw`: depthwise `nn.conv2d`: each channel's plane copied into int16 scratch, offset and
  padded; with stride 1 every output of the plane (the padded columns included, then dropped)
  is one flat loop of the unrolled window, otherwise one loop per output row;
* `vdwr` / `vdwc`: depthwise on the channel-last padded input (a row of output pixels, or one
  pixel, at a time); with AVX-512BW 32 int16 positions per step, two `vpdpwssd` per tap (all
  pairs, and the even positions with the odd weights masked off; odd = difference);
* `vlinear`: `nn.linear`: the input rows offset into int16, four output rows per pass of
  `ircomp_vdot4x1`.

Weights are stored packed as int16 with their zero point subtracted (`w_<name>_v`): conv rows
in `[O][kh][kw][C]` order, every row padded with zeros to a multiple of 16 (the int16 lanes of
a 256-bit vector), the row count to a multiple of the blocking.

Exactness: every kernel is emitted only when no partial sum can leave int32 (the bound
`max|bias| + sum_k |w_k - w_zp| * max|x - x_zp|` is checked on the actual weights at
generation time), so plain int32 arithmetic equals the portable kernels' modulo-2^32
accumulation and reassociation by the vectorizer changes nothing. The requantization is the
same integer arithmetic as `ircomp_mbqm` / `ircomp_round_half_even`, written without branches
(multipliers are non-negative, so the saturating case of the high multiply cannot occur).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from xdsl.ir import Operation

from ircomp.dialects import nn
from ircomp.interpreter.values import repr_of
from ircomp.numerics import Int, quantize_multiplier_array

LANES = 16  # int16 lanes a packed linear row is padded to (one 256-bit vector)
TILE_OC, TILE_PX = 16, 8  # conv micro-kernel: output channels x pixels
UNROLL_LIMIT = 64  # largest depthwise window unrolled term by term
BLOCK_BYTES = 16384  # im2col block: about this many bytes of int16 columns
ACC_BYTES = 16384  # and at most about this many bytes of int32 accumulators (L1-resident)
INT32_MAX = (1 << 31) - 1
CTYPES = ("int8_t", "uint8_t", "int16_t", "uint16_t")


VMBQM = """\
/* ircomp_mbqm for a multiplier >= 0 and 0 <= left < 32 (the saturating case of the high
 * multiply cannot occur), written without branches so that loops calling it vectorize. The
 * high multiply's (ab + nudge) / 2^31 (nudge 2^30 or 1 - 2^30 by the sign of ab, truncating)
 * equals floor((ab + 2^30) / 2^31) for every ab: bits 31..62 of ab + 2^30 (no sign test, no
 * 64-bit division; |ab| < 2^62). */
static int32_t ircomp_vmbqm(int32_t x, int32_t mult, int32_t left, int32_t right)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    const int32_t xs = ircomp_wrap_i32((uint32_t)x << left);
    const int64_t ab = (int64_t)xs * mult;
    const int32_t h = ircomp_wrap_i32((uint32_t)((uint64_t)(ab + ((int64_t)1 << 30)) >> 31));
    const int32_t rem = (int32_t)((uint32_t)h & (uint32_t)mask);
    const int32_t threshold = (mask >> 1) + (h < 0 ? 1 : 0);
    const int32_t fl = h >= 0 ? (h >> right) : ~(~h >> right);
    return fl + (rem > threshold ? 1 : 0);
}"""


def _rq_int(ctype: str) -> str:
    return f"""\
/* Requantize a row (integer mode, spec/numerics.md 5.2): y[i] = clamp(MBQM(acc[i] + bias) + zp). */
static void ircomp_vrq_{ctype}(const int32_t* restrict acc, int32_t n, int32_t bias,
                                int32_t mult, int32_t left, int32_t right, int32_t zp,
                                int32_t lo, int32_t hi, {ctype}* restrict y)
{{
    int32_t i;
    for (i = 0; i < n; ++i) {{
        int32_t r = ircomp_vmbqm(acc[i] + bias, mult, left, right) + zp;
        r = r < lo ? lo : r;
        r = r > hi ? hi : r;
        y[i] = ({ctype})r;
    }}
}}"""


def _rq_float(ctype: str) -> str:
    return f"""\
/* Requantize a row (onnx mode, spec/numerics.md 5.2): y[i] = clamp(round_half_even(float(acc[i]
 * + bias) * scale) + zp); as ircomp_round_half_even for these codes (|code| < 2^16). */
static void ircomp_vrqf_{ctype}(const int32_t* restrict acc, int32_t n, int32_t bias,
                                 float scale, int32_t zp, int32_t lo, int32_t hi,
                                 {ctype}* restrict y)
{{
    int32_t i;
    for (i = 0; i < n; ++i) {{
        int32_t r = (int32_t)ircomp_vround((float)(acc[i] + bias) * scale) + zp;
        r = r < lo ? lo : r;
        r = r > hi ? hi : r;
        y[i] = ({ctype})r;
    }}
}}"""


def _rq_int_table(ctype: str) -> str:
    return f"""\
/* ircomp_vrq_{ctype} with per-element parameters (a row across channels); y[i * ys]. */
static void ircomp_vrqt_{ctype}(const int32_t* restrict acc, int32_t n,
                                 const int32_t* restrict bias, const int32_t* restrict mult,
                                 const int32_t* restrict left, const int32_t* restrict right,
                                 const int32_t* restrict zp, int32_t lo, int32_t hi,
                                 {ctype}* restrict y, int32_t ys)
{{
    int32_t i;
    for (i = 0; i < n; ++i) {{
        int32_t r = ircomp_vmbqm(acc[i] + bias[i], mult[i], left[i], right[i]) + zp[i];
        r = r < lo ? lo : r;
        r = r > hi ? hi : r;
        y[i * ys] = ({ctype})r;
    }}
}}"""


def _rq_float_table(ctype: str) -> str:
    return f"""\
/* ircomp_vrqf_{ctype} with per-element parameters (a row across channels); y[i * ys]. */
static void ircomp_vrqft_{ctype}(const int32_t* restrict acc, int32_t n,
                                  const int32_t* restrict bias, const float* restrict scale,
                                  const int32_t* restrict zp, int32_t lo, int32_t hi,
                                  {ctype}* restrict y, int32_t ys)
{{
    int32_t i;
    for (i = 0; i < n; ++i) {{
        int32_t r = (int32_t)ircomp_vround((float)(acc[i] + bias[i]) * scale[i]) + zp[i];
        r = r < lo ? lo : r;
        r = r > hi ? hi : r;
        y[i * ys] = ({ctype})r;
    }}
}}"""


VROUND = """\
#include <float.h>
#if defined(__FAST_MATH__)
#error "the vector kernels' float requantization needs IEEE arithmetic (no -ffast-math)"
#endif
/* Round half to even of v for the <= 16-bit codes of the vector kernels: v is clamped to
 * +-2^22 (beyond the code range either way), then 1.5 * 2^23 added and subtracted rounds it
 * to an integer in the default rounding mode (float arithmetic in float: FLT_EVAL_METHOD 0;
 * otherwise the compare-and-adjust of ircomp_round_half_even). Branch-free: loops vectorize. */
static float ircomp_vround(float v)
{
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    v = v > 4194304.0f ? 4194304.0f : v;
    v = v < -4194304.0f ? -4194304.0f : v;
    return (v + 12582912.0f) - 12582912.0f;
#else
    int32_t t, odd;
    float frac;
    v = v > 4194304.0f ? 4194304.0f : v;
    v = v < -4194304.0f ? -4194304.0f : v;
    t = (int32_t)v;
    frac = v - (float)t;
    odd = t & 1;
    t += frac > 0.5f ? 1 : (frac == 0.5f ? odd : 0);
    t -= frac < -0.5f ? 1 : (frac == -0.5f ? odd : 0);
    return (float)t;
#endif
}"""


HELPERS = {
    "vmbqm": VMBQM,
    "vround": VROUND,
    "vmk8x16": """\
/* acc[j * ld + l] = sum_k c[j * kp + k] * w[k][l] for 8 pixels j (im2col rows c, kp even)
 * and 16 output channels l; w is packed [kp / 2][16][2] (pairs of k per channel). Exact int32
 * sums (no overflow: checked at generation time), so every branch below gives the same:
 * AVX-512 VNNI (vpdpwssd), AVX-512BW / AVX2 (vpmaddwd), or plain C. */
#if defined(__AVX512BW__) || defined(__AVX2__)
#include <immintrin.h>
#endif
static void ircomp_vmk8x16(const int16_t* restrict w, const int16_t* restrict c, int32_t kp,
                           int32_t* restrict acc, int32_t ld)
{
    int32_t k;
#if defined(__AVX512BW__)
#if defined(__AVX512VNNI__)
#define IRCOMP_VMK_STEP(a, j) \\
    { \\
        int32_t x; \\
        memcpy(&x, c + (j) * kp + k, 4); \\
        a = _mm512_dpwssd_epi32(a, wv, _mm512_set1_epi32(x)); \\
    }
#else
#define IRCOMP_VMK_STEP(a, j) \\
    { \\
        int32_t x; \\
        memcpy(&x, c + (j) * kp + k, 4); \\
        a = _mm512_add_epi32(a, _mm512_madd_epi16(wv, _mm512_set1_epi32(x))); \\
    }
#endif
    /* eight named accumulators (an array makes gcc copy registers every step) */
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    __m512i a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (k = 0; k < kp; k += 2) {
        const __m512i wv = _mm512_loadu_si512((const void*)(w + 16 * k));
        IRCOMP_VMK_STEP(a0, 0)
        IRCOMP_VMK_STEP(a1, 1)
        IRCOMP_VMK_STEP(a2, 2)
        IRCOMP_VMK_STEP(a3, 3)
        IRCOMP_VMK_STEP(a4, 4)
        IRCOMP_VMK_STEP(a5, 5)
        IRCOMP_VMK_STEP(a6, 6)
        IRCOMP_VMK_STEP(a7, 7)
    }
#undef IRCOMP_VMK_STEP
    _mm512_storeu_si512((void*)acc, a0);
    _mm512_storeu_si512((void*)(acc + ld), a1);
    _mm512_storeu_si512((void*)(acc + 2 * ld), a2);
    _mm512_storeu_si512((void*)(acc + 3 * ld), a3);
    _mm512_storeu_si512((void*)(acc + 4 * ld), a4);
    _mm512_storeu_si512((void*)(acc + 5 * ld), a5);
    _mm512_storeu_si512((void*)(acc + 6 * ld), a6);
    _mm512_storeu_si512((void*)(acc + 7 * ld), a7);
#elif defined(__AVX2__)
#define IRCOMP_VMK_STEP(a, b, j) \\
    { \\
        int32_t x; \\
        __m256i v; \\
        memcpy(&x, c + (h + (j)) * kp + k, 4); \\
        v = _mm256_set1_epi32(x); \\
        a = _mm256_add_epi32(a, _mm256_madd_epi16(wl, v)); \\
        b = _mm256_add_epi32(b, _mm256_madd_epi16(wh, v)); \\
    }
    int32_t h;
    for (h = 0; h < 8; h += 4) {
        __m256i a0 = _mm256_setzero_si256(), b0 = a0, a1 = a0, b1 = a0;
        __m256i a2 = a0, b2 = a0, a3 = a0, b3 = a0;
        for (k = 0; k < kp; k += 2) {
            const __m256i wl = _mm256_loadu_si256((const __m256i*)(const void*)(w + 16 * k));
            const __m256i wh =
                _mm256_loadu_si256((const __m256i*)(const void*)(w + 16 * k + 16));
            IRCOMP_VMK_STEP(a0, b0, 0)
            IRCOMP_VMK_STEP(a1, b1, 1)
            IRCOMP_VMK_STEP(a2, b2, 2)
            IRCOMP_VMK_STEP(a3, b3, 3)
        }
        _mm256_storeu_si256((__m256i*)(void*)(acc + h * ld), a0);
        _mm256_storeu_si256((__m256i*)(void*)(acc + h * ld + 8), b0);
        _mm256_storeu_si256((__m256i*)(void*)(acc + (h + 1) * ld), a1);
        _mm256_storeu_si256((__m256i*)(void*)(acc + (h + 1) * ld + 8), b1);
        _mm256_storeu_si256((__m256i*)(void*)(acc + (h + 2) * ld), a2);
        _mm256_storeu_si256((__m256i*)(void*)(acc + (h + 2) * ld + 8), b2);
        _mm256_storeu_si256((__m256i*)(void*)(acc + (h + 3) * ld), a3);
        _mm256_storeu_si256((__m256i*)(void*)(acc + (h + 3) * ld + 8), b3);
    }
#undef IRCOMP_VMK_STEP
#else
    int32_t a[8][16] = {{0}};
    int32_t j, l;
    for (k = 0; k < kp; k += 2) {
        const int16_t* const wk = w + 16 * k;
        for (j = 0; j < 8; ++j) {
            const int32_t x0 = c[j * kp + k], x1 = c[j * kp + k + 1];
            for (l = 0; l < 16; ++l) a[j][l] += wk[2 * l] * x0 + wk[2 * l + 1] * x1;
        }
    }
    for (j = 0; j < 8; ++j)
        for (l = 0; l < 16; ++l) acc[j * ld + l] = a[j][l];
#endif
}""",
    "vdw32": """\
/* Depthwise taps on 32 int16 lanes (channel-last positions q..q+31) with AVX-512BW: s += the
 * pairwise sums x[2i] w[2i] + x[2i+1] w[2i+1], e += x[2i] w[2i] (odd weights masked off); the
 * odd lanes' sums are s - e (int32 wraps; the true sums fit: checked at generation time).
 * vpdpwssd where the compiler targets AVX-512 VNNI, vpmaddwd + vpaddd otherwise. */
#if defined(__AVX512BW__)
#include <immintrin.h>
#if defined(__AVX512VNNI__)
#define IRCOMP_VDW_DP(a, x, w) _mm512_dpwssd_epi32(a, x, w)
#else
#define IRCOMP_VDW_DP(a, x, w) _mm512_add_epi32(a, _mm512_madd_epi16(x, w))
#endif
#define IRCOMP_VDW_TAP(s, e, xa, wa, mk) \\
    { \\
        const __m512i xv_ = _mm512_maskz_loadu_epi16(mk, (const void*)(xa)); \\
        const __m512i wv_ = _mm512_maskz_loadu_epi16(mk, (const void*)(wa)); \\
        s = IRCOMP_VDW_DP(s, xv_, wv_); \\
        e = IRCOMP_VDW_DP(e, xv_, _mm512_and_si512(wv_, _mm512_set1_epi32(0xffff))); \\
    }
/* acc[0..31] (the lanes of mk) = the 32 sums in position order */
static void ircomp_vdw_store(__m512i s, __m512i e, __mmask32 mk, int32_t* acc)
{
    const __m512i o = _mm512_sub_epi32(s, e);
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    _mm512_mask_storeu_epi32((void*)acc, (__mmask16)mk, _mm512_permutex2var_epi32(e, lo, o));
    _mm512_mask_storeu_epi32((void*)(acc + 16), (__mmask16)(mk >> 16),
                             _mm512_permutex2var_epi32(e, hi, o));
}
#endif""",
    "vdot4x1": """\
/* out[i] = w_i . x for the 4 int16 rows w_i = w + i * kp (kp a multiple of 16). */
static void ircomp_vdot4x1(const int16_t* restrict w, const int16_t* restrict x, int32_t kp,
                           int32_t* restrict out)
{
    const int16_t* const w0 = w;
    const int16_t* const w1 = w + kp;
    const int16_t* const w2 = w + 2 * kp;
    const int16_t* const w3 = w + 3 * kp;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int32_t k;
    for (k = 0; k < kp; ++k) {
        a0 += w0[k] * x[k];
        a1 += w1[k] * x[k];
        a2 += w2[k] * x[k];
        a3 += w3[k] * x[k];
    }
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
}""",
    **{f"vrq_{c}": _rq_int(c) for c in CTYPES},
    **{f"vrqf_{c}": _rq_float(c) for c in CTYPES},
    **{f"vrqt_{c}": _rq_int_table(c) for c in CTYPES},
    **{f"vrqft_{c}": _rq_float_table(c) for c in CTYPES},
}
HELPER_DEPS = {
    "vmbqm": ("wrap_i32",),
    **{f"{h}_{c}": ("vmbqm",) for c in CTYPES for h in ("vrq", "vrqt")},
    **{f"{h}_{c}": ("vround",) for c in CTYPES for h in ("vrqf", "vrqft")},
}


def _is_8bit(value) -> bool:  # type: ignore[no-untyped-def]
    fmt = repr_of(value).fmt
    return isinstance(fmt, Int) and fmt.width == 8


def _round(n: int, m: int) -> int:
    return (n + m - 1) // m * m


@dataclass(frozen=True)
class Requant:
    """A fused `nn.requantize`'s per-channel parameters (arrays of the output channel count)."""

    mode: str
    mult: np.ndarray  # integer mode
    left: np.ndarray
    right: np.ndarray
    scale: np.ndarray  # onnx mode (float32 values)
    zp: np.ndarray
    lo: int
    hi: int
    ctype: str


def requant_params(rq: Operation, channels: int, ctype: str) -> Requant | None:
    """The parameters of `rq` broadcast to `channels`, or None when the vector requantization
    does not apply (an input zero point, an unknown mode, a left shift of 32 or more)."""
    if rq.get("input_zero_point") or ctype not in CTYPES:  # type: ignore[attr-defined]
        return None
    mode = rq.get("mode")  # type: ignore[attr-defined]
    scale = np.broadcast_to(np.asarray(rq.get("scale"), np.float64), (channels,))  # type: ignore[attr-defined]
    zp = np.broadcast_to(np.asarray(rq.get("zero_point"), np.int64), (channels,))  # type: ignore[attr-defined]
    lo, hi = repr_of(rq.results[0]).code_range()
    clamp = rq.get("clamp")  # type: ignore[attr-defined]
    if clamp:
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    zeros = np.zeros(channels, np.int64)
    if mode == "integer":
        mult, shift = quantize_multiplier_array(scale)
        if (mult < 0).any() or (shift >= 32).any():
            return None
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        return Requant(mode, mult, left, right, scale, zp, lo, hi, ctype)
    if mode == "onnx":
        f32 = scale.astype(np.float32).astype(np.float64)
        return Requant(mode, zeros, zeros, zeros, f32, zp, lo, hi, ctype)
    return None


def vector_kind(mac: Operation, rq: Operation, ctype: str) -> str | None:
    """Which vector kernel serves `mac` fused with `rq`: "vconv", "vdw", "vlinear", or None."""
    x, w = mac.operands[0], mac.operands[1]
    if not (_is_8bit(x) and _is_8bit(w)) or not isinstance(w.owner, nn.WeightOp):
        return None
    if len(mac.operands) > 2 and not isinstance(mac.operands[2].owner, nn.WeightOp):
        return None
    channels = w.type.get_shape()[0]  # type: ignore[attr-defined]
    if requant_params(rq, channels, ctype) is None:
        return None
    if isinstance(mac, nn.LinearOp):
        return "vlinear"
    if isinstance(mac, nn.Conv2dOp):
        groups = mac.get("groups")
        o, cg = w.type.get_shape()[:2]  # type: ignore[attr-defined]
        n, c = x.type.get_shape()[:2]  # type: ignore[attr-defined]
        if n != 1:
            return None
        if groups == 1:
            return "vconv"
        if groups == c == o and cg == 1:
            return "vdw"
    return None


def fits_int32(mac: Operation, weights: np.ndarray, bias: np.ndarray | None) -> bool:
    """No partial sum of `mac` (int32 accumulation from 0, bias added last) can leave int32."""
    x = mac.operands[0]
    lo, hi = repr_of(x).code_range()
    zx = int(mac.get("input_zero_point"))  # type: ignore[attr-defined]
    zw = int(mac.get("weight_zero_point"))  # type: ignore[attr-defined]
    xmax = max(abs(lo - zx), abs(hi - zx))
    rows = np.abs(weights.reshape(weights.shape[0], -1).astype(np.int64) - zw).sum(axis=1)
    total = rows * xmax
    if bias is not None:
        total = total + np.abs(bias.astype(np.int64)).reshape(-1)
    return int(total.max(initial=0)) <= INT32_MAX


def _geometry(mac: Operation, shape_of: Callable) -> dict:  # type: ignore[type-arg]
    n, c, h, wd = shape_of(mac.operands[0])
    o, cg, kh, kw = shape_of(mac.operands[1])
    _, _, oh, ow = shape_of(mac.results[0])
    sh, sw = mac.get("strides")  # type: ignore[attr-defined]
    dh, dw = mac.get("dilations")  # type: ignore[attr-defined]
    pt, pl, _, _ = mac.get("padding")  # type: ignore[attr-defined]
    hp = max(pt + h, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(pl + wd, (ow - 1) * sw + (kw - 1) * dw + 1)
    return dict(n=n, c=c, h=h, w=wd, o=o, cg=cg, kh=kh, kw=kw, oh=oh, ow=ow, sh=sh, sw=sw,
                dh=dh, dw=dw, pt=pt, pl=pl, hp=hp, wp=wp)  # fmt: skip


def _direct(g: dict) -> bool:
    """A 1x1, stride-1, unpadded conv with an even channel count reads its channel-last input
    buffer as the im2col matrix."""
    return (
        g["kh"] == g["kw"] == 1
        and g["sh"] == g["sw"] == 1
        and g["hp"] == g["h"]
        and g["wp"] == g["w"]
        and g["c"] % 2 == 0
    )


def _conv_dims(g: dict) -> tuple[int, int]:
    """(Kp, pixel block) of a vconv."""
    kp = _round(g["c"] * g["kh"] * g["kw"], 2)
    pixels = g["oh"] * g["ow"]
    block = max(TILE_PX, BLOCK_BYTES // (2 * kp) // TILE_PX * TILE_PX)
    acc_cap = ACC_BYTES // (4 * _round(g["o"], TILE_OC)) // TILE_PX * TILE_PX
    block = min(block, max(TILE_PX, acc_cap))
    return kp, min(_round(pixels, TILE_PX), block)


def _xp_elements(g: dict, slack_pixels: int = 0) -> int:
    return _round((g["hp"] * g["wp"] + slack_pixels) * g["c"], 32)


def _conv_layout(g: dict) -> tuple[int, int, int]:
    """int16 elements of the input buffer and the im2col block, int32 accumulators (each a
    multiple of 32 elements: the parts start 64-byte apart from the scratch's start)."""
    kp, block = _conv_dims(g)
    direct = _direct(g)
    xp = _xp_elements(g, TILE_PX - 1 if direct else 0)
    col = 0 if direct else _round(block * kp, 32)
    acc = _round(g["o"], TILE_OC) * block
    return xp, col, acc


def _dw_layout(g: dict, kind: str) -> tuple[int, int]:
    if kind == "vdwc":  # the whole padded input, channel last; one pixel's accumulators
        return _xp_elements(g), _round(g["c"], 16)
    if kind == "vdwr":  # the same; one output row's accumulators
        return _xp_elements(g), _round(g["ow"] * g["c"], 16)
    plane = _round(g["hp"] * g["wp"] + (g["kw"] - 1) * g["dw"], 32)
    acc = g["oh"] * (g["wp"] if g["sh"] == g["sw"] == 1 else g["ow"])
    return plane, _round(acc, 16)


def scratch_bytes(kind: str, mac: Operation, shape_of: Callable) -> int:
    """Bytes of scratch (int16 buffers and int32 accumulators) the vector kernel needs."""
    if kind == "vlinear":
        out_f, in_f = shape_of(mac.operands[1])
        rows = math.prod(shape_of(mac.operands[0])) // in_f
        return 2 * _round(rows * _round(in_f, LANES), 32) + 4 * _round(out_f, 4)
    g = _geometry(mac, shape_of)
    if kind == "vconv":
        xp, col, acc = _conv_layout(g)
        return 2 * (xp + col) + 4 * acc
    plane, acc = _dw_layout(g, kind)
    return 2 * plane + 4 * acc


def pack_weights(kind: str, weights: np.ndarray, mac: Operation) -> np.ndarray:
    """int16 weights minus their zero point, in the layout the vector kernel of `mac` reads."""
    w = weights.astype(np.int64) - int(mac.get("weight_zero_point"))  # type: ignore[attr-defined]
    if kind == "vdw":  # [C][kh * kw]
        return w.reshape(w.shape[0], -1).astype(np.int16)
    if kind == "vdwc":  # [kh * kw][C]
        return np.ascontiguousarray(w.reshape(w.shape[0], -1).T).astype(np.int16)
    if kind == "vdwr":  # [kh * kw][OW][C]: each tap's channel vector repeated along a row
        ow = mac.results[0].type.get_shape()[3]  # type: ignore[attr-defined]
        return np.tile(w.reshape(w.shape[0], -1).T, (1, ow)).astype(np.int16)
    if kind == "vconv":  # [O/16][K/2][16][2]: k in the im2col order (kh, kw, C), pairs of k
        rows = w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        o, k = rows.shape
        full = np.zeros((_round(o, TILE_OC), _round(k, 2)), np.int64)
        full[:o, :k] = rows
        tiles = full.reshape(-1, TILE_OC, full.shape[1] // 2, 2).transpose(0, 2, 1, 3)
        return np.ascontiguousarray(tiles).reshape(-1).astype(np.int16)
    rows = w.reshape(w.shape[0], -1)
    out = np.zeros((_round(rows.shape[0], 4), _round(rows.shape[1], LANES)), np.int16)
    out[: rows.shape[0], : rows.shape[1]] = rows
    return out


def _lit(value: float | int, ctype: str) -> str:
    if ctype == "float":
        v = float(np.float32(value))
        text = f"{v:.9g}"
        return text + ("" if any(ch in text for ch in ".en") else ".0") + "f"
    value = int(value)
    return "(-2147483647 - 1)" if value == -(1 << 31) else str(value)


class _Params:
    """Per-channel requantization parameters as C expressions: literals when all channels
    agree, else `static const` tables (appended to `consts`) indexed by the channel."""

    def __init__(self, prefix: str, p: Requant, consts: list[str], const_array: Callable):
        self.prefix, self.p, self.consts, self.const_array = prefix, p, consts, const_array

    def table(self, name: str, values: np.ndarray, ctype: str) -> str:
        table = f"{self.prefix}_{name}"
        if not any(f" {table}[" in c for c in self.consts):
            self.consts.append(self.const_array(table, ctype, values))
        return table

    def get(self, name: str, values: np.ndarray, ctype: str, index: str) -> str:
        if (values == values.flat[0]).all():
            return _lit(values.flat[0], ctype)
        return f"{self.table(name, values, ctype)}[{index}]"

    def row(self, acc: str, n: str, bias: str, target: str, ch: str) -> str:
        """The call requantizing `n` accumulators of channel `ch` into `target`."""
        p = self.p
        zp = self.get("zp", p.zp, "int32_t", ch)
        if p.mode == "integer":
            mult = self.get("mult", p.mult, "int32_t", ch)
            left = self.get("left", p.left, "int32_t", ch)
            right = self.get("right", p.right, "int32_t", ch)
            return (
                f"ircomp_vrq_{p.ctype}({acc}, {n}, {bias}, {mult}, {left}, {right}, {zp}, "
                f"{p.lo}, {p.hi}, {target});"
            )
        scale = self.get("scale", p.scale, "float", ch)
        return (
            f"ircomp_vrqf_{p.ctype}({acc}, {n}, {bias}, {scale}, {zp}, {p.lo}, {p.hi}, {target});"
        )

    def across(self, acc: str, bias: str | None, target: str, stride: str, repeat: int = 1) -> str:
        """The call requantizing one pixel's accumulators of every channel (tables), or of
        `repeat` consecutive channel-last pixels."""
        p = self.p
        n = len(p.zp) * repeat
        sfx = f"_x{repeat}" if repeat > 1 else ""

        def tab(name: str, values: np.ndarray, ctype: str) -> str:
            return self.table(name + sfx, np.tile(values, repeat), ctype)

        b = bias or tab("nobias", np.zeros(len(p.zp), np.int64), "int32_t")
        zp = tab("zp", p.zp, "int32_t")
        if p.mode == "integer":
            mult = tab("mult", p.mult, "int32_t")
            left = tab("left", p.left, "int32_t")
            right = tab("right", p.right, "int32_t")
            return (
                f"ircomp_vrqt_{p.ctype}({acc}, {n}, {b}, {mult}, {left}, {right}, {zp}, "
                f"{p.lo}, {p.hi}, {target}, {stride});"
            )
        scale = tab("scale", p.scale, "float")
        return (
            f"ircomp_vrqft_{p.ctype}({acc}, {n}, {b}, {scale}, {zp}, {p.lo}, {p.hi}, "
            f"{target}, {stride});"
        )

    def helper(self, table: bool = False) -> str:
        kind = "vrq" if self.p.mode == "integer" else "vrqf"
        return f"{kind}{'t' if table else ''}_{self.p.ctype}"


def kernel_body(
    kind: str,
    mac: Operation,
    rq: Operation,
    shape_of: Callable,
    prefix: str,
    ctype: str,
    const_array: Callable,
    in_nhwc: bool = False,
    out_nhwc: bool = False,
) -> tuple[list[str], list[str], tuple[str, ...]]:
    """(C statements, constant tables, helpers) of a vector kernel with parameters x, w (the
    packed int16 weights), [b,] y and the scratch `s`. `in_nhwc` / `out_nhwc`: the input /
    output 4-D tensor is stored channel last (`[N][H][W][C]`) instead of NCHW."""
    channels = shape_of(mac.operands[1])[0]
    params = requant_params(rq, channels, ctype)
    assert params is not None
    consts: list[str] = []
    rows = _Params(prefix, params, consts, const_array)
    bias = len(mac.operands) > 2
    zx = int(mac.get("input_zero_point"))  # type: ignore[attr-defined]
    layouts = f"{'NHWC' if in_nhwc else 'NCHW'} -> {'NHWC' if out_nhwc else 'NCHW'}"
    note = f"/* vector kernel {kind}: {layouts} */"
    if kind == "vlinear":
        body, table = _linear_body(mac, shape_of, rows, bias, zx)
        return [f"/* vector kernel {kind} */", *body], consts, ("vdot4x1", rows.helper(table))
    g = _geometry(mac, shape_of)
    if kind == "vconv":
        body = _conv_body(g, rows, bias, zx, in_nhwc, out_nhwc)
        return [note, *body], consts, ("vmk8x16", rows.helper(True))
    if kind in ("vdwc", "vdwr"):
        body = _dwc_body(g, rows, bias, zx, in_nhwc, out_nhwc, kind == "vdwr")
        helpers = ("vdw32", rows.helper(True)) if g["kh"] * g["kw"] <= UNROLL_LIMIT else ()
        return [note, *body], consts, helpers or (rows.helper(True),)
    return [note, *_dw_body(g, rows, bias, zx)], consts, (rows.helper(),)


def _declare(lines: list[str]) -> list[str]:
    """`lines` preceded by the declaration of the loop variables they use."""
    text = "\n".join(lines)
    names = [
        v
        for v in ("i", "ci", "r", "q", "p0", "oc", "j", "oy", "ox")
        if re.search(rf"\b{v}\b", text)
    ]
    return [f"int32_t {', '.join(names)};", *lines] if names else lines


def _offset(expr: str, zx: int) -> str:
    return f"(int16_t)((int32_t){expr} - {zx})" if zx else f"(int16_t){expr}"


def _fill_xp(g: dict, zx: int, in_nhwc: bool) -> list[str]:
    """Statements copying x into `xp` ([Hp][Wp][C] int16, x - zp; the padding is zeroed
    apart)."""
    c, h, w, wp = g["c"], g["h"], g["w"], g["wp"]
    if in_nhwc:
        src = f"x[r * {w * c} + q]"
        return [
            f"for (r = 0; r < {h}; ++r)",
            f"    for (q = 0; q < {w * c}; ++q)",
            f"        xp[((r + {g['pt']}) * {wp} + {g['pl']}) * {c} + q] = {_offset(src, zx)};",
        ]
    src = f"x[(ci * {h} + r) * {w} + q]"
    return [
        f"for (r = 0; r < {h}; ++r)",
        f"    for (q = 0; q < {w}; ++q)",
        f"        for (ci = 0; ci < {c}; ++ci)",
        f"            xp[((r + {g['pt']}) * {wp} + q + {g['pl']}) * {c} + ci] = "
        f"{_offset(src, zx)};",
    ]


def _conv_body(
    g: dict, rows: _Params, bias: bool, zx: int, in_nhwc: bool, out_nhwc: bool
) -> list[str]:
    kp, block = _conv_dims(g)
    xp_n, col_n, _ = _conv_layout(g)
    c, h, w, hp, wp = g["c"], g["h"], g["w"], g["hp"], g["wp"]
    o, ow = g["o"], g["ow"]
    op = _round(o, TILE_OC)
    pixels = g["oh"] * ow
    direct = _direct(g)
    lines = [
        "int16_t* const xp = s; /* [Hp][Wp][C]: x - zp, channel last, zero padding */",
    ]
    if not direct:
        lines.append(f"int16_t* const col = s + {xp_n}; /* im2col block [{block}][{kp}] */")
    lines.append(
        f"int32_t* const acc = (int32_t*)(void*)(s + {xp_n + col_n}); /* [{block}][{op}] */"
    )
    if direct:  # only the slack rows the last pixel block reads
        lines.append(f"for (i = {h * w * c}; i < {xp_n}; ++i) xp[i] = 0;")
    elif hp * wp != h * w:
        lines.append(f"for (i = 0; i < {xp_n}; ++i) xp[i] = 0;")
    lines += _fill_xp(g, zx, in_nhwc)
    if not direct:
        lines.append(f"for (i = 0; i < {block * kp}; ++i) col[i] = 0; /* K..Kp stays 0 */")
    lines += [
        f"for (p0 = 0; p0 < {pixels}; p0 += {block}) {{",
        f"    const int32_t np = {pixels} - p0 < {block} ? {pixels} - p0 : {block};",
    ]
    if direct:
        lines.append(f"    const int16_t* const col = xp + p0 * {c};")
    else:
        kw, dh, dw, sh, sw = g["kw"], g["dh"], g["dw"], g["sh"], g["sw"]
        copies = (
            [
                f"        for (r = 0; r < {g['kh']}; ++r)",
                f"            memcpy(cr + r * {kw * c}, xr + r * {dh * wp * c}, "
                f"{kw * c} * sizeof(int16_t));",
            ]
            if dw == 1
            else [
                f"        for (r = 0; r < {g['kh']}; ++r)",
                f"            for (q = 0; q < {kw}; ++q)",
                f"                memcpy(cr + (r * {kw} + q) * {c}, "
                f"xr + (r * {dh * wp} + q * {dw}) * {c}, {c} * sizeof(int16_t));",
            ]
        )
        lines += [
            "    for (j = 0; j < np; ++j) {",
            f"        const int32_t py = (p0 + j) / {ow}, px = (p0 + j) % {ow};",
            f"        int16_t* const cr = col + j * {kp};",
            f"        const int16_t* const xr = xp + (py * {sh * wp} + px * {sw}) * {c};",
            *copies,
            "    }",
        ]
    lines += [
        f"    for (oc = 0; oc < {op}; oc += {TILE_OC})",
        f"        for (j = 0; j < np; j += {TILE_PX})",
        f"            ircomp_vmk8x16(w + oc * {kp}, col + j * {kp}, {kp}, acc + j * {op} + oc, "
        f"{op});",
        "    for (j = 0; j < np; ++j)",
    ]
    target, stride = (f"y + (p0 + j) * {o}", "1") if out_nhwc else ("y + p0 + j", str(pixels))
    lines.append("        " + rows.across(f"acc + j * {op}", "b" if bias else None, target, stride))
    lines.append("}")
    return _declare(lines)


def _dw_body(g: dict, rows: _Params, bias: bool, zx: int) -> list[str]:
    """Depthwise conv from and to NCHW: one channel's plane at a time."""
    c, h, w, wp = g["c"], g["h"], g["w"], g["wp"]
    kh, kw, dh, dw, sh, sw = g["kh"], g["kw"], g["dh"], g["dw"], g["sh"], g["sw"]
    oh, ow = g["oh"], g["ow"]
    plane_n, _ = _dw_layout(g, "vdw")
    taps = kh * kw
    b = "b[ch]" if bias else "0"
    src = f"x[(ch * {h} + i) * {w} + q]"
    lines = [
        "int32_t ch, i, q, oy;",
        "int16_t* const pl = s; /* one channel's plane: x - zp, zero padding */",
        f"int32_t* const acc = (int32_t*)(void*)(s + {plane_n});",
        f"for (ch = 0; ch < {c}; ++ch) {{",
        f"    const int16_t* const wc = w + ch * {taps};",
        f"    for (i = 0; i < {plane_n}; ++i) pl[i] = 0;",
        f"    for (i = 0; i < {h}; ++i)",
        f"        for (q = 0; q < {w}; ++q) pl[(i + {g['pt']}) * {wp} + q + {g['pl']}] = "
        f"{_offset(src, zx)};",
    ]
    offsets = [ky * dh * wp + kx * dw for ky in range(kh) for kx in range(kw)]
    if sh == sw == 1:
        n, pos, out = oh * wp, "q", "acc[q]"
    else:
        n, pos, out = ow, f"q * {sw}", f"acc[oy * {ow} + q]"
    if taps <= UNROLL_LIMIT:
        terms = " + ".join(f"wc[{t}] * r[{pos} + {off}]" for t, off in enumerate(offsets))
        window = [f"for (q = 0; q < {n}; ++q) {out} = {terms};"]
    else:
        window = [
            f"for (q = 0; q < {n}; ++q) {out} = 0;",
            f"for (i = 0; i < {taps}; ++i) {{",
            f"    const int32_t wt = wc[i], off = (i / {kw}) * {dh * wp} + (i % {kw}) * {dw};",
            f"    for (q = 0; q < {n}; ++q) {out} += wt * r[{pos} + off];",
            "}",
        ]
    if sh == sw == 1:  # the whole padded-width plane at once, then its valid columns
        lines += [
            "    {",
            "        const int16_t* const r = pl;",
            *("        " + line for line in window),
            "    }",
        ]
        if wp != ow:
            lines += [
                f"    for (oy = 1; oy < {oh}; ++oy)",
                f"        for (q = 0; q < {ow}; ++q) acc[oy * {ow} + q] = acc[oy * {wp} + q];",
            ]
    else:
        lines += [
            f"    for (oy = 0; oy < {oh}; ++oy) {{",
            f"        const int16_t* const r = pl + oy * {sh * wp};",
            *("        " + line for line in window),
            "    }",
        ]
    lines += ["    " + rows.row("acc", str(oh * ow), b, f"y + ch * {oh * ow}", "ch"), "}"]
    return lines


def _dwc_body(
    g: dict, rows: _Params, bias: bool, zx: int, in_nhwc: bool, out_nhwc: bool, row: bool
) -> list[str]:
    """Depthwise conv on the channel-last padded input, requantized across channels: every
    channel of one output pixel at a time (weights [kh * kw][C]), or with `row` (horizontal
    stride 1, channel-last output) a whole output row as one flat loop over OW * C (weights
    [kh * kw][OW * C], each tap's channel vector repeated)."""
    c, h, w, hp, wp = g["c"], g["h"], g["w"], g["hp"], g["wp"]
    kh, kw, dh, dw, sh, sw = g["kh"], g["kw"], g["dh"], g["dw"], g["sh"], g["sw"]
    oh, ow = g["oh"], g["ow"]
    xp_n, _ = _dw_layout(g, "vdwr" if row else "vdwc")
    taps = kh * kw
    n = ow * c if row else c
    lines = [
        "int16_t* const xp = s; /* [Hp][Wp][C]: x - zp, channel last, zero padding */",
        f"int32_t* const acc = (int32_t*)(void*)(s + {xp_n}); /* [{n}] */",
    ]
    if hp * wp != h * w:
        lines.append(f"for (i = 0; i < {xp_n}; ++i) xp[i] = 0;")
    lines += _fill_xp(g, zx, in_nhwc)
    offsets = [(ky * dh * wp + kx * dw) * c for ky in range(kh) for kx in range(kw)]
    if taps <= UNROLL_LIMIT:
        terms = " + ".join(f"w[{t * n} + q] * xr[{off} + q]" for t, off in enumerate(offsets))
        tail = "" if n % 32 == 0 else f" : ((__mmask32)1 << ({n} - q)) - 1u"
        mk = "(__mmask32)0xffffffffu" if not tail else f"({n} - q >= 32 ? 0xffffffffu{tail})"
        window = [
            "#if defined(__AVX512BW__)",
            f"for (q = 0; q < {n}; q += 32) {{",
            f"    const __mmask32 mk = {mk};",
            "    __m512i vs = _mm512_setzero_si512(), ve = vs;",
            *(
                f"    IRCOMP_VDW_TAP(vs, ve, xr + {off} + q, w + {t * n} + q, mk)"
                for t, off in enumerate(offsets)
            ),
            "    ircomp_vdw_store(vs, ve, mk, acc + q);",
            "}",
            "#else",
            f"for (q = 0; q < {n}; ++q) acc[q] = {terms};",
            "#endif",
        ]
    else:
        window = [
            f"for (q = 0; q < {n}; ++q) acc[q] = 0;",
            f"for (i = 0; i < {taps}; ++i) {{",
            f"    const int32_t off = ((i / {kw}) * {dh * wp} + (i % {kw}) * {dw}) * {c};",
            f"    for (q = 0; q < {n}; ++q) acc[q] += w[i * {n} + q] * xr[off + q];",
            "}",
        ]
    bias_name = "b" if bias else None
    if row:
        add_bias = (
            [
                f"    for (ox = 0; ox < {ow}; ++ox)",
                f"        for (q = 0; q < {c}; ++q) acc[ox * {c} + q] += b[q];",
            ]
            if bias
            else []
        )
        lines += [
            f"for (oy = 0; oy < {oh}; ++oy) {{",
            f"    const int16_t* const xr = xp + oy * {sh * wp * c};",
            *("    " + line for line in window),
            *add_bias,
            "    " + rows.across("acc", None, f"y + oy * {ow * c}", "1", ow),
            "}",
        ]
        return _declare(lines)
    target, stride = (
        (f"y + (oy * {ow} + ox) * {c}", "1") if out_nhwc else (f"y + oy * {ow} + ox", str(oh * ow))
    )
    lines += [
        f"for (oy = 0; oy < {oh}; ++oy) {{",
        f"    for (ox = 0; ox < {ow}; ++ox) {{",
        f"        const int16_t* const xr = xp + (oy * {sh * wp} + ox * {sw}) * {c};",
        *("        " + line for line in window),
        "        " + rows.across("acc", bias_name, target, stride),
        "    }",
        "}",
    ]
    return _declare(lines)


def _linear_body(
    mac: Operation, shape_of: Callable, rows: _Params, bias: bool, zx: int
) -> tuple[list[str], bool]:
    """The statements, and whether they requantize with per-channel tables."""
    out_f, in_f = shape_of(mac.operands[1])
    n_rows = math.prod(shape_of(mac.operands[0])) // in_f
    kp = _round(in_f, LANES)
    xs_n = _round(n_rows * kp, 32)
    op = _round(out_f, 4)
    p = rows.p
    per_tensor = all((v == v.flat[0]).all() for v in (p.mult, p.left, p.right, p.scale, p.zp))
    lines = [
        "int32_t m, o, k;",
        "int16_t* const xs = s; /* rows of x - zp, zero padded */",
        f"int32_t* const acc = (int32_t*)(void*)(s + {xs_n});",
        f"for (m = 0; m < {n_rows}; ++m) {{",
        f"    int16_t* const xr = xs + m * {kp};",
        f"    for (k = 0; k < {in_f}; ++k) xr[k] = {_offset(f'x[m * {in_f} + k]', zx)};",
        f"    for (k = {in_f}; k < {kp}; ++k) xr[k] = 0;",
        f"    for (o = 0; o < {op}; o += 4) ircomp_vdot4x1(w + o * {kp}, xr, {kp}, acc + o);",
    ]
    if per_tensor:
        if bias:
            lines.append(f"    for (o = 0; o < {out_f}; ++o) acc[o] += b[o];")
        lines.append("    " + rows.row("acc", str(out_f), "0", f"y + m * {out_f}", "0"))
    else:
        lines.append("    " + rows.across("acc", "b" if bias else None, f"y + m * {out_f}", "1"))
    lines.append("}")
    return lines, not per_tensor


__all__ = [
    "HELPERS",
    "HELPER_DEPS",
    "fits_int32",
    "kernel_body",
    "pack_weights",
    "requant_params",
    "scratch_bytes",
    "vector_kind",
]
