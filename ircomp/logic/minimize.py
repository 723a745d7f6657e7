"""Minimize truth tables into k-LUT networks (`spec/logic.md` §4, pass `logic-minimize`).

    result = minimize_table(outputs, in_bits=8, out_bits=2, care=care_mask)
    result.network        # LutNetwork over 8 primary inputs with 2 outputs
    result.luts, result.depth, result.route, result.candidates, result.seconds

`outputs[r]` is the output code of row `r` (its raw `out_bits`-bit pattern is used; output `b`
of the network is bit `b`, LSB first); primary input `j` is bit `j` of the row index. Rows where
`care` is False are don't-cares: the network may give anything there.

Work per table, measured stage by stage:

1. *prepare*: every output bit that is constant, equal to an input or its negation, equal to an
   earlier output, or (after dropping the inputs it does not need on the care rows) a function
   of at most `k` inputs becomes a wire or one LUT, without ABC. The rest are the *hard*
   outputs.
2. route `abc`: the hard outputs' truth table goes straight to ABC. Candidates (one ABC
   process): `abc:ttopt` (Miyasaka's truth-table BDD synthesis `&ttopt` with variable
   reordering, then `&if -a; &mfs; &satlut`), `abc:ttopt-dc` (the same, told the care rows so
   it merges BDD nodes through the don't-cares), `abc:bdd` (global BDD as muxes, `dch`,
   `if -a`, `mfs2`); plus, in every route, `mux`: a Shannon mux tree built here (the LogicNets
   ROM cost: never more than `(Y/3)(2^(X-4) - (-1)^X)` 6-LUTs), the fallback when ABC fails.
   ABC on its own cover of the table (`strash; dch; if; mfs2`) is not a candidate: it gave
   3-10x the LUTs of `abc:ttopt` on neuron tables and never fewer.
   Route `espresso`: Espresso minimizes the table with its don't-cares to a shared SOP;
   candidates `espresso:sop` (that SOP to ABC: `strash; dch -f; if -a; mfs2`) and
   `espresso:ttopt` (the function of that SOP as a truth table through `&ttopt`).
   Route `best`: both; Espresso only when the table has don't-cares.
3. Every candidate is cleaned up (`simplify_network`) and ranked by LUTs, then depth, then the
   order above; the first whose table network (with the prepared outputs) equals the table on
   every care row (`LutNetwork.evaluate`, exhaustively) is kept. If none does,
   `MinimizationError`: a wrong network is never returned.

`minimize_tables` runs many tables in parallel threads (ABC is a subprocess), caches results by
a hash of (table, care, bits, route, k, candidate set) in memory and optionally on disk, shows a
progress bar for long runs and kills its ABC processes on Ctrl-C. Results are deterministic.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ircomp.errors import InputError, IrcompError
from ircomp.logic.abc import (
    AbcError,
    AbcProcesses,
    blif_to_network,
    parse_blif,
    run_abc,
    write_care_patterns,
    write_pla,
    write_truths,
)
from ircomp.logic.espresso import espresso_cover
from ircomp.logic.network import CONST0, CONST1, MAX_LUT_INPUTS, LutNetwork

ROUTES = ("best", "abc", "espresso")
# Bump when a change alters what the minimizer returns for the same input (cache key).
ALGORITHM_VERSION = "logic-minimize-1"
CHECK_CHUNK_ROWS = 1 << 11
MEMORY_CACHE_ENTRIES = 4096


class MinimizationError(IrcompError):
    """A minimized network disagrees with its table on a care row (a bug; never returned)."""


@dataclass(frozen=True)
class MinimizeOptions:
    """How to minimize: `route` (best | abc | espresso), LUT size `k` (3..6), `jobs` threads
    (0 = one per CPU), `cache_dir` (None = memory cache only), `abc` program (None = yosys-abc,
    then berkeley-abc), `timeout` seconds per ABC run, `progress` bar for long runs."""

    route: str = "best"
    k: int = MAX_LUT_INPUTS
    jobs: int = 0
    cache_dir: str | None = None
    abc: str | None = None
    timeout: float = 600.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise InputError(
                f"logic-minimize: route must be one of {', '.join(ROUTES)}, got {self.route!r}"
            )
        if not 3 <= self.k <= MAX_LUT_INPUTS:
            raise InputError(f"logic-minimize: k must be in 3..{MAX_LUT_INPUTS}, got {self.k}")
        if self.jobs < 0:
            raise InputError(f"logic-minimize: jobs must be >= 0, got {self.jobs}")
        if self.timeout <= 0:
            raise InputError(f"logic-minimize: timeout must be positive, got {self.timeout}")


@dataclass(frozen=True)
class MinimizedFunction:
    """A table as a LUT network, with what it cost and how it was found.

    `route`: where the kept network came from: `trivial` (no hard output: wires, constants,
    single LUTs), `mux` (the Shannon mux tree built here), `abc` or `espresso`; `method`: the
    kept candidate (`mux`, `abc:ttopt`, `abc:ttopt-dc`, `abc:bdd`, `espresso:sop`, ...);
    `candidates`: LUTs of every candidate that was tried and checked; `failed`: candidates that
    failed, with why; `seconds`: wall time per stage (prepare, espresso, abc, mux, check,
    total); `cached`: the result came from the cache (then `seconds` are the original ones).
    """

    network: LutNetwork
    route: str
    method: str
    candidates: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    trivial_outputs: int = 0
    cached: bool = False

    @property
    def luts(self) -> int:
        return self.network.num_luts

    @property
    def depth(self) -> int:
        return self.network.depth()

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record (for reports)."""
        return {
            "luts": self.luts,
            "depth": self.depth,
            "route": self.route,
            "method": self.method,
            "candidates": dict(self.candidates),
            "failed": dict(self.failed),
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "trivial_outputs": self.trivial_outputs,
            "cached": self.cached,
        }


