"""Verilog-2001 text for a chain of logic layers (`spec/logic.md` section 5).

One file per module, named after it (`<module>.v`):

* `<top>.v`: ports `clk`, `rst`, `valid_in`, `x`, `valid_out`, `y`; the layers in a chain with
  a pipeline register after every `pipeline_stages`-th layer and after the last one, and the
  `valid` shift register of the same length;
* `<top>_l<i>_<name>.v`, one per layer, purely combinational `x -> y`:
  - `logic.lut_network`: one `wire nL = TL[{..inputs..}]` per LUT, `TL` its INIT constant
    (constant slots, repeated and irrelevant inputs folded away; dead LUTs dropped);
  - `logic.table`: the LogicNets-style baseline, one instance of a case ROM per neuron;
  - `logic.threshold`: per neuron an adder of constant multiples of its fan-in codes (widths
    from the exact range of the sum), one comparator per distinct reachable threshold and each
    output bit as an OR of intervals of the comparators' thermometer code;
* `<top>_l<i>_rom<u>.v`: a case ROM (`always @*` + `case`), one per distinct table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ircomp.backends.verilog.chain import Chain, Codes, Layer, Tables, Thresholds
from ircomp.backends.verilog.names import fragment, top_identifier
from ircomp.errors import InputError
from ircomp.logic.network import CONST0, CONST1, LutNetwork

INDENT = "    "


@dataclass(frozen=True)
class LayerInfo:
    """What was emitted for one layer."""

    index: int
    name: str  # the op's source name ("" when it has none)
    op: str  # "logic.table", "logic.lut_network" or "logic.threshold"
    module: str  # its Verilog module
    input_bits: int
    output_bits: int
    luts: int  # lut_network: LUTs emitted; otherwise 0
    depth: int  # lut_network: LUT levels of the emitted network; otherwise 0
    roms: int  # table: distinct case ROMs; otherwise 0
    registered: bool  # a pipeline register follows the layer
    comparators: int = 0  # threshold: comparators emitted (all neurons); otherwise 0
    acc_bits: int = 0  # threshold: the widest accumulator; otherwise 0


@dataclass(frozen=True)
class Netlist:
    """The emitted design: `files` maps file names to Verilog text."""

    top: str
    files: dict[str, str]
    latency: int  # clock cycles from an input (valid_in) to its output (valid_out)
    pipeline_stages: int  # layers per pipeline stage (0: purely combinational)
    input: Codes
    output: Codes
    layers: tuple[LayerInfo, ...]

    @property
    def input_bits(self) -> int:
        return self.input.bits

    @property
    def output_bits(self) -> int:
        return self.output.bits

    def report(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "top": self.top,
            "latency_cycles": self.latency,
            "pipeline_stages": self.pipeline_stages,
            "input": {"codes": self.input.count, "bits": self.input.width},
            "output": {"codes": self.output.count, "bits": self.output.width},
            "layers": [
                {
                    "index": info.index,
                    "name": info.name,
                    "op": info.op,
                    "module": info.module,
                    "luts": info.luts,
                    "depth": info.depth,
                    "roms": info.roms,
                    "comparators": info.comparators,
                    "acc_bits": info.acc_bits,
                    "registered": info.registered,
                    "register_bits": info.output_bits if info.registered else 0,
                }
                for info in self.layers
            ],
        }


# ---- text helpers ------------------------------------------------------------------------


def _comment(text: str) -> str:
    """`text` made safe for a `//` comment (printable ASCII, one line)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _const(value: int, width: int) -> str:
    """A sized literal: binary up to 8 bits, hexadecimal beyond."""
    if width <= 8:
        return f"{width}'b{value:0{width}b}"
    return f"{width}'h{value:0{(width + 3) // 4}x}"


def _range(width: int) -> str:
    return f"[{width - 1}:0]"


def _select(name: str, low: int, width: int) -> str:
    return f"{name}[{low}]" if width == 1 else f"{name}[{low + width - 1}:{low}]"


