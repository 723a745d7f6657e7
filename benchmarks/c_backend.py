"""C backend on a Cortex-M4F (QEMU mps2-an386) and on the host, beside TFLM figures and peers.

    python benchmarks/c_backend.py                 # all models; writes a section of RESULTS.md
    python benchmarks/c_backend.py --quick         # fewer timing rounds, no RESULTS.md
    python benchmarks/c_backend.py --models ad,mlp_f32
    python benchmarks/c_backend.py --models ad,kws,ic,vww --export-host DIR   # then, anywhere:
    python benchmarks/c_backend.py --host-run DIR [--out table.md]   # gcc, numpy, onnxruntime

For each model, in one run, with both Cortex-M kernel sets side by side (`kernels="portable"`
and `kernels="fast"`: im2col + dual 16-bit MACs, SMLAD on the M4; MLPerf models imported in
the `integer` requantization mode, i.e. TFLite Micro's arithmetic):

* ircomp: `build` + `measure_cortex_m4`: instructions of one `<name>_run` counted exactly by
  the QEMU plugin (`backends/c/icount.py`), model-only flash (text + rodata of the model linked
  alone with the library code it calls) and RAM (data + bss, the arena included, + the painted
  stack high-water mark), arena vs the liveness peak of the same lifetimes; the harness checks
  the outputs against the golden interpreter, and the interpreter is checked against the
  model's TFLite Micro outputs where the model ships them (MLPerf Tiny `*_io.npz`, `y_int8`).
  The op functions are `noinline` in the generated code; the same model built with
  `-DIRCOMP_OP=static` (gcc inlines each op, called once, into `<name>_run`) is counted too.
* TFLM + CMSIS-NN / reference kernels: instructions and arena measured the same way, from
  /work/shared/design/ANCHORS.md (not re-run here: TFLM is not installable on this machine).
* Peers, generated and measured on the same model with the same harness, flags and counter:
  emx-onnx-cgen (ONNX to C, pip `emx-onnx-cgen`) on every ONNX model, emlearn (pip `emlearn`,
  float nets from scikit-learn) on the float MLP. Their RAM adds the heap they allocate
  (emx-onnx-cgen mallocs temporaries over 1 KiB): break growth over the call, trimming off.
* Host batch-1 latency: the generated C timed in-process (clock_gettime around a calibrated
  loop): the portable and fast kernels built as `make check` builds them (`-O2`), the vector
  kernels (`kernels="vector"`, host SIMD) as `make check-native` builds them (`-O3
  -march=native`); vs onnxruntime with one thread (intra- and inter-op, sequential execution)
  timed around `session.run`. Rounds alternate between all of them; the figures are medians
  over all rounds. onnxruntime's figure includes its Python call overhead (a few
  microseconds), which dominates on the smallest models.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    from ircomp.backends.c import build
    from ircomp.backends.c.codegen import HOST_CFLAGS, NATIVE_CFLAGS
    from ircomp.backends.c.cortex_m4 import (
        ARM_CC,
        ARM_CFLAGS,
        ARM_LDFLAGS,
        ARM_LIBS,
        LINKER_SCRIPT,
        STARTUP,
        measure_cortex_m4,
        profile_ops,
        section_sizes,
    )
    from ircomp.backends.c.icount import count_function
    from ircomp.backends.c.report import build_info
    from ircomp.errors import InputError
    from ircomp.fileio import atomic_write
    from ircomp.ir.program import Program
except ImportError:  # --host-run: a machine with gcc, numpy and onnxruntime, without ircomp
    if "--host-run" not in sys.argv:
        raise
    HOST_CFLAGS = NATIVE_CFLAGS = ()  # the exported manifest names the flags

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("RESULTS.md")
MLPERF = Path("/work/shared/benchmarks/mlperf-tiny")
SECTION = "## C backend: Cortex-M4 instructions, flash, RAM; host latency"
M4_KERNELS = ("portable", "fast")
# host builds: (label, kernel set, compiler flags)
HOST_BUILDS = (
    ("portable -O2", "portable", HOST_CFLAGS),
    ("fast -O2", "fast", HOST_CFLAGS),
    ("vector -O3 -march=native", "vector", NATIVE_CFLAGS),
)
# the vector kernels once more on the onnx-mode import (onnxruntime's own arithmetic)
ONNX_MODE_BUILD = ("vector, onnx mode", "vector_onnx", NATIVE_CFLAGS)
QEMU_TIMEOUT = 900.0
# ANCHORS.md, measured on a Cortex-M4F under qemu-system-arm (mps2-an386) the same way
MACS = {"kws": 2.66e6, "vww": 7.49e6, "ic": 12.5e6, "ad": 0.264e6}  # ANCHORS.md
TFLM = {  # instructions CMSIS-NN, instructions reference kernels, arena bytes, liveness minimum
    "kws": (7.70e6, 43.0e6, 22_820, 16_000),
    "vww": (24.3e6, 100.4e6, 100_708, 55_296),
    "ic": (29.9e6, 107.4e6, 54_996, 49_152),
    "ad": (0.588e6, 1.96e6, 2_580, 768),
}


@dataclass
class Case:
    """One model: its IR, an input, and (when it exists) the ONNX file and TFLite reference."""

    name: str
    program: Program
    inputs: list[np.ndarray]
    onnx: Path | None = None
    tflite_ref: np.ndarray | None = None
    emlearn: object | None = None  # a fitted scikit-learn MLPClassifier
    notes: list[str] = field(default_factory=list)
    mode: str = "as built"  # ONNX import requantize mode, for MLPerf models
    fallback: Callable[[], Program] | None = None  # the "onnx"-mode import, if integer fails


# ---- models ---------------------------------------------------------------------------------


def _test_models() -> dict[str, Callable[[Path], Case]]:
    sys.path[:0] = [str(ROOT / "tests" / "backends"), str(ROOT / "tests")]
    from test_c_backend import int8_cnn, int8_mlp

    def cnn(_: Path) -> Case:
        return Case("cnn_i8", int8_cnn("integer"), [])

    def mlp(_: Path) -> Case:
        return Case("mlp_i8", int8_mlp("integer"), [])

    return {"cnn_i8": cnn, "mlp_i8": mlp}


def _mlperf(key: str) -> Callable[[Path], Case]:
    def make(_: Path) -> Case:
        from ircomp.frontends.onnx import load

        path = MLPERF / f"{key}_int8_qdq.onnx"
        io = np.load(MLPERF / f"{key}_io.npz")
        x = io["x_int8"][0]
        case = Case(key, load(str(path), requant_mode="integer"), [x], path)
        case.tflite_ref = io["y_int8"][0]  # TFLite Micro, reference kernels (README)
        case.mode = "integer"
        case.fallback = lambda: load(str(path), requant_mode="onnx")
        return case

    return make


def _float_mlp(tmp: Path) -> Case:
    """A scikit-learn MLP (64-32-16-10, relu, softmax) fitted on the digits data set, exported to
    ONNX by hand (Gemm/Relu/Softmax) and imported through the ONNX frontend, so ircomp,
    onnxruntime and emx-onnx-cgen run the same file and emlearn the same weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    from ircomp.frontends.onnx import load

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    clf = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=400, random_state=0).fit(x, y)
    nodes, inits, prev = [], [], "x"
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{i}"),
        ]
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [f"fc{i}"], name=f"fc{i}"))
        prev = f"fc{i}"
        if i < len(clf.coefs_) - 1:
            nodes.append(helper.make_node("Relu", [prev], [f"relu{i}"], name=f"relu{i}"))
            prev = f"relu{i}"
    nodes.append(helper.make_node("Softmax", [prev], ["y"], axis=1, name="softmax"))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp / "mlp_f32.onnx"
    onnx.save(model, path)
    case = Case("mlp_f32", load(str(path)), [x[:1]], path, emlearn=clf)
    case.notes.append(f"digits accuracy {clf.score(x, y):.3f}")
    return case


