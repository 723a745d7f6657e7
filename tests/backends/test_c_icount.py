"""Exact Cortex-M4 instruction counts under QEMU (backends/c/icount.py): a hand-written program
whose count is known instruction by instruction, and the model report built on it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_c_backend import int8_mlp

from ircomp.backends.c import build, measure_cortex_m4
from ircomp.backends.c.cortex_m4 import ARM_CC, LINKER_SCRIPT, QEMU, ToolchainMissing
from ircomp.backends.c.icount import (
    ARM_OBJDUMP,
    check_tools,
    count_function,
    return_sites,
    run_counted,
    symbol_address,
)

needs_arm = pytest.mark.skipif(
    any(shutil.which(t) is None for t in (ARM_CC, ARM_OBJDUMP, QEMU, "cc")),
    reason="needs Debian packages gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm gcc "
    "(scripts/install-system-deps.sh)",
)

# Reset: r4 = CALLS; loop { bl kernel; subs; bne }; semihosting SYS_EXIT (3 instructions).
# kernel: movs (1) + 10 x (subs, bne) (20) + bx lr (1) = 22 instructions per call.
TINY = """\
    .syntax unified
    .cpu cortex-m4
    .thumb
    .section .isr_vector, "a"
    .word __stack_top
    .word Reset_Handler
    .text
    .thumb_func
    .global Reset_Handler
Reset_Handler:
    movs r4, #CALLS
1:  bl kernel
    subs r4, r4, #1
    bne 1b
    movs r0, #0x18
    ldr r1, =0x20026
    bkpt 0xab
    .thumb_func
    .global kernel
kernel:
    movs r0, #10
2:  subs r0, r0, #1
    bne 2b
    bx lr
"""
KERNEL = 1 + 10 * 2 + 1


def tiny_elf(folder: Path, calls: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.S").write_text(TINY.replace("CALLS", str(calls)))
    (folder / "cortex_m4.ld").write_text(LINKER_SCRIPT)
    cmd = [ARM_CC, "-mcpu=cortex-m4", "-mthumb", "-nostdlib", "-T", "cortex_m4.ld"]
    proc = subprocess.run(
        [*cmd, "-o", "tiny.elf", "tiny.S"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return folder / "tiny.elf"


@needs_arm
@pytest.mark.parametrize("calls", [1, 3])
def test_known_program_counts_exactly(tmp_path: Path, calls: int) -> None:
    counts = count_function(tiny_elf(tmp_path, calls), "kernel")
    assert counts.status == 0
    assert counts.calls == calls
    assert counts.per_call == (KERNEL,) * calls
    assert counts.per_inference == KERNEL
    assert counts.counted == KERNEL * calls
    # whole run: movs; per call bl + kernel + subs + bne; movs, ldr, bkpt
    assert counts.total == 1 + calls * (1 + KERNEL + 2) + 3


@needs_arm
def test_difference_of_runs_agrees_with_the_bracket(tmp_path: Path) -> None:
    """ANCHORS.md's method, (count with 3 calls - count with 1) / 2, gives the bracketed count
    plus the caller's loop overhead (bl, subs, bne)."""
    one = count_function(tiny_elf(tmp_path / "a", 1), "kernel")
    three = count_function(tiny_elf(tmp_path / "b", 3), "kernel")
    assert (three.total - one.total) // 2 == KERNEL + 3


@needs_arm
def test_marks_from_the_symbol_table(tmp_path: Path) -> None:
    elf = tiny_elf(tmp_path, 2)
    start = symbol_address(elf, "kernel")
    sites = return_sites(elf, "kernel")
    assert start % 2 == 0 and len(sites) == 1  # Thumb bit cleared; one call site
    entry = symbol_address(elf, "Reset_Handler")
    assert sites[0] == entry + 2 + 4  # movs (16-bit), then the 32-bit bl
    # from the reset handler's first instruction up to the exit's first (after subs, bne)
    counts = run_counted(elf, [entry], [sites[0] + 2 + 2])
    assert counts.per_call == (1 + 2 * (1 + KERNEL + 2),)
    with pytest.raises(RuntimeError, match="unbalanced start/stop"):  # bl runs twice
        run_counted(elf, [entry + 2], [sites[0] + 2 + 2])
    with pytest.raises(RuntimeError, match="no function symbol 'missing'"):
        symbol_address(elf, "missing")
    with pytest.raises(RuntimeError, match="no direct call 'bl Reset_Handler'"):
        return_sites(elf, "Reset_Handler")


@needs_arm
def test_model_report_counts_one_inference(tmp_path: Path) -> None:
    out = build(int8_mlp("integer"), tmp_path / "mlp", "mlp")
    report = measure_cortex_m4(out, "mlp")
    assert report["passed"], report["output"]
    again = count_function(out / "mlp.elf", "mlp_run")
    assert again.per_inference == report["instructions"]  # deterministic
    # the harness runs mlp_run once; the rest of the run is startup, checks and printf
    assert 0 < report["instructions"] < report["instructions_total"]
    # 4 rows x (32 x 16 + 8 x 32) MACs: at least one instruction per MAC
    assert report["instructions"] > 4 * (32 * 16 + 8 * 32)
    model = report["model_sections"]
    assert report["model_flash"] == model["text"] + model["rodata"] < report["flash"]
    assert report["model_ram"] == model["data"] + model["bss"] + report["stack_bytes"]
    assert model["bss"] >= report["arena"] > 0
    assert model["object"][".text"] > 0 and model["object"][".bss"] == report["arena"]


def test_missing_tools_name_debian_packages(monkeypatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ToolchainMissing, match=r"binutils-arm-none-eabi.*qemu-system-arm"):
        check_tools()


@needs_arm
def test_profile_splits_the_run_by_op(tmp_path: Path) -> None:
    from ircomp.backends.c.cortex_m4 import profile_ops

    out = build(int8_mlp("integer"), tmp_path / "mlp", "mlp")
    prof = profile_ops(out, "mlp")
    names = [op for op, _ in prof["ops"]]
    source = (out / "mlp.c").read_text()
    assert names and all(re.search(rf"^IRCOMP_OP (void|int) {op}\(", source, re.M) for op in names)
    assert any("linear" in op for op in names)
    assert all(n > 0 for _, n in prof["ops"])
    assert prof["other"] >= 0
    assert sum(n for _, n in prof["ops"]) + prof["other"] == prof["total"]
    # the linear layers hold nearly all the work: 4 x (32 x 16 + 8 x 32) MACs
    linear = sum(n for op, n in prof["ops"] if "linear" in op)
    assert linear > 4 * (32 * 16 + 8 * 32) and linear > prof["total"] // 2
