"""Regenerate the built-in example: a LeNet-5 style CNN with batchnorm, as an exporter writes it.

Random weights from a fixed seed (the logic-flow issue replaces this with a trained model). The
fully connected weights are stored transposed behind an `nn.transpose`, as ONNX exporters often
leave them, so the example pipeline has batchnorms to fold and constants to fold.

    python examples/lenet/make_example.py   # writes model.mlir, model.safetensors,
                                            # input.npy, expected.npy beside this file
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ircomp.dialects import nn
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import save_program

HERE = Path(__file__).parent
SEED = 5


def conv_bn_relu_pool(
    b: GraphBuilder, rng: np.random.Generator, x, name: str, cin: int, cout: int, pad: int
):
    w = b.weight(f"{name}.weight", rng.normal(0, (2 / (cin * 25)) ** 0.5, (cout, cin, 5, 5)))
    y = b.op(nn.Conv2dOp, [x, w], padding=[pad] * 4)
    stats = {
        "scale": rng.uniform(0.5, 1.5, cout),
        "bias": rng.normal(0, 0.1, cout),
        "mean": rng.normal(0, 0.1, cout),
        "var": rng.uniform(0.5, 2.0, cout),
    }
    params = [b.weight(f"{name}.bn.{k}", v) for k, v in stats.items()]
    y = b.op(nn.BatchNormOp, [y, *params])
    y = b.op(nn.ReluOp, [y])
    return b.op(nn.MaxPool2dOp, [y], kernel=[2, 2], strides=[2, 2])


def dense(b: GraphBuilder, rng: np.random.Generator, x, name: str, fin: int, fout: int):
    w_t = b.weight(f"{name}.weight_t", rng.normal(0, (2 / fin) ** 0.5, (fin, fout)))
    w = b.op(nn.TransposeOp, [w_t], perm=[1, 0])
    bias = b.weight(f"{name}.bias", rng.normal(0, 0.05, fout))
    return b.op(nn.LinearOp, [x, w, bias])


def build():
    rng = np.random.default_rng(SEED)
    b = GraphBuilder()
    x = b.input((4, 1, 28, 28))
    y = conv_bn_relu_pool(b, rng, x, "conv1", 1, 6, pad=2)
    y = conv_bn_relu_pool(b, rng, y, "conv2", 6, 16, pad=0)
    y = b.op(nn.FlattenOp, [y])
    y = b.op(nn.ReluOp, [dense(b, rng, y, "fc1", 400, 120)])
    y = b.op(nn.ReluOp, [dense(b, rng, y, "fc2", 120, 84)])
    y = b.op(nn.SoftmaxOp, [dense(b, rng, y, "fc3", 84, 10)])
    program = b.finish([y])
    inputs = rng.normal(0, 1, (4, 1, 28, 28)).astype(np.float32)
    return program, inputs


def main() -> None:
    program, inputs = build()
    save_program(program, HERE / "model.mlir")
    np.save(HERE / "input.npy", inputs)
    np.save(HERE / "expected.npy", run(program, [inputs])[0])


if __name__ == "__main__":
    main()