def model_makers() -> dict[str, Callable[[Path], Case]]:
    makers = _test_models()
    makers["mlp_f32"] = _float_mlp
    for key in ("ad", "kws", "ic", "vww"):
        if (MLPERF / f"{key}_int8_qdq.onnx").exists():
            makers[key] = _mlperf(key)
    return makers


# ---- ircomp ---------------------------------------------------------------------------------


def build_case(case: Case, folder: Path, kernels: str) -> Path:
    """Build the case's C (falling back to the onnx-mode import when the integer one is not
    buildable)."""
    inputs = case.inputs or None
    try:
        return build(case.program, folder, case.name, inputs=inputs, kernels=kernels)
    except InputError as err:
        if case.fallback is None:
            raise
        case.notes.append(f"integer-mode import not buildable ({err}); onnx mode used")
        case.program, case.mode, case.fallback = case.fallback(), "onnx", None
        return build(case.program, folder, case.name, inputs=inputs, kernels=kernels)


def count_inlined(out: Path, name: str) -> int:
    """Instructions of one `<name>_run` with the op functions left to gcc's inlining
    (`-DIRCOMP_OP=static`), otherwise the harness build of `make cortex-m4`."""
    elf = f"{name}_inlined.elf"
    cmd = [ARM_CC, *ARM_CFLAGS.split(), "-DIRCOMP_CORTEX_M4", "-DIRCOMP_OP=static"]
    cmd += [*ARM_LDFLAGS.split(), "-o", elf, "main.c", f"{name}.c", "startup_cortex_m4.c"]
    cmd += ARM_LIBS.split()
    proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"inlined build failed:\n{proc.stderr}")
    counts = count_function(out / elf, f"{name}_run", timeout=QEMU_TIMEOUT)
    if counts.status != 0:
        raise RuntimeError(f"inlined run failed:\n{counts.output[-2000:]}")
    return counts.per_inference


