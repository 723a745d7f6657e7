"""Two-level minimization with Espresso (pyeda's binding), using don't-cares.

`espresso_cover(bits, care)` minimizes a multi-output function given on its care rows (the
others are don't-cares) to a sum-of-products `Cover` shared by the outputs. The cover is a
*completion* of the table: `Cover.values()` gives its value on every row, equal to the table
on the care rows. pyeda's Espresso keeps global state, so calls are serialized.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

_LOCK = threading.Lock()

# pyeda's cube encoding of an input: 1 = literal x', 2 = literal x, 3 = absent.
_CUBE_CHAR = {1: "0", 2: "1", 3: "-"}


@dataclass(frozen=True)
class Cover:
    """A multi-output sum of products over `num_inputs` inputs.

    Each cube is (`inputs`, `outputs`): `inputs[j]` is `0`, `1` or `-` for input j (bit j of
    the row index), `outputs[m]` is `1` if the cube belongs to output m's sum.
    """

    num_inputs: int
    num_outputs: int
    cubes: tuple[tuple[str, str], ...]

    @property
    def terms(self) -> int:
        return len(self.cubes)

    @property
    def literals(self) -> int:
        return sum(len(c) - c.count("-") for c, _ in self.cubes)

    def values(self) -> np.ndarray:
        """[M, R] bools: each output's value on every row."""
        rows = np.arange(1 << self.num_inputs, dtype=np.int64)
        out = np.zeros((self.num_outputs, rows.size), dtype=bool)
        for cube, outputs in self.cubes:
            mask = sum(1 << j for j, c in enumerate(cube) if c != "-")
            value = sum(1 << j for j, c in enumerate(cube) if c == "1")
            hit = (rows & mask) == value
            for m, flag in enumerate(outputs):
                if flag == "1":
                    out[m] |= hit
        return out


def espresso_cover(bits: np.ndarray, care: np.ndarray | None = None) -> Cover:
    """Minimize `bits` ([M, R] bools, R = 2^n) on the rows where `care` ([R] bools) is set.

    Rows outside `care` are don't-cares for every output. Espresso gets the care rows as the
    on-set and off-set (pyeda's `F | R` input type), so the don't-care set is never listed.
    """
    from pyeda.boolalg.espresso import FTYPE, RTYPE, espresso, set_config
    from pyeda.boolalg.minimization import CONFIG

    bits = np.atleast_2d(np.asarray(bits, dtype=bool))
    num_outputs, rows = bits.shape
    num_inputs = rows.bit_length() - 1
    if rows != 1 << num_inputs:
        raise ValueError(f"a truth table needs 2^n rows, got {rows}")
    care_rows = np.flatnonzero(care) if care is not None else np.arange(rows)
    if num_inputs == 0 or care_rows.size == 0:
        # Espresso needs an input and a care row; without them each output is a constant.
        if care_rows.size == 0:
            return Cover(num_inputs, num_outputs, ())
        ones = "".join("1" if b else "0" for b in bits[:, care_rows[0]])
        cubes = (("-" * num_inputs, ones),) if "1" in ones else ()
        return Cover(num_inputs, num_outputs, cubes)
    input_bits = (care_rows[:, None] >> np.arange(num_inputs)) & 1
    literals = np.where(input_bits == 1, 2, 1).tolist()
    outputs = bits[:, care_rows].T.astype(np.int64).tolist()
    cover = {(tuple(i), tuple(o)) for i, o in zip(literals, outputs, strict=True)}
    with _LOCK:
        set_config(**CONFIG)
        result = espresso(num_inputs, num_outputs, cover, intype=FTYPE | RTYPE)
    cubes = sorted(
        (
            "".join(_CUBE_CHAR[v] for v in invec),
            "".join("1" if v == 1 else "0" for v in outvec),
        )
        for invec, outvec in result
    )
    return Cover(num_inputs, num_outputs, tuple((c, o) for c, o in cubes if "1" in o))


__all__ = ["Cover", "espresso_cover"]
