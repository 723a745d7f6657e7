"""Verilog backend on logic.threshold layers (spec/logic.md section 6.2): adders of constant
multiples and comparators, alone and mixed with logic.table / logic.lut_network layers;
lint-clean, bit-exact with the golden interpreter in iverilog and verilator, counted by yosys."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from logic_nets import integer_layer, trained_like_layer, uint
from verilog_helpers import add_random_network, fixp
from xdsl.dialects.builtin import IntegerType, i32
from xdsl.ir import Attribute

from ircomp.backends.verilog import (
    Netlist,
    emit_verilog,
    lint,
    logic_chain,
    simulate,
    synthesize,
    write_testbench,
)
from ircomp.backends.verilog.emit import threshold_neurons
from ircomp.backends.verilog.names import top_identifier
from ircomp.dialects import logic, nn
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program
from ircomp.pass_manager import PassManager, parse_pipeline

PACKAGES = "(Debian packages yosys verilator iverilog: scripts/install-system-deps.sh)"
needs_verilator = pytest.mark.skipif(
    shutil.which("verilator") is None, reason=f"needs verilator {PACKAGES}"
)
needs_iverilog = pytest.mark.skipif(
    shutil.which("iverilog") is None or shutil.which("vvp") is None,
    reason=f"needs iverilog {PACKAGES}",
)
needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason=f"needs yosys {PACKAGES}")


def apply(program: Program, pipeline: str) -> Program:
    return PassManager(parse_pipeline(pipeline)).run(program)


def design(
    program: Program, stages: int, top: str = "thr", **bench: object
) -> tuple[Netlist, dict]:
    netlist = emit_verilog(program, top=top, pipeline_stages=stages)
    return netlist, {**netlist.files, **write_testbench(program, netlist, **bench)}


def threshold_program(seed: int = 0, **layer: object) -> Program:
    """An integer layer realized as thresholds (codes in, codes out)."""
    return apply(integer_layer(seed, **layer), "logic-extract{realize=threshold}")  # type: ignore[arg-type]


def mixed_program(seed: int = 0) -> Program:
    """ui2 [1,16] -> threshold (fan-in 7) -> ui2 [1,8] -> table (fan-in 3) -> i3 [1,6] ->
    reshape -> lut_network -> ui1 [1,1,8] -> threshold (fan-in 8 over bits) -> i3."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input((1, 16), uint(2))
    h = x
    for n, (inp, out, fan_in, fmt) in enumerate([(16, 8, 7, uint(2)), (8, 6, 3, IntegerType(3))]):
        w = np.zeros((out, inp), np.int64)
        for j in range(out):
            w[j, rng.choice(inp, fan_in, replace=False)] = rng.choice([-3, -2, -1, 1, 2, 3], fan_in)
        acc = b.op(
            nn.LinearOp,
            [
                h,
                b.weight(f"fc{n}.w", w, IntegerType(8)),
                b.weight(f"fc{n}.b", rng.integers(-3, 4, out), i32),
            ],
            i32,
            name=f"fc{n}",
        )
        scale = list(rng.uniform(0.5, 1.5, out) / np.sqrt(fan_in))
        h = b.op(nn.RequantizeOp, [acc], fmt, scale=scale, mode="onnx")
    h = b.op(nn.ReshapeOp, [h], shape=[1, 1, 6])
    h = add_random_network(b, h, rng, codes=8, out=uint(1), luts=30, k=6, name="net")
    h = b.op(nn.ReshapeOp, [h], shape=[1, 8])
    w = b.weight("fc2.w", rng.choice([-2, -1, 1, 2], (3, 8)), IntegerType(8))
    acc = b.op(nn.LinearOp, [h, w, b.weight("fc2.b", np.array([0, 1, -1]), i32)], i32, name="fc2")
    h = b.op(nn.RequantizeOp, [acc], IntegerType(3), scale=[1.0], mode="onnx")
    program = b.finish([h])
    return apply(program, "logic-extract{max-inputs=6}")


# ---- the chain and the emitted text (no tools) -------------------------------------------------


def test_chain_of_a_mixed_program() -> None:
    program = mixed_program()
    chain = logic_chain(program)
    assert [layer.op_name for layer in chain.layers] == [
        "logic.threshold",
        "logic.table",
        "logic.lut_network",
        "logic.threshold",
    ]
    first = chain.layers[0].threshold
    assert first is not None
    assert np.all(np.diff(first.thresholds, axis=1) >= 0)
    assert np.all(first.weights[first.fanin < 0] == 0)
    assert (chain.layers[3].input.width, chain.layers[3].output.signed) == (1, True)


def _model(program: Program, x: np.ndarray) -> np.ndarray:
    """What the emitted arithmetic computes, from `threshold_neurons` (no simulator)."""
    (layer,) = logic_chain(program).layers
    out = layer.output
    y = np.zeros((len(x), out.count), dtype=np.int64)
    for j, neuron in enumerate(threshold_neurons(layer)):
        s = sum(w * x[:, e] for e, w in neuron.terms) if neuron.terms else np.zeros(len(x), int)
        assert np.all((neuron.low <= s) & (s <= neuron.high))
        level = np.searchsorted(np.asarray(neuron.cuts, dtype=np.int64), s, side="right")
        raw = np.asarray(neuron.levels)[level] & ((1 << out.width) - 1)
        if out.signed:
            raw = np.where(raw >= 1 << (out.width - 1), raw - (1 << out.width), raw)
        y[:, j] = raw
    return y


