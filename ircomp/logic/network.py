"""Bit-level building blocks of the logic flow: code <-> bit vectors and LUT networks.

A **LUT network** computes a multi-output Boolean function with k-input lookup tables. Nodes are
numbered: `0 .. num_inputs-1` are the primary inputs, `num_inputs + l` is LUT `l`; `CONST0` (-1)
and `CONST1` (-2) are the constants. LUTs are topologically ordered (a LUT reads only primary
inputs, constants and earlier LUTs). LUT `l` reads nodes `lut_inputs[l, 0..k-1]` (`CONST0`
fills unused slots) and outputs bit `r` of `lut_init[l]`, where `r = sum_j value(input j) << j`
(input 0 is the least significant address bit, as in Xilinx `LUT6.INIT`).

Codes become bits least significant bit first, as raw two's complement (`spec/logic.md`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONST0 = -1
CONST1 = -2
MAX_LUT_INPUTS = 6


def codes_to_bits(codes: np.ndarray, width: int) -> np.ndarray:
    """[..., n] integer codes -> [..., n * width] bools; element i bit b lands at i*width + b."""
    raw = np.asarray(codes).astype(np.int64) & ((1 << width) - 1)
    bits = (raw[..., None] >> np.arange(width, dtype=np.int64)) & 1
    return bits.reshape(*raw.shape[:-1], raw.shape[-1] * width).astype(bool)


def bits_to_codes(bits: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """Inverse of `codes_to_bits`: [..., n * width] bools -> [..., n] int64 codes."""
    grouped = np.asarray(bits, dtype=np.int64).reshape(*bits.shape[:-1], -1, width)
    raw = (grouped << np.arange(width, dtype=np.int64)).sum(axis=-1)
    if signed:
        raw = np.where(raw >= 1 << (width - 1), raw - (1 << width), raw)
    return raw


def row_index(codes: np.ndarray, width: int) -> np.ndarray:
    """[..., F] codes -> [...] truth-table rows: sum_k raw(code_k) << (width * k)."""
    raw = np.asarray(codes).astype(np.int64) & ((1 << width) - 1)
    shifts = width * np.arange(raw.shape[-1], dtype=np.int64)
    return (raw << shifts).sum(axis=-1)


def row_codes(rows: np.ndarray, width: int, fan_in: int, signed: bool) -> np.ndarray:
    """Inverse of `row_index`: [...] rows -> [..., F] codes of `width` bits."""
    rows = np.asarray(rows, dtype=np.int64)
    shifts = width * np.arange(fan_in, dtype=np.int64)
    raw = (rows[..., None] >> shifts) & ((1 << width) - 1)
    if signed:
        raw = np.where(raw >= 1 << (width - 1), raw - (1 << width), raw)
    return raw


@dataclass(frozen=True)
class LutNetwork:
    """A multi-output Boolean function as a topologically ordered network of k-input LUTs."""

    num_inputs: int
    lut_inputs: np.ndarray  # int32 [L, k]
    lut_init: np.ndarray  # uint64 [L]
    outputs: np.ndarray  # int32 [M]

    def __post_init__(self) -> None:
        init = np.asarray(self.lut_init, np.uint64).reshape(-1)
        inputs = np.asarray(self.lut_inputs, np.int32)
        inputs = inputs.reshape(len(init), inputs.shape[-1] if inputs.ndim == 2 else -1)
        object.__setattr__(self, "lut_init", init)
        object.__setattr__(self, "lut_inputs", inputs)
        object.__setattr__(self, "outputs", np.asarray(self.outputs, np.int32).reshape(-1))
        problem = self.problem()
        if problem:
            raise ValueError(f"invalid LUT network: {problem}")

    def init_halves(self) -> np.ndarray:
        """INIT words as [L, 2] uint32 (low, high halves): how `logic.lut_network` stores them."""
        low = self.lut_init & np.uint64(0xFFFF_FFFF)
        return np.stack([low, self.lut_init >> np.uint64(32)], axis=-1).astype(np.uint32)

    @staticmethod
    def init_from_halves(halves: np.ndarray) -> np.ndarray:
        """Inverse of `init_halves`: [L, 2] uint32 -> [L] uint64."""
        halves = np.asarray(halves).astype(np.uint64).reshape(-1, 2)
        return halves[:, 0] | (halves[:, 1] << np.uint64(32))

    @property
    def num_luts(self) -> int:
        return len(self.lut_init)

    @property
    def k(self) -> int:
        return int(self.lut_inputs.shape[1]) if self.num_luts else 0

    def problem(self) -> str | None:
        """Why this network is malformed, or None."""
        if self.num_luts and not 1 <= self.k <= MAX_LUT_INPUTS:
            return f"LUTs must have 1..{MAX_LUT_INPUTS} inputs, got {self.k}"
        first_lut = self.num_inputs
        for lut, inputs in enumerate(self.lut_inputs):
            bad = [int(n) for n in inputs if n < CONST1 or n >= first_lut + lut]
            if bad:
                return f"LUT {lut} reads node {bad[0]}, not an input, constant or earlier LUT"
        extra_bits = self.lut_init >> np.uint64(1 << self.k) if self.k < MAX_LUT_INPUTS else 0
        if self.num_luts and np.any(extra_bits):
            return f"LUT init values have bits beyond bit {(1 << self.k) - 1}"
        bad_out = [int(n) for n in self.outputs if n < CONST1 or n >= first_lut + self.num_luts]
        if bad_out:
            return f"output reads node {bad_out[0]}, which does not exist"
        return None

    def levels(self) -> np.ndarray:
        """Logic level of every node beyond the inputs: LUT l -> 1 + max level of its inputs."""
        level = np.zeros(self.num_inputs + self.num_luts, dtype=np.int64)
        for lut, inputs in enumerate(self.lut_inputs):
            real = inputs[inputs >= 0]
            level[self.num_inputs + lut] = 1 + (int(level[real].max()) if real.size else 0)
        return level[self.num_inputs :]

    def depth(self) -> int:
        """LUTs on the longest input-to-output path."""
        if not self.num_luts:
            return 0
        levels = self.levels()
        luts = self.outputs[self.outputs >= self.num_inputs] - self.num_inputs
        return int(levels[luts].max()) if luts.size else 0

    def evaluate(self, bits: np.ndarray) -> np.ndarray:
        """[batch, num_inputs] bools -> [batch, M] bools, evaluated level by level."""
        bits = np.asarray(bits, dtype=bool)
        batch = bits.shape[0]
        # Columns: the inputs, the LUTs, then CONST1 (-2) and CONST0 (-1) at the end.
        nodes = np.zeros((batch, self.num_inputs + self.num_luts + 2), dtype=bool)
        nodes[:, : self.num_inputs] = bits
        nodes[:, -2] = True
        levels = self.levels()
        weights = 1 << np.arange(max(self.k, 1), dtype=np.int64)
        for level in np.unique(levels):
            luts = np.flatnonzero(levels == level)
            address = (nodes[:, self.lut_inputs[luts]] * weights).sum(axis=-1)
            init = self.lut_init[luts].astype(np.uint64)
            value = (init[None, :] >> address.astype(np.uint64)) & np.uint64(1)
            nodes[:, self.num_inputs + luts] = value.astype(bool)
        return nodes[:, self.outputs]

    @staticmethod
    def concatenate(parts: Sequence[tuple[LutNetwork, np.ndarray]], num_inputs: int) -> LutNetwork:
        """Join networks side by side over shared inputs.

        Each part comes with `input_map` (its primary input j reads node `input_map[j]` of the
        joined network: one of its `num_inputs` inputs or a constant); outputs are concatenated.
        """
        k = max((p.k for p, _ in parts), default=0) or 1
        lut_inputs, lut_init, outputs = [], [], []
        offset = num_inputs
        for part, input_map in parts:
            input_map = np.asarray(input_map, dtype=np.int64)
            lookup = np.concatenate(
                [input_map, offset + np.arange(part.num_luts), [CONST1, CONST0]]
            )
            if part.num_luts:
                padded = np.full((part.num_luts, k), CONST0, dtype=np.int64)
                padded[:, : part.k] = part.lut_inputs
                lut_inputs.append(lookup[padded])
                lut_init.append(part.lut_init)
            outputs.append(lookup[part.outputs])
            offset += part.num_luts
        return LutNetwork(
            num_inputs,
            np.concatenate(lut_inputs) if lut_inputs else np.zeros((0, k), np.int32),
            np.concatenate(lut_init) if lut_init else np.zeros(0, np.uint64),
            np.concatenate(outputs) if outputs else np.zeros(0, np.int32),
        )
