"""An `onnx.backend` Backend running models through ircomp: import + golden interpreter."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper
from onnx.backend.base import Backend, BackendRep

from ircomp.frontends import onnx as onnx_frontend
from ircomp.interpreter import Interpreter


def _constant_input_names(model: onnx.ModelProto) -> set[str]:
    """Graph inputs that ircomp needs at import time (shapes, axes, indices, q-params)."""
    names = set()
    for node in model.graph.node:
        for i in onnx_frontend.CONSTANT_INPUTS.get(node.op_type, ()):
            if i < len(node.input) and node.input[i]:
                names.add(node.input[i])
    return names


class IrcompRep(BackendRep):
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        inits = {i.name for i in model.graph.initializer}
        self.inputs = [i.name for i in model.graph.input if i.name not in inits]
        self.baked = _constant_input_names(model)
        self.in_dtypes = {
            i.name: helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
            for i in model.graph.input
            if i.type.HasField("tensor_type")
        }
        self.out_dtypes = [
            helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)
            for o in model.graph.output
        ]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            values = dict(inputs)
        else:
            values = dict(zip(self.inputs, inputs, strict=False))
        for k, v in values.items():
            if isinstance(v, onnx.TensorProto):
                v = values[k] = onnx.numpy_helper.to_array(v)
            v = np.asarray(v)
            if v.dtype == object and k in self.in_dtypes:  # e.g. floats given as strings
                values[k] = v.astype(np.float32).astype(self.in_dtypes[k])
        constants = {k: np.asarray(v) for k, v in values.items() if k in self.baked}
        shapes = {k: np.asarray(v).shape for k, v in values.items() if k not in self.baked}
        program = onnx_frontend.load(self.model, input_shapes=shapes, constants=constants)
        args = []
        for k in self.inputs:
            if k in self.baked:
                continue
            a = np.asarray(values[k])
            if a.dtype.name in ("int4", "uint4", "int2", "uint2"):
                a = a.astype(np.int8 if a.dtype.name.startswith("int") else np.uint8)
            elif a.dtype.name == "bfloat16":
                a = a.astype(np.float32)
            args.append(a)
        outs = Interpreter(program)(args)
        return tuple(
            np.asarray(o).astype(dt) if o.dtype != dt else o
            for o, dt in zip(outs, self.out_dtypes, strict=True)
        )


class IrcompBackend(Backend):
    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return True

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> IrcompRep:
        super().prepare(model, device, **kwargs)
        return IrcompRep(model)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"
