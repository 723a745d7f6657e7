"""ircomp.logic.minimize / abc / espresso: truth tables to checked k-LUT networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ircomp.errors import InputError
from ircomp.logic import minimize as mz
from ircomp.logic.abc import (
    AbcError,
    AbcProcesses,
    blif_to_network,
    parse_blif,
    run_abc,
    truth_hex,
    write_care_patterns,
)
from ircomp.logic.espresso import espresso_cover
from ircomp.logic.minimize import (
    MinimizationError,
    MinimizeOptions,
    minimize_table,
    minimize_tables,
    mismatches,
    output_bits,
    simplify_network,
)
from ircomp.logic.network import CONST0, CONST1, LutNetwork

SERIAL = MinimizeOptions(jobs=1, progress=False)


def _all_rows(n: int) -> np.ndarray:
    rows = np.arange(1 << n)
    return ((rows[:, None] >> np.arange(n)) & 1).astype(bool)


def _assert_exact(
    result: mz.MinimizedFunction, table: np.ndarray, out_bits: int, care: np.ndarray | None
) -> None:
    n = result.network.num_inputs
    got = result.network.evaluate(_all_rows(n)).T  # [out_bits, R]
    want = output_bits(table, out_bits)
    rows = np.ones(1 << n, bool) if care is None else np.asarray(care, bool)
    np.testing.assert_array_equal(got[:, rows], want[:, rows])


@pytest.fixture(autouse=True)
def _fresh_memory_cache() -> None:
    mz.MEMORY_CACHE.clear()


# ---- BLIF ------------------------------------------------------------------------------------

HAND_BLIF = """
# a comment
.model m
.inputs a b \\
  c
