"""ONNX export of a folded LogicNet (`ircomp.train.logicnet_export.FoldedNetwork`).

**QONNX** (`to_qonnx`): ``Quant`` on the input, on each weight (per-output-channel scale) and on
each activation (``Relu`` before an unsigned multi-bit ``Quant``), ``MatMul`` + ``Add`` as
brevitas exports a ``QuantLinear``; BatchNorm is already folded. Activation scales are the
trained ones, so the graph computes real values; binary and bipolar layers are 1-bit unsigned
``Quant`` (bits b; a bipolar layer's ``2b - 1`` lives in the next layer's weights, as in the IR).

**QDQ** (`to_qdq`): ``Clip -> QuantizeLinear -> DequantizeLinear`` with uint8/int8 containers
clipped to the β-bit code range, integer weights (int8, or int16 with opset 21) and int32 bias
behind ``DequantizeLinear`` (per output channel), ``Gemm``.

Weight scales are chosen so that every layer computes ``s_out * (W·x + B) / K`` before its
activation quantizer; K is odd, so no code is a rounding tie and float32 evaluations of these
graphs (the frontend's float path, onnxruntime) give exactly the IR's codes. Both re-import
through `ircomp.frontends.onnx.load` to the same outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ircomp.errors import InputError
from ircomp.train.logicnet_export import FoldedLayer, FoldedNetwork

__all__ = ["QONNX_DOMAIN", "to_qdq", "to_qonnx"]

QONNX_DOMAIN = "qonnx.custom_op.general"


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as err:  # pragma: no cover - onnx is a test dependency
        raise InputError(f"ONNX export needs the 'onnx' package ({err})") from None
    return onnx


def _layer_real_params(layer: FoldedLayer) -> tuple[np.ndarray, np.ndarray]:
    """(weight scales [out], real bias [out]) with (x*s_in) @ (W*sw) + bias = s_out*(acc/K)."""
    k = layer.divisor.astype(np.float64)
    sw = (layer.out_code_scale / (layer.in_code_scale * k)).astype(np.float32)
    bias = (layer.bias * layer.out_code_scale / k).astype(np.float32)
    return sw, bias


def to_qonnx(folded: FoldedNetwork, *, graph_name: str = "logicnet") -> Any:
    """A QONNX `onnx.ModelProto`: Quant nodes on the input, weights and activations."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def quant(src: str, dst: str, name: str, scale: str, bits: int, signed: bool) -> None:
        nodes.append(
            helper.make_node(
                "Quant",
                [src, scale, "zero", const(f"{name}.bits", float(bits))],
                [dst],
                name=name,
                domain=QONNX_DOMAIN,
                signed=int(signed),
                narrow=0,
                rounding_mode="ROUND",
            )
        )

    const("zero", 0.0)
    quant(
        "x",
        "input_quant.out",
        "input_quant",
        const("input_quant.scale", folded.input_scale),
        folded.input_bits,
        False,
    )
    h = "input_quant.out"
    for layer in folded.layers:
        p = layer.name
        sw, bias = _layer_real_params(layer)
        w_real = (layer.weight.T.astype(np.float64) * sw[None, :].astype(np.float64)).astype(
            np.float32
        )
        const(f"{p}.linear.weight", w_real)
        quant(
            f"{p}.linear.weight",
            f"{p}.linear.weight_q",
            f"{p}.linear.weight_quant",
            const(f"{p}.linear.weight_scale", sw.reshape(1, -1)),
            layer.weight_bits,
            True,
        )
        nodes.append(
            helper.make_node(
                "MatMul", [h, f"{p}.linear.weight_q"], [f"{p}.linear.mm"], name=f"{p}.linear"
            )
        )
        nodes.append(
            helper.make_node(
                "Add",
                [f"{p}.linear.mm", const(f"{p}.linear.bias", bias)],
                [f"{p}.linear.out"],
                name=f"{p}.linear.bias_add",
            )
        )
        pre = f"{p}.linear.out"
        if layer.activation == "relu":
            nodes.append(helper.make_node("Relu", [pre], [f"{p}.act.relu"], name=f"{p}.act.relu"))
            pre = f"{p}.act.relu"
        quant(
            pre,
            f"{p}.act.out",
            f"{p}.act",
            const(f"{p}.act.scale", layer.out_code_scale),
            layer.bits,
            layer.signed,
        )
        h = f"{p}.act.out"
    classes = int(folded.layers[-1].weight.shape[0])
    nodes.append(helper.make_node("Identity", [h], ["y"], name="output"))
    graph = helper.make_graph(
        nodes,
        graph_name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", folded.in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", classes])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)],
        producer_name="ircomp.train.logicnet",
    )
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model


