"""Training of a `LogicNet`: float phase, fan-in masks, quantization-aware phase, export, and
relaxation of learned fan-ins until an accuracy target is met.

    result = train_logicnet(preset("nullanet-digits"), load_digits(), progress=True)
    result.report["interpreter_accuracy"], result.program

Phases (each one `ircomp.train.fit` run: seeded, AdamW, cosine schedule, Ctrl-C ends the run
cleanly and the pipeline goes straight to export with what it has):

1. **float**: quantizers off (float counterparts), masks random (LogicNets) or dense with the
   fan-in penalty (learned). Its test accuracy is the report's ``float_accuracy``.
2. **prune** (learned): each neuron keeps its F most important inputs (|w| times the input's
   standard deviation on the training set).
3. **qat**: quantizers on; BatchNorm statistics re-estimated and activation scales calibrated
   layer by layer on the training set with quantized inputs, then trained with the STE.
   Its test accuracy is ``fake_quant_accuracy``.
4. **export**: `fold_network` + `to_program`; the golden interpreter's test accuracy is the
   quantized model's official ``interpreter_accuracy``.
5. **relax** (learned, with `accuracy_target`): while the interpreter accuracy misses the
   target, the layer whose pruning alone costs the dense float model the most training accuracy
   gets F+1 (never beyond `max_table_bits` input bits), and phases 2-4 run again from the dense
   float model.

Selection never looks at the test split: the final epoch's weights are kept, and relaxation
sensitivities are measured on the training split.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ircomp.errors import InputError
from ircomp.ir.program import Program
from ircomp.train.data import Dataset
from ircomp.train.fit import fit, seed_everything
from ircomp.train.logicnet import LogicNet, LogicNetConfig, first_argmax
from ircomp.train.logicnet_export import (
    FoldedNetwork,
    fold_network,
    interpreter_predictions,
    to_program,
)

__all__ = ["TrainResult", "accuracy", "calibrate", "train_logicnet"]

Log = Callable[[str], None]


@dataclass
class TrainResult:
    model: LogicNet
    folded: FoldedNetwork
    program: Program
    report: dict[str, Any] = field(default_factory=dict)


def _flat(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    def f(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32).reshape(len(a), -1))

    return (
        f(dataset.x_train),
        torch.from_numpy(np.asarray(dataset.y_train, np.int64)),
        f(dataset.x_test),
        torch.from_numpy(np.asarray(dataset.y_test, np.int64)),
    )


@torch.no_grad()
def accuracy(model: LogicNet, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy with argmax ties broken towards the lowest class (the interpreter's rule)."""
    return float((model.predict(x) == y).float().mean())


@torch.no_grad()
def calibrate(model: LogicNet, x: torch.Tensor) -> None:
    """Layer by layer on `x` (with the model's current quantize flags for the earlier layers):
    set each BatchNorm's running statistics to the batch statistics of its input, then fit each
    multi-bit activation scale (`ActQuant.calibrate`) to the normalized pre-activations."""
    was = model.training
    model.eval()
    try:
        h = model.input_quant(x.flatten(1))
        for layer in model.layers:
            z = layer.linear(h)
            layer.bn.running_mean.copy_(z.mean(0))
            layer.bn.running_var.copy_(
                z.var(0, unbiased=True) if len(z) > 1 else torch.ones_like(z[0])
            )
            pre = layer.bn(z)
            if layer.act.quantize:
                layer.act.calibrate(pre)
            h = layer.act(pre)
    finally:
        model.train(was)


@torch.no_grad()
def _set_input_std(model: LogicNet, x: torch.Tensor) -> None:
    """Record each linear layer's input standard deviation (the pruning importance weights)."""
    was = model.training
    model.eval()
    try:
        h = model.input_quant(x.flatten(1))
        for layer in model.layers:
            layer.linear.input_std.copy_(h.std(0) if len(h) > 1 else torch.ones_like(h[0]))
            h = layer(h)
    finally:
        model.train(was)


def prune_schedule(widths: list[int], fan_in: list[int], stages: int) -> list[list[int]]:
    """Fan-ins of each pruning stage: geometric from each layer's input count down to F."""
    out = []
    for s in range(1, stages + 1):
        t = (stages - s) / stages
        out.append(
            [max(f, min(n, round(f * (n / f) ** t))) for n, f in zip(widths, fan_in, strict=False)]
        )
    return out


