"""`ircomp build --target fpga-lut`: a quantized model -> truth tables -> LUT networks -> Verilog,
verified by simulation against the golden interpreter and counted by yosys.

Stages (each timed, shown with a progress bar): load, prepare (`fold-batchnorm,constant-fold,
cse,dce`), logic-extract, logic-minimize, accuracy, verilog, lint, simulate, synthesize. The
program is cut in two at the first logic layer: the *prologue* (e.g. the input quantizer) stays
on the host and encodes dataset rows into input codes; the *netlist* is the chain of logic layers,
emitted as Verilog and simulated on the test inputs' codes. Everything lands in the output folder
at once (`report.json`, `report.md`, the Verilog, the testbench, the minimized IR).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.ir import SSAValue

from ircomp.backends.verilog import (
    Netlist,
    SynthReport,
    emit_verilog,
    find_tool,
    lint,
    simulate,
    synthesize,
    write_testbench,
)
from ircomp.backends.verilog.tools import stop_running_tools
from ircomp.dialects import logic, nn
from ircomp.dialects.nn import op_name
from ircomp.errors import InputError, IrcompError
from ircomp.fileio import write_folder
from ircomp.interpreter import Interpreter
from ircomp.ir.program import Program, print_module
from ircomp.ir.slicing import slice_program
from ircomp.pass_manager import PassManager, parse_pipeline

LOGIC_OPS = logic.LAYER_OPS
PREPARE = "fold-batchnorm,constant-fold,matmul-to-linear,narrow-codes,cse,dce"
SIMULATORS = ("iverilog", "verilator", "both", "none")
ROUTES = ("best", "abc", "espresso")


@dataclass(frozen=True)
class FpgaLutOptions:
    """What `ircomp build --target fpga-lut` can be told."""

    top: str = "ircomp_top"
    pipeline_stages: int = 1
    max_inputs: int = 12
    max_rows: int = 1 << 24  # truth-table rows enumerated per layer, at most
    decompose: str = "threshold"  # neurons over max_inputs: thresholds (integer layers) or error
    realize: str = "table"  # table | threshold | auto (logic-extract's option)
    route: str = "best"
    minimize: bool = True  # False: keep the truth tables (LogicNets-style case ROMs)
    dont_cares: bool = False  # care sets from the training inputs; other rows are don't-cares
    dataset: str | None = None  # digits | fashion-mnist | .npz; default: the example's
    max_vectors: int = 0  # testbench vectors (0: the whole test split)
    simulator: str = "iverilog"
    synth_flows: tuple[str, ...] = ("generic", "xilinx")
    jobs: int = 2
    progress: bool = True


@dataclass
class Stages:
    """Wall time of each stage, with a progress bar over the stages."""

    names: list[str]
    enabled: bool
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def running(self) -> Iterator[Stages]:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description:<16}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, disable=not self.enabled, transient=True) as bar:
            self._bar, self._task = bar, bar.add_task("fpga-lut", total=len(self.names))
            yield self

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._bar.update(self._task, description=name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        self._bar.advance(self._task)


# ---- loading --------------------------------------------------------------------------------


def builtin_example() -> tuple[Program, dict[str, Any]]:
    """The fan-in-constrained digits MLP shipped in the package, with its metadata."""
    from ircomp.examples import digits_lut

    return digits_lut.load(), digits_lut.meta()


def load_model(path: Path | None, requant_mode: str = "onnx") -> tuple[Program, dict[str, Any]]:
    if path is None:
        return builtin_example()
    if path.suffix == ".onnx":
        from ircomp.frontends import onnx as onnx_frontend

        return onnx_frontend.load(str(path), requant_mode=requant_mode), {}
    if path.suffix == ".mlir":
        from ircomp.ir.program import load_program

        return load_program(path), {}
    raise InputError(f"{path}: expected a .onnx or .mlir model")


def _dataset(name: str | None, meta: dict[str, Any]) -> Any:
    from ircomp.train.data import get_dataset

    chosen = name or meta.get("dataset")
    if chosen is None:
        raise InputError(
            "fpga-lut needs test data to check the netlist and measure its accuracy: pass "
            "--dataset digits|fashion-mnist|PATH.npz"
        )
    return get_dataset(chosen)


def _rows_for(program: Program, x: np.ndarray) -> np.ndarray:
    """Dataset examples reshaped to the model's input (batch first, e.g. [N,1,8,8] -> [N,64])."""
    fn = _main(program)
    shape = fn.function_type.inputs.data[0].get_shape()  # type: ignore[attr-defined]
    features = int(np.prod([d for d in shape[1:]]))
    if any(d < 0 for d in shape[1:]) or features != int(np.prod(x.shape[1:])):
        raise InputError(
            f"the model takes inputs of shape {list(shape)}, the data set has examples of shape "
            f"{list(x.shape[1:])}"
        )
    return x.reshape(len(x), *shape[1:]).astype(np.float32)