def measure_ircomp(case: Case, folder: Path, kernels: str) -> dict:
    from ircomp.interpreter import run

    out = build_case(case, folder, kernels)
    info = build_info(case.program, case.name, kernels)
    report = measure_cortex_m4(out, case.name, timeout=QEMU_TIMEOUT)
    if not report["passed"]:
        raise RuntimeError(f"{case.name}: the Cortex-M4 harness failed:\n{report['output']}")
    result = {**info, **report, "mode": case.mode, "folder": out}
    result["profile"] = profile_ops(out, case.name, timeout=QEMU_TIMEOUT)
    result["inlined"] = count_inlined(out, case.name)
    if case.tflite_ref is not None:
        got = run(case.program, case.inputs)[0]
        diff = np.abs(got.astype(np.int32) - case.tflite_ref.astype(np.int32))
        result["tflite_max_diff"] = int(diff.max())
    return result


_HOST_BENCH = r"""/* host latency: a calibrated loop around NAME_run; one line per repetition */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "NAME.h"
#include "vectors.h"
DECLS
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}
int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7, r;
    long inner = 1, k;
    double t0, t;
    for (;;) { /* at least 2 ms per repetition */
        t0 = now();
        for (k = 0; k < inner; ++k) CALL;
        t = now() - t0;
        if (t > 2e6) break;
        inner *= 2;
    }
    for (r = 0; r < reps; ++r) {
        t0 = now();
        for (k = 0; k < inner; ++k) CALL;
        printf("%.1f\n", (now() - t0) / (double)inner);
    }
    return 0;
}
"""


def host_binary(folder: Path, name: str, flags: tuple[str, ...]) -> Path:
    main = (folder / "main.c").read_text()
    decls = re.findall(r"^static \w+ got_\w+\[\d+\];$", main, re.M)
    call = re.search(rf"{name}_run\([^)]*\)", main)
    assert call, "main.c has no call of the model"
    src = _HOST_BENCH.replace("NAME", name).replace("DECLS", "\n".join(decls))
    (folder / "bench_host.c").write_text(src.replace("CALL", call.group(0)))
    exe = folder / "bench_host"
    cmd = ["gcc", *flags, "-o", exe.name, "bench_host.c", f"{name}.c", "-lm"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"host build failed:\n{proc.stderr}")
    return exe


def ort_session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def host_latency(
    exes: dict[str, Path], onnx: Path | None, inputs: list[np.ndarray], rounds: int, reps: int
) -> dict:
    """Median ns per inference of each C build and (with an ONNX file) onnxruntime, in
    alternating rounds."""
    times: dict[str, list[float]] = {label: [] for label in exes}
    ort_times: list[float] = []
    sess = ort_session(onnx) if onnx else None
    feeds = {}
    inner = 1
    if sess is not None:
        feeds = {i.name: x for i, x in zip(sess.get_inputs(), inputs, strict=True)}
        while True:  # calibrate like the C loop
            t0 = time.perf_counter_ns()
            for _ in range(inner):
                sess.run(None, feeds)
            if time.perf_counter_ns() - t0 > 2e6:
                break
            inner *= 2
    for _ in range(rounds):
        for label, exe in exes.items():
            proc = subprocess.run(
                [str(exe), str(reps)], capture_output=True, text=True, timeout=600, check=True
            )
            times[label] += [float(v) for v in proc.stdout.split()]
        if sess is not None:
            for _ in range(reps):
                t0 = time.perf_counter_ns()
                for _ in range(inner):
                    sess.run(None, feeds)
                ort_times.append((time.perf_counter_ns() - t0) / inner)
    out = {label: statistics.median(t) for label, t in times.items()}
    out.update({f"{label} min": min(t) for label, t in times.items()})  # noise only adds time
    if ort_times:
        out["ort"] = statistics.median(ort_times)
        out["ort min"] = min(ort_times)
    return out


# ---- peers on the Cortex-M4 -----------------------------------------------------------------

_PEER_MAIN = r"""/* peer harness: one call of peer_run between stack painting and break readings */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include "peer_io.h"
unsigned long ircomp_stack_paint(void);
unsigned long ircomp_stack_used(unsigned long top);
int main(void)
{
    unsigned long top, stack;
    char *brk0, *brk1;
    long i;
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
    printf("start\n"); /* stdio's own buffers are allocated before the first reading */
    brk0 = (char *)sbrk(0);
    top = ircomp_stack_paint();
    peer_run(peer_in, peer_out);
    stack = ircomp_stack_used(top);
    brk1 = (char *)sbrk(0);
    printf("stack %lu bytes\nheap %ld bytes\n", stack, (long)(brk1 - brk0));
    for (i = 0; i < PEER_OUT_SIZE; ++i)
        printf("out %.9g\n", (double)peer_out[i]);
    return 0;
}
"""


