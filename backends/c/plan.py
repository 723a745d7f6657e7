"""Static memory planning for the C backend: one arena, offsets by liveness; and reading a
finished plan (`peak_live`, `format_plan`) for reports and `--max-ram`.

Values are placed in IR order (the order they are defined). Each gets the lowest offset
(first fit, aligned) whose bytes no placed value with an overlapping lifetime occupies. A
lifetime is the inclusive interval [index of the defining op, index of the last op reading it],
so an op's operands and results never share bytes, except in place: when `inplace` names an
operand that dies at the defining op, the result takes that operand's offset (the kernel reads
element i before writing element i, so this is legal; the op decides, see `codegen`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

ALIGN = 8


@dataclass
class Buffer:
    """One arena tensor: its size in bytes, lifetime, and (after planning) offset."""

    key: Hashable
    label: str
    size: int
    start: int
    end: int
    inplace_of: Hashable | None = None
    offset: int = -1

    def overlaps_time(self, other: Buffer) -> bool:
        return self.start <= other.end and other.start <= self.end

    def overlaps_space(self, offset: int, size: int) -> bool:
        return self.offset < offset + size and offset < self.offset + self.size


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(buffers: Sequence[Buffer]) -> int:
    """Assign `offset` to every buffer (in the given order); return the arena size in bytes."""
    placed: list[Buffer] = []
    by_key: dict[Hashable, Buffer] = {}
    for buf in buffers:
        live = [p for p in placed if p.overlaps_time(buf)]
        chosen = -1
        if buf.inplace_of is not None and buf.inplace_of in by_key:
            host = by_key[buf.inplace_of]
            others = [p for p in live if p is not host]
            if (
                host.end == buf.start
                and buf.size <= host.size
                and not any(p.overlaps_space(host.offset, buf.size) for p in others)
            ):
                chosen = host.offset
        if chosen < 0:
            candidates = sorted({0, *(_align(p.offset + p.size) for p in live)})
            for offset in candidates:
                if not any(p.overlaps_space(offset, buf.size) for p in live):
                    chosen = offset
                    break
        buf.offset = chosen
        placed.append(buf)
        by_key[buf.key] = buf
    return max((_align(b.offset + b.size) for b in placed), default=0)


# ---- reading a plan: the memory in use over time, and a table for people ------------------


def placed(entries: Sequence[tuple[str, int, int, int, int]]) -> list[Buffer]:
    """Buffers of a finished plan from its `(label, offset, bytes, first op, last op)` rows
    (the rows `codegen.ArenaPlan.entries` holds)."""
    return [
        Buffer(key=k, label=label, size=size, start=start, end=end, offset=offset)
        for k, (label, offset, size, start, end) in enumerate(entries)
    ]


def live_bytes(buffers: Sequence[Buffer], time: int) -> int:
    """Bytes of the arena in use while op `time` runs: the union of the byte ranges of the
    buffers live then (a result written in place over its operand counts once)."""
    spans = sorted((b.offset, b.offset + b.size) for b in buffers if b.start <= time <= b.end)
    used, reach = 0, 0
    for lo, hi in spans:
        lo = max(lo, reach)
        if hi > lo:
            used += hi - lo
            reach = hi
    return used


def peak_live(buffers: Sequence[Buffer]) -> tuple[int, int]:
    """(bytes, op index) of the largest `live_bytes` over the ops: the liveness lower bound for
    these lifetimes and in-place choices; no placement can make the arena smaller."""
    best = (0, -1)
    for t in sorted({b.start for b in buffers}):  # the in-use set only grows at a start
        used = live_bytes(buffers, t)
        if used > best[0]:
            best = (used, t)
    return best


def format_plan(buffers: Sequence[Buffer], arena: int, *, limit: int = 200) -> str:
    """The plan as a table, one row per tensor in IR order: offset, bytes, live range [first
    op, last op] and the defining op; '*' marks the tensors live at the peak."""
    peak, at = peak_live(buffers)
    rows = [
        f"arena {arena} bytes; liveness peak {peak} bytes at op {at} (tensors marked *)",
        f"  {'offset':>8} {'bytes':>8}  {'ops':<11} tensor",
    ]
    for b in buffers[:limit]:
        mark = "*" if b.start <= at <= b.end else " "
        rows.append(f"{mark} {b.offset:8d} {b.size:8d}  {f'[{b.start}, {b.end}]':<11} {b.label}")
    if len(buffers) > limit:
        rows.append(f"  ... {len(buffers) - limit} more")
    return "\n".join(rows)
