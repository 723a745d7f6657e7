"""Verilog backend (fpga-lut): chains of logic.table / logic.lut_network layers as Verilog-2001,
lint-clean under `verilator -Wall`, bit-exact with the golden interpreter in iverilog and
verilator at every pipeline depth, and counted by yosys (spec/logic.md section 5)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from verilog_helpers import (
    BIT,
    add_network,
    add_random_network,
    add_table,
    mixed_program,
    random_network,
    si,
    ufixp,
    ui,
)

from ircomp.backends.verilog import (
    Codes,
    Netlist,
    emit_verilog,
    golden_vectors,
    identifier,
    lint,
    logic_chain,
    simulate,
    synthesize,
    write_testbench,
)
from ircomp.backends.verilog.emit import _fold_network, simplify_lut
from ircomp.backends.verilog.names import KEYWORDS, is_identifier
from ircomp.backends.verilog.testbench import _hex_lines
from ircomp.backends.verilog.tools import parse_summary
from ircomp.dialects import logic, nn
from ircomp.errors import InputError
from ircomp.fileio import write_folder
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program
from ircomp.logic.network import CONST0, CONST1, LutNetwork, codes_to_bits

PACKAGES = "(Debian packages yosys verilator iverilog: scripts/install-system-deps.sh)"
needs_verilator = pytest.mark.skipif(
    shutil.which("verilator") is None, reason=f"needs verilator {PACKAGES}"
)
needs_iverilog = pytest.mark.skipif(
    shutil.which("iverilog") is None or shutil.which("vvp") is None,
    reason=f"needs iverilog {PACKAGES}",
)
needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason=f"needs yosys {PACKAGES}")


def design(
    program: Program, stages: int, top: str = "net", **bench: object
) -> tuple[Netlist, dict]:
    netlist = emit_verilog(program, top=top, pipeline_stages=stages)
    return netlist, {**netlist.files, **write_testbench(program, netlist, **bench)}


def layered_network(rng: np.random.Generator, inputs: int, widths: list[int], k: int) -> LutNetwork:
    """Levels of k-LUTs, each reading k distinct nodes of the level below (depth len(widths))."""
    lut_inputs, below, node = [], list(range(inputs)), inputs
    for width in widths:
        level = []
        for _ in range(width):
            lut_inputs.append(rng.choice(below, k, replace=False))
            level.append(node)
            node += 1
        below = level
    init = rng.integers(0, 1 << 63, len(lut_inputs), dtype=np.int64).astype(np.uint64)
    init = init * np.uint64(2) + rng.integers(0, 2, len(lut_inputs)).astype(np.uint64)
    if k < 6:
        init &= np.uint64((1 << (1 << k)) - 1)
    return LutNetwork(inputs, np.array(lut_inputs), init, np.array(below))


def network_program(network: LutNetwork, name: str = "net") -> Program:
    b = GraphBuilder()
    x = b.input((1, network.num_inputs), BIT)
    return b.finish([add_network(b, x, network, out=BIT, name=name)])


def rom_program(address_bits: int, out_bits: int, seed: int) -> Program:
    """One neuron reading `address_bits` 1-bit inputs, a random `out_bits`-bit table."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input((1, address_bits), BIT)
    table = rng.integers(0, 1 << out_bits, (1, 1 << address_bits))
    operands = [
        x,
        b.weight("fanin", np.arange(address_bits)[None], si(32)),
        b.weight("tables", table, ui(out_bits)),
        b.weight("table_index", np.zeros(1), si(32)),
    ]
    return b.finish([b.op(logic.TableOp, operands, ui(out_bits), name="rom")])


# ---- the chain and the emitted text (no tools) -------------------------------------------------


def test_chain_of_the_mixed_program() -> None:
    chain = logic_chain(mixed_program())
    assert [layer.op_name for layer in chain.layers] == [
        "logic.table",
        "logic.lut_network",
        "logic.table",
        "logic.lut_network",
    ]
    assert [(lay.input.width, lay.output.width) for lay in chain.layers] == [
        (2, 3),
        (3, 1),
        (1, 3),
        (3, 2),
    ]
    assert [(lay.input.signed, lay.output.signed) for lay in chain.layers] == [
        (False, True),
        (True, False),
        (False, True),
        (True, False),
    ]
    assert chain.input.bits == 12 and chain.output.bits == 6