def _prune(model: LogicNet, fan_in: list[int], x: torch.Tensor) -> None:
    _set_input_std(model, x)
    for lin, f in zip(model.linears(), fan_in, strict=True):
        lin.prune_to_fan_in(f)


def _sensitivity(model: LogicNet, dense: dict[str, Any], fan_in: list[int], x, y) -> list[float]:
    """Training-accuracy drop of the dense float model when only layer i is pruned to fan_in[i]
    (BatchNorm statistics re-estimated after pruning)."""
    model.load_state_dict(dense)
    model.set_quantized(False)
    base = accuracy(model, x, y)
    drops = []
    for i, f in enumerate(fan_in):
        model.load_state_dict(dense)
        _set_input_std(model, x)
        model.linears()[i].prune_to_fan_in(f)
        calibrate(model, x)
        drops.append(base - accuracy(model, x, y))
    model.load_state_dict(dense)
    return drops


def _fit_phase(
    model: LogicNet,
    dataset: Dataset,
    cfg: LogicNetConfig,
    epochs: int,
    label: str,
    progress: bool,
    seed_offset: int,
) -> tuple[bool, float]:
    """One `fit` run; returns (interrupted, seconds)."""
    if epochs <= 0:
        return False, 0.0
    result = fit(
        model,
        dataset,
        epochs=epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        optimizer="adamw",
        schedule="cosine",
        device="cpu",
        seed=cfg.seed + seed_offset,
        restore_best=False,
        progress=progress,
        label=label,
    )
    return result.interrupted, result.wall_time


def _flat_dataset(dataset: Dataset, cfg: LogicNetConfig) -> Dataset:
    x_train, y_train, x_test, y_test = _flat(dataset)
    if x_train.shape[1] != cfg.in_features:
        raise InputError(
            f"the data set {dataset.name!r} has {x_train.shape[1]} input features, the network "
            f"{cfg.in_features}"
        )
    classes = int(max(dataset.num_classes, int(y_train.max()) + 1))
    if classes > cfg.classes:
        raise InputError(f"the data set has {classes} classes, the network {cfg.classes} outputs")
    return Dataset(
        x_train.numpy(), y_train.numpy(), x_test.numpy(), y_test.numpy(), dataset.name, classes
    )