# ---- truth tables of small LUTs (Python ints, bit r = value at address r) ------------------


def _full(k: int) -> int:
    return (1 << (1 << k)) - 1


def _depends(tt: int, k: int, var: int) -> bool:
    step = 1 << var
    for base in range(0, 1 << k, step << 1):
        for a in range(base, base + step):
            if (tt >> a ^ tt >> (a + step)) & 1:
                return True
    return False


def _remove_var(tt: int, k: int, var: int) -> int:
    """The table without `var` (which it does not depend on)."""
    out = 0
    for a in range(1 << (k - 1)):
        low = a & ((1 << var) - 1)
        old = ((a >> var) << (var + 1)) | low
        out |= ((tt >> old) & 1) << a
    return out


# Literal: (node, inverted). Nodes as in LutNetwork; constants are (CONST0, False/True).
Lit = tuple[int, bool]


@dataclass
class _Net:
    """A LUT network under construction: LUT fan-ins are literals (inversions allowed)."""

    num_inputs: int
    luts: list[tuple[tuple[Lit, ...], int]] = field(default_factory=list)
    outputs: list[Lit] = field(default_factory=list)

    def add(self, fanins: Sequence[Lit], tt: int) -> Lit:
        self.luts.append((tuple(fanins), tt))
        return (self.num_inputs + len(self.luts) - 1, False)

    @staticmethod
    def of(network: LutNetwork) -> _Net:
        def lit(node: int) -> Lit:
            return (CONST0, node == CONST1) if node < 0 else (int(node), False)

        net = _Net(network.num_inputs)
        for inputs, init in zip(network.lut_inputs, network.lut_init, strict=True):
            net.luts.append((tuple(lit(int(x)) for x in inputs), int(init)))
        net.outputs = [lit(int(o)) for o in network.outputs]
        return net


def _rehash(net: _Net) -> _Net:
    """Fold constants and inversions into the LUTs, drop inputs a LUT does not depend on, turn
    buffers and inverters into literals, and share identical (or complementary) LUTs."""
    out = _Net(net.num_inputs)
    table: dict[tuple[tuple[int, ...], int], int] = {}
    lit_of: list[Lit] = []

    def resolve(lit: Lit) -> Lit:
        node, inv = lit
        if node < net.num_inputs:
            return (node, inv) if node >= 0 else (CONST0, inv)
        base, base_inv = lit_of[node - net.num_inputs]
        return (base, base_inv ^ inv)

    for fanins, init in net.luts:
        lits = [resolve(f) for f in fanins]
        nodes = sorted({n for n, _ in lits if n != CONST0})
        k = len(nodes)
        if lits == [(node, False) for node in nodes]:
            tt = init  # already distinct, ordered, positive: nothing to fold
        else:
            index = {n: i for i, n in enumerate(nodes)}
            tt = 0
            for a in range(1 << k):
                old = 0
                for j, (n, inv) in enumerate(lits):
                    bit = inv if n == CONST0 else ((a >> index[n]) & 1) ^ inv
                    old |= int(bit) << j
                tt |= ((init >> old) & 1) << a
        for var in reversed(range(k)):
            if not _depends(tt, k, var):
                tt = _remove_var(tt, k, var)
                k -= 1
                del nodes[var]
        if k == 0:
            lit_of.append((CONST0, bool(tt & 1)))
            continue
        if k == 1 and tt in (0b01, 0b10):
            lit_of.append((nodes[0], tt == 0b01))
            continue
        inv = bool(tt & 1)
        if inv:
            tt ^= _full(k)
        key = (tuple(nodes), tt)
        node = table.get(key)
        if node is None:
            node = out.add([(n, False) for n in nodes], tt)[0]
            table[key] = node
        lit_of.append((node, inv))
    out.outputs = [resolve(o) for o in net.outputs]
    return out


