"""C99 code generation: `model.h`, `model.c`, `vectors.h`, `main.c` and a `Makefile`.

`generate(program, name)` returns the files' contents (byte-identical for the same program and
inputs); `build(program, out_dir, name)` writes them into a temporary folder renamed onto
`out_dir`. One static function per op, weights as `static const` arrays, one static arena
planned by liveness (`plan.py`); float32 graphs in float, int8/uint8/int16/int32 codes in integer
arithmetic exactly as `spec/numerics.md`. `spec/c_abi.md` is the contract of the output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.ir import Operation, SSAValue

from ircomp.backends.c import cortex_m4
from ircomp.backends.c import fast as fast_kernels
from ircomp.backends.c import vector as vector_kernels
from ircomp.backends.c.plan import Buffer, plan
from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.fileio import write_folder
from ircomp.interpreter.values import Repr, repr_of
from ircomp.interpreter.windows import average_counts
from ircomp.ir import shapes
from ircomp.ir.program import Program
from ircomp.numerics import FixP, Int, Posit, quantize_multiplier_array
from ircomp.numerics.posit import posit_value_table
from ircomp.numerics.tflite import add_params, softmax_params

CTYPES = {
    np.dtype(np.int8): "int8_t",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.int16): "int16_t",
    np.dtype(np.uint16): "uint16_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.uint32): "uint32_t",
}

# f16 outputs: the harness accepts |got - ref| <= F16_RTOL * (|ref| + max|ref|): one binary16
# rounding step (2^-10 relative) of float32 results that may differ in their last bits from
# the interpreter's (BLAS summation order, libm)
F16_RTOL = 1e-3

# Host builds of the generated Makefile: `check` (portable, strict) and `check-native` (speed)
HOST_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-O2")
NATIVE_CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-O3", "-march=native")

# Shared helpers, emitted only when a kernel uses them (no dead code under -Werror).
HELPERS = {
    "wrap_i32": """\
/* Two's complement wrap of a uint32 to int32 (portable: no implementation-defined cast). */
static int32_t ircomp_wrap_i32(uint32_t v)
{
    return v <= 0x7fffffffu ? (int32_t)v : (int32_t)(v - 0x80000000u) - 0x7fffffff - 1;
}""",
    "round_half_even": """\
/* round half to even of a float, without fenv; |v| is first clamped to 2^30 (callers clamp
 * the result to a code range well inside that). */
static int32_t ircomp_round_half_even(float v)
{
    int32_t t;
    float frac;
    if (v > 1073741824.0f) v = 1073741824.0f;
    if (v < -1073741824.0f) v = -1073741824.0f;
    t = (int32_t)v; /* truncates toward zero */
    frac = v - (float)t; /* exact */
    if (frac > 0.5f || (frac == 0.5f && (t & 1))) return t + 1;
    if (frac < -0.5f || (frac == -0.5f && (t & 1))) return t - 1;
    return t;
}""",
    "half_up": """\
/* gemmlowp SaturatingRoundingDoublingHighMul(x, 2^30): x / 2, ties up (floor((x + 1) / 2)). */
static int32_t ircomp_half_up(int32_t x)
{
    const int64_t v = (int64_t)x + 1;
    return (int32_t)(v >= 0 ? v / 2 : -((-v + 1) / 2));
}""",
    "rhe_shift": """\
/* x / 2^k rounded half to even, 0 <= k <= 30 (exact integer arithmetic). */
static int32_t ircomp_rhe_shift(int32_t x, int32_t k)
{
    const int32_t q = x >= 0 ? (x >> k) : ~(~x >> k); /* floor, portably */
    const uint32_t rem = (uint32_t)x - ((uint32_t)q << k); /* 0 <= rem < 2^k */
    const uint32_t half = k ? (uint32_t)1 << (k - 1) : 0u;
    return q + ((k && (rem > half || (rem == half && (q & 1)))) ? 1 : 0);
}""",
    "h2f": """\
/* IEEE binary16 bit pattern -> float (exact). */
static float ircomp_h2f(ircomp_f16 h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = ((uint32_t)h >> 10) & 0x1fu;
    const uint32_t mantissa = (uint32_t)h & 0x3ffu;
    uint32_t bits;
    float f;
    if (exponent == 0u) { /* zero or subnormal: mantissa * 2^-24, exact */
        f = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exponent == 0x1fu)
        bits = sign | 0x7f800000u | (mantissa << 13); /* inf, nan */
    else
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    memcpy(&f, &bits, sizeof f);
    return f;
}""",
    "d2h": """\
/* double -> IEEE binary16 bit pattern: one rounding to nearest, ties to even, with gradual
 * underflow and overflow to inf (what numpy's astype(float16) does); nan stays nan. */
static ircomp_f16 ircomp_d2h(double v)
{
    uint64_t bits, m;
    uint32_t sign, q, shift;
    int32_t e;
    memcpy(&bits, &v, sizeof bits);
    sign = (uint32_t)(bits >> 48) & 0x8000u;
    e = (int32_t)((bits >> 52) & 0x7ffu);
    m = bits & 0xfffffffffffffull;
    if (e == 0x7ff) return (ircomp_f16)(sign | 0x7c00u | (m ? 0x200u : 0u));
    if (e == 0) return (ircomp_f16)sign; /* double subnormals round to 0 */
    e -= 1023;
    m |= (uint64_t)1 << 52; /* value = m * 2^(e - 52) */
    if (e >= 16) return (ircomp_f16)(sign | 0x7c00u);
    if (e < -25) return (ircomp_f16)sign;
    shift = e >= -14 ? 42u : (uint32_t)(42 - 14 - e); /* to 10 fraction bits (normal), or to
                                                          units of 2^-24 (subnormal) */
    q = (uint32_t)(m >> shift);
    {
        const uint64_t rem = m & (((uint64_t)1 << shift) - 1u);
        const uint64_t half = (uint64_t)1 << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) ++q;
    }
    if (e < -14) return (ircomp_f16)(sign | q); /* q = 0x400: the smallest normal */
    if (q == 0x800u) { /* rounded up to the next power of two */
        q = 0x400u;
        ++e;
        if (e >= 16) return (ircomp_f16)(sign | 0x7c00u);
    }
    return (ircomp_f16)(sign | ((uint32_t)(e + 15) << 10) | (q & 0x3ffu));
}""",
    "f2h": """\
/* float -> IEEE binary16 (a float is exact as a double: one rounding). */
static ircomp_f16 ircomp_f2h(float v)
{
    return ircomp_d2h((double)v);
}""",
    "encode_d": """\
/* numerics.md 2: the code nearest to the double v (already scaled by 2^frac), ties to even,
 * saturated to [lo, hi] (+-inf saturate; callers refuse nan); no libm or fenv. */
static int64_t ircomp_encode_d(double v, int64_t lo, int64_t hi)
{
    int64_t t;
    double frac;
    if (v >= (double)hi) return hi;
    if (v <= (double)lo) return lo;
    t = (int64_t)v; /* truncates toward zero; |v| < 2^32 here */
    frac = v - (double)t; /* exact */
    if (frac > 0.5 || (frac == 0.5 && (t & 1))) ++t;
    if (frac < -0.5 || (frac == -0.5 && (t & 1))) --t;
    return t < lo ? lo : t > hi ? hi : t;
}""",
    "srdhm": """\
/* gemmlowp SaturatingRoundingDoublingHighMul (spec/numerics.md 5.2). */
static int32_t ircomp_srdhm(int32_t a, int32_t b)
{
    int64_t ab, nudge;
    if (a == b && a == INT32_MIN) return INT32_MAX;
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates */
}""",
    "rdbpot": """\
/* gemmlowp RoundingDivideByPOT, 0 <= e <= 31: x / 2^e, ties away from zero. */
static int32_t ircomp_rdbpot(int32_t x, int32_t e)
{
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t remainder = (int32_t)((uint32_t)x & (uint32_t)mask);
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    int32_t floor_div = x >= 0 ? (x >> e) : ~(~x >> e); /* arithmetic shift, portably */
    return floor_div + (remainder > threshold ? 1 : 0);
}""",
    "mbqm": """\
/* TFLite MultiplyByQuantizedMultiplier (double rounding); x * 2^left wraps to int32. */
static int32_t ircomp_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    int32_t left = shift > 0 ? shift : 0;
    int32_t right = shift > 0 ? 0 : -shift;
    int32_t shifted = left >= 32 ? 0 : ircomp_wrap_i32((uint32_t)x << left);
    return ircomp_rdbpot(ircomp_srdhm(shifted, multiplier), right);
}""",
    "sat_shl": """\
/* gemmlowp SaturatingRoundingMultiplyByPOT<e> for 0 < e < 31: x * 2^e, saturated. */
static int32_t ircomp_sat_shl(int32_t x, int32_t e)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return x * ((int32_t)1 << e);
}""",
    "exp_q5": """\
/* gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl (Q0.31 in and out). */
static int32_t ircomp_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = a + ((int32_t)1 << 28);
    const int32_t x2 = ircomp_srdhm(x, x);
    const int32_t x3 = ircomp_srdhm(x2, x);
    const int32_t x4 = ircomp_srdhm(x2, x2);
    const int32_t x4_over_4 = ircomp_rdbpot(x4, 2);
    const int32_t poly =
        ircomp_rdbpot(ircomp_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + ircomp_srdhm(constant_term, x + poly);
}

/* gemmlowp exp_on_negative_values of a Q5.26 value <= 0, as Q0.31 (spec/numerics.md 5.7). */
static int32_t ircomp_exp_q5(int32_t a)
{
    static const int32_t barrel[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242
    };
    const int32_t quarter = (int32_t)1 << 24;
    const int32_t a_mod = (int32_t)((uint32_t)a & (uint32_t)(quarter - 1)) - quarter;
    const int32_t remainder = a_mod - a;
    int32_t result = ircomp_exp_quarter(ircomp_sat_shl(a_mod, 5));
    int32_t k;
    for (k = 0; k < 7; ++k)
        if (remainder & ((int32_t)1 << (24 + k))) result = ircomp_srdhm(result, barrel[k]);
    return a == 0 ? INT32_MAX : result;
}""",
    "recip": """\
/* gemmlowp one_over_one_plus_x_for_x_in_0_1 (Q0.31 in and out; Newton-Raphson). */
static int32_t ircomp_one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810 + ircomp_srdhm(half_denominator, -1010580540);
    int32_t k;
    for (k = 0; k < 3; ++k) {
        const int32_t one_minus = ((int32_t)1 << 29) - ircomp_srdhm(half_denominator, x);
        x = x + ircomp_sat_shl(ircomp_srdhm(x, one_minus), 2);
    }
    return ircomp_sat_shl(x, 1);
}

/* Leading zero bits of a 32-bit word (32 for 0). */
static int32_t ircomp_clz32(uint32_t v)
{
    int32_t n = 0;
    if (v == 0u) return 32;
    while (!(v & 0x80000000u)) {
        v <<= 1;
        ++n;
    }
    return n;
}""",
}
HELPERS.update(fast_kernels.HELPERS)
HELPERS.update(vector_kernels.HELPERS)
HELPER_DEPS = {
    "f2h": ("d2h",),
    **fast_kernels.HELPER_DEPS,
    **vector_kernels.HELPER_DEPS,
    "mbqm": ("wrap_i32", "srdhm", "rdbpot"),
    "exp_q5": ("srdhm", "rdbpot", "sat_shl"),
    "recip": ("srdhm", "sat_shl"),
}


def _add_helper(name: str, helpers: list[str]) -> None:
    """Append helper `name` to `helpers` after the helpers it calls (transitively)."""
    for dep in HELPER_DEPS.get(name, ()):
        _add_helper(dep, helpers)
    if name not in helpers:
        helpers.append(name)


def sanitize(name: str) -> str:
    """A C identifier fragment derived from `name`."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name).strip("_")
    ident = re.sub(r"_+", "_", ident)[:40]
    return ident or "v"


def c_name(name: str) -> str:
    """The model name as used in file and symbol names (`sanitize`, never starting with a digit)."""
    ident = sanitize(name)
    return "m_" + ident if ident[0].isdigit() else ident


def _ctype(rep: Repr, what: str) -> str:
    if rep.is_float:
        kind = rep.fmt.kind  # type: ignore[union-attr]
        if kind == "f16":
            return HALF
        if kind != "f32":
            raise InputError(
                f"{what}: the C backend supports float32 and f16 (storage), not "
                f"{rep.fmt.short_name}"
            )
        return "float"
    if isinstance(rep.fmt, Int | FixP) and rep.dtype in CTYPES:
        return CTYPES[rep.dtype]
    if isinstance(rep.fmt, Posit):
        raise InputError(
            f"{what}: {rep.fmt.short_name} values are supported by the C backend only as the "
            "weights of linear / conv2d / matmul (posit<n,es> with n <= 8)"
        )
    raise InputError(f"{what}: the C backend does not support format {rep.fmt.short_name} yet")


def _wrap(u32: str, width: int, signed: bool) -> str:
    """C expression: the uint32 expression `u32` (a value modulo 2^32) wrapped to a `width`-bit
    two's complement (or unsigned) code, as int32_t (uint32_t for 32-bit unsigned)."""
    if width == 32:
        return f"ircomp_wrap_i32({u32})" if signed else f"({u32})"
    mask = (1 << width) - 1
    if not signed:
        return f"(int32_t)(({u32}) & {mask}u)"
    off = 1 << (width - 1)
    return f"((int32_t)((({u32}) + {off}u) & {mask}u) - {off})"