@pytest.mark.parametrize(
    ("bits", "signed_in", "out"),
    [
        (2, False, uint(2)),
        (1, False, IntegerType(3)),
        (3, True, IntegerType(4)),
        (4, False, uint(1)),
    ],
)
def test_neurons_reduced_for_hardware_compute_the_layer(bits: int, signed_in: bool, out) -> None:
    program = threshold_program(1, inputs=20, fan_in=9, bits_in=bits, signed_in=signed_in, out=out)
    rng = np.random.default_rng(1)
    low = -(1 << (bits - 1)) if signed_in else 0
    x = rng.integers(low, low + (1 << bits), (300, 20))
    x[0], x[1] = low, low + (1 << bits) - 1
    expected = np.concatenate([run(program, [row[None]])[0] for row in x])
    np.testing.assert_array_equal(_model(program, x), expected)


def _hand_threshold(thresholds: list[list[int]], base: list[int], out: Attribute) -> Program:
    """ui2 [1,3] -> logic.threshold of 3 neurons: sums of x0 + 2 x1 - x2 in [-3, 9]."""
    b = GraphBuilder()
    x = b.input((1, 3), uint(2))
    fanin = [[0, 1, 2], [0, 1, 2], [0, 1, 2]]
    operands = [
        x,
        b.weight("f", np.array(fanin), i32),
        b.weight("w", np.array([[1, 2, -1], [1, 2, -1], [0, 0, 0]]), IntegerType(8)),
        b.weight("t", np.array(thresholds), i32),
        b.weight("b", np.array(base), out),
    ]
    return b.finish([b.op(logic.ThresholdOp, operands, out, name="hand")])


def test_folded_thresholds_and_wrapping_levels() -> None:
    # neuron 0: two thresholds below the range (always passed), a double step, one never
    # reached; neuron 1: thresholds in any order, the count wraps past the largest code;
    # neuron 2: no inputs, a constant.
    program = _hand_threshold(
        [[-10, -3, 2, 2, 50], [5, 1, 3, 9, -4], [0, 1, 9, 9, 9]], [-4, 1, -4], IntegerType(3)
    )
    (layer,) = logic_chain(program).layers
    neurons = threshold_neurons(layer)
    assert neurons[0].cuts == (2,) and neurons[0].levels == (-2, 0)
    assert neurons[1].cuts == (1, 3, 5, 9) and neurons[1].levels == (2, 3, 4, 5, 6)
    assert neurons[2].constant and neurons[2].levels == (-3,)
    x = np.array(np.meshgrid(*[np.arange(4)] * 3)).reshape(3, -1).T
    expected = np.concatenate([run(program, [row[None]])[0] for row in x])
    np.testing.assert_array_equal(_model(program, x), expected)
    assert set(expected[:, 1].tolist()) == {2, 3, -4, -3, -2}  # 1 + 3..5 wrap in i3


def test_emitted_text_and_layer_info() -> None:
    program = threshold_program(2, inputs=16, neurons=4, fan_in=8)
    netlist = emit_verilog(program, top="t", pipeline_stages=1)
    (info,) = netlist.layers
    text = netlist.files[f"{info.module}.v"]
    assert info.op == "logic.threshold" and info.luts == info.roms == 0
    assert info.comparators == text.count(" >= ") > 0
    assert info.acc_bits == max(int(w) for w in _widths(text))
    assert "$signed" not in text and " - " not in text  # an unsigned sum of positive multiples
    # 3 codes of 2 bits: partial sums tabulated, one 6-input LUT per bit
    partial_sum_bits = re.findall(r"assign ps\d+_\d+\[\d+\] = (.*);", text)
    assert max(len(set(re.findall(r"x\[\d+\]", bit))) for bit in partial_sum_bits) == 6
    report = netlist.report()["layers"][0]
    assert (report["comparators"], report["acc_bits"]) == (info.comparators, info.acc_bits)


def _widths(text: str) -> list[int]:
    import re

    return [int(m) + 1 for m in re.findall(r"wire \[(\d+):0\] acc\d+ =", text)]


def test_generated_names_are_reserved_for_the_top() -> None:
    for name in ("acc3", "ge0_1", "ps2_0"):
        assert top_identifier(name) == f"{name}_top"


# ---- tools ------------------------------------------------------------------------------------

CASES = [
    # (bits_in, signed_in, output format, fan-in)
    (2, False, uint(2), 8),
    (1, False, IntegerType(3), 12),
    (3, True, IntegerType(4), 5),
    (4, False, uint(1), 4),
    (4, True, fixp(3, 1), 6),
    (2, True, uint(3), 32),
]