def _compose(
    fanins: list[Lit], tt: int, slot: int, x_fanins: Sequence[Lit], x_tt: int, x_inv: bool
) -> tuple[list[Lit], int]:
    """LUT (`fanins`, `tt`) with the LUT (`x_fanins`, `x_tt`) substituted into input `slot`."""
    others = [f for j, f in enumerate(fanins) if j != slot]
    union = sorted(
        {f[0] for f in others if f[0] != CONST0} | {f[0] for f in x_fanins if f[0] != CONST0}
    )
    pos = {node: i for i, node in enumerate(union)}

    def value(lit: Lit, a: int) -> int:
        node, inv = lit
        bit = 0 if node == CONST0 else (a >> pos[node]) & 1
        return bit ^ int(inv)

    new_tt = 0
    for a in range(1 << len(union)):
        x_addr = sum(value(f, a) << j for j, f in enumerate(x_fanins))
        x_val = ((x_tt >> x_addr) & 1) ^ int(x_inv)
        y_addr = 0
        for j, f in enumerate(fanins):
            y_addr |= (x_val if j == slot else value(f, a)) << j
        new_tt |= ((tt >> y_addr) & 1) << a
    return [(node, False) for node in union], new_tt


def _collapse(net: _Net, k: int) -> _Net:
    """Merge a LUT into its only reader when their inputs together fit one k-LUT."""
    n = net.num_inputs
    luts = [(list(f), tt) for f, tt in net.luts]
    readers = [0] * len(luts)

    def count(fanins: Sequence[Lit], delta: int) -> None:
        for node in {f[0] for f in fanins}:
            if node >= n:
                readers[node - n] += delta

    for fanins, _ in luts:
        count(fanins, 1)
    for node, _ in net.outputs:
        if node >= n:
            readers[node - n] += 2  # an output keeps its LUT
    dead = [False] * len(luts)
    for y in range(len(luts)):
        fanins, tt = luts[y]
        merged = True
        while merged:
            merged = False
            for slot, (x_node, x_inv) in enumerate(fanins):
                x = x_node - n
                if x < 0 or readers[x] != 1 or dead[x]:
                    continue
                x_fanins, x_tt = luts[x]
                union = {f[0] for j, f in enumerate(fanins) if j != slot}
                union |= {f[0] for f in x_fanins}
                if len(union - {CONST0}) > k:
                    continue
                new_fanins, new_tt = _compose(fanins, tt, slot, x_fanins, x_tt, x_inv)
                count(fanins, -1)
                count(x_fanins, -1)
                count(new_fanins, 1)
                dead[x] = True
                fanins, tt = new_fanins, new_tt
                merged = True
                break
        luts[y] = (fanins, tt)
    out = _Net(n)
    for i, (fanins, tt) in enumerate(luts):
        # A merged LUT is read by nothing; a constant in its place keeps the numbering.
        out.luts.append(((), 0) if dead[i] else (tuple(fanins), tt))
    out.outputs = list(net.outputs)
    return out


def _finish(net: _Net) -> LutNetwork:
    """Make output inversions real (complement a LUT only outputs read inverted, else add a
    complemented copy or a 1-input inverter), drop dead LUTs, renumber, pad to the widest."""
    n = net.num_inputs
    luts = [(list(f), tt) for f, tt in net.luts]
    plain: set[int] = set()
    inverted: set[int] = set()
    for node, inv in net.outputs:
        if node >= n:
            (inverted if inv else plain).add(node - n)
    flip = {x for x in inverted if x not in plain}

    def fix_fanins(fanins: list[Lit]) -> list[Lit]:
        return [
            (node, inv ^ (node - n in flip)) if node >= n else (node, inv) for node, inv in fanins
        ]

    built: list[tuple[list[Lit], int]] = []
    for x, (fanins, tt) in enumerate(luts):
        k = len(fanins)
        built.append((fix_fanins(fanins), tt ^ _full(k) if x in flip else tt))
    extra: dict[Lit, int] = {}
    outputs: list[int] = []
    for node, inv in net.outputs:
        if node < 0:
            outputs.append(CONST1 if inv else CONST0)
        elif (node >= n and node - n in flip) or not inv:
            outputs.append(node)
        else:
            if (node, inv) not in extra:
                if node >= n:  # a complemented copy: same cost as an inverter, one level less
                    fanins, tt = built[node - n]
                    built.append((list(fanins), tt ^ _full(len(fanins))))
                else:
                    built.append(([(node, False)], 0b01))
                extra[(node, inv)] = n + len(built) - 1
            outputs.append(extra[(node, inv)])
    # Fold fan-in inversions into the tables, then keep what the outputs need.
    final: list[tuple[list[int], int]] = []
    for fanins, tt in built:
        k = len(fanins)
        new_tt = 0
        for a in range(1 << k):
            old = 0
            for j, (_node, inv) in enumerate(fanins):
                old |= (((a >> j) & 1) ^ int(inv)) << j
            new_tt |= ((tt >> old) & 1) << a
        final.append(([node for node, _ in fanins], new_tt))
    live = [False] * len(final)
    stack = [o - n for o in outputs if o >= n]
    while stack:
        x = stack.pop()
        if live[x]:
            continue
        live[x] = True
        stack.extend(f - n for f in final[x][0] if f >= n and not live[f - n])
    new_id: dict[int, int] = {}
    kept: list[tuple[list[int], int]] = []
    for x, (fanins, tt) in enumerate(final):
        if live[x]:
            new_id[n + x] = n + len(kept)
            kept.append(([new_id.get(f, f) for f in fanins], tt))
    width = max((len(f) for f, _ in kept), default=1) or 1
    lut_inputs = np.full((len(kept), width), CONST0, dtype=np.int32)
    lut_init = np.zeros(len(kept), dtype=np.uint64)
    for i, (fanins, tt) in enumerate(kept):
        lut_inputs[i, : len(fanins)] = fanins
        lut_init[i] = np.uint64(tt)
    return LutNetwork(
        n, lut_inputs, lut_init, np.asarray([new_id.get(o, o) for o in outputs], np.int32)
    )