def _c_array(name: str, ctype: str, values: np.ndarray, const: bool = True) -> str:
    flat = values.reshape(-1)
    body = ", ".join(repr(float(v)) + "f" if ctype == "float" else str(int(v)) for v in flat)
    return f"{'const ' if const else ''}{ctype} {name}[{flat.size}] = {{{body}}};"


def run_peer(
    folder: Path,
    sources: list[str],
    ctypes: tuple[str, str],
    x: np.ndarray,
    n_out: int,
    extra: tuple[str, ...] = (),
) -> dict:
    """Build `sources` (which define `void peer_run(const in*, out*)`) with the ircomp harness
    flags and startup, count one peer_run, size the model linked alone, parse the outputs."""
    ctype_in, ctype_out = ctypes
    (folder / "cortex_m4.ld").write_text(LINKER_SCRIPT)
    (folder / "startup_cortex_m4.c").write_text(STARTUP)
    io = [
        f"#define PEER_OUT_SIZE {n_out}",
        f"static {_c_array('peer_in', ctype_in, x)[6:]}",
        f"static {ctype_out} peer_out[{n_out}];",
        f"void peer_run(const {ctype_in} *in, {ctype_out} *out);",
    ]
    (folder / "peer_io.h").write_text("\n".join(io) + "\n")
    (folder / "peer_main.c").write_text(_PEER_MAIN)
    flags = [*ARM_CFLAGS.replace("-Werror", "").replace("-Wall -Wextra", "").split(), *extra]
    mflags = [f for f in flags if f.startswith(("-mcpu", "-mthumb", "-mfloat-abi", "-mfpu"))]
    steps = [[ARM_CC, *flags, "-c", "-o", f"peer{i}.o", s] for i, s in enumerate(sources)]
    objs = [f"peer{i}.o" for i in range(len(sources))]
    steps.append(
        [ARM_CC, *flags, "-nostartfiles", "-T", "cortex_m4.ld", "--specs=rdimon.specs",
         "-o", "peer.elf", "peer_main.c", "startup_cortex_m4.c", *objs, "-lm", "-lrdimon"]
    )  # fmt: skip
    steps.append(
        [ARM_CC, *mflags, "-nostartfiles", "-T", "cortex_m4.ld", "--specs=nosys.specs",
         "-Wl,--gc-sections", "-Wl,-e,peer_run", "-o", "peer_model.elf", *objs, "-lm"]
    )  # fmt: skip
    for cmd in steps:
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:8])} ... failed:\n{proc.stderr[-3000:]}")
    counts = count_function(folder / "peer.elf", "peer_run", timeout=QEMU_TIMEOUT)
    if counts.status != 0:
        raise RuntimeError(f"peer run failed (status {counts.status}):\n{counts.output[-2000:]}")
    text = counts.output
    sizes = section_sizes(folder / "peer_model.elf")
    stack = int(re.search(r"stack (\d+) bytes", text).group(1))  # type: ignore[union-attr]
    heap = int(re.search(r"heap (-?\d+) bytes", text).group(1))  # type: ignore[union-attr]
    outs = np.array([float(v) for v in re.findall(r"^out (\S+)$", text, re.M)])
    return {
        "instructions": counts.per_inference,
        "flash": sizes.get(".text", 0) + sizes.get(".rodata", 0),
        "ram": sizes.get(".data", 0) + sizes.get(".bss", 0) + stack + heap,
        "stack": stack,
        "heap": heap,
        "outputs": outs,
    }