def _code_format(rep: Repr) -> tuple[int, int, bool]:
    """(frac, width, signed) of an integer or fixed-point format."""
    fmt = rep.fmt
    assert isinstance(fmt, Int | FixP)
    return rep.frac, fmt.width, fmt.signed


def _float_lit(value: float) -> str:
    v = float(np.float32(value))
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    text = f"{v:.9g}"
    if not any(c in text for c in ".en"):
        text += ".0"
    return text + "f"


def _double_lit(value: float) -> str:
    """A C double literal that reads back as exactly `value` (finite)."""
    v = float(value)
    if not math.isfinite(v):
        raise InputError(f"non-finite constant {v}")
    text = repr(v)
    return text if any(c in text for c in ".en") else text + ".0"


def _int_lit(value: int) -> str:
    value = int(value)
    if value == -(1 << 31):
        return "(-2147483647 - 1)"
    if value >= (1 << 31):
        return f"{value}u"
    return str(value)


def _array_body(values: np.ndarray, ctype: str, per_line: int = 12) -> str:
    flat = values.reshape(-1)
    lit = {"float": _float_lit, "double": _double_lit}.get(ctype, _int_lit)
    items = [lit(v) for v in flat.tolist()]
    if not items:
        items = ["0"]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"


def _const_array(name: str, ctype: str, values: np.ndarray) -> str:
    n = max(1, values.size)
    return f"static const {ctype} {name}[{n}] = {_array_body(values, ctype)};"


@dataclass
class _Value:
    ctype: str
    shape: tuple[int, ...]
    root: SSAValue  # reshape/flatten results alias their input's storage
    kind: str = "arena"  # arena | input | output | weight
    ref: str = ""  # parameter / array name, or arena offset once planned

    @property
    def half(self) -> bool:
        """f16 storage: IEEE binary16 bit patterns in uint16_t, computed on as float."""
        return self.ctype == HALF

    @property
    def is_float(self) -> bool:
        return self.ctype in ("float", HALF)


HALF = "ircomp_f16"  # typedef uint16_t: the storage type of f16 tensors


def _ld(v: _Value, expr: str) -> str:
    """The float value of element `expr` of `v`."""
    return f"ircomp_h2f({expr})" if v.half else expr


def _st(v: _Value, expr: str, double: bool = False) -> str:
    """`expr` (float, or double with `double`) converted for storing into `v`: f16 storage
    rounds it once to binary16 (from the double when the value is a double)."""
    if v.half:
        return f"ircomp_d2h({expr})" if double else f"ircomp_f2h({expr})"
    return f"(float)({expr})" if double else expr


@dataclass
class _Kernel:
    """One generated op function: its C text and the values it takes (in order)."""

    params: list[tuple[str, SSAValue, bool]]  # (name, value, is_output)
    body: list[str]
    returns_error: bool = False
    helpers: tuple[str, ...] = ()
    consts: list[str] = field(default_factory=list)
    scratch: bool = False  # takes `int16_t* s`, its arena scratch buffer


@dataclass(frozen=True)
class _Ctx:
    vals: dict[SSAValue, _Value]
    prefix: str  # name of the op function (used for its tables)
    weights: dict[SSAValue, np.ndarray]
    kernels: str = "portable"
    posit: dict[SSAValue, PositWeights] = field(default_factory=dict)  # packed posit weights


def _is_f32(value: SSAValue) -> bool:
    rep = repr_of(value)
    return rep.is_float and rep.fmt.kind == "f32"  # type: ignore[union-attr]


def _shape(value: SSAValue, what: str) -> tuple[int, ...]:
    dims = tuple(value.type.get_shape())  # type: ignore[attr-defined]
    if any(d < 0 for d in dims):
        raise InputError(f"{what}: dynamic dims {list(dims)}; run shape-inference first")
    return dims


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _op_label(op: Operation) -> str:
    layer = nn.op_name(op)
    return f"{op.name} '{layer}'" if layer else op.name


# ---- kernels ------------------------------------------------------------------------------

ELEMENTWISE = (
    nn.ReluOp,
    nn.ClipOp,
    nn.HardTanhOp,
    nn.SigmoidOp,
    nn.TanhOp,
    nn.QuantizeOp,
    nn.RequantizeOp,
    nn.AddOp,
    nn.SubOp,
    nn.MulOp,
    nn.DivOp,
    nn.SoftmaxOp,
    nn.QAddOp,
)


def _unary(op: Operation, ctx: _Ctx) -> _Kernel:
    x, y = op.operands[0], op.results[0]
    vx, vy = ctx.vals[x], ctx.vals[y]
    n = _numel(vy.shape)
    params = [("x", x, False), ("y", y, True)]
    loop = f"for (i = 0; i < {n}; ++i)"
    if vy.is_float:
        xi = _ld(vx, "x[i]")
        if isinstance(op, nn.ReluOp):
            # f16: negative values become +0, others (-0, nan) keep their bits (numpy maximum)
            expr = f"{xi} < 0.0f ? 0u : x[i]" if vy.half else "x[i] < 0.0f ? 0.0f : x[i]"
        elif isinstance(op, nn.ClipOp | nn.HardTanhOp):
            lo, hi = _float_lit(op.get("min")), _float_lit(op.get("max"))
            return _Kernel(
                params,
                [
                    "int32_t i;",
                    f"{loop} {{",
                    f"    const float u = {xi};",
                    f"    float v = u < {lo} ? {lo} : u;",
                    f"    y[i] = {_st(vy, f'v > {hi} ? {hi} : v')};",
                    "}",
                ],
            )
        elif isinstance(op, nn.SigmoidOp):
            return _Kernel(
                params,
                [
                    "int32_t i;",
                    f"{loop} {{",
                    f"    const float u = {xi};",
                    "    float e = (float)exp(-fabs((double)u));",
                    f"    y[i] = {_st(vy, 'u >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e)')};",
                    "}",
                ],
            )
        elif isinstance(op, nn.TanhOp):
            expr = _st(vy, f"(float)tanh((double){xi})")
        else:
            raise AssertionError(op.name)
        return _Kernel(params, ["int32_t i;", f"{loop} y[i] = {expr};"])
    # codes: relu / clip act on codes (numerics.md 5.4)
    rep = repr_of(y)
    code_lo, code_hi = rep.code_range()
    if isinstance(op, nn.ReluOp):
        lo, hi = max(0, code_lo), code_hi
    elif isinstance(op, nn.ClipOp):
        lo = min(max(math.ceil(op.get("min")), code_lo), code_hi)
        hi = max(min(math.floor(op.get("max")), code_hi), code_lo)
    else:
        raise InputError(f"{_op_label(op)}: needs float32 operands in the C backend")
    del vx
    body = ["int32_t i;", f"{loop} {{", f"    {vy.ctype} v = x[i];"]
    if lo > code_lo:
        body.append(f"    if (v < {_int_lit(lo)}) v = {_int_lit(lo)};")
    if hi < code_hi:
        body.append(f"    if (v > {_int_lit(hi)}) v = {_int_lit(hi)};")
    body += ["    y[i] = v;", "}"]
    return _Kernel(params, body)


def _strides(shape: Sequence[int]) -> list[int]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return out[::-1]


def _broadcast_loops(va: _Value, vb: _Value, vy: _Value, element: str) -> list[str]:
    """Loops writing `y` from `a` and `b` with numpy broadcasting; `element` is a C expression
    of `{A}` and `{B}` (the operand elements)."""
    oshape = vy.shape
    rank = len(oshape)
    n = _numel(oshape)

    def index(shape: tuple[int, ...]) -> list[int]:
        padded = (1,) * (rank - len(shape)) + shape
        st = _strides(padded)
        return [0 if padded[k] == 1 and oshape[k] != 1 else st[k] for k in range(rank)]

    def flat(v: _Value) -> str | None:
        if _numel(v.shape) == n:
            return "[i]"
        if _numel(v.shape) == 1:
            return "[0]"
        return None

    def subst(ea: str, eb: str) -> str:
        return element.replace("{A}", ea).replace("{B}", eb)

    fa, fb = flat(va), flat(vb)
    if fa is not None and fb is not None:
        return ["int32_t i;", f"for (i = 0; i < {n}; ++i) y[i] = {subst('a' + fa, 'b' + fb)};"]
    sa, sb = index(va.shape), index(vb.shape)
    loops = [f"int32_t {', '.join(f'i{k}' for k in range(rank))};", "int32_t o = 0;"]
    indent = ""
    for k in range(rank):
        loops.append(f"{indent}for (i{k} = 0; i{k} < {oshape[k]}; ++i{k})")
        indent += "    "

    def expr(st: list[int]) -> str:
        terms = [f"i{k} * {s}" if s != 1 else f"i{k}" for k, s in enumerate(st) if s]
        return " + ".join(terms) or "0"

    loops.append(f"{indent}y[o++] = {subst(f'a[{expr(sa)}]', f'b[{expr(sb)}]')};")
    return loops


def _binary(op: Operation, ctx: _Ctx) -> _Kernel:
    a, b, y = op.operands[0], op.operands[1], op.results[0]
    va, vb, vy = ctx.vals[a], ctx.vals[b], ctx.vals[y]
    sym = {nn.AddOp: "+", nn.SubOp: "-", nn.MulOp: "*", nn.DivOp: "/"}[type(op)]
    params = [("a", a, False), ("b", b, False), ("y", y, True)]
    if vy.is_float:
        element = _st(vy, f"{_ld(va, '{A}')} {sym} {_ld(vb, '{B}')}")
        return _Kernel(params, _broadcast_loops(va, vb, vy, element))
    # integer / fixed-point codes (numerics.md 5.5): operands aligned to the result's fraction
    # bits by left shifts, exact modulo 2^32 (enough: the result has at most 32 bits), wrapped
    fo, width, signed = _code_format(repr_of(y))
    fa, fb = repr_of(a).frac, repr_of(b).frac
    shifts = (fo - fa - fb, 0) if isinstance(op, nn.MulOp) else (fo - fa, fo - fb)

    def aligned(operand: str, shift: int) -> str:
        u = f"(uint32_t)(int32_t){operand}"
        if shift >= 32:
            return "0u"
        return f"({u} << {shift})" if shift else u

    value = f"{aligned('{A}', shifts[0])} {sym} {aligned('{B}', shifts[1])}"
    element = f"({vy.ctype}){_wrap(value, width, signed)}"
    return _Kernel(params, _broadcast_loops(va, vb, vy, element), helpers=("wrap_i32",))


def _qadd(op: Operation, ctx: _Ctx) -> _Kernel:
    """TFLite 8-bit ADD (spec/numerics.md 5.6): per-element function with the generation-time
    multipliers of `add_params`, numpy broadcasting."""
    a, b, y = op.operands[0], op.operands[1], op.results[0]
    va, vb, vy = ctx.vals[a], ctx.vals[b], ctx.vals[y]
    p = add_params(op.get("lhs_scale"), op.get("rhs_scale"), op.get("scale"))
    lo, hi = repr_of(y).code_range()
    clamp = op.get("clamp")
    if clamp:
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    fn = f"{ctx.prefix}_elem"
    shift = 1 << p.left_shift
    za, zb, zy = op.get("lhs_zero_point"), op.get("rhs_zero_point"), op.get("zero_point")
    shifts = (p.lhs_shift, p.rhs_shift, p.out_shift)
    mults = (p.lhs_multiplier, p.rhs_multiplier, p.out_multiplier)
    vector = ctx.kernels == "vector" and max(shifts) < 32 and min(mults) >= 0

    def mbqm(x: str, mult: int, sh: int) -> str:
        if vector:  # branch-free: the element loop vectorizes
            return f"ircomp_vmbqm({x}, {_int_lit(mult)}, {max(sh, 0)}, {max(-sh, 0)})"
        return f"ircomp_mbqm({x}, {_int_lit(mult)}, {sh})"

    helper = [
        f"static {vy.ctype} {fn}(int32_t a, int32_t b)",
        "{",
        f"    const int32_t sa = {mbqm(f'(a - {_int_lit(za)}) * {shift}', mults[0], shifts[0])};",
        f"    const int32_t sb = {mbqm(f'(b - {_int_lit(zb)}) * {shift}', mults[1], shifts[1])};",
        f"    const int32_t r = {mbqm('sa + sb', mults[2], shifts[2])} + {_int_lit(zy)};",
        f"    return ({vy.ctype})(r < {_int_lit(lo)} ? {_int_lit(lo)} : "
        f"r > {_int_lit(hi)} ? {_int_lit(hi)} : r);",
        "}",
    ]
    body = _broadcast_loops(va, vb, vy, f"{fn}((int32_t){{A}}, (int32_t){{B}})")
    if vector and body[1].startswith("for (i = 0;"):
        body.insert(1, "IRCOMP_IVDEP /* y may be a or b (in place): still vectorizable */")
    params = [("a", a, False), ("b", b, False), ("y", y, True)]
    helpers = ("vmbqm",) if vector else ("mbqm",)
    return _Kernel(params, body, helpers=helpers, consts=["\n".join(helper)])


