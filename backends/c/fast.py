"""Fast C kernels (`kernels="fast"`) for int8 multiply-accumulate fused with its requantization,
shaped for the Cortex-M4's DSP extension and bit-exact with the portable kernels.

* `conv`: `nn.conv2d` with one group: im2col of two output pixels at a time into an int16
  scratch buffer (input offset applied, padding 0; interior windows copied with constant
  offsets), then a 2x2 register-blocked dot product (two output channels x two pixels) on
  dual 16-bit MACs;
* `dw`: depthwise `nn.conv2d` (groups = channels, one filter per channel): each channel's plane
  is copied once, offset and padded, into int16 scratch; the window is fully unrolled with no
  bounds checks, horizontally adjacent taps paired into one dual MAC;
* `linear`: `nn.linear`: four output rows at a time (then two) straight from the int8 input,
  its zero point added in both 16-bit halves by `SXTAB16` once per input word (no scratch).

Dual MACs: the weights are stored reordered in groups of four (`w0 w2 w1 w3`) so that `SXTB16`
of a 32-bit load gives the int16 pairs `(w0, w1)` and, after a rotation by 8, `(w2, w3)`;
`SMLAD` multiplies them with two int16 pairs of the scratch buffer and adds both products to
the accumulator. With `__ARM_FEATURE_DSP` these are the ACLE intrinsics `__sxtb16` / `__smlad`;
elsewhere portable C with the same results (modulo-2^32 accumulation, like the portable
kernels), so the host build checks the same code. The requantization is applied to each
accumulator as it is produced (spec/c_abi.md), in `integer` mode through `ircomp_frq` (one
SMLAL; the same results as the portable `ircomp_mbqm`). Scratch buffers live in the arena,
planned like tensors over their op only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from xdsl.ir import Operation

from ircomp.dialects import nn
from ircomp.interpreter.values import repr_of
from ircomp.numerics import Int

KERNEL_CHOICES = ("portable", "fast", "vector")
UNROLL_LIMIT = 64  # largest depthwise window unrolled term by term

HELPERS = {
    "simd": """\
/* Dual 16-bit MAC primitives (ARM ACLE on cores with the DSP extension, portable C
 * elsewhere; identical results). The fast kernels read little-endian 32-bit words. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "kernels=fast assumes a little-endian target"
#endif
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define IRCOMP_DSP 1
#else
#define IRCOMP_DSP 0
#endif

static uint32_t ircomp_read_u32(const void* p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* SXTB16: sign-extend bytes 0 and 2 of x into the two halves of a word. */
static uint32_t ircomp_sxtb16(uint32_t x)
{
#if IRCOMP_DSP
    return (uint32_t)__sxtb16((int32_t)x);
#else
    const uint32_t lo = ((x & 0xffu) ^ 0x80u) - 0x80u;
    const uint32_t hi = (((x >> 16) & 0xffu) ^ 0x80u) - 0x80u;
    return (lo & 0xffffu) | (hi << 16);
#endif
}

/* SMLAD: acc + lo(a) * lo(b) + hi(a) * hi(b), halves signed 16-bit, modulo 2^32. */
static int32_t ircomp_smlad(uint32_t a, uint32_t b, int32_t acc)
{
#if IRCOMP_DSP
    return __smlad((int32_t)a, (int32_t)b, acc);
#else
    const int32_t a0 = (int32_t)((a & 0xffffu) ^ 0x8000u) - 0x8000;
    const int32_t a1 = (int32_t)((a >> 16) ^ 0x8000u) - 0x8000;
    const int32_t b0 = (int32_t)((b & 0xffffu) ^ 0x8000u) - 0x8000;
    const int32_t b1 = (int32_t)((b >> 16) ^ 0x8000u) - 0x8000;
    return ircomp_wrap_i32((uint32_t)acc + (uint32_t)(a0 * b0) + (uint32_t)(a1 * b1));
#endif
}""",
    "sxtb16r8": """\