def _relu_after_table() -> Program:
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input((1, 4), ui(2))
    h = add_table(b, x, rng, neurons=3, fan_in=2, out=si(3))
    return b.finish([b.op(nn.ReluOp, [h], name="act")])


def _branch() -> Program:
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input((1, 4), ui(2))
    add_table(b, x, rng, neurons=3, fan_in=2, out=si(3))
    h = add_table(b, x, rng, neurons=3, fan_in=2, out=si(3), name="second")
    return b.finish([h])


def _row_mixing_reshape() -> Program:
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input((2, 4), ui(2))
    h = add_table(b, x, rng, neurons=4, fan_in=2, out=ui(2))
    h = b.op(nn.ReshapeOp, [h], shape=[1, 8], name="mix")
    return b.finish([add_table(b, h, rng, neurons=2, fan_in=2, out=ui(2))])


def _two_inputs() -> Program:
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input((1, 4), ui(2))
    b.input((1, 4), ui(2))
    return b.finish([add_table(b, x, rng, neurons=3, fan_in=2, out=si(3))])


def _no_logic() -> Program:
    b = GraphBuilder()
    x = b.input((1, 4), ui(2))
    return b.finish([b.op(nn.ReshapeOp, [x], shape=[4])])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_relu_after_table, r"nn\.relu 'act' is not a logic op.*run logic-extract"),
        (_branch, r"logic\.table 'second' does not read the previous layer"),
        (_row_mixing_reshape, r"nn\.reshape 'mix' changes the last axis \(4 -> 8\)"),
        (_two_inputs, r"takes 2 inputs"),
        (_no_logic, r"holds no logic\.table or logic\.lut_network op"),
    ],
)
def test_programs_that_are_no_logic_chain(make, message: str) -> None:
    with pytest.raises(InputError, match=message):
        emit_verilog(make(), top="t")


def test_pipeline_registers_and_latency() -> None:
    program = mixed_program()
    expected = {0: (0, []), 1: (4, [0, 1, 2, 3]), 2: (2, [1, 3]), 3: (2, [2, 3]), 9: (1, [3])}
    for stages, (latency, registered) in expected.items():
        netlist = emit_verilog(program, top="m", pipeline_stages=stages)
        assert netlist.latency == latency
        assert [info.index for info in netlist.layers if info.registered] == registered
        top = netlist.files["m.v"]
        assert len(re.findall(r"always @\(posedge clk\) s\d+_y <=", top)) == latency
        assert len(re.findall(r"^\s+reg v\d+;$", top, re.MULTILINE)) == latency
    with pytest.raises(InputError, match="pipeline_stages must be >= 0"):
        emit_verilog(program, top="m", pipeline_stages=-1)


def test_files_modules_and_roms() -> None:
    program = mixed_program()
    netlist = emit_verilog(program, top="mixed", pipeline_stages=1)
    for name, text in netlist.files.items():
        modules = re.findall(r"^module (\w+)", text, re.MULTILINE)
        assert modules == [name.removesuffix(".v")]  # one module per file, named after it
        assert is_identifier(modules[0])
        assert "`" not in text  # no macros or includes
    chain = logic_chain(program)
    for layer, info in zip(chain.layers, netlist.layers, strict=True):
        if layer.tables is None:
            continue
        used = {int(t) for t in layer.tables.table_index}
        varying = {t for t in used if np.ptp(layer.tables.tables[t]) > 0}
        distinct = {layer.tables.tables[t].tobytes() for t in varying}
        assert info.roms == len(distinct)
        text = netlist.files[f"{info.module}.v"]
        assert len(re.findall(r"_rom\d+ neuron_\d+ ", text)) == sum(
            int(t) in varying for t in layer.tables.table_index
        )
        assert all(f"{info.module}_rom{u}.v" in netlist.files for u in range(info.roms))


