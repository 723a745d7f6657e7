"""C backend, kernels="vector" (host SIMD): every vector kernel and layout on odd shapes, random
quantized graphs, and the overflow fallback, compiled with the portable flags (plain C paths)
and with -O3 -march=native (the AVX2 / AVX-512 paths where the host has them), bit-exact with
the golden interpreter through the generated harness."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import build_program, quant_graphs
from test_c_backend import run_tool
from xdsl.dialects.builtin import IntegerType, Signedness
from xdsl.ir import SSAValue

from ircomp.backends.c import arena_plan, build
from ircomp.backends.c.codegen import HOST_CFLAGS, NATIVE_CFLAGS
from ircomp.dialects import nn
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program

I8, I32 = IntegerType(8), IntegerType(32)
U8 = IntegerType(8, Signedness.UNSIGNED)
FLAG_SETS = {"portable": HOST_CFLAGS, "native": NATIVE_CFLAGS}


def check_vector(program: Program, folder: Path, inputs, flag_sets=("portable", "native")) -> str:  # type: ignore[no-untyped-def]
    """Build with kernels="vector", compile with gcc under each flag set, run the harness (all
    outputs bit-exact); return model.c."""
    build(program, folder, inputs=inputs, kernels="vector")
    for key in flag_sets:
        exe = f"vector_{key}"
        flags = FLAG_SETS[key]
        proc = run_tool(["gcc", *flags, "-o", exe, "main.c", "model.c", "-lm"], folder)
        assert proc.returncode == 0, proc.stderr
        proc = run_tool([f"./{exe}"], folder)
        assert proc.returncode == 0 and " 0 mismatches" in proc.stdout, proc.stdout + proc.stderr
    return (folder / "model.c").read_text()


def vector_cases_program(mode: str) -> tuple[Program, list[np.ndarray]]:
    """Every vector kernel and layout: conv 3x3 NCHW -> NHWC (20 channels: a partial tile of
    16), depthwise by rows (NHWC, stride 1), relu on NHWC codes, pointwise conv reading the
    channel-last buffer directly, depthwise per pixel (stride 2) into a model output (NCHW),
    dilated conv with a weight zero point and a uint8 result, qadd of two NHWC tensors,
    5x5 depthwise NHWC -> NCHW, average pool, linear with per-channel requantization; and
    from a uint8 input, planar depthwise (NCHW -> NCHW) with stride 1 and stride 2."""
    rng = np.random.default_rng(41)
    g = GraphBuilder()

    def w(name: str, shape: tuple[int, ...], lo: int = -127, hi: int = 128) -> SSAValue:
        return g.weight(name, rng.integers(lo, hi, size=shape), I8)

    def bias(name: str, n: int) -> SSAValue:
        return g.weight(name, rng.integers(-3000, 3000, size=(n,)), I32)

    def rq(acc: SSAValue, zp: int, per_channel: bool = True, out=I8, clamp=None) -> SSAValue:  # type: ignore[no-untyped-def]
        channels = acc.type.get_shape()[1]  # type: ignore[attr-defined]
        scale = list(rng.uniform(0.001, 0.01, size=channels)) if per_channel else [0.004]
        extra = {"clamp": clamp} if clamp else {}
        return g.op(
            nn.RequantizeOp,
            [acc],
            out,
            scale=scale,
            zero_point=[zp],
            axis=1,
            mode=mode,
            **extra,
        )

    x = g.input([1, 4, 9, 8], I8)
    u = g.input([1, 3, 7, 6], U8)
    a = rq(
        g.op(nn.Conv2dOp, [x, w("a.w", (20, 4, 3, 3)), bias("a.b", 20)], I32,
             padding=[1, 1, 1, 1], input_zero_point=3),
        -5,
    )  # fmt: skip
    b = rq(
        g.op(nn.Conv2dOp, [a, w("b.w", (20, 1, 3, 3)), bias("b.b", 20)], I32,
             padding=[1, 1, 1, 1], groups=20, input_zero_point=-5),
        2,
    )  # fmt: skip
    c = g.op(nn.ReluOp, [b])
    d = rq(g.op(nn.Conv2dOp, [c, w("d.w", (18, 20, 1, 1))], I32, input_zero_point=2), -1)
    e = rq(
        g.op(nn.Conv2dOp, [d, w("e.w", (18, 1, 3, 3)), bias("e.b", 18)], I32,
             strides=[2, 2], padding=[1, 1, 1, 1], groups=18, input_zero_point=-1),
        0,
        per_channel=False,
    )  # fmt: skip
    f = rq(
        g.op(nn.Conv2dOp, [e, w("f.w", (16, 18, 3, 3), -20, 20)], I32,
             padding=[2, 2, 2, 2], dilations=[2, 2], weight_zero_point=2),
        120,
        out=U8,
    )  # fmt: skip
    f2 = rq(g.op(nn.Conv2dOp, [e, w("f2.w", (16, 18, 1, 1)), bias("f2.b", 16)], I32), 7)
    s = g.op(
        nn.QAddOp,
        [f, f2],
        I8,
        lhs_scale=0.051,
        lhs_zero_point=120,
        rhs_scale=0.074,
        rhs_zero_point=7,
        scale=0.09,
        zero_point=-3,
        clamp=[-3, 127],
    )
    h = rq(
        g.op(nn.Conv2dOp, [s, w("h.w", (16, 1, 5, 5)), bias("h.b", 16)], I32,
             padding=[2, 2, 2, 2], groups=16, input_zero_point=-3),
        4,
    )  # fmt: skip
    p = g.op(nn.AvgPool2dOp, [h], kernel=[5, 4], strides=[5, 4])
    fl = g.op(nn.FlattenOp, [p], axis=1)
    k = fl.type.get_shape()[1]  # type: ignore[attr-defined]
    lin = g.op(nn.LinearOp, [fl, w("fc.w", (7, k)), bias("fc.b", 7)], I32, input_zero_point=4)
    out = g.op(
        nn.RequantizeOp,
        [lin],
        I8,
        scale=list(rng.uniform(0.001, 0.01, size=7)),
        zero_point=[1],
        axis=1,
        mode=mode,
    )
    z1 = rq(
        g.op(nn.Conv2dOp, [u, w("z1.w", (3, 1, 3, 3))], I32, groups=3, input_zero_point=128,
             padding=[1, 0, 1, 2]),
        -2,
    )  # fmt: skip
    z2 = rq(
        g.op(nn.Conv2dOp, [u, w("z2.w", (3, 1, 2, 3)), bias("z2.b", 3)], I32, groups=3,
             strides=[2, 2], input_zero_point=128),
        3,
        clamp=[-50, 60],
    )  # fmt: skip
    program = g.finish([out, e, z1, z2])
    inputs = [
        rng.integers(-128, 128, size=(1, 4, 9, 8)).astype(np.int8),
        rng.integers(0, 256, size=(1, 3, 7, 6)).astype(np.uint8),
    ]
    return program, inputs


@pytest.mark.parametrize("mode", ["integer", "onnx"])
def test_vector_kernels_match_interpreter(tmp_path: Path, mode: str) -> None:
    program, inputs = vector_cases_program(mode)
    text = check_vector(program, tmp_path / "m", inputs)
    kinds = re.findall(r"/\* vector kernel (\w+)(?:: (\w+ -> \w+))? \*/", text)
    assert kinds == [
        ("vconv", "NCHW -> NHWC"),
        ("vdwr", "NHWC -> NHWC"),
        ("vconv", "NHWC -> NHWC"),
        ("vdwc", "NHWC -> NCHW"),
        ("vconv", "NCHW -> NHWC"),
        ("vconv", "NCHW -> NHWC"),
        ("vdwc", "NHWC -> NCHW"),
        ("vlinear", ""),
        ("vdw", "NCHW -> NCHW"),
        ("vdw", "NCHW -> NCHW"),
    ]
    assert "ircomp_vmbqm(" in text if mode == "integer" else "ircomp_vrqft_" in text
    assert "IRCOMP_IVDEP" in text or mode == "onnx"  # the qadd loop (integer vmbqm)
    # the channel-last values are marked in the arena plan: a, b, c (relu), d, f, f2, s
    assert text.count("[NHWC]") == 7


def test_vector_kernels_keep_the_arena_plan_exact(tmp_path: Path) -> None:
    """Scratch buffers are planned like tensors: no two live buffers share bytes."""
    program, _ = vector_cases_program("integer")
    info = arena_plan(program, kernels="vector")
    assert sum(1 for label, *_ in info.entries if label.startswith("scratch")) == 10
    for i, (_, o1, s1, a1, e1) in enumerate(info.entries):
        for _, o2, s2, a2, e2 in info.entries[i + 1 :]:
            if a1 <= e2 and a2 <= e1 and not (e1 == a2 and o1 == o2):
                assert o1 + s1 <= o2 or o2 + s2 <= o1


def test_vector_falls_back_when_int32_could_overflow(tmp_path: Path) -> None:
    """A conv whose sums could leave int32 (bias near 2^31) keeps the portable kernel, which
    wraps modulo 2^32 like the interpreter."""
    rng = np.random.default_rng(5)
    g = GraphBuilder()
    x = g.input([1, 3, 5, 5], I8)
    b = g.weight("b", np.array([2**31 - 100, -(2**31) + 100, 7]), I32)
    acc = g.op(nn.Conv2dOp, [x, g.weight("w", rng.integers(-127, 128, (3, 3, 3, 3)), I8), b], I32)
    y = g.op(nn.RequantizeOp, [acc], I8, scale=[1e-7], zero_point=[0], mode="integer")
    inputs = [rng.integers(-128, 128, size=(1, 3, 5, 5)).astype(np.int8)]
    text = check_vector(g.finish([y]), tmp_path / "m", inputs)
    assert "vector kernel" not in text and "ircomp_vmk8x16" not in text


def test_make_check_native(tmp_path: Path) -> None:
    program, inputs = vector_cases_program("integer")
    out = build(program, tmp_path / "m", inputs=inputs, kernels="vector")
    makefile = (out / "Makefile").read_text()
    assert f"CFLAGS ?= {' '.join(HOST_CFLAGS)}" in makefile
    assert f"NATIVE_CFLAGS ?= {' '.join(NATIVE_CFLAGS)}" in makefile
    proc = run_tool(["make", "-s", "check-native"], out)
    assert proc.returncode == 0 and " 0 mismatches" in proc.stdout, proc.stdout + proc.stderr


@settings(max_examples=10, deadline=None)
@given(spec=quant_graphs())
def test_random_quant_graphs_vector(tmp_path_factory, spec) -> None:  # type: ignore[no-untyped-def]
    program, inputs = build_program(spec)
    folder = tmp_path_factory.mktemp("v") / "m"
    check_vector(program, folder, inputs, flag_sets=("portable",))


def test_vmbqm_equals_mbqm(tmp_path: Path) -> None:
    """The branch-free ircomp_vmbqm (high multiply as bits 31..62 of ab + 2^30) equals the
    portable ircomp_mbqm on edge and random operands, every shift, both flag sets."""
    from ircomp.backends.c.codegen import HELPERS, _add_helper

    names: list[str] = []
    for name in ("mbqm", "vmbqm"):
        _add_helper(name, names)
    rng = np.random.default_rng(0)
    edges = [-(1 << 31), -(1 << 31) + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, (1 << 31) - 1]
    xs = [*edges, *rng.integers(-(1 << 31), 1 << 31, 40).tolist()]
    xs += rng.integers(-(1 << 16), 1 << 16, 40).tolist()
    mults = [
        0,
        1,
        1 << 30,
        (1 << 30) + 1,
        (1 << 31) - 1,
        *rng.integers(1 << 30, 1 << 31, 12).tolist(),
    ]
    source = "\n".join(
        [
            "#include <stdint.h>",
            "#include <stdio.h>",
            "#include <string.h>",
            *dict.fromkeys(HELPERS[n] for n in names),
            f"static const int32_t xs[] = {{{', '.join(f'(int32_t){x}' for x in xs)}}};",
            f"static const int32_t ms[] = {{{', '.join(str(m) for m in mults)}}};",
            "int main(void)",
            "{",
            "    long bad = 0, n = 0;",
            "    unsigned i, j;",
            "    int32_t s;",
            "    for (i = 0; i < sizeof xs / sizeof xs[0]; ++i)",
            "        for (j = 0; j < sizeof ms / sizeof ms[0]; ++j)",
            "            for (s = -31; s < 32; ++s) {",
            "                const int32_t l = s > 0 ? s : 0, r = s > 0 ? 0 : -s;",
            "                bad += ircomp_vmbqm(xs[i], ms[j], l, r) !=",
            "                       ircomp_mbqm(xs[i], ms[j], s);",
            "                ++n;",
            "            }",
            '    printf("%ld of %ld differ\\n", bad, n);',
            "    return bad != 0;",
            "}",
        ]
    )
    (tmp_path / "t.c").write_text(source)
    for key, flags in FLAG_SETS.items():
        proc = run_tool(["gcc", *flags, "-Wno-unused-function", "-o", key, "t.c"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        proc = run_tool([f"./{key}"], tmp_path)
        assert proc.returncode == 0 and proc.stdout.startswith("0 of "), proc.stdout + proc.stderr