def simplify_network(network: LutNetwork, k: int = MAX_LUT_INPUTS) -> LutNetwork:
    """The same function with no more LUTs: constants and inversions folded, unused LUT inputs
    dropped, buffers removed, identical or complementary LUTs shared, LUTs merged into their
    only reader when the inputs fit a `k`-LUT, dead LUTs removed. Deterministic."""
    net = _rehash(_Net.of(network))
    net = _rehash(_collapse(net, k))
    return _finish(net)


# ---- checking -----------------------------------------------------------------------------


def _row_bits(rows: np.ndarray, n: int) -> np.ndarray:
    return ((rows[:, None] >> np.arange(n, dtype=np.int64)) & 1).astype(bool)


def mismatches(network: LutNetwork, bits: np.ndarray, care: np.ndarray | None) -> int:
    """Care rows where `network` differs from `bits` ([M, R]); every row when care is None."""
    bits = np.asarray(bits, dtype=bool)
    rows = np.flatnonzero(care) if care is not None else np.arange(bits.shape[1])
    bad = 0
    for start in range(0, rows.size, CHECK_CHUNK_ROWS):
        chunk = rows[start : start + CHECK_CHUNK_ROWS]
        got = network.evaluate(_row_bits(chunk, network.num_inputs))
        bad += int(np.any(got != bits[:, chunk].T, axis=1).sum())
    return bad


# ---- preparing a table -------------------------------------------------------------------


def output_bits(outputs: np.ndarray, out_bits: int) -> np.ndarray:
    """[R] output codes -> [out_bits, R] bools: bit b of each code's raw pattern."""
    raw = np.asarray(outputs).astype(np.int64) & ((1 << out_bits) - 1)
    return ((raw[None, :] >> np.arange(out_bits, dtype=np.int64)[:, None]) & 1).astype(bool)


def _consistent(keys: np.ndarray, values: np.ndarray, size: int) -> bool:
    """No key sees both values."""
    ones = np.zeros(size, dtype=bool)
    zeros = np.zeros(size, dtype=bool)
    ones[keys[values]] = True
    zeros[keys[~values]] = True
    return not np.any(ones & zeros)


def _support(values: np.ndarray, rows: np.ndarray, n: int) -> list[int]:
    """A small set of inputs that determines `values` on `rows` (greedy, highest input first)."""
    mask = (1 << n) - 1
    for var in reversed(range(n)):
        trial = mask & ~(1 << var)
        if _consistent(rows & trial, values, 1 << n):
            mask = trial
    return [j for j in range(n) if mask >> j & 1]


def _small_lut(values: np.ndarray, rows: np.ndarray, support: list[int], table: np.ndarray) -> int:
    """The truth table over `support` that `values` (on `rows`) define; addresses no care row
    reaches take the table's value at the row whose other inputs are 0 (`table`: all rows)."""
    k = len(support)
    addresses = np.arange(1 << k, dtype=np.int64)
    at = np.zeros(1 << k, dtype=np.int64)
    hit = np.zeros(rows.size, dtype=np.int64)
    for i, var in enumerate(support):
        at |= ((addresses >> i) & 1) << var
        hit |= ((rows >> var) & 1) << i
    lut = table[at].copy()
    lut[hit] = values
    return _pack(lut)


def _pack(bits: np.ndarray) -> int:
    """Bools -> int with bit i = bits[i]."""
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


@dataclass
class _Prepared:
    """The table split into what is solved without ABC and the hard outputs.

    `slots[b]` is output b's literal in `net`, or an index into `hard` (the outputs, by index
    into the table, that go to the candidates; equal outputs share one entry).
    """

    net: _Net
    hard: list[int]
    slots: list[Lit | int]

    @property
    def trivial_outputs(self) -> int:
        return sum(1 for s in self.slots if not isinstance(s, int))


