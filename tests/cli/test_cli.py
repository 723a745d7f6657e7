"""The `ircomp` command: real runs of opt/run/passes, exit codes, and no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ircomp.cli import main
from ircomp.dialects import nn
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program, load_program, save_program


def _model(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input((2, 3, 6, 6))
    w = b.weight("conv.weight", rng.normal(size=(4, 3, 3, 3)))
    y = b.op(nn.Conv2dOp, [x, w], padding=[1, 1, 1, 1])
    stats = [b.weight(f"bn.{k}", rng.uniform(0.5, 1.5, 4)) for k in "sbmv"]
    y = b.op(nn.BatchNormOp, [y, *stats])
    y = b.op(nn.ReluOp, [y])
    program: Program = b.finish([b.op(nn.GlobalAvgPool2dOp, [y])])
    path = tmp_path / "model.mlir"
    save_program(program, path)
    inputs = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    return path, inputs, run(program, [inputs])[0]


def test_opt_then_run_preserves_the_model(tmp_path: Path, capsys) -> None:
    path, inputs, expected = _model(tmp_path)
    out = tmp_path / "out" / "model.mlir"
    argv = ["opt", str(path), "-p", "fold-batchnorm,dce", "-o", str(out), "--time-passes"]
    assert main(argv) == 0
    assert "fold-batchnorm" in capsys.readouterr().err
    optimized = load_program(out)
    assert not any(isinstance(op, nn.BatchNormOp) for op in optimized.module.walk())
    np.save(tmp_path / "x.npy", inputs)
    result = tmp_path / "y.npy"
    assert main(["run", str(out), "--input", str(tmp_path / "x.npy"), "-o", str(result)]) == 0
    np.testing.assert_allclose(np.load(result), expected, rtol=1e-5, atol=1e-6)


def test_dump_dir_has_one_file_per_pass(tmp_path: Path) -> None:
    path, _, _ = _model(tmp_path)
    dumps = tmp_path / "dumps"
    assert main(["opt", str(path), "-p", "fold-batchnorm,dce", "--dump-dir", str(dumps)]) == 0
    names = sorted(p.name for p in dumps.iterdir())
    assert names == ["00-input.mlir", "01-fold-batchnorm.mlir", "02-dce.mlir"]


def test_unknown_pass_suggests_the_closest_name(tmp_path: Path, capsys) -> None:
    path, _, _ = _model(tmp_path)
    out = tmp_path / "never.mlir"
    assert main(["opt", str(path), "-p", "fold-batchnrom", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fold-batchnrom" in err and "fold-batchnorm" in err
    assert not out.exists()


def test_run_rejects_a_wrong_input_shape(tmp_path: Path, capsys) -> None:
    path, _, _ = _model(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 5, 5), np.float32))
    out = tmp_path / "y.npy"
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "-o", str(out)]) == 2
    assert "shape" in capsys.readouterr().err
    assert not out.exists()


def test_pickled_inputs_are_refused(tmp_path: Path, capsys) -> None:
    path, _, _ = _model(tmp_path)
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy")]) == 2
    assert "cannot read input" in capsys.readouterr().err


def test_passes_lists_builtin_passes(capsys) -> None:
    assert main(["passes"]) == 0
    text = capsys.readouterr().out
    for name in ("dce", "cse", "constant-fold", "fold-batchnorm", "shape-inference"):
        assert name in text


def test_malformed_mlir_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mlir"
    bad.write_text(
        "func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {\n  %y = nn.relu %x :\n}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "ircomp", "opt", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{bad}:3:1" in proc.stderr


@pytest.mark.parametrize("generic", [False, True])
def test_opt_output_round_trips_through_the_cli(tmp_path: Path, generic: bool) -> None:
    path, _, _ = _model(tmp_path)
    first, second = tmp_path / "a" / "m.mlir", tmp_path / "b" / "m.mlir"
    flags = ["--generic"] if generic else []
    assert main(["opt", str(path), "-o", str(first), *flags]) == 0
    assert main(["opt", str(first), "-o", str(second), *flags]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert (
        first.with_suffix(".safetensors").read_bytes()
        == second.with_suffix(".safetensors").read_bytes()
    )
