"""Foundation benchmarks: IR scale, golden-interpreter speed, pass-manager verification cost.

    python benchmarks/foundation.py            # appends a section to benchmarks/RESULTS.md

1. Build, verify, print and parse a module of about 2,000 ops.
2. Golden interpreter on a 3-layer MLP (784-256-256-10) at batch 1024 against the same
   computation written directly in numpy (goal: within 1.5x).
3. Pipelines with verification after every pass (goal: verification <= 10% of the pipeline's
   time): `cse,dce,constant-fold` on the chain, and `fold-batchnorm,constant-fold,cse,dce` on
   an exporter-style CNN of the same size. Verification is incremental: the fingerprints of
   every op are compared and only what a pass changed (and its users) is verified again.
Every figure is a median of several runs; ratios are measured side by side in one process.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import itertools

import numpy as np

from ircomp.dialects import nn
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program, parse_module, print_module, verify_module
from ircomp.pass_manager import PassManager, parse_pipeline

RESULTS = Path(__file__).with_name("RESULTS.md")
CANONICALIZE = "cse,dce,constant-fold"
FOLDING = "fold-batchnorm,constant-fold,cse,dce"
RESULTS_HEADER = "# Benchmark results\n\nEach figure with the command, machine and date.\n\n"


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def big_module(ops: int) -> Program:
    """A residual chain of linear/relu/add blocks (4 ops each incl. the weight) on 16 features."""
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input((8, 16))
    for i in range(ops // 4):
        w = b.weight(f"block{i}.weight", rng.normal(0, 0.25, (16, 16)))
        y = b.op(nn.LinearOp, [x, w])
        y = b.op(nn.ReluOp, [y])
        x = b.op(nn.AddOp, [x, y])
    return b.finish([x])


def exporter_module(ops: int) -> Program:
    """What exporters hand over: conv + batchnorm + relu blocks with residual adds, and
    fully connected weights stored transposed behind a transpose (about 11 ops a block)."""
    rng = np.random.default_rng(2)
    b = GraphBuilder()
    x = b.input((1, 16, 8, 8))
    for i in range(ops // 11):
        w = b.weight(f"block{i}.conv.weight", rng.normal(0, 0.1, (16, 16, 3, 3)))
        y = b.op(nn.Conv2dOp, [x, w], padding=[1, 1, 1, 1], name=f"block{i}.conv")
        stats = {
            "scale": rng.uniform(0.5, 1.5, 16),
            "bias": rng.normal(0, 0.1, 16),
            "mean": rng.normal(0, 0.1, 16),
            "var": rng.uniform(0.5, 1.5, 16),
        }
        params = [b.weight(f"block{i}.bn.{k}", v) for k, v in stats.items()]
        y = b.op(nn.BatchNormOp, [y, *params], name=f"block{i}.bn")
        x = b.op(nn.AddOp, [x, b.op(nn.ReluOp, [y])])
    flat = b.op(nn.FlattenOp, [x])
    w_t = b.weight("fc.weight_t", rng.normal(0, 0.05, (16 * 64, 10)))
    w = b.op(nn.TransposeOp, [w_t], perm=[1, 0])
    return b.finish([b.op(nn.LinearOp, [flat, w])])


def bench_ir(ops: int, repeats: int) -> dict[str, float]:
    program = big_module(ops)
    text = print_module(program.module)
    count = sum(1 for _ in program.module.walk())
    return {
        "ops": count,
        "build": median_time(lambda: big_module(ops), repeats),
        "verify": median_time(lambda: verify_module(program.module), repeats),
        "print": median_time(lambda: print_module(program.module), repeats),
        "parse": median_time(lambda: parse_module(text), repeats),
    }


def mlp(batch: int) -> tuple[Program, list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(1)
    sizes = [784, 256, 256, 10]
    b = GraphBuilder()
    x = b.input((batch, sizes[0]))
    params = []
    h = x
    for i, (fin, fout) in enumerate(itertools.pairwise(sizes)):
        w = rng.normal(0, fin**-0.5, (fout, fin)).astype(np.float32)
        bias = rng.normal(0, 0.1, fout).astype(np.float32)
        params.append((w, bias))
        h = b.op(nn.LinearOp, [h, b.weight(f"fc{i}.weight", w), b.weight(f"fc{i}.bias", bias)])
        if i < 2:
            h = b.op(nn.ReluOp, [h])
    data = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    return b.finish([h]), params, data


def numpy_mlp(params: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    for i, (w, bias) in enumerate(params):
        x = x @ w.T + bias
        if i < 2:
            x = np.maximum(x, 0)
    return x


def bench_interpreter(batch: int, repeats: int) -> dict[str, float]:
    program, params, data = mlp(batch)
    np.testing.assert_allclose(
        run(program, [data])[0], numpy_mlp(params, data), rtol=1e-4, atol=1e-4
    )
    golden = median_time(lambda: run(program, [data]), repeats)
    direct = median_time(lambda: numpy_mlp(params, data), repeats)
    return {"golden": golden, "numpy": direct, "ratio": golden / direct}


def bench_pipeline(program: Program, passes: str, repeats: int) -> dict[str, float]:
    """Pipeline time with verification after every pass, and the part of it spent verifying
    (what changed since the program's last verification, then what each pass changed), from
    the pass manager's own timings."""
    program.verify()  # as after loading: the input arrives verified
    runs = []
    for _ in range(repeats):
        manager = PassManager(parse_pipeline(passes), verify_each=True)
        manager.run(program)
        verify = next(t.seconds for t in manager.timings if t.name == "(verification)")
        runs.append((sum(t.seconds for t in manager.timings), verify))
    total, verify = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    full = median_time(lambda: program.verify(), repeats)
    ops = sum(1 for _ in program.module.walk())
    return {"total": total, "verify": verify, "share": verify / total, "full": full, "ops": ops}


def pipeline_rows(label: str, passes: str, pipe: dict[str, float]) -> list[str]:
    return [
        f"| {label} ({pipe['ops']:.0f} ops), `{passes}` with verify-each | {pipe['total']:.3f} s |",
        f"| of which verification | {pipe['verify']:.3f} s (**{pipe['share'] * 100:.1f}%**) |",
        f"| one full verification of that module, for scale | {pipe['full']:.3f} s |",
    ]


def report(args: argparse.Namespace, ir: dict, interp: dict, pipes: list[tuple[str, dict]]) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return "\n".join(
        [
            f"## Foundation: IR scale, interpreter, pass manager ({when})",
            "",
            f"Command: `python benchmarks/foundation.py --ops {args.ops} --batch {args.batch} "
            f"--repeats {args.repeats}`; machine: {machine}; medians of {args.repeats} runs.",
            "",
            "| measurement | value |",
            "| --- | --- |",
            f"| module size | {ir['ops']} ops |",
            f"| build with GraphBuilder (incl. final verify) | {ir['build']:.3f} s |",
            f"| verify | {ir['verify']:.3f} s |",
            f"| print | {ir['print']:.3f} s |",
            f"| parse | {ir['parse']:.3f} s |",
            f"| golden interpreter, MLP 784-256-256-10, batch {args.batch} | "
            f"{interp['golden'] * 1e3:.2f} ms |",
            f"| same MLP in plain numpy | {interp['numpy'] * 1e3:.2f} ms |",
            f"| interpreter / numpy (goal <= 1.5) | **{interp['ratio']:.2f}x** |",
            *pipeline_rows(pipes[0][0], CANONICALIZE, pipes[0][1]),
            *pipeline_rows(pipes[1][0], FOLDING, pipes[1][1]),
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    ir = bench_ir(args.ops, args.repeats)
    interp = bench_interpreter(args.batch, max(args.repeats, 7))
    pipes = [
        ("residual linear chain", bench_pipeline(big_module(args.ops), CANONICALIZE, args.repeats)),
        ("exporter-style CNN", bench_pipeline(exporter_module(args.ops), FOLDING, args.repeats)),
    ]
    text = report(args, ir, interp, pipes)
    print(text)
    if not args.no_write:
        header = "" if RESULTS.exists() else RESULTS_HEADER
        with RESULTS.open("a") as f:
            f.write(header + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
