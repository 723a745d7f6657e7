"""Legal, unique Verilog identifiers from arbitrary layer and model names."""

from __future__ import annotations

import re

# Verilog-2005 and SystemVerilog-2017 keywords (verilator reads `.v` files as SystemVerilog by
# default, so its keywords are avoided too).
_KEYWORD_TEXT = """
    accept_on alias always always_comb always_ff always_latch and assert assign assume automatic
    before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle
    checker class clocking cmos config const constraint context continue cover covergroup
    coverpoint cross deassign default defparam design disable dist do edge else end endcase
    endchecker endclass endclocking endconfig endfunction endgenerate endgroup endinterface
    endmodule endpackage endprimitive endprogram endproperty endsequence endspecify endtable
    endtask enum event eventually expect export extends extern final first_match for force
    foreach forever fork forkjoin function generate genvar global highz0 highz1 if iff ifnone
    ignore_bins illegal_bins implements implies import incdir include initial inout input inside
    instance int integer interconnect interface intersect join join_any join_none large let
    liblist library local localparam logic longint macromodule matches medium modport module
    nand negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or output
    package packed parameter pmos posedge primitive priority program property protected pull0
    pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase
    randsequence rcmos real realtime ref reg reject_on release repeat restrict return rnmos rpmos
    rtran rtranif0 rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared
    sequence shortint shortreal showcancelled signed small soft solve specify specparam static
    string strong strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on
    table tagged task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0
    tri1 triand trior trireg type typedef union unique unique0 unsigned until until_with untyped
    use uwire var vectored virtual void wait wait_order wand weak weak0 weak1 while wildcard wire
    with within wor xnor xor
"""
KEYWORDS = frozenset(_KEYWORD_TEXT.split())

MAX_FRAGMENT = 48


def fragment(name: str) -> str:
    """`name` reduced to `[A-Za-z0-9_]`, runs of `_` collapsed, at most MAX_FRAGMENT characters;
    may be empty or start with a digit (callers prefix it)."""
    text = re.sub(r"[^0-9A-Za-z_]+", "_", name)
    text = re.sub(r"_+", "_", text).strip("_")
    return text[:MAX_FRAGMENT].rstrip("_")


def identifier(name: str, fallback: str = "m") -> str:
    """A legal Verilog identifier derived from `name`: starts with a letter, no keyword, no
    leading underscore (tools reserve some `__` names)."""
    text = fragment(name) or fallback
    if not text[0].isalpha():
        text = f"{fallback}_{text}"
    if text in KEYWORDS:
        text += "_"
    return text


# Signal, parameter and instance names the generated modules and testbench use: a top module of
# that name would clash with them (verilator refuses a variable named like a module instance).
RESERVED = re.compile(
    r"clk|rst|valid_in|valid_out|x|y|a|q|dut|inputs|expected|applied|cycle|sent|checked|passed"
    r"|failed|N|LATENCY|RESET_CYCLES|BUBBLE_PERIOD|REPORT|MAX_CYCLES|_unused_ok"
    r"|l\d+_y|s\d+_y|v\d+|n\d+|i\d+|layer_\d+|neuron_\d+|acc\d+|ge\d+_\d+|ps\d+_\d+"
)


def top_identifier(name: str) -> str:
    """The top module's name: `identifier(name)`, with `_top` added when it would clash with a
    generated signal or instance name."""
    ident = identifier(name, "top")
    return f"{ident}_top" if RESERVED.fullmatch(ident) else ident


def is_identifier(name: str) -> bool:
    """Whether `name` is a plain Verilog identifier that is no keyword."""
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)) and name not in KEYWORDS
