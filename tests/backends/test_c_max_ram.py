"""`ircomp build --target c` memory report and `--max-ram`: the plan's liveness peak, the
per-tensor table, report.json, and the exit status when the budget is exceeded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_c_backend import int8_cnn

from ircomp.backends.c import arena_plan
from ircomp.backends.c.cortex_m4 import ARM_CC, QEMU
from ircomp.backends.c.plan import Buffer, format_plan, live_bytes, peak_live, placed, plan
from ircomp.backends.c.report import build_info, parse_bytes
from ircomp.cli import main
from ircomp.errors import InputError
from ircomp.ir.program import save_program


def test_peak_counts_an_in_place_result_once() -> None:
    a = Buffer("a", "a", 100, 0, 1)
    b = Buffer("b", "b", 100, 1, 2, inplace_of="a")  # written over a, which dies at op 1
    c = Buffer("c", "c", 40, 1, 3)
    d = Buffer("d", "d", 8, 3, 3)
    size = plan([a, b, c, d])
    assert b.offset == a.offset == 0 and c.offset == 104  # aligned after a/b
    assert size == 144
    assert live_bytes([a, b, c, d], 1) == 140  # a and b share their bytes
    assert live_bytes([a, b, c, d], 3) == 48
    assert peak_live([a, b, c, d]) == (140, 1)
    table = format_plan([a, b, c, d], size)
    assert (
        table.splitlines()[0]
        == "arena 144 bytes; liveness peak 140 bytes at op 1 (tensors marked *)"
    )
    assert "*        0      100  [0, 1]      a" in table
    assert "         0        8  [3, 3]      d" in table  # not live at op 1: no mark


def test_build_info_figures() -> None:
    program = int8_cnn("integer")
    info = build_info(program)
    entries = arena_plan(program).entries
    assert info["arena"] == arena_plan(program).size > 0
    # the conv layer's result (4 x 8 x 8: int8 codes, or int32 before a separate requantize)
    conv = [p for p in info["plan"] if "conv" in p["tensor"]]
    assert conv and all(p["bytes"] in (256, 1024) for p in conv)
    assert [p["offset"] for p in info["plan"]] == [e[1] for e in entries]
    assert info["liveness_peak"] == peak_live(placed(entries))[0] <= info["arena"]
    assert info["weights"] == 4 * 3 * 3 * 3 + 4 * 4 + 10 * 64  # conv i8, bias i32, fc i8
    assert info["inputs"] == 3 * 8 * 8 * 4  # one f32 input
    assert info["outputs"] == 10 * 4 + 10  # f32 softmax and i8 codes
    assert info["tensor_bytes"] == sum(e[2] for e in entries)


@pytest.mark.parametrize(
    ("text", "value"), [("65536", 65536), ("64K", 65536), ("64KiB", 65536), ("1.5M", 1572864)]
)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "12x", "-4", "0", "0.3"])
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(InputError, match="--max-ram"):
        parse_bytes(text)


@pytest.fixture
def cnn_file(tmp_path: Path) -> Path:
    path = tmp_path / "cnn.mlir"
    save_program(int8_cnn("integer"), path)
    return path


def _row(entry: tuple[str, int, int, int, int]) -> str:
    label, off, size, start, end = entry
    return f"{off:8d} {size:8d}  {f'[{start}, {end}]':<11} {label}"


def test_over_budget_prints_the_plan_and_writes_nothing(
    cnn_file: Path, tmp_path: Path, capsys
) -> None:
    entries = arena_plan(int8_cnn("integer")).entries
    arena = arena_plan(int8_cnn("integer")).size
    out = tmp_path / "out"
    args = ["build", str(cnn_file), "--target", "c", "-o", str(out)]
    assert main([*args, "--max-ram", str(arena - 100)]) == 2
    err = capsys.readouterr().err
    assert f"the arena needs {arena} bytes, 100 over --max-ram {arena - 100}" in err
    peak, at = peak_live(placed(entries))
    assert f"liveness peak {peak} bytes at op {at}" in err
    for entry in entries:  # every tensor, the ones live at the peak marked
        live = entry[3] <= at <= entry[4]
        assert ("* " if live else "  ") + _row(entry) in err
    assert not out.exists()


def test_within_budget_writes_report(cnn_file: Path, tmp_path: Path, capsys) -> None:
    arena = arena_plan(int8_cnn("integer")).size
    out = tmp_path / "out"
    args = ["build", str(cnn_file), "--target", "c", "-o", str(out), "--max-ram", str(arena)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"arena {arena:,} B" in printed and "weights 764 B" in printed
    report = json.loads((out / "report.json").read_text())
    assert report == build_info(int8_cnn("integer"))
    assert "model_flash" not in report  # not measured without --cortex-m4-report
    plain = tmp_path / "plain"
    assert main(["build", str(cnn_file), "--target", "c", "-o", str(plain)]) == 0
    assert f"arena {arena:,} B" in capsys.readouterr().out  # the summary, always
    assert not (plain / "report.json").exists()
    assert main(["build", str(cnn_file), "--target", "c", "-o", str(plain), "--report"]) == 0
    assert json.loads((plain / "report.json").read_text()) == report


def test_options_need_target_c(cnn_file: Path, tmp_path: Path, capsys) -> None:
    args = ["build", str(cnn_file), "--target", "pytorch", "-o", str(tmp_path / "o")]
    assert main([*args, "--max-ram", "4K"]) == 2
    assert "--target c only" in capsys.readouterr().err


def test_missing_toolchain_exits_2_before_writing(
    cnn_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "out"
    assert (
        main(["build", str(cnn_file), "--target", "c", "-o", str(out), "--cortex-m4-report"]) == 2
    )
    err = capsys.readouterr().err
    for package in ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"):
        assert package in err
    assert not out.exists()


@pytest.mark.skipif(
    shutil.which(ARM_CC) is None or shutil.which(QEMU) is None,
    reason="needs Debian packages gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm",
)
def test_measured_ram_over_budget(cnn_file: Path, tmp_path: Path, capsys) -> None:
    """The arena fits, but data + bss + stack on the Cortex-M4 does not: exit 2 after the
    build, which stays in place with its report."""
    out = tmp_path / "out"
    args = ["build", str(cnn_file), "--target", "c", "-o", str(out), "--cortex-m4-report"]
    arena = arena_plan(int8_cnn("integer")).size
    assert main([*args, "--max-ram", str(arena + 8)]) == 2  # data + bss + stack > arena + 8
    captured = capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] and report["arena"] == arena_plan(int8_cnn("integer")).size
    ram = report["model_ram"]
    assert f"the model needs {ram} bytes of RAM on the Cortex-M4" in captured.err
    assert f"{report['instructions']:,} instructions per inference" in captured.out
    assert main([*args, "--max-ram", str(ram)]) == 0