def _main(program: Program) -> func.FuncOp:
    for op in program.module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == "main":
            return op
    raise InputError("the model has no @main function")


def run_batched(program: Program, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """The first output of `@main` on rows `x`, in chunks (rows one by one for a static batch
    of 1)."""
    interpreter = Interpreter(program)
    leading = interpreter.inputs[0].shape[0]
    step = 1 if leading == 1 else batch
    outs = [interpreter([x[i : i + step]])[0] for i in range(0, len(x), step)]
    return np.concatenate(outs)


def accuracy(program: Program, x: np.ndarray, y: np.ndarray) -> float:
    scores = run_batched(program, x)
    return float((scores.reshape(len(x), -1).argmax(axis=1) == y).mean())


# ---- the compiler pipeline ------------------------------------------------------------------


def _pipeline(options: FpgaLutOptions, care_path: Path | None) -> str:
    extract = (
        f"logic-extract{{max-inputs={options.max_inputs} max-rows={options.max_rows} "
        f"decompose={options.decompose} realize={options.realize}"
    )
    if care_path is not None:
        extract += f' care-data="{care_path}"'
    extract += "}"
    passes = [extract]
    if options.minimize:
        use_care = "true" if care_path is not None else "false"
        passes.append(
            f"logic-minimize{{route={options.route} jobs={options.jobs} use-care={use_care}}}"
        )
    return ",".join([*passes, "dce"])


def _run_passes(program: Program, pipeline: str) -> tuple[Program, dict[str, float]]:
    manager = PassManager(parse_pipeline(pipeline))
    result = manager.run(program)
    return result, {t.name: round(t.seconds, 3) for t in manager.timings}


def split_at_logic(program: Program) -> tuple[Program, Program]:
    """(prologue: @main's inputs -> the first logic layer's input codes, netlist: the logic
    chain). What follows the chain (e.g. a dequantize of the output codes) stays on the host;
    it may read nothing but the chain's result."""
    fn = _main(program)
    ops = [op for op in fn.body.block.ops if isinstance(op, LOGIC_OPS)]
    if not ops:
        reasons = "".join(f"\n  {line}" for line in unmapped_layers(program))
        raise InputError(
            "no layer of the model became logic: fpga-lut needs fully connected layers "
            "between tensors of low-bit integer codes (quantized activations, small fan-in); "
            f"`ircomp train` trains such a model.{reasons}"
        )
    returned = fn.body.block.last_op
    assert returned is not None
    result = ops[-1].results[0]
    try:
        slice_program(program, [result], list(returned.operands))
    except InputError:
        raise InputError(
            "the model's outputs do not all come from its last logic layer "
            f"('{op_name(ops[-1]) or ops[-1].name}'); fpga-lut builds models whose output is "
            "computed by the netlist (host-side steps after it may read only its codes)"
        ) from None
    source: SSAValue = ops[0].operands[0]
    prologue = slice_program(program, list(fn.body.block.args), [source])
    netlist = slice_program(program, [source], [result])
    return prologue, netlist


def _code_source(value: SSAValue) -> SSAValue:
    owner = value.owner
    return owner.input if isinstance(owner, nn.DequantizeOp) else value


def unmapped_layers(program: Program, limit: int = 8) -> list[str]:
    """Why each multiply-accumulate layer of the model stayed arithmetic (for error messages)."""
    lines = []
    for op in _main(program).body.block.ops:
        if not isinstance(op, nn.MacOp):
            continue
        label = f"layer '{op_name(op) or op.name}' ({op.name})"
        source = _code_source(op.operands[0])
        fmt = source.type.element_type  # type: ignore[attr-defined]
        if isinstance(op, nn.Conv2dOp):
            lines.append(
                f"{label}: convolutions are not mapped to logic; use fully connected layers"
            )
        elif logic.code_width(fmt) is None:
            lines.append(
                f"{label}: its input is {fmt}, not integer codes; quantize the "
                "activations feeding it (QONNX Quant, QDQ, ircomp train)"
            )
        else:
            lines.append(
                f"{label}: its output does not reach low-bit codes through per-feature "
                "ops; end it with a quantized activation"
            )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


def _layer_rows(program: Program) -> list[dict[str, Any]]:
    """Per logic layer: name, neurons, fan-in, input/output bits, distinct tables."""
    rows = []
    for op in _main(program).body.block.ops:
        if not isinstance(op, LOGIC_OPS):
            continue
        width_in, width_out = op.widths()
        row: dict[str, Any] = {
            "name": op_name(op) or "",
            "op": op.name,
            "neurons": op.results[0].type.get_shape()[-1],  # type: ignore[attr-defined]
            "input_bits": width_in,
            "output_bits": width_out,
        }
        for key in ("luts", "depth", "route", "tables", "fan_in", "realization"):
            attr = op.attributes.get(f"logic.{key}")
            if attr is not None:
                row[key] = getattr(attr, "data", None) or str(attr)
        rows.append(row)
    return rows


# ---- the build ------------------------------------------------------------------------------

STAGE_NAMES = [
    "load",
    "prepare",
    "logic",
    "accuracy",
    "verilog",
    "lint",
    "simulate",
    "synthesize",
]


def build_fpga_lut(
    model: Path | None, out: Path, options: FpgaLutOptions, requant_mode: str = "onnx"
) -> dict[str, Any]:
    """Build, verify and measure; writes `out/` whole and returns the report."""
    _check_options(options)
    stages = Stages(STAGE_NAMES, options.progress)
    report: dict[str, Any] = {"model": str(model) if model else "built-in digits example"}
    files: dict[str, str | bytes] = {}
    with stages.running(), tempfile.TemporaryDirectory() as scratch:
        with stages.stage("load"):
            program, meta = load_model(model, requant_mode)
            data = _dataset(options.dataset, meta)
            x_test = _rows_for(program, data.x_test)
            y_test = np.asarray(data.y_test)
        with stages.stage("prepare"):
            prepared, _ = _run_passes(program, PREPARE)
        with stages.stage("logic"):
            care_path = None
            if options.dont_cares:
                care_path = Path(scratch) / "care.npy"
                np.save(care_path, _rows_for(program, data.x_train))
            minimized, pass_seconds = _run_passes(prepared, _pipeline(options, care_path))
            prologue, netlist_ir = split_at_logic(minimized)
        with stages.stage("accuracy"):
            report["accuracy"] = {
                "float": meta.get("float_accuracy"),
                "quantized_model": accuracy(prepared, x_test, y_test),
                "netlist": accuracy(minimized, x_test, y_test),
                "dataset": data.name,
                "test_examples": len(x_test),
            }
            vectors = x_test if not options.max_vectors else x_test[: options.max_vectors]
            codes = run_batched(prologue, vectors)
        with stages.stage("verilog"):
            netlist = emit_verilog(
                netlist_ir, top=options.top, pipeline_stages=options.pipeline_stages
            )
            design = {**netlist.files, **write_testbench(netlist_ir, netlist, codes)}
        with stages.stage("lint"):
            linted = lint(netlist.files, top=netlist.top)
            if not linted.clean:
                raise IrcompError(
                    f"verilator lint warnings on the generated Verilog:\n{linted.output}"
                )
        with stages.stage("simulate"):
            report["simulation"] = _simulate(design, netlist.top, options.simulator)
        with stages.stage("synthesize"):
            whole, layers = synthesize_design(netlist, options.synth_flows, options.jobs)
            report["synthesis"] = {flow: rep.as_dict() for flow, rep in whole.items()}
        report["netlist"] = netlist.report()
        report["layers"] = _merge_layers(_layer_rows(minimized), netlist.report()["layers"], layers)
        report["options"] = asdict(options)
        report["seconds"] = {**stages.seconds, "passes": pass_seconds}
        files.update(design)
        files["netlist.mlir"] = print_module(netlist_ir.module)
        files["netlist.safetensors"] = _weights_bytes(netlist_ir, Path(scratch))
        files["report.json"] = json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
        files["report.md"] = report_markdown(report)
        write_folder(out, files)
    return report


def _check_options(options: FpgaLutOptions) -> None:
    if options.simulator not in SIMULATORS:
        raise InputError(f"--simulator must be one of {SIMULATORS}, got {options.simulator!r}")
    if options.route not in ROUTES:
        raise InputError(f"--route must be one of {ROUTES}, got {options.route!r}")
    if options.pipeline_stages < 0:
        raise InputError("--pipeline-stages must be 0 (combinational) or more")
    if options.max_vectors < 0:
        raise InputError("--max-vectors must be 0 (all) or more")
    for flow in options.synth_flows:
        if flow not in ("generic", "xilinx"):
            raise InputError(f"unknown synthesis flow {flow!r}: use generic and/or xilinx")
    _check_tools(options)


def _check_tools(options: FpgaLutOptions) -> None:
    """Fail before any work when a tool the options need is missing (names its package)."""
    tools = ["verilator"]  # lint
    if options.simulator in ("iverilog", "both"):
        tools += ["iverilog", "vvp"]
    if options.synth_flows:
        tools.append("yosys")
    for tool in tools:
        find_tool(tool)


def _simulate(design: dict[str, str], top: str, which: str) -> dict[str, Any]:
    simulators = ("iverilog", "verilator") if which == "both" else (which,)
    out: dict[str, Any] = {}
    for name in simulators:
        if name == "none":
            return {"skipped": True}
        result = simulate(design, top=top, simulator=name)
        out[name] = {"passed": result.passed, "total": result.total}
        if not result.ok:
            raise IrcompError(
                f"{name}: the netlist disagrees with the golden interpreter on "
                f"{result.failed} of {result.total} test vectors:\n{result.output[-2000:]}"
            )
    return out


def synthesize_design(
    netlist: Netlist, flows: Sequence[str], jobs: int
) -> tuple[dict[str, SynthReport], list[SynthReport] | None]:
    """yosys on the whole design in each flow and, with the generic flow, on each layer module
    alone (per-layer LUTs and depth); up to `jobs` yosys processes at once (0: one per core)."""
    tasks = [(flow, netlist.top) for flow in flows]
    if "generic" in flows:
        tasks += [("generic", layer.module) for layer in netlist.layers]
    workers = max(1, min(len(tasks), jobs or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(synthesize, netlist.files, top=top, flow=flow) for flow, top in tasks
        ]
        try:
            results = [future.result() for future in futures]
        except BaseException:  # an error or Ctrl-C: stop the other yosys runs too
            for future in futures:
                future.cancel()
            stop_running_tools()
            raise
    whole = dict(zip(flows, results[: len(flows)], strict=True))
    return whole, (results[len(flows) :] if "generic" in flows else None)


def _merge_layers(
    ir_rows: list[dict[str, Any]], emitted: Any, synthesized: list[SynthReport] | None
) -> list[dict[str, Any]]:
    merged = []
    for i, (row, info) in enumerate(zip(ir_rows, emitted, strict=True)):
        layer = {
            **row,
            "module": info["module"],
            "emitted_luts": info["luts"],
            "emitted_depth": info["depth"],
            "case_roms": info["roms"],
            "comparators": info["comparators"],
            "registered": info["registered"],
            "register_bits": info["register_bits"],
        }
        if synthesized is not None:
            layer["generic_luts"] = synthesized[i].luts
            layer["generic_depth"] = synthesized[i].depth
        merged.append(layer)
    return merged


def _weights_bytes(program: Program, scratch: Path) -> bytes:
    path = scratch / "netlist.safetensors"
    program.weights.save(path)
    return path.read_bytes()


def _registers(stages: int) -> str:
    if stages == 0:
        return "none, combinational"
    return "after every layer" if stages == 1 else f"after every {stages} layers"


def _emitted(row: dict[str, Any]) -> str:
    """What the layer was written as: LUTs, case ROMs or comparators."""
    if row["op"] == "logic.table":
        return f"{row['case_roms']} case ROMs"
    if row["op"] == "logic.threshold":
        return f"{row['comparators']} comparators"
    return f"{row['emitted_luts']} LUT6, depth {row['emitted_depth']}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def report_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: per-layer table, totals, accuracy, time of each stage."""
    acc = report["accuracy"]
    net = report["netlist"]
    lines = [
        f"# fpga-lut build of {report['model']}",
        "",
        f"Accuracy on {acc['dataset']} ({acc['test_examples']} test examples): float model "
        f"{_percent(acc['float'])}, quantized model (golden interpreter) "
        f"{_percent(acc['quantized_model'])}, netlist {_percent(acc['netlist'])}.",
        "",
        "| layer | op | neurons | bits/code in | bits/code out | LUTs (generic) | LUT depth | FFs "
        "| emitted |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["layers"]:
        lines.append(
            f"| {row['name'] or row['module']} | {row['op']} | {row['neurons']} | "
            f"{row['input_bits']} | {row['output_bits']} | {row.get('generic_luts', '-')} | "
            f"{row.get('generic_depth', '-')} | {row['register_bits']} | {_emitted(row)} |"
        )
    lines += ["", "| synthesis flow | LUTs | FFs | MUXF7/F8 | LUT depth |", "|---|---|---|---|---|"]
    for flow, synth in report["synthesis"].items():
        lines.append(
            f"| {flow} | {synth['luts']} | {synth['ffs']} | "
            f"{synth.get('muxf7', 0)}/{synth.get('muxf8', 0)} | {synth['depth']} |"
        )
    sims = ", ".join(
        f"{name} {sim['passed']}/{sim['total']}"
        for name, sim in report["simulation"].items()
        if isinstance(sim, dict)
    )
    lines += [
        "",
        f"Latency: {net['latency_cycles']} clock cycles (pipeline registers: "
        f"{_registers(net['pipeline_stages'])}). Simulation bit-exact with the golden interpreter: "
        f"{sims or 'not run'}.",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    for stage, seconds in report["seconds"].items():
        if isinstance(seconds, dict):
            for name, value in seconds.items():
                lines.append(f"| pass {name} | {value} |")
        else:
            lines.append(f"| {stage} | {seconds} |")
    return "\n".join(lines) + "\n"