def test_deterministic_output() -> None:
    netlist, first = design(mixed_program(), 2, count=64)
    second = design(mixed_program(), 2, count=64)[1]
    assert first == second  # byte-identical text, same file names
    assert list(netlist.files) == sorted(netlist.files)


@given(
    st.integers(1, 6).flatmap(
        lambda k: st.tuples(
            st.integers(0, (1 << (1 << k)) - 1),
            st.lists(st.sampled_from([CONST0, CONST1, 10, 11, 12, 13]), min_size=k, max_size=k),
        )
    ),
    st.integers(0, 15),
)
def test_simplified_lut_computes_the_same(lut: tuple[int, list[int]], values: int) -> None:
    init, inputs = lut
    new_init, variables = simplify_lut(init, inputs)
    assert len(variables) <= len(set(inputs) - {CONST0, CONST1})
    value = {CONST0: 0, CONST1: 1, **{10 + i: (values >> i) & 1 for i in range(4)}}
    old = (init >> sum(value[n] << j for j, n in enumerate(inputs))) & 1
    new = (new_init >> sum(value[n] << j for j, n in enumerate(variables))) & 1
    assert old == new


@pytest.mark.parametrize("seed", range(4))
def test_folded_network_computes_the_same(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 7))
    network = random_network(rng, 12, 60, k, 16, constants=0.2)
    luts, outputs = _fold_network(network)
    assert len(luts) <= network.num_luts
    index = {lut.node: i for i, lut in enumerate(luts)}
    width = max((len(lut.inputs) for lut in luts), default=1)

    def renumber(node: int) -> int:
        return network.num_inputs + index[node] if node >= network.num_inputs else node

    folded = LutNetwork(
        network.num_inputs,
        np.array(
            [
                [renumber(n) for n in lut.inputs] + [CONST0] * (width - len(lut.inputs))
                for lut in luts
            ]
        ).reshape(len(luts), width),
        np.array([lut.init for lut in luts], dtype=np.uint64),
        np.array([renumber(n) for n in outputs]),
    )
    bits = rng.integers(0, 2, (500, 12)).astype(bool)
    np.testing.assert_array_equal(folded.evaluate(bits), network.evaluate(bits))


HOSTILE = [
    "module",
    "wire",
    "1abc",
    "",
    "a b/c-d",
    "\u00e9\u00e8",
    "x" * 300,
    "fc-1",
    "fc.1",
    "_",
    "tb_net",
    "\\escaped ",
    "end*/",
    "logic",
]


def test_identifiers_are_legal_and_unique() -> None:
    for name in HOSTILE:
        ident = identifier(name, "top")
        assert is_identifier(ident) and ident not in KEYWORDS, (name, ident)
        assert len(ident) <= 60
    assert identifier("module") == "module_"
    assert identifier("9lives", "top") == "top_9lives"
    assert identifier("blocks.0/fc-1") == "blocks_0_fc_1"
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    h = b.input((1, 4), ui(2))
    for name in HOSTILE:
        h = add_table(b, h, rng, neurons=4, fan_in=2, out=ui(2), name=name or None)
    netlist = emit_verilog(b.finish([h]), top="module", pipeline_stages=1)
    assert netlist.top == "module_"
    modules = [info.module for info in netlist.layers]
    assert len(set(modules)) == len(modules) == len(HOSTILE)
    assert all(is_identifier(m) for m in modules)
    assert len(set(netlist.files)) == len(netlist.files)


