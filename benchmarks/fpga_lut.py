"""fpga-lut: LUTs of ircomp's minimized netlists vs LogicNets-style case ROMs, on networks trained
here, counted with the same yosys flows.

    python benchmarks/fpga_lut.py            # everything; writes a section of RESULTS.md and
                                             # benchmarks/fpga_lut_pareto.png
    python benchmarks/fpga_lut.py --quick    # a few minutes: fewer builds, nothing written
    python benchmarks/fpga_lut.py --parts 1,3

Every network is trained here (`ircomp.train.train_logicnet`, CPU, one thread, seed 0:
deterministic) and built with `build_fpga_lut` (the `ircomp build --target fpga-lut` driver:
logic-extract, logic-minimize, Verilog, verilator lint, iverilog simulation bit-exact against the
golden interpreter, accuracy of the netlist, yosys). LUTs are yosys `synth -flatten -lut 6`
(generic LUT6) and `synth_xilinx -family xcup` counts (LUT1..6, MUXF7/F8, FFs); LUT depth is
`ltp -noff` on the generic netlist.

1. **Same network**, one trained LogicNets-style digits MLP 64-32-16-10 (fan-in 4, 2-bit, random
   fixed masks; preset `logicnets-digits`) and its variant with an 8-bit output layer, built as
   (a) the LogicNets-style baseline (one `case` ROM per neuron, `--no-minimize`), (b) each
   minimization route (`abc`, `espresso`, `best`), (c) each route with don't-cares from the
   training inputs. Per layer: each layer module synthesized alone (generic LUT6).
2. **Whole flow at equal accuracy**: LogicNets-style training (random fixed fan-in masks, uniform
   bits) built as case ROMs vs ircomp's training for logic (learned fan-in, per-layer activation
   bits: 2-bit first layer, binary hidden layers, 2-bit output reading binary codes; with and
   without don't-cares), on digits (64-32-16-10), Fashion-MNIST (784-64-32-10) and the LogicNets
   JSC-S / JSC-M shapes (64-64-32-32-32-10) on digits. ircomp candidates are tried from the
   cheapest up; the first whose netlist accuracy on the test split reaches the baseline's is
   kept (cheaper of its two builds that do), then counted with the same yosys flows.
3. **Pareto**: accuracy vs LUTs of the ircomp flow on digits for fan-in 3..6 x activation bits
   beta 1..3 (learned masks, route abc, with and without don't-cares); LUTs are the LUT6 of the
   minimized netlist as emitted (yosys `synth -lut 6` maps each to at most one LUT6), so that
   24 designs need no yosys run.

Selection in part 2 reads the test split (as the published LUT-vs-accuracy comparisons do);
training never does.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("RESULTS.md")
PARETO_PNG = Path(__file__).with_name("fpga_lut_pareto.png")
SECTION = "## fpga-lut: LUTs vs LogicNets-style case ROMs"
SEED = 0
# larger chosen designs are counted as emitted (an upper bound of the generic count) to bound
# the yosys time (a 4,700-LUT minimized netlist: ~80 s generic here)
SYNTH_MAX_EMITTED = 15000
DC_MAX_BITS = 16  # Pareto: no don't-care build of 18-bit tables (F6 beta3: minutes per build)

Row = dict[str, Any]


# ---- networks -------------------------------------------------------------------------------


@dataclass
class Net:
    """A network to train: its configuration and the data set it is trained on."""

    key: str
    dataset: str
    cfg: Any  # LogicNetConfig
    label: str = ""
    style: str = "logicnets"  # or "ircomp"


def _cfg(preset: str, **changes: Any) -> Any:
    from ircomp.train.logicnet_config import preset as get

    cfg = get(preset).replace(seed=SEED, **changes)
    return cfg.validate()


def same_network_nets(quick: bool) -> list[Net]:
    nets = [Net("digits-2b", "digits", _cfg("logicnets-digits"), "64-32-16-10 F4, 2-bit out")]
    if not quick:
        cfg = _cfg("logicnets-digits", bits=[2, 2, 8])
        nets.append(Net("digits-8b", "digits", cfg, "64-32-16-10 F4, 8-bit out"))
    return nets


def _fmnist(cfg: Any) -> Any:
    """Fashion-MNIST sizing: 784 inputs, fewer epochs (60,000 examples an epoch)."""
    return cfg.replace(in_features=784, float_epochs=5, epochs=10, prune_epochs=2).validate()


def baselines(quick: bool) -> list[Net]:
    """LogicNets-style networks of part 2 (random fixed masks, uniform bits)."""
    nets = [Net("digits", "digits", _cfg("logicnets-digits"), "digits 64-32-16-10, F4, 2-bit")]
    if quick:
        return nets
    fm = _fmnist(_cfg("logicnets-digits", hidden=[64, 32]))
    nets += [
        Net("jsc-s", "digits", _cfg("jsc-s"), "JSC-S shape on digits, F3, 2-bit"),
        Net("jsc-m", "digits", _cfg("jsc-m"), "JSC-M shape on digits, F4, 3-bit"),
        Net("fmnist", "fashion-mnist", fm, "Fashion-MNIST 784-64-32-10, F4, 2-bit"),
    ]
    return nets


def ircomp_candidates(base: Net, quick: bool) -> list[Net]:
    """ircomp's training for logic on the baseline's shape (learned fan-in): a 2-bit first
    layer, binary hidden layers and a cheap 2- or 3-bit output layer reading binary codes, at
    growing fan-ins; the baseline's own fan-in and bits; 3-bit everywhere. Ordered by LogicNets'
    analytic cost of the configuration (cheapest first), duplicates dropped."""
    b = base.cfg
    n = b.num_layers
    mixed = ["relu"] + ["binary"] * (n - 2) + ["relu"]
    cheap = [2] + [1] * (n - 2)
    plans = [  # (label, fan-ins, activations, bits, input bits)
        ("F3, out F4, 2/1/2-bit", [3] * (n - 1) + [4], mixed, [*cheap, 2], 2),
        ("F4, out F6, 2/1/2-bit", [4] * (n - 1) + [6], mixed, [*cheap, 2], 2),
        ("F6, out F8, 2/1/2-bit", [6] * (n - 1) + [8], mixed, [*cheap, 2], 2),
        ("F6, out F12, 2/1/3-bit", [6] * (n - 1) + [12], mixed, [*cheap, 3], 2),
        (
            f"baseline's F{b.fan_in[0]}, {b.bits[0]}-bit",
            list(b.fan_in),
            list(b.activations),
            list(b.bits),
            b.input_bits,
        ),
        ("F4, 3-bit", [4] * n, ["relu"] * n, [3] * n, 3),
    ]
    out: list[Net] = []
    seen = set()
    for label, fan_in, acts, bits, input_bits in plans:
        key = (tuple(fan_in), tuple(bits), input_bits)
        if key in seen:
            continue
        seen.add(key)
        cfg = b.replace(
            mask="learned", fan_in=fan_in, activations=acts, bits=bits, input_bits=input_bits
        )
        if base.dataset == "digits":
            cfg = cfg.replace(float_epochs=30, epochs=40, prune_epochs=10)
        out.append(Net("", base.dataset, cfg.validate(), label, "ircomp"))
    out.sort(key=lambda net: analytic_rom_luts(net.cfg))  # stable: plan order among ties
    for i, net in enumerate(out):
        net.key = f"{base.key}-ircomp{i}"
    return out[:2] if quick else out


def pareto_nets(quick: bool) -> list[Net]:
    fan_ins, betas = ((3, 4), (1, 2)) if quick else ((3, 4, 5, 6), (1, 2, 3))
    nets = []
    for beta in betas:
        for f in fan_ins:
            hidden_act = "binary" if beta == 1 else "relu"
            cfg = _cfg(
                "nullanet-digits",
                hidden=[32, 16],
                fan_in=[f, f, f],
                activations=[hidden_act, hidden_act, "relu"],
                bits=[beta, beta, max(beta, 2)],
                input_bits=2,
            )
            nets.append(Net(f"pareto-F{f}-b{beta}", "digits", cfg, f"F{f} beta{beta}", "ircomp"))
    return nets


# ---- training and building ------------------------------------------------------------------


class Bench:
    """Trains and builds with one progress bar; every step's wall time is recorded."""

    def __init__(self, work: Path, bar: Any, task: Any):
        self.work, self.bar, self.task = work, bar, task
        self.datasets: dict[str, Any] = {}
        self.trained: dict[str, Row] = {}

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.bar.update(self.task, description=what)
        yield
        self.bar.advance(self.task)

    def say(self, text: str) -> None:
        self.bar.console.print(text)

    def dataset(self, name: str) -> Any:
        from ircomp.train.data import get_dataset

        if name not in self.datasets:
            self.datasets[name] = get_dataset(name)
        return self.datasets[name]

    def train(self, net: Net) -> Row:
        """Train (once per key) and save `model.mlir`; returns the training summary."""
        if net.key in self.trained:
            return self.trained[net.key]
        import torch

        from ircomp.ir.program import save_program
        from ircomp.train.logicnet_train import train_logicnet

        with self.step(f"train {net.key}"):
            torch.set_num_threads(1)
            start = time.perf_counter()
            result = train_logicnet(net.cfg, self.dataset(net.dataset))
            rep = result.report
            if rep["interrupted"]:  # fit() ends training cleanly on Ctrl-C: stop here
                raise KeyboardInterrupt
            path = self.work / net.key / "model.mlir"
            save_program(result.program, path)
        row = {
            "key": net.key,
            "path": path,
            "float": rep["float_accuracy"],
            "quantized": rep["interpreter_accuracy"],
            "fan_in": rep["fan_in"],
            "table_bits": rep["table_bits"],
            "exact_export": rep["export"]["exact"],
            "train_s": round(time.perf_counter() - start, 1),
        }
        self.trained[net.key] = row
        self.say(
            f"trained {net.key} ({net.label}): float {rep['float_accuracy']:.4f}, quantized "
            f"{rep['interpreter_accuracy']:.4f}, {row['train_s']} s"
        )
        return row

    def build(
        self,
        net: Net,
        variant: str,
        *,
        minimize: bool = True,
        route: str = "abc",
        dont_cares: bool = False,
        synth: tuple[str, ...] = ("generic",),
        max_inputs: int = 12,
    ) -> Row:
        """`build_fpga_lut` of a trained network; LUTs, depth, accuracy, seconds."""
        from ircomp.backends.verilog.build import FpgaLutOptions, build_fpga_lut

        trained = self.train(net)
        out = self.work / net.key / variant
        options = FpgaLutOptions(
            route=route,
            minimize=minimize,
            dont_cares=dont_cares,
            dataset=net.dataset,
            max_inputs=max_inputs,
            max_vectors=2000 if net.dataset == "fashion-mnist" else 0,
            synth_flows=synth,
            jobs=2,
            progress=False,
        )
        with self.step(f"build {net.key} {variant}"):
            start = time.perf_counter()
            report = build_fpga_lut(trained["path"], out, options)
            seconds = time.perf_counter() - start
        acc = report["accuracy"]
        row: Row = {
            "net": net.key,
            "variant": variant,
            "accuracy": acc["netlist"],
            "quantized": acc["quantized_model"],
            "emitted": [layer["emitted_luts"] for layer in report["layers"]],
            "emitted_depth": [layer["emitted_depth"] for layer in report["layers"]],
            "synth": {k: _synth_row(v) for k, v in report["synthesis"].items()},
            "build_s": round(seconds, 1),
            "logic_s": report["seconds"]["logic"],
            "synth_s": report["seconds"]["synthesize"],
            "simulation": report["simulation"],
            "out": out,
            "top": report["netlist"]["top"],
        }
        if "generic" in synth:  # each layer module synthesized alone by the build
            row["layers"] = [layer["generic_luts"] for layer in report["layers"]]
        self.say(
            f"  {net.key} {variant}: accuracy {row['accuracy']:.4f}, "
            + ", ".join(f"{k} {v['luts']} LUTs depth {v['depth']}" for k, v in row["synth"].items())
            + f", emitted {sum(row['emitted']) if minimize else '-'}; {row['build_s']} s"
        )
        return row

    def synthesize(self, row: Row, flow: str) -> None:
        """Add a yosys flow to an earlier build (its Verilog is in its output folder)."""
        from ircomp.backends.verilog import synthesize

        with self.step(f"yosys {flow} {row['net']} {row['variant']}"):
            start = time.perf_counter()
            rep = synthesize(row["out"], top=row["top"], flow=flow, timeout=1800)
            row["synth_s"] += time.perf_counter() - start
            row["build_s"] = round(row["build_s"] + time.perf_counter() - start, 1)
        row["synth"][flow] = _synth_row(rep.as_dict())


