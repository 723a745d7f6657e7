"""ABC (Berkeley's logic synthesis and verification system) as a subprocess.

ircomp hands ABC truth tables and two-level covers and reads back k-LUT networks:

* `truth_hex` / `write_truths`: truth tables in the format of ABC's `read_truth -f` (one
  hexadecimal string per output, most significant minterm first; variable 0 is the least
  significant bit of the minterm, ABC's input `a`);
* `write_care_patterns`: the binary simulation file of `&ttopt ... <file>` (the rows the
  function must keep; the others are don't-cares);
* `run_abc`: one ABC process over a script in a private temporary folder, with a timeout;
  `AbcProcesses` lets a caller kill every running ABC (Ctrl-C);
* `parse_blif` / `blif_to_network`: ABC's `write_blif` output, a network of `.names` covers,
  as a `LutNetwork` over the same primary inputs (in `.inputs` order) and outputs (in
  `.outputs` order).

Cover semantics (`.names`): each line is an input cube over the node's fan-ins, in the order
they are listed, (`0`, `1`, `-`) and an output value. If the lines end in `1` the function is the
OR of the cubes (an on-set cover); if they end in `0` it is the complement of that OR (an
off-set cover). A node without lines is constant 0; a node without fan-ins and a line `1` is
constant 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ircomp.errors import InputError, IrcompError
from ircomp.logic.network import CONST0, MAX_LUT_INPUTS, LutNetwork

# Programs tried in order, with the Debian package that provides each.
ABC_PROGRAMS = {"yosys-abc": "yosys", "berkeley-abc": "berkeley-abc"}
ABC_ENV = "IRCOMP_ABC"
OUTPUT_TAIL = 2000


class AbcError(IrcompError):
    """ABC failed, timed out or wrote something ircomp cannot read."""


def find_abc(program: str | None = None) -> str:
    """The ABC executable: `program` (a name on PATH or a path), else `$IRCOMP_ABC`, else the
    first of `yosys-abc`, `berkeley-abc` on PATH. InputError naming the packages if none."""
    wanted = program or os.environ.get(ABC_ENV) or None
    candidates = [wanted] if wanted else list(ABC_PROGRAMS)
    for name in candidates:
        path = shutil.which(name)
        if path is not None:
            return path
    packages = " or ".join(f"`{p}` (Debian package {d})" for p, d in ABC_PROGRAMS.items())
    if wanted:
        raise InputError(
            f"the ABC program {wanted!r} was not found; logic minimization needs ABC: install "
            f"{packages} (`sudo apt-get install yosys berkeley-abc`, or run "
            f"scripts/install-system-deps.sh), or point ${ABC_ENV} at an ABC binary"
        )
    raise InputError(
        f"logic minimization needs ABC and found none on PATH: install {packages} "
        "(`sudo apt-get install yosys berkeley-abc`, or run scripts/install-system-deps.sh), "
        f"or point ${ABC_ENV} at an ABC binary"
    )


# ---- writing ABC's inputs ---------------------------------------------------------------


def truth_hex(bits: np.ndarray) -> str:
    """A truth table of 2^n rows (bool [R]) as ABC's hex string: minterm R-1 first."""
    bits = np.asarray(bits, dtype=bool).reshape(-1)
    rows = len(bits)
    if rows & (rows - 1) or rows == 0:
        raise ValueError(f"a truth table needs 2^n rows, got {rows}")
    if rows < 4:
        value = sum(int(b) << i for i, b in enumerate(bits))
        return format(value, "x")
    nibbles = bits.reshape(-1, 4).astype(np.uint8) @ np.array([1, 2, 4, 8], dtype=np.uint8)
    return "".join("0123456789abcdef"[int(x)] for x in nibbles[::-1])


def write_truths(bits: np.ndarray) -> str:
    """[M, R] output bits -> the text of a `read_truth -f` file (one line per output)."""
    return "".join(truth_hex(row) + "\n" for row in np.asarray(bits, dtype=bool))


