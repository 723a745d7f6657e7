"""C backend on a Cortex-M4F: generated models cross-compiled with arm-none-eabi-gcc and run on
QEMU's mps2-an386 through the generated Makefile and harness; outputs bit-exact with the host
build (checksum of the output bytes) and the golden interpreter (float within tolerance)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from test_c_backend import float_cnn, int8_cnn, run_tool

from ircomp.backends.c import ToolchainMissing, build, measure_cortex_m4
from ircomp.backends.c.cortex_m4 import ARM_CC, QEMU
from ircomp.ir.program import Program

needs_arm = pytest.mark.skipif(
    shutil.which(ARM_CC) is None or shutil.which(QEMU) is None,
    reason="needs Debian packages gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm "
    "(scripts/install-system-deps.sh)",
)


def host_checksum(folder: Path) -> str:
    proc = run_tool(["make", "-s", "check"], folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"PASS, 0 mismatches, checksum (0x[0-9a-f]{8})", proc.stdout)
    assert m, proc.stdout
    return m.group(1)


MODELS = {
    "int8_cnn_onnx": (lambda: int8_cnn("onnx"), True),
    "int8_cnn_integer": (lambda: int8_cnn("integer"), True),
    "float_cnn": (float_cnn, False),
}


@pytest.mark.slow
@needs_arm
@pytest.mark.parametrize("model", sorted(MODELS))
def test_cortex_m4_matches_host_and_golden(tmp_path: Path, model: str) -> None:
    make, exact = MODELS[model]
    program: Program = make()
    out = build(program, tmp_path / model)
    host = host_checksum(out)
    report = measure_cortex_m4(out)
    assert report["status"] == 0 and report["passed"], report["output"]
    assert "0 mismatches" in report["output"]  # golden interpreter's vectors, in the harness
    if exact:  # codes (and the float softmax on them) bit-exact with the host build
        assert report["checksum"] == host
    assert json.loads((out / "report.json").read_text()) == report
    assert report["flash"] == report["text"] + report["rodata"] > 0
    assert report["ram"] == report["data"] + report["bss"] >= report["arena"] > 0
    assert 0 < report["stack_bytes"] < 8192


@pytest.mark.slow
@needs_arm
def test_build_writes_report_and_make_runs_under_qemu(tmp_path: Path) -> None:
    out = build(int8_cnn("integer"), tmp_path / "m", cortex_m4_report=True)
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] and report["board"] == "mps2-an386"
    proc = run_tool(["make", "-s", "run-cortex-m4"], out)
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slow
@needs_arm
def test_failure_status_reaches_the_host(tmp_path: Path) -> None:
    """A mismatch makes the harness exit 1 inside QEMU; semihosting carries it out."""
    out = build(int8_cnn("onnx"), tmp_path / "m")
    vectors = (out / "vectors.h").read_text()
    # corrupt the first reference output code: ref_out1 is the int8 result
    head, tail = vectors.split("ref_out1[", 1)
    brace = tail.index("{") + 1
    m = re.match(r"\s*(-?\d+)", tail[brace:])
    assert m
    value = int(m.group(1))
    tail = tail[:brace] + tail[brace:].replace(m.group(1), str(value + 1 if value < 0 else -1), 1)
    (out / "vectors.h").write_text(head + "ref_out1[" + tail)
    report = measure_cortex_m4(out)
    assert report["status"] == 1 and not report["passed"], report["output"]
    assert "FAIL, 1 mismatches" in report["output"]


def test_missing_toolchain_names_debian_packages(tmp_path: Path, monkeypatch) -> None:
    out = build(int8_cnn("onnx"), tmp_path / "m")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ToolchainMissing) as err:
        measure_cortex_m4(out)
    message = str(err.value)
    for package in ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"):
        assert package in message
    with pytest.raises(ToolchainMissing, match="gcc-arm-none-eabi"):
        build(int8_cnn("onnx"), tmp_path / "m2", cortex_m4_report=True)