@needs_verilator
@pytest.mark.parametrize("stages", [0, 1, 2])
def test_lint_clean_mixed(stages: int) -> None:
    netlist, files = design(mixed_program(), stages, top="mixed")
    report = lint(files, top=netlist.top)
    assert report.clean, report.output


@needs_verilator
@pytest.mark.parametrize(("bits", "signed_in", "out", "fan_in"), CASES)
def test_lint_clean_threshold_layers(bits: int, signed_in: bool, out, fan_in: int) -> None:
    program = threshold_program(
        3, inputs=fan_in + 3, fan_in=fan_in, bits_in=bits, signed_in=signed_in, out=out
    )
    netlist, files = design(program, 1)
    report = lint(files, top=netlist.top)
    assert report.clean, report.output


@needs_iverilog
@pytest.mark.parametrize(("bits", "signed_in", "out", "fan_in"), CASES)
def test_iverilog_bit_exact_threshold_layers(bits: int, signed_in: bool, out, fan_in: int) -> None:
    program = threshold_program(
        4, inputs=fan_in + 3, fan_in=fan_in, bits_in=bits, signed_in=signed_in, out=out
    )
    netlist, files = design(program, 1, count=400)
    result = simulate(files, top=netlist.top, simulator="iverilog")
    assert result.ok and result.total == min(400, 1 << netlist.input_bits), result.output


@needs_iverilog
def test_iverilog_exhaustive_hand_layer() -> None:
    program = _hand_threshold(
        [[-10, -3, 2, 2, 50], [5, 1, 3, 9, -4], [0, 1, 9, 9, 9]], [-4, 1, -4], IntegerType(3)
    )
    netlist, files = design(program, 0, count=64)
    result = simulate(files, top=netlist.top)
    assert (result.passed, result.total) == (64, 64), result.output


@needs_iverilog
@pytest.mark.parametrize("stages", [0, 1, 2])
def test_iverilog_bit_exact_mixed(stages: int) -> None:
    netlist, files = design(mixed_program(seed=stages), stages, top="mixed", count=300)
    result = simulate(files, top=netlist.top, simulator="iverilog")
    assert (result.passed, result.total) == (300, 300), result.output
    assert netlist.latency == {0: 0, 1: 4, 2: 2}[stages]


@needs_iverilog
def test_testbench_catches_a_wrong_threshold() -> None:
    program = threshold_program(5, inputs=12, fan_in=8)
    netlist, files = design(program, 1, count=200)
    module = netlist.files[f"{netlist.layers[0].module}.v"]
    broken = module.replace("wire ge0_1 = acc0 >= ", "wire ge0_1 = acc0 > ", 1)
    assert broken != module
    result = simulate({**files, f"{netlist.layers[0].module}.v": broken}, top=netlist.top)
    assert not result.ok and "MISMATCH" in result.output


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("stages", [0, 1])
def test_verilator_bit_exact_mixed(stages: int) -> None:
    netlist, files = design(mixed_program(seed=stages), stages, top="mixed", count=300)
    result = simulate(files, top=netlist.top, simulator="verilator")
    assert (result.passed, result.total) == (300, 300), result.output


@needs_verilator
@pytest.mark.slow
def test_verilator_bit_exact_threshold_layer() -> None:
    program = threshold_program(6, inputs=40, fan_in=32, bits_in=2, out=IntegerType(3))
    netlist, files = design(program, 1, count=300)
    result = simulate(files, top=netlist.top, simulator="verilator")
    assert (result.passed, result.total) == (300, 300), result.output


@needs_yosys
def test_generic_luts_table_versus_threshold(record_property: pytest.RecordProperty) -> None:
    """The same trained-like layer (4 neurons, 2-bit codes in and out) at fan-in 6 (12-bit
    tables): the threshold realization is less than half the case ROMs (which yosys already
    compresses far below LogicNets' random-table cost: the tables are mostly the ReLU's 0)."""
    program = trained_like_layer(0, fan_in=6, neurons=4)
    luts = {}
    for realize in ("table", "threshold"):
        logic_program = apply(program, f"logic-extract{{realize={realize}}}")
        netlist = emit_verilog(logic_program, top="cmp", pipeline_stages=0)
        report = synthesize(netlist.files, top="cmp", flow="generic")
        assert report.ffs == 0
        luts[realize] = report.luts
        record_property(f"luts_{realize}", report.luts)
    assert luts["threshold"] * 2 < luts["table"], luts


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("fan_in", [4, 8, 16])
def test_generic_luts_of_threshold_layers(
    fan_in: int, record_property: pytest.RecordProperty
) -> None:
    program = apply(
        trained_like_layer(0, fan_in=fan_in, neurons=8), "logic-extract{realize=threshold}"
    )
    netlist = emit_verilog(program, top="thr", pipeline_stages=0)
    report = synthesize(netlist.files, top="thr", flow="generic")
    record_property("luts", report.luts)
    record_property("depth", report.depth)
    # adders grow about linearly with the fan-in, never like 2^(2F) tables
    assert 0 < report.luts <= 8 * 12 * fan_in, report.luts
