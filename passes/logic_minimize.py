"""logic-minimize: turn each `logic.table` into a `logic.lut_network` of k-input LUTs.

Each distinct truth table of a layer is minimized once (`ircomp.logic.minimize`: ABC straight
on the truth table, Espresso with don't-cares then ABC, or both), in parallel and cached; the
networks are instantiated per neuron on the layer's input wires and joined into one network.
`minimize_program` runs the pass and returns the per-layer report the build driver prints.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, IntegerAttr, ModuleOp, i32, i64
from xdsl.rewriter import InsertPoint, Rewriter

from ircomp.dialects import logic, nn
from ircomp.errors import InputError
from ircomp.ir.program import Program
from ircomp.logic.minimize import (
    MinimizationError,
    MinimizedFunction,
    MinimizeOptions,
    minimize_tables,
    output_bits,
    simplify_network,
)
from ircomp.logic.network import CONST0, LutNetwork, row_index
from ircomp.pass_manager import IrcompPass, PassManager
from ircomp.passes._common import erase_unused_weights, new_weight, stored_array, weight_op

# Discardable attributes the pass puts on each `logic.lut_network` (spec/logic.md §4).
LUTS_ATTR = "logic.luts"
DEPTH_ATTR = "logic.depth"
ROUTES_ATTR = "logic.routes"
ROUTE_NAMES = ("trivial", "mux", "abc", "espresso")
SANITY_SAMPLES = 32


@dataclass(frozen=True)
class LayerReport:
    """What `logic-minimize` did to one `logic.table`.

    `luts` / `depth`: the layer's network after joining the neurons (identical LUTs of
    neurons reading the same wires shared, constant inputs folded); `tables`: the result of
    each distinct table (LUTs, depth, route, candidates, seconds per stage).
    """

    name: str
    neurons: int
    in_bits: int
    out_bits: int
    luts: int
    depth: int
    tables: tuple[MinimizedFunction, ...]
    seconds: float

    def routes(self) -> dict[str, int]:
        """How many distinct tables each route produced."""
        counts = dict.fromkeys(ROUTE_NAMES, 0)
        for t in self.tables:
            counts[t.route] = counts.get(t.route, 0) + 1
        return counts

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "name": self.name,
            "neurons": self.neurons,
            "in_bits": self.in_bits,
            "out_bits": self.out_bits,
            "luts": self.luts,
            "depth": self.depth,
            "routes": self.routes(),
            "tables": [t.summary() for t in self.tables],
            "seconds": round(self.seconds, 4),
        }


_REPORTS: contextvars.ContextVar[list[LayerReport] | None] = contextvars.ContextVar(
    "logic_minimize_reports", default=None
)


def _array(ctx: Context, op: logic.TableOp, operand: int, what: str) -> np.ndarray:
    owner = weight_op(op.operands[operand])
    if owner is None:
        raise InputError(f"{op.name}: {what} must be an nn.weight (a constant) to minimize it")
    return np.asarray(stored_array(ctx, owner))


def _layer_network(
    fanin: np.ndarray,
    table_index: np.ndarray,
    nets: dict[int, LutNetwork],
    width_in: int,
    num_inputs: int,
) -> LutNetwork:
    """Neuron j's copy of its table's network, input `k*w_in + b` on wire `fanin[j,k]*w_in + b`
    (a -1 slot reads constant 0), all neurons side by side in order."""
    bits = np.arange(width_in)
    parts = []
    for j in range(len(fanin)):
        slots = fanin[j].astype(np.int64)
        wires = np.where(slots[:, None] >= 0, slots[:, None] * width_in + bits[None, :], CONST0)
        parts.append((nets[int(table_index[j])], wires.reshape(-1)))
    return LutNetwork.concatenate(parts, num_inputs)


def _sanity_check(
    network: LutNetwork,
    fanin: np.ndarray,
    tables: np.ndarray,
    table_index: np.ndarray,
    care: np.ndarray | None,
    width_in: int,
    width_out: int,
    width: int,
) -> None:
    """The joined layer against the table lookup on random inputs (care rows only): catches a
    wrong wiring; each table's network was already checked exhaustively."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 1 << width_in, size=(SANITY_SAMPLES, width))
    slots = np.where(fanin < 0, 0, fanin)
    picked = np.where(fanin[None] >= 0, codes[:, slots], 0)  # [S, M, F]
    rows = row_index(picked, width_in)  # [S, M]
    expected = output_bits(tables[table_index[None, :], rows].reshape(-1), width_out)
    expected = expected.T.reshape(SANITY_SAMPLES, -1, width_out)  # [S, M, w_out]
    inputs = (
        ((codes[..., None] >> np.arange(width_in)) & 1).astype(bool).reshape(SANITY_SAMPLES, -1)
    )
    got = network.evaluate(inputs).reshape(SANITY_SAMPLES, -1, width_out)
    checked = np.ones(rows.shape, dtype=bool) if care is None else care[table_index[None], rows]
    wrong = np.any(got != expected, axis=-1) & checked
    if wrong.any():
        sample, neuron = (int(v) for v in np.argwhere(wrong)[0])
        raise MinimizationError(
            f"logic-minimize: the joined network of neuron {neuron} differs from its table "
            f"(row {int(rows[sample, neuron])})"
        )


