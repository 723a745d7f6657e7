"""Regenerate the built-in LUT example `ircomp/examples/digits_lut/`.

Trains the ``nullanet-digits`` preset (learned fan-in 6/6/12, 2-bit relu -> binary -> 3-bit
output, every neuron a function of 12 input bits) on scikit-learn's digits (split seed 0, 80/20
stratified) on the CPU, exports it to the integer IR, and writes ``model.mlir``,
``model.safetensors`` and ``meta.json``. Checks before writing: the golden interpreter's test
accuracy is at least 90 %, every neuron reads at most 12 bits, and the export is exact (the
integer network equals the fake-quantized torch model on every truth-table row).

    python examples/digits_lut/make_example.py            # about 10 s on one core

The same network comes from the command line:
``ircomp train --preset nullanet-digits --dataset digits --seed 0 -o out/``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

from ircomp.ir.program import save_program
from ircomp.train.data import load_digits
from ircomp.train.logicnet_config import preset
from ircomp.train.logicnet_train import train_logicnet

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "ircomp" / "examples" / "digits_lut"  # the package `ircomp.examples.digits_lut`
PRESET = "nullanet-digits"
SEED = 0
SPLIT_SEED = 0
TEST_FRACTION = 0.2
MIN_ACCURACY = 0.90
MAX_TABLE_BITS = 12


def main() -> int:
    torch.set_num_threads(1)
    cfg = preset(PRESET)
    cfg.seed = SEED
    dataset = load_digits(seed=SPLIT_SEED, test_fraction=TEST_FRACTION)
    start = time.perf_counter()
    result = train_logicnet(cfg, dataset, progress=False, log=print)
    seconds = time.perf_counter() - start
    rep = result.report
    table_bits = max(layer.table_bits for layer in result.folded.layers)
    problems = []
    if rep["interpreter_accuracy"] < MIN_ACCURACY:
        problems.append(f"interpreter accuracy {rep['interpreter_accuracy']:.4f} < {MIN_ACCURACY}")
    if table_bits > MAX_TABLE_BITS:
        problems.append(f"a neuron reads {table_bits} bits > {MAX_TABLE_BITS}")
    if not result.folded.exact:
        problems.append("the integer export differs from the torch model on some rows")
    if problems:
        print("not written: " + "; ".join(problems), file=sys.stderr)
        return 1
    meta = {
        "description": "NullaNet Tiny style LUT network (learned fan-in) on sklearn digits",
        "dataset": "digits",
        "split": {"seed": SPLIT_SEED, "test_fraction": TEST_FRACTION, "stratified": True},
        "train_examples": rep["train_examples"],
        "test_examples": rep["test_examples"],
        "preset": PRESET,
        "config": result.folded.config,
        "fan_in": rep["fan_in"],
        "table_bits": rep["table_bits"],
        "float_accuracy": rep["float_accuracy"],
        "fake_quant_accuracy": rep["fake_quant_accuracy"],
        "interpreter_accuracy": rep["interpreter_accuracy"],
        "torch_interpreter_mismatches": rep["torch_interpreter_mismatches"],
        "export": rep["export"],
        "train_seconds": round(seconds, 1),
        "made_by": "python examples/digits_lut/make_example.py",
        "equivalent_command": f"ircomp train --preset {PRESET} --dataset digits --seed {SEED}",
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    save_program(result.program, OUT / "model.mlir")
    (OUT / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"wrote {OUT}: float {rep['float_accuracy']:.4f}, fake-quant "
        f"{rep['fake_quant_accuracy']:.4f}, interpreter {rep['interpreter_accuracy']:.4f} "
        f"({seconds:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