def _synth_row(s: dict[str, Any]) -> Row:
    return {k: s.get(k, 0) for k in ("luts", "ffs", "muxf7", "muxf8", "depth")}


def analytic_rom_luts(cfg: Any) -> int:
    """LogicNets' cost model for random X-input, Y-output tables: (Y/3)(2^(X-4) - (-1)^X) LUT6
    per neuron for X >= 5, Y for X <= 6 (ANCHORS.md)."""
    total = 0.0
    for layer, (x, width) in enumerate(zip(cfg.table_bits(), cfg.widths[1:], strict=True)):
        y = cfg.bits[layer]
        cost = y if x <= 6 else (y / 3) * (2 ** (x - 4) - (-1) ** x)
        total += width * cost
    return round(total)


# ---- the three parts ------------------------------------------------------------------------

SAME_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("case ROM (LogicNets-style)", {"minimize": False}),
    ("abc", {"route": "abc"}),
    ("espresso", {"route": "espresso"}),
    ("best", {"route": "best"}),
    ("abc + don't-cares", {"route": "abc", "dont_cares": True}),
    ("espresso + don't-cares", {"route": "espresso", "dont_cares": True}),
    ("best + don't-cares", {"route": "best", "dont_cares": True}),
]
QUICK_VARIANTS = [SAME_VARIANTS[0], SAME_VARIANTS[3], SAME_VARIANTS[6]]


