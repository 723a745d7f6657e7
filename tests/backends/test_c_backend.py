"""C backend: generated C99 compiled with the host compilers, run, and compared with the golden
interpreter (codes bit-exact, float32 within 1e-5 relative) by the generated harness."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import FLOAT_OPS, build_program, float_graphs, quant_graphs
from xdsl.dialects.builtin import IntegerType

from ircomp.backends.c import arena_plan, build, generate
from ircomp.cli import main as cli_main
from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program, save_program

CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]
DEBIAN = {"gcc": "gcc", "clang": "clang", "make": "make"}
I8, I32 = IntegerType(8), IntegerType(32)


def run_tool(cmd: Sequence[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run an external tool with a timeout and captured output; a missing tool names its
    Debian package, a failure shows the tool's output."""
    tool = cmd[0]
    if "/" not in tool and shutil.which(tool) is None:
        package = DEBIAN.get(tool, tool)
        raise RuntimeError(f"{tool} not found: install the Debian package '{package}'")
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"{' '.join(cmd)} timed out after {timeout} s") from err
    return proc


def compilers() -> list[str]:
    return ["gcc"] + (["clang"] if shutil.which("clang") else [])


def check_c(
    program: Program,
    folder: Path,
    inputs=None,
    name: str = "model",
    cc: Sequence[str] | None = None,
) -> str:
    """Build, compile with every host compiler, run the harness; return its report line."""
    build(program, folder, name, inputs=inputs)
    line = ""
    for compiler in cc or compilers():
        exe = f"{name}_{compiler}"
        proc = run_tool([compiler, *CFLAGS, "-o", exe, "main.c", f"{name}.c", "-lm"], folder)
        assert proc.returncode == 0, proc.stderr
        proc = run_tool([f"./{exe}"], folder)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        line = proc.stdout.strip().splitlines()[-1]
        assert " 0 mismatches" in line
    return line


def test_clang_when_installed() -> None:
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (Debian package 'clang'); gcc builds are checked")


# ---- hand-built models ----------------------------------------------------------------------


def int8_cnn(mode: str, seed: int = 0) -> Program:
    """quantize -> conv (zero points, per-channel requantize) -> relu -> maxpool -> avgpool ->
    flatten -> linear -> requantize -> dequantize -> softmax, returning codes and floats."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input([1, 3, 8, 8])
    q = g.op(nn.QuantizeOp, [x], I8, scale=[0.05], zero_point=[3], name="input.q")
    w = g.weight("conv.weight", rng.integers(-50, 50, size=(4, 3, 3, 3)), I8)
    b = g.weight("conv.bias", rng.integers(-500, 500, size=(4,)), I32)
    a = g.op(
        nn.Conv2dOp,
        [q, w, b],
        I32,
        padding=[1, 1, 1, 1],
        input_zero_point=3,
        weight_zero_point=1,
        name="conv",
    )
    r = g.op(
        nn.RequantizeOp,
        [a],
        I8,
        scale=[0.003, 0.004, 0.002, 0.005],
        zero_point=[-2],
        axis=1,
        mode=mode,
        name="conv.rq",
    )
    r = g.op(nn.ReluOp, [r], name="relu")
    p = g.op(nn.MaxPool2dOp, [r], kernel=[2, 2], strides=[2, 2], name="pool")
    p = g.op(nn.AvgPool2dOp, [p], kernel=[3, 3], padding=[1, 1, 1, 1], name="avg")
    f = g.op(nn.FlattenOp, [p], axis=1)
    w2 = g.weight("fc.weight", rng.integers(-100, 100, size=(10, 64)), I8)
    a2 = g.op(nn.LinearOp, [f, w2], I32, input_zero_point=-2, name="fc")
    r2 = g.op(
        nn.RequantizeOp,
        [a2],
        I8,
        scale=[0.01],
        zero_point=[1],
        mode=mode,
        clamp=[-100, 100],
        name="fc.rq",
    )
    d = g.op(nn.DequantizeOp, [r2], scale=[0.1], zero_point=[1])
    s = g.op(nn.SoftmaxOp, [d], name="softmax")
    return g.finish([s, r2])


def int8_mlp(mode: str, seed: int = 1) -> Program:
    """Two int8 layers with ties on purpose (scale 0.5, 0.25: onnx and integer modes differ)."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input([4, 16])
    q = g.op(nn.QuantizeOp, [x], I8, scale=[0.02], name="q")
    h = q
    for i, (n_in, n_out, scale) in enumerate([(16, 32, 0.5), (32, 8, 0.25)]):
        w = g.weight(f"fc{i}.weight", rng.integers(-3, 4, size=(n_out, n_in)), I8)
        b = g.weight(f"fc{i}.bias", rng.integers(-20, 20, size=(n_out,)), I32)
        acc = g.op(nn.LinearOp, [h, w, b], I32, name=f"fc{i}")
        h = g.op(
            nn.RequantizeOp, [acc], I8, scale=[scale], zero_point=[0], mode=mode, name=f"fc{i}.rq"
        )
        h = g.op(nn.ClipOp, [h], min=-20.0, max=30.0, name=f"act{i}")
    return g.finish([h])


