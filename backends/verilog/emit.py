"""Verilog-2001 text for a chain of logic layers (`spec/logic.md` section 5).

One file per module, named after it (`<module>.v`):

* `<top>.v`: ports `clk`, `rst`, `valid_in`, `x`, `valid_out`, `y`; the layers in a chain with
  a pipeline register after every `pipeline_stages`-th layer and after the last one, and the
  `valid` shift register of the same length;
* `<top>_l<i>_<name>.v`, one per layer, purely combinational `x -> y`:
  - `logic.lut_network`: one `wire nL = TL[{..inputs..}]` per LUT, `TL` its INIT constant
    (constant slots, repeated and irrelevant inputs folded away; dead LUTs dropped);
  - `logic.table`: the LogicNets-style baseline, one instance of a case ROM per neuron;
* `<top>_l<i>_rom<u>.v`: a case ROM (`always @*` + `case`), one per distinct table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ircomp.backends.verilog.chain import Chain, Codes, Layer, Tables
from ircomp.backends.verilog.names import fragment, top_identifier
from ircomp.errors import InputError
from ircomp.logic.network import CONST0, CONST1, LutNetwork

INDENT = "    "


@dataclass(frozen=True)
class LayerInfo:
    """What was emitted for one layer."""

    index: int
    name: str  # the op's source name ("" when it has none)
    op: str  # "logic.table" or "logic.lut_network"
    module: str  # its Verilog module
    input_bits: int
    output_bits: int
    luts: int  # lut_network: LUTs emitted; table: 0
    depth: int  # lut_network: LUT levels of the emitted network; table: 0
    roms: int  # table: distinct case ROMs; lut_network: 0
    registered: bool  # a pipeline register follows the layer


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
                    "registered": info.registered,
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
        return f"x[{node}]" if node < first else f"n{node - first}"

    body: list[str] = []
    used: set[int] = {n for n in outputs if 0 <= n < first}
    level: dict[int, int] = {}
    for lut in luts:
        used.update(n for n in lut.inputs if n < first)
        level[lut.node] = 1 + max((level.get(n, 0) for n in lut.inputs), default=0)
        size = 1 << len(lut.inputs)
        name = lut.node - first
        address = ", ".join(ref(n) for n in reversed(lut.inputs))
        if len(lut.inputs) > 1:
            address = "{" + address + "}"
        body.append(f"{INDENT}localparam {_range(size)} T{name} = {_const(lut.init, size)};")
        body.append(f"{INDENT}wire n{name} = T{name}[{address}];")
    for bit, node in enumerate(outputs):
        body.append(f"{INDENT}assign y[{bit}] = {ref(node)};")
    body += _unused("x", layer.input.bits, used)
    depth = max((level.get(n, 0) for n in outputs), default=0)
    header = [
        *header,
        f"{len(luts)} LUTs (of {network.num_luts}; constant, buffer and dead ones folded), "
        f"depth {depth}",
        "LUT nL = TL[{inputs}], TL its INIT word (Xilinx LUT6.INIT order).",
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
        luts = depth = roms = 0
        if layer.network is not None:
            files[module], luts, depth = _lut_module(module, layer, header)
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
            )
        )
    files[top] = _top_module(top, chain, modules, registered)
    named = {f"{name}.v": text for name, text in sorted(files.items())}
    return Netlist(
        top, named, sum(registered), pipeline_stages, chain.input, chain.output, tuple(infos)
    )