def _mac_product(
    op: Operation, x: str, w: str, xc: str, wc: str, is_float: bool, posit: bool = False
) -> str:
    if is_float:  # f16 storage: each operand read as float
        xf = f"ircomp_h2f({x})" if xc == HALF else x
        wf = f"ircomp_h2f({w})" if wc == HALF else w
        return f"{xf} * {wf}"
    if posit:  # w: a table value modulo 2^32; the product modulo 2^32 is exact enough
        return f"((uint32_t)(int32_t){x} * {w})"
    xzp, wzp = op.get("input_zero_point"), op.get("weight_zero_point")
    narrow = xc in ("int8_t", "uint8_t") and wc in ("int8_t", "uint8_t")
    t = "int32_t" if narrow else "int64_t"
    xs = f"((({t}){x}) - {xzp})" if xzp else f"({t}){x}"
    ws = f"((({t}){w}) - {wzp})" if wzp else f"({t}){w}"
    return f"(uint32_t)({xs} * {ws})"


def _mac_types(op: Operation, ctx: _Ctx) -> tuple[bool, str, str, str]:
    x, w, y = op.operands[0], op.operands[1], op.results[0]
    vx, vw, vy = ctx.vals[x], ctx.vals[w], ctx.vals[y]
    is_float = vy.is_float
    if not is_float:
        fmt = repr_of(y).fmt
        if not isinstance(fmt, Int | FixP) or (fmt.width == 32 and not fmt.signed):
            raise InputError(
                f"{_op_label(op)}: the C backend accumulates into signed codes of up to 32 bits "
                f"(or unsigned below 32), not {fmt.short_name}"
            )
    return is_float, vx.ctype, vw.ctype, vy.ctype


def _finish(op: Operation, is_float: bool, bias: bool, idx: str, half: bool = False) -> str:
    """The accumulator `acc` plus the bias (read as float when `half`), wrapped to the MAC
    result's width."""
    if is_float:
        b = f"ircomp_h2f(b[{idx}])" if half else f"b[{idx}]"
        return f"acc + {b}" if bias else "acc"
    _, width, signed = _code_format(repr_of(op.results[0]))
    return _wrap(f"acc + (uint32_t)b[{idx}]" if bias else "acc", width, signed)


@dataclass(frozen=True)
class PositWeights:
    """A posit weight array stored packed: two 4-bit codes per byte (n <= 4, low nibble first)
    or one code per byte (n <= 8), decoded through a table of exact fixed-point values. With
    `rows` (linear weights, n <= 4) each row is padded to an even length with code 0 so that a
    byte holds the codes k, k + 1 of one row (`row_bytes` bytes a row)."""

    n: int
    es: int
    rows: bool = False

    @property
    def per_byte(self) -> int:
        return 2 if self.n <= 4 else 1

    def row_bytes(self, k: int) -> int:
        return (k + 1) // 2

    def pack(self, codes: np.ndarray) -> np.ndarray:
        if self.per_byte == 1:
            return codes.reshape(-1).astype(np.uint8)
        if self.rows:
            rows = codes.reshape(codes.shape[0], -1)
            if rows.shape[1] % 2:
                rows = np.concatenate([rows, np.zeros((rows.shape[0], 1), rows.dtype)], axis=1)
            flat = rows.reshape(-1).astype(np.uint8)
        else:
            flat = codes.reshape(-1).astype(np.uint8)
            if flat.size % 2:
                flat = np.append(flat, np.uint8(0))
        return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)

    def table(self, shift: int) -> np.ndarray:
        """code -> posit value * 2^shift modulo 2^32 (NaR: 0, refused at generation)."""
        out = np.zeros(1 << self.n, np.int64)
        for code, value in enumerate(posit_value_table(self.n, self.es)):
            if math.isnan(value):
                continue
            exact = int(math.ldexp(value, shift))
            assert exact == math.ldexp(value, shift), "posit value not on the accumulator grid"
            out[code] = exact % (1 << 32)
        return out

    def code(self, array: str, index: str) -> str:
        """C expression of the code at flat `index` of the packed `array`."""
        if self.per_byte == 1:
            return f"{array}[{index}]"
        return f"(({array}[({index}) >> 1] >> ((({index}) & 1) << 2)) & 15u)"


def _mac_weight(
    op: Operation, ctx: _Ctx, local: str, flat: str, array: str = "w"
) -> tuple[str, str | None]:
    """The weight operand of a MAC in its product: `local` (an expression of the weight
    array), or for packed posit weights the table lookup of code `flat` (a flat index into
    `array`); second: the table's definition (None when there is none)."""
    w = op.operands[1]
    posit = ctx.posit.get(w)
    if posit is None:
        return local, None
    shift = repr_of(op.results[0]).frac - repr_of(op.operands[0]).frac
    name = f"{ctx.prefix}_posit"
    table = posit.table(shift)
    fmt = repr_of(w).fmt
    text = f"/* {fmt.short_name} code -> value * 2^{shift} (modulo 2^32) */\n" + _const_array(
        name, "uint32_t", table
    )
    return f"{name}[{posit.code(array, flat)}]", text


@dataclass
class _Store:
    """How a MAC kernel stores an accumulator: plainly, or through a fused `nn.requantize`
    (the int32 tensor is then never stored: spec/c_abi.md, fused requantization)."""

    rq: Operation | None
    ctx: _Ctx
    consts: list[str] = field(default_factory=list)
    helpers: tuple[str, ...] = ()
    half: bool = False  # the MAC's own float result is stored as f16
    fast: bool = False  # fast kernels: integer mode through ircomp_frq where it applies

    def output(self, mac: Operation) -> SSAValue:
        return (self.rq or mac).results[0]

    def lines(self, target: str, value: str, channel: str) -> list[str]:
        if self.rq is None:
            return [f"{target} = {f'ircomp_f2h({value})' if self.half else value};"]
        shape = self.ctx.vals[self.rq.results[0]].shape
        tables: list[str] = [] if self.consts else self.consts  # emitted on the first call
        stmts, self.helpers = _requant_stmts(
            self.rq, shape, self.ctx.prefix, tables, "acc32", target, channel, fast=self.fast
        )
        return ["{", f"    const int32_t acc32 = {value};", *("    " + x for x in stmts), "}"]


def _linear(op: Operation, ctx: _Ctx, rq: Operation | None = None) -> _Kernel:
    is_float, xc, wc, _ = _mac_types(op, ctx)
    store = _Store(rq, ctx, half=rq is None and ctx.vals[op.results[0]].half)
    x, w, y = op.operands[0], op.operands[1], store.output(op)
    bias = len(op.operands) > 2
    out_f, in_f = ctx.vals[w].shape
    rows = _numel(ctx.vals[x].shape) // in_f
    params = [("x", x, False), ("w", w, False)]
    if bias:
        params.append(("b", op.operands[2], False))
    params.append(("y", y, True))
    acc_t, zero = ("float", "0.0f") if is_float else ("uint32_t", "0u")
    wexpr, table = _mac_weight(op, ctx, "wr[k]", f"o * {in_f} + k")
    prod = _mac_product(op, "xr[k]", wexpr, xc, wc, is_float, table is not None)
    posit = ctx.posit.get(w)
    if posit is not None and posit.rows:  # two codes of the row per byte, both used
        tab = f"{ctx.prefix}_posit"
        loop = [
            f"        const uint8_t* wr = w + o * {posit.row_bytes(in_f)};",
            f"        {acc_t} acc = {zero};",
            f"        for (k = 0; k + 1 < {in_f}; k += 2) {{",
            "            const uint32_t pair = wr[k >> 1];",
            f"            acc += (uint32_t)(int32_t)xr[k] * {tab}[pair & 15u] + "
            f"(uint32_t)(int32_t)xr[k + 1] * {tab}[pair >> 4];",
            "        }",
        ]
        if in_f % 2:
            k = in_f - 1
            loop.append(f"        acc += (uint32_t)(int32_t)xr[{k}] * {tab}[wr[{k >> 1}] & 15u];")
    else:
        loop = [
            *([] if table else [f"        const {wc}* wr = w + o * {in_f};"]),
            f"        {acc_t} acc = {zero};",
            f"        for (k = 0; k < {in_f}; ++k) acc += {prod};",
        ]
    body = [
        "int32_t m, o, k;",
        f"for (m = 0; m < {rows}; ++m) {{",
        f"    const {xc}* xr = x + m * {in_f};",
        f"    for (o = 0; o < {out_f}; ++o) {{",
        *loop,
        *(
            "        " + line
            for line in store.lines(
                f"y[m * {out_f} + o]",
                _finish(op, is_float, bias, "o", ctx.vals[op.results[0]].half),
                "o",
            )
        ),
        "    }",
        "}",
    ]
    helpers = () if is_float else ("wrap_i32", *store.helpers)
    consts = ([table] if table else []) + store.consts
    return _Kernel(params, body, helpers=helpers, consts=consts)


def _matmul(op: Operation, ctx: _Ctx, rq: Operation | None = None) -> _Kernel:
    is_float, ac, bc, _ = _mac_types(op, ctx)
    store = _Store(rq, ctx, half=rq is None and ctx.vals[op.results[0]].half)
    a, b, y = op.operands[0], op.operands[1], store.output(op)
    sa, sb, sy = ctx.vals[a].shape, ctx.vals[b].shape, ctx.vals[y].shape
    if len(sa) < 2 or len(sb) < 2:
        raise InputError(f"{_op_label(op)}: the C backend needs matmul operands of rank >= 2")
    m, k, n = sa[-2], sa[-1], sb[-1]
    batch = sy[:-2]
    nb = _numel(batch)
    ia = np.broadcast_to(np.arange(_numel(sa[:-2])).reshape(sa[:-2] or (1,)), batch or (1,))
    ib = np.broadcast_to(np.arange(_numel(sb[:-2])).reshape(sb[:-2] or (1,)), batch or (1,))
    consts = []
    off_a, off_b = "0", "0"
    if nb > 1:
        consts.append(_const_array(f"{ctx.prefix}_a_off", "int32_t", ia.reshape(-1) * m * k))
        consts.append(_const_array(f"{ctx.prefix}_b_off", "int32_t", ib.reshape(-1) * k * n))
        off_a, off_b = f"{ctx.prefix}_a_off[t]", f"{ctx.prefix}_b_off[t]"
    acc_t, zero = ("float", "0.0f") if is_float else ("uint32_t", "0u")
    wexpr, table = _mac_weight(op, ctx, f"bp[j * {n} + c]", f"{off_b} + j * {n} + c", "b")
    prod = _mac_product(op, f"ap[row * {k} + j]", wexpr, ac, bc, is_float, table is not None)
    body = [
        "int32_t t, row, c, j;",
        f"for (t = 0; t < {nb}; ++t) {{",
        f"    const {ac}* ap = a + {off_a};",
        *([] if table else [f"    const {bc}* bp = b + {off_b};"]),
        f"    for (row = 0; row < {m}; ++row) {{",
        f"        for (c = 0; c < {n}; ++c) {{",
        f"            {acc_t} acc = {zero};",
        f"            for (j = 0; j < {k}; ++j) acc += {prod};",
        *(
            "            " + line
            for line in store.lines(
                f"y[(t * {m} + row) * {n} + c]", _finish(op, is_float, False, ""), "c"
            )
        ),
        "        }",
        "    }",
        "}",
    ]
    return _Kernel(
        [("a", a, False), ("b", b, False), ("y", y, True)],
        body,
        helpers=() if is_float else ("wrap_i32", *store.helpers),
        consts=consts + ([table] if table else []) + store.consts,
    )


def _conv2d(op: Operation, ctx: _Ctx, rq: Operation | None = None) -> _Kernel:
    is_float, xc, wc, _ = _mac_types(op, ctx)
    store = _Store(rq, ctx, half=rq is None and ctx.vals[op.results[0]].half)
    x, w, y = op.operands[0], op.operands[1], store.output(op)
    bias = len(op.operands) > 2
    n, c, h, wd = ctx.vals[x].shape
    o, cg, kh, kw = ctx.vals[w].shape
    _, _, oh, ow = ctx.vals[y].shape
    groups = op.get("groups")
    og = o // groups
    sh, sw = op.get("strides")
    pt, pl, _, _ = op.get("padding")
    dh, dw = op.get("dilations")
    params = [("x", x, False), ("w", w, False)]
    if bias:
        params.append(("b", op.operands[2], False))
    params.append(("y", y, True))
    acc_t, zero = ("float", "0.0f") if is_float else ("uint32_t", "0u")
    windex = f"((oc * {cg} + ci) * {kh} + ky) * {kw} + kx"
    wexpr, table = _mac_weight(op, ctx, f"w[{windex}]", windex)
    prod = _mac_product(
        op,
        f"x[((ni * {c} + g * {cg} + ci) * {h} + ih) * {wd} + iw]",
        wexpr,
        xc,
        wc,
        is_float,
        table is not None,
    )
    body = [
        "int32_t ni, oc, oy, ox, ci, ky, kx;",
        f"for (ni = 0; ni < {n}; ++ni) {{",
        f"    for (oc = 0; oc < {o}; ++oc) {{",
        f"        const int32_t g = oc / {og};",
        f"        for (oy = 0; oy < {oh}; ++oy) {{",
        f"            for (ox = 0; ox < {ow}; ++ox) {{",
        f"                {acc_t} acc = {zero};",
        f"                for (ci = 0; ci < {cg}; ++ci) {{",
        f"                    for (ky = 0; ky < {kh}; ++ky) {{",
        f"                        const int32_t ih = oy * {sh} - {pt} + ky * {dh};",
        f"                        if (ih < 0 || ih >= {h}) continue;",
        f"                        for (kx = 0; kx < {kw}; ++kx) {{",
        f"                            const int32_t iw = ox * {sw} - {pl} + kx * {dw};",
        f"                            if (iw < 0 || iw >= {wd}) continue;",
        f"                            acc += {prod};",
        "                        }",
        "                    }",
        "                }",
        *(
            "                " + line
            for line in store.lines(
                f"y[((ni * {o} + oc) * {oh} + oy) * {ow} + ox]",
                _finish(op, is_float, bias, "oc", ctx.vals[op.results[0]].half),
                "oc",
            )
        ),
        "            }",
        "        }",
        "    }",
        "}",
    ]
    helpers = () if is_float else ("wrap_i32", *store.helpers)
    consts = ([table] if table else []) + store.consts
    return _Kernel(params, body, helpers=helpers, consts=consts)