def float_cnn(seed: int = 2) -> Program:
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input([2, 4, 9, 9])
    w = g.weight("dw.weight", rng.normal(size=(4, 2, 3, 3)).astype(np.float32))
    b = g.weight("dw.bias", rng.normal(size=(4,)).astype(np.float32))
    y = g.op(
        nn.Conv2dOp,
        [x, w, b],
        strides=[2, 1],
        padding=[1, 2, 0, 1],
        dilations=[1, 2],
        groups=2,
        name="features.0",
    )
    y = g.op(nn.HardTanhOp, [y], min=-2.0, max=2.0)
    t = g.op(nn.TanhOp, [y])
    s = g.op(nn.SigmoidOp, [y])
    y = g.op(nn.MulOp, [t, s])
    bias = g.weight("scale", rng.normal(size=(4, 1, 1)).astype(np.float32) + 2.0)
    y = g.op(nn.DivOp, [y, bias])
    y = g.op(nn.SubOp, [y, g.weight("shift", np.float32([0.25]))])
    m = g.op(
        nn.MaxPool2dOp, [y], kernel=[2, 2], strides=[1, 2], padding=[1, 0, 0, 1], ceil_mode=True
    )
    a = g.op(nn.AvgPool2dOp, [m], kernel=[2, 2], strides=[2, 2], ceil_mode=True)
    gp = g.op(nn.GlobalAvgPool2dOp, [y])
    cat = g.op(nn.ConcatOp, [g.op(nn.FlattenOp, [a]), g.op(nn.FlattenOp, [gp])], axis=1)
    r = g.op(nn.ReshapeOp, [cat], shape=[2, -1, 4])
    tr = g.op(nn.TransposeOp, [r], perm=[0, 2, 1])
    wm = g.weight("proj", rng.normal(size=(tr_k(tr), 3)).astype(np.float32))
    mm = g.op(nn.MatMulOp, [tr, wm])
    wl = g.weight("head.weight", rng.normal(size=(5, 3)).astype(np.float32))
    out = g.op(nn.LinearOp, [g.op(nn.ReluOp, [mm]), wl], name="head")
    return g.finish([g.op(nn.SoftmaxOp, [out], axis=1), mm])


def tr_k(value) -> int:
    return value.type.get_shape()[-1]


@pytest.mark.parametrize("mode", ["onnx", "integer"])
def test_int8_cnn_bit_exact(tmp_path: Path, mode: str) -> None:
    check_c(int8_cnn(mode), tmp_path / "cnn")


@pytest.mark.parametrize("mode", ["onnx", "integer"])
def test_int8_mlp_bit_exact(tmp_path: Path, mode: str) -> None:
    check_c(int8_mlp(mode), tmp_path / "mlp", name="mlp")


def test_requantize_modes_differ_on_ties(tmp_path: Path) -> None:
    """The harness would catch a wrong mode: the two modes give different codes here."""
    a = generate(int8_mlp("onnx"), "mlp")["vectors.h"]
    b = generate(int8_mlp("integer"), "mlp")["vectors.h"]
    assert a != b


@pytest.mark.parametrize("mode", ["onnx", "integer"])
def test_fused_matmul_requantize(tmp_path: Path, mode: str) -> None:
    """int8 matmul of two activations (batch broadcasting) fused with its requantize: the
    kernel's row loop and the requantized value do not share a name."""
    rng = np.random.default_rng(17)
    g = GraphBuilder()
    a, b = g.input([2, 3, 5], I8), g.input([5, 4], I8)
    acc = g.op(nn.MatMulOp, [a, b], I32, input_zero_point=2, weight_zero_point=-1)
    y = g.op(nn.RequantizeOp, [acc], I8, scale=[0.013], zero_point=[3], mode=mode)
    inputs = [rng.integers(-128, 128, s).astype(np.int8) for s in ((2, 3, 5), (5, 4))]
    check_c(g.finish([y]), tmp_path / "mm", inputs, cc=["gcc"])
    assert "matmul_requantize" in (tmp_path / "mm" / "model.c").read_text()


def test_float_cnn_within_tolerance(tmp_path: Path) -> None:
    check_c(float_cnn(), tmp_path / "fcnn")


def test_output_is_deterministic() -> None:
    assert generate(int8_cnn("integer")) == generate(int8_cnn("integer"))
    assert generate(float_cnn()) == generate(float_cnn())


def test_arena_is_smaller_than_all_tensors() -> None:
    for program in (int8_cnn("integer"), float_cnn()):
        info = arena_plan(program)
        assert 0 < info.size < info.total_tensor_bytes
        # planned tensors with overlapping lifetimes never share bytes
        for i, (_, o1, s1, a1, e1) in enumerate(info.entries):
            for _, o2, s2, a2, e2 in info.entries[i + 1 :]:
                if a1 <= e2 and a2 <= e1 and not (e1 == a2 and o1 == o2):
                    assert o1 + s1 <= o2 or o2 + s2 <= o1