def _runs(bits: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted bit indices -> (low, width) runs of consecutive bits, most significant first."""
    runs: list[tuple[int, int]] = []
    for bit in sorted(set(bits)):
        if runs and runs[-1][0] + runs[-1][1] == bit:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((bit, 1))
    return runs[::-1]


def _unused(name: str, width: int, used: set[int]) -> list[str]:
    """Mark the bits of `name` no logic reads, so that `verilator -Wall` accepts them: a wire
    whose name matches verilator's default `--unused-regexp` (`*unused*`), the usual idiom for
    ports a module must have but does not need (here: inputs a pruned layer ignores)."""
    unused = set(range(width)) - used
    if not unused:
        return []
    parts = ", ".join(_select(name, low, w) for low, w in _runs(unused))
    return [f"{INDENT}wire _unused_ok = &{{1'b0, {parts}}};"]


def _module(name: str, header: Sequence[str], ports: Sequence[str], body: Sequence[str]) -> str:
    lines = [f"// {_comment(line)}" if line else "//" for line in header]
    lines.append(f"module {name} (")
    lines += [f"{INDENT}{port}{',' if i < len(ports) - 1 else ''}" for i, port in enumerate(ports)]
    lines.append(");")
    lines += body
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _layer_ports(layer: Layer) -> list[str]:
    return [
        f"input wire {_range(layer.input.bits)} x",
        f"output wire {_range(layer.output.bits)} y",
    ]


GENERATED = "Generated by ircomp (fpga-lut Verilog backend); do not edit."


# ---- logic.lut_network -------------------------------------------------------------------


def simplify_lut(init: int, inputs: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """One LUT with its constant slots folded in, repeated inputs merged and inputs it does not
    depend on dropped: (INIT over the remaining inputs, those inputs, slot 0 first)."""
    variables = list(dict.fromkeys(int(n) for n in inputs if n >= 0))
    count = len(variables)
    address = np.arange(1 << count, dtype=np.int64)
    full = np.zeros_like(address)
    for slot, node in enumerate(inputs):
        if node == CONST1:
            full |= 1 << slot
        elif node >= 0:
            full |= ((address >> variables.index(int(node))) & 1) << slot
    bits = np.array([(init >> a) & 1 for a in full.tolist()], dtype=np.int64)
    # bits[a], a = sum value(var i) << i: in the C-ordered [2]*n array var i is axis n-1-i (the
    # variables above i go first, so i keeps its place among the remaining ones).
    cube = bits.reshape([2] * count) if count else bits.reshape(())
    for i in reversed(range(count)):
        axis = cube.ndim - 1 - i
        if np.array_equal(cube.take(0, axis=axis), cube.take(1, axis=axis)):
            cube = cube.take(0, axis=axis)
            del variables[i]
    flat = cube.reshape(-1)
    new_init = sum(int(b) << a for a, b in enumerate(flat))
    return new_init, tuple(variables)


def lut_expression(init: int, signals: Sequence[str]) -> str:
    """The LUT `init` over `signals` (slot 0 first) as a Shannon tree of `?:` on its highest
    input, constant and repeated cofactors folded. Synthesis tools map it back to one LUT, and
    yosys does so several times faster than for a variable bit select of a constant word."""

    def cofactor(low: int, count: int) -> str:
        size = 1 << count
        word = (init >> low) & ((1 << size) - 1)
        if word in (0, (1 << size) - 1):
            return f"1'b{word & 1}"
        top = signals[count - 1]
        if_zero, if_one = cofactor(low, count - 1), cofactor(low + size // 2, count - 1)
        if if_zero == if_one:
            return if_zero
        if (if_zero, if_one) == ("1'b0", "1'b1"):
            return top
        if (if_zero, if_one) == ("1'b1", "1'b0"):
            return f"~{top}"
        return f"({top} ? {if_one} : {if_zero})"

    return cofactor(0, len(signals))


@dataclass(frozen=True)
class _Lut:
    node: int
    init: int
    inputs: tuple[int, ...]  # nodes, slot 0 (least significant address bit) first


def _fold_network(network: LutNetwork) -> tuple[list[_Lut], list[int]]:
    """The live LUTs after folding constants and buffers, and the node driving each output
    (inputs, LUT nodes or CONST0/CONST1)."""
    first = network.num_inputs
    alias: dict[int, int] = {CONST0: CONST0, CONST1: CONST1}
    alias.update((i, i) for i in range(first))
    luts: dict[int, _Lut] = {}
    for index, (inputs, init) in enumerate(
        zip(network.lut_inputs.tolist(), network.lut_init.tolist(), strict=True)
    ):
        node = first + index
        new_init, variables = simplify_lut(int(init), [alias[int(n)] for n in inputs])
        if not variables:
            alias[node] = CONST1 if new_init & 1 else CONST0
        elif len(variables) == 1 and new_init == 0b10:
            alias[node] = variables[0]
        else:
            alias[node] = node
            luts[node] = _Lut(node, new_init, variables)
    outputs = [alias[int(n)] for n in network.outputs.tolist()]
    live: set[int] = set()
    stack = [n for n in outputs if n >= first]
    while stack:
        node = stack.pop()
        if node in live:
            continue
        live.add(node)
        stack.extend(n for n in luts[node].inputs if n >= first)
    return [luts[n] for n in sorted(live)], outputs


def _lut_module(module: str, layer: Layer, header: list[str]) -> tuple[str, int, int]:
    network = layer.network
    assert network is not None
    first = network.num_inputs
    luts, outputs = _fold_network(network)

    def ref(node: int) -> str:
        if node == CONST0:
            return "1'b0"
        if node == CONST1:
            return "1'b1"
        return f"i{node}" if node < first else f"n{node - first}"

    lines: list[str] = []
    used: set[int] = {n for n in outputs if 0 <= n < first}
    level: dict[int, int] = {}
    for lut in luts:
        used.update(n for n in lut.inputs if n < first)
        level[lut.node] = 1 + max((level.get(n, 0) for n in lut.inputs), default=0)
        size = 1 << len(lut.inputs)
        expression = lut_expression(lut.init, [ref(n) for n in lut.inputs])
        init = _const(lut.init, size)
        lines.append(f"{INDENT}wire n{lut.node - first} = {expression};  // INIT {init}")
    # Scalar aliases of the input bits: iverilog's compile time grows quadratically with the
    # bit selects of one vector in ?: trees (35 s vs 1 s for 3,000 LUTs).
    body = [f"{INDENT}wire i{k} = x[{k}];" for k in sorted(used)] + lines
    for bit, node in enumerate(outputs):
        body.append(f"{INDENT}assign y[{bit}] = {ref(node)};")
    body += _unused("x", layer.input.bits, used)
    depth = max((level.get(n, 0) for n in outputs), default=0)
    header = [
        *header,
        f"{len(luts)} LUTs (of {network.num_luts}; constant, buffer and dead ones folded), "
        f"depth {depth}",
        "Input bit k is wire ik; one LUT per wire nL, as a ?: tree; INIT in Xilinx LUT6.INIT "
        "order.",
    ]
    ports = _layer_ports(layer)
    return _module(module, header, ports, body), len(luts), depth


# ---- logic.table (LogicNets-style case ROMs) ---------------------------------------------


def _rom_module(module: str, table: np.ndarray, address_bits: int, width: int) -> str:
    """A case ROM: `q = table[a]`, the most frequent value as `default`."""
    counts = Counter(table.tolist())
    default = min(counts, key=lambda v: (-counts[v], v))
    lines = [f"{INDENT}always @* begin", f"{INDENT * 2}case (a)"]
    for row, value in enumerate(table.tolist()):
        if value != default:
            lines.append(
                f"{INDENT * 3}{_const(row, address_bits)}: q = {_const(int(value), width)};"
            )
    lines += [
        f"{INDENT * 3}default: q = {_const(default, width)};",
        f"{INDENT * 2}endcase",
        f"{INDENT}end",
    ]
    header = [
        GENERATED,
        f"Case ROM: {address_bits} address bits -> {width} bits, {len(table) - counts[default]} "
        f"of {len(table)} rows listed, the others are the default.",
    ]
    ports = [f"input wire {_range(address_bits)} a", f"output reg {_range(width)} q"]
    return _module(module, header, ports, lines)


def _table_modules(module: str, layer: Layer, header: list[str]) -> tuple[dict[str, str], int]:
    tables = layer.tables
    assert isinstance(tables, Tables)
    w_in, w_out = layer.input.width, layer.output.width
    fan_in = tables.fanin.shape[1]
    address_bits = w_in * fan_in
    files: dict[str, str] = {}
    roms: dict[bytes, str] = {}
    body: list[str] = []
    used: set[int] = set()
    for neuron, (fanin, which) in enumerate(
        zip(tables.fanin.tolist(), tables.table_index.tolist(), strict=True)
    ):
        table = tables.tables[which]
        out = _select("y", neuron * w_out, w_out)
        if np.all(table == table[0]):
            body.append(f"{INDENT}assign {out} = {_const(int(table[0]), w_out)};")
            continue
        key = table.tobytes()
        if key not in roms:
            roms[key] = f"{module}_rom{len(roms)}"
            files[roms[key]] = _rom_module(roms[key], table, address_bits, w_out)
        fields = []
        for element in reversed(fanin):
            if element < 0:
                fields.append(_const(0, w_in))
            else:
                fields.append(_select("x", element * w_in, w_in))
                used.update(range(element * w_in, (element + 1) * w_in))
        address = fields[0] if len(fields) == 1 else "{" + ", ".join(fields) + "}"
        body.append(f"{INDENT}{roms[key]} neuron_{neuron} (.a({address}), .q({out}));")
    body += _unused("x", layer.input.bits, used)
    header = [
        *header,
        f"LogicNets-style baseline: one case ROM per neuron ({len(roms)} distinct ROMs over "
        f"{address_bits} address bits; constant neurons are wires).",
    ]
    ports = _layer_ports(layer)
    files[module] = _module(module, header, ports, body)
    return files, len(roms)


# ---- logic.threshold (constant-coefficient sums against thresholds) ------------------------


def _code_range(width: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


@dataclass(frozen=True)
class ThresholdNeuron:
    """One neuron of a `logic.threshold` layer, reduced to what the hardware computes."""

    terms: tuple[tuple[int, int], ...]  # (input element, nonzero weight), by element
    low: int  # the least and largest sum its inputs reach
    high: int
    cuts: tuple[int, ...]  # the distinct thresholds in (low, high], ascending
    levels: tuple[int, ...]  # output code below the first cut, then from each cut on

    @property
    def constant(self) -> bool:
        return not self.cuts


def threshold_neurons(layer: Layer) -> list[ThresholdNeuron]:
    """The neurons of a threshold layer: merged terms, exact sum range, live thresholds (those
    outside the range are constant comparisons, folded into the levels)."""
    spec = layer.threshold
    assert isinstance(spec, Thresholds)
    code_low, code_high = _code_range(layer.input.width, layer.input.signed)
    neurons = []
    for fanin, weights, thresholds, base in zip(
        spec.fanin.tolist(),
        spec.weights.tolist(),
        spec.thresholds.tolist(),
        spec.base.tolist(),
        strict=True,
    ):
        merged: dict[int, int] = {}
        for element, weight in zip(fanin, weights, strict=True):
            if element >= 0:
                merged[element] = merged.get(element, 0) + weight
        terms = tuple((e, w) for e, w in sorted(merged.items()) if w)
        low = sum(min(w * code_low, w * code_high) for _, w in terms)
        high = sum(max(w * code_low, w * code_high) for _, w in terms)
        cuts = tuple(sorted({t for t in thresholds if low < t <= high}))
        levels = tuple(base + sum(1 for t in thresholds if t <= v) for v in (low, *cuts))
        neurons.append(ThresholdNeuron(terms, low, high, cuts, levels))
    return neurons


def _interval_terms(values: Sequence[bool]) -> list[tuple[int, int]]:
    """Maximal runs [first, last] of True in `values`."""
    runs: list[tuple[int, int]] = []
    for i, value in enumerate(values):
        if value:
            if runs and runs[-1][1] == i - 1:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
    return runs


# A group of fan-in codes whose weighted partial sum is tabulated: at most this many input bits,
# so that every bit of the partial sum is one LUT6.
PARTIAL_SUM_BITS = 6


def _pattern(element: int, width: int, mask: int, bits: int) -> str:
    """Input code `element` (`width` raw bits) XOR `mask`, zero-extended to `bits` bits."""
    field = _select("x", element * width, width)
    if mask == (1 << width) - 1:
        field = f"~{field}"
    elif mask:
        field = f"({field} ^ {_const(mask, width)})"
    return _zero_extend(field, width, bits)


def _zero_extend(expression: str, width: int, bits: int) -> str:
    return expression if bits == width else f"{{{{{bits - width}{{1'b0}}}}, {expression}}}"


def _partial_sum(
    name: str, group: Sequence[tuple[int, int]], width: int, flips: Sequence[int]
) -> tuple[list[str], int]:
    """Lines computing `name = sum |w| * (x_e ^ flip)` over a group of terms as one LUT per bit
    (the flips folded into the tables, the address the raw input bits); returns (lines, bits)."""
    fields = len(group) * width
    address = np.arange(1 << fields, dtype=np.int64)
    values = np.zeros_like(address)
    for k, ((_, weight), flip) in enumerate(zip(group, flips, strict=True)):
        values += abs(weight) * (((address >> (k * width)) & ((1 << width) - 1)) ^ flip)
    bits = max(1, int(values.max()).bit_length())
    signals = [f"x[{e * width + i}]" for e, _ in group for i in range(width)]
    lines = [f"{INDENT}wire {_range(bits)} {name};"]
    for b in range(bits):
        init = sum(bit << a for a, bit in enumerate(((values >> b) & 1).tolist()))
        lines.append(f"{INDENT}assign {name}[{b}] = {lut_expression(init, signals)};")
    return lines, bits


def _threshold_module(module: str, layer: Layer, header: list[str]) -> tuple[str, int, int]:
    """The module of a threshold layer: (text, comparators, widest accumulator).

    Every term `w * x` becomes `|w| * p + c` with `p` an unsigned pattern of the input bits
    (`x` offset by `2^(w_in-1)` when signed, i.e. its top bit flipped, and all bits inverted when
    `w < 0`), so the adder is an unsigned sum of positive constant multiples and the constants
    `c` move into the thresholds. Terms (largest weights first) are grouped by
    `PARTIAL_SUM_BITS` input bits; a group's partial sum is tabulated, one LUT per bit.
    """
    w_in, w_out = layer.input.width, layer.output.width
    mask = (1 << w_out) - 1
    all_ones = (1 << w_in) - 1
    half = 1 << (w_in - 1) if layer.input.signed else 0
    per_group = max(1, PARTIAL_SUM_BITS // w_in)
    body: list[str] = []
    used: set[int] = set()
    comparators = widest = 0
    for j, neuron in enumerate(threshold_neurons(layer)):
        out_low = j * w_out
        if neuron.constant:
            body.append(
                f"{INDENT}assign {_select('y', out_low, w_out)} = "
                f"{_const(neuron.levels[0] & mask, w_out)};"
            )
            continue
        # sum = acc + offset with acc, the unsigned sum of the patterns, in [0, top]
        top = sum(abs(w) * all_ones for _, w in neuron.terms)
        offset = sum(-w * half if w > 0 else w * (all_ones - half) for _, w in neuron.terms)
        bits = max(1, top.bit_length())
        widest = max(widest, bits)
        body.append(
            f"{INDENT}// neuron {j}: sum in [{neuron.low}, {neuron.high}] = acc{j} + ({offset})"
        )
        terms = sorted(neuron.terms, key=lambda term: (-abs(term[1]), term[0]))
        addends = []
        for g in range(0, len(terms), per_group):
            group = terms[g : g + per_group]
            flips = [half ^ (all_ones if w < 0 else 0) for _, w in group]
            for element, _ in group:
                used.update(range(element * w_in, (element + 1) * w_in))
            if len(group) == 1:
                (element, weight), (flip,) = group[0], flips
                operand = _pattern(element, w_in, flip, bits)
                scale = abs(weight)
                addends.append(operand if scale == 1 else f"{operand} * {_const(scale, bits)}")
                continue
            name = f"ps{j}_{g // per_group}"
            lines, width = _partial_sum(name, group, w_in, flips)
            body += lines
            addends.append(_zero_extend(name, width, bits))
        body.append(f"{INDENT}wire {_range(bits)} acc{j} =")
        body += [
            f"{INDENT * 2}{'+' if i else ' '} {a}{';' if i == len(addends) - 1 else ''}"
            for i, a in enumerate(addends)
        ]
        for i, cut in enumerate(neuron.cuts, start=1):
            body.append(f"{INDENT}wire ge{j}_{i} = acc{j} >= {_const(cut - offset, bits)};")
        comparators += len(neuron.cuts)
        count = len(neuron.cuts)
        for b in range(w_out):
            ones = [bool(((level & mask) >> b) & 1) for level in neuron.levels]
            if all(ones):
                value = "1'b1"
            elif not any(ones):
                value = "1'b0"
            else:
                products = []
                for first, last in _interval_terms(ones):
                    factors = [f"ge{j}_{first}"] if first > 0 else []
                    if last < count:
                        factors.append(f"~ge{j}_{last + 1}")
                    products.append(" & ".join(factors))
                value = " | ".join(
                    f"({p})" if "&" in p and len(products) > 1 else p for p in products
                )
            body.append(f"{INDENT}assign y[{out_low + b}] = {value};")
    body += _unused("x", layer.input.bits, used)
    header = [
        *header,
        "Thresholds (FINN MultiThreshold style): per neuron an unsigned sum of constant "
        "multiples of its fan-in codes",
        "(offset, and inverted for negative weights; groups of codes as tabulated partial sums), "
        f"compared against its reachable thresholds ({comparators} comparators);",
        "output bit b is an OR of intervals of the comparators' thermometer code.",
    ]
    return _module(module, header, _layer_ports(layer), body), comparators, widest


# ---- top -----------------------------------------------------------------------------------


def registered_layers(layers: int, pipeline_stages: int) -> list[bool]:
    """Whether a pipeline register follows each layer: after every `pipeline_stages`-th layer
    and after the last one; none when `pipeline_stages` is 0."""
    if pipeline_stages == 0:
        return [False] * layers
    return [(i + 1) % pipeline_stages == 0 or i == layers - 1 for i in range(layers)]


def _top_module(top: str, chain: Chain, modules: list[str], registered: list[bool]) -> str:
    latency = sum(registered)
    body: list[str] = []
    current = "x"
    stage = 0
    for layer, module, reg in zip(chain.layers, modules, registered, strict=True):
        i = layer.index
        width = _range(layer.output.bits)
        body.append(f"{INDENT}// layer {i}: {layer.op_name} {_comment(layer.name)}".rstrip())
        body.append(f"{INDENT}wire {width} l{i}_y;")
        body.append(f"{INDENT}{module} layer_{i} (.x({current}), .y(l{i}_y));")
        current = f"l{i}_y"
        if reg:
            stage += 1
            body.append(f"{INDENT}reg {width} s{stage}_y;")
            body.append(f"{INDENT}always @(posedge clk) s{stage}_y <= l{i}_y;")
            current = f"s{stage}_y"
    body.append(f"{INDENT}assign y = {current};")
    if latency == 0:
        body.append(f"{INDENT}assign valid_out = valid_in;")
        body.append(
            f"{INDENT}// clk and rst stay ports of the combinational netlist, so that every "
            "pipeline depth has the same interface."
        )
        body.append(f"{INDENT}wire _unused_ok = &{{1'b0, clk, rst}};")
    else:
        regs = [f"v{s}" for s in range(1, latency + 1)]
        body.append(f"{INDENT}// valid shift register, {latency} stages, synchronous reset")
        body += [f"{INDENT}reg {r};" for r in regs]
        body.append(f"{INDENT}always @(posedge clk) begin")
        body.append(f"{INDENT * 2}if (rst) begin")
        body += [f"{INDENT * 3}{r} <= 1'b0;" for r in regs]
        body.append(f"{INDENT * 2}end else begin")
        body += [
            f"{INDENT * 3}{r} <= {prev};"
            for r, prev in zip(regs, ["valid_in", *regs[:-1]], strict=True)
        ]
        body.append(f"{INDENT * 2}end")
        body.append(f"{INDENT}end")
        body.append(f"{INDENT}assign valid_out = {regs[-1]};")
    inp, out = chain.input, chain.output
    header = [
        GENERATED,
        f"Top of a {len(chain.layers)}-layer logic network: x = {inp.count} codes of "
        f"{inp.width} bits, y = {out.count} codes of {out.width} bits (code i = bits "
        "i*w .. i*w+w-1, LSB first, raw two's complement).",
        f"Latency {latency} cycles: valid_out follows valid_in {latency} clock edges later"
        + ("; purely combinational." if latency == 0 else "; data registers have no reset."),
    ]
    ports = [
        "input wire clk",
        "input wire rst",
        "input wire valid_in",
        f"input wire {_range(inp.bits)} x",
        "output wire valid_out",
        f"output wire {_range(out.bits)} y",
    ]
    return _module(top, header, ports, body)


def emit(chain: Chain, top: str, pipeline_stages: int) -> Netlist:
    """Verilog for `chain` with top module `top` (sanitized to a legal identifier)."""
    if isinstance(pipeline_stages, bool) or not isinstance(pipeline_stages, int):
        raise InputError(f"pipeline_stages must be an integer, got {pipeline_stages!r}")
    if pipeline_stages < 0:
        raise InputError(
            f"pipeline_stages must be >= 0 (layers per pipeline stage, 0 = combinational), "
            f"got {pipeline_stages}"
        )
    top = top_identifier(top)
    registered = registered_layers(len(chain.layers), pipeline_stages)
    files: dict[str, str] = {}
    modules: list[str] = []
    infos: list[LayerInfo] = []
    for layer, reg in zip(chain.layers, registered, strict=True):
        tail = fragment(layer.name)
        module = f"{top}_l{layer.index}" + (f"_{tail}" if tail else "")
        modules.append(module)
        header = [
            GENERATED,
            f"Layer {layer.index} of {top}: {layer.op_name}"
            + (f" {layer.name!r}" if layer.name else ""),
            f"x: {layer.input.count} codes of {layer.input.width} bits, y: "
            f"{layer.output.count} codes of {layer.output.width} bits.",
        ]
        luts = depth = roms = comparators = acc_bits = 0
        if layer.network is not None:
            files[module], luts, depth = _lut_module(module, layer, header)
        elif layer.threshold is not None:
            files[module], comparators, acc_bits = _threshold_module(module, layer, header)
        else:
            more, roms = _table_modules(module, layer, header)
            files.update(more)
        infos.append(
            LayerInfo(
                layer.index,
                layer.name,
                layer.op_name,
                module,
                layer.input.bits,
                layer.output.bits,
                luts,
                depth,
                roms,
                reg,
                comparators,
                acc_bits,
            )
        )
    files[top] = _top_module(top, chain, modules, registered)
    named = {f"{name}.v": text for name, text in sorted(files.items())}
    return Netlist(
        top, named, sum(registered), pipeline_stages, chain.input, chain.output, tuple(infos)
    )
