"""C backend on the MLPerf Tiny int8 models: generated C compiled with the host gcc runs all 20
reference inputs and matches onnxruntime (mode "onnx") and TFLite Micro (mode "integer") bit for
bit; ad and kws also on the Cortex-M4 under QEMU. Arenas are held to TFLite Micro's. Plus the
new C kernels (nn.qadd, nn.qsoftmax, fused MAC + requantize) on small programs against the
golden interpreter."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from op_helpers import In, one_op
from test_c_backend import check_c, run_tool
from xdsl.dialects.builtin import IntegerType

from ircomp.backends.c import arena_plan, build, measure_cortex_m4
from ircomp.backends.c.codegen import _const_array
from ircomp.backends.c.cortex_m4 import ARM_CC, QEMU
from ircomp.dialects import nn
from ircomp.frontends.onnx import load
from ircomp.ir.builder import GraphBuilder

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


def build_model(model: str, mode: str, folder: Path) -> tuple[Path, np.lib.npyio.NpzFile]:
    onnx_path, npz = mlperf_files(model)
    io = np.load(npz)
    program = load(onnx_path, requant_mode=mode)
    out = build(program, folder / f"{model}_{mode}", model, inputs=[io["x_int8"][0]])
    (out / "samples_main.c").write_text(samples_main(model, io["x_int8"], io[REFERENCE[mode]]))
    return out, io


@pytest.mark.parametrize("mode", sorted(REFERENCE))
@pytest.mark.parametrize("model", ["ad", "kws", "ic", "vww"])
def test_host_build_matches_reference_on_all_inputs(tmp_path: Path, model: str, mode: str) -> None:
    out, _ = build_model(model, mode, tmp_path)
    exe = "samples"
    proc = run_tool(["gcc", *CFLAGS, "-o", exe, "samples_main.c", f"{model}.c", "-lm"], out)
    assert proc.returncode == 0, proc.stderr
    proc = run_tool([f"./{exe}"], out)
    assert proc.returncode == 0 and f"{model}: exact 20/20, 0 mismatches" in proc.stdout, (
        proc.stdout + proc.stderr
    )


@pytest.mark.parametrize("model", ["ad", "kws", "ic", "vww"])
def test_integer_mode_arena_is_below_tflite_micro(model: str) -> None:
    onnx_path, _ = mlperf_files(model)
    plan = arena_plan(load(onnx_path, requant_mode="integer"), model)
    assert 0 < plan.size <= TFLM_ARENA[model]
    # MACs are fused with their requantization: no int32 accumulator tensor is planned
    assert not any(label.startswith(("nn.conv2d", "nn.linear")) for label, *_ in plan.entries)


@pytest.mark.slow
@needs_arm
@pytest.mark.parametrize("model", ["ad", "kws"])
def test_cortex_m4_matches_tflite_micro_on_all_inputs(tmp_path: Path, model: str) -> None:
    out, _ = build_model(model, "integer", tmp_path)
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