def _prepare(bits: np.ndarray, care: np.ndarray | None, k: int) -> _Prepared:
    m, rows_total = bits.shape
    n = rows_total.bit_length() - 1
    rows = np.flatnonzero(care) if care is not None else np.arange(rows_total)
    net = _Net(n)
    slots: list[Lit | int] = []
    hard: list[int] = []
    seen: dict[bytes, Lit | int] = {}
    inputs = [((rows >> j) & 1).astype(bool) for j in range(n)]
    for b in range(m):
        values = bits[b, rows]
        key = values.tobytes()
        if key in seen:
            slots.append(seen[key])
            continue
        entry: Lit | int | None = None
        if rows.size == 0 or not values.any():
            entry = (CONST0, False)
        elif values.all():
            entry = (CONST0, True)
        else:
            for j in range(n):
                if np.array_equal(values, inputs[j]):
                    entry = (j, False)
                    break
                if np.array_equal(values, ~inputs[j]):
                    entry = (j, True)
                    break
        if entry is None:
            support = _support(values, rows, n)
            if len(support) <= k:
                tt = _small_lut(values, rows, support, bits[b])
                entry = net.add([(v, False) for v in support], tt)
        if entry is None:
            entry = len(hard)
            hard.append(b)
        seen[key] = entry
        slots.append(entry)
    return _Prepared(net, hard, slots)


# ---- candidates --------------------------------------------------------------------------


def _mux_tree(bits: np.ndarray, n: int, k: int) -> LutNetwork:
    """Shannon decomposition: leaves over inputs 0..k-1, a tree of 2^g:1 mux LUTs over the
    others (g select bits with g + 2^g <= k). The LogicNets ROM cost, shared leaves merged."""
    net = _Net(n)
    group = 2 if k >= 6 else 1
    leaf_rows = 1 << k
    for b in range(bits.shape[0]):
        level: list[Lit] = []
        for s in range(1 << (n - k)):
            chunk = bits[b, s * leaf_rows : (s + 1) * leaf_rows]
            tt = _pack(chunk)
            level.append(net.add([(j, False) for j in range(k)], tt))
        var = k
        while len(level) > 1:
            g = min(group, n - var)
            width = 1 << g
            mux_tt = 0
            for a in range(1 << (g + width)):
                sel = a & (width - 1)
                mux_tt |= ((a >> (g + sel)) & 1) << a
            selects = [(var + i, False) for i in range(g)]
            level = [
                net.add(selects + level[i : i + width], mux_tt) for i in range(0, len(level), width)
            ]
            var += g
        net.outputs.append(level[0])
    return _finish(_rehash(net))


def _abc_scripts(n: int, m: int, k: int, with_care: bool) -> dict[str, str]:
    """The ABC candidate scripts on `t.truth` (and `care.sim`), each writing `<name>.blif`."""
    mapping = f"&if -K {k} -a; &mfs; &satlut; &put"
    scripts = {
        "abc:ttopt": f"read_truth -f t.truth; strash; &get -n; &ttopt -I {n} -O {m}; {mapping}",
    }
    if with_care:
        scripts["abc:ttopt-dc"] = (
            f"read_truth -f t.truth; strash; &get -n; &ttopt -I {n} -O {m} -R 1 care.sim; {mapping}"
        )
    scripts["abc:bdd"] = (
        f"read_truth -f t.truth; collapse; muxes; strash; dch -f; if -K {k} -a; mfs2"
    )
    return scripts


def _blif_name(candidate: str) -> str:
    return candidate.replace(":", "_") + ".blif"


def _run_candidates(
    scripts: dict[str, str],
    files: dict[str, str | bytes],
    options: MinimizeOptions,
    processes: AbcProcesses,
) -> tuple[dict[str, LutNetwork], dict[str, str]]:
    """Run the scripts in one ABC process (each again alone if that process fails)."""
    networks: dict[str, LutNetwork] = {}
    failed: dict[str, str] = {}

    def read(texts: dict[str, str], names: Sequence[str]) -> None:
        for name in names:
            text = texts.get(_blif_name(name))
            if text is None:
                failed[name] = "ABC wrote no network"
                continue
            try:
                networks[name] = blif_to_network(parse_blif(text), options.k)
            except (AbcError, ValueError) as err:
                failed[name] = f"unreadable BLIF: {err}"

    whole = "; ".join(f"{s}; write_blif {_blif_name(c)}" for c, s in scripts.items())
    try:
        texts = run_abc(
            whole,
            files,
            [_blif_name(c) for c in scripts],
            program=options.abc,
            timeout=options.timeout,
            processes=processes,
        )
        read(texts, list(scripts))
    except AbcError:
        if processes.stopped.is_set():
            raise
        for name, script in scripts.items():
            try:
                texts = run_abc(
                    f"{script}; write_blif {_blif_name(name)}",
                    files,
                    [_blif_name(name)],
                    program=options.abc,
                    timeout=options.timeout,
                    processes=processes,
                )
            except AbcError as err:
                if processes.stopped.is_set():
                    raise
                failed[name] = str(err).splitlines()[0]
                continue
            read(texts, [name])
    return networks, failed


