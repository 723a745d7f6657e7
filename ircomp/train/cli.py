"""`ircomp train`: train a LUT-friendly sparse quantized MLP (LogicNets / NullaNet Tiny style)
and export it.

    ircomp train --preset nullanet-digits --dataset digits -o out/
    ircomp train --preset logicnets-digits --fan-in 5 --bits 2 --epochs 80 --format qonnx -o out/

Writes into the output folder (created if needed; other files there are left alone):
``model.mlir`` + ``model.safetensors`` (``--format ir``) or ``model.onnx`` (``qonnx``, ``qdq``),
and ``train.json`` (configuration, float / fake-quantized / interpreter accuracies, fan-in per
layer after relaxation, epochs, times). Each file is written whole or not at all. Training runs
on the CPU with one thread and is deterministic given ``--seed``. Ctrl-C stops training; the
model as it stands is exported, ``train.json`` records ``"interrupted": true`` and the exit
status is 130.

This module imports torch only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ircomp.errors import InputError

__all__ = ["add_train_command", "cmd_train"]

FORMATS = ("ir", "qonnx", "qdq")
EXIT_INTERRUPTED = 130  # as `ircomp.cli`: the files are complete, but training was cut short


def add_train_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train`` on the `ircomp` command line's subparsers."""
    from ircomp.train.logicnet_config import MASK_MODES, PRESETS

    p = subparsers.add_parser(
        "train",
        help="train a LUT-friendly sparse quantized MLP (LogicNets / NullaNet Tiny) and export it",
        description=(
            "Train a network whose neurons each read F inputs of few bits, and export it as "
            "integer-exact IR (model.mlir + model.safetensors) or ONNX, plus train.json."
        ),
    )
    p.add_argument(
        "--preset",
        default="nullanet-digits",
        help=f"network and training preset: {', '.join(PRESETS)} (default: nullanet-digits)",
    )
    p.add_argument(
        "--dataset",
        default="digits",
        help="digits, fashion-mnist, or a .npz file (default: digits)",
    )
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument(
        "--fan-in", help="inputs per neuron: one value for every layer, or one per layer (6,6,12)"
    )
    p.add_argument(
        "--bits",
        help="activation bits: one value for every multi-bit (relu/hardtanh) layer, or one "
        "per layer (1 for binary/bipolar layers)",
    )
    p.add_argument("--input-bits", type=int, help="bits of the input codes")
    p.add_argument(
        "--activations",
        help="per-layer activations, e.g. relu,binary,relu (binary, bipolar, relu, hardtanh)",
    )
    p.add_argument("--hidden", help="hidden layer widths, e.g. 64,32")
    p.add_argument("--epochs", type=int, help="quantization-aware training epochs")
    p.add_argument("--float-epochs", type=int, help="float pre-training epochs")
    p.add_argument(
        "--prune-epochs", type=int, help="learned masks: float epochs after each pruning stage"
    )
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--seed", type=int, help="random seed (masks, initialization, data order)")
    p.add_argument(
        "--accuracy-target",
        type=float,
        help="with --mask learned: relax fan-ins (F+1 where pruning costs most) until the "
        "interpreter's test accuracy reaches this (fraction 0.9 or percent 90)",
    )
    p.add_argument("--mask", help=f"fan-in masks: {' or '.join(MASK_MODES)}")
    p.add_argument(
        "--format", default="ir", help=f"output format: {', '.join(FORMATS)} (default: ir)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_train)
    return p


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(
            f"{what} expects an integer or comma-separated integers, got {text!r}"
        ) from None


def _per_layer(text: str, n: int, what: str) -> list[int]:
    values = _int_list(text, what)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise InputError(f"{what} needs 1 or {n} values (one per layer), got {len(values)}")
    return values


def _target(value: float | None) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0 or value > 100:
        raise InputError(f"--accuracy-target must be in (0, 1] or (1, 100] percent, got {value}")
    return value / 100.0 if value > 1 else value


def build_config(args: argparse.Namespace, in_features: int, classes: int) -> Any:
    """The preset with the command line's overrides, sized for the data set, validated."""
    from ircomp.train.logicnet_config import preset

    cfg = preset(args.preset)
    cfg.in_features, cfg.classes = in_features, classes
    if args.hidden:
        cfg.hidden = _int_list(args.hidden, "--hidden")
        n = cfg.num_layers
        if len(cfg.activations) != n:  # a new depth: repeat the first layer's choices
            for key in ("activations", "bits", "fan_in"):
                old = getattr(cfg, key)
                setattr(cfg, key, [old[0]] * (n - 1) + [old[-1]])
    n = cfg.num_layers
    if args.activations:
        acts = [a.strip() for a in args.activations.split(",") if a.strip()]
        cfg.activations = acts * n if len(acts) == 1 else acts
        if len(cfg.activations) == n:  # else validate() names the mismatch
            step = ("binary", "bipolar")
            cfg.bits = [
                1 if a in step else (2 if b == 1 else b)
                for a, b in zip(cfg.activations, cfg.bits, strict=True)
            ]
    if args.fan_in is not None:
        cfg.fan_in = _per_layer(args.fan_in, n, "--fan-in")
    if args.bits is not None:
        values = _int_list(args.bits, "--bits")
        if len(values) == 1:  # every multi-bit layer; binary/bipolar layers keep 1 bit
            cfg.bits = [1 if a in ("binary", "bipolar") else values[0] for a in cfg.activations]
        else:
            cfg.bits = _per_layer(args.bits, n, "--bits")
    if args.input_bits is not None:
        cfg.input_bits = args.input_bits
    for key in ("epochs", "float_epochs", "prune_epochs", "lr", "seed"):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, value)
    if args.mask is not None:
        cfg.mask = args.mask
    cfg.accuracy_target = _target(args.accuracy_target)
    return cfg.validate()