def train_logicnet(
    config: LogicNetConfig,
    dataset: Dataset,
    *,
    progress: bool = False,
    log: Log | None = None,
) -> TrainResult:
    """Train, export and measure a LogicNet (see the module docstring). Deterministic on the
    CPU given `config.seed`."""
    cfg = copy.deepcopy(config).validate()
    say = log or (lambda _msg: None)
    ds = _flat_dataset(dataset, cfg)
    x_train, y_train = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    x_test, y_test = torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)
    start = time.perf_counter()
    seed_everything(cfg.seed)
    model = LogicNet(cfg)
    if cfg.mask == "random":
        gen = torch.Generator().manual_seed(cfg.seed)
        for lin in model.linears():
            lin.set_random_mask(gen)
    seconds: dict[str, float] = {"float": 0.0, "qat": 0.0, "export": 0.0}

    # 1. float phase
    model.set_quantized(False)
    if cfg.mask == "learned":
        _set_input_std(model, x_train)
        for lin in model.linears():
            lin.penalty = cfg.fan_in_penalty
    interrupted, t = _fit_phase(model, ds, cfg, cfg.float_epochs, "float", progress, 0)
    seconds["float"] += t
    for lin in model.linears():
        lin.penalty = 0.0
    float_acc = accuracy(model, x_test, y_test)
    say(f"float phase: test accuracy {float_acc:.4f} ({t:.1f} s)")
    dense = copy.deepcopy(model.state_dict())

    fan_in = list(cfg.fan_in)
    relaxations: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    while True:
        # 2. prune, 3. quantization-aware training
        if cfg.mask == "learned":
            model.load_state_dict(dense)
            model.set_quantized(False)
            stages = prune_schedule(cfg.widths[:-1], fan_in, cfg.prune_stages)
            for s, stage in enumerate(stages):
                _prune(model, stage, x_train)
                if not interrupted and cfg.prune_epochs > 0:
                    label = f"prune {'-'.join(map(str, stage))}"
                    offset = 100 * (1 + len(rounds)) + s
                    stop, t = _fit_phase(model, ds, cfg, cfg.prune_epochs, label, progress, offset)
                    interrupted = interrupted or stop
                    seconds["prune"] = seconds.get("prune", 0.0) + t
        model.set_quantized(True)
        calibrate(model, x_train)
        if not interrupted:
            stop, t = _fit_phase(model, ds, cfg, cfg.epochs, "qat", progress, 1 + len(rounds))
            interrupted = interrupted or stop
            seconds["qat"] += t
        fq_acc = accuracy(model, x_test, y_test)
        # 4. export
        t0 = time.perf_counter()
        folded = fold_network(model, calibration=x_train)
        program = to_program(folded)
        preds = interpreter_predictions(program, ds.x_test)
        interp_acc = float((preds == ds.y_test).mean())
        torch_preds = first_argmax(model.output_codes(x_test)).numpy()
        seconds["export"] += time.perf_counter() - t0
        rounds.append(
            {
                "fan_in": list(fan_in),
                "fake_quant_accuracy": fq_acc,
                "interpreter_accuracy": interp_acc,
                "torch_interpreter_mismatches": int((preds != torch_preds).sum()),
            }
        )
        say(
            f"fan-in {fan_in}: fake-quant {fq_acc:.4f}, interpreter {interp_acc:.4f}, "
            f"exact export {folded.exact}"
        )
        target = cfg.accuracy_target
        if target is None or interp_acc >= target or interrupted:
            break
        if len(relaxations) >= cfg.max_relax_rounds:
            say(f"accuracy target {target:.4f} missed after {len(relaxations)} relaxations")
            break
        drops = _sensitivity(model, dense, fan_in, x_train, y_train)
        widths = cfg.widths
        eligible = [
            i
            for i in range(cfg.num_layers)
            if fan_in[i] + 1 <= widths[i]
            and cfg.input_code_bits(i) * (fan_in[i] + 1) <= cfg.max_table_bits
        ]
        if not eligible:
            say("no layer can take one more input within max_table_bits; stopping relaxation")
            break
        worst = max(eligible, key=lambda i: (drops[i], -i))
        fan_in[worst] += 1
        relaxations.append(
            {
                "round": len(relaxations) + 1,
                "layer": f"layers.{worst}",
                "fan_in": fan_in[worst],
                "pruning_drop_train": [round(d, 4) for d in drops],
                "interpreter_accuracy_before": interp_acc,
            }
        )
        say(f"relax layers.{worst} to fan-in {fan_in[worst]} (pruning drops {drops})")

    final = rounds[-1]
    cfg.fan_in = list(fan_in)
    model.config.fan_in = list(fan_in)
    folded.config = cfg.to_dict()
    report = {
        "config": config.to_dict(),
        "dataset": dataset.name,
        "train_examples": len(ds.x_train),
        "test_examples": len(ds.x_test),
        "float_accuracy": float_acc,
        "fake_quant_accuracy": final["fake_quant_accuracy"],
        "interpreter_accuracy": final["interpreter_accuracy"],
        "quantized_accuracy": final["interpreter_accuracy"],
        "torch_interpreter_mismatches": final["torch_interpreter_mismatches"],
        "accuracy_target": cfg.accuracy_target,
        "target_met": None
        if cfg.accuracy_target is None
        else final["interpreter_accuracy"] >= cfg.accuracy_target,
        "fan_in": list(fan_in),
        "table_bits": cfg.table_bits(),
        "relaxations": relaxations,
        "rounds": rounds,
        "epochs": {"float": cfg.float_epochs, "qat": cfg.epochs},
        "seconds": {k: round(v, 3) for k, v in seconds.items()}
        | {"total": round(time.perf_counter() - start, 3)},
        "interrupted": interrupted,
        "export": folded.summary(),
        "torch_version": torch.__version__,
    }
    return TrainResult(model, folded, program, report)