def _nonconstant(values: np.ndarray) -> tuple[list[int], list[Lit | None]]:
    """Outputs of a full truth table that are not constant, and a literal for those that are
    (ABC refuses constant outputs)."""
    keep: list[int] = []
    lits: list[Lit | None] = []
    for b, row in enumerate(values):
        if not row.any():
            lits.append((CONST0, False))
        elif row.all():
            lits.append((CONST0, True))
        else:
            lits.append(None)
            keep.append(b)
    return keep, lits


def _with_constants(network: LutNetwork, lits: list[Lit | None], n: int) -> LutNetwork:
    """`network` (outputs for the `None` entries of `lits`) with the constant outputs added."""
    net = _Net.of(network)
    outs = iter(net.outputs)
    net.outputs = [next(outs) if lit is None else lit for lit in lits]
    assert net.num_inputs == n
    return _finish(_rehash(net))


class _Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _candidates(
    bits: np.ndarray,
    care: np.ndarray | None,
    n: int,
    options: MinimizeOptions,
    processes: AbcProcesses,
    watch: _Stopwatch,
) -> tuple[dict[str, LutNetwork], dict[str, str]]:
    """Every candidate network of the route for the hard outputs `bits` ([M, R])."""
    m = bits.shape[0]
    networks: dict[str, LutNetwork] = {}
    failed: dict[str, str] = {}
    with watch.stage("mux"):
        networks["mux"] = _mux_tree(bits, n, options.k)
    if options.route in ("abc", "best"):
        files: dict[str, str | bytes] = {"t.truth": write_truths(bits)}
        with_care = care is not None and not care.all()
        if with_care:
            assert care is not None
            files["care.sim"] = write_care_patterns(np.flatnonzero(care), n)
        with watch.stage("abc"):
            got, bad = _run_candidates(
                _abc_scripts(n, m, options.k, with_care), files, options, processes
            )
        networks.update(got)
        failed.update(bad)
    # `best` runs Espresso only with don't-cares: without them it cannot find another
    # function, and a fully specified 16-input table took it 26-56 s.
    if options.route == "espresso" or (options.route == "best" and care is not None):
        with watch.stage("espresso"):
            cover = espresso_cover(bits, care)
            values = cover.values()
        keep, lits = _nonconstant(values)
        if not keep:
            networks["espresso:sop"] = _with_constants(
                LutNetwork(
                    n, np.zeros((0, 1), np.int32), np.zeros(0, np.uint64), np.zeros(0, np.int32)
                ),
                lits,
                n,
            )
        else:
            cubes = [(c, "".join(o[b] for b in keep)) for c, o in cover.cubes]
            cubes = [(c, o) for c, o in cubes if "1" in o]
            files = {
                "e.pla": write_pla(cubes, n, len(keep)),
                "t.truth": write_truths(values[keep]),
            }
            scripts = {
                "espresso:sop": f"read_pla e.pla; strash; dch -f; if -K {options.k} -a; mfs2",
                "espresso:ttopt": (
                    f"read_truth -f t.truth; strash; &get -n; &ttopt -I {n} -O {len(keep)}; "
                    f"&if -K {options.k} -a; &mfs; &satlut; &put"
                ),
            }
            with watch.stage("abc"):
                got, bad = _run_candidates(scripts, files, options, processes)
            for name, network in got.items():
                networks[name] = _with_constants(network, lits, n)
            failed.update(bad)
    return networks, failed


def _assemble(prepared: _Prepared, hard_net: LutNetwork | None) -> LutNetwork:
    """The table's network: the prepared literals and LUTs plus the hard outputs' network."""
    n = prepared.net.num_inputs
    net = _Net(n, list(prepared.net.luts))
    hard_lits: list[Lit] = []
    if hard_net is not None:
        base = len(net.luts)

        def shift(lit: Lit) -> Lit:
            node, inv = lit
            return (node + base, inv) if node >= n else lit

        sub = _Net.of(hard_net)
        net.luts += [(tuple(shift(f) for f in fanins), tt) for fanins, tt in sub.luts]
        hard_lits = [shift(o) for o in sub.outputs]
    net.outputs = [hard_lits[s] if isinstance(s, int) else s for s in prepared.slots]
    return _finish(_rehash(net))


