"""C backend on the MLPerf Tiny int8 models: generated C compiled with the host gcc runs all 20
reference inputs and matches onnxruntime (mode "onnx") and TFLite Micro (mode "integer") bit for
bit, with the portable, the fast (`kernels="fast"`, dual 16-bit MAC) and the vector (host SIMD,
also built with -O3 -march=native) kernels; all four with the fast kernels (ad and kws also
portable) on the Cortex-M4 under QEMU, where the fast kernels use the DSP instructions. Arenas are
held to TFLite Micro's. Plus the new C kernels (nn.qadd, nn.qsoftmax, fused MAC + requantize,
fast conv / depthwise / linear with odd shapes) on small programs against the golden
interpreter."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from op_helpers import In, one_op
from test_c_backend import check_c, run_tool
from xdsl.dialects.builtin import IntegerType
from xdsl.ir import SSAValue

from ircomp.backends.c import arena_plan, build, measure_cortex_m4
from ircomp.backends.c.codegen import HELPERS, _add_helper, _const_array
from ircomp.backends.c.cortex_m4 import ARM_CC, QEMU
from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.frontends.onnx import load
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program

I8, I32 = IntegerType(8), IntegerType(32)
MLPERF = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "mlperf-tiny"
REFERENCE = {"onnx": "y_int8_ort", "integer": "y_int8"}  # onnxruntime, TFLite Micro
# TFLite Micro's arenas for these models (shared/design/ANCHORS.md)
TFLM_ARENA = {"kws": 22_820, "vww": 100_708, "ic": 54_996, "ad": 2_580}
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]

needs_arm = pytest.mark.skipif(
    shutil.which(ARM_CC) is None or shutil.which(QEMU) is None,
    reason="needs Debian packages gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm "
    "(scripts/install-system-deps.sh)",
)


def mlperf_files(model: str) -> tuple[Path, Path]:
    """The QDQ model and its reference npz; skips the test when the shared folder is absent."""
    onnx_path, npz = MLPERF / f"{model}_int8_qdq.onnx", MLPERF / f"{model}_io.npz"
    if not (onnx_path.is_file() and npz.is_file()):
        pytest.skip(f"MLPerf Tiny reference models not found in {MLPERF}")
    return onnx_path, npz


def samples_main(name: str, xs: np.ndarray, ys: np.ndarray) -> str:
    """A harness running `<name>_run` on every input of `xs` and comparing with `ys` (int8);
    prints `<name>: exact <k>/<n>, <m> mismatches`, exit 0 when all match."""
    n, isz, osz = len(xs), xs[0].size, ys[0].size
    return "\n".join(
        [
            "#include <stdint.h>",
            "#include <stdio.h>",
            f'#include "{name}.h"',
            _const_array("xs", "int8_t", xs),
            _const_array("ys", "int8_t", ys),
            f"static int8_t got[{osz}];",
            "int main(void)",
            "{",
            "    int s, i, exact = 0;",
            "    long bad = 0;",
            f"    for (s = 0; s < {n}; ++s) {{",
            "        int e = 0;",
            f"        if ({name}_run(xs + s * {isz}, got) != 0) return 2;",
            f"        for (i = 0; i < {osz}; ++i) if (got[i] != ys[s * {osz} + i]) ++e;",
            "        bad += e;",
            "        if (e == 0) ++exact;",
            "    }",
            f'    printf("{name}: exact %d/{n}, %ld mismatches\\n", exact, bad);',
            f"    return exact == {n} ? 0 : 1;",
            "}",
            "",
        ]
    )


def build_model(
    model: str, mode: str, folder: Path, kernels: str = "portable"
) -> tuple[Path, np.lib.npyio.NpzFile]:
    onnx_path, npz = mlperf_files(model)
    io = np.load(npz)
    program = load(onnx_path, requant_mode=mode)
    out = build(
        program, folder / f"{model}_{mode}", model, inputs=[io["x_int8"][0]], kernels=kernels
    )
    (out / "samples_main.c").write_text(samples_main(model, io["x_int8"], io[REFERENCE[mode]]))
    return out, io


HOST_CASES = [
    *((m, mode, "portable") for m in ("ad", "kws", "ic", "vww") for mode in sorted(REFERENCE)),
    *((m, "integer", k) for k in ("fast", "vector") for m in ("ad", "kws", "ic", "vww")),
    ("ic", "onnx", "fast"),
    ("ic", "onnx", "vector"),
]
NATIVE_CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O3", "-march=native"]


@pytest.mark.parametrize(("model", "mode", "kernels"), HOST_CASES)
def test_host_build_matches_reference_on_all_inputs(
    tmp_path: Path, model: str, mode: str, kernels: str
) -> None:
    out, _ = build_model(model, mode, tmp_path, kernels)
    # the vector kernels also with -O3 -march=native: their SIMD paths (AVX2 / AVX-512 here)
    flag_sets = [CFLAGS, NATIVE_CFLAGS] if kernels == "vector" else [CFLAGS]
    for flags in flag_sets:
        exe = "samples"
        proc = run_tool(["gcc", *flags, "-o", exe, "samples_main.c", f"{model}.c", "-lm"], out)
        assert proc.returncode == 0, proc.stderr
        proc = run_tool([f"./{exe}"], out)
        assert proc.returncode == 0 and f"{model}: exact 20/20, 0 mismatches" in proc.stdout, (
            proc.stdout + proc.stderr
        )


@pytest.mark.parametrize("mode", sorted(REFERENCE))
@pytest.mark.parametrize("model", ["ad", "kws", "ic", "vww"])
def test_arena_is_below_tflite_micro(model: str, mode: str) -> None:
    onnx_path, _ = mlperf_files(model)
    plan = arena_plan(load(onnx_path, requant_mode=mode), model)
    assert 0 < plan.size <= TFLM_ARENA[model]
    # MACs are fused with their requantization (no int32 accumulator is planned); in mode
    # onnx, DQ -> AveragePool / Add -> Q runs from codes to codes (no float tensor)
    labels = [label.split(" ")[0] for label, *_ in plan.entries]
    assert not {"nn.conv2d", "nn.linear", "nn.add", "nn.relu"} & set(labels)
    if mode == "onnx":
        assert "nn.avgpool2d" not in labels


@pytest.mark.slow
@needs_arm
@pytest.mark.parametrize(
    ("model", "kernels"),
    [("ad", "portable"), ("kws", "portable"), *((m, "fast") for m in ("ad", "kws", "ic", "vww"))],
)
def test_cortex_m4_matches_tflite_micro_on_all_inputs(
    tmp_path: Path, model: str, kernels: str
) -> None:
    out, _ = build_model(model, "integer", tmp_path, kernels)
    if kernels == "fast":
        assert "ircomp_smlad" in (out / f"{model}.c").read_text()
    report = measure_cortex_m4(out, model)  # the generated harness: one input, golden outputs
    assert report["status"] == 0 and report["passed"], report["output"]
    assert report["arena"] <= TFLM_ARENA[model] and report["instructions"] > 0
    (out / "main.c").write_text((out / "samples_main.c").read_text())
    (out / f"{model}.elf").unlink()
    proc = run_tool(["make", "-s", "run-cortex-m4"], out, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{model}: exact 20/20, 0 mismatches" in proc.stdout


# ---- the new kernels on small programs --------------------------------------------------------


@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5))])
def test_qadd_matches_interpreter(tmp_path: Path, shapes) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, size=shapes[0]).astype(np.int8)
    b = rng.integers(-128, 128, size=shapes[1]).astype(np.int8)
    program, inputs = one_op(
        nn.QAddOp,
        [In(a, I8), In(b, I8)],
        I8,
        lhs_scale=0.0713,
        lhs_zero_point=-4,
        rhs_scale=0.1502,
        rhs_zero_point=9,
        scale=0.117,
        zero_point=-11,
        clamp=[-11, 100],
    )
    check_c(program, tmp_path / "m", inputs, cc=["gcc"])


@pytest.mark.parametrize(("shape", "axis"), [((3, 10), -1), ((2, 4, 3), 1), ((1, 511), -1)])
def test_qsoftmax_matches_interpreter(tmp_path: Path, shape, axis: int) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(12).integers(-128, 128, size=shape).astype(np.int8)
    x.reshape(-1)[:3] = 127  # ties at the maximum
    for scale in (0.0146, 0.1719, 2.5):
        program, inputs = one_op(nn.QSoftmaxOp, [In(x, I8)], I8, input_scale=scale, axis=axis)
        check_c(program, tmp_path / f"m{scale}", inputs, cc=["gcc"])


@pytest.mark.parametrize("mode", sorted(REFERENCE))
def test_fused_mac_requantize_matches_interpreter(tmp_path: Path, mode: str) -> None:
    """conv (per-channel) and linear (per-tensor) each fused with their requantize."""
    rng = np.random.default_rng(13)
    g = GraphBuilder()
    x = g.input([1, 4, 6, 6], I8)
    w = g.weight("dw.weight", rng.integers(-127, 128, size=(4, 1, 3, 3)), I8)
    b = g.weight("dw.bias", rng.integers(-900, 900, size=(4,)), I32)
    acc = g.op(nn.Conv2dOp, [x, w, b], I32, padding=[1, 1, 1, 1], groups=4, input_zero_point=-3)
    y = g.op(
        nn.RequantizeOp,
        [acc],
        I8,
        scale=[0.01, 0.02, 0.005, 0.03],
        zero_point=[-7],
        axis=1,
        mode=mode,
        clamp=[-7, 127],
    )
    f = g.op(nn.FlattenOp, [y], axis=1)
    w2 = g.weight("fc.weight", rng.integers(-127, 128, size=(5, 144)), I8)
    acc2 = g.op(nn.LinearOp, [f, w2], I32, input_zero_point=-7)
    out = g.op(nn.RequantizeOp, [acc2], I8, scale=[0.003], zero_point=[2], mode=mode)
    program = g.finish([out])
    x_in = rng.integers(-128, 128, size=(1, 4, 6, 6)).astype(np.int8)
    check_c(program, tmp_path / "m", [x_in], cc=["gcc"])
    plan = arena_plan(program)
    assert plan.size == 144  # only the depthwise conv's int8 output; no int32 tensors
    text = (tmp_path / "m" / "model.c").read_text()
    assert "conv2d_requantize" in text and "linear_requantize" in text


def test_float_islands_match_interpreter(tmp_path: Path) -> None:
    """dequantize -> avgpool2d (padding: per-window counts) -> quantize and dequantize x2 -> add
    -> relu -> quantize become one kernel each, bit-identical with the interpreter."""
    rng = np.random.default_rng(31)
    g = GraphBuilder()
    x = g.input([1, 3, 6, 5], I8)
    f = g.op(nn.DequantizeOp, [x], scale=[0.0371], zero_point=[-9])
    p = g.op(nn.AvgPool2dOp, [f], kernel=[3, 2], strides=[2, 2], padding=[1, 0, 1, 1])
    q = g.op(nn.QuantizeOp, [p], I8, scale=[0.0371], zero_point=[-9])
    w = g.weight("c.w", rng.integers(-127, 128, size=(3, 3, 1, 1)), I8)
    c = g.op(nn.Conv2dOp, [q, w], I32, input_zero_point=-9)
    r = g.op(nn.RequantizeOp, [c], I8, scale=[0.0123], zero_point=[4], mode="onnx")
    da = g.op(nn.DequantizeOp, [r], scale=[0.061], zero_point=[4])
    db = g.op(nn.DequantizeOp, [q], scale=[0.0371], zero_point=[-9])
    s = g.op(nn.ReluOp, [g.op(nn.AddOp, [da, db])])
    out = g.op(nn.QuantizeOp, [s], I8, scale=[0.05], zero_point=[-128])
    program = g.finish([out])
    inputs = [rng.integers(-128, 128, size=(1, 3, 6, 5)).astype(np.int8)]
    check_c(program, tmp_path / "m", inputs, cc=["gcc"])
    text = (tmp_path / "m" / "model.c").read_text()
    assert "avgpool2d_quantize(" in text and "add_quantize(" in text
    labels = [label.split(" ")[0] for label, *_ in arena_plan(program).entries]
    assert labels == ["nn.quantize", "nn.requantize"]  # codes only: no float tensor


# ---- fast kernels on small programs: odd sizes, tails, strides, padding, fallbacks ------------


def check_fast(program, folder: Path, inputs) -> str:  # type: ignore[no-untyped-def]
    """Build with kernels="fast", compile with gcc, run the golden-vector harness."""
    build(program, folder, inputs=inputs, kernels="fast")
    # clang too where installed: it also warns about unused static inline helpers
    for cc in ["gcc", *(["clang"] if shutil.which("clang") else [])]:
        exe = f"fast_test_{cc}"
        proc = run_tool([cc, *CFLAGS, "-o", exe, "main.c", "model.c", "-lm"], folder)
        assert proc.returncode == 0, proc.stderr
        proc = run_tool([f"./{exe}"], folder)
        assert proc.returncode == 0 and " 0 mismatches" in proc.stdout, proc.stdout + proc.stderr
    return (folder / "model.c").read_text()


@dataclass
class _RandomInt8Ops:
    """Random int8 weights, int32 biases and per-channel requantizations on a GraphBuilder."""

    g: GraphBuilder
    rng: np.random.Generator
    mode: str

    def w(self, name: str, shape: tuple[int, ...]) -> SSAValue:
        return self.g.weight(name, self.rng.integers(-127, 128, size=shape), I8)

    def bias(self, name: str, n: int) -> SSAValue:
        return self.g.weight(name, self.rng.integers(-2000, 2000, size=(n,)), I32)

    def rq(self, acc: SSAValue, zp: int, lo: float = 0.002, hi: float = 0.02) -> SSAValue:
        channels = acc.type.get_shape()[1]  # type: ignore[attr-defined]
        return self.g.op(
            nn.RequantizeOp,
            [acc],
            I8,
            scale=list(self.rng.uniform(lo, hi, size=channels)),
            zero_point=[zp],
            axis=1,
            mode=self.mode,
        )


def fast_cases_program(mode: str) -> tuple[Program, list[np.ndarray]]:
    """Fused MAC + requantize in every fast kernel and odd shape: conv (K = 27, not a multiple
    of 4; 5 output channels; an odd pixel count; stride 2, dilation, asymmetric padding),
    depthwise (5x3 window, stride 2), pointwise conv (K = 5), grouped conv (groups 2: the
    portable fallback), conv with a weight zero point (fallback), linear (K not a multiple of
    4, 7 outputs, 2 rows, no bias)."""
    rng = np.random.default_rng(21)
    g = GraphBuilder()
    ops = _RandomInt8Ops(g, rng, mode)
    w, bias, rq = ops.w, ops.bias, ops.rq

    x = g.input([1, 3, 7, 9], I8)
    conv = dict(strides=[2, 2], padding=[1, 0, 2, 1], dilations=[1, 2], input_zero_point=5)
    y = rq(g.op(nn.Conv2dOp, [x, w("c.w", (5, 3, 3, 3)), bias("c.b", 5)], I32, **conv), -3)
    dw = dict(strides=[2, 1], padding=[2, 1, 2, 1], groups=5, input_zero_point=-3)
    z = rq(g.op(nn.Conv2dOp, [y, w("d.w", (5, 1, 5, 3)), bias("d.b", 5)], I32, **dw), 4)
    p = rq(g.op(nn.Conv2dOp, [z, w("p.w", (6, 5, 1, 1))], I32, input_zero_point=4), 0)
    q = rq(g.op(nn.Conv2dOp, [p, w("g.w", (6, 3, 1, 1))], I32, groups=2), 1)
    r = rq(g.op(nn.Conv2dOp, [q, w("z.w", (4, 6, 1, 1))], I32, weight_zero_point=3), 2)
    f = g.op(nn.ReshapeOp, [r], shape=[2, -1])
    k = f.type.get_shape()[1]  # type: ignore[attr-defined]
    lin = g.op(nn.LinearOp, [f, w("fc.w", (7, k))], I32, input_zero_point=2)
    out = g.op(nn.RequantizeOp, [lin], I8, scale=[0.004], zero_point=[-1], mode=mode)
    program = g.finish([out, z])
    inputs = [rng.integers(-128, 128, size=(1, 3, 7, 9)).astype(np.int8)]
    return program, inputs


def fast_cases_program_2(mode: str) -> tuple[Program, list[np.ndarray]]:
    """The other branches of the fast kernels: requantize scales above 1 (left shifts in
    ircomp_frq), conv without input zero point with a padded border (interior and border
    im2col), depthwise with a 3x1 window (no tap pairs), a horizontal dilation (no pairs), a
    9x8 window (the loop, not unrolled) and an even 3x4 window (pairs only), linear with 8 and
    with 6 outputs (four rows at a time, then two), a batch of 3 rows."""
    rng = np.random.default_rng(22)
    g = GraphBuilder()
    ops = _RandomInt8Ops(g, rng, mode)
    w, bias, rq = ops.w, ops.bias, ops.rq

    x = g.input([1, 4, 10, 11], I8)
    conv = dict(padding=[1, 1, 1, 1])
    wc = g.weight("c.w", rng.integers(-3, 4, size=(6, 4, 3, 3)), I8)
    y = rq(g.op(nn.Conv2dOp, [x, wc, bias("c.b", 6)], I32, **conv), 3, 0.05, 4.0)
    d1 = dict(padding=[1, 0, 1, 0], groups=6, input_zero_point=3)
    z = rq(g.op(nn.Conv2dOp, [y, w("d1.w", (6, 1, 3, 1)), bias("d1.b", 6)], I32, **d1), -2)
    d2 = dict(padding=[1, 2, 1, 2], groups=6, dilations=[1, 2], input_zero_point=-2)
    u = rq(g.op(nn.Conv2dOp, [z, w("d2.w", (6, 1, 3, 3))], I32, **d2), 1, 0.5, 3.0)
    d3 = dict(padding=[4, 4, 4, 3], groups=6, input_zero_point=1)
    v = rq(g.op(nn.Conv2dOp, [u, w("d3.w", (6, 1, 9, 8)), bias("d3.b", 6)], I32, **d3), 0)
    d4 = dict(padding=[1, 1, 1, 2], strides=[1, 2], groups=6)
    t = rq(g.op(nn.Conv2dOp, [v, w("d4.w", (6, 1, 3, 4)), bias("d4.b", 6)], I32, **d4), -5)
    f = g.op(nn.ReshapeOp, [t], shape=[3, -1])
    k = f.type.get_shape()[1]  # type: ignore[attr-defined]
    l1 = g.op(nn.LinearOp, [f, w("l1.w", (8, k)), bias("l1.b", 8)], I32, input_zero_point=-5)
    h = g.op(nn.RequantizeOp, [l1], I8, scale=[0.003], zero_point=[2], mode=mode)
    l2 = g.op(nn.LinearOp, [h, w("l2.w", (6, 8))], I32, input_zero_point=2)
    out = g.op(nn.RequantizeOp, [l2], I8, scale=[1.7], zero_point=[-1], mode=mode)
    program = g.finish([out, t])
    inputs = [rng.integers(-128, 128, size=(1, 4, 10, 11)).astype(np.int8)]
    return program, inputs


def test_fast_kernels_emit_only_the_helpers_they_call(tmp_path: Path) -> None:
    """A depthwise conv without tap pairs (3x1 window) and a linear with 3 outputs: no
    `ircomp_pack16` or `ircomp_dot4x1` is emitted (unused static functions fail -Werror)."""
    rng = np.random.default_rng(23)
    g = GraphBuilder()
    x = g.input([1, 3, 6, 5], I8)
    wd = g.weight("d.w", rng.integers(-127, 128, size=(3, 1, 3, 1)), I8)
    d = g.op(nn.Conv2dOp, [x, wd], I32, groups=3, padding=[1, 0, 1, 0], input_zero_point=7)
    y = g.op(nn.RequantizeOp, [d], I8, scale=[0.01], zero_point=[1], mode="integer")
    f = g.op(nn.ReshapeOp, [y], shape=[1, -1])
    wl = g.weight("l.w", rng.integers(-127, 128, size=(3, 90)), I8)
    lin = g.op(nn.LinearOp, [f, wl], I32, input_zero_point=1)
    out = g.op(nn.RequantizeOp, [lin], I8, scale=[0.002], zero_point=[0], mode="integer")
    program = g.finish([out])
    inputs = [rng.integers(-128, 128, size=(1, 3, 6, 5)).astype(np.int8)]
    text = check_fast(program, tmp_path / "m", inputs)
    assert "ircomp_dot2x1(" in text and "ircomp_frq(" in text
    assert "ircomp_pack16" not in text and "ircomp_dot4x1" not in text


@pytest.mark.parametrize("mode", sorted(REFERENCE))
def test_fast_kernels_other_branches_match_interpreter(tmp_path: Path, mode: str) -> None:
    program, inputs = fast_cases_program_2(mode)
    text = check_fast(program, tmp_path / "m", inputs)
    assert text.count("IRCOMP_OP void op") == 7 and "ircomp_dot4x1(" in text
    if mode == "integer":
        assert "ircomp_frq(" in text and "ircomp_mbqm(" not in text and "ircomp_sat_i8(" in text
        assert "_left[" in text  # per-channel left shifts (scales above 1)


def test_fast_requantize_equals_mbqm(tmp_path: Path) -> None:
    """ircomp_frq (the fast kernels' SMLAL form) gives ircomp_mbqm's results for every
    multiplier >= 0 and 0 <= left, right <= 31: edge and random accumulators, multipliers."""
    helpers: list[str] = []
    for h in ("mbqm", "frq"):
        _add_helper(h, helpers)
    rng = np.random.default_rng(5)
    xs = [0, 1, -1, 2, -2, 2**31 - 1, -(2**31), 2**30, -(2**30), 12345, -12345]
    xs += [int(v) for v in rng.integers(-(2**31), 2**31, size=60)]
    xs += [int(v) for v in rng.integers(-5000, 5000, size=30)]
    ms = [0, 1, 2**30, 2**31 - 1, 1 << 29, 1518500250]
    ms += [int(v) for v in rng.integers(2**30, 2**31, size=6)]
    main = [
        "#include <stdint.h>",
        "#include <stdio.h>",
        "#include <string.h>",
        *(HELPERS[h] for h in helpers),
        _const_array("xs", "int32_t", np.array(xs, np.int64)),
        _const_array("ms", "int32_t", np.array(ms, np.int64)),
        "int main(void)",
        "{",
        "    long bad = 0, n = 0;",
        "    int i, j, s;",
        f"    for (i = 0; i < {len(xs)}; ++i)",
        f"        for (j = 0; j < {len(ms)}; ++j)",
        "            for (s = -31; s <= 31; ++s, ++n)",
        "                if (ircomp_frq(xs[i], ms[j], s > 0 ? s : 0, s > 0 ? 0 : -s) !=",
        "                    ircomp_mbqm(xs[i], ms[j], s))",
        "                    ++bad;",
        '    printf("%ld of %ld differ\\n", bad, n);',
        "    return bad != 0;",
        "}",
        "",
    ]
    (tmp_path / "frq.c").write_text("\n".join(main))
    proc = run_tool(["gcc", *CFLAGS, "-fsanitize=undefined", "-o", "frq", "frq.c"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_tool(["./frq"], tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("0 of ") and not proc.stderr, (
        proc.stdout + proc.stderr
    )


@pytest.mark.parametrize("mode", sorted(REFERENCE))
def test_fast_kernels_match_interpreter(tmp_path: Path, mode: str) -> None:
    program, inputs = fast_cases_program(mode)
    text = check_fast(program, tmp_path / "m", inputs)
    assert "ircomp_dot2x2s(" in text and "ircomp_dot2x1(" in text  # conv and linear fast
    assert text.count("_r4[") == 2  # reordered weights: conv, pointwise conv
    assert text.count("IRCOMP_OP void op") == 6 and text.count("int16_t* s)") == 3


def test_unknown_kernels_is_an_input_error(tmp_path: Path) -> None:
    program, inputs = fast_cases_program("integer")
    with pytest.raises(InputError, match="kernels must be one of portable, fast"):
        build(program, tmp_path / "m", inputs=inputs, kernels="cmsis")


@pytest.mark.slow
@needs_arm
def test_fast_kernels_on_cortex_m4(tmp_path: Path) -> None:
    """The DSP-instruction path (SXTB16 / SMLAD) on odd shapes, bit-exact with the golden
    interpreter under QEMU."""
    for make in (fast_cases_program, fast_cases_program_2):
        program, inputs = make("integer")
        out = tmp_path / make.__name__
        build(program, out, inputs=inputs, kernels="fast")
        report = measure_cortex_m4(out)
        assert report["status"] == 0 and report["passed"], report["output"]