def test_hex_vectors_hold_the_raw_bits() -> None:
    program = mixed_program()
    netlist = emit_verilog(program, top="m", pipeline_stages=1)
    rows = np.array([[0, 1, 2, 3, 3, 0], [3, 3, 3, 3, 3, 3]])
    files = write_testbench(program, netlist, rows)
    lines = files["m_inputs.hex"].splitlines()
    assert lines[1:] == ["3e4", "fff"]  # element i in bits 2i, 2i+1: 1<<2 | 2<<4 | 3<<6 | 3<<8
    expected = golden_vectors(program, logic_chain(program), rows)
    np.testing.assert_array_equal(
        expected, np.concatenate([run(program, [rows[i : i + 1]])[0] for i in range(2)])
    )
    out = files["m_expected.hex"].splitlines()[1:]
    bits = codes_to_bits(expected, 2)
    assert [int(v, 16) for v in out] == [int("".join(map(str, map(int, r[::-1]))), 2) for r in bits]
    assert _hex_lines(np.array([[-1, 0, -4]]), Codes(3, 3, True)) == ["107"]


def test_vectors_of_a_batched_program() -> None:
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input((-1, 5), si(2))
    h = add_table(b, x, rng, neurons=6, fan_in=2, out=BIT)
    program = b.finish([add_random_network(b, h, rng, codes=4, out=si(2), luts=10, k=3)])
    rows = rng.integers(-2, 2, (37, 5))
    chain = logic_chain(program)
    np.testing.assert_array_equal(golden_vectors(program, chain, rows), run(program, [rows])[0])
    netlist = emit_verilog(program, top="b")
    files = write_testbench(program, netlist, rows.reshape(37, 1, 5))
    assert len(files["b_inputs.hex"].splitlines()) == 38
    if shutil.which("iverilog") and shutil.which("vvp"):
        result = simulate({**netlist.files, **files}, top="b")
        assert (result.passed, result.total) == (37, 37), result.output
    with pytest.raises(InputError, match="last axis of 5 codes"):
        write_testbench(program, netlist, rows[:, :4])
    with pytest.raises(InputError, match="not emitted from this program"):
        write_testbench(mixed_program(), netlist)


def test_default_vectors_are_exhaustive_when_few() -> None:
    program = network_program(layered_network(np.random.default_rng(0), 8, [6, 3], 4))
    netlist = emit_verilog(program, top="e")
    files = write_testbench(program, netlist, count=256)
    assert sorted(files["e_inputs.hex"].splitlines()[1:]) == [f"{i:02x}" for i in range(256)]
    files = write_testbench(program, netlist, count=100, seed=5)
    assert len(files["e_inputs.hex"].splitlines()) == 101


def test_summary_line() -> None:
    assert parse_summary("MISMATCH ...\nFAIL 3/7\n") == (3, 7)
    assert parse_summary("PASS 12/12\n- tb.v:3: Verilog $finish\n") == (12, 12)
    assert parse_summary("nothing") is None


# ---- tools ------------------------------------------------------------------------------------


@needs_verilator
@pytest.mark.parametrize("stages", [0, 1, 2])
def test_lint_clean(stages: int) -> None:
    netlist, files = design(mixed_program(), stages, top="mixed")
    report = lint(files, top=netlist.top)
    assert report.clean, report.output
    assert "lint_off" not in "".join(netlist.files.values())  # no waivers


@needs_verilator
@needs_iverilog
@pytest.mark.parametrize(
    ("top", "legal"),
    [
        ("x", "x_top"),
        ("clk", "clk_top"),
        ("dut", "dut_top"),
        ("tb_x", "tb_x"),
        ("n5", "n5_top"),
        ("layer_0", "layer_0_top"),
        ("u", "u"),
        ("module", "module_"),
        ("T1", "T1"),
    ],
)
def test_top_names_that_clash_with_generated_ones(top: str, legal: str) -> None:
    netlist, files = design(mixed_program(), 1, top=top, count=20)
    assert netlist.top == legal
    assert lint(files, top=netlist.top).clean
    assert simulate(files, top=netlist.top).ok


@needs_verilator
def test_lint_reports_warnings() -> None:
    files = design(mixed_program(), 1, top="mixed")[1]
    files["mixed.v"] = files["mixed.v"].replace("    assign y = s4_y;", "    assign y = s4_y[4:0];")
    report = lint(files, top="mixed")
    assert not report.clean
    assert any("WIDTH" in w for w in report.warnings)