def _minimize(
    bits: np.ndarray,
    care: np.ndarray | None,
    options: MinimizeOptions,
    processes: AbcProcesses,
) -> MinimizedFunction:
    watch = _Stopwatch()
    start = time.perf_counter()
    n = bits.shape[1].bit_length() - 1
    with watch.stage("prepare"):
        prepared = _prepare(bits, care, options.k)
    candidates: dict[str, int] = {}
    failed: dict[str, str] = {}
    route, method = "trivial", "trivial"
    if not prepared.hard:
        with watch.stage("check"):
            network = _assemble(prepared, None)
            bad = mismatches(network, bits, care)
        if bad:
            raise MinimizationError(f"the network of a trivial table differs on {bad} care rows")
    else:
        networks, failed = _candidates(bits[prepared.hard], care, n, options, processes, watch)
        ranked = []
        with watch.stage("simplify"):
            for order, (name, candidate) in enumerate(networks.items()):
                candidate = simplify_network(candidate, options.k)
                candidates[name] = candidate.num_luts
                ranked.append(((candidate.num_luts, candidate.depth(), order), name, candidate))
        # Best first; the first that is right on every care row is kept.
        chosen: LutNetwork | None = None
        with watch.stage("check"):
            for _, name, candidate in sorted(ranked, key=lambda r: r[0]):
                network = _assemble(prepared, candidate)
                bad = mismatches(network, bits, care)
                if not bad:
                    chosen, method = network, name
                    break
                failed[name] = f"wrong on {bad} care rows (discarded)"
        if chosen is None:
            raise MinimizationError(f"no candidate network is right on the care rows: {failed}")
        network = chosen
        route = method.split(":")[0]
    watch.seconds["total"] = time.perf_counter() - start
    return MinimizedFunction(
        network=network,
        route=route,
        method=method,
        candidates=candidates,
        failed=failed,
        seconds=watch.seconds,
        trivial_outputs=prepared.trivial_outputs,
    )


# ---- caching -----------------------------------------------------------------------------


def _script_signature(options: MinimizeOptions) -> str:
    """Everything about the candidates that changes results, for the cache key."""
    parts = [ALGORITHM_VERSION, options.route, str(options.k)]
    parts += list(_abc_scripts(0, 0, options.k, True).values())
    return "|".join(parts)


def cache_key(bits: np.ndarray, care: np.ndarray | None, options: MinimizeOptions) -> str:
    """The hash a result is cached under: table, care set, sizes, route, k and scripts."""
    h = hashlib.sha256()
    h.update(_script_signature(options).encode())
    h.update(np.asarray(bits.shape, dtype="<i8").tobytes())
    h.update(np.packbits(bits, axis=-1).tobytes())
    if care is None:
        h.update(b"no-care")
    else:
        h.update(b"care")
        h.update(np.packbits(care).tobytes())
    return h.hexdigest()


class _MemoryCache:
    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._data: OrderedDict[str, MinimizedFunction] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> MinimizedFunction | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: MinimizedFunction) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


