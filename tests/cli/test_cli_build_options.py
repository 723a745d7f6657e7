"""CLI options of import/build: --requant-mode (onnxruntime or TFLite Micro), --c-kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ircomp.cli import main

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "mlperf-tiny"


@pytest.mark.skipif(not (MLPERF / "ad_int8_qdq.onnx").exists(), reason="no MLPerf Tiny models")
@pytest.mark.parametrize(("mode", "reference"), [("onnx", "y_int8_ort"), ("integer", "y_int8")])
def test_import_mode_matches_its_reference(tmp_path: Path, mode: str, reference: str) -> None:
    io = np.load(MLPERF / "ad_io.npz")
    out = tmp_path / "ad.mlir"
    assert (
        main(["import", str(MLPERF / "ad_int8_qdq.onnx"), "-o", str(out), "--requant-mode", mode])
        == 0
    )
    np.save(tmp_path / "x.npy", io["x_int8"][0])
    assert (
        main(["run", str(out), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")])
        == 0
    )
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), io[reference][0])


def test_unknown_mode_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["import", "m.onnx", "-o", "m.mlir", "--requant-mode", "tflite"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.skipif(not (MLPERF / "ad_int8_qdq.onnx").exists(), reason="no MLPerf Tiny models")
def test_build_c_with_fast_kernels_checks_its_vectors(tmp_path: Path) -> None:
    import subprocess

    out = tmp_path / "c"
    args = ["build", str(MLPERF / "ad_int8_qdq.onnx"), "--target", "c", "-o", str(out)]
    assert main([*args, "--requant-mode", "integer", "--c-kernels", "fast", "--report"]) == 0
    assert "SMLAD" in (out / "model.c").read_text() or "__SMLAD" in (out / "model.c").read_text()
    run = subprocess.run(["make", "-s", "check"], cwd=out, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_c_kernels_apply_to_c_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "m.mlir", "--target", "pytorch", "-o", "x", "--c-kernels", "fast"]) == 2
    assert "--c-kernels" in capsys.readouterr().err


def test_choices_match_the_modules_that_define_them() -> None:
    from ircomp import cli
    from ircomp.backends.c import fast
    from ircomp.backends.verilog import build
    from ircomp.passes import logic_extract

    assert cli.KERNEL_CHOICES == fast.KERNEL_CHOICES
    assert (cli.ROUTES, cli.SIMULATORS) == (build.ROUTES, build.SIMULATORS)
    assert cli.DECOMPOSITIONS == logic_extract.DECOMPOSITIONS
    assert cli.REALIZATIONS == logic_extract.REALIZATIONS