def _window_loop(  # type: ignore[no-untyped-def]
    x_shape, y_shape, kernel, strides, padding, dilations, init, step, store, half=False
):
    """Loops over every output window; `half`: x holds f16 bit patterns, read as float."""
    n, c, h, w = x_shape
    load = f"x[(p * {h} + ih) * {w} + iw]"
    load = f"ircomp_h2f({load})" if half else load
    _, _, oh, ow = y_shape
    kh, kw = kernel
    sh, sw = strides
    pt, pl = padding[0], padding[1]
    dh, dw = dilations
    return [
        "int32_t p, oy, ox, ky, kx;",
        f"for (p = 0; p < {n * c}; ++p) {{",
        f"    for (oy = 0; oy < {oh}; ++oy) {{",
        f"        for (ox = 0; ox < {ow}; ++ox) {{",
        f"            {init}",
        f"            for (ky = 0; ky < {kh}; ++ky) {{",
        f"                const int32_t ih = oy * {sh} - {pt} + ky * {dh};",
        f"                if (ih < 0 || ih >= {h}) continue;",
        f"                for (kx = 0; kx < {kw}; ++kx) {{",
        f"                    const int32_t iw = ox * {sw} - {pl} + kx * {dw};",
        f"                    if (iw < 0 || iw >= {w}) continue;",
        f"                    {{ const {'float' if half else '{T}'} v = {load}; {step} }}",
        "                }",
        "            }",
        f"            y[(p * {oh} + oy) * {ow} + ox] = {store};",
        "        }",
        "    }",
        "}",
    ]


def _rounding_average(total: str, count: str) -> str:
    return f"({total} > 0 ? ({total} + {count} / 2) / {count} : ({total} - {count} / 2) / {count})"


def _pool(op: Operation, ctx: _Ctx) -> _Kernel:
    x, y = op.operands[0], op.results[0]
    vx, vy = ctx.vals[x], ctx.vals[y]
    ct = vy.ctype
    params = [("x", x, False), ("y", y, True)]
    if isinstance(op, nn.GlobalAvgPool2dOp):
        n, c, h, w = vx.shape
        hw = h * w
        if vy.is_float:  # float64 mean rounded once (to f16 directly from the double)
            acc, store = "double s = 0.0;", _st(vy, f"s / {hw}.0", double=True)
        else:
            acc, store = "int64_t s = 0;", f"({ct}){_rounding_average('s', f'(int64_t){hw}')}"
        return _Kernel(
            params,
            [
                "int32_t p, i;",
                f"for (p = 0; p < {n * c}; ++p) {{",
                f"    {acc}",
                f"    for (i = 0; i < {hw}; ++i) s += {_ld(vx, f'x[p * {hw} + i]')};",
                f"    y[p] = {store};",
                "}",
            ],
        )
    kernel, strides, padding = op.get("kernel"), op.get("strides"), op.get("padding")
    dil = op.dilations()
    consts: list[str] = []
    if isinstance(op, nn.MaxPool2dOp):
        init_v = (
            "-INFINITY"
            if vy.is_float
            else {
                "int8_t": "INT8_MIN",
                "uint8_t": "0",
                "int16_t": "INT16_MIN",
                "uint16_t": "0",
                "int32_t": "INT32_MIN",
                "uint32_t": "0",
            }[ct]
        )
        body = _window_loop(
            vx.shape,
            vy.shape,
            kernel,
            strides,
            padding,
            dil,
            f"{'float' if vy.half else ct} m = {init_v};",
            "if (v > m) m = v;",
            _st(vy, "m"),
            vy.half,
        )
    else:
        counts = average_counts(
            vx.shape[2:], kernel, strides, padding, vy.shape[2:], bool(op.get("count_include_pad"))
        )
        if (counts == counts.flat[0]).all():
            cnt = str(int(counts.flat[0]))
        else:
            consts.append(_const_array(f"{ctx.prefix}_count", "int32_t", counts))
            cnt = f"{ctx.prefix}_count[oy * {vy.shape[3]} + ox]"
        if vy.is_float:  # float32 sums in window order, one division (the interpreter's)
            init, store = "float s = 0.0f;", _st(vy, f"s / (float){cnt}")
        else:
            init = "int64_t s = 0;"
            store = f"({ct}){_rounding_average('s', f'(int64_t){cnt}')}"
        body = _window_loop(
            vx.shape, vy.shape, kernel, strides, padding, dil, init, "s += v;", store, vy.half
        )
    body = [line.replace("{T}", ct) for line in body]
    return _Kernel(params, body, consts=consts)


def _softmax(op: Operation, ctx: _Ctx) -> _Kernel:
    x, y = op.operands[0], op.results[0]
    shape = ctx.vals[y].shape
    axis = shapes.normalize_axis(op.get("axis"), len(shape))
    outer, length, inner = _numel(shape[:axis]), shape[axis], _numel(shape[axis + 1 :])
    vx, vy = ctx.vals[x], ctx.vals[y]
    if not vy.is_float:
        raise InputError(f"{_op_label(op)}: softmax needs float32 in the C backend")
    idx = f"(o * {length} + j) * {inner} + q"
    xj = _ld(vx, f"x[{idx}]")
    out = _st(vy, f"exp((double){xj} - (double)mx) / sum", double=True)
    body = [
        "int32_t o, q, j;",
        f"for (o = 0; o < {outer}; ++o) {{",
        f"    for (q = 0; q < {inner}; ++q) {{",
        f"        float mx = {_ld(vx, f'x[o * {length * inner} + q]')};",
        "        double sum = 0.0;",
        f"        for (j = 1; j < {length}; ++j) if ({xj} > mx) mx = {xj};",
        f"        for (j = 0; j < {length}; ++j) sum += exp((double){xj} - (double)mx);",
        f"        for (j = 0; j < {length}; ++j) y[{idx}] = {out};",
        "    }",
        "}",
    ]
    return _Kernel([("x", x, False), ("y", y, True)], body)


def _qsoftmax(op: Operation, ctx: _Ctx) -> _Kernel:
    """TFLite 8-bit softmax (spec/numerics.md 5.7): gemmlowp fixed-point exp and reciprocal,
    parameters from `softmax_params` at generation time."""
    x, y = op.operands[0], op.results[0]
    vy = ctx.vals[y]
    shape = vy.shape
    axis = shapes.normalize_axis(op.get("axis"), len(shape))
    outer, length, inner = _numel(shape[:axis]), shape[axis], _numel(shape[axis + 1 :])
    p = softmax_params(op.get("input_scale"), op.get("beta"))
    lo, hi = repr_of(y).code_range()
    idx = f"(o * {length} + j) * {inner} + q"
    rescale = (
        f"ircomp_srdhm((int32_t)((int64_t)d * ((int64_t)1 << {p.input_left_shift})), "
        f"{_int_lit(p.input_multiplier)})"
    )
    body = [
        "int32_t o, q, j;",
        f"for (o = 0; o < {outer}; ++o) {{",
        f"    for (q = 0; q < {inner}; ++q) {{",
        f"        int32_t mx = x[o * {length * inner} + q];",
        "        int32_t sum = 0, headroom, shift, scale;",
        f"        for (j = 1; j < {length}; ++j) if (x[{idx}] > mx) mx = x[{idx}];",
        f"        for (j = 0; j < {length}; ++j) {{",
        f"            const int32_t d = (int32_t)x[{idx}] - mx;",
        f"            if (d >= {_int_lit(p.diff_min)}) "
        f"sum += ircomp_rdbpot(ircomp_exp_q5({rescale}), 12);",
        "        }",
        "        headroom = ircomp_clz32((uint32_t)sum);",
        "        shift = 12 - headroom + 31 - 8;",
        "        scale = ircomp_one_over_one_plus_x(",
        "            ircomp_wrap_i32(((uint32_t)sum << headroom) - 0x80000000u));",
        f"        for (j = 0; j < {length}; ++j) {{",
        f"            const int32_t d = (int32_t)x[{idx}] - mx;",
        f"            int32_t r = {_int_lit(lo)};",
        f"            if (d >= {_int_lit(p.diff_min)}) {{",
        f"                r = ircomp_rdbpot(ircomp_srdhm(scale, ircomp_exp_q5({rescale})), shift)"
        f" + {_int_lit(lo)};",
        f"                if (r > {_int_lit(hi)}) r = {_int_lit(hi)};",
        "            }",
        f"            y[{idx}] = ({vy.ctype})r;",
        "        }",
        "    }",
        "}",
    ]
    return _Kernel(
        [("x", x, False), ("y", y, True)],
        body,
        helpers=("wrap_i32", "exp_q5", "recip"),
    )


def _island(q: Operation, ops: list[Operation], ctx: _Ctx) -> _Kernel:
    """A float island (`_Generator._float_islands`): dequantize -> avgpool2d -> quantize, or
    dequantize x2 -> add [-> relu] -> quantize, codes in, codes out."""
    y = q.results[0]
    vy = ctx.vals[y]
    lo, hi = repr_of(y).code_range()
    sy, zy = _float_lit(q.get("scale")[0]), _int_lit(q.get("zero_point")[0])
    dqs = [o for o in ops if isinstance(o, nn.DequantizeOp)]

    def deq(dq: Operation, code: str) -> str:
        s, z = _float_lit(dq.get("scale")[0]), int(dq.get("zero_point")[0])
        return f"(float)((int64_t){code} - {z}) * {s}"

    # vector kernel set, codes of at most 16 bits: the branch-free rounding (same result once
    # clamped to the code range) lets the element loop vectorize
    vector = ctx.kernels == "vector" and vy.ctype in vector_kernels.CTYPES
    rounding = "(int32_t)ircomp_vround" if vector else "ircomp_round_half_even"
    helper = "vround" if vector else "round_half_even"

    def store(target: str, value: str) -> list[str]:
        return [
            f"const int32_t r = {rounding}({value} / {sy}) + {zy};",
            f"{target} = ({vy.ctype})(r < {_int_lit(lo)} ? {_int_lit(lo)} : "
            f"r > {_int_lit(hi)} ? {_int_lit(hi)} : r);",
        ]

    if isinstance(ops[1], nn.AvgPool2dOp):
        pool, x = ops[1], dqs[0].operands[0]
        kernel, strides, padding = pool.get("kernel"), pool.get("strides"), pool.get("padding")
        counts = average_counts(
            ctx.vals[x].shape[2:],
            kernel,
            strides,
            padding,
            vy.shape[2:],
            bool(pool.get("count_include_pad")),
        )
        consts: list[str] = []
        if (counts == counts.flat[0]).all():
            cnt = str(int(counts.flat[0]))
        else:
            consts.append(_const_array(f"{ctx.prefix}_count", "int32_t", counts))
            cnt = f"{ctx.prefix}_count[oy * {vy.shape[3]} + ox]"
        body = _window_loop(
            ctx.vals[x].shape,
            vy.shape,
            kernel,
            strides,
            padding,
            [1, 1],
            "float s = 0.0f;",
            f"s += {deq(dqs[0], 'v')};",
            "STORE",
        )
        body = [line.replace("{T}", ctx.vals[x].ctype) for line in body]
        k = next(i for i, line in enumerate(body) if "STORE" in line)
        indent = body[k][: len(body[k]) - len(body[k].lstrip())]
        target = body[k].strip().split(" = ")[0]
        body[k : k + 1] = [
            indent + "{",
            *(indent + "    " + line for line in store(target, f"(s / (float){cnt})")),
            indent + "}",
        ]
        return _Kernel([("x", x, False), ("y", y, True)], body, helpers=(helper,), consts=consts)
    a, b = dqs[0].operands[0], dqs[1].operands[0]
    relu = isinstance(ops[-1], nn.ReluOp)
    body = [
        "int32_t i;",
        *(["IRCOMP_IVDEP /* y may be a or b (in place): still vectorizable */"] if vector else []),
        f"for (i = 0; i < {_numel(vy.shape)}; ++i) {{",
        f"    float v = {deq(dqs[0], 'a[i]')} + {deq(dqs[1], 'b[i]')};",
        *(["    v = v < 0.0f ? 0.0f : v;"] if relu else []),
        *("    " + line for line in store("y[i]", "v")),
        "}",
    ]
    params = [("a", a, False), ("b", b, False), ("y", y, True)]
    return _Kernel(params, body, helpers=(helper,))


