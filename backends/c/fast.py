"""Fast C kernels (`kernels="fast"`) for int8 multiply-accumulate fused with its requantization,
shaped for the Cortex-M4's DSP extension and bit-exact with the portable kernels.

* `conv`: `nn.conv2d` with one group: im2col of two output pixels at a time into an int16
  scratch buffer (input offset applied, padding 0), then a 2x2 register-blocked dot product
  (two output channels x two pixels) on dual 16-bit MACs;
* `dw`: depthwise `nn.conv2d` (groups = channels, one filter per channel): each channel's plane
  is copied once, offset and padded, into int16 scratch; the window is fully unrolled with no
  bounds checks;
* `linear`: `nn.linear`: two output rows at a time straight from the int8 input, its zero point
  added in both 16-bit halves by `SXTAB16` (no scratch).

Dual MACs: the weights are stored reordered in groups of four (`w0 w2 w1 w3`) so that `SXTB16`
of a 32-bit load gives the int16 pairs `(w0, w1)` and, after a rotation by 8, `(w2, w3)`;
`SMLAD` multiplies them with two int16 pairs of the scratch buffer and adds both products to
the accumulator. With `__ARM_FEATURE_DSP` these are the ACLE intrinsics `__sxtb16` / `__smlad`;
elsewhere portable C with the same results (modulo-2^32 accumulation, like the portable
kernels), so the host build checks the same code. The requantization is applied to each
accumulator as it is produced (spec/c_abi.md). Scratch buffers live in the arena, planned like
tensors over their op only.
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
    "dot2x2": """\
/* acc[2 * i + j] += row_i . col_j over k4 groups of 4 (rows reordered w0 w2 w1 w3). */
static void ircomp_dot2x2(const int8_t* w0, const int8_t* w1, const int16_t* c0,
                          const int16_t* c1, int32_t k4, int32_t* acc)
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    int32_t k;
    for (k = 0; k < k4; ++k) {
        const uint32_t wa = ircomp_read_u32(w0 + 4 * k);
        const uint32_t wb = ircomp_read_u32(w1 + 4 * k);
        const uint32_t wa01 = ircomp_sxtb16(wa), wa23 = ircomp_sxtb16((wa >> 8) | (wa << 24));
        const uint32_t wb01 = ircomp_sxtb16(wb), wb23 = ircomp_sxtb16((wb >> 8) | (wb << 24));
        const uint32_t x01 = ircomp_read_u32(c0 + 4 * k), x23 = ircomp_read_u32(c0 + 4 * k + 2);
        const uint32_t y01 = ircomp_read_u32(c1 + 4 * k), y23 = ircomp_read_u32(c1 + 4 * k + 2);
        a00 = ircomp_smlad(wa23, x23, ircomp_smlad(wa01, x01, a00));
        a01 = ircomp_smlad(wa23, y23, ircomp_smlad(wa01, y01, a01));
        a10 = ircomp_smlad(wb23, x23, ircomp_smlad(wb01, x01, a10));
        a11 = ircomp_smlad(wb23, y23, ircomp_smlad(wb01, y01, a11));
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}""",
    "dot2x1": """\
/* SXTAB16: a + the sign-extended bytes 0 and 2 of x, per 16-bit half. */
static uint32_t ircomp_sxtab16(uint32_t a, uint32_t x)
{
#if IRCOMP_DSP
    return (uint32_t)__sxtab16((int32_t)a, (int32_t)x);
#else
    const uint32_t e = ircomp_sxtb16(x);
    return ((a + e) & 0xffffu) | (((a >> 16) + (e >> 16)) << 16);
#endif
}

/* acc[i] += row_i . (x - zp) over k4 groups of 4 int8 (rows and x in natural order; both
 * split into the pairs (0, 2) and (1, 3)); offset = (-zp) in both halves. */
static void ircomp_dot2x1(const int8_t* w0, const int8_t* w1, const int8_t* x, int32_t k4,
                          uint32_t offset, int32_t* acc)
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
HELPER_DEPS = {"simd": ("wrap_i32",), "dot2x2": ("simd",), "dot2x1": ("simd",)}


