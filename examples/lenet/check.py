"""Check the example's result against the output of the unoptimized model and report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ircomp.ir.program import load_program

HERE = Path(__file__).parent


def count_ops(path: Path) -> int:
    program = load_program(path)
    return sum(1 for op in program.module.walk() if op.name.startswith("nn."))


def main(output: str) -> int:
    got = np.load(output)
    expected = np.load(HERE / "expected.npy")
    worst = float(np.max(np.abs(got - expected)))
    before = count_ops(HERE / "model.mlir")
    after = count_ops(Path(output).with_name("model.mlir"))
    print(f"nn ops: {before} before the pipeline, {after} after")
    print(f"max |difference| to the unoptimized model: {worst:.3g}")
    print(f"predicted classes: {got.argmax(axis=1).tolist()}")
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
        print("FAILED: the optimized model's output differs", file=sys.stderr)
        return 1
    print("OK: the optimized model computes what the original does")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