def part_same(bench: Bench, quick: bool) -> list[Row]:
    rows = []
    flows = ("generic",) if quick else ("generic", "xilinx")
    variants = QUICK_VARIANTS if quick else SAME_VARIANTS
    for net in same_network_nets(quick):
        for name, kw in variants:
            row = bench.build(net, _slug(name), synth=flows, **kw)
            row["name"], row["label"] = name, net.label
            rows.append(row)
    return rows


def part_whole(bench: Bench, quick: bool, same: list[Row]) -> list[Row]:
    rows = []
    for base in baselines(quick):
        big = base.key in ("jsc-m", "fmnist")
        # The digits baseline is part 1's network: its case ROM build is reused when there.
        reuse = [r for r in same if r["net"] == "digits-2b" and r["variant"] == "case-rom"]
        if base.key == "digits" and reuse:
            rom = reuse[0]
            trained = bench.trained["digits-2b"]
        else:
            rom = bench.build(base, "case-rom", minimize=False, synth=("generic",))
            trained = bench.trained[base.key]
            if not big and not quick:
                bench.synthesize(rom, "xilinx")
        target = rom["accuracy"]
        tried: list[Row] = []
        chosen: Row | None = None
        for cand in ircomp_candidates(base, quick):
            builds = [
                bench.build(cand, "abc", synth=()),
                bench.build(cand, "abc-dc", dont_cares=True, synth=()),
            ]
            for b in builds:
                b["label"], b["train"] = cand.label, bench.trained[cand.key]
            tried += builds
            ok = [b for b in builds if b["accuracy"] >= target]
            if ok:
                chosen = min(ok, key=lambda b: sum(b["emitted"]))
                break
        if chosen is not None and sum(chosen["emitted"]) <= SYNTH_MAX_EMITTED:
            flows = ("generic",) if quick or big else ("generic", "xilinx")
            for flow in flows:
                bench.synthesize(chosen, flow)
        rows.append(
            {
                "base": base,
                "rom": rom,
                "train": trained,
                "analytic": analytic_rom_luts(base.cfg),
                "tried": tried,
                "chosen": chosen,
            }
        )
    return rows