@needs_iverilog
@pytest.mark.parametrize("stages", [0, 1, 2])
def test_iverilog_bit_exact(stages: int, tmp_path: Path) -> None:
    netlist, files = design(mixed_program(seed=stages), stages, top="mixed", count=300)
    result = simulate(files, top=netlist.top, simulator="iverilog")
    assert (result.passed, result.total) == (300, 300), result.output
    assert netlist.latency == {0: 0, 1: 4, 2: 2}[stages]
    # The same from a written folder.
    folder = write_folder(tmp_path / "out", files)
    assert simulate(folder, top=netlist.top).ok


@needs_iverilog
@pytest.mark.parametrize(
    ("fmt_in", "codes", "fmt_out", "k"),
    [(BIT, 9, si(3), 6), (ui(3), 3, BIT, 2), (si(2), 4, ufixp(3, 2), 5), (BIT, 7, si(2), 1)],
)
def test_iverilog_exhaustive_lut_networks(fmt_in, codes: int, fmt_out, k: int) -> None:
    rng = np.random.default_rng(k)
    b = GraphBuilder()
    x = b.input((1, codes), fmt_in)
    h = add_random_network(b, x, rng, codes=4, out=fmt_out, luts=30, k=k, name="n0")
    h = add_random_network(b, h, rng, codes=3, out=fmt_in, luts=20, k=k, name="n1")
    program = b.finish([h])
    netlist, files = design(program, 1, top="ex", count=1 << 9)
    total = 1 << netlist.input_bits
    result = simulate(files, top="ex")
    assert (result.passed, result.total) == (total, total), result.output


@needs_iverilog
def test_testbench_catches_wrong_values_latency_and_reset() -> None:
    program = mixed_program()
    files = design(program, 2, top="m", count=40)[1]
    lines = files["m_expected.hex"].splitlines()
    lines[5] = f"{int(lines[5], 16) ^ 1:02x}"
    wrong = {**files, "m_expected.hex": "\n".join(lines) + "\n"}
    result = simulate(wrong, top="m")
    assert (result.passed, result.total) == (39, 40)
    assert "MISMATCH vector 4" in result.output and "FAIL 39/40" in result.output

    slower = emit_verilog(program, top="m", pipeline_stages=1).files  # latency 4, bench says 2
    result = simulate({**files, **slower}, top="m")
    assert (
        result.passed == 0 and "LATENCY vector 0: valid after 4 cycles, expected 2" in result.output
    )

    no_reset = {**files, "m.v": files["m.v"].replace("if (rst) begin", "if (1'b0) begin")}
    assert not simulate(no_reset, top="m").ok


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("stages", [0, 1, 2])
def test_verilator_bit_exact(stages: int) -> None:
    netlist, files = design(mixed_program(seed=stages), stages, top="mixed", count=300)
    result = simulate(files, top=netlist.top, simulator="verilator")
    assert (result.passed, result.total) == (300, 300), result.output


@needs_verilator
def test_verilator_catches_a_mismatch() -> None:
    files = design(mixed_program(), 1, top="m", count=50)[1]
    lines = files["m_expected.hex"].splitlines()
    lines[-1] = f"{int(lines[-1], 16) ^ 0x20:02x}"
    files["m_expected.hex"] = "\n".join(lines) + "\n"
    result = simulate(files, top="m", simulator="verilator")
    assert (result.passed, result.total) == (49, 50), result.output


@needs_yosys
@pytest.mark.parametrize(("k", "widths"), [(6, [30, 10]), (6, [24, 24, 12]), (4, [32, 16])])
def test_generic_lut_count_of_a_known_network(k: int, widths: list[int]) -> None:
    network = layered_network(np.random.default_rng(k), 48, widths, k)
    program = network_program(network)
    netlist = emit_verilog(program, top="n", pipeline_stages=0)
    (info,) = netlist.layers
    assert info.luts <= network.num_luts and info.depth == len(widths)
    report = synthesize(netlist.files, top="n", flow="generic")
    assert report.cells == {"$lut": report.luts}
    assert report.luts == info.luts  # every LUT back as one LUT6, none merged or split
    assert report.depth == info.depth and report.ffs == 0