def to_qdq(folded: FoldedNetwork, *, graph_name: str = "logicnet") -> Any:
    """A QDQ `onnx.ModelProto` (uint8/int8 activation containers clipped to β bits)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def clip_q_dq(src: str, p: str, scale: float, lo: int, hi: int, signed: bool) -> str:
        s = np.float32(scale)
        zp_type = np.int8 if signed else np.uint8
        const(f"{p}.scale", s)
        const(f"{p}.zero_point", 0, zp_type)
        const(f"{p}.clip_min", np.float32(lo) * s)
        const(f"{p}.clip_max", np.float32(hi) * s)
        nodes.append(
            helper.make_node(
                "Clip", [src, f"{p}.clip_min", f"{p}.clip_max"], [f"{p}.clip"], name=f"{p}.clip"
            )
        )
        nodes.append(
            helper.make_node(
                "QuantizeLinear",
                [f"{p}.clip", f"{p}.scale", f"{p}.zero_point"],
                [f"{p}.q"],
                name=p,
            )
        )
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{p}.q", f"{p}.scale", f"{p}.zero_point"],
                [f"{p}.dq"],
                name=f"{p}.dq",
            )
        )
        return f"{p}.dq"

    h = clip_q_dq("x", "input_quant", folded.input_scale, 0, 2**folded.input_bits - 1, False)
    opset = 13
    for layer in folded.layers:
        p = layer.name
        sw, _ = _layer_real_params(layer)
        w_type = np.int8 if layer.weight_width == 8 else np.int16
        if w_type is np.int16:
            opset = 21
        n_out = layer.weight.shape[0]
        const(f"{p}.linear.weight", layer.weight, w_type)
        const(f"{p}.linear.weight_scale", sw)
        const(f"{p}.linear.weight_zero_point", np.zeros(n_out), w_type)
        const(f"{p}.linear.bias", layer.bias, np.int32)
        bias_scale = (np.float32(layer.in_code_scale) * sw).astype(np.float32)
        const(f"{p}.linear.bias_scale", bias_scale)
        const(f"{p}.linear.bias_zero_point", np.zeros(n_out), np.int32)
        for part in ("weight", "bias"):
            nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    [
                        f"{p}.linear.{part}",
                        f"{p}.linear.{part}_scale",
                        f"{p}.linear.{part}_zero_point",
                    ],
                    [f"{p}.linear.{part}_dq"],
                    name=f"{p}.linear.{part}_dq",
                    axis=0,
                )
            )
        nodes.append(
            helper.make_node(
                "Gemm",
                [h, f"{p}.linear.weight_dq", f"{p}.linear.bias_dq"],
                [f"{p}.linear.out"],
                name=f"{p}.linear",
                transB=1,
            )
        )
        h = clip_q_dq(
            f"{p}.linear.out", f"{p}.act", layer.out_code_scale, layer.lo, layer.hi, layer.signed
        )
    classes = int(folded.layers[-1].weight.shape[0])
    nodes.append(helper.make_node("Identity", [h], ["y"], name="output"))
    graph = helper.make_graph(
        nodes,
        graph_name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", folded.in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", classes])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="ircomp.train.logicnet",
    )
    model.ir_version = min(model.ir_version, 10 if opset >= 21 else 8)
    onnx.checker.check_model(model)
    return model
