"""PyTorch backend: training-step throughput of the emitted module vs the same model in torch.

    python benchmarks/pytorch_backend.py            # appends a section to benchmarks/RESULTS.md
    python benchmarks/pytorch_backend.py --quick    # fewer steps, no RESULTS.md

Each reference architecture of `ircomp.train.zoo` (Fashion-MNIST shapes: 1x28x28, 10 classes)
is imported through `ircomp.frontends.torch.load`, turned back into a torch module with
`ircomp.backends.pytorch.to_torch` (mode "train"), and both it and the original module run the
same training step: forward, cross-entropy, backward, AdamW step. The original runs in eval
mode (batchnorm with running statistics, as the IR holds it), so both compute the same
function. Steps alternate between the two modules; the figure is the median step time after
warm-up, and the ratio is emitted / direct (goal: <= 1.2x). Runs on CPU, and on CUDA when
available.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from ircomp.backends.pytorch import to_torch
from ircomp.frontends.torch import load
from ircomp.train import zoo

RESULTS = Path(__file__).with_name("RESULTS.md")
DATA = {"in_channels": 1, "image_size": 28, "classes": 10}
MODELS = ("mlp", "cnn", "resnet8", "vit")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _step(module: torch.nn.Module, opt: torch.optim.Optimizer, x, y) -> None:  # type: ignore[no-untyped-def]
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(module(x), y)
    loss.backward()
    opt.step()


def measure(name: str, device: str, batch: int, steps: int, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    direct = zoo.build_model(name, DATA).eval()
    x = torch.randn(batch, 1, 28, 28)
    program = load(direct, (x,))
    emitted = to_torch(program, mode="train").to(device)
    direct = direct.to(device)
    x, y = x.to(device), torch.randint(0, 10, (batch,), device=device)
    opts = {
        "direct": torch.optim.AdamW(direct.parameters(), lr=1e-4),
        "emitted": torch.optim.AdamW(emitted.parameters(), lr=1e-4),
    }
    modules = {"direct": direct, "emitted": emitted}
    times: dict[str, list[float]] = {"direct": [], "emitted": []}
    for i in range(warmup + steps):
        for key in ("direct", "emitted") if i % 2 else ("emitted", "direct"):
            _sync(device)
            start = time.perf_counter()
            _step(modules[key], opts[key], x, y)
            _sync(device)
            if i >= warmup:
                times[key].append(time.perf_counter() - start)
    d, e = statistics.median(times["direct"]), statistics.median(times["emitted"])
    return {
        "params": sum(p.numel() for p in direct.parameters()),
        "ops": len(list(program.module.walk())),
        "direct_ms": d * 1e3,
        "emitted_ms": e * 1e3,
        "ratio": e / d,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, do not write RESULTS.md")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    steps, warmup = (6, 2) if args.quick else (20, 4)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for name in args.models.split(","):
            r = measure(name, device, args.batch, steps, warmup)
            rows.append((device, name, r))
            print(
                f"{device:5} {name:8} direct {r['direct_ms']:8.2f} ms  emitted "
                f"{r['emitted_ms']:8.2f} ms  ratio {r['ratio']:.2f}x",
                flush=True,
            )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), GPU: {gpu}"
    )
    lines = [
        f"## PyTorch backend: training-step throughput ({datetime.date.today().isoformat()})",
        "",
        f"Command: `python {' '.join(['benchmarks/pytorch_backend.py', *sys.argv[1:]])}`  ",
        f"Machine: {machine}  ",
        f"Batch {args.batch}, 1x28x28 inputs, AdamW; median of {steps} steps after {warmup} "
        "warm-up steps, alternating modules. Goal: emitted / direct <= 1.2x.",
        "",
        "| device | model | params | IR ops | direct (ms/step) | emitted (ms/step) | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for device, name, r in rows:
        lines.append(
            f"| {device} | {name} | {r['params']:,} | {r['ops']} | {r['direct_ms']:.2f} | "
            f"{r['emitted_ms']:.2f} | {r['ratio']:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if not args.quick:
        with open(RESULTS, "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
