"""Verilog backend (target `fpga-lut`): synthesizable Verilog-2001 from a chain of logic layers.

    netlist = emit_verilog(program, top="jsc_s", pipeline_stages=1)  # Netlist; .files, .latency
    bench = write_testbench(program, netlist, count=1000)  # tb_jsc_s.v + $readmemh vectors
    files = {**netlist.files, **bench}                  # write with fileio.write_folder
    lint(files, top=netlist.top)                         # verilator --lint-only -Wall
    simulate(files, top=netlist.top, simulator="iverilog")   # or "verilator"; SimResult
    synthesize(files, top=netlist.top, flow="generic")       # or "xilinx"; SynthReport

`@main` must be a chain of `logic.table` / `logic.lut_network` / `logic.threshold` ops (weights
as `nn.weight`, `nn.reshape` / `nn.flatten` that keep the last axis as wiring).
`logic.lut_network` layers become one assign per LUT from its INIT word; `logic.table` layers the
LogicNets-style baseline, a case ROM per neuron; `logic.threshold` layers an adder of constant
multiples per neuron with comparators against its thresholds. The interface (ports, bit order,
pipelining, testbench) is `spec/logic.md` section 5.
"""

from __future__ import annotations

from ircomp.backends.verilog.chain import Chain, Codes, Layer, logic_chain
from ircomp.backends.verilog.emit import LayerInfo, Netlist, emit, registered_layers
from ircomp.backends.verilog.names import identifier
from ircomp.backends.verilog.testbench import golden_vectors, write_testbench
from ircomp.backends.verilog.tools import (
    LintReport,
    SimResult,
    SynthReport,
    ToolError,
    find_tool,
    lint,
    simulate,
    synthesize,
)
from ircomp.ir.program import Program


def emit_verilog(
    program: Program, *, top: str = "top", pipeline_stages: int = 1, function: str = "main"
) -> Netlist:
    """The Verilog files of `@function` (a chain of logic layers) with top module `top`
    (made a legal identifier: use `Netlist.top`) and a pipeline register after every
    `pipeline_stages` layers and after the last one (0: purely combinational)."""
    return emit(logic_chain(program, function), top, pipeline_stages)


__all__ = [
    "Chain",
    "Codes",
    "Layer",
    "LayerInfo",
    "LintReport",
    "Netlist",
    "SimResult",
    "SynthReport",
    "ToolError",
    "emit_verilog",
    "find_tool",
    "golden_vectors",
    "identifier",
    "lint",
    "logic_chain",
    "registered_layers",
    "simulate",
    "synthesize",
    "write_testbench",
]
