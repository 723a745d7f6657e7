"""ONNX import cost: ircomp.frontends.onnx.load vs onnx.load + onnx.shape_inference alone.

    python benchmarks/onnx_import.py [--repeat 3] [--no-append]

Builds a DeiT-Small-sized ViT (patch 16, 224x224, dim 384, 12 blocks, 6 heads, MLP 1536;
about 22M parameters, random weights from a seeded torch.Generator), exports it with
torch.onnx.export (opset 17) into a temporary folder, then measures each way of loading it in
a fresh subprocess: wall time of the load, and the peak resident memory it adds (VmHWM of
/proc/self/status after the load minus the resident size just before it, the high-water mark
being reset there through /proc/self/clear_refs, so library imports are not counted).
`ru_maxrss` is not used: on Linux a child process inherits its parent's peak across fork and
exec, so it would report this script's own size (torch and the exported model).
Appends the figures, the command, the machine and the date to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

_MEASURE = r"""
import json, os, sys, time
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import onnx, onnx.shape_inference
if sys.argv[1] == "ircomp":
    from ircomp.frontends import onnx as frontend
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
try:  # reset the high-water mark to the current resident size
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
before = status("VmRSS")
start = time.perf_counter()
if sys.argv[1] == "ircomp":
    program = frontend.load(sys.argv[2])
    ops = sum(1 for _ in program.module.walk())
else:
    model = onnx.load(sys.argv[2])
    model = onnx.shape_inference.infer_shapes(model)
    ops = len(model.graph.node)
elapsed = time.perf_counter() - start
peak = status("VmHWM")
print(json.dumps({"seconds": elapsed, "peak_added": peak - before, "ops": ops}))
"""


def build_model(path: Path) -> tuple[int, int]:
    import torch

    class Block(torch.nn.Module):
        def __init__(self, dim: int, heads: int, hidden: int) -> None:
            super().__init__()
            self.norm1 = torch.nn.LayerNorm(dim)
            self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
            self.norm2 = torch.nn.LayerNorm(dim)
            self.fc1 = torch.nn.Linear(dim, hidden)
            self.fc2 = torch.nn.Linear(hidden, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.norm1(x)
            x = x + self.attn(h, h, h, need_weights=False)[0]
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x))))

    class ViT(torch.nn.Module):
        def __init__(self, dim: int = 384, depth: int = 12, heads: int = 6) -> None:
            super().__init__()
            self.patch = torch.nn.Conv2d(3, dim, 16, stride=16)
            self.cls = torch.nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = torch.nn.Parameter(torch.zeros(1, 197, dim))
            self.blocks = torch.nn.Sequential(*[Block(dim, heads, 4 * dim) for _ in range(depth)])
            self.norm = torch.nn.LayerNorm(dim)
            self.head = torch.nn.Linear(dim, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
            return self.head(self.norm(self.blocks(t))[:, 0])

    gen = torch.Generator().manual_seed(0)
    model = ViT().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    params = sum(p.numel() for p in model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(1, 3, 224, 224),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
        )
    return params, params * 4


def measure(kind: str, path: Path, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _MEASURE, kind, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {
        "seconds": best["seconds"],
        "peak_added": max(r["peak_added"] for r in runs),
        "ops": best["ops"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deit_small.onnx"
        params, weight_bytes = build_model(path)
        base = measure("onnx", path, args.repeat)
        ours = measure("ircomp", path, args.repeat)
        file_mb = path.stat().st_size / 2**20
    mib = 2**20
    ratio_t = ours["seconds"] / base["seconds"]
    ratio_m = ours["peak_added"] / weight_bytes
    lines = [
        f"\n## ONNX import: DeiT-Small-sized ViT ({datetime.date.today().isoformat()})\n",
        f"Command: `python benchmarks/onnx_import.py --repeat {args.repeat}` on "
        f"{platform.machine()} / {platform.python_implementation()} {platform.python_version()}"
        f" ({os.cpu_count()} CPUs). Model: {params / 1e6:.1f}M parameters, weights "
        f"{weight_bytes / mib:.1f} MiB, file {file_mb:.1f} MiB, opset 17 (torch.onnx.export).\n",
        "| load | time (best of runs) | peak memory added | graph |",
        "| --- | --- | --- | --- |",
        f"| onnx.load + onnx.shape_inference.infer_shapes | {base['seconds']:.2f} s | "
        f"{base['peak_added'] / mib:.0f} MiB | {base['ops']} nodes |",
        f"| ircomp.frontends.onnx.load (verified Program) | {ours['seconds']:.2f} s | "
        f"{ours['peak_added'] / mib:.0f} MiB | {ours['ops']} IR ops |",
        "",
        f"Time ratio {ratio_t:.2f}x (goal <= 3x); ircomp's peak memory added is "
        f"{ratio_m:.2f}x the weights' size (goal <= 2x).\n",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        with RESULTS.open("a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
