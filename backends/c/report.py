"""What a C build costs in memory, before and after compiling it: the report behind
`ircomp build --target c` (`report.json` and the printed summary) and its `--max-ram` check.

    info = build_info(program)                     # arena, liveness peak, weights, I/O, the plan
    check_arena(info, max_ram=32 * 1024)           # InputError with the per-tensor plan if over
    measured = measure_cortex_m4(out)              # flash, RAM, stack, instructions (QEMU)
    check_measured(info, measured, max_ram=...)    # model RAM incl. the stack high-water mark

The plan itself comes from `codegen.arena_plan`, which runs `plan.plan`; this module only reads
it (`plan.placed`, `plan.peak_live`, `plan.format_plan`).
"""

from __future__ import annotations

import math
import re

import numpy as np
from xdsl.dialects import func
from xdsl.ir import Operation, SSAValue

from ircomp.backends.c import plan as planning
from ircomp.backends.c.codegen import arena_plan, c_name
from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.interpreter.values import repr_of
from ircomp.ir.program import Program

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1 << 20, "mb": 1 << 20}
_UNITS["mib"] = 1 << 20


def parse_bytes(text: str) -> int:
    """'65536', '64K', '64KiB', '0.5M' -> bytes (K and M are 1024 and 1024**2)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise InputError(
            f"--max-ram expects a byte count such as 65536, 64K or 1.5M (K = 1024), got '{text}'"
        )
    value = float(m.group(1)) * _UNITS[unit]
    if value != int(value) or value <= 0:
        raise InputError(f"--max-ram needs a positive whole number of bytes, got '{text}'")
    return int(value)


def _main(program: Program) -> func.FuncOp:
    for op in program.module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == "main":
            return op
    raise InputError("the module has no function @main")


def _bytes(value: SSAValue) -> int:
    rep = repr_of(value)
    itemsize = 4 if rep.is_float else np.dtype(rep.dtype).itemsize
    return math.prod(value.type.get_shape()) * itemsize  # type: ignore[attr-defined]


def _live_ops(block_ops: list[Operation], outputs: list[SSAValue]) -> list[Operation]:
    live, kept = set(outputs), []
    for op in reversed(block_ops):
        if any(r in live for r in op.results):
            kept.append(op)
            live.update(op.operands)
    return kept[::-1]


def build_info(program: Program, name: str = "model", kernels: str = "portable") -> dict:
    """Memory figures of the generated C before compiling it: `arena` (bytes of the static
    arena), `liveness_peak` (the most bytes live at once under the plan's lifetimes: no
    placement does better), `tensor_bytes` (every intermediate without reuse), `weights`
    (bytes of the distinct `static const` weight arrays, without the small requantization
    tables), `inputs` / `outputs` (the caller's buffers) and `plan` (one row per tensor)."""
    info = arena_plan(program, name, kernels)
    buffers = planning.placed(info.entries)
    peak, at = planning.peak_live(buffers)
    block = _main(program).body.block
    ops = list(block.ops)
    outputs = list(ops[-1].operands)
    seen: set[tuple[str, str]] = set()
    weights = 0
    for op in _live_ops(ops[:-1], outputs):
        if isinstance(op, nn.WeightOp):
            key = (op.hash.data, str(repr_of(op.result).dtype))
            if key not in seen:
                seen.add(key)
                weights += _bytes(op.result)
    return {
        "name": c_name(name),
        "arena": info.size,
        "liveness_peak": peak,
        "liveness_peak_op": at,
        "tensor_bytes": info.total_tensor_bytes,
        "weights": weights,
        "inputs": sum(_bytes(a) for a in block.args),
        "outputs": sum(_bytes(v) for v in outputs),
        "plan": [
            {"tensor": label, "offset": off, "bytes": size, "first_op": start, "last_op": end}
            for label, off, size, start, end in info.entries
        ],
    }


def plan_table(info: dict) -> str:
    rows = [
        (p["tensor"], p["offset"], p["bytes"], p["first_op"], p["last_op"]) for p in info["plan"]
    ]
    return planning.format_plan(planning.placed(rows), info["arena"])


def check_arena(info: dict, max_ram: int) -> None:
    """InputError with the per-tensor plan when the arena alone exceeds `max_ram` bytes."""
    if info["arena"] > max_ram:
        raise InputError(
            f"the arena needs {info['arena']} bytes, {info['arena'] - max_ram} over --max-ram "
            f"{max_ram}. Shrink the tensors live at the peak (marked *): narrower layers, "
            "lower-precision activations, or smaller inputs. Plan:\n" + plan_table(info)
        )


def check_measured(info: dict, measured: dict, max_ram: int) -> None:
    """InputError when the model's measured Cortex-M4 RAM (data + bss, the arena included, +
    the stack high-water mark of one inference) exceeds `max_ram` bytes."""
    ram = measured.get("model_ram")
    if ram is not None and ram > max_ram:
        m = measured["model_sections"]
        raise InputError(
            f"the model needs {ram} bytes of RAM on the Cortex-M4 ({m['data']} data + "
            f"{m['bss']} bss, of which {info['arena']} arena, + {measured['stack_bytes']} stack), "
            f"{ram - max_ram} over --max-ram {max_ram}. The build is in place with its "
            "report.json. Plan:\n" + plan_table(info)
        )


def summary(report: dict) -> str:
    """A few lines for people: memory before compiling, and the Cortex-M4 figures if measured."""
    lines = [
        f"arena {report['arena']:,} B (liveness peak {report['liveness_peak']:,} B, "
        f"{report['tensor_bytes']:,} B without reuse), weights {report['weights']:,} B, "
        f"inputs {report['inputs']:,} B, outputs {report['outputs']:,} B"
    ]
    if "model_flash" in report:
        m = report["model_sections"]
        line = (
            f"cortex-m4 ({report['board']} under QEMU): model flash {report['model_flash']:,} B "
            f"(text {m['text']:,} + rodata {m['rodata']:,})"
        )
        if report.get("model_ram") is not None:
            line += (
                f", model RAM {report['model_ram']:,} B (data {m['data']:,} + bss "
                f"{m['bss']:,} + stack {report['stack_bytes']:,})"
            )
        lines.append(line)
        if "instructions" in report:
            lines.append(f"cortex-m4: {report['instructions']:,} instructions per inference")
        if "passed" in report:
            verdict = "PASS" if report["passed"] else f"FAIL (status {report['status']})"
            lines.append(
                f"cortex-m4 harness: {verdict}; whole test ELF (with newlib stdio) flash "
                f"{report['flash']:,} B, RAM {report['ram']:,} B"
            )
    return "\n".join(lines)


__all__ = ["build_info", "check_arena", "check_measured", "parse_bytes", "plan_table", "summary"]
