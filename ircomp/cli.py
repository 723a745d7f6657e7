"""The `ircomp` command line: `opt`, `run`, `import`, `build`, `passes`.

Errors the user can fix print one message and exit 2; internal failures exit 1 with a hint to
report them; Ctrl-C exits 130. Outputs are written to a temporary file and renamed, so a failed
command never leaves a half-written file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from ircomp.errors import InputError, IrcompError
from ircomp.fileio import atomic_write
from ircomp.train.cli import add_train_command

if TYPE_CHECKING:
    from ircomp.ir.weights import WeightStore

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
SPLIT_MARKER = "// -----"


# ---- opt ----------------------------------------------------------------------------------


def _split_chunks(text: str, split: bool) -> list[str]:
    """The input's chunks, each padded with blank lines so error lines match the file."""
    if not split:
        return [text]
    chunks, offset = [], 0
    for chunk in text.split(SPLIT_MARKER):
        chunks.append("\n" * offset + chunk)
        offset += chunk.count("\n")
    return chunks


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from None


def _opt_chunk(args: argparse.Namespace, text: str, out: TextIO) -> None:
    from ircomp.ir.program import Program, SourceText, parse_module, print_module
    from ircomp.ir.weights import WeightStore
    from ircomp.pass_manager import PassManager, parse_pipeline

    module = parse_module(text, args.input)
    program = Program(module, WeightStore(), SourceText(args.input, text))
    if program.weight_ops():
        program.weights = _weights_for(args)
    program.verify()
    manager = PassManager(
        parse_pipeline(args.pipeline or ""),
        verify_each=not args.no_verify_each,
        print_ir_after_all=args.print_ir_after_all,
        print_ir_after_change=args.print_ir_after_change,
        dump_dir=Path(args.dump_dir) if args.dump_dir else None,
        time_passes=args.time_passes,
    )
    result = manager.run(program)
    if args.output:
        from ircomp.ir.program import save_program

        save_program(result, Path(args.output), generic=args.generic)
    else:
        out.write(print_module(result.module, generic=args.generic))


def _weights_for(args: argparse.Namespace) -> WeightStore:
    from ircomp.ir.program import weights_path_for
    from ircomp.ir.weights import WeightStore

    if args.input == "-" and not args.weights:
        raise InputError("a module read from stdin that uses weights needs --weights PATH")
    path = Path(args.weights) if args.weights else weights_path_for(Path(args.input))
    return WeightStore.load(path)


def cmd_opt(args: argparse.Namespace) -> int:
    text = _read_text(args.input)
    chunks = _split_chunks(text, args.split_input_file)
    if args.output and len(chunks) > 1:
        raise InputError("--split-input-file writes to standard output; drop -o")
    for i, chunk in enumerate(chunks):
        if i:
            sys.stdout.write(SPLIT_MARKER + "\n")
        try:
            _opt_chunk(args, chunk, sys.stdout)
        except InputError as err:
            if not args.verify_diagnostics:
                raise
            # mlir-opt style: report the diagnostic on stdout for FileCheck and go on.
            sys.stdout.write(f"{err}\n")
    return 0


# ---- run ----------------------------------------------------------------------------------


