"""Small ONNX models for the frontend tests, built in-process (no downloads)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch


def export(module: torch.nn.Module, example: torch.Tensor, **kwargs) -> onnx.ModelProto:
    """torch.onnx.export (TorchScript exporter, opset 17) to an in-memory ModelProto."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
            **kwargs,
        )
    return onnx.load_from_string(buffer.getvalue())


class SmallCNN(torch.nn.Module):
    """Conv-ReLU-MaxPool, depthwise and strided Conv-ReLU, Flatten, Linear: QDQ-friendly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.conv3 = torch.nn.Conv2d(8, 16, 3, stride=2)
        self.fc = torch.nn.Linear(16 * 3 * 3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        y = torch.relu(self.conv2(y))
        y = torch.relu(self.conv3(y))
        return self.fc(y.flatten(1))


def calibration_batches(seed: int, count: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
