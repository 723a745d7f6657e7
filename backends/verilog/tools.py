"""Runners for the external tools: verilator lint, iverilog / verilator simulation, yosys.

Each runner takes the design as `{file name: text}` (what `emit_verilog` and `write_testbench`
return) or as a folder holding those files, works on a copy in a temporary folder (nothing is
written beside the caller's files), and has a timeout. A missing tool is an `InputError`
naming the Debian package; a tool that fails on generated files is a `ToolError` with the end
of its output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ircomp.backends.verilog.names import is_identifier
from ircomp.errors import InputError, IrcompError

# The Debian package of every program the runners call.
PACKAGES = {
    "yosys": "yosys",
    "verilator": "verilator",
    "iverilog": "iverilog",
    "vvp": "iverilog",
}
SOURCE_SUFFIXES = (".v", ".hex")
TAIL = 4000

Sources = Mapping[str, str] | Path | str


class ToolError(IrcompError):
    """An external tool failed or timed out on generated files."""


def find_tool(name: str) -> str:
    """The path of `name`, or an InputError saying which Debian package provides it."""
    path = shutil.which(name)
    if path is None:
        package = PACKAGES.get(name, name)
        raise InputError(
            f"`{name}` was not found on PATH; the fpga-lut flow needs the Debian packages "
            f"yosys, verilator and iverilog (this step: `sudo apt-get install {package}`, or "
            "run scripts/install-system-deps.sh)"
        )
    return path


def _files(sources: Sources) -> dict[str, str]:
    if isinstance(sources, Mapping):
        return dict(sources)
    folder = Path(sources)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of Verilog files")
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.suffix in SOURCE_SUFFIXES}


def _design(files: Mapping[str, str], top: str) -> list[str]:
    """The design's Verilog files: every `.v` file but testbenches (`tb_<m>.v` beside `<m>.v`,
    so synthesizing one layer of a build folder skips the top's testbench too)."""
    names = sorted(
        n
        for n in files
        if n.endswith(".v") and n != f"tb_{top}.v" and not (n.startswith("tb_") and n[3:] in files)
    )
    if not names:
        raise InputError("no Verilog design files (*.v) to work on")
    return names


def _check_top(top: str) -> None:
    if not is_identifier(top):
        raise InputError(f"top module name {top!r} is not a Verilog identifier")


def _materialize(files: Mapping[str, str], folder: Path) -> None:
    for name, text in files.items():
        if Path(name).name != name or name.startswith("."):
            raise InputError(f"source file name {name!r} must be a plain file name")
        (folder / name).write_text(text)


_RUNNING: set[subprocess.Popen[str]] = set()  # tools started by any thread, until they end
_RUNNING_LOCK = threading.Lock()