def write_care_patterns(rows: np.ndarray, num_inputs: int) -> bytes:
    """The simulation file of `&ttopt -R 1 <file>`: the care rows as input patterns.

    ABC reads it as raw 64-bit words, `words` per primary input: pattern p of input i is bit
    p of input i's words. Patterns are padded to a multiple of 64 by repeating the first row
    (a care row), so no row becomes a care row by accident.
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size == 0:
        raise ValueError("a care set needs at least one row")
    words = (rows.size + 63) // 64
    padded = np.full(words * 64, rows[0], dtype=np.int64)
    padded[: rows.size] = rows
    bits = (padded[None, :] >> np.arange(num_inputs, dtype=np.int64)[:, None]) & 1
    packed = np.packbits(
        bits.astype(np.uint8).reshape(num_inputs, words, 64), axis=-1, bitorder="little"
    )  # [n, words, 8] bytes, little-endian words
    return packed.reshape(-1).tobytes()


def write_pla(cubes: Sequence[tuple[str, str]], num_inputs: int, num_outputs: int) -> str:
    """A PLA (`.type f`) of (input cube, output mask) lines; inputs `x0..`, outputs `y0..`."""
    lines = [
        f".i {num_inputs}",
        f".o {num_outputs}",
        ".ilb " + " ".join(f"x{i}" for i in range(num_inputs)),
        ".ob " + " ".join(f"y{o}" for o in range(num_outputs)),
        ".type f",
        f".p {len(cubes)}",
    ]
    lines += [f"{cube} {outs}" for cube, outs in cubes]
    lines.append(".e")
    return "\n".join(lines) + "\n"


# ---- running ABC ------------------------------------------------------------------------


class AbcProcesses:
    """The ABC processes a caller has running; `kill_all` ends them (used on Ctrl-C)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self.stopped = threading.Event()

    def start(self, args: list[str], cwd: str) -> subprocess.Popen:
        with self._lock:
            if self.stopped.is_set():
                raise AbcError("stopped")
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            self._running.add(proc)
            return proc

    def done(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            self.stopped.set()
            for proc in self._running:
                proc.kill()


_DEFAULT_PROCESSES = AbcProcesses()


def run_abc(
    script: str,
    files: Mapping[str, str | bytes],
    outputs: Sequence[str],
    *,
    program: str | None = None,
    timeout: float = 600.0,
    processes: AbcProcesses | None = None,
) -> dict[str, str]:
    """Run ABC on `script` in a fresh temporary folder holding `files`.

    The script names files relative to that folder. Returns the text of each file in
    `outputs` that ABC wrote. AbcError if ABC exits non-zero, is killed or times out.
    """
    exe = find_abc(program)
    processes = processes or _DEFAULT_PROCESSES
    with tempfile.TemporaryDirectory(prefix="ircomp-abc-") as folder:
        for name, content in files.items():
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(Path(folder) / name, mode) as f:
                f.write(content)
        proc = processes.start([exe, "-q", script], folder)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AbcError(f"ABC timed out after {timeout:g} s on: {script}") from None
        finally:
            processes.done(proc)
        if proc.returncode != 0:
            raise AbcError(
                f"ABC ({exe}) exited with status {proc.returncode} on: {script}\n"
                f"{(out or '')[-OUTPUT_TAIL:]}"
            )
        result = {}
        for name in outputs:
            path = Path(folder) / name
            if path.exists():
                result[name] = path.read_text()
        return result


# ---- reading ABC's BLIF -----------------------------------------------------------------


@dataclass(frozen=True)
class BlifNode:
    """One `.names`: fan-in signal names, the output name, the cover lines (cube, value)."""

    inputs: tuple[str, ...]
    output: str
    cover: tuple[tuple[str, str], ...]

    def truth(self) -> int:
        """The function as a truth table over the fan-ins (bit r: fan-in j = bit j of r)."""
        k = len(self.inputs)
        if not self.cover:
            return 0
        values = {value for _, value in self.cover}
        if len(values) != 1 or values - {"0", "1"}:
            raise AbcError(f".names {self.output}: mixed or invalid output values {values}")
        full = (1 << (1 << k)) - 1
        onset = 0
        for cube, _ in self.cover:
            if len(cube) != k or set(cube) - set("01-"):
                raise AbcError(f".names {self.output}: bad cube {cube!r} for {k} inputs")
            term = full
            for j, c in enumerate(cube):
                if c == "1":
                    term &= _VAR_TRUTH[j] & full
                elif c == "0":
                    term &= ~_VAR_TRUTH[j] & full
            onset |= term
        return onset if values == {"1"} else full & ~onset


# Truth table of input j of a 6-input function (bit r = bit j of r).
_VAR_TRUTH = [sum(1 << r for r in range(64) if r >> j & 1) for j in range(MAX_LUT_INPUTS)]


@dataclass(frozen=True)
class Blif:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[BlifNode, ...]


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def parse_blif(text: str) -> Blif:
    """A combinational BLIF model of `.names` (what ABC's `write_blif` writes after mapping)."""
    inputs: list[str] = []
    outputs: list[str] = []
    nodes: list[BlifNode] = []
    lines = _logical_lines(text)
    i = 0
    while i < len(lines):
        words = lines[i].split()
        keyword = words[0]
        i += 1
        if keyword == ".inputs":
            inputs += words[1:]
        elif keyword == ".outputs":
            outputs += words[1:]
        elif keyword == ".names":
            if len(words) < 2:
                raise AbcError("BLIF: .names without an output")
            cover = []
            while i < len(lines) and not lines[i].startswith("."):
                parts = lines[i].split()
                i += 1
                if len(words) == 2 and len(parts) == 1:
                    cover.append(("", parts[0]))
                elif len(parts) == 2:
                    cover.append((parts[0], parts[1]))
                else:
                    raise AbcError(f"BLIF: bad cover line {' '.join(parts)!r}")
            nodes.append(BlifNode(tuple(words[1:-1]), words[-1], tuple(cover)))
        elif keyword in (".model", ".end", ".default_input_arrival", ".default_output_required"):
            continue
        else:
            raise AbcError(f"BLIF: unsupported construct {keyword} (only .names networks)")
    return Blif(tuple(inputs), tuple(outputs), tuple(nodes))


def blif_to_network(blif: Blif, max_inputs: int = MAX_LUT_INPUTS) -> LutNetwork:
    """The BLIF network as a LutNetwork: primary input j = `.inputs` name j, output m =
    `.outputs` name m; nodes become LUTs in topological order, as written (no clean-up)."""
    if len(set(blif.inputs)) != len(blif.inputs):
        raise AbcError("BLIF: repeated input names")
    ids: dict[str, int] = {name: j for j, name in enumerate(blif.inputs)}
    driver: dict[str, BlifNode] = {}
    for node in blif.nodes:
        if node.output in driver or node.output in ids:
            raise AbcError(f"BLIF: signal {node.output} is driven twice")
        if len(node.inputs) > max_inputs:
            raise AbcError(f"BLIF: node {node.output} has {len(node.inputs)} > {max_inputs} inputs")
        driver[node.output] = node
    luts: list[tuple[list[int], int]] = []
    state: dict[str, int] = {}  # 1 = on the DFS stack

    def visit(name: str) -> int:
        if name in ids:
            return ids[name]
        node = driver.get(name)
        if node is None:
            raise AbcError(f"BLIF: signal {name} has no driver")
        stack = [(name, 0)]
        while stack:
            current, phase = stack.pop()
            if current in ids:
                continue
            cur = driver.get(current)
            if cur is None:
                raise AbcError(f"BLIF: signal {current} has no driver")
            if phase == 0:
                if state.get(current) == 1:
                    raise AbcError(f"BLIF: combinational loop through {current}")
                state[current] = 1
                stack.append((current, 1))
                stack.extend((f, 0) for f in reversed(cur.inputs) if f not in ids)
            else:
                if current in ids:
                    continue
                fanins = [ids[f] for f in cur.inputs]
                ids[current] = len(blif.inputs) + len(luts)
                luts.append((fanins, cur.truth()))
                state[current] = 2
        return ids[name]

    outputs = [visit(name) for name in blif.outputs]
    k = max((len(f) for f, _ in luts), default=1) or 1
    lut_inputs = np.full((len(luts), k), CONST0, dtype=np.int32)
    lut_init = np.zeros(len(luts), dtype=np.uint64)
    for lut, (fanins, init) in enumerate(luts):
        if fanins:
            lut_inputs[lut, : len(fanins)] = fanins
        else:  # a constant node: a LUT of one (constant) input keeps the INIT semantics
            lut_inputs[lut, 0] = CONST0
            init &= 1
        lut_init[lut] = np.uint64(init)
    return LutNetwork(len(blif.inputs), lut_inputs, lut_init, np.asarray(outputs, np.int32))


__all__ = [
    "ABC_ENV",
    "ABC_PROGRAMS",
    "AbcError",
    "AbcProcesses",
    "Blif",
    "BlifNode",
    "blif_to_network",
    "find_abc",
    "parse_blif",
    "run_abc",
    "truth_hex",
    "write_care_patterns",
    "write_pla",
    "write_truths",
]