def cmd_train(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise InputError(f"unknown --format {args.format!r}; use one of {', '.join(FORMATS)}")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    from ircomp.train.logicnet_config import preset

    preset(args.preset)  # an unknown preset fails before the data set is loaded

    import numpy as np
    import torch

    from ircomp.fileio import atomic_write
    from ircomp.train.data import get_dataset
    from ircomp.train.logicnet_train import train_logicnet

    dataset = get_dataset(args.dataset)
    cfg = build_config(args, int(np.prod(dataset.input_shape)), dataset.num_classes)
    torch.set_num_threads(1)  # tiny networks; one thread keeps runs reproducible and polite

    def log(message: str) -> None:
        print(f"ircomp train: {message}", file=sys.stderr)

    result = train_logicnet(cfg, dataset, progress=not args.no_progress, log=log)
    out.mkdir(parents=True, exist_ok=True)
    files = _write_model(result, out, args.format)
    report = {"preset": args.preset, "format": args.format, "files": files, **result.report}
    text = json.dumps(report, indent=2) + "\n"
    atomic_write(out / "train.json", lambda p: p.write_text(text))
    rep = result.report
    if rep["interrupted"]:
        log("interrupted: training stopped early; the model as it stood was exported")
    print(
        f"wrote {', '.join(str(out / f) for f in [*files, 'train.json'])}\n"
        f"float {rep['float_accuracy']:.4f}  fake-quant {rep['fake_quant_accuracy']:.4f}  "
        f"interpreter {rep['interpreter_accuracy']:.4f}  fan-in {rep['fan_in']}  "
        f"{rep['seconds']['total']:.1f} s"
    )
    return EXIT_INTERRUPTED if rep["interrupted"] else 0


def _write_model(result: Any, out: Path, fmt: str) -> list[str]:
    from ircomp.fileio import atomic_write

    if fmt == "ir":
        from ircomp.ir.program import save_program

        save_program(result.program, out / "model.mlir")
        return ["model.mlir", "model.safetensors"]
    import onnx

    from ircomp.train.logicnet_onnx import to_qdq, to_qonnx

    model = to_qonnx(result.folded) if fmt == "qonnx" else to_qdq(result.folded)
    atomic_write(out / "model.onnx", lambda p: onnx.save(model, str(p)))
    return ["model.onnx"]
