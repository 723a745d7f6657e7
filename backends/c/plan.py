"""Static memory planning for the C backend: one arena, offsets by liveness.

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