/* SXTB16 of x rotated right by 8: bytes 1 and 3 sign-extended (one instruction with DSP). */
static uint32_t ircomp_sxtb16_r8(uint32_t x)
{
#if IRCOMP_DSP && defined(__GNUC__)
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
#else
    return ircomp_sxtb16((x >> 8) | (x << 24));
#endif
}""",
    "dot2x2s": """\
/* acc[2 * i + j] += row_i . col_j over k4 groups of 4, row 1 at w + wo and column 1 at
 * c + co (rows reordered w0 w2 w1 w3); pointers stepped, offsets constant after inlining. */
IRCOMP_INLINE void ircomp_dot2x2s(const int8_t* w, int32_t wo, const int16_t* c, int32_t co,
                                  int32_t k4, int32_t* acc)
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    const int8_t* const end = w + 4 * k4;
    const int8_t* const end2 = w + 8 * (k4 / 2);
#define IRCOMP_DOT2X2_STEP(d)                                                               \\
    do {                                                                                    \\
        const int8_t* const wd = w + 4 * (d);                                               \\
        const int16_t* const cd = c + 4 * (d);                                              \\
        const uint32_t wa = ircomp_read_u32(wd), wb = ircomp_read_u32(wd + wo);             \\
        const uint32_t wa01 = ircomp_sxtb16(wa), wa23 = ircomp_sxtb16_r8(wa);               \\
        const uint32_t wb01 = ircomp_sxtb16(wb), wb23 = ircomp_sxtb16_r8(wb);               \\
        const uint32_t x01 = ircomp_read_u32(cd), x23 = ircomp_read_u32(cd + 2);            \\
        const uint32_t y01 = ircomp_read_u32(cd + co), y23 = ircomp_read_u32(cd + co + 2);  \\
        a00 = ircomp_smlad(wa23, x23, ircomp_smlad(wa01, x01, a00));                        \\
        a01 = ircomp_smlad(wa23, y23, ircomp_smlad(wa01, y01, a01));                        \\
        a10 = ircomp_smlad(wb23, x23, ircomp_smlad(wb01, x01, a10));                        \\
        a11 = ircomp_smlad(wb23, y23, ircomp_smlad(wb01, y01, a11));                        \\
    } while (0)
    while (w != end2) { /* two groups of 4 per pass, then an odd last group */
        IRCOMP_DOT2X2_STEP(0);
        IRCOMP_DOT2X2_STEP(1);
        w += 8;
        c += 8;
    }
    if (w != end) IRCOMP_DOT2X2_STEP(0);
#undef IRCOMP_DOT2X2_STEP
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}""",
    "sxtab16": """\
/* SXTAB16: a + the sign-extended bytes 0 and 2 of x, per 16-bit half. */
static uint32_t ircomp_sxtab16(uint32_t a, uint32_t x)
{
#if IRCOMP_DSP
    return (uint32_t)__sxtab16((int32_t)a, (int32_t)x);
#else
    const uint32_t e = ircomp_sxtb16(x);
    return ((a + e) & 0xffffu) | (((a >> 16) + (e >> 16)) << 16);
#endif
}""",
    "dot2x1": """\
/* acc[i] += row_i . (x - zp) over k4 groups of 4 int8 (rows and x in natural order; both
 * split into the pairs (0, 2) and (1, 3)); offset = (-zp) in both halves. */