MEMORY_CACHE = _MemoryCache(MEMORY_CACHE_ENTRIES)


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/ircomp/logic-minimize` (`~/.cache/...` when XDG_CACHE_HOME is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ircomp" / "logic-minimize"


def _cache_path(cache_dir: str, key: str) -> Path:
    folder = default_cache_dir() if cache_dir == "xdg" else Path(cache_dir).expanduser()
    return folder / key[:2] / f"{key}.npz"


def _disk_read(
    path: Path, bits: np.ndarray, care: np.ndarray | None, key: str
) -> MinimizedFunction | None:
    """A cached result if the file is intact, for this key, and right on the care rows."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            network = LutNetwork(
                int(meta["num_inputs"]), data["lut_inputs"], data["lut_init"], data["outputs"]
            )
        if meta.get("key") != key or network.outputs.size != bits.shape[0]:
            return None
        if network.num_inputs != bits.shape[1].bit_length() - 1:
            return None
        if mismatches(network, bits, care):
            return None
        return MinimizedFunction(
            network=network,
            route=str(meta["route"]),
            method=str(meta["method"]),
            candidates={str(k): int(v) for k, v in meta["candidates"].items()},
            failed={str(k): str(v) for k, v in meta["failed"].items()},
            seconds={str(k): float(v) for k, v in meta["seconds"].items()},
            trivial_outputs=int(meta["trivial_outputs"]),
            cached=True,
        )
    except Exception:  # unreadable, truncated or foreign (zipfile raises many types): a miss
        return None


def _disk_write(path: Path, result: MinimizedFunction, key: str) -> None:
    """Write atomically (temporary file in the same folder, then rename); errors are ignored:
    the cache is an optimization."""
    meta = {
        "key": key,
        "num_inputs": result.network.num_inputs,
        "route": result.route,
        "method": result.method,
        "candidates": result.candidates,
        "failed": result.failed,
        "seconds": result.seconds,
        "trivial_outputs": result.trivial_outputs,
    }
    buffer = io.BytesIO()
    np.savez(
        buffer,
        lut_inputs=result.network.lut_inputs,
        lut_init=result.network.lut_init,
        outputs=result.network.outputs,
        meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buffer.getvalue())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass


# ---- public API ------------------------------------------------------------------------------


def _table_bits(outputs: np.ndarray, in_bits: int, out_bits: int) -> np.ndarray:
    outputs = np.asarray(outputs).reshape(-1)
    if outputs.size != 1 << in_bits:
        raise InputError(
            f"a table over {in_bits} input bits needs {1 << in_bits} rows, got {outputs.size}"
        )
    if out_bits < 1:
        raise InputError(f"out_bits must be >= 1, got {out_bits}")
    return output_bits(outputs, out_bits)


def _care_mask(care: np.ndarray | None, rows: int) -> np.ndarray | None:
    if care is None:
        return None
    mask = np.asarray(care, dtype=bool).reshape(-1)
    if mask.size != rows:
        raise InputError(f"care has {mask.size} rows, the table {rows}")
    return None if mask.all() else mask


def _solve(
    bits: np.ndarray, care: np.ndarray | None, options: MinimizeOptions, processes: AbcProcesses
) -> MinimizedFunction:
    key = cache_key(bits, care, options)
    hit = MEMORY_CACHE.get(key)
    if hit is not None:
        return replace(hit, cached=True)
    path = _cache_path(options.cache_dir, key) if options.cache_dir else None
    if path is not None and path.exists():
        found = _disk_read(path, bits, care, key)
        if found is not None:
            MEMORY_CACHE.put(key, found)
            return found
    result = _minimize(bits, care, options, processes)
    MEMORY_CACHE.put(key, result)
    if path is not None:
        _disk_write(path, result, key)
    return result


def minimize_table(
    outputs: np.ndarray,
    in_bits: int,
    out_bits: int,
    care: np.ndarray | None = None,
    options: MinimizeOptions | None = None,
) -> MinimizedFunction:
    """Minimize one truth table (`outputs[r]` = code of row r) into a k-LUT network, exact on
    the rows where `care` is True (all rows when None). See the module docstring."""
    return minimize_tables(
        np.asarray(outputs).reshape(1, -1),
        in_bits,
        out_bits,
        None if care is None else np.asarray(care).reshape(1, -1),
        replace(options or MinimizeOptions(), progress=False),
    )[0]


def _jobs(requested: int) -> int:
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.update(task, advance=1)


PROGRESS_MIN_TABLES = 16


def minimize_tables(
    outputs: np.ndarray,
    in_bits: int,
    out_bits: int,
    care: np.ndarray | None = None,
    options: MinimizeOptions | None = None,
    label: str = "logic-minimize",
) -> list[MinimizedFunction]:
    """Minimize `U` tables (`outputs` [U, R], `care` [U, R] or None) in parallel.

    Identical (table, care) pairs are solved once; results come from the memory and disk
    caches when present. The order of the results is the order of the tables, and each result
    is the same whatever `jobs` is. Ctrl-C stops the workers and kills their ABC processes.
    """
    options = options or MinimizeOptions()
    outputs = np.asarray(outputs)
    if outputs.ndim != 2:
        raise InputError(f"tables must be [U, R], got shape {outputs.shape}")
    if care is not None and np.asarray(care).shape != outputs.shape:
        raise InputError(f"care must have the shape of the tables {outputs.shape}")
    problems: list[tuple[np.ndarray, np.ndarray | None]] = []
    for u in range(outputs.shape[0]):
        bits = _table_bits(outputs[u], in_bits, out_bits)
        problems.append((bits, _care_mask(None if care is None else care[u], bits.shape[1])))
    unique: dict[str, int] = {}
    order: list[int] = []
    todo: list[tuple[np.ndarray, np.ndarray | None]] = []
    for bits, mask in problems:
        key = cache_key(bits, mask, options)
        if key not in unique:
            unique[key] = len(todo)
            todo.append((bits, mask))
        order.append(unique[key])
    processes = AbcProcesses()
    results: list[MinimizedFunction | None] = [None] * len(todo)
    jobs = min(_jobs(options.jobs), max(1, len(todo)))
    show = options.progress and len(todo) >= PROGRESS_MIN_TABLES and sys.stderr.isatty()
    with _progress(show, len(todo), label) as advance:
        if jobs == 1:
            try:
                for i, (bits, mask) in enumerate(todo):
                    results[i] = _solve(bits, mask, options, processes)
                    advance()
            except BaseException:
                processes.kill_all()
                raise
        else:
            pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="logic-minimize")
            try:
                futures: dict[Future, int] = {
                    pool.submit(_solve, bits, mask, options, processes): i
                    for i, (bits, mask) in enumerate(todo)
                }
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[futures[future]] = future.result()
                        advance()
            except BaseException:
                processes.kill_all()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
    final = [results[i] for i in order]
    assert all(r is not None for r in final)
    return final  # type: ignore[return-value]


__all__ = [
    "ALGORITHM_VERSION",
    "MEMORY_CACHE",
    "ROUTES",
    "MinimizationError",
    "MinimizeOptions",
    "MinimizedFunction",
    "cache_key",
    "default_cache_dir",
    "minimize_table",
    "minimize_tables",
    "mismatches",
    "output_bits",
    "simplify_network",
]