def minimize_layer(
    ctx: Context, op: logic.TableOp, options: MinimizeOptions, use_care: bool
) -> tuple[LutNetwork, LayerReport]:
    """The LUT network of one `logic.table` op and its report (does not change the IR)."""
    start = time.perf_counter()
    name = nn.op_name(op) or "logic"
    width_in, width_out = op.widths()
    width = op.input.type.get_shape()[-1]  # type: ignore[union-attr]
    if width < 0:
        raise InputError(f"{op.name} '{name}': the input's last axis must be static")
    fanin = _array(ctx, op, 1, "fanin").astype(np.int64)
    tables = _array(ctx, op, 2, "tables")
    table_index = _array(ctx, op, 3, "table_index").astype(np.int64)
    care = None
    if use_care and op.care is not None:
        care = _array(ctx, op, 4, "care").astype(bool)
    if fanin.size and (fanin.min() < -1 or fanin.max() >= width):
        raise InputError(f"{op.name} '{name}': fan-in indices must be -1 or in 0..{width - 1}")
    if table_index.size and (table_index.min() < 0 or table_index.max() >= len(tables)):
        raise InputError(f"{op.name} '{name}': table_index must be in 0..{len(tables) - 1}")
    in_bits = width_in * fanin.shape[1]
    used = sorted({int(u) for u in table_index})
    results = minimize_tables(
        tables[used],
        in_bits,
        width_out,
        None if care is None else care[used],
        options,
        label=f"logic-minimize {name}",
    )
    nets = {u: r.network for u, r in zip(used, results, strict=True)}
    layer = _layer_network(fanin, table_index, nets, width_in, width * width_in)
    layer = simplify_network(layer, options.k)
    _sanity_check(layer, fanin, tables, table_index, care, width_in, width_out, width)
    report = LayerReport(
        name=name,
        neurons=len(fanin),
        in_bits=in_bits,
        out_bits=width_out,
        luts=layer.num_luts,
        depth=layer.depth(),
        tables=tuple(results),
        seconds=time.perf_counter() - start,
    )
    return layer, report


def _replace(ctx: Context, op: logic.TableOp, layer: LutNetwork, report: LayerReport) -> None:
    name = report.name
    weights = [
        new_weight(ctx, f"{name}.lut_inputs", layer.lut_inputs.astype(np.int32), i32),
        new_weight(ctx, f"{name}.lut_init", layer.init_halves(), logic.UI32),
        new_weight(ctx, f"{name}.outputs", layer.outputs.astype(np.int32), i32),
    ]
    network = nn.build(logic.LutNetworkOp, [op.input, *(w.result for w in weights)], op.result.type)
    if nn.NAME_ATTR in op.attributes:
        network.attributes[nn.NAME_ATTR] = op.attributes[nn.NAME_ATTR]
    network.attributes[LUTS_ATTR] = IntegerAttr(report.luts, i64)
    network.attributes[DEPTH_ATTR] = IntegerAttr(report.depth, i64)
    network.attributes[ROUTES_ATTR] = DictionaryAttr(
        {route: IntegerAttr(count, i64) for route, count in report.routes().items()}
    )
    Rewriter.insert_op([*weights, network], InsertPoint.before(op))
    op.result.replace_all_uses_with(network.result)
    old = list(op.operands[1:])
    Rewriter.erase_op(op)
    erase_unused_weights(old)


