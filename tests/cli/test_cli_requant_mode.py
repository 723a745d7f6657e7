"""`ircomp import/build --requant-mode`: pick onnxruntime or TFLite Micro integer semantics."""

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