def _transpose(op: Operation, ctx: _Ctx) -> _Kernel:
    x, y = op.operands[0], op.results[0]
    perm = op.get("perm")
    in_st = _strides(ctx.vals[x].shape)
    oshape = ctx.vals[y].shape
    rank = len(oshape)
    body = [f"int32_t {', '.join(f'i{k}' for k in range(rank))};", "int32_t o = 0;"]
    indent = ""
    for k in range(rank):
        body.append(f"{indent}for (i{k} = 0; i{k} < {oshape[k]}; ++i{k})")
        indent += "    "
    terms = [f"i{k} * {in_st[perm[k]]}" for k in range(rank)]
    body.append(f"{indent}y[o++] = x[{' + '.join(terms)}];")
    return _Kernel([("x", x, False), ("y", y, True)], body)


def _concat(op: Operation, ctx: _Ctx) -> _Kernel:
    y = op.results[0]
    oshape = ctx.vals[y].shape
    axis = shapes.normalize_axis(op.get("axis"), len(oshape))
    outer = _numel(oshape[:axis])
    total = _numel(oshape[axis:])
    params, lines, offset = [], [], 0
    for i, v in enumerate(op.operands):
        chunk = _numel(ctx.vals[v].shape[axis:])
        params.append((f"x{i}", v, False))
        lines.append(
            f"    for (i = 0; i < {chunk}; ++i) "
            f"y[o * {total} + {offset} + i] = x{i}[o * {chunk} + i];"
        )
        offset += chunk
    params.append(("y", y, True))
    body = ["int32_t o, i;", f"for (o = 0; o < {outer}; ++o) {{", *lines, "}"]
    return _Kernel(params, body)


def _channel_loop(shape: tuple[int, ...], axis: int | None, stmt: list[str]) -> list[str]:
    """Loop over every element with `c` the channel index along `axis` (0 when per tensor)."""
    if axis is None:
        return [
            "int32_t i;",
            f"for (i = 0; i < {_numel(shape)}; ++i) {{",
            *("    " + s for s in stmt),
            "}",
        ]
    outer, ch, inner = _numel(shape[:axis]), shape[axis], _numel(shape[axis + 1 :])
    return [
        "int32_t o, c, q;",
        f"for (o = 0; o < {outer}; ++o) {{",
        f"    for (c = 0; c < {ch}; ++c) {{",
        f"        for (q = 0; q < {inner}; ++q) {{",
        f"            const int32_t i = (o * {ch} + c) * {inner} + q;",
        *("            " + s for s in stmt),
        "        }",
        "    }",
        "}",
    ]


def _scales(op: Operation, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, int | None]:
    scale = np.asarray(op.get("scale"), np.float64)
    zp = np.asarray(op.get("zero_point"), np.int64)
    if scale.size == 1 and zp.size == 1:
        return scale, zp, None
    axis = shapes.normalize_axis(op.get("axis"), len(shape))
    ch = shape[axis]
    return np.broadcast_to(scale, (ch,)), np.broadcast_to(zp, (ch,)), axis


def _requant_stmts(
    op: Operation,
    shape: tuple[int, ...],
    prefix: str,
    consts: list[str],
    acc: str,
    target: str,
    index: str = "c",
    fast: bool = False,
) -> tuple[list[str], tuple[str, ...]]:
    """C statements applying `nn.requantize` `op` to the int32 expression `acc` and storing
    the code in `target`; per-channel tables (appended to `consts`) are read at `index`.
    `fast`: the general integer mode through `ircomp_frq` (fast kernels; same results)."""
    y = op.results[0]
    ctype = _ctype(repr_of(y), _op_label(op))
    scale, zp, _ = _scales(op, shape)

    def table(name: str, t: str, values: np.ndarray) -> str:
        flat = values.reshape(-1)
        if flat.size == 1 or (fast and (flat == flat[0]).all()):  # fast: constants inline
            return (_float_lit if t == "float" else _int_lit)(flat[0])
        consts.append(_const_array(f"{prefix}_{name}", t, values))
        return f"{prefix}_{name}[{index}]"

    lo, hi = repr_of(y).code_range()
    clamp = op.get("clamp")
    if clamp:
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    in_zp = op.get("input_zero_point")
    z = table("zp", "int32_t", zp)
    value = f"(int32_t)((int64_t){acc} - {in_zp})" if in_zp else f"(int32_t){acc}"
    k = _pow2_shifts(scale)
    in_width = _code_width(op.operands[0])
    if k is not None and op.get("mode") == "integer" and (k >= 1).all() and (k <= 32).all():
        # scale 2^-k: QuantizeMultiplier gives (2^30, 1 - k), and MBQM becomes a rounding
        # halving then RoundingDivideByPOT(k - 1): shifts instead of a 64-bit multiply
        sh = table("k", "int32_t", k - 1)
        first = f"const int32_t r = ircomp_rdbpot(ircomp_half_up({value}), {sh}) + {z};"
        helpers: tuple[str, ...] = ("half_up", "rdbpot")
    elif (
        k is not None
        and op.get("mode") == "onnx"
        and not in_zp
        and (k >= 0).all()
        and (k <= 30).all()
        and in_width <= 24
    ):
        # scale 2^-k and |acc| < 2^24: float32(acc) * 2^-k is exact, so its round half to
        # even is the integer shift with ties to even
        sh = table("k", "int32_t", k)
        first = f"const int32_t r = ircomp_rhe_shift({value}, {sh}) + {z};"
        helpers = ("rhe_shift",)
    elif op.get("mode") == "onnx":
        s = table("scale", "float", scale)
        first = f"const int32_t r = ircomp_round_half_even((float){value} * {s}) + {z};"
        helpers = ("round_half_even",)
    elif op.get("mode") == "integer":
        mult, shift = quantize_multiplier_array(scale)
        if fast and (mult >= 0).all() and (np.abs(shift) <= 31).all():
            m = table("mult", "int32_t", mult)
            left = table("left", "int32_t", np.maximum(shift, 0))
            right = table("right", "int32_t", np.maximum(-shift, 0))
            first = f"const int32_t r = ircomp_frq({value}, {m}, {left}, {right}) + {z};"
            helpers = ("frq",)
        else:
            m, sh = table("mult", "int32_t", mult), table("shift", "int32_t", shift)
            first = f"const int32_t r = ircomp_mbqm({value}, {m}, {sh}) + {z};"
            helpers = ("mbqm",)
    else:
        raise InputError(f"{_op_label(op)}: unknown requantize mode {op.get('mode')!r}")
    if fast and "frq" in helpers and (lo, hi) == (-128, 127) and ctype == "int8_t":
        # the full int8 range: one SSAT on cores with the DSP extension
        return [first, f"{target} = (int8_t)ircomp_sat_i8(r);"], (*helpers, "sat_i8")
    return [
        first,
        f"{target} = ({ctype})(r < {_int_lit(lo)} ? {_int_lit(lo)} : "
        f"r > {_int_lit(hi)} ? {_int_lit(hi)} : r);",
    ], helpers


def _pow2_shifts(scale: np.ndarray) -> np.ndarray | None:
    """k with scale == 2^-k exactly for every channel (as an int64 array), else None."""
    mant, exp = np.frexp(np.asarray(scale, np.float64))
    if not (mant == 0.5).all():
        return None
    return (1 - exp).astype(np.int64)


def _code_width(value: SSAValue) -> int:
    fmt = repr_of(value).fmt
    return fmt.width if isinstance(fmt, Int | FixP) else 64


def _scaled_cast(op: Operation, ctx: _Ctx) -> _Kernel:
    x, y = op.operands[0], op.results[0]
    vx, vy = ctx.vals[x], ctx.vals[y]
    shape = vy.shape
    scale, zp, axis = _scales(op, shape)
    p = ctx.prefix
    consts: list[str] = []

    def table(name: str, ctype: str, values: np.ndarray) -> str:
        lit = {"float": _float_lit, "double": _double_lit}.get(ctype, _int_lit)
        if values.size == 1:
            return lit(values.reshape(-1)[0])
        consts.append(_const_array(f"{p}_{name}", ctype, values))
        return f"{p}_{name}[c]"

    params = [("x", x, False), ("y", y, True)]
    if isinstance(op, nn.QuantizeOp) and isinstance(repr_of(y).fmt, FixP):
        if not vx.is_float:
            raise InputError(f"{_op_label(op)}: quantize needs a float input")
        # encode(x / scale) in double (numerics.md 2): round half even of v * 2^f, saturate
        frac, _, _ = _code_format(repr_of(y))
        lo, hi = repr_of(y).code_range()
        s = table("scale_d", "double", scale)
        stmt = [
            f"const double v = (double){_ld(vx, 'x[i]')} / {s} * {_double_lit(2.0**frac)};",
            "if (v != v) return ERR_NAN;",
            f"y[i] = ({vy.ctype})ircomp_encode_d(v, {_int_lit(lo)}, {_int_lit(hi)});",
        ]
        body = [*_channel_loop(shape, axis, stmt), "return 0;"]
        return _Kernel(params, body, returns_error=True, helpers=("encode_d",), consts=consts)
    if isinstance(op, nn.DequantizeOp) and isinstance(repr_of(x).fmt, FixP):
        if not vy.is_float:
            raise InputError(f"{_op_label(op)}: dequantize needs a float result")
        # decode(code) * scale in double, rounded once to float (numerics.md 1)
        frac, _, _ = _code_format(repr_of(x))
        s = table("scale_d", "double", scale)
        value = f"(double)x[i] * {_double_lit(2.0**-frac)} * {s}"
        stmt = [f"y[i] = {_st(vy, value, double=True)};"]
        return _Kernel(params, _channel_loop(shape, axis, stmt), consts=consts)
    if isinstance(op, nn.QuantizeOp):
        if not vx.is_float or vy.is_float:
            raise InputError(f"{_op_label(op)}: quantize needs float32 -> integer codes")
        lo, hi = repr_of(y).code_range()
        s, z = table("scale", "float", scale), table("zp", "int32_t", zp)
        stmt = [
            f"const float v = {_ld(vx, 'x[i]')} / {s};",
            "int32_t r;",
            "if (v != v) return ERR_NAN;",
            f"r = ircomp_round_half_even(v) + {z};",
            f"y[i] = ({vy.ctype})(r < {_int_lit(lo)} ? {_int_lit(lo)} : "
            f"r > {_int_lit(hi)} ? {_int_lit(hi)} : r);",
        ]
        body = [*_channel_loop(shape, axis, stmt), "return 0;"]
        return _Kernel(
            params, body, returns_error=True, helpers=("round_half_even",), consts=consts
        )
    if isinstance(op, nn.DequantizeOp):
        if vx.is_float or not vy.is_float:
            raise InputError(f"{_op_label(op)}: dequantize needs integer codes -> float32")
        s, z = table("scale", "float", scale), table("zp", "int64_t", zp)
        stmt = [f"y[i] = {_st(vy, f'(float)((int64_t)x[i] - {z}) * {s}')};"]
        body = _channel_loop(shape, axis, stmt)
        return _Kernel(params, body, consts=consts)
    # requantize
    if vx.is_float or vy.is_float:
        raise InputError(f"{_op_label(op)}: requantize needs integer codes")
    stmt, helpers = _requant_stmts(op, shape, p, consts, "x[i]", "y[i]")
    body = _channel_loop(shape, axis, stmt)
    return _Kernel(params, body, helpers=helpers, consts=consts)


KERNELS = {
    nn.ReluOp: _unary,
    nn.ClipOp: _unary,
    nn.HardTanhOp: _unary,
    nn.SigmoidOp: _unary,
    nn.TanhOp: _unary,
    nn.AddOp: _binary,
    nn.SubOp: _binary,
    nn.MulOp: _binary,
    nn.DivOp: _binary,
    nn.LinearOp: _linear,
    nn.MatMulOp: _matmul,
    nn.Conv2dOp: _conv2d,
    nn.MaxPool2dOp: _pool,
    nn.AvgPool2dOp: _pool,
    nn.GlobalAvgPool2dOp: _pool,
    nn.SoftmaxOp: _softmax,
    nn.TransposeOp: _transpose,
    nn.ConcatOp: _concat,
    nn.QuantizeOp: _scaled_cast,
    nn.DequantizeOp: _scaled_cast,
    nn.RequantizeOp: _scaled_cast,
    nn.QAddOp: _qadd,
    nn.QSoftmaxOp: _qsoftmax,
}
ALIASES = (nn.ReshapeOp, nn.FlattenOp)
MAC_KERNELS = {nn.LinearOp: _linear, nn.MatMulOp: _matmul, nn.Conv2dOp: _conv2d}


# ---- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArenaPlan:
    """The arena: its size and each tensor's (label, offset, bytes, lifetime in op indices)."""

    size: int
    entries: tuple[tuple[str, int, int, int, int], ...]
    total_tensor_bytes: int  # every intermediate tensor's bytes, without reuse


def _find_main(program: Program) -> func.FuncOp:
    for op in program.module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == "main":
            return op
    raise InputError("the module has no function @main")


def _elem_size(ctype: str) -> int:
    return {
        "float": 4,
        "int8_t": 1,
        "uint8_t": 1,
        "int16_t": 2,
        "uint16_t": 2,
        "int32_t": 4,
        "uint32_t": 4,
        HALF: 2,
    }[ctype]