.outputs y z w one zero pass
.names t c y
1- 1
-1 1
.names a b t
11 0
.names a z
0 1
.names b c w
10 1
01 1
.names one
1
.names zero
.names c pass
1 1
.end
"""


def test_blif_covers_become_init_words_in_fanin_order() -> None:
    net = blif_to_network(parse_blif(HAND_BLIF))
    assert net.num_inputs == 3
    a, b, c = (_all_rows(3)[:, j] for j in range(3))
    got = net.evaluate(_all_rows(3))
    # y = NAND(a, b) | c (t is an off-set cover, defined after its reader)
    np.testing.assert_array_equal(got[:, 0], ~(a & b) | c)
    np.testing.assert_array_equal(got[:, 1], ~a)
    np.testing.assert_array_equal(got[:, 2], b ^ c)
    np.testing.assert_array_equal(got[:, 3], np.ones(8, bool))
    np.testing.assert_array_equal(got[:, 4], np.zeros(8, bool))
    np.testing.assert_array_equal(got[:, 5], c)


def test_blif_node_truth_follows_the_cube_order() -> None:
    (node,) = parse_blif(".model m\n.inputs p q\n.outputs r\n.names q p r\n10 1\n.end\n").nodes
    assert node.inputs == ("q", "p")
    assert node.truth() == 0b0010  # q = 1 (address bit 0), p = 0
    net = blif_to_network(parse_blif(".inputs p q\n.outputs r\n.names q p r\n10 1\n"))
    assert net.lut_inputs[0, :2].tolist() == [1, 0]
    assert int(net.lut_init[0]) == 0b0010


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (".inputs a\n.outputs y\n.names a y\n1 1\n0 0\n", "mixed"),
        (".inputs a\n.outputs y\n.names x y\n1 1\n", "no driver"),
        (".inputs a\n.outputs y\n.names y a z\n11 1\n.names z y\n1 1\n", "loop"),
        (".inputs a\n.outputs y\n.latch a y\n", "unsupported"),
        (".inputs a\n.outputs y\n.names a y\n11 1\n", "bad cube"),
        (".inputs a\n.outputs y\n.names a y\n1 1\n.names a y\n1 1\n", "driven twice"),
    ],
)
def test_bad_blif_is_refused(text: str, message: str) -> None:
    with pytest.raises(AbcError, match=message):
        blif_to_network(parse_blif(text))


def test_truth_hex_and_care_patterns_use_abc_layouts() -> None:
    assert truth_hex(np.array([0, 0, 0, 1, 0, 1, 1, 1], bool)) == "e8"  # majority
    assert truth_hex(np.array([0, 1], bool)) == "2"
    rows = np.array([5, 0, 7])
    data = np.frombuffer(write_care_patterns(rows, 3), dtype="<u8").reshape(3, 1)
    for i in range(3):
        pattern = [(int(data[i, 0]) >> p) & 1 for p in range(64)]
        assert pattern[:3] == [(r >> i) & 1 for r in rows]
        assert set(pattern[3:]) == {(5 >> i) & 1}  # padded with the first row


# ---- simplify_network -----------------------------------------------------------------------


@st.composite
def _networks(draw: st.DrawFn) -> LutNetwork:
    n = draw(st.integers(1, 5))
    k = draw(st.integers(1, 4))
    count = draw(st.integers(0, 8))
    inputs, inits = [], []
    for lut in range(count):
        nodes = st.integers(CONST1, n + lut - 1)
        inputs.append([draw(nodes) for _ in range(k)])
        inits.append(draw(st.integers(0, (1 << (1 << k)) - 1)))
    outputs = draw(st.lists(st.integers(CONST1, n + count - 1), min_size=1, max_size=4))
    return LutNetwork(
        n,
        np.array(inputs, np.int32).reshape(count, k),
        np.array(inits, np.uint64),
        np.array(outputs),
    )


@given(_networks())
@settings(max_examples=80)
def test_simplify_keeps_the_function_and_never_adds_luts(network: LutNetwork) -> None:
    simple = simplify_network(network, 6)
    rows = _all_rows(network.num_inputs)
    np.testing.assert_array_equal(simple.evaluate(rows), network.evaluate(rows))
    assert simple.num_luts <= network.num_luts + len(network.outputs)
    assert simplify_network(simple, 6).num_luts <= simple.num_luts


def test_simplify_merges_chains_and_shares_duplicates() -> None:
    # l0 = a & b, l1 = l0 | c (merges into one 3-LUT), l2 = copy of l0 with inputs swapped
    net = LutNetwork(
        3, np.array([[0, 1], [3, 2], [1, 0]]), np.array([0b1000, 0b1110, 0b1000]), np.array([4, 5])
    )
    simple = simplify_network(net, 6)
    rows = _all_rows(3)
    np.testing.assert_array_equal(simple.evaluate(rows), net.evaluate(rows))
    assert simple.num_luts == 2


# ---- minimize_table ---------------------------------------------------------------------------


@st.composite
def _tables(draw: st.DrawFn) -> tuple[np.ndarray, int, int, np.ndarray | None]:
    in_bits = draw(st.integers(1, 8))
    out_bits = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["random", "sum", "sparse"]))
    rows = np.arange(1 << in_bits)
    if kind == "random":
        table = rng.integers(0, 1 << out_bits, rows.size)
    elif kind == "sum":  # a quantized weighted sum of 2-bit fields: a neuron-like table
        fields = (rows[:, None] >> (2 * np.arange((in_bits + 1) // 2))) & 3
        acc = fields @ rng.integers(-2, 3, fields.shape[1])
        table = np.clip(acc + rng.integers(-2, 3), 0, (1 << out_bits) - 1)
    else:
        table = np.where(rng.random(rows.size) < 0.1, rng.integers(0, 1 << out_bits, rows.size), 0)
    care = None
    if draw(st.booleans()):
        care = rng.random(rows.size) < draw(st.sampled_from([0.05, 0.3, 0.8]))
    return table, in_bits, out_bits, care


@given(_tables())
@settings(max_examples=25)
def test_network_equals_table_on_care_rows(case: tuple) -> None:
    table, in_bits, out_bits, care = case
    result = minimize_table(table, in_bits, out_bits, care, SERIAL)
    _assert_exact(result, table, out_bits, care)
    assert result.network.num_inputs == in_bits
    assert result.network.outputs.size == out_bits
    assert result.route in ("trivial", "mux", "abc", "espresso")
    if result.candidates:  # the kept candidate has the fewest LUTs (all are right here)
        assert not result.failed
        assert result.candidates[result.method] == min(result.candidates.values())


def test_signed_codes_use_their_raw_pattern() -> None:
    table = np.array([-1, 0, 1, -2] * 4)  # 2-bit signed: raw 3, 0, 1, 2
    result = minimize_table(table, 4, 2, None, SERIAL)
    _assert_exact(result, table, 2, None)
    assert result.route == "trivial"


def test_degenerate_outputs_need_no_abc(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ABC reachable
    monkeypatch.delenv("IRCOMP_ABC", raising=False)
    n = 9
    rows = np.arange(1 << n)
    x = lambda j: (rows >> j) & 1  # noqa: E731
    # bit 0: constant 1, bit 1: input 3, bit 2: NOT input 8, bit 3: = bit 1,
    # bit 4: a 3-input function of a 9-input table (one LUT), bit 5: constant 0
    bits = [np.ones_like(rows), x(3), 1 - x(8), x(3), x(0) & x(5) | x(7), np.zeros_like(rows)]
    table = sum(b << i for i, b in enumerate(bits))
    result = minimize_table(table, n, 6, None, SERIAL)
    _assert_exact(result, table, 6, None)
    assert result.route == "trivial" and result.trivial_outputs == 6
    assert result.luts == 2  # the inverter and the 3-input LUT
    out = result.network.outputs
    assert out[0] == CONST1 and out[5] == CONST0 and out[1] == 3 and out[3] == 3


def test_dont_cares_shrink_the_support() -> None:
    rng = np.random.default_rng(3)
    table = rng.integers(0, 2, 1 << 10)
    care = np.zeros(1 << 10, bool)
    care[rng.choice(1 << 10, 20, replace=False)] = True
    result = minimize_table(table, 10, 1, care, SERIAL)
    _assert_exact(result, table, 1, care)
    assert result.luts <= 3  # 20 care rows: a few inputs decide them


def test_missing_abc_is_an_input_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("IRCOMP_ABC", raising=False)
    table = np.random.default_rng(0).integers(0, 2, 1 << 8)
    with pytest.raises(InputError, match=r"yosys.*berkeley-abc"):
        minimize_table(table, 8, 1, None, SERIAL)


def test_routes_all_check_and_best_is_no_worse() -> None:
    rng = np.random.default_rng(5)
    rows = np.arange(1 << 8)
    fields = (rows[:, None] >> (2 * np.arange(4))) & 3
    table = np.clip(fields @ np.array([2, -1, 1, 3]) // 2, 0, 3)
    care = rng.random(rows.size) < 0.4
    results = {
        route: minimize_table(table, 8, 2, care, MinimizeOptions(route=route, jobs=1))
        for route in ("abc", "espresso", "best")
    }
    for result in results.values():
        _assert_exact(result, table, 2, care)
    assert results["best"].luts <= min(results["abc"].luts, results["espresso"].luts)
    assert set(results["best"].candidates) >= {"mux", "abc:ttopt", "abc:ttopt-dc", "espresso:sop"}
    assert not any(c.startswith("espresso") for c in results["abc"].candidates)


def test_thresholded_sums_are_small() -> None:
    rows = np.arange(256)
    total = ((rows[:, None] >> (2 * np.arange(4))) & 3).sum(axis=1)
    luts = []
    for t in range(1, 13):
        result = minimize_table((total >= t).astype(int), 8, 1, None, SERIAL)
        _assert_exact(result, (total >= t).astype(int), 1, None)
        luts.append(result.luts)
    print("threshold sum4x2 LUTs per t=1..12:", luts)
    assert max(luts) <= 3  # a ROM needs 5 (LogicNets' formula for 8 inputs)


def test_logicnets_cost_of_random_tables_is_met() -> None:
    rng = np.random.default_rng(11)
    lines = []
    for x in range(6, 11):
        for y in (1, 2):
            table = rng.integers(0, 1 << y, 1 << x)
            result = minimize_table(table, x, y, None, SERIAL)
            _assert_exact(result, table, y, None)
            bound = y / 3 * (2 ** (x - 4) - (-1) ** x)
            lines.append(
                f"X={x} Y={y}: {result.luts} LUTs (formula {bound:.0f}, "
                f"{result.method}, {result.candidates})"
            )
            assert result.luts <= round(bound)
            assert result.luts >= 0.8 * bound  # random tables have no structure to find
    print("\n".join(lines))


def test_espresso_cover_respects_care_rows() -> None:
    rng = np.random.default_rng(2)
    bits = rng.random((2, 64)) < 0.5
    care = rng.random(64) < 0.5
    cover = espresso_cover(bits, care)
    np.testing.assert_array_equal(cover.values()[:, care], bits[:, care])
    full = espresso_cover(bits, None)
    np.testing.assert_array_equal(full.values(), bits)
    assert espresso_cover(bits, np.zeros(64, bool)).cubes == ()


def test_a_wrong_network_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(bits, care, n, options, processes, watch):
        m = bits.shape[0]
        return {
            "mux": LutNetwork(
                n, np.zeros((0, 1), np.int32), np.zeros(0, np.uint64), np.full(m, CONST0)
            )
        }, {}

    monkeypatch.setattr(mz, "_candidates", wrong)
    table = np.random.default_rng(0).integers(0, 2, 1 << 8)
    with pytest.raises(MinimizationError, match="no candidate"):
        minimize_table(table, 8, 1, None, SERIAL)


def test_options_are_checked() -> None:
    with pytest.raises(InputError, match="route"):
        MinimizeOptions(route="fast")
    with pytest.raises(InputError, match="k must"):
        MinimizeOptions(k=7)
    with pytest.raises(InputError, match="rows"):
        minimize_table(np.zeros(10), 4, 1)


# ---- many tables: parallel, cache, stopping ---------------------------------------------------


def _some_tables() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    tables = rng.integers(0, 4, (6, 1 << 8))
    tables[4] = tables[1]  # a duplicate is solved once
    care = rng.random(tables.shape) < 0.5
    care[4] = care[1]
    return tables, care


def test_parallel_equals_serial_byte_for_byte() -> None:
    tables, care = _some_tables()
    serial = minimize_tables(tables, 8, 2, care, SERIAL)
    mz.MEMORY_CACHE.clear()
    parallel = minimize_tables(tables, 8, 2, care, MinimizeOptions(jobs=3, progress=False))
    for a, b in zip(serial, parallel, strict=True):
        for field in ("lut_inputs", "lut_init", "outputs"):
            assert getattr(a.network, field).tobytes() == getattr(b.network, field).tobytes()
    assert serial[4].network is serial[1].network
    for result, table, mask in zip(serial, tables, care, strict=True):
        _assert_exact(result, table, 2, mask)


def test_memory_and_disk_caches_hit_and_validate(tmp_path) -> None:
    tables, care = _some_tables()
    options = MinimizeOptions(jobs=1, cache_dir=str(tmp_path))
    first = minimize_tables(tables[:2], 8, 2, care[:2], options)
    assert not any(r.cached for r in first)
    again = minimize_tables(tables[:2], 8, 2, care[:2], options)
    assert all(r.cached for r in again)
    files = sorted(tmp_path.rglob("*.npz"))
    assert len(files) == 2
    mz.MEMORY_CACHE.clear()
    from_disk = minimize_tables(tables[:2], 8, 2, care[:2], options)
    assert all(r.cached for r in from_disk)
    for a, b in zip(first, from_disk, strict=True):
        assert a.network.lut_init.tobytes() == b.network.lut_init.tobytes()
        assert a.method == b.method and a.candidates == b.candidates
    # A damaged or foreign file is ignored and rewritten.
    key = mz.cache_key(output_bits(tables[0], 2), care[0], options)
    path = next(p for p in files if p.stem == key)
    path.write_bytes(b"not an archive")
    mz.MEMORY_CACHE.clear()
    redo = minimize_tables(tables[:1], 8, 2, care[:1], options)
    assert not redo[0].cached
    _assert_exact(redo[0], tables[0], 2, care[0])
    assert mz._disk_read(path, output_bits(tables[0], 2), care[0], key) is not None
    # A cached network that is wrong for the table is refused.
    assert mz._disk_read(path, output_bits(tables[1], 2), care[1], key) is None


def test_stopped_processes_refuse_new_abc_runs() -> None:
    processes = AbcProcesses()
    processes.kill_all()
    with pytest.raises(AbcError, match="stopped"):
        run_abc("read_truth e8", {}, [], processes=processes)


def test_mismatches_counts_care_rows_only() -> None:
    net = LutNetwork(2, np.array([[0, 1]]), np.array([0b1000]), np.array([2]))  # AND
    bits = np.array([[False, False, False, False]])
    assert mismatches(net, bits, None) == 1
    assert mismatches(net, bits, np.array([True, True, True, False])) == 0