IRCOMP_INLINE void ircomp_dot2x1(const int8_t* w0, const int8_t* w1, const int8_t* x,
                                 int32_t k4, uint32_t offset, int32_t* acc)
{
    int32_t a0 = acc[0], a1 = acc[1];
    int32_t k;
    for (k = 0; k < k4; ++k) {
        const uint32_t xw = ircomp_read_u32(x + 4 * k);
        const uint32_t x02 = ircomp_sxtab16(offset, xw);
        const uint32_t x13 = ircomp_sxtab16(offset, (xw >> 8) | (xw << 24));
        const uint32_t wa = ircomp_read_u32(w0 + 4 * k);
        const uint32_t wb = ircomp_read_u32(w1 + 4 * k);
        a0 = ircomp_smlad(ircomp_sxtb16((wa >> 8) | (wa << 24)), x13,
                          ircomp_smlad(ircomp_sxtb16(wa), x02, a0));
        a1 = ircomp_smlad(ircomp_sxtb16((wb >> 8) | (wb << 24)), x13,
                          ircomp_smlad(ircomp_sxtb16(wb), x02, a1));
    }
    acc[0] = a0;
    acc[1] = a1;
}""",
}
HELPERS["frq"] = """\
/* TFLite MultiplyByQuantizedMultiplier for multiplier >= 0, 0 <= left, right <= 31 (the same
 * results as ircomp_mbqm there; SRDHM cannot saturate without a multiplier of INT32_MIN):
 * SRDHM(a, m) = floor((a * m + 2^30) / 2^31) (gemmlowp's nudge and truncating division give
 * exactly this), then RoundingDivideByPOT. One SMLAL and a few ALU ops on the Cortex-M4. */
IRCOMP_INLINE int32_t ircomp_frq(int32_t x, int32_t mult, int32_t left, int32_t right)
{
    const int64_t p = (int64_t)ircomp_wrap_i32((uint32_t)x << left) * mult + ((int64_t)1 << 30);
    const int32_t h = ircomp_wrap_i32((uint32_t)((uint64_t)p >> 31));
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    const int32_t rem = (int32_t)((uint32_t)h & (uint32_t)mask);
    const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)h >> 31);
    const int32_t fl = h >= 0 ? (h >> right) : ~(~h >> right);
    return fl + (rem > threshold ? 1 : 0);
}"""
HELPERS["dot4x1"] = """\
/* SXTAB16 of x rotated right by 8: a + the sign-extended bytes 1 and 3 of x, per half. */
static uint32_t ircomp_sxtab16_r8(uint32_t a, uint32_t x)
{
#if IRCOMP_DSP && defined(__GNUC__)
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
#else
    return ircomp_sxtab16(a, (x >> 8) | (x << 24));
#endif
}

/* acc[i] += row_i . (x - zp) for the 4 rows at w + i * ws over k4 groups of 4 int8 (natural
 * order, split into the pairs (0, 2) and (1, 3)); each input word is expanded once for all
 * four rows; offset = (-zp) in both halves. */