class _Generator:
    def __init__(self, program: Program, name: str, kernels: str = "portable") -> None:
        if kernels not in fast_kernels.KERNEL_CHOICES:
            raise InputError(
                f"kernels must be one of {', '.join(fast_kernels.KERNEL_CHOICES)}, got {kernels!r}"
            )
        self.program = program
        self.kernels = kernels
        self.name = c_name(name)
        self.upper = self.name.upper()
        fn = _find_main(program)
        self.block = fn.body.block
        ops = list(self.block.ops)
        ret = ops[-1]
        assert isinstance(ret, func.ReturnOp)
        self.outputs = list(ret.operands)
        self.ops = self._live_ops(ops[:-1])
        # requantize -> the integer MAC it is fused with (the MAC is not emitted on its own)
        self.fused = self._fusions()
        # quantize -> the float ops between it and its dequantized inputs, in one kernel
        self.islands = self._float_islands()
        absorbed = set(self.fused.values()) | {a for ops in self.islands.values() for a in ops}
        self.ops = [op for op in self.ops if op not in absorbed]
        self.vals: dict[SSAValue, _Value] = {}
        self.weights: dict[SSAValue, np.ndarray] = {}
        # fused requantize -> its fast kernel ("conv", "dw", "linear"; "vconv", "vdw",
        # "vlinear" for the vector set); weights stored reordered or packed
        self.fast: dict[Operation, str] = {}
        self.reordered: set[SSAValue] = set()
        self.packed: dict[SSAValue, tuple[str, Operation]] = {}  # weight -> (kind, its MAC)
        self.posit: dict[SSAValue, PositWeights] = {}  # packed posit weights
        self.scratch_offset: dict[Operation, int] = {}
        self.nhwc: set[SSAValue] = set()  # values stored channel last (vector kernels)
        if kernels == "vector":
            self._choose_vector()
            self._vector_layouts()
        if kernels == "fast":
            for rq, mac in self.fused.items():
                kind = fast_kernels.fast_kind(mac)
                weight = mac.operands[1]
                if kind is None:
                    continue
                if fast_kernels.reorders_weights(kind):
                    if len(list(weight.uses)) != 1:  # the weight array is shared: keep it
                        continue
                    self.reordered.add(weight)
                self.fast[rq] = kind

    def _posit_weights(self, op: nn.WeightOp) -> PositWeights:
        """Posit weights: only as the weight operand of MACs, n <= 8, no NaR."""
        fmt = repr_of(op.result).fmt
        assert isinstance(fmt, Posit)
        label = _op_label(op)
        for use in op.result.uses:
            user = use.operation
            if not (isinstance(user, nn.MacOp) and user.mac_operands()[1] is op.result):
                raise InputError(
                    f"{_op_label(user)}: {fmt.short_name} weight '{op.weight_name.data}' is "
                    "supported by the C backend only as a linear / conv2d / matmul weight"
                )
        if fmt.n > 8:
            raise InputError(
                f"{label}: {fmt.short_name} weights: the C backend supports posits of up to 8 "
                "bits (n <= 4: two codes per byte, n <= 8: one)"
            )
        codes = np.asarray(self.program.weights.get(op.hash.data))
        if (codes == (1 << (fmt.n - 1))).any():
            raise InputError(f"{label}: {fmt.short_name} weights hold NaR, which has no value")
        linear = all(isinstance(u.operation, nn.LinearOp) for u in op.result.uses)
        return PositWeights(fmt.n, fmt.es, rows=linear and fmt.n <= 4)

    def _choose_vector(self) -> None:
        """Vector kernels for the fused 8-bit MACs whose sums provably stay in int32."""
        for rq, mac in self.fused.items():
            rep = repr_of(rq.results[0])
            ctype = CTYPES.get(rep.dtype, "") if isinstance(rep.fmt, Int) else ""
            kind = vector_kernels.vector_kind(mac, rq, ctype)
            weight = mac.operands[1]
            if kind is None or len(list(weight.uses)) != 1:
                continue
            data = np.asarray(self.program.weights.get(weight.owner.hash.data))  # type: ignore[union-attr]
            bias = None
            if len(mac.operands) > 2:
                bias = np.asarray(self.program.weights.get(mac.operands[2].owner.hash.data))  # type: ignore[union-attr]
            if not vector_kernels.fits_int32(mac, data, bias):
                continue
            self.fast[rq] = kind
            self.packed[weight] = (kind, mac)

    def _vector_layouts(self) -> None:
        """Choose the 4-D values stored channel last (`[N][H][W][C]`): those a vector conv or
        depthwise kernel (or a layout-free elementwise op: relu, clip, qadd of equal shapes)
        writes and only such kernels read, so that no kernel between them transposes. The
        model's inputs and results stay NCHW. Depthwise kernels touching one become "vdwc"."""
        outputs = set(self.outputs)
        producer: dict[SSAValue, Operation] = {}
        readers: dict[SSAValue, list[Operation]] = {}
        for op in self.ops:
            if isinstance(op, nn.WeightOp):
                continue
            for r in op.results:
                producer[r] = op
            for v in self.operands_of(op):
                readers.setdefault(v, []).append(op)

        def conv(op: Operation) -> bool:
            return self.fast.get(op) in ("vconv", "vdw")

        def elementwise(op: Operation) -> bool:
            if isinstance(op, nn.ReluOp | nn.ClipOp):
                return True
            if isinstance(op, nn.QAddOp):
                shape = _shape(op.results[0], "")
                return all(_shape(v, "") == shape for v in op.operands)
            return False

        cand: set[SSAValue] = set()
        for v, op in producer.items():
            dims = _shape(v, "")
            if v in outputs or len(dims) != 4 or dims[2] * dims[3] == 1:
                continue
            if conv(op) or elementwise(op):
                cand.add(v)
        changed = True
        while changed:
            changed = False
            for v in sorted(cand, key=lambda u: self.ops.index(producer[u])):
                op = producer[v]
                ok = not (elementwise(op) and any(u not in cand for u in op.operands))
                for r in readers.get(v, []):
                    if conv(r) and self.fused[r].operands[0] is v:
                        continue
                    inputs_ok = all(u in cand for u in r.operands)
                    if not (elementwise(r) and r.results[0] in cand and inputs_ok):
                        ok = False
                if not ok:
                    cand.discard(v)
                    changed = True
        self.nhwc = cand
        for rq, kind in self.fast.items():
            mac = self.fused[rq]
            if kind == "vdw" and (mac.operands[0] in cand or rq.results[0] in cand):
                row = rq.results[0] in cand and mac.get("strides")[1] == 1
                self.fast[rq] = "vdwr" if row else "vdwc"
                self.packed[mac.operands[1]] = (self.fast[rq], mac)

    def _fusions(self) -> dict[Operation, Operation]:
        """Integer MACs whose only use is an `nn.requantize` whose per-channel axis (if any)
        is the MAC's output channel: fused into one kernel, no int32 tensor in the arena."""
        fused: dict[Operation, Operation] = {}
        outputs = set(self.outputs)
        for op in self.ops:
            if not isinstance(op, nn.RequantizeOp):
                continue
            acc = op.operands[0]
            mac = acc.owner
            if not isinstance(mac, nn.LinearOp | nn.MatMulOp | nn.Conv2dOp):
                continue
            if acc in outputs or len(list(acc.uses)) != 1 or repr_of(acc).is_float:
                continue
            rank = len(_shape(acc, _op_label(mac)))
            if len(op.get("scale")) > 1 or len(op.get("zero_point")) > 1:
                channel = 1 if isinstance(mac, nn.Conv2dOp) else rank - 1
                if shapes.normalize_axis(op.get("axis"), rank) != channel:
                    continue
            fused[op] = mac
        return fused

    def _float_islands(self) -> dict[Operation, list[Operation]]:
        """`nn.quantize` ops computing `avgpool2d(dequantize(x))` or
        `[relu](add(dequantize(a), dequantize(b)))` (per-tensor parameters, every intermediate
        used once, no broadcasting): one kernel from codes to codes, no float tensor in the
        arena (the QDQ graphs of the "onnx" requantization mode). Same float operations in the
        same order as the separate kernels, so bit-identical."""
        outputs = set(self.outputs)

        def single(v: SSAValue, kind: type) -> Operation | None:
            owner = v.owner
            if not isinstance(owner, kind) or v in outputs or len(list(v.uses)) != 1:
                return None
            if isinstance(owner, nn.ScaledCastOp) and (
                len(owner.get("scale")) != 1 or len(owner.get("zero_point")) != 1
            ):
                return None
            if not isinstance(owner, nn.DequantizeOp) and not _is_f32(v):
                return None
            return owner

        islands: dict[Operation, list[Operation]] = {}
        for op in self.ops:
            if not isinstance(op, nn.QuantizeOp) or len(op.get("scale")) != 1:
                continue
            if not _is_f32(op.operands[0]):
                continue
            if len(op.get("zero_point")) != 1 or not isinstance(repr_of(op.result).fmt, Int):
                continue
            x = op.operands[0]
            pool = single(x, nn.AvgPool2dOp)
            if pool is not None:
                dq = single(pool.operands[0], nn.DequantizeOp)
                if dq is not None and isinstance(repr_of(dq.operands[0]).fmt, Int):
                    islands[op] = [dq, pool]
                continue
            relu = single(x, nn.ReluOp)
            add = single(relu.operands[0] if relu is not None else x, nn.AddOp)
            if add is None:
                continue
            dqs = [single(v, nn.DequantizeOp) for v in add.operands]
            shape = _shape(add.results[0], "")
            if any(d is None or _shape(d.results[0], "") != shape for d in dqs):
                continue
            if any(not isinstance(repr_of(d.operands[0]).fmt, Int) for d in dqs if d):
                continue
            islands[op] = [*(d for d in dqs if d), add, *([relu] if relu else [])]
        return islands

    def operands_of(self, op: Operation) -> Sequence[SSAValue]:
        """The values an emitted kernel reads (a fused requantize reads its MAC's operands, a
        float island its dequantizes' codes)."""
        mac = self.fused.get(op)
        if mac is not None:
            return mac.operands
        island = self.islands.get(op)
        if island is not None:
            return [d.operands[0] for d in island if isinstance(d, nn.DequantizeOp)]
        return op.operands

    def _live_ops(self, ops: list[Operation]) -> list[Operation]:
        live: set[SSAValue] = set(self.outputs)
        kept: list[Operation] = []
        for op in reversed(ops):
            if any(r in live for r in op.results):
                kept.append(op)
                live.update(op.operands)
        return kept[::-1]

    def root(self, v: SSAValue) -> SSAValue:
        return self.vals[v].root

    def run(self, inputs: Sequence[np.ndarray] | None, seed: int) -> dict[str, str]:
        self._describe_values()
        plan_info = self._plan()
        weights_c = self._weights_text()
        funcs, calls, helpers, any_error = self._functions()
        files = {
            f"{self.name}.h": self._header(plan_info),
            f"{self.name}.c": self._source(plan_info, weights_c, funcs, calls, helpers, any_error),
        }
        ins, outs = self._reference(inputs, seed)
        files["vectors.h"] = self._vectors(ins, outs)
        files["main.c"] = self._main(outs)
        files["Makefile"] = self._makefile()
        files["cortex_m4.ld"] = cortex_m4.LINKER_SCRIPT
        files["startup_cortex_m4.c"] = cortex_m4.STARTUP
        self.plan_info = plan_info
        return files

    # -- values and memory --

    def _describe_values(self) -> None:
        for i, arg in enumerate(self.block.args):
            what = f"input {i}"
            self.vals[arg] = _Value(_ctype(repr_of(arg), what), _shape(arg, what), arg, "input")
        for op in self.ops:
            label = _op_label(op)
            for inner in ([self.fused[op]] if op in self.fused else []) + self.islands.get(op, []):
                r = inner.results[0]
                self.vals[r] = _Value(_ctype(repr_of(r), label), _shape(r, label), r, "fused")
            if isinstance(op, nn.WeightOp):
                r = op.result
                if isinstance(repr_of(r).fmt, Posit):
                    self.posit[r] = self._posit_weights(op)
                    ctype = "uint8_t"
                else:
                    ctype = _ctype(repr_of(r), label)
                self.vals[r] = _Value(ctype, _shape(r, label), r, "weight")
                continue
            if type(op) not in KERNELS and not isinstance(op, ALIASES):
                layer = nn.op_name(op)
                where = f" (node '{layer}')" if layer else ""
                raise InputError(f"{op.name}{where}: op not supported by the C backend")
            for r in op.results:
                root = self.vals[op.operands[0]].root if isinstance(op, ALIASES) else r
                self.vals[r] = _Value(_ctype(repr_of(r), label), _shape(r, label), root)
        for weight in self.packed:
            self.vals[weight].ctype = "int16_t"
        n_in = len(self.block.args)
        self.in_names = ["in"] if n_in == 1 else [f"in{i}" for i in range(n_in)]
        self.out_names = (
            ["out"] if len(self.outputs) == 1 else [f"out{i}" for i in range(len(self.outputs))]
        )
        for i, arg in enumerate(self.block.args):
            self.vals[arg].ref = self.in_names[i]
        # A computed root returned as an output is written straight into the caller's buffer.
        self.copies: list[tuple[int, SSAValue]] = []
        for j, v in enumerate(self.outputs):
            root = self.vals[self.root(v)]
            if root.kind == "arena" and not root.ref:
                root.kind, root.ref = "output", self.out_names[j]
            else:
                self.copies.append((j, v))

    def _plan(self) -> ArenaPlan:
        index = {op: k for k, op in enumerate(self.ops)}
        end: dict[SSAValue, int] = {}
        for k, op in enumerate(self.ops):
            for v in self.operands_of(op):
                end[self.root(v)] = k
        for _, v in self.copies:
            end[self.root(v)] = len(self.ops)
        buffers: list[Buffer] = []
        for op in self.ops:
            if isinstance(op, (nn.WeightOp, *ALIASES)):
                continue
            k = index[op]
            for r in op.results:
                val = self.vals[r]
                if val.kind != "arena":
                    continue
                size = _numel(val.shape) * _elem_size(val.ctype)
                host = None
                if isinstance(op, ELEMENTWISE) and not isinstance(op, nn.SoftmaxOp | nn.ConcatOp):
                    for v in op.operands:
                        rv = self.vals[self.root(v)]
                        if (
                            rv.kind == "arena"
                            and _numel(self.vals[v].shape) == _numel(val.shape)
                            and end.get(self.root(v)) == k
                        ):
                            host = self.root(v)
                            break
                label = f"{op.name} {nn.op_name(op) or ''}".strip()
                if r in self.nhwc:
                    label = "[NHWC] " + label
                buffers.append(Buffer(r, label, size, k, end.get(r, k), host))
            if op in self.fast and self._scratch_bytes(op):
                mac = self.fused[op]
                size = self._scratch_bytes(op)
                label = f"scratch {mac.name} {nn.op_name(mac) or ''}".strip()
                buffers.append(Buffer(("scratch", k), label, size, k, k))
        size = plan(buffers)
        for b in buffers:
            if isinstance(b.key, tuple):
                self.scratch_offset[self.ops[b.key[1]]] = b.offset
            else:
                self.vals[b.key].ref = str(b.offset)  # type: ignore[index]
        entries = tuple((b.label, b.offset, b.size, b.start, b.end) for b in buffers)
        return ArenaPlan(size, entries, sum(b.size for b in buffers))

    def ptr(self, v: SSAValue) -> str:
        val = self.vals[self.root(v)]
        if val.kind == "arena":
            return f"ARENA({val.ref}, {val.ctype})"
        return val.ref

    # -- text --

    def _weights_text(self) -> list[str]:
        out, seen = [], {}
        used_names: set[str] = set()
        for op in self.ops:
            if not isinstance(op, nn.WeightOp):
                continue
            val = self.vals[op.result]
            reorder = op.result in self.reordered
            packed = self.packed.get(op.result)
            key = (op.hash.data, val.ctype, reorder or packed is not None)
            if key in seen:
                val.ref = seen[key]
                continue
            suffix = "_r4" if reorder else "_v" if packed else ""
            base = "w_" + sanitize(op.weight_name.data) + suffix
            cname, n = base, 1
            while cname in used_names:
                n += 1
                cname = f"{base}_{n}"
            used_names.add(cname)
            seen[key] = cname
            val.ref = cname
            data = np.asarray(self.program.weights.get(op.hash.data))
            note = ""
            if reorder:
                data = fast_kernels.reorder_rows(data)
                note = ", rows in groups of 4 stored w0 w2 w1 w3 (fast kernels)"
            if packed:
                kind, mac = packed
                data = vector_kernels.pack_weights(kind, data, mac)
                note = ", packed int16 minus its zero point (vector kernels)"
            posit = self.posit.get(op.result)
            if posit is not None:
                data = posit.pack(data)
                note = (
                    ", one code per byte"
                    if posit.per_byte == 1
                    else ", codes packed two per byte, low nibble first"
                    + (", rows padded to an even length" if posit.rows else "")
                )
            if val.half:
                data = data.astype(np.float16).view(np.uint16)
                note = ", IEEE binary16 bit patterns"
            out.append(f"/* nn.weight '{op.weight_name.data}' {op.result.type}{note} */")
            out.append(_const_array(cname, val.ctype, data))
        return out

    def _functions(self) -> tuple[list[str], list[str], list[str], bool]:
        funcs: list[str] = []
        calls: list[str] = []
        helpers: list[str] = []
        any_error = False
        for k, op in enumerate(self.ops):
            if isinstance(op, nn.WeightOp):
                continue
            layer = nn.op_name(op)
            comment = f"/* {op.name}" + (f" '{layer}'" if layer else "") + " */"
            if isinstance(op, ALIASES):
                calls.append(f"    {comment[:-3]}: shares the storage of its input */")
                continue
            mac = self.fused.get(op)
            kind = op.name.removeprefix("nn.")
            if mac is not None:
                layer = nn.op_name(mac) or layer
                kind = f"{mac.name.removeprefix('nn.')}_{kind}"
                comment = f"/* {mac.name} + {op.name}" + (f" '{layer}'" if layer else "") + " */"
            if op in self.islands:
                ops = [*self.islands[op], op]
                main = ops[-2] if isinstance(ops[-2], nn.AvgPool2dOp) else ops[2]
                layer = nn.op_name(main) or layer
                kind = f"{main.name.removeprefix('nn.')}_{kind}"
                names = " + ".join(o.name for o in ops)
                comment = f"/* {names}" + (f" '{layer}'" if layer else "") + " */"
            fname = f"op{k}_{sanitize(kind)}"
            if layer:
                fname += "_" + sanitize(layer)
            ctx = _Ctx(self.vals, fname, self.weights, self.kernels, self.posit)
            if op in self.fast:
                kern = self._fast_kernel(op, ctx)
            elif op in self.islands:
                kern = _island(op, self.islands[op], ctx)
            elif mac is not None:
                kern = MAC_KERNELS[type(mac)](mac, ctx, op)
            else:
                kern = KERNELS[type(op)](op, ctx)
            for h in kern.helpers:
                _add_helper(h, helpers)
            params = ", ".join(
                f"{self.vals[v].ctype}* {pname}"
                if is_out
                else f"const {self.vals[v].ctype}* {pname}"
                for pname, v, is_out in kern.params
            )
            if kern.scratch:
                params += ", int16_t* s"
            ret = "int" if kern.returns_error else "void"
            body = [line.replace("ERR_NAN", f"{self.upper}_ERR_NAN") for line in kern.body]
            funcs.append(comment)
            funcs.extend(kern.consts)
            funcs.append(f"IRCOMP_OP {ret} {fname}({params})")
            funcs.append("{")
            funcs.extend("    " + line for line in body)
            funcs.append("}")
            funcs.append("")
            args = ", ".join(self.ptr(v) for _, v, _ in kern.params)
            if kern.scratch:
                args += f", ARENA({self.scratch_offset[op]}, int16_t)"
            if kern.returns_error:
                any_error = True
                calls.append(f"    err = {fname}({args});")
                calls.append("    if (err != 0) return err;")
            else:
                calls.append(f"    {fname}({args});")
        for j, v in self.copies:
            val = self.vals[v]
            nbytes = _numel(val.shape) * _elem_size(val.ctype)
            calls.append(f"    memcpy({self.out_names[j]}, {self.ptr(v)}, {nbytes});")
        text = "\n".join(funcs)
        for h in ("h2f", "f2h", "d2h"):  # f16 storage conversions, wherever used
            if f"ircomp_{h}(" in text:
                _add_helper(h, helpers)
        return funcs, calls, helpers, any_error

    def _fast_kernel(self, rq: Operation, ctx: _Ctx) -> _Kernel:
        mac = self.fused[rq]
        if self.fast[rq].startswith("v"):
            body, consts, vhelpers = vector_kernels.kernel_body(
                self.fast[rq],
                mac,
                rq,
                lambda v: self.vals[v].shape,
                ctx.prefix,
                self.vals[rq.results[0]].ctype,
                _const_array,
                in_nhwc=mac.operands[0] in self.nhwc,
                out_nhwc=rq.results[0] in self.nhwc,
            )
            vparams = [("x", mac.operands[0], False), ("w", mac.operands[1], False)]
            if len(mac.operands) > 2:
                vparams.append(("b", mac.operands[2], False))
            vparams.append(("y", rq.results[0], True))
            return _Kernel(vparams, body, helpers=vhelpers, consts=consts, scratch=True)
        store = _Store(rq, ctx, fast=True)
        body = fast_kernels.kernel_body(
            self.fast[rq], mac, lambda v: self.vals[v].shape, store.lines
        )
        params = [("x", mac.operands[0], False), ("w", mac.operands[1], False)]
        if len(mac.operands) > 2:
            params.append(("b", mac.operands[2], False))
        params.append(("y", rq.results[0], True))
        helpers = (
            *fast_kernels.helpers_for(self.fast[rq], mac, lambda v: self.vals[v].shape),
            *store.helpers,
        )
        return _Kernel(
            params, body, helpers=helpers, consts=store.consts, scratch=self._scratch_bytes(rq) > 0
        )

    def _scratch_bytes(self, rq: Operation) -> int:
        if self.fast[rq].startswith("v"):
            return vector_kernels.scratch_bytes(
                self.fast[rq], self.fused[rq], lambda v: self.vals[v].shape
            )
        return fast_kernels.scratch_bytes(
            self.fast[rq], self.fused[rq], lambda v: self.vals[v].shape
        )

    def _signature(self) -> str:
        params = [
            f"const {self.vals[a].ctype}* {n}"
            for a, n in zip(self.block.args, self.in_names, strict=True)
        ]
        params += [
            f"{self.vals[v].ctype}* {n}" for v, n in zip(self.outputs, self.out_names, strict=True)
        ]
        return f"int {self.name}_run({', '.join(params) or 'void'})"

    def _header(self, info: ArenaPlan) -> str:
        u = self.upper
        lines = [
            f"/* {self.name}.h: generated by `ircomp build --target c`. C99, no heap.",
            " * See spec/c_abi.md. */",
            f"#ifndef {u}_H",
            f"#define {u}_H",
            "",
            "#include <stdint.h>",
            "",
            *(
                [
                    "#ifndef IRCOMP_F16_DEFINED",
                    "#define IRCOMP_F16_DEFINED",
                    "/* f16 tensors: IEEE binary16 bit patterns (spec/c_abi.md). */",
                    "typedef uint16_t ircomp_f16;",
                    "#endif",
                    "",
                ]
                if any(v.half for v in self.vals.values())
                else []
            ),
            f"/* Bytes of the static arena {self.name}.c holds (liveness-planned). */",
            f"#define {u}_ARENA_SIZE {info.size}",
            "",
            f"#define {u}_OK 0",
            f"#define {u}_ERR_NULL 1 /* a NULL input or output pointer */",
            f"#define {u}_ERR_NAN 2  /* nan reached a quantize */",
            "",
        ]
        for kind, values, names in (
            ("input", self.block.args, self.in_names),
            ("output", self.outputs, self.out_names),
        ):
            for v, n in zip(values, names, strict=True):
                val = self.vals[v]
                m = f"{u}_{n.upper()}"
                lines.append(f"/* {kind} {n}: {v.type} */")
                lines.append(f"#define {m}_RANK {len(val.shape)}")
                lines.append(f"#define {m}_DIMS {{{', '.join(map(str, val.shape))}}}")
                lines.append(f"#define {m}_SIZE {_numel(val.shape)}")
                lines.append("")
        lines += [
            "/* Runs the model once: returns 0 or an error code. Not reentrant (one arena);",
            " * inputs and outputs must not overlap. */",
            f"{self._signature()};",
            "",
            f"#endif /* {u}_H */",
            "",
        ]
        return "\n".join(lines)

    def _source(
        self,
        info: ArenaPlan,
        weights: list[str],
        funcs: list[str],
        calls: list[str],
        helpers: list[str],
        any_error: bool,
    ) -> str:
        u = self.upper
        lines = [
            f"/* {self.name}.c: generated by `ircomp build --target c`. C99, no heap.",
            " * Numerics: spec/numerics.md; ABI: spec/c_abi.md. */",
            f'#include "{self.name}.h"',
            "",
        ]
        text = "\n".join(funcs)
        if (
            "exp(" in text
            or "tanh(" in text
            or "fabs(" in text
            or "INFINITY" in text
            or any("INFINITY" in w or "NAN" in w for w in weights)
        ):
            lines.append("#include <math.h>")
        if self.copies or {"simd", "vmk8x16", "h2f", "d2h"} & set(helpers):
            lines.append("#include <string.h>")
        lines.append("#include <stddef.h>")
        lines.append("")
        lines += [
            "/* Op functions stay out of line: gcc otherwise inlines each (called once) into",
            " * one large function and runs 8-17% more instructions on a Cortex-M4",
            " * (-DIRCOMP_OP=static restores the inlining). */",
            "#ifndef IRCOMP_OP",
            "#if defined(__GNUC__) && !defined(__clang__)",
            "#define IRCOMP_OP static __attribute__((noinline, noclone))",
            "#elif defined(__GNUC__)",
            "#define IRCOMP_OP static __attribute__((noinline))",
            "#else",
            "#define IRCOMP_OP static",
            "#endif",
            "#endif",
            "",
        ]
        if "IRCOMP_IVDEP" in "\n".join(funcs):
            lines += [
                "/* An elementwise loop over arrays that may be the same (in place) vectorizes. */",
                "#if defined(__GNUC__) && !defined(__clang__)",
                '#define IRCOMP_IVDEP _Pragma("GCC ivdep")',
                "#else",
                "#define IRCOMP_IVDEP",
                "#endif",
                "",
            ]
        if info.size:
            lines += [
                "/* The only mutable state: tensors live here at planned offsets"
                " (a union keeps it aligned). */",
                "static union {",
                f"    uint8_t bytes[{u}_ARENA_SIZE];",
                "    uint64_t align;",
                f"}} {self.name}_arena;",
                f"#define ARENA(offset, type) ((type*)(void*)({self.name}_arena.bytes + (offset)))",
                "",
                "/* Arena plan: offset, bytes, lifetime [first op, last op], tensor. */",
            ]
            for label, off, size, start, end in info.entries:
                lines.append(f"/*   {off:7d} {size:7d}  [{start}, {end}]  {label} */")
            lines.append("")
        lines += weights
        if weights:
            lines.append("")
        for h in helpers:
            lines.append(HELPERS[h])
            lines.append("")
        lines += funcs
        checks = [*self.in_names, *self.out_names]
        lines.append(f"{self._signature()}")
        lines.append("{")
        if any_error:
            lines.append("    int err;")
        if checks:
            cond = " || ".join(f"{n} == NULL" for n in checks)
            lines.append(f"    if ({cond}) return {u}_ERR_NULL;")
        lines += calls
        lines.append(f"    return {u}_OK;")
        lines.append("}")
        lines.append("")
        return "\n".join(lines)

    # -- reference vectors and harness --

    def _reference(self, inputs: Sequence[np.ndarray] | None, seed: int):
        from ircomp.interpreter import run

        if inputs is None:
            rng = np.random.default_rng(seed)
            inputs = []
            for a in self.block.args:
                rep, shape = repr_of(a), self.vals[a].shape
                if rep.is_float:
                    inputs.append(rng.normal(size=shape).astype(rep.dtype))
                else:
                    lo, hi = rep.code_range()
                    inputs.append(rng.integers(lo, hi + 1, size=shape).astype(rep.dtype))
        ins = [
            np.asarray(x).astype(np.float16) if self.vals[a].half else np.asarray(x)
            for a, x in zip(self.block.args, inputs, strict=True)
        ]
        outs = run(self.program, ins)
        return ins, outs

    def _vectors(self, ins: list[np.ndarray], outs: list[np.ndarray]) -> str:
        lines = [
            "/* vectors.h: reference inputs and golden-interpreter outputs. */",
            "#ifndef VECTORS_H",
            "#define VECTORS_H",
            "",
            f'#include "{self.name}.h"',
            "",
        ]

        def bits(v: SSAValue, x: np.ndarray) -> np.ndarray:
            return np.asarray(x, np.float16).view(np.uint16) if self.vals[v].half else x

        for a, n, x in zip(self.block.args, self.in_names, ins, strict=True):
            lines.append(_const_array(f"ref_{n}", self.vals[a].ctype, bits(a, x)))
        for v, n, y in zip(self.outputs, self.out_names, outs, strict=True):
            ctype = self.vals[v].ctype
            lines.append(_const_array(f"ref_{n}", ctype, bits(v, y)))
            if self.vals[v].is_float:
                finite = np.abs(y[np.isfinite(y)]).astype(np.float64) if y.size else np.zeros(1)
                rel = F16_RTOL if self.vals[v].half else 1e-5
                atol = rel * float(finite.max()) if finite.size else 0.0
                lines.append(f"static const double ref_{n}_atol = {atol!r};")
        lines += ["", "#endif", ""]
        return "\n".join(lines)

    def _main(self, outs: list[np.ndarray]) -> str:
        lines = [
            "/* main.c: runs the model on vectors.h and compares with the reference outputs:",
            " * codes bit-exactly, float32 within 1e-5 relative (+ 1e-5 of the output's",
            " * largest magnitude). Prints PASS/FAIL, the mismatch count and an FNV-1a checksum",
            " * of the outputs' bytes; exit status 0 when everything matches (under QEMU the",
            " * status reaches the host through semihosting). With IRCOMP_CORTEX_M4 defined it",
            " * also prints the run's stack high-water mark (startup_cortex_m4.c paints it). */",
            "#include <math.h>",
            "#include <stddef.h>",
            "#include <stdint.h>",
            "#include <stdio.h>",
            f'#include "{self.name}.h"',
            '#include "vectors.h"',
            "",
        ]
        if any(self.vals[v].half for v in self.outputs):
            lines += ["#include <string.h>", "", HELPERS["h2f"], ""]
        for v, n in zip(self.outputs, self.out_names, strict=True):
            size = max(1, _numel(self.vals[v].shape))
            lines.append(f"static {self.vals[v].ctype} got_{n}[{size}];")
        args = ", ".join([f"ref_{n}" for n in self.in_names] + [f"got_{n}" for n in self.out_names])
        lines += [
            "",
            "static uint32_t fnv1a(uint32_t h, const void* data, size_t bytes)",
            "{",
            "    const unsigned char* p = (const unsigned char*)data;",
            "    size_t k;",
            "    for (k = 0; k < bytes; ++k)",
            "        h = (h ^ p[k]) * 16777619u;",
            "    return h;",
            "}",
            "",
            "#ifdef IRCOMP_CORTEX_M4",
            "unsigned long ircomp_stack_paint(void);",
            "unsigned long ircomp_stack_used(unsigned long top);",
            "#endif",
            "",
            "int main(void)",
            "{",
            "    long i, bad = 0;",
            "    uint32_t sum = 2166136261u;",
            "#ifdef IRCOMP_CORTEX_M4",
            "    unsigned long stack_top = ircomp_stack_paint();",
            "#endif",
            f"    int rc = {self.name}_run({args});",
            "#ifdef IRCOMP_CORTEX_M4",
            '    printf("stack %lu bytes\\n", ircomp_stack_used(stack_top));',
            "#endif",
            "    if (rc != 0) {",
            '        printf("FAIL: run failed: error %d\\n", rc);',
            "        return 2;",
            "    }",
        ]
        for v, n in zip(self.outputs, self.out_names, strict=True):
            size = _numel(self.vals[v].shape)
            if self.vals[v].is_float:
                got, ref = f"(double)got_{n}[i]", f"(double)ref_{n}[i]"
                rel = "1e-5"
                if self.vals[v].half:
                    got = f"(double)ircomp_h2f(got_{n}[i])"
                    ref = f"(double)ircomp_h2f(ref_{n}[i])"
                    rel = repr(F16_RTOL)
                ok = (
                    f"(isnan({ref}) && isnan({got})) || fabs({got} - {ref}) <= "
                    f"{rel} * fabs({ref}) + ref_{n}_atol"
                )
                show = f'printf("{n}[%ld]: got %.9g want %.9g\\n", i, {got}, {ref});'
            else:
                ok = f"got_{n}[i] == ref_{n}[i]"
                show = (
                    f'printf("{n}[%ld]: got %ld want %ld\\n", i, (long)got_{n}[i], '
                    f"(long)ref_{n}[i]);"
                )
            lines += [
                f"    for (i = 0; i < {size}; ++i) {{",
                f"        if (!({ok})) {{",
                f"            if (bad < 10) {show}",
                "            ++bad;",
                "        }",
                "    }",
            ]
            if self.vals[v].half:  # within tolerance; how many are bit-identical too
                lines += [
                    "    {",
                    "        long differ = 0;",
                    f"        for (i = 0; i < {size}; ++i) differ += got_{n}[i] != ref_{n}[i];",
                    f"        printf(\"{n}: f16 bit patterns differing from the interpreter's: "
                    f'%ld of {size}\\n", differ);',
                    "    }",
                ]
        for n in self.out_names:
            lines.append(f"    sum = fnv1a(sum, got_{n}, sizeof got_{n});")
        lines += [
            f'    printf("{self.name}: %s, %ld mismatches, checksum 0x%08lx, arena %d bytes\\n", '
            f'bad ? "FAIL" : "PASS", bad, (unsigned long)sum, {self.upper}_ARENA_SIZE);',
            "    return bad ? 1 : 0;",
            "}",
            "",
        ]
        return "\n".join(lines)

    def _makefile(self) -> str:
        n = self.name
        return (
            f"# Generated by `ircomp build --target c`: `make check` builds and runs {n}_test on\n"
            f"# the host; `make run-cortex-m4` builds {n}.elf for a Cortex-M4F and runs it under\n"
            "# QEMU (mps2-an386, semihosting; exit status 0 when every output matches).\n"
            "CC ?= cc\n"
            f"CFLAGS ?= {' '.join(HOST_CFLAGS)}\n"
            f"NATIVE_CFLAGS ?= {' '.join(NATIVE_CFLAGS)}\n"
            f"ARM_CC ?= {cortex_m4.ARM_CC}\n"
            f"ARM_CFLAGS ?= {cortex_m4.ARM_CFLAGS}\n"
            f"ARM_LDFLAGS ?= {cortex_m4.ARM_LDFLAGS}\n"
            f"QEMU ?= {cortex_m4.QEMU}\n"
            f"QEMU_FLAGS ?= {cortex_m4.QEMU_FLAGS}\n"
            f"QEMU_TIMEOUT ?= {cortex_m4.QEMU_TIMEOUT_S}\n"
            "\n"
            f"host: {n}_test\n"
            "\n"
            f"{n}_test: main.c {n}.c {n}.h vectors.h\n"
            f"\t$(CC) $(CFLAGS) -o $@ main.c {n}.c -lm\n"
            "\n"
            "check: host\n"
            f"\t./{n}_test\n"
            "\n"
            "# the same harness built for speed on this machine (-O3 -march=native: the vector\n"
            "# kernels' SIMD paths); `check` keeps the portable flags\n"
            f"host-native: {n}_native\n"
            "\n"
            f"{n}_native: main.c {n}.c {n}.h vectors.h\n"
            f"\t$(CC) $(NATIVE_CFLAGS) -o $@ main.c {n}.c -lm\n"
            "\n"
            "check-native: host-native\n"
            f"\t./{n}_native\n"
            "\n"
            f"cortex-m4: {n}.elf\n"
            "\n"
            f"{n}.elf: main.c {n}.c {n}.h vectors.h startup_cortex_m4.c cortex_m4.ld\n"
            "\t$(ARM_CC) $(ARM_CFLAGS) -DIRCOMP_CORTEX_M4 $(ARM_LDFLAGS) -o $@ "
            f"main.c {n}.c startup_cortex_m4.c {cortex_m4.ARM_LIBS}\n"
            "\n"
            "run-cortex-m4: cortex-m4\n"
            f"\ttimeout $(QEMU_TIMEOUT) $(QEMU) $(QEMU_FLAGS) -kernel {n}.elf\n"
            "\n"
            "clean:\n"
            f"\trm -f {n}_test {n}_native {n}.elf report.json\n"
            "\n"
            ".PHONY: host check host-native check-native cortex-m4 run-cortex-m4 clean\n"
        )