def _run(argv: list[str], cwd: Path, timeout: float, what: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LC_ALL="C")
    with subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as err:
            proc.kill()
            proc.communicate()
            command = " ".join(argv[:3])
            raise ToolError(f"{what} timed out after {timeout:g} s: {command} ...") from err
        except BaseException:  # e.g. KeyboardInterrupt: do not wait for the tool to finish
            proc.kill()
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def stop_running_tools() -> None:
    """Kill every tool still running, whichever thread started it (an interrupted build: a
    KeyboardInterrupt reaches only the main thread, and a signal sent to ircomp's process alone
    does not reach the tools)."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for proc in running:
        proc.kill()


def _output(proc: subprocess.CompletedProcess) -> str:
    return (proc.stdout or "") + (proc.stderr or "")


def _fail(what: str, proc: subprocess.CompletedProcess) -> ToolError:
    text = _output(proc)
    return ToolError(f"{what} failed (exit {proc.returncode}):\n{text[-TAIL:]}")


# ---- lint ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LintReport:
    warnings: tuple[str, ...]  # one `%Warning-...` / `%Error...` line each
    output: str

    @property
    def clean(self) -> bool:
        return not self.warnings


def lint(sources: Sources, *, top: str, timeout: float = 120) -> LintReport:
    """`verilator --lint-only -Wall` over the design files (testbenches excluded)."""
    _check_top(top)
    files = _files(sources)
    names = _design(files, top)
    verilator = find_tool("verilator")
    with tempfile.TemporaryDirectory(prefix="ircomp-lint-") as tmp:
        _materialize({n: files[n] for n in names}, Path(tmp))
        proc = _run(
            [verilator, "--lint-only", "-Wall", "--top-module", top, *names],
            Path(tmp),
            timeout,
            "verilator lint",
        )
    text = _output(proc)
    found = tuple(line for line in text.splitlines() if re.match(r"%(Warning|Error)", line))
    if proc.returncode and not found:
        raise _fail("verilator --lint-only", proc)
    return LintReport(found, text)


# ---- simulation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SimResult:
    simulator: str
    passed: int
    total: int
    output: str

    @property
    def failed(self) -> int:
        return self.total - self.passed

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total


def parse_summary(text: str) -> tuple[int, int] | None:
    """(passed, total) from the testbench's `PASS n/n` / `FAIL p/n` line."""
    match = re.search(r"^(PASS|FAIL) (\d+)/(\d+)\s*$", text, re.MULTILINE)
    return (int(match.group(2)), int(match.group(3))) if match else None


def simulate(
    sources: Sources,
    *,
    top: str,
    simulator: str = "iverilog",
    timeout: float = 600,
    jobs: int = 1,
) -> SimResult:
    """Build and run `tb_<top>` with `simulator` ("iverilog" or "verilator"); the pass count is
    parsed from the testbench's summary line (vectors that failed are in `output`)."""
    _check_top(top)
    files = _files(sources)
    bench = f"tb_{top}.v"
    if bench not in files:
        raise InputError(f"no testbench {bench} among the sources (see write_testbench)")
    names = [*_design(files, top), bench]
    with tempfile.TemporaryDirectory(prefix="ircomp-sim-") as tmp:
        folder = Path(tmp)
        _materialize(files, folder)
        if simulator == "iverilog":
            iverilog, vvp = find_tool("iverilog"), find_tool("vvp")
            build = [iverilog, "-g2001", "-Wall", "-o", "sim.vvp", "-s", f"tb_{top}", *names]
            run = [vvp, "-n", "sim.vvp"]
        elif simulator == "verilator":
            verilator = find_tool("verilator")
            build = [
                verilator,
                "--binary",
                "--timing",
                "-j",
                str(max(1, jobs)),
                "--top-module",
                f"tb_{top}",
                "-Mdir",
                "obj",
                "-o",
                "sim",
                # Build the C++ without optimization: compile time dominates these runs.
                "-MAKEFLAGS",
                "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0",
                *names,
            ]
            run = [str(folder / "obj" / "sim")]
        else:
            raise InputError(f"unknown simulator {simulator!r}; use 'iverilog' or 'verilator'")
        proc = _run(build, folder, timeout, f"{simulator} build")
        if proc.returncode:
            raise _fail(f"{simulator} build of tb_{top}", proc)
        sim = _run(run, folder, timeout, f"{simulator} simulation")
    text = _output(sim)
    summary = parse_summary(text)
    if summary is None:
        raise ToolError(
            f"{simulator} simulation of tb_{top} printed no PASS/FAIL line "
            f"(exit {sim.returncode}):\n{text[-TAIL:]}"
        )
    return SimResult(simulator, summary[0], summary[1], text)


# ---- synthesis -----------------------------------------------------------------------------

FLOWS = {
    "generic": "synth -flatten -lut 6 -top {top}",
    "xilinx": "synth_xilinx -flatten -family xcup -noiopad -noclkbuf -top {top}",
}