@needs_yosys
def test_generic_flip_flops_of_the_pipeline() -> None:
    network = layered_network(np.random.default_rng(7), 24, [20, 12], 6)
    program = network_program(network)
    netlist = emit_verilog(program, top="p", pipeline_stages=1)
    report = synthesize(netlist.files, top="p", flow="generic")
    assert report.ffs == 12 + 1  # the output register and one valid stage
    assert report.luts == netlist.layers[0].luts and report.depth == 2


@needs_yosys
def test_one_layer_of_a_build_folder_synthesizes(tmp_path: Path) -> None:
    netlist, files = design(mixed_program(), 1, top="m", count=8)
    write_folder(tmp_path / "build", files)
    layer = netlist.layers[0].module
    report = synthesize(tmp_path / "build", top=layer, flow="generic")
    assert report.luts > 0 and report.ffs == 0  # the layer alone: no pipeline registers


@needs_yosys
@pytest.mark.parametrize(("x", "y"), [(6, 1), (7, 2), (8, 3), (9, 1), (10, 2)])
def test_case_rom_reproduces_the_logicnets_cost(x: int, y: int) -> None:
    netlist = emit_verilog(rom_program(x, y, seed=x * 10 + y), top="rom", pipeline_stages=0)
    assert netlist.layers[0].roms == 1
    report = synthesize(netlist.files, top="rom")
    assert report.luts == round(y / 3 * (2 ** (x - 4) - (-1) ** x))


@needs_yosys
@pytest.mark.slow
def test_xilinx_flow() -> None:
    network = layered_network(np.random.default_rng(7), 24, [20, 12], 6)
    netlist = emit_verilog(network_program(network), top="p", pipeline_stages=1)
    report = synthesize(netlist.files, top="p", flow="xilinx")
    assert report.ffs == 13 and set(report.cells) >= {"FDRE", "LUT6"}
    assert report.luts == sum(n for c, n in report.cells.items() if c.startswith("LUT"))
    assert report.luts >= netlist.layers[0].luts and report.depth >= 2
    rom = emit_verilog(rom_program(9, 2, seed=1), top="rom", pipeline_stages=0)
    report = synthesize(rom.files, top="rom", flow="xilinx")
    assert report.muxf7 > 0 and report.ffs == 0 and report.depth >= 2


def test_missing_tools_name_the_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = design(mixed_program(), 1, top="m", count=8)[1]
    monkeypatch.setenv("PATH", str(tmp_path))
    for call, tool in [
        (lambda: lint(files, top="m"), "verilator"),
        (lambda: simulate(files, top="m"), "iverilog"),
        (lambda: simulate(files, top="m", simulator="verilator"), "verilator"),
        (lambda: synthesize(files, top="m"), "yosys"),
    ]:
        with pytest.raises(
            InputError, match=rf"`{tool}` was not found.*yosys, verilator and iverilog"
        ):
            call()
    with pytest.raises(InputError, match="unknown simulator"):
        simulate(files, top="m", simulator="modelsim")
    with pytest.raises(InputError, match="unknown synthesis flow"):
        synthesize(files, top="m", flow="intel")
    with pytest.raises(InputError, match="not a Verilog identifier"):
        lint(files, top="m; rm -rf /")


def test_stop_running_tools_kills_tools_of_other_threads(tmp_path: Path) -> None:
    """What an interrupted build relies on: yosys runs in worker threads end at once."""
    import threading
    import time

    from ircomp.backends.verilog import tools

    results: list[int] = []
    worker = threading.Thread(
        target=lambda: results.append(tools._run(["sleep", "30"], tmp_path, 60, "sleep").returncode)
    )
    start = time.monotonic()
    worker.start()
    while not tools._RUNNING and time.monotonic() - start < 10:
        time.sleep(0.01)
    tools.stop_running_tools()
    worker.join(timeout=10)
    assert results == [-9] and time.monotonic() - start < 10
    assert not tools._RUNNING