def measure_emx(case: Case, folder: Path) -> dict:
    """emx-onnx-cgen on the model's ONNX file (weights inlined, its default heap threshold)."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("emx-onnx-cgen") or str(Path(sys.executable).with_name("emx-onnx-cgen"))
    cmd = [exe, "compile", str(case.onnx), "emx.c", "--model-name", "emx_model"]
    cmd += ["--large-weight-threshold", "0", "--color", "never"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"emx-onnx-cgen failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    src = (folder / "emx.c").read_text()
    sig = re.search(r"^void emx_model\(([^)]*)\)\s*\{", src, re.M)
    if not sig:
        raise RuntimeError("emx-onnx-cgen output has no 'void emx_model(...)'")
    params = [p.strip() for p in sig.group(1).split(",")]
    types = [re.match(r"(?:const\s+)?(\w+)", p).group(1) for p in params]  # type: ignore[union-attr]
    if len(params) != 2:
        raise RuntimeError(f"expected one input and one output, got {params}")
    ctype = {"int8_t": "int8_t", "float": "float", "uint8_t": "uint8_t"}
    cin, cout = ctype[types[0]], ctype[types[1]]
    (folder / "wrap.c").write_text(
        "#include <stdint.h>\n"
        f"void emx_model(const {cin} *in, {cout} *out); /* array parameters decay so */\n"
        f"void peer_run(const {cin} *in, {cout} *out) {{ emx_model(in, out); }}\n"
    )
    # emx.c declares array-of-array parameters; wrap.c, a separate translation unit, declares
    # the same function with flat pointers (the ABI passes one pointer for each)
    x = case.inputs[0]
    sess = ort_session(case.onnx)  # type: ignore[arg-type]
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    result = run_peer(folder, ["emx.c", "wrap.c"], (cin, cout), x, ref.size)
    result["max_diff"] = float(np.abs(result.pop("outputs") - ref.reshape(-1)).max())
    return result


def measure_emlearn(case: Case, folder: Path) -> dict:
    import emlearn

    folder.mkdir(parents=True, exist_ok=True)
    clf = case.emlearn
    emlearn.convert(clf, method="inline").save(file=str(folder / "eml_mlp.h"), name="eml_mlp")
    n_in, n_out = clf.coefs_[0].shape[0], clf.coefs_[-1].shape[1]  # type: ignore[attr-defined]
    (folder / "wrap.c").write_text(
        '#include "eml_mlp.h"\n'
        "void peer_run(const float *in, float *out);\n"
        "void peer_run(const float *in, float *out)\n"
        f"{{ eml_net_predict_proba(&eml_mlp, in, {n_in}, out, {n_out}); }}\n"
    )
    x = case.inputs[0]
    include = (f"-I{emlearn.includedir}",)
    result = run_peer(folder, ["wrap.c"], ("float", "float"), x, n_out, include)
    ref = clf.predict_proba(x.astype(np.float64))[0]  # type: ignore[attr-defined]
    result["max_diff"] = float(np.abs(result.pop("outputs") - ref).max())
    return result


# ---- report ---------------------------------------------------------------------------------


def _m(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:.3f} M" if n < 1e7 else f"{n / 1e6:.1f} M"


def _b(n: float | None) -> str:
    return "n/a" if n is None else f"{int(n):,}"


def _us(ns: float | None) -> str:
    return "n/a" if ns is None else f"{ns / 1e3:.1f}" if ns >= 1e4 else f"{ns / 1e3:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def render(rows: list[dict], args: argparse.Namespace, rounds: int, reps: int) -> str:
    import onnxruntime

    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout
    arm = subprocess.run([ARM_CC, "-dumpversion"], capture_output=True, text=True).stdout
    qemu = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True)
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "backends/c", "benchmarks/c_backend.py"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    commit = head.stdout.strip() + (" + uncommitted changes to the C backend" if dirty else "")
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    host_labels = [label for label, _, _ in HOST_BUILDS]
    lines = [
        f"{SECTION} ({when})",
        "",
        f"Command: `{' '.join(['python benchmarks/c_backend.py', *sys.argv[1:]])}` at {commit}  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), shared and noisy; "
        f"Python {platform.python_version()}; gcc {gcc.strip()}, arm-none-eabi-gcc {arm.strip()}, "
        f"{qemu.stdout.splitlines()[0]}, onnxruntime {onnxruntime.__version__}  ",
        f"Cortex-M4F: `{ARM_CFLAGS}`, QEMU mps2-an386; instructions = exact count of one "
        "`<name>_run` (entry to return) by the icount plugin. Flash = text + rodata of the model "
        "linked alone (`--gc-sections` from its entry: the model + the libm/libgcc code it "
        "calls); RAM = data + bss (arena included) + painted stack high-water mark (+ heap for "
        "emx-onnx-cgen). MLPerf models in the `integer` requantization mode (TFLite Micro's "
        "arithmetic, bit-exact with its outputs). TFLM figures: ANCHORS.md (same QEMU, same "
        "counting method).  ",
        f"Host: in-process loop; portable and fast kernels `gcc {' '.join(HOST_CFLAGS)}` (the "
        f"`make check` flags), vector kernels `gcc {' '.join(NATIVE_CFLAGS)}` (`make "
        f"check-native`); onnxruntime 1 thread; median of {rounds} x {reps} repetitions, "
        "alternating.",
        "",
        "### Cortex-M4F per inference",
        "",
        "| model | implementation | instructions | / TFLM + CMSIS-NN | instr/MAC | flash (B) | "
        "RAM (B) | arena (B) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        t = TFLM.get(r["model"])
        macs = MACS.get(r["model"])
        mode = "" if r["mode"] == "as built" else f", {r['mode']} requantize"
        impls = []
        for kernels in M4_KERNELS:
            m = r["m4"][kernels]
            impls.append(
                (f"ircomp {kernels}{mode}", m["instructions"], m["model_flash"],
                 m.get("model_ram"), m["arena"])
            )  # fmt: skip
        for key, label in (("emx", "emx-onnx-cgen 1.4.0"), ("emlearn", "emlearn 0.23.2")):
            if r.get(key):
                p = r[key]
                impls.append((label, p["instructions"], p["flash"], p["ram"], None))
        if t:
            impls.append(("TFLM + CMSIS-NN (ANCHORS.md)", t[0], None, None, t[2]))
            impls.append(("TFLM reference kernels (ANCHORS.md)", t[1], None, None, t[2]))
        for label, n, flash, ram, arena in impls:
            per_mac = f"{n / macs:.1f}" if macs else "n/a"
            lines.append(
                f"| {r['model']} | {label} | {_m(n)} | {_ratio(n, t[0] if t else None)} | "
                f"{per_mac} | {_b(flash)} | {_b(ram)} | {_b(arena)} |"
            )
    lines += [
        "",
        "'/ TFLM + CMSIS-NN': instructions over TFLM + CMSIS-NN's (below 1: fewer than TFLM). "
        "TFLM flash/RAM were not measured with the model-only method; its arenas hold inputs, "
        "outputs and per-op data besides the intermediates.",
        "",
        "### Op functions out of line (`noinline`) vs inlined",
        "",
        "| model | kernels | noinline (generated default) | inlined (`-DIRCOMP_OP=static`) | "
        "change |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        for kernels in M4_KERNELS:
            m = r["m4"][kernels]
            ours, inl = m["instructions"], m["inlined"]
            lines.append(
                f"| {r['model']} | {kernels} | {_m(ours)} | {_m(inl)} | {ours / inl - 1:+.1%} |"
            )
    lines += [
        "",
        "### Memory: arena vs liveness vs TFLM",
        "",
        "| model | arena portable | arena fast | liveness peak (same lifetimes) | no reuse | "
        "TFLM arena | TFLM liveness min | stack portable / fast | weights | inputs + outputs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        t = TFLM.get(r["model"])
        p, f = r["m4"]["portable"], r["m4"]["fast"]
        lines.append(
            f"| {r['model']} | {_b(p['arena'])} | {_b(f['arena'])} | {_b(p['liveness_peak'])} | "
            f"{_b(p['tensor_bytes'])} | {_b(t[2]) if t else 'n/a'} | "
            f"{_b(t[3]) if t else 'n/a'} | {_b(p.get('stack_bytes'))} / "
            f"{_b(f.get('stack_bytes'))} | {_b(p['weights'])} | "
            f"{_b(p['inputs'] + p['outputs'])} |"
        )
    lines += [
        "",
        "ircomp's arena holds intermediates (and the fast kernels' im2col scratch) only; the "
        "caller owns inputs and outputs.",
        "",
        "### Host batch-1 latency",
        "",
        "| model | "
        + " | ".join(f"{label} (us)" for label in host_labels)
        + f" | {ONNX_MODE_BUILD[0]} (us) | onnxruntime 1 thread (us) | vector / ort | "
        "vector onnx mode / ort | portable / ort |",
        "| --- | " + " | ".join("---" for _ in host_labels) + " | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        h = r["host"]
        cells = " | ".join(_us(h.get(label)) for label in host_labels)
        onnx_mode = h.get(ONNX_MODE_BUILD[0])
        lines.append(
            f"| {r['model']} | {cells} | {_us(onnx_mode)} | {_us(h.get('ort'))} | "
            f"{_ratio(h.get(host_labels[2]), h.get('ort'))} | "
            f"{_ratio(onnx_mode, h.get('ort'))} | "
            f"{_ratio(h.get(host_labels[0]), h.get('ort'))} |"
        )
    lines += [
        "",
        "The MLPerf models are imported in the `integer` mode (TFLite Micro's arithmetic) for "
        "every column but 'vector, onnx mode', the `onnx`-mode import that computes "
        "onnxruntime's own arithmetic (float requantization, bit-exact with it), built the same "
        "way; the integer mode's requantization (64-bit high multiply, double rounding) costs "
        "more per output than onnxruntime's float one.",
        "",
        "The vector kernels' arena (host: whole-input int16 copies, im2col blocks, int32 "
        "accumulators) is larger than the Cortex-M kernels': "
        + ", ".join(f"{r['model']} {_b(r['vector_arena'])} B" for r in rows)
        + ".",
        "",
        "### Checks and notes",
        "",
    ]
    for r in rows:
        bits = ["harness PASS vs golden interpreter (Cortex-M4, both kernel sets; host builds)"]
        if "tflite_max_diff" in r:
            d = r["tflite_max_diff"]
            bits.append(
                "interpreter bit-exact with TFLite Micro's output (`y_int8`)"
                if d == 0
                else f"interpreter vs TFLite Micro's output (`y_int8`): max |diff| {d} codes"
            )
        for peer in ("emx", "emlearn"):
            p = r.get(peer)
            if p:
                bits.append(
                    f"{peer}: max |diff| vs reference {p['max_diff']:.3g}, stack {p['stack']:,} B, "
                    f"heap {p['heap']:,} B, flash {p['flash']:,} B, RAM {p['ram']:,} B"
                )
            elif r.get(f"{peer}_error"):
                bits.append(f"{peer}: failed ({r[f'{peer}_error']})")
        for kernels in M4_KERNELS:
            prof = r["m4"][kernels].get("profile")
            if prof and prof["ops"]:
                top = sorted(prof["ops"], key=lambda t: -t[1])[:3]
                bits.append(
                    f"hottest ops, {kernels}: "
                    + ", ".join(f"`{op[:40]}` {_m(n)} ({n / prof['total']:.0%})" for op, n in top)
                )
        bits += r.get("notes", [])
        lines.append(f"* {r['model']}: " + "; ".join(bits))
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = old.find(SECTION)
    if start >= 0:
        nxt = old.find("\n## ", start + 1)
        old = old[:start].rstrip("\n") + ("\n" + old[nxt:] if nxt >= 0 else "")
    new = old.rstrip("\n") + "\n\n" + text
    atomic_write(RESULTS, lambda p: p.write_text(new))


# ---- host latency on another machine ----------------------------------------------------------


def export_host(names: list[str], makers: dict, folder: Path) -> None:  # type: ignore[type-arg]
    """Write, for `--host-run` elsewhere, each model's host builds (the generated C with its
    harness), its ONNX file and input, and `manifest.json` naming the build flags."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    models = []
    for name in names:
        case = makers[name](folder)
        builds = []
        for label, kernels, flags in HOST_BUILDS:
            build_case(case, folder / name / kernels, kernels)
            builds.append({"label": label, "dir": f"{name}/{kernels}", "flags": list(flags)})
        if case.mode == "integer" and case.fallback is not None:
            label, sub, flags = ONNX_MODE_BUILD
            build(case.fallback(), folder / name / sub, case.name, inputs=case.inputs or None,
                  kernels="vector")  # fmt: skip
            builds.append({"label": label, "dir": f"{name}/{sub}", "flags": list(flags)})
        entry = {"name": name, "c_name": build_info(case.program, case.name)["name"]}
        if case.onnx is not None:
            shutil.copy(case.onnx, folder / name / "model.onnx")
            np.savez(folder / name / "inputs.npz", *case.inputs)
            entry["onnx"], entry["inputs"] = f"{name}/model.onnx", f"{name}/inputs.npz"
        models.append({**entry, "builds": builds})
    (folder / "manifest.json").write_text(json.dumps({"models": models}, indent=2) + "\n")