def test_unsupported_op_names_the_node() -> None:
    g = GraphBuilder()
    x = g.input([2, 3])
    y = g.op(nn.ExpOp, [x], name="block.exp")
    with pytest.raises(InputError, match=r"nn\.exp.*block\.exp"):
        generate(g.finish([y]))


def test_unsupported_format_is_refused() -> None:
    from xdsl.dialects.builtin import BFloat16Type

    from ircomp.dialects.num import PositType

    g = GraphBuilder()
    x = g.input([2, 3])
    y = g.op(nn.QuantizeOp, [x], PositType(8, 1), scale=[1.0], name="q")
    with pytest.raises(InputError, match=r"nn.quantize 'q'.*posit<8,1>.*only as the weights"):
        generate(g.finish([y]))
    g = GraphBuilder()
    x = g.input([2, 3], BFloat16Type())
    y = g.op(nn.ReluOp, [x], name="act")
    with pytest.raises(InputError, match=r"bf16"):
        generate(g.finish([y]))


# ---- random graphs --------------------------------------------------------------------------

C_FLOAT_OPS = tuple(op for op in FLOAT_OPS if op not in ("batchnorm", "split"))  # no C kernels


@settings(max_examples=12)
@given(spec=float_graphs(formats=("f32",), ops=C_FLOAT_OPS, max_nodes=6))
def test_random_float_graphs(tmp_path_factory, spec) -> None:
    program, inputs = build_program(spec)
    check_c(program, tmp_path_factory.mktemp("f") / "m", inputs=inputs, cc=["gcc"])


@settings(max_examples=16)
@given(spec=quant_graphs())
def test_random_quant_graphs_bit_exact(tmp_path_factory, spec) -> None:
    program, inputs = build_program(spec)
    check_c(program, tmp_path_factory.mktemp("q") / "m", inputs=inputs, cc=["gcc"])


# ---- ONNX QDQ and the command line ------------------------------------------------------------


def _onnx_helpers():
    path = Path(__file__).resolve().parents[1] / "frontends" / "onnx_helpers.py"
    spec = importlib.util.spec_from_file_location("c_backend_onnx_helpers", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def qdq_path(tmp_path_factory) -> Path:
    onnx = pytest.importorskip("onnx")
    quant = pytest.importorskip("onnxruntime.quantization")
    import torch

    helpers = _onnx_helpers()
    torch.manual_seed(0)
    shape = (1, 3, 14, 14)
    folder = tmp_path_factory.mktemp("qdq")
    float_path, q_path = folder / "float.onnx", folder / "qdq.onnx"
    onnx.save(helpers.export(helpers.SmallCNN(), torch.randn(*shape)), float_path)

    class Reader(quant.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter({"x": b} for b in helpers.calibration_batches(1, 4, shape))

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.batches, None)

    quant.quantize_static(
        str(float_path), str(q_path), Reader(), quant_format=quant.QuantFormat.QDQ, per_channel=True
    )
    return q_path


def test_qdq_onnx_model_bit_exact(tmp_path: Path, qdq_path: Path) -> None:
    from ircomp.frontends import onnx as onnx_frontend

    program = onnx_frontend.load(str(qdq_path))
    assert any(isinstance(op, nn.RequantizeOp) for op in program.module.walk())
    check_c(program, tmp_path / "qdq", cc=["gcc"])


def test_cli_build_target_c(tmp_path: Path, capsys) -> None:
    save_program(int8_cnn("onnx"), tmp_path / "m.mlir")
    out = tmp_path / "out"
    assert cli_main(["build", str(tmp_path / "m.mlir"), "--target", "c", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "Makefile",
        "cortex_m4.ld",
        "main.c",
        "model.c",
        "model.h",
        "startup_cortex_m4.c",
        "vectors.h",
    ]
    proc = run_tool(["make", "-s", "check"], out)
    assert proc.returncode == 0 and " 0 mismatches" in proc.stdout, proc.stdout + proc.stderr
    # rebuilding replaces the folder whole; leftovers vanish
    (out / "stale.txt").write_text("x")
    assert cli_main(["build", str(tmp_path / "m.mlir"), "--target", "c", "-o", str(out)]) == 0
    assert not (out / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_cli_unsupported_op_exits_2(tmp_path: Path, capsys) -> None:
    g = GraphBuilder()
    x = g.input([2, 3])
    save_program(g.finish([g.op(nn.ExpOp, [x], name="head.exp")]), tmp_path / "m.mlir")
    assert (
        cli_main(["build", str(tmp_path / "m.mlir"), "--target", "c", "-o", str(tmp_path / "o")])
        == 2
    )
    assert "nn.exp" in capsys.readouterr().err
