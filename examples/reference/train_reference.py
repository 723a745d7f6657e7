#!/usr/bin/env python3
"""Train ircomp's reference models and write ``<name>.safetensors`` + ``<name>.json`` each.

    python examples/reference/train_reference.py --device cuda --out examples/reference
    python examples/reference/train_reference.py --models mlp-digits --epochs-scale 0.01

Weights are stored as float32, or float16 when the float32 file would exceed 4 MB (the json
and the safetensors metadata say which). The json holds the architecture configuration (what
`ircomp.train.zoo.load_reference` builds), the data set, seed, recipe, per-epoch history, the
test accuracy of the stored weights (top-1/top-5), wall time, device and torch version.
Ctrl-C stops the model in training, saves its best state so far and skips the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ircomp.errors import InputError
from ircomp.train.data import Dataset, get_dataset, load_fashion_mnist
from ircomp.train.fit import evaluate, fit, resolve_device, seed_everything
from ircomp.train.zoo import (
    REFERENCES,
    load_reference,
    model_config,
    model_from_config,
    parameter_count,
    recipe_dict,
    state_nbytes,
)

FLOAT16_ABOVE_BYTES = 4 * 1024 * 1024
HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--models",
        default=",".join(REFERENCES),
        help=f"comma-separated subset of: {','.join(REFERENCES)} (default: all)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (default)")
    p.add_argument(
        "--epochs-scale",
        type=float,
        default=1.0,
        help="multiply every model's default epochs (fractions of an epoch allowed), "
        "e.g. 0.01 for a smoke test",
    )
    p.add_argument("--out", type=Path, default=HERE, help=f"output folder (default {HERE})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", type=Path, default=None, help="Fashion-MNIST IDX folder")
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use only the first N train and N test examples (smoke tests)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def save_weights(model: torch.nn.Module, path: Path, meta: dict[str, str]) -> str:
    """Write the state dict; floating tensors as float32, or float16 above the size limit."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    dtype = torch.float32 if state_nbytes_f32(state) <= FLOAT16_ABOVE_BYTES else torch.float16
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(path), metadata={**meta, "dtype": str(dtype).removeprefix("torch.")})
    path.chmod(0o644)
    return str(dtype).removeprefix("torch.")


def state_nbytes_f32(state: dict[str, torch.Tensor]) -> int:
    return state_nbytes({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


def train_one(
    name: str, dataset: Dataset, args: argparse.Namespace, dev: torch.device
) -> tuple[torch.nn.Module, dict[str, Any]]:
    ref = REFERENCES[name]
    recipe = ref.recipe
    assert recipe is not None
    epochs = recipe.epochs * args.epochs_scale
    seed_everything(args.seed)
    config = model_config(name, dataset)
    model = model_from_config(config)
    t0 = time.perf_counter()
    result = fit(
        model,
        dataset,
        epochs=epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        optimizer=recipe.optimizer,
        schedule=recipe.schedule,
        warmup_epochs=recipe.warmup_epochs * args.epochs_scale,
        label_smoothing=recipe.label_smoothing,
        augment=recipe.augment,
        device=dev,
        early_stop_patience=recipe.early_stop_patience,
        seed=args.seed,
        progress=not args.no_progress,
        label=name,
    )
    train_time = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    dtype = save_weights(model, args.out / f"{name}.safetensors", {"name": name})
    record: dict[str, Any] = {
        "name": name,
        "architecture": config,
        "dataset": dataset.name,
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "train_examples": len(dataset.x_train),
        "test_examples": len(dataset.x_test),
        "seed": args.seed,
        "limit": args.limit,
        "epochs": epochs,
        "epochs_run": len(result.history),
        "steps": result.steps,
        "best_epoch": result.best_epoch + 1,
        "interrupted": result.interrupted,
        "stopped_early": result.stopped_early,
        "recipe": recipe_dict(recipe),
        "parameters": parameter_count(model),
        "weights_file": f"{name}.safetensors",
        "weights_dtype": dtype,
        "device": describe_device(dev),
        "torch_version": torch.__version__,
        "wall_time_s": round(train_time, 2),
        "history": result.history,
    }
    # The figure reported is the accuracy of the weights as stored (float16 rounding included).
    meta_path = args.out / f"{name}.json"
    meta_path.write_text(json.dumps(record, indent=2) + "\n")
    stored = load_reference(name, args.out, device=str(dev))
    acc = evaluate(stored, dataset.x_test, dataset.y_test, device=dev, topk=(1, 5))
    record["test_accuracy"] = {"top1": acc[1], "top5": acc[5]}
    record = {**{k: v for k, v in record.items() if k != "history"}, "history": result.history}
    meta_path.write_text(json.dumps(record, indent=2) + "\n")
    return model.eval(), record


def limit(d: Dataset, n: int) -> Dataset:
    return dataclasses.replace(
        d, x_train=d.x_train[:n], y_train=d.y_train[:n], x_test=d.x_test[:n], y_test=d.y_test[:n]
    )


def run(args: argparse.Namespace) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in REFERENCES]
    if unknown or not names:
        raise InputError(f"unknown model(s) {unknown}: choose from {','.join(REFERENCES)}")
    if args.epochs_scale <= 0:
        raise InputError(f"--epochs-scale must be positive, got {args.epochs_scale}")
    dev = resolve_device(args.device)
    if dev.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: deterministic, much faster
    datasets: dict[str, Dataset] = {}
    for n in names:  # load (and fail on a missing data set) before training anything
        key = REFERENCES[n].dataset
        if key not in datasets:
            datasets[key] = (
                load_fashion_mnist(args.data_root)
                if key == "fashion-mnist" and args.data_root is not None
                else get_dataset(key)
            )
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit must be positive, got {args.limit}")
        datasets = {k: limit(d, args.limit) for k, d in datasets.items()}
    results = {}
    for n in names:
        model, record = train_one(n, datasets[REFERENCES[n].dataset], args, dev)
        results[n] = (model, record)
        acc = record["test_accuracy"]
        print(
            f"{n}: top-1 {acc['top1']:.4f} top-5 {acc['top5']:.4f}, "
            f"{record['epochs_run']} epochs in {record['wall_time_s']:.1f} s on "
            f"{record['device']}, {record['parameters']} parameters ({record['weights_dtype']})"
            + (" [interrupted]" if record["interrupted"] else ""),
            flush=True,
        )
        if record["interrupted"]:
            print("interrupted: the remaining models were not trained", file=sys.stderr)
            break
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