IRCOMP_INLINE void ircomp_dot4x1(const int8_t* w, int32_t ws, const int8_t* x, int32_t k4,
                                 uint32_t offset, int32_t* acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int8_t* const end = x + 4 * k4;
    while (x != end) {
        const uint32_t xw = ircomp_read_u32(x);
        const uint32_t x02 = ircomp_sxtab16(offset, xw), x13 = ircomp_sxtab16_r8(offset, xw);
        uint32_t wr = ircomp_read_u32(w);
        a0 = ircomp_smlad(ircomp_sxtb16_r8(wr), x13, ircomp_smlad(ircomp_sxtb16(wr), x02, a0));
        wr = ircomp_read_u32(w + ws);
        a1 = ircomp_smlad(ircomp_sxtb16_r8(wr), x13, ircomp_smlad(ircomp_sxtb16(wr), x02, a1));
        wr = ircomp_read_u32(w + 2 * ws);
        a2 = ircomp_smlad(ircomp_sxtb16_r8(wr), x13, ircomp_smlad(ircomp_sxtb16(wr), x02, a2));
        wr = ircomp_read_u32(w + 3 * ws);
        a3 = ircomp_smlad(ircomp_sxtb16_r8(wr), x13, ircomp_smlad(ircomp_sxtb16(wr), x02, a3));
        x += 4;
        w += 4;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}"""
HELPERS["pack16"] = """\
/* Two int16 values in the halves of a word (a low), as SMLAD reads them. */
static uint32_t ircomp_pack16(int32_t a, int32_t b)
{
    return ((uint32_t)a & 0xffffu) | (((uint32_t)b & 0xffffu) << 16);
}"""
HELPERS["sat_i8"] = """\
/* r saturated to [-128, 127] (SSAT with the DSP extension). */
IRCOMP_INLINE int32_t ircomp_sat_i8(int32_t r)
{
#if IRCOMP_DSP
    return __ssat(r, 8);
#else
    return r < -128 ? -128 : r > 127 ? 127 : r;
#endif
}"""
HELPERS["inline"] = """\
/* Small kernel helpers inlined into the op functions (gcc and clang). */
#if defined(__GNUC__)
#define IRCOMP_INLINE static inline __attribute__((always_inline))
#else
#define IRCOMP_INLINE static inline
#endif"""
HELPER_DEPS = {
    "simd": ("wrap_i32", "inline"),
    "sxtb16r8": ("simd",),
    "dot2x2s": ("sxtb16r8",),
    "sxtab16": ("simd",),
    "dot2x1": ("sxtab16",),
    "frq": ("wrap_i32", "inline"),
    "pack16": ("simd",),
    "sat_i8": ("simd",),
    "dot4x1": ("sxtab16", "sxtb16r8"),
}


def helpers_for(kind: str, mac: Operation, shape_of: Callable) -> tuple[str, ...]:
    """The C helpers the fast kernel of `kind` for `mac` calls (exactly those: unused static
    functions are warnings, errors under -Werror)."""
    if kind == "conv":
        return ("wrap_i32", "dot2x2s")
    if kind == "linear":
        out_f = shape_of(mac.operands[1])[0]
        four = ("dot4x1",) if out_f >= 4 else ()
        return ("wrap_i32", *four, *(("dot2x1",) if out_f % 4 else ()))
    if kind == "dw" and _dw_paired(mac, shape_of):
        return ("wrap_i32", "pack16")
    return ("wrap_i32",)


def _is_i8(value) -> bool:  # type: ignore[no-untyped-def]
    fmt = repr_of(value).fmt
    return isinstance(fmt, Int) and fmt.width == 8 and fmt.signed


def fast_kind(mac: Operation) -> str | None:
    """Which fast kernel serves `mac` (fused with a requantize): "conv", "dw", "linear", or None
    (the portable kernel) for other shapes, formats or a weight zero point."""
    if mac.get("weight_zero_point") != 0:  # type: ignore[attr-defined]
        return None
    x, w = mac.operands[0], mac.operands[1]
    if not (_is_i8(x) and _is_i8(w)) or not isinstance(w.owner, nn.WeightOp):
        return None
    if isinstance(mac, nn.LinearOp):
        return "linear"
    if isinstance(mac, nn.Conv2dOp):
        groups = mac.get("groups")
        o, cg = w.type.get_shape()[:2]  # type: ignore[attr-defined]
        c = x.type.get_shape()[1]  # type: ignore[attr-defined]
        if groups == 1:
            return "conv"
        if groups == c == o and cg == 1:
            return "dw"
    return None


def reorders_weights(kind: str) -> bool:
    return kind == "conv"


def reorder_rows(weights: np.ndarray) -> np.ndarray:
    """Rows of `weights` (first dim) flattened, every full group of 4 stored as w0 w2 w1 w3."""
    rows = weights.reshape(weights.shape[0], -1)
    out = rows.copy()
    k4 = rows.shape[1] // 4 * 4
    groups = rows[:, :k4].reshape(rows.shape[0], -1, 4)
    out[:, :k4] = groups[:, :, [0, 2, 1, 3]].reshape(rows.shape[0], k4)
    return out.reshape(weights.shape)


def _round4(n: int) -> int:
    return (n + 3) // 4 * 4


def _dw_plane(mac: Operation, shape_of: Callable) -> tuple[int, int]:
    """Rows and columns of the padded int16 plane of a depthwise conv."""
    _, _, h, w = shape_of(mac.operands[0])
    _, _, oh, ow = shape_of(mac.results[0])
    _, _, kh, kw = shape_of(mac.operands[1])
    sh, sw = mac.get("strides")  # type: ignore[attr-defined]
    dh, dw = mac.get("dilations")  # type: ignore[attr-defined]
    pt, pl, _, _ = mac.get("padding")  # type: ignore[attr-defined]
    hp = max(pt + h, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(pl + w, (ow - 1) * sw + (kw - 1) * dw + 1)
    return hp, wp


def scratch_bytes(kind: str, mac: Operation, shape_of: Callable) -> int:
    """Bytes of int16 scratch the fast kernel needs (planned in the arena over its op)."""
    if kind == "conv":
        k = math.prod(shape_of(mac.operands[1])[1:])
        return 2 * 2 * _round4(k)
    if kind == "dw":
        hp, wp = _dw_plane(mac, shape_of)
        return 2 * hp * wp
    return 0  # linear reads the int8 input directly


def kernel_body(
    kind: str,
    mac: Operation,
    shape_of: Callable,
    store: Callable[[str, str, str], list[str]],
) -> list[str]:
    """C statements of the fast kernel (parameters x, w, [b,] y and the scratch `s`).

    `store(target, value, channel)` gives the statements requantizing the int32 `value` of
    output channel `channel` into `target`."""
    bias = len(mac.operands) > 2
    zx = int(mac.get("input_zero_point"))  # type: ignore[attr-defined]
    off = f"(int16_t)((int32_t)x[{{i}}] - {zx})" if zx else "(int16_t)x[{i}]"
    if kind == "linear":
        return _linear_body(mac, shape_of, store, off, bias)
    if kind == "conv":
        return _conv_body(mac, shape_of, store, off, bias)
    return _dw_body(mac, shape_of, store, off, bias)


def _indent(lines: list[str], n: int) -> list[str]:
    return [" " * n + line for line in lines]


def _mac(acc: str, w: str, x: str) -> str:
    """acc + w * x modulo 2^32 (the portable kernels' wrapping accumulation)."""
    return f"ircomp_wrap_i32((uint32_t){acc} + (uint32_t)((int32_t){w} * {x}))"


def _bias(bias: bool, channel: str) -> str:
    return f"b[{channel}]" if bias else "0"


def _linear_body(mac, shape_of, store, off, bias) -> list[str]:  # type: ignore[no-untyped-def]
    out_f, in_f = shape_of(mac.operands[1])
    rows = math.prod(shape_of(mac.operands[0])) // in_f
    k4 = in_f // 4
    zx = int(mac.get("input_zero_point"))
    offset = (-zx) & 0xFFFF
    o4 = out_f // 4 * 4
    tail = [
        f"for (k = {4 * k4}; k < {in_f}; ++k) {{",
        f"    const int32_t v = {off.format(i='k')};",
        *(
            f"    acc[{r}] = {_mac(f'acc[{r}]', f'w[(o + {r}) * {in_f} + k]', 'v')};"
            for r in range(4)
        ),
        "}",
    ]
    tail2 = [
        f"for (k = {4 * k4}; k < {in_f}; ++k) {{",
        f"    const int32_t v = {off.format(i='k')};",
        f"    acc[0] = {_mac('acc[0]', 'w0[k]', 'v')};",
        f"    acc[1] = {_mac('acc[1]', 'w1[k]', 'v')};",
        "}",
    ]
    four = [
        f"for (o = 0; o < {o4}; o += 4) {{",
        "    int32_t acc[4], r;",
        *(f"    acc[{r}] = {_bias(bias, f'o + {r}')};" for r in range(4)),
        f"    ircomp_dot4x1(w + o * {in_f}, {in_f}, x, {k4}, {offset | (offset << 16)}u, acc);",
        *_indent(tail, 4),
        "    for (r = 0; r < 4; ++r) {",
        "        const int32_t oc = o + r;",
        "        (void)oc; /* unused by a per-tensor requantization */",
        *_indent(store(f"y[m * {out_f} + oc]", "acc[r]", "oc"), 8),
        "    }",
        "}",
    ]
    two = [
        f"for (o = {o4}; o < {out_f}; o += 2) {{",
        f"    const int32_t o1 = o + 1 < {out_f} ? o + 1 : o;",
        f"    const int8_t* w0 = w + o * {in_f};",
        f"    const int8_t* w1 = w + o1 * {in_f};",
        "    int32_t acc[2];",
        f"    acc[0] = {_bias(bias, 'o')};",
        f"    acc[1] = {_bias(bias, 'o1')};",
        f"    ircomp_dot2x1(w0, w1, x, {k4}, {offset | (offset << 16)}u, acc);",
        *_indent(tail2, 4),
        "    {",
        "        const int32_t oc = o;",
        "        (void)oc; /* unused by a per-tensor requantization */",
        *_indent(store(f"y[m * {out_f} + oc]", "acc[0]", "oc"), 8),
        "    }",
        "    if (o1 != o) {",
        "        const int32_t oc = o1;",
        "        (void)oc; /* unused by a per-tensor requantization */",
        *_indent(store(f"y[m * {out_f} + oc]", "acc[1]", "oc"), 8),
        "    }",
        "}",
    ]
    return [
        "int32_t m, o, k;",
        f"for (m = 0; m < {rows}; ++m, x += {in_f}) {{",
        *_indent(four if o4 else [], 4),
        *_indent(two if o4 < out_f else [], 4),
        "}",
    ]


def _conv_body(mac, shape_of, store, off, bias) -> list[str]:  # type: ignore[no-untyped-def]
    n, c, h, wd = shape_of(mac.operands[0])
    o, cg, kh, kw = shape_of(mac.operands[1])
    _, _, oh, ow = shape_of(mac.results[0])
    sh, sw = mac.get("strides")
    pt, pl, _, _ = mac.get("padding")
    dh, dw = mac.get("dilations")
    k = cg * kh * kw
    kp = _round4(k)
    k4 = k // 4
    npix = oh * ow
    tail = [
        f"for (k = {4 * k4}; k < {k}; ++k) {{",
        f"    acc[0] = {_mac('acc[0]', 'w0[k]', 'c0[k]')};",
        f"    acc[1] = {_mac('acc[1]', 'w0[k]', 'c1[k]')};",
        f"    acc[2] = {_mac('acc[2]', 'w1[k]', 'c0[k]')};",
        f"    acc[3] = {_mac('acc[3]', 'w1[k]', 'c1[k]')};",
        "}",
    ]
    x_index = f"((ni * {c} + ci) * {h} + ih) * {wd} + iw"
    stores = []
    for jo, jp, cond in ((0, 0, None), (0, 1, "p1 != p"), (1, 0, "o1 != oc0"), (1, 1, None)):
        if jo == 1 and jp == 1:
            cond = "o1 != oc0 && p1 != p"
        target = f"y[(ni * {o} + oc) * {npix} + {'p1' if jp else 'p'}]"
        block = [
            "{",
            f"    const int32_t oc = {'o1' if jo else 'oc0'};",
            "    (void)oc; /* unused by a per-tensor requantization */",
            *_indent(store(target, f"acc[{2 * jo + jp}]", "oc"), 4),
            "}",
        ]
        stores += [f"if ({cond})", *block] if cond else block
    # im2col of one pixel: a window inside the input (no padding) is copied with constant
    # offsets, kh * kw terms per channel; the general loop checks bounds per element
    taps = [(ky * dh * wd + kx * dw) for ky in range(kh) for kx in range(kw)]
    zx = int(mac.get("input_zero_point"))
    xo = f"(int16_t)((int32_t)xp[{{t}}] - {zx})" if zx else "(int16_t)xp[{t}]"
    if len(taps) <= UNROLL_LIMIT:
        inner = [f"col[{i}] = {xo.format(t=t)};" for i, t in enumerate(taps)]
    else:
        inner = [
            "int32_t ky, kx;",
            f"for (ky = 0; ky < {kh}; ++ky)",
            f"    for (kx = 0; kx < {kw}; ++kx)",
            f"        col[ky * {kw} + kx] = {xo.format(t=f'ky * {dh * wd} + kx * {dw}')};",
        ]
    interior = [
        f"const int8_t* xp = x + (ni * {c * h} + ih0) * {wd} + iw0;",
        "int32_t ci;",
        f"for (ci = 0; ci < {cg}; ++ci, xp += {h * wd}, col += {kh * kw}) {{",
        *_indent(inner, 4),
        "}",
    ]
    general = [
        "int32_t ci, ky, kx;",
        f"for (ci = 0; ci < {cg}; ++ci) {{",
        f"    for (ky = 0; ky < {kh}; ++ky) {{",
        f"        const int32_t ih = ih0 + ky * {dh};",
        f"        for (kx = 0; kx < {kw}; ++kx) {{",
        f"            const int32_t iw = iw0 + kx * {dw};",
        f"            *col++ = (ih < 0 || ih >= {h} || iw < 0 || iw >= {wd}) ? 0 : "
        f"{off.format(i=x_index)};",
        "        }",
        "    }",
        "}",
    ]
    inside = f"ih0 >= 0 && ih0 + {(kh - 1) * dh} < {h} && iw0 >= 0 && iw0 + {(kw - 1) * dw} < {wd}"
    if (
        pt == 0
        and pl == 0
        and (oh - 1) * sh + (kh - 1) * dh < h
        and (ow - 1) * sw + (kw - 1) * dw < wd
    ):
        im2col = ["{", *_indent(interior, 4), "}"]  # no window reaches the padding
    else:
        im2col = [
            f"if ({inside}) {{",
            *_indent(interior, 4),
            "} else {",
            *_indent(general, 4),
            "}",
        ]
    return [
        "int32_t ni, p, oc0, k;",
        "const int16_t* const c0 = s;",
        f"const int16_t* const c1 = s + {kp};",
        f"for (ni = 0; ni < {n}; ++ni) {{",
        f"    for (p = 0; p < {npix}; p += 2) {{",
        f"        const int32_t p1 = p + 1 < {npix} ? p + 1 : p;",
        "        int32_t j;",
        "        for (j = 0; j < 2; ++j) {",
        "            const int32_t q = j ? p1 : p;",
        f"            const int32_t oy = q / {ow}, ox = q % {ow};",
        f"            const int32_t ih0 = oy * {sh} - {pt}, iw0 = ox * {sw} - {pl};",
        f"            int16_t* col = s + j * {kp};",
        *_indent(im2col, 12),
        "        }",
        f"        for (oc0 = 0; oc0 < {o}; oc0 += 2) {{",
        f"            const int32_t o1 = oc0 + 1 < {o} ? oc0 + 1 : oc0;",
        f"            const int8_t* w0 = w + oc0 * {k};",
        f"            const int8_t* w1 = w + o1 * {k};",
        "            int32_t acc[4];",
        f"            acc[0] = acc[1] = {_bias(bias, 'oc0')};",
        f"            acc[2] = acc[3] = {_bias(bias, 'o1')};",
        f"            ircomp_dot2x2s(w0, {k if o % 2 == 0 else f'(o1 - oc0) * {k}'}, c0, {kp}, "
        f"{k4}, acc);",
        *_indent(tail, 12),
        *_indent(stores, 12),
        "        }",
        "    }",
        "}",
    ]


def _dw_paired(mac: Operation, shape_of: Callable) -> bool:
    """Whether the depthwise window's horizontally adjacent taps are paired into dual MACs."""
    _, _, kh, kw = shape_of(mac.operands[1])
    dw = mac.get("dilations")[1]  # type: ignore[attr-defined]
    return kh * kw <= UNROLL_LIMIT and dw == 1 and kw >= 2


def _dw_body(mac, shape_of, store, off, bias) -> list[str]:  # type: ignore[no-untyped-def]
    n, c, h, wd = shape_of(mac.operands[0])
    _, _, kh, kw = shape_of(mac.operands[1])
    _, _, oh, ow = shape_of(mac.results[0])
    sh, sw = mac.get("strides")
    pt, pl, _, _ = mac.get("padding")
    dh, dw = mac.get("dilations")
    hp, wp = _dw_plane(mac, shape_of)
    x_index = f"((ni * {c} + ch) * {h} + i) * {wd} + jx"
    wlocals: list[str] = []
    paired = _dw_paired(mac, shape_of)
    if paired:
        # taps (kx, kx + 1) of a window row as one dual MAC: the weight pair packed once per
        # channel, the two adjacent int16 activations read as one (unaligned) word
        window = []
        for ky in range(kh):
            for kx in range(0, kw, 2):
                t, off_r = ky * kw + kx, ky * dh * wp + kx
                if kx + 1 < kw:
                    wlocals.append(f"const uint32_t k{t} = ircomp_pack16(wc[{t}], wc[{t + 1}]);")
                    window.append(f"a = ircomp_smlad(ircomp_read_u32(r + {off_r}), k{t}, a);")
                else:
                    wlocals.append(f"const int32_t k{t} = wc[{t}];")
                    window.append(
                        f"a = ircomp_wrap_i32((uint32_t)a + (uint32_t)((int32_t)r[{off_r}] * "
                        f"k{t}));"
                    )
        window = [
            f"int32_t a = {_bias(bias, 'ch')};",
            *window,
            "acc = (uint32_t)a;",
        ]
    elif kh * kw <= UNROLL_LIMIT:
        terms = [
            f"acc += (uint32_t)((int32_t)r[{ky * dh * wp + kx * dw}] * wc[{ky * kw + kx}]);"
            for ky in range(kh)
            for kx in range(kw)
        ]
        window = terms
    else:
        window = [
            "int32_t ky, kx;",
            f"for (ky = 0; ky < {kh}; ++ky)",
            f"    for (kx = 0; kx < {kw}; ++kx)",
            f"        acc += (uint32_t)((int32_t)r[ky * {dh * wp} + kx * {dw}] * "
            f"wc[ky * {kw} + kx]);",
        ]
    acc0 = "0u" if paired else f"(uint32_t){_bias(bias, 'ch')}"  # paired: bias in `a`
    return [
        "int32_t ni, ch, oy, ox, i, jx;",
        "/* the padding border is zeroed once: every channel writes the same interior */",
        f"for (i = 0; i < {hp * wp}; ++i) s[i] = 0;",
        f"for (ni = 0; ni < {n}; ++ni) {{",
        f"    for (ch = 0; ch < {c}; ++ch) {{",
        f"        const int8_t* wc = w + ch * {kh * kw};",
        *_indent(wlocals, 8),
        f"        for (i = 0; i < {h}; ++i)",
        f"            for (jx = 0; jx < {wd}; ++jx) s[(i + {pt}) * {wp} + jx + {pl}] = "
        f"{off.format(i=x_index)};",
        f"        for (oy = 0; oy < {oh}; ++oy) {{",
        f"            for (ox = 0; ox < {ow}; ++ox) {{",
        f"                const int16_t* r = s + oy * {sh * wp} + ox * {sw};",
        f"                uint32_t acc = {acc0};",
        "                {",
        *_indent(window, 20),
        "                }",
        "                {",
        "                    const int32_t oc = ch;",
        "                    (void)oc; /* unused by a per-tensor requantization */",
        *_indent(
            store(f"y[((ni * {c} + ch) * {oh} + oy) * {ow} + ox]", "ircomp_wrap_i32(acc)", "oc"),
            20,
        ),
        "                }",
        "            }",
        "        }",
        "    }",
        "}",
    ]


__all__ = [
    "HELPERS",
    "HELPER_DEPS",
    "KERNEL_CHOICES",
    "fast_kind",
    "helpers_for",
    "kernel_body",
    "reorder_rows",
    "reorders_weights",
    "scratch_bytes",
]