def generate(
    program: Program,
    name: str = "model",
    *,
    inputs: Sequence[np.ndarray] | None = None,
    seed: int = 0,
    kernels: str = "portable",
) -> dict[str, str]:
    """{filename: text} for `program`: `<name>.h`, `<name>.c`, `vectors.h`, `main.c`, `Makefile`,
    and the Cortex-M4 build's `startup_cortex_m4.c` and `cortex_m4.ld`.

    `vectors.h` holds `inputs` (default: random, from `seed`) and the golden interpreter's
    outputs on them. `kernels="fast"` emits the int8 conv / depthwise / linear + requantize
    kernels of `fast.py` (dual 16-bit MACs on Cortex-M4, im2col; same results);
    `kernels="vector"` those of `vector.py` (8-bit MACs for hosts with SIMD units: channel-last
    buffers between them, int16 micro-kernels with AVX2 / AVX-512 paths, vectorizable
    requantization; same results, a larger arena). Raises
    `InputError` naming the op for anything the backend cannot emit.
    """
    return _Generator(program, name, kernels).run(inputs, seed)


def arena_plan(program: Program, name: str = "model", kernels: str = "portable") -> ArenaPlan:
    """The arena plan `generate` would use (for reports and --max-ram style checks)."""
    gen = _Generator(program, name, kernels)
    gen._describe_values()
    return gen._plan()


def build(
    program: Program,
    out_dir: Path,
    name: str = "model",
    *,
    inputs: Sequence[np.ndarray] | None = None,
    seed: int = 0,
    cortex_m4_report: bool = False,
    kernels: str = "portable",
) -> Path:
    """Write the generated files into `out_dir` (replaced whole, through a temporary folder).

    With `cortex_m4_report`, also build `<name>.elf` with the ARM toolchain, run it under QEMU
    and write `report.json` (flash, RAM, stack, harness result; `cortex_m4.measure_cortex_m4`).
    `kernels` as for `generate`.
    """
    out_dir = Path(out_dir)
    files = generate(program, name, inputs=inputs, seed=seed, kernels=kernels)
    write_folder(out_dir, files)
    if cortex_m4_report:
        cortex_m4.measure_cortex_m4(out_dir, c_name(name))
    return out_dir


__all__ = ["ArenaPlan", "arena_plan", "build", "generate"]