def _load_array(path: str) -> list[np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read input {path}: {err}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return [loaded[k] for k in sorted(loaded.files, key=_natural_key)]
    return [loaded]


def _natural_key(name: str) -> tuple[str, int]:
    stem = name.rstrip("0123456789")
    digits = name[len(stem) :]
    return stem, int(digits) if digits else -1


def _save_outputs(path: Path, outputs: Sequence[np.ndarray]) -> None:
    if path.suffix == ".npz":
        atomic_write(
            path,
            lambda p: np.savez(p, **{f"out{i}": o for i, o in enumerate(outputs)}),
        )
    elif len(outputs) == 1:
        # np.save appends .npy unless given a file object.
        def write(p: Path) -> None:
            with open(p, "wb") as f:
                np.save(f, outputs[0], allow_pickle=False)

        atomic_write(path, write)
    else:
        raise InputError(f"the function has {len(outputs)} results: write them to a .npz file")


def cmd_run(args: argparse.Namespace) -> int:
    from ircomp.interpreter import run
    from ircomp.ir.program import load_program

    program = load_program(Path(args.input), Path(args.weights) if args.weights else None)
    inputs = [a for path in args.inputs for a in _load_array(path)]
    outputs = run(program, inputs, function=args.function)
    if args.output:
        _save_outputs(Path(args.output), outputs)
    else:
        with np.printoptions(threshold=64, edgeitems=4):
            for i, out in enumerate(outputs):
                print(f"result {i}: shape {list(out.shape)} dtype {out.dtype}\n{out}")
    return 0


# ---- import -------------------------------------------------------------------------------


def _parse_input_shape(text: str) -> tuple[str, list[int]]:
    name, sep, dims = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, [int(d) for d in dims.split(",")]
    except ValueError:
        raise InputError(f"--input-shape expects NAME=D0,D1,..., got '{text}'") from None


def cmd_import(args: argparse.Namespace) -> int:
    from ircomp.frontends import onnx as onnx_frontend
    from ircomp.ir.program import save_program

    shapes = dict(_parse_input_shape(t) for t in args.input_shape)
    program = onnx_frontend.load(
        args.input, input_shapes=shapes or None, requant_mode=args.requant_mode
    )
    save_program(program, Path(args.output), generic=args.generic)
    return 0


# ---- build --------------------------------------------------------------------------------

BUILD_TARGETS = ("pytorch", "c", "fpga-lut")
# Choices spelled out so that `ircomp --help` imports no backend (tests check they match).
KERNEL_CHOICES = ("portable", "fast", "vector")  # backends.c.fast.KERNEL_CHOICES
ROUTES = ("best", "abc", "espresso")  # backends.verilog.build.ROUTES
SIMULATORS = ("iverilog", "verilator", "both", "none")  # backends.verilog.build.SIMULATORS
DECOMPOSITIONS = ("threshold", "none")  # passes.logic_extract.DECOMPOSITIONS
REALIZATIONS = ("table", "threshold", "auto")  # passes.logic_extract.REALIZATIONS


def _load_model(path: Path, weights: str | None, requant_mode: str = "onnx") -> tuple[object, str]:
    """A .mlir program (weights beside it) or an .onnx model, for `build`."""
    from ircomp.ir.program import load_program

    if path.suffix == ".onnx":
        try:
            from ircomp.frontends import onnx as onnx_frontend
        except ImportError as err:
            raise InputError(
                f"cannot read {path}: the ONNX frontend is unavailable ({err})"
            ) from None
        load = getattr(onnx_frontend, "load", None)
        if load is None:
            raise InputError(f"cannot read {path}: this ircomp has no ONNX frontend yet")
        return load(str(path), requant_mode=requant_mode), path.name
    if path.suffix != ".mlir":
        raise InputError(f"{path}: expected a .mlir or .onnx model")
    return load_program(path, Path(weights) if weights else None), path.name


def _build_c(program: object, args: argparse.Namespace) -> int:
    """`build --target c`: check --max-ram against the planned arena before writing anything,
    write the folder, measure on the Cortex-M4 when asked, print a summary, write report.json
    (with --report, --max-ram or --cortex-m4-report)."""
    from ircomp.backends.c import build as build_c
    from ircomp.backends.c import report as c_report

    max_ram = c_report.parse_bytes(args.max_ram) if args.max_ram is not None else None
    info = c_report.build_info(program, kernels=args.c_kernels)  # type: ignore[arg-type]
    if max_ram is not None:
        c_report.check_arena(info, max_ram)
    if args.cortex_m4_report:  # a missing tool names its Debian package before anything is written
        from ircomp.backends.c import icount
        from ircomp.backends.c.cortex_m4 import check_toolchain

        check_toolchain(run=True)
        icount.check_tools()
    out = build_c(program, Path(args.output), "model", kernels=args.c_kernels)  # type: ignore[arg-type]
    print(f"wrote {out}/model.h, {out}/model.c, {out}/vectors.h, {out}/main.c, {out}/Makefile")
    report = dict(info)
    if args.cortex_m4_report:
        from ircomp.backends.c.cortex_m4 import measure_cortex_m4

        report.update(measure_cortex_m4(out, info["name"]))
    print(c_report.summary(report))
    if args.report or args.cortex_m4_report or max_ram is not None:
        from ircomp.backends.c.cortex_m4 import write_report

        write_report(out / "report.json", report)
        print(f"wrote {out}/report.json")
    if args.cortex_m4_report and not report.get("passed"):
        raise IrcompError(
            f"the Cortex-M4 build ran but its outputs do not match the golden interpreter "
            f"(status {report.get('status')}):\n{report.get('output', '').strip()}"
        )
    if max_ram is not None and args.cortex_m4_report:
        c_report.check_measured(info, report, max_ram)
    return 0


def _build_fpga_lut(args: argparse.Namespace) -> int:
    from ircomp.backends.verilog.build import FpgaLutOptions, build_fpga_lut

    flows = tuple(f for f in args.synth.split(",") if f and f != "none")
    options = FpgaLutOptions(
        top=args.top,
        pipeline_stages=args.pipeline_stages,
        max_inputs=args.max_inputs,
        max_rows=args.max_rows,
        decompose=args.decompose,
        realize=args.realize,
        route=args.route,
        minimize=not args.no_minimize,
        dont_cares=args.dont_cares,
        dataset=args.dataset,
        max_vectors=args.max_vectors,
        simulator=args.simulator,
        synth_flows=flows,
        jobs=args.jobs,
        progress=sys.stderr.isatty(),
    )
    model = Path(args.input) if args.input else None
    report = build_fpga_lut(model, Path(args.output), options, args.requant_mode)
    print(_fpga_lut_summary(report, Path(args.output)))
    return 0


def _fpga_lut_summary(report: dict, out: Path) -> str:  # type: ignore[type-arg]
    acc = report["accuracy"]
    lines = [f"fpga-lut: {report['model']}"]
    for flow, synth in report["synthesis"].items():
        lines.append(
            f"  yosys {flow}: {synth['luts']} LUTs, {synth['ffs']} FFs, LUT depth {synth['depth']}"
        )
    sims = ", ".join(
        f"{k} {v['passed']}/{v['total']}"
        for k, v in report["simulation"].items()
        if isinstance(v, dict)
    )
    lines.append(f"  simulation vs golden interpreter: {sims or 'skipped'}")
    lines.append(
        f"  accuracy on {acc['dataset']}: netlist {100 * acc['netlist']:.2f}%, quantized model "
        f"{100 * acc['quantized_model']:.2f}%"
        + (f", float model {100 * acc['float']:.2f}%" if acc["float"] is not None else "")
    )
    lines.append(
        f"  latency {report['netlist']['latency_cycles']} cycles; wrote {out}/ "
        "(Verilog, testbench, report.json, report.md)"
    )
    return "\n".join(lines)


def cmd_build(args: argparse.Namespace) -> int:
    c_only = args.max_ram is not None or args.cortex_m4_report or args.report
    if args.target != "c" and (c_only or args.c_kernels != "portable"):
        raise InputError(
            "--max-ram, --report, --c-kernels and --cortex-m4-report apply to --target c only"
        )
    if args.target == "fpga-lut":
        return _build_fpga_lut(args)
    if args.input is None:
        raise InputError(f"--target {args.target} needs an input model (.mlir or .onnx)")
    program, source = _load_model(Path(args.input), args.weights, args.requant_mode)
    if args.target == "pytorch":
        from ircomp.backends.pytorch import build

        out = build(program, Path(args.output), source=source)  # type: ignore[arg-type]
        print(f"wrote {out}/model.py, {out}/model.safetensors, {out}/run_example.py")
    elif args.target == "c":
        return _build_c(program, args)
    return 0


# ---- passes -------------------------------------------------------------------------------


def cmd_passes(args: argparse.Namespace) -> int:
    from ircomp.pass_manager import describe_passes

    print(describe_passes())
    return 0


# ---- entry point --------------------------------------------------------------------------


def _add_fpga_lut_options(build: argparse.ArgumentParser) -> None:
    group = build.add_argument_group("fpga-lut")
    group.add_argument("--top", default="ircomp_top", help="top module name")
    group.add_argument(
        "--pipeline-stages",
        type=int,
        default=1,
        help="a register after every N logic layers (0: combinational; default 1)",
    )
    group.add_argument(
        "--max-inputs", type=int, default=12, help="largest truth table, in input bits"
    )
    group.add_argument(
        "--max-rows",
        type=int,
        default=1 << 24,
        help="refuse a layer whose tables have more rows than this, before enumerating them",
    )
    group.add_argument(
        "--decompose",
        choices=DECOMPOSITIONS,
        default="threshold",
        help="neurons over --max-inputs: 'threshold' realizes integer layers as thresholded "
        "constant-coefficient sums; 'none' refuses them",
    )
    group.add_argument(
        "--realize",
        choices=REALIZATIONS,
        default="table",
        help="'table' (truth tables where they fit), 'threshold' (every layer) or 'auto'",
    )
    group.add_argument("--route", choices=ROUTES, default="best", help="minimization route")
    group.add_argument(
        "--no-minimize",
        action="store_true",
        help="keep the truth tables as case ROMs (the LogicNets-style baseline)",
    )
    group.add_argument(
        "--dont-cares",
        action="store_true",
        help="input patterns never seen on the training data become don't-cares",
    )
    group.add_argument("--dataset", help="digits, fashion-mnist or a .npz (x_test, y_test, ...)")
    group.add_argument(
        "--max-vectors", type=int, default=0, help="testbench vectors (default: all test data)"
    )
    group.add_argument("--simulator", choices=SIMULATORS, default="iverilog", help="HDL simulator")
    group.add_argument(
        "--synth", default="generic,xilinx", help="yosys flows: generic, xilinx, or none"
    )
    group.add_argument(
        "--jobs", type=int, default=2, help="parallel minimization and yosys jobs (0: all cores)"
    )


def _add_requant_mode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--requant-mode",
        choices=("onnx", "integer"),
        default="onnx",
        help="integer semantics of QDQ ONNX models: 'onnx' (bit-exact with onnxruntime, the "
        "default) or 'integer' (TFLite / TFLite Micro multiplier + shift)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ircomp", description="Compile neural networks for small, low-latency hardware."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    opt = sub.add_parser("opt", help="run a pass pipeline on an .mlir module (mlir-opt style)")
    opt.add_argument("input", help="input .mlir file, or - for standard input")
    opt.add_argument("-p", "--pipeline", default="", help="passes, e.g. 'fold-batchnorm,cse'")
    opt.add_argument(
        "-o", "--output", help="output .mlir (weights are written beside it); default: stdout"
    )
    opt.add_argument("--weights", help="weights file (default: the .safetensors beside input)")
    opt.add_argument("--split-input-file", action="store_true", help="split input at '// -----'")
    opt.add_argument(
        "--verify-diagnostics",
        action="store_true",
        help="print parse/verification errors to stdout and continue (for FileCheck tests)",
    )
    opt.add_argument("--print-ir-after-all", action="store_true")
    opt.add_argument("--print-ir-after-change", action="store_true")
    opt.add_argument("--dump-dir", help="write the IR after every pass into this folder")
    opt.add_argument("--time-passes", action="store_true", help="report time per pass")
    opt.add_argument(
        "--no-verify-each", action="store_true", help="verify only at the end, not between passes"
    )
    opt.add_argument("--generic", action="store_true", help="print the generic MLIR form")
    opt.set_defaults(handler=cmd_opt)

    run = sub.add_parser("run", help="execute a module with the golden interpreter")
    run.add_argument("input", help="input .mlir file (weights beside it)")
    run.add_argument(
        "--input",
        dest="inputs",
        action="append",
        default=[],
        metavar="ARRAY",
        help=".npy per function argument, or one .npz holding them all (in key order)",
    )
    run.add_argument("-o", "--output", help=".npy (one result) or .npz; default: print")
    run.add_argument("--weights", help="weights file (default: the .safetensors beside input)")
    run.add_argument("--function", default="main", help="function to run (default: main)")
    run.set_defaults(handler=cmd_run)

    imp = sub.add_parser("import", help="import an ONNX model (.onnx) as .mlir + .safetensors")
    imp.add_argument("input", help="input .onnx file")
    imp.add_argument("-o", "--output", required=True, help="output .mlir (weights beside it)")
    imp.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="fix the shape of an input (e.g. a symbolic batch); repeatable",
    )
    imp.add_argument("--generic", action="store_true", help="print the generic MLIR form")
    _add_requant_mode(imp)
    imp.set_defaults(handler=cmd_import)

    build = sub.add_parser("build", help="generate code for a target from .mlir or .onnx")
    build.add_argument(
        "input",
        nargs="?",
        help="input .mlir (weights beside it) or .onnx model (fpga-lut: default the built-in "
        "digits example)",
    )
    build.add_argument("--target", required=True, choices=BUILD_TARGETS, help="code target")
    build.add_argument("-o", "--output", required=True, help="output folder (replaced whole)")
    build.add_argument("--weights", help="weights file (default: the .safetensors beside input)")
    _add_requant_mode(build)
    build.add_argument(
        "--max-ram",
        metavar="BYTES",
        help="c: fail (exit 2, printing the per-tensor arena plan) when the arena, or with "
        "--cortex-m4-report the model's measured RAM incl. stack, exceeds BYTES (e.g. 65536, 64K)",
    )
    build.add_argument(
        "--report",
        action="store_true",
        help="c: write report.json (arena plan, weights, I/O bytes; always written with "
        "--max-ram or --cortex-m4-report)",
    )
    build.add_argument(
        "--c-kernels",
        choices=KERNEL_CHOICES,
        default="portable",
        help="c: 'fast' = im2col + dual 16-bit MAC kernels for Cortex-M (SMLAD; bit-exact with "
        "'portable', plain C elsewhere); 'vector' = host kernels the compiler auto-vectorizes",
    )
    build.add_argument(
        "--cortex-m4-report",
        action="store_true",
        help="c: also build for a Cortex-M4F and run it under QEMU (mps2-an386): model flash, "
        "RAM, stack and instructions per inference in report.json (needs gcc-arm-none-eabi "
        "libnewlib-arm-none-eabi qemu-system-arm)",
    )
    _add_fpga_lut_options(build)
    build.set_defaults(handler=cmd_build)

    passes = sub.add_parser("passes", help="list the available passes with options and docs")
    passes.set_defaults(handler=cmd_passes)

    add_train_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as err:
        print(f"ircomp {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except IrcompError as err:
        print(f"ircomp {args.command}: error: {err}", file=sys.stderr)
        return EXIT_INTERNAL
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print(f"ircomp {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # last line of defence: users never see a traceback
        if os.environ.get("IRCOMP_DEBUG"):
            raise
        print(
            f"ircomp {args.command}: internal error: {type(err).__name__}: {err}\n"
            "This is a bug in ircomp; rerun with IRCOMP_DEBUG=1 for a traceback and report it.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