def helpers_for(kind: str) -> tuple[str, ...]:
    """The C helpers a fast kernel of `kind` calls."""
    return {"conv": ("wrap_i32", "dot2x2"), "linear": ("wrap_i32", "dot2x1")}.get(
        kind, ("wrap_i32",)
    )


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
    tail = [
        f"for (k = {4 * k4}; k < {in_f}; ++k) {{",
        f"    const int32_t v = {off.format(i='k')};",
        f"    acc[0] = {_mac('acc[0]', 'w0[k]', 'v')};",
        f"    acc[1] = {_mac('acc[1]', 'w1[k]', 'v')};",
        "}",
    ]
    return [
        "int32_t m, o, k;",
        f"for (m = 0; m < {rows}; ++m, x += {in_f}) {{",
        f"    for (o = 0; o < {out_f}; o += 2) {{",
        f"        const int32_t o1 = o + 1 < {out_f} ? o + 1 : o;",
        f"        const int8_t* w0 = w + o * {in_f};",
        f"        const int8_t* w1 = w + o1 * {in_f};",
        "        int32_t acc[2];",
        f"        acc[0] = {_bias(bias, 'o')};",
        f"        acc[1] = {_bias(bias, 'o1')};",
        f"        ircomp_dot2x1(w0, w1, x, {k4}, {offset | (offset << 16)}u, acc);",
        *_indent(tail, 8),
        "        {",
        "            const int32_t oc = o;",
        *_indent(store(f"y[m * {out_f} + oc]", "acc[0]", "oc"), 12),
        "        }",
        "        if (o1 != o) {",
        "            const int32_t oc = o1;",
        *_indent(store(f"y[m * {out_f} + oc]", "acc[1]", "oc"), 12),
        "        }",
        "    }",
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
            *_indent(store(target, f"acc[{2 * jo + jp}]", "oc"), 4),
            "}",
        ]
        stores += [f"if ({cond})", *block] if cond else block
    return [
        "int32_t ni, p, oc0, k;",
        "int16_t* const c0 = s;",
        f"for (ni = 0; ni < {n}; ++ni) {{",
        f"    for (p = 0; p < {npix}; p += 2) {{",
        f"        const int32_t p1 = p + 1 < {npix} ? p + 1 : p;",
        f"        int16_t* const c1 = s + (p1 != p ? {kp} : 0);",
        "        int32_t j;",
        "        for (j = 0; j < 2; ++j) {",
        "            const int32_t q = j ? p1 : p;",
        f"            const int32_t oy = q / {ow}, ox = q % {ow};",
        f"            int16_t* col = s + j * {kp};",
        "            int32_t ci, ky, kx;",
        f"            for (ci = 0; ci < {cg}; ++ci) {{",
        f"                for (ky = 0; ky < {kh}; ++ky) {{",
        f"                    const int32_t ih = oy * {sh} - {pt} + ky * {dh};",
        f"                    for (kx = 0; kx < {kw}; ++kx) {{",
        f"                        const int32_t iw = ox * {sw} - {pl} + kx * {dw};",
        f"                        *col++ = (ih < 0 || ih >= {h} || iw < 0 || iw >= {wd}) ? 0 : "
        f"{off.format(i=x_index)};",
        "                    }",
        "                }",
        "            }",
        "        }",
        f"        for (oc0 = 0; oc0 < {o}; oc0 += 2) {{",
        f"            const int32_t o1 = oc0 + 1 < {o} ? oc0 + 1 : oc0;",
        f"            const int8_t* w0 = w + oc0 * {k};",
        f"            const int8_t* w1 = w + o1 * {k};",
        "            int32_t acc[4];",
        f"            acc[0] = acc[1] = {_bias(bias, 'oc0')};",
        f"            acc[2] = acc[3] = {_bias(bias, 'o1')};",
        f"            ircomp_dot2x2(w0, w1, c0, c1, {k4}, acc);",
        *_indent(tail, 12),
        *_indent(stores, 12),
        "        }",
        "    }",
        "}",
    ]


def _dw_body(mac, shape_of, store, off, bias) -> list[str]:  # type: ignore[no-untyped-def]
    n, c, h, wd = shape_of(mac.operands[0])
    _, _, kh, kw = shape_of(mac.operands[1])
    _, _, oh, ow = shape_of(mac.results[0])
    sh, sw = mac.get("strides")
    pt, pl, _, _ = mac.get("padding")
    dh, dw = mac.get("dilations")
    hp, wp = _dw_plane(mac, shape_of)
    x_index = f"((ni * {c} + ch) * {h} + i) * {wd} + jx"
    if kh * kw <= UNROLL_LIMIT:
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
    return [
        "int32_t ni, ch, oy, ox, i, jx;",
        f"for (ni = 0; ni < {n}; ++ni) {{",
        f"    for (ch = 0; ch < {c}; ++ch) {{",
        f"        const int8_t* wc = w + ch * {kh * kw};",
        f"        for (i = 0; i < {hp * wp}; ++i) s[i] = 0;",
        f"        for (i = 0; i < {h}; ++i)",
        f"            for (jx = 0; jx < {wd}; ++jx) s[(i + {pt}) * {wp} + jx + {pl}] = "
        f"{off.format(i=x_index)};",
        f"        for (oy = 0; oy < {oh}; ++oy) {{",
        f"            for (ox = 0; ox < {ow}; ++ox) {{",
        f"                const int16_t* r = s + oy * {sh * wp} + ox * {sw};",
        f"                uint32_t acc = (uint32_t){_bias(bias, 'ch')};",
        "                {",
        *_indent(window, 20),
        "                }",
        "                {",
        "                    const int32_t oc = ch;",
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