@dataclass(frozen=True)
class SynthReport:
    flow: str
    cells: dict[str, int]  # cell type -> count, after synthesis
    luts: int  # $lut (generic) or LUT1..LUT6 (xilinx)
    ffs: int  # flip-flops
    muxf7: int
    muxf8: int
    muxf9: int
    carry: int  # CARRY4 / CARRY8
    depth: int  # cells on the longest combinational path (`ltp -noff`): LUT depth for
    # generic, LUTs plus MUXF7/8/9 and CARRY cells for xilinx
    log: str = field(repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "flow": self.flow,
            "luts": self.luts,
            "ffs": self.ffs,
            "muxf7": self.muxf7,
            "muxf8": self.muxf8,
            "muxf9": self.muxf9,
            "carry": self.carry,
            "depth": self.depth,
            "cells": dict(self.cells),
        }


def _is_ff(cell: str) -> bool:
    return "DFF" in cell or bool(re.fullmatch(r"FD[CPRSE]{1,2}(_1)?", cell))


def _is_lut(cell: str) -> bool:
    return cell == "$lut" or bool(re.fullmatch(r"LUT[1-6]", cell))


def parse_stat(text: str, top: str) -> dict[str, int]:
    """Cell counts of `top` from `stat -json` output."""
    data = json.loads(text[text.index("{") :])
    modules = data.get("modules", {})
    module = modules.get(f"\\{top}") or modules.get(top)
    if module is None:
        raise ToolError(f"yosys stat has no module {top}: {sorted(modules)}")
    return {str(k): int(v) for k, v in sorted(module.get("num_cells_by_type", {}).items())}


def parse_ltp(text: str) -> int:
    """The length of the longest path `ltp` printed."""
    match = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    if match is None:
        raise ToolError(f"no `ltp` result in the yosys log:\n{text[-TAIL:]}")
    return int(match.group(1))


def synthesize(
    sources: Sources, *, top: str, flow: str = "generic", timeout: float = 600
) -> SynthReport:
    """Synthesize the design with yosys (`flow`: "generic" = `synth -flatten -lut 6`, "xilinx" =
    `synth_xilinx -family xcup`) and count its cells and LUT depth."""
    _check_top(top)
    if flow not in FLOWS:
        raise InputError(f"unknown synthesis flow {flow!r}; use one of {sorted(FLOWS)}")
    files = _files(sources)
    names = _design(files, top)
    yosys = find_tool("yosys")
    # Xilinx flip-flops and shift registers are no built-in FF types, so `ltp -noff` would run
    # through them: they are deleted (after `stat`) to cut the paths there.
    ltp = "ltp -noff" if flow == "generic" else "delete t:FD* t:SRL*; ltp -noff"
    script = "; ".join(
        [
            "read_verilog " + " ".join(names),
            FLOWS[flow].format(top=top),
            "tee -q -o stat.json stat -json",
            ltp,
        ]
    )
    with tempfile.TemporaryDirectory(prefix="ircomp-synth-") as tmp:
        folder = Path(tmp)
        _materialize({n: files[n] for n in names}, folder)
        proc = _run([yosys, "-q", "-p", script, "-l", "yosys.log"], folder, timeout, "yosys")
        log = (folder / "yosys.log").read_text() if (folder / "yosys.log").exists() else ""
        if proc.returncode:
            raise ToolError(f"yosys ({flow}) failed:\n{(log or _output(proc))[-TAIL:]}")
        cells = parse_stat((folder / "stat.json").read_text(), top)

    def count(pattern: str) -> int:
        return sum(n for c, n in cells.items() if re.fullmatch(pattern, c))

    return SynthReport(
        flow=flow,
        cells=cells,
        luts=sum(n for c, n in cells.items() if _is_lut(c)),
        ffs=sum(n for c, n in cells.items() if _is_ff(c)),
        muxf7=count("MUXF7"),
        muxf8=count("MUXF8"),
        muxf9=count("MUXF9"),
        carry=count(r"CARRY\d"),
        depth=parse_ltp(log),
        log=log,
    )