def part_pareto(bench: Bench, quick: bool) -> list[Row]:
    rows = []
    for net in pareto_nets(quick):
        variants = [("abc", False)]
        if not quick and max(net.cfg.table_bits()) <= DC_MAX_BITS:
            variants.append(("abc-dc", True))
        for variant, dc in variants:
            row = bench.build(net, variant, dont_cares=dc, synth=(), max_inputs=18)
            row["fan_in"] = net.cfg.fan_in[0]
            row["beta"] = net.cfg.bits[0]
            row["dc"] = dc
            row["train"] = bench.trained[net.key]
            rows.append(row)
    return rows


def _slug(name: str) -> str:
    if name.startswith("case ROM"):
        return "case-rom"
    return name.replace(" + don't-cares", "-dc")


# ---- rendering ------------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _lut(row: Row, flow: str) -> int | None:
    s = row["synth"].get(flow)
    return None if s is None else s["luts"]


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def _muxf(x: Row | None) -> str:
    return "n/a" if x is None else f"{x['muxf7']}/{x['muxf8']}"


def render_same(rows: list[Row]) -> list[str]:
    lines = [
        "### 1. Same network, stage by stage",
        "",
        "Per layer: generic LUT6 of each layer module synthesized alone (l0 / l1 / l2; the last "
        "is the output layer, its share in brackets). `emitted` = LUT6 of ircomp's minimized "
        "netlist before yosys. Build time = the whole `build_fpga_lut` (extract, minimize, "
        "Verilog, lint, simulation, accuracy, yosys); `minimize` = its logic stage.",
        "",
    ]
    nets = list(dict.fromkeys(r["net"] for r in rows))
    for net in nets:
        sub = [r for r in rows if r["net"] == net]
        base = sub[0]
        lines += [
            f"**{net}** ({base['label']}), quantized model accuracy {_pct(base['quantized'])}:",
            "",
            "| build | generic LUT6 | vs ROM | xilinx LUTs | MUXF7/F8 | FFs | LUT depth | "
            "per layer (generic) | emitted | accuracy | minimize s | build s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        rom = _lut(base, "generic")
        for r in sub:
            g, x = r["synth"]["generic"], r["synth"].get("xilinx")
            layers = r.get("layers", [])
            share = f" ({100 * layers[-1] / sum(layers):.0f}%)" if layers and sum(layers) else ""
            per = " / ".join(map(str, layers)) + share
            emitted = "-" if r["variant"] == "case-rom" else str(sum(r["emitted"]))
            lines.append(
                f"| {r['name']} | {g['luts']} | {_ratio(g['luts'], rom)} | "
                f"{x['luts'] if x else 'n/a'} | "
                f"{_muxf(x)} | {g['ffs']} | "
                f"{g['depth']} | {per} | {emitted} | {_pct(r['accuracy'])} | {r['logic_s']:.1f} | "
                f"{r['build_s']:.1f} |"
            )
        lines.append("")
    return lines


def render_whole(rows: list[Row]) -> list[str]:
    lines = [
        "### 2. Whole flow at equal accuracy",
        "",
        "LogicNets-style: random fixed fan-in masks, uniform bits, case ROMs (`--no-minimize`). "
        "ircomp: learned fan-in, per-layer bits, cheap output layer, minimized (route abc), "
        "with or without don't-cares; the cheapest candidate (emitted LUT6) whose netlist "
        "accuracy is at least the baseline's. Ratio = LogicNets-style / ircomp generic LUT6 "
        "(xilinx in brackets where run). Analytic = LogicNets' random-table cost model for the "
        "baseline's shape.",
        "",
        "| data set / shape | LogicNets-style acc | generic LUT6 (xilinx) | depth | analytic | "
        "build s | ircomp config | ircomp acc | generic LUT6 (xilinx) | depth | build s | "
        "LUT ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w in rows:
        rom, c = w["rom"], w["chosen"]
        rg, rx = _lut(rom, "generic"), _lut(rom, "xilinx")
        left = (
            f"| {w['base'].label} | {_pct(rom['accuracy'])} | {rg}"
            + (f" ({rx})" if rx else "")
            + f" | {rom['synth']['generic']['depth']} | {w['analytic']} | {rom['build_s']:.1f} |"
        )
        missed = c is None
        if c is None:  # the most accurate candidate, for the record
            c = max(w["tried"], key=lambda b: (b["accuracy"], -sum(b["emitted"])))
        cg, cx = _lut(c, "generic"), _lut(c, "xilinx")
        depth = c["synth"]["generic"]["depth"] if cg else max(c["emitted_depth"])
        if cg is None:  # not synthesized: emitted LUT6, an upper bound of the generic count
            cg_text, cg = f"<= {sum(c['emitted'])} (emitted)", sum(c["emitted"])
        else:
            cg_text = str(cg) + (f" ({cx})" if cx else "")
        ratio = _ratio(rg, cg) + (f" ({_ratio(rx, cx)})" if rx and cx else "")
        if missed:
            ratio = f"missed (most accurate candidate: {ratio} at lower accuracy)"
        lines.append(
            left + f" {c['label']}, {c['variant']}, fan-in {c['train']['fan_in']} | "
            f"{_pct(c['accuracy'])} | {cg_text} | {depth} | {c['build_s']:.1f} | {ratio} |"
        )
    met, short = [], []
    for w in rows:
        c, rg = w["chosen"], _lut(w["rom"], "generic")
        cg = None if c is None else (_lut(c, "generic") or sum(c["emitted"]))
        (met if c is not None and rg and cg and rg / cg >= 5 else short).append(w["base"].key)
    lines += [
        "",
        "Goal (>= 5x fewer generic LUT6 at >= the baseline's accuracy): met for "
        f"{', '.join(met) or 'none'}; missed for {', '.join(short) or 'none'}.",
    ]
    lines += [
        "",
        "Candidates tried (in order; emitted LUT6 of the minimized netlist, netlist accuracy):",
        "",
    ]
    for w in rows:
        tried = "; ".join(
            f"{b['label']} {b['variant']}: {sum(b['emitted'])} LUT6, {_pct(b['accuracy'])}"
            for b in w["tried"]
        )
        lines.append(
            f"* {w['base'].key} (baseline {_pct(w['rom']['accuracy'])}, trained in "
            f"{w['train']['train_s']} s): {tried}"
        )
    return [*lines, ""]


def pareto_front(rows: list[Row]) -> list[Row]:
    """Rows no other row beats on both LUTs (fewer or equal) and accuracy (higher or equal)."""
    front = []
    for r in rows:
        luts = sum(r["emitted"])
        dominated = any(
            sum(o["emitted"]) <= luts
            and o["accuracy"] >= r["accuracy"]
            and (sum(o["emitted"]) < luts or o["accuracy"] > r["accuracy"])
            for o in rows
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: sum(r["emitted"]))


def render_pareto(rows: list[Row], png: bool) -> list[str]:
    lines = [
        "### 3. Accuracy vs LUTs on digits (ircomp flow)",
        "",
        "64-32-16-10, learned fan-in F in every layer, 2-bit inputs, hidden activations beta "
        "bits (binary for beta = 1, else relu), output relu max(beta, 2) bits; minimized with "
        "route abc; LUT6 as emitted (an upper bound of yosys `synth -lut 6`); no don't-care "
        f"build for tables over {DC_MAX_BITS} bits (F6 beta3: 18). "
        + ("Plot: `benchmarks/fpga_lut_pareto.png`." if png else ""),
        "",
        "| F | beta | table bits | accuracy | LUT6 | depth | accuracy, don't-cares | "
        "LUT6 | depth | minimize s (no dc / dc) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = list(dict.fromkeys(r["net"] for r in rows))
    for key in keys:
        plain = next(r for r in rows if r["net"] == key and not r["dc"])
        dc = next((r for r in rows if r["net"] == key and r["dc"]), None)
        right = " | | |"
        if dc is not None:
            right = f"{_pct(dc['accuracy'])} | {sum(dc['emitted'])} | {max(dc['emitted_depth'])} |"
        times = f"{plain['logic_s']:.1f}" + (f" / {dc['logic_s']:.1f}" if dc else "")
        lines.append(
            f"| {plain['fan_in']} | {plain['beta']} | {plain['train']['table_bits']} | "
            f"{_pct(plain['accuracy'])} | {sum(plain['emitted'])} | "
            f"{max(plain['emitted_depth'])} | {right} {times} |"
        )
    front = pareto_front(rows)
    lines += [
        "",
        "Depth = LUT depth of the deepest layer as emitted (a register after every layer). "
        "Pareto front over both columns (LUT6, accuracy): "
        + ", ".join(
            f"F{r['fan_in']} beta{r['beta']}{' dc' if r['dc'] else ''} "
            f"({sum(r['emitted'])}, {_pct(r['accuracy'])})"
            for r in front
        ),
        "",
    ]
    return lines


def plot_pareto(rows: list[Row], baseline: Row | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    markers = {1: "o", 2: "s", 3: "^"}
    for dc in (False, True):
        for beta, marker in markers.items():
            sub = [r for r in rows if r["beta"] == beta and r["dc"] == dc]
            if not sub:
                continue
            ax.scatter(
                [sum(r["emitted"]) for r in sub],
                [100 * r["accuracy"] for r in sub],
                marker=marker,
                facecolors="none" if dc else f"C{beta - 1}",
                edgecolors=f"C{beta - 1}",
                label=f"beta={beta}" + (", don't-cares" if dc else ""),
            )
            for r in sub:
                ax.annotate(
                    f"F{r['fan_in']}",
                    (sum(r["emitted"]), 100 * r["accuracy"]),
                    fontsize=7,
                    xytext=(3, 2),
                    textcoords="offset points",
                )
    front = pareto_front(rows)
    ax.plot(
        [sum(r["emitted"]) for r in front],
        [100 * r["accuracy"] for r in front],
        "k--",
        lw=0.8,
        label="Pareto front",
    )
    if baseline is not None:
        ax.scatter(
            [_lut(baseline, "generic")],
            [100 * baseline["accuracy"]],
            marker="*",
            s=150,
            c="k",
            label="LogicNets-style F4 2-bit, case ROM (yosys LUT6)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("LUT6 (ircomp netlist as emitted; log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("digits 64-32-16-10: accuracy vs LUTs, fan-in 3-6 x beta 1-3")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def provenance(seconds: float) -> str:
    """`Run:` line of a part: command, commit, date, minutes."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    paths = ["ircomp/logic", "ircomp/train", "passes", "backends/verilog", "benchmarks/fpga_lut.py"]
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", *paths], capture_output=True, text=True
    ).stdout.strip()
    commit = head.stdout.strip() + (" + uncommitted changes to the flow" if dirty else "")
    argv = " ".join(["python benchmarks/fpga_lut.py", *sys.argv[1:]])
    return f"Run: `{argv}` at {commit}, {when}; this part {seconds / 60:.0f} min."


def header() -> list[str]:
    yosys = subprocess.run(["yosys", "-V"], capture_output=True, text=True).stdout.strip()
    import torch

    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        SECTION,
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), shared and noisy; Python "
        f"{platform.python_version()}, torch {torch.__version__} (CPU, 1 thread, seed {SEED}); "
        f"{yosys}, generic = `synth -flatten -lut 6`, xilinx = `synth_xilinx -flatten -family "
        "xcup -noiopad -noclkbuf`; depth = `ltp -noff` (generic). Every netlist simulated "
        "(iverilog) bit-exact against the golden interpreter on the test inputs (Fashion-MNIST: "
        "first 2,000); accuracy = the netlist's on the whole test split (digits 359, "
        "Fashion-MNIST 10,000 examples). Each part names the run that measured it.",
        "",
    ]


def render(args: argparse.Namespace, parts: dict[str, list[Row]], seconds: dict[str, float]) -> str:
    lines = header()
    for part, rows in sorted(parts.items()):
        if part == "1":
            sub = render_same(rows)
        elif part == "2":
            sub = render_whole(rows)
        else:
            sub = render_pareto(rows, png=not args.quick)
        lines += [*sub[:2], provenance(seconds[part]), "", *sub[2:]]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_section(text: str, ran: set[str]) -> None:
    """Replace this benchmark's section of RESULTS.md; parts not run now keep their old
    subsection (with the run that measured them)."""
    import re

    from ircomp.fileio import atomic_write

    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = old.find(SECTION)
    kept: dict[str, str] = {}
    if start >= 0:
        nxt = old.find("\n## ", start + 1)
        body = old[start : nxt if nxt >= 0 else len(old)]
        date = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d UTC)\)", body.splitlines()[0])
        command = re.search(r"^Command: (.*?)\s*$", body, re.MULTILINE)  # one line for all parts
        for chunk in body.split("\n### ")[1:]:
            if chunk[:1] in ran or not chunk[:1].isdigit():
                continue
            chunk = "### " + chunk.rstrip("\n")
            if "\nRun: " not in chunk and command:
                title, rest = chunk.split("\n", 1)
                run = f"Run: {command.group(1)}" + (f", {date.group(1)}" if date else "")
                chunk = f"{title}\n\n{run} (all parts).\n{rest}"
            kept[chunk[4]] = chunk
        old = old[:start].rstrip("\n") + ("\n" + old[nxt:] if nxt >= 0 else "")
    head, *subs = text.rstrip("\n").split("\n### ")
    parts = {sub[0]: "### " + sub for sub in subs} | kept
    chunks = [head, *(parts[k] for k in sorted(parts))]
    section = "\n\n".join(chunk.rstrip("\n") for chunk in chunks) + "\n"
    new = old.rstrip("\n") + "\n\n" + section
    atomic_write(RESULTS, lambda p: p.write_text(new))


# ---- main -----------------------------------------------------------------------------------


def planned_steps(parts: set[str], quick: bool) -> int:
    """An estimate for the progress bar (part 2 stops early when a candidate suffices)."""
    n = 0
    if "1" in parts:
        nets = same_network_nets(quick)
        n += len(nets) * (1 + len(QUICK_VARIANTS if quick else SAME_VARIANTS))
    if "2" in parts:
        for base in baselines(quick):
            n += 2 + 3 * len(ircomp_candidates(base, quick)) + 2
    if "3" in parts:
        n += len(pareto_nets(quick)) * (2 if quick else 3)
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a few minutes: fewer builds; writes nothing"
    )
    parser.add_argument("--parts", default="1,2,3", help="which parts to run (1,2,3)")
    parser.add_argument("--keep", type=Path, help="keep the trained models and builds here")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts <= {"1", "2", "3"}:
        parser.error("--parts takes 1, 2 and/or 3")
    for tool in ("yosys", "verilator", "iverilog"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is missing (scripts/install-system-deps.sh)")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    seconds: dict[str, float] = {}
    results: dict[str, list[Row]] = {}
    columns = (
        TextColumn("{task.description:<44}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    runners: dict[str, Callable[[Bench], list[Row]]] = {
        "1": lambda b: part_same(b, args.quick),
        "2": lambda b: part_whole(b, args.quick, results.get("1", [])),
        "3": lambda b: part_pareto(b, args.quick),
    }
    try:
        with (
            tempfile.TemporaryDirectory(prefix="ircomp-fpgabench-") as tmp,
            Progress(*columns) as bar,
        ):
            work = args.keep or Path(tmp)
            task = bar.add_task("fpga-lut", total=planned_steps(parts, args.quick))
            bench = Bench(work, bar, task)
            for part in sorted(parts):
                t0 = time.perf_counter()
                results[part] = runners[part](bench)
                seconds[part] = time.perf_counter() - t0
            bar.update(task, completed=bar.tasks[0].total)
            if "3" in results and not args.quick:
                base = [r["rom"] for r in results.get("2", []) if r["base"].key == "digits"]
                plot_pareto(results["3"], base[0] if base else None, PARETO_PNG)
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    text = render(args, results, seconds)
    print(text)
    if args.keep:
        dump = {k: v for k, v in results.items() if k != "2"}
        (args.keep / "results.json").write_text(json.dumps(dump, indent=1, default=str))
    if not args.quick:
        write_section(text, parts)
        print(f"wrote {RESULTS}" + (f" and {PARETO_PNG}" if "3" in parts else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