def host_run(folder: Path, rounds: int, reps: int) -> str:
    """Build and time an exported folder on this machine (gcc, numpy, onnxruntime): every
    build's harness must pass first; returns the markdown table."""
    import json

    import onnxruntime

    manifest = json.loads((folder / "manifest.json").read_text())
    labels = [b["label"] for b in manifest["models"][0]["builds"]]
    cpu = platform.processor() or "cpu"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), gcc {gcc.strip()}, "
        f"onnxruntime {onnxruntime.__version__}, Python {platform.python_version()}; median of "
        f"{rounds} x {reps} repetitions, alternating; in brackets the fastest repetition (noise "
        "only adds time), ratios median / median [min / min].",
        "",
        "| model | "
        + " | ".join(f"{x} (us)" for x in labels)
        + " | onnxruntime 1 thread (us) | "
        + " | ".join(f"{x} / ort" for x in labels)
        + " |",
        "| --- |" + " --- |" * (2 * len(labels) + 1),
    ]
    for m in manifest["models"]:
        exes = {}
        for b in m["builds"]:
            out = folder / b["dir"]
            flags = " ".join(b["flags"])
            check = subprocess.run(
                ["make", "-s", "check", f"CFLAGS={flags}"], cwd=out, capture_output=True,
                text=True, timeout=900,
            )  # fmt: skip
            if check.returncode != 0 or " 0 mismatches" not in check.stdout:
                raise RuntimeError(f"{m['name']} {b['label']}: harness failed\n{check.stdout}")
            exes[b["label"]] = host_binary(out, m["c_name"], tuple(b["flags"]))
        onnx = folder / m["onnx"] if m.get("onnx") else None
        inputs = []
        if m.get("inputs"):
            with np.load(folder / m["inputs"]) as data:
                inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
        h = host_latency(exes, onnx, inputs, rounds, reps)

        def pair(key: str, h: dict = h) -> str:
            return f"{_us(h.get(key))} [{_us(h.get(key + ' min'))}]"

        def ratio(key: str, h: dict = h) -> str:
            median = _ratio(h.get(key), h.get("ort"))
            return f"{median} [{_ratio(h.get(key + ' min'), h.get('ort min'))}]"

        cells = " | ".join(pair(x) for x in labels)
        ratios = " | ".join(ratio(x) for x in labels)
        lines.append(f"| {m['name']} | {cells} | {pair('ort')} | {ratios} |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


# ---- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if "--host-run" in sys.argv:  # no ircomp here: only the exported folder
        parser.add_argument("--host-run", type=Path, required=True)
        parser.add_argument("--rounds", type=int, default=5)
        parser.add_argument("--reps", type=int, default=7)
        parser.add_argument("--out", type=Path, help="also write the table here")
        args = parser.parse_args()
        table = host_run(args.host_run, args.rounds, args.reps)
        print(table)
        if args.out:
            args.out.write_text(table)
        return 0
    makers = model_makers()
    parser.add_argument("--models", default=",".join(makers), help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="few timing rounds; no RESULTS.md")
    parser.add_argument("--no-peers", action="store_true", help="skip emx-onnx-cgen and emlearn")
    parser.add_argument(
        "--export-host",
        type=Path,
        help="only write the host builds, ONNX files and inputs to this folder, for "
        "`--host-run FOLDER` on another machine (gcc, numpy and onnxruntime there)",
    )
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in makers]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(makers)}")
    if args.export_host:
        export_host(names, makers, args.export_host)
        print(f"wrote {args.export_host}")
        return 0
    rounds, reps = (2, 3) if args.quick else (5, 7)
    from rich.progress import Progress

    rows: list[dict] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="ircomp-cbench-") as tmp,
            Progress(transient=False) as bar,
        ):
            task = bar.add_task("models", total=len(names))
            for name in names:
                bar.update(task, description=f"{name}: import")
                case = makers[name](Path(tmp))
                folder = Path(tmp) / name
                row: dict = {"model": name, "m4": {}}
                for kernels in M4_KERNELS:
                    bar.update(task, description=f"{name}: ircomp {kernels} on Cortex-M4")
                    row["m4"][kernels] = measure_ircomp(case, folder / kernels, kernels)
                first = row["m4"][M4_KERNELS[0]]
                row["mode"], row["notes"], row["name"] = case.mode, case.notes, first["name"]
                if "tflite_max_diff" in first:
                    row["tflite_max_diff"] = first["tflite_max_diff"]
                bar.update(task, description=f"{name}: host latency")
                build_case(case, folder / "vector", "vector")
                row["vector_arena"] = build_info(case.program, case.name, "vector")["arena"]
                exes = {
                    label: host_binary(folder / kernels, row["name"], flags)
                    for label, kernels, flags in HOST_BUILDS
                }
                if case.mode == "integer" and case.fallback is not None:
                    label, sub, flags = ONNX_MODE_BUILD
                    onnx_program = case.fallback()
                    inputs = case.inputs or None
                    build(onnx_program, folder / sub, case.name, inputs=inputs, kernels="vector")
                    exes[label] = host_binary(folder / sub, row["name"], flags)
                for label, exe in exes.items():  # the harness of each build passes too
                    native = "native" in label or "onnx mode" in label
                    check = subprocess.run(
                        ["make", "-s", "check-native" if native else "check"],
                        cwd=exe.parent, capture_output=True, text=True, timeout=900,
                    )  # fmt: skip
                    if check.returncode != 0 or " 0 mismatches" not in check.stdout:
                        raise RuntimeError(f"{name} {label}: host harness failed\n{check.stdout}")
                row["host"] = host_latency(exes, case.onnx, case.inputs, rounds, reps)
                if not args.no_peers and case.onnx is not None:
                    bar.update(task, description=f"{name}: emx-onnx-cgen")
                    try:
                        row["emx"] = measure_emx(case, folder / "emx")
                    except (RuntimeError, subprocess.TimeoutExpired) as err:
                        row["emx_error"] = str(err).splitlines()[0][:200]
                if not args.no_peers and case.emlearn is not None:
                    bar.update(task, description=f"{name}: emlearn")
                    try:
                        row["emlearn"] = measure_emlearn(case, folder / "emlearn")
                    except (RuntimeError, subprocess.TimeoutExpired) as err:
                        row["emlearn_error"] = str(err).splitlines()[0][:200]
                rows.append(row)
                h = row["host"]
                bar.console.print(
                    f"{name}: "
                    + ", ".join(
                        f"{k} {row['m4'][k]['instructions']:,} instr "
                        f"(inlined {row['m4'][k]['inlined']:,}), arena {row['m4'][k]['arena']:,} B"
                        for k in M4_KERNELS
                    )
                    + "; host "
                    + ", ".join(f"{label} {_us(h[label])} us" for label, _, _ in HOST_BUILDS)
                    + f", ort {_us(h.get('ort'))} us"
                )
                bar.advance(task)
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    text = render(rows, args, rounds, reps)
    print(text)
    if not args.quick:
        write_section(text)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
