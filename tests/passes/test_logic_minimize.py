"""logic-minimize: logic.table -> logic.lut_network, exact on the (care) rows."""

from __future__ import annotations

import numpy as np
import pytest
from pass_checks import apply, check_pass
from xdsl.dialects.builtin import IntegerType, Signedness, i1, i32

from ircomp.dialects import logic, nn
from ircomp.errors import PipelineError
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program, parse_module, print_module
from ircomp.logic import minimize as mz
from ircomp.logic.network import row_index
from ircomp.pass_manager import available_passes, parse_pipeline
from ircomp.passes.logic_minimize import (
    DEPTH_ATTR,
    LUTS_ATTR,
    ROUTES_ATTR,
    LogicMinimizePass,
    minimize_program,
)

UI2 = IntegerType(2, Signedness.UNSIGNED)
SI3 = IntegerType(3)
WIDTH = 5  # input elements of 2 bits: 1024 input patterns


def _neuron_tables(rng: np.random.Generator, count: int, lo: int, hi: int) -> np.ndarray:
    """Quantized weighted sums of four 2-bit inputs (what a trained neuron looks like)."""
    rows = np.arange(256)
    fields = (rows[:, None] >> (2 * np.arange(4))) & 3
    out = [
        np.clip(fields @ rng.integers(-2, 3, 4) + rng.integers(-2, 3), lo, hi) for _ in range(count)
    ]
    return np.stack(out)


def _program(care: np.ndarray | None = None, out_fmt=UI2, lo: int = 0, hi: int = 3) -> Program:
    rng = np.random.default_rng(4)
    tables = _neuron_tables(rng, 3, lo, hi)
    tables[2] = rng.integers(lo, hi + 1, 256)  # one table without structure
    fanin = np.array([[0, 1, 2, 3], [4, 3, 2, 1], [1, 0, -1, 4], [2, 4, 0, 3], [3, 3, 1, 0]])
    index = np.array([0, 1, 2, 0, 1])
    b = GraphBuilder()
    x = b.input((-1, 2, WIDTH), UI2)  # a dynamic batch of [2, WIDTH] rows
    operands = [
        x,
        b.weight("fc1.fanin", fanin, i32),
        b.weight("fc1.tables", tables, out_fmt),
        b.weight("fc1.table_index", index, i32),
    ]
    if care is not None:
        operands.append(b.weight("fc1.care", care, i1))
    y = b.op(logic.TableOp, operands, out_fmt, name="fc1")
    return b.finish([y])


def _all_inputs() -> list[np.ndarray]:
    """Every input pattern once: [512, 2, WIDTH] codes."""
    rows = np.arange(4**WIDTH)
    codes = (rows[:, None] >> (2 * np.arange(WIDTH))) & 3
    return [codes.reshape(-1, 2, WIDTH)]


@pytest.fixture(autouse=True)
def _fresh_memory_cache() -> None:
    mz.MEMORY_CACHE.clear()


def test_exact_on_every_input_pattern_without_care() -> None:
    before = _program()
    after = check_pass(before, _all_inputs(), "logic-minimize{jobs=1}")
    (network,) = [
        op for op in after.module.walk() if isinstance(op, logic.TableOp | logic.LutNetworkOp)
    ]
    assert isinstance(network, logic.LutNetworkOp)
    assert nn.op_name(network) == "fc1"
    luts = network.attributes[LUTS_ATTR].value.data
    assert luts == network.lut_inputs.type.get_shape()[0]
    assert network.attributes[DEPTH_ATTR].value.data >= 1
    routes = {k: v.value.data for k, v in network.attributes[ROUTES_ATTR].data.items()}
    assert sum(routes.values()) == 3  # three distinct tables
    names = {op.weight_name.data for op in after.module.walk() if isinstance(op, nn.WeightOp)}
    assert names == {"fc1.lut_inputs", "fc1.lut_init", "fc1.outputs"}
    text = print_module(after.module)
    assert print_module(parse_module(text)) == text


def test_signed_results_are_exact() -> None:
    before = _program(out_fmt=SI3, lo=-4, hi=3)
    check_pass(before, _all_inputs(), "logic-minimize{jobs=1 route=abc}")


def test_care_rows_are_kept_and_others_may_change() -> None:
    rng = np.random.default_rng(8)
    care = rng.random((3, 256)) < 0.15
    before = _program(care)
    after = apply(before, "logic-minimize{jobs=1}")
    (x,) = _all_inputs()
    (want,) = run(before, [x])
    (got,) = run(after, [x])
    table = next(op for op in before.module.walk() if isinstance(op, logic.TableOp))
    fanin = before.weights.get(table.fanin.owner.hash.data)
    index = before.weights.get(table.table_index.owner.hash.data)
    codes = np.where(fanin >= 0, x[..., np.where(fanin < 0, 0, fanin)], 0)  # [.., M, F]
    rows = row_index(codes, 2)
    is_care = care[index, rows]
    assert is_care.any() and not is_care.all()
    np.testing.assert_array_equal(got[is_care], want[is_care])
    assert (got != want).any()  # the don't-cares were used
    exact = apply(before, "logic-minimize{jobs=1 use-care=false}")
    np.testing.assert_array_equal(run(exact, [x])[0], want)
    luts = [
        next(op for op in p.module.walk() if isinstance(op, logic.LutNetworkOp))
        .attributes[LUTS_ATTR]
        .value.data
        for p in (after, exact)
    ]
    assert luts[0] < luts[1]


def test_minimize_program_reports_each_layer() -> None:
    before = _program()
    after, reports = minimize_program(before, jobs=2)
    (report,) = reports
    network = next(op for op in after.module.walk() if isinstance(op, logic.LutNetworkOp))
    assert report.name == "fc1" and report.neurons == 5 and report.in_bits == 8
    assert report.luts == network.attributes[LUTS_ATTR].value.data
    assert len(report.tables) == 3 and sum(report.routes().values()) == 3
    summary = report.summary()
    assert summary["tables"][0]["luts"] == report.tables[0].luts
    assert all("total" in t.seconds for t in report.tables)
    # jobs does not change the result
    serial, _ = minimize_program(before, jobs=1)
    assert print_module(serial.module) == print_module(after.module)


def test_pass_is_registered_with_typed_options() -> None:
    assert available_passes()["logic-minimize"] is LogicMinimizePass
    (p,) = parse_pipeline('logic-minimize{route=abc k=5 jobs=2 use-care=false cache-dir="x"}')
    assert p == LogicMinimizePass(route="abc", k=5, jobs=2, use_care=False, cache_dir="x")
    with pytest.raises(PipelineError, match="route"):
        apply(_program(), "logic-minimize{route=quick}")
