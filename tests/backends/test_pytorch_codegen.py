"""`ircomp build --target pytorch`: standalone model.py agreeing with the golden interpreter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, find, settings
from pytorch_helpers import assert_agree
from strategies import build_program, fixp_graphs, float_graphs, quant_graphs
from test_pytorch_training import qat_program

from ircomp.backends.pytorch import build, generate
from ircomp.cli import main
from ircomp.interpreter import run
from ircomp.ir.program import save_program

RUNNER = """
import json, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import model
m = model.load()
inputs = [torch.from_numpy(a) for a in np.load(sys.argv[2]).values()]
with torch.no_grad():
    out = m(*inputs)
out = out if isinstance(out, tuple) else (out,)
np.savez(sys.argv[3], *[o.detach().float().numpy() if o.is_floating_point() else o.numpy()
                        for o in out])
print(json.dumps(sorted(k for k in sys.modules if k.split(".")[0] == "ircomp")))
"""


def run_generated(out_dir: Path, inputs: list[np.ndarray], tmp: Path) -> list[np.ndarray]:
    """Run out_dir/model.py with plain Python (no ircomp importable) and return its outputs."""
    np.savez(tmp / "inputs.npz", *inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            RUNNER,
            str(out_dir),
            str(tmp / "inputs.npz"),
            str(tmp / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []  # never imported ircomp
    with np.load(tmp / "out.npz") as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def _spec(strategy, condition):  # type: ignore[no-untyped-def]
    return find(
        strategy,
        condition,
        settings=settings(database=None, suppress_health_check=list(HealthCheck), max_examples=500),
    )


@pytest.mark.parametrize("family", ["float", "quant", "fixp"])
def test_generated_model_runs_standalone(family: str, tmp_path: Path) -> None:
    strategy = {"float": float_graphs(), "quant": quant_graphs(), "fixp": fixp_graphs()}[family]
    spec = _spec(strategy, lambda s: len(s.nodes) >= 5)
    program, inputs = build_program(spec)
    out = build(program, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == [
        "model.py",
        "model.safetensors",
        "run_example.py",
    ]
    got = run_generated(out, inputs, tmp_path)
    want = run(program, inputs)
    rtol = 1e-5 if "f16" not in str(program.module) else 1e-2
    assert_agree(want, got, rtol=rtol, what=repr(spec))


def test_generated_code_is_readable_and_deterministic(tmp_path: Path) -> None:
    program = qat_program()
    first, second = generate(program), generate(program)
    assert first == second
    text = first.model_py
    assert not re.search(r"^\s*(import|from) ircomp", text, re.MULTILINE)
    assert "class Model(torch.nn.Module):" in text
    assert "# nn.linear  (fc1)" in text
    assert "v1 = qlinear(v0, self.fc1_weight, self.fc1_bias)" in text
    assert "def requantize(" in text and "def high_mul(" in text  # helpers emitted
    compile(text, "model.py", "exec")
    a, b = build(program, tmp_path / "a"), build(program, tmp_path / "b")
    for name in ("model.py", "model.safetensors", "run_example.py"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_cli_build_from_mlir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = qat_program()
    save_program(program, tmp_path / "m.mlir")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")  # replaced whole
    assert main(["build", str(tmp_path / "m.mlir"), "--target", "pytorch", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "model.py",
        "model.safetensors",
        "run_example.py",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "run_example.py"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "output 0: shape [8, 3]" in proc.stdout


def test_cli_build_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.txt").write_text("")
    assert (
        main(["build", str(tmp_path / "m.txt"), "--target", "pytorch", "-o", str(tmp_path / "o")])
        == 2
    )
    assert "expected a .mlir or .onnx" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_build_from_onnx(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "m.onnx")
    out = tmp_path / "out"
    assert main(["build", str(tmp_path / "m.onnx"), "--target", "pytorch", "-o", str(out)]) == 0
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    got = run_generated(out, [x], tmp_path)
    np.testing.assert_allclose(
        got[0], np.maximum(x @ (np.arange(12).reshape(3, 4) / 10), 0), rtol=1e-5, atol=1e-6
    )


def test_generated_model_with_tflite_kernels(tmp_path: Path) -> None:
    """nn.qadd and nn.qsoftmax in a standalone model.py (their fixed-point helpers copied),
    bit-exact with the interpreter."""
    from xdsl.dialects.builtin import IntegerType

    from ircomp.dialects import nn
    from ircomp.ir.builder import GraphBuilder

    i8 = IntegerType(8)
    rng = np.random.default_rng(5)
    g = GraphBuilder()
    a, b = g.input([2, 12], i8), g.input([2, 12], i8)
    s = g.op(
        nn.QAddOp,
        [a, b],
        i8,
        lhs_scale=0.05,
        lhs_zero_point=3,
        rhs_scale=0.09,
        rhs_zero_point=-7,
        scale=0.11,
        zero_point=-128,
    )
    y = g.op(nn.QSoftmaxOp, [s], i8, input_scale=0.11)
    program = g.finish([y, s])
    inputs = [rng.integers(-128, 128, (2, 12)).astype(np.int8) for _ in range(2)]
    out = build(program, tmp_path / "out")
    text = (out / "model.py").read_text()
    assert "def tflite_add(" in text and "def exp_on_negative_values(" in text
    got = run_generated(out, inputs, tmp_path)
    for g_out, want in zip(got, run(program, inputs), strict=True):
        assert np.array_equal(g_out, want)