def minimize_module(
    ctx: Context, module: ModuleOp, options: MinimizeOptions, use_care: bool = True
) -> list[LayerReport]:
    """Replace every `logic.table` of `module` by its `logic.lut_network`; the reports in
    program order."""
    reports = []
    for op in [op for op in module.walk() if isinstance(op, logic.TableOp)]:
        layer, report = minimize_layer(ctx, op, options, use_care)
        _replace(ctx, op, layer, report)
        reports.append(report)
    return reports


@dataclass(frozen=True)
class LogicMinimizePass(IrcompPass):
    """Replace each `logic.table` by a `logic.lut_network` of k-input LUTs.

    Every distinct table is minimized once (`ircomp.logic.minimize`): constant, wire and small
    outputs directly; the others by `route` = `abc` (ABC on the truth table: BDD synthesis with
    `&ttopt`, told the care rows when there are don't-cares, and a mux/BDD flow, then 6-LUT
    mapping with `&if`, `&mfs`, `&satlut`), `espresso` (Espresso with don't-cares, its SOP or
    its function mapped by ABC) or `best` (both; Espresso only when there are don't-cares).
    A Shannon mux tree is always a candidate, so no table costs more than its LogicNets ROM
    bound. The network with fewest LUTs (then lowest depth) is kept. Tables are solved in
    `jobs` threads (0 = one per CPU), cached by content in memory and under `cache-dir`
    (empty: memory only; `xdg`: $XDG_CACHE_HOME/ircomp/logic-minimize). `use-care=false`
    ignores `care` and keeps every row.

    The new op keeps `name` and gets `logic.luts`, `logic.depth` and `logic.routes` (distinct
    tables per route). Requires: `fanin`, `tables`, `table_index` (and `care`) are `nn.weight`
    tensors; ABC (`yosys-abc` or `berkeley-abc`) on PATH when a table has an output that needs
    more than k inputs. Guarantees: each table's network is checked on every care row (every
    row without `care`) against the table before it is used; the layer equals the table on
    those rows (on the others, with `care`, it may differ: a semantic change the user asks
    for). Same input, same output, whatever `jobs` is.
    """

    name = "logic-minimize"

    route: str = "best"
    k: int = 6
    jobs: int = 0
    use_care: bool = True
    cache_dir: str = ""

    def __post_init__(self) -> None:
        self.options_object()  # an InputError for a bad route, k or jobs

    def options_object(self) -> MinimizeOptions:
        return MinimizeOptions(
            route=self.route, k=self.k, jobs=self.jobs, cache_dir=self.cache_dir or None
        )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        reports = minimize_module(ctx, op, self.options_object(), self.use_care)
        sink = _REPORTS.get()
        if sink is not None:
            sink.extend(reports)


@contextmanager
def collect_reports() -> Iterator[list[LayerReport]]:
    """Collect the reports of every `logic-minimize` run in this context (any pipeline)."""
    sink: list[LayerReport] = []
    token = _REPORTS.set(sink)
    try:
        yield sink
    finally:
        _REPORTS.reset(token)


def minimize_program(
    program: Program,
    *,
    route: str = "best",
    k: int = 6,
    jobs: int = 0,
    use_care: bool = True,
    cache_dir: str = "",
) -> tuple[Program, list[LayerReport]]:
    """Run `logic-minimize` on a copy of `program` (through the pass manager, verified) and
    return the result with the per-layer reports (for the build driver)."""
    pass_ = LogicMinimizePass(route=route, k=k, jobs=jobs, use_care=use_care, cache_dir=cache_dir)
    with collect_reports() as reports:
        result = PassManager([pass_]).run(program)
    return result, list(reports)


__all__ = [
    "DEPTH_ATTR",
    "LUTS_ATTR",
    "ROUTES_ATTR",
    "LayerReport",
    "LogicMinimizePass",
    "collect_reports",
    "minimize_layer",
    "minimize_module",
    "minimize_program",
]
