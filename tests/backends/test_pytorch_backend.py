"""The PyTorch backend agrees with the golden interpreter on every nn op and on random graphs:
floats to float tolerance, codes bit for bit."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from op_helpers import In, W, one_op
from pytorch_helpers import check_against_interpreter, torch_outputs
from strategies import build_program, graph_specs
from xdsl.dialects.builtin import BFloat16Type, Float16Type, Float32Type, IntegerType, Signedness

from ircomp.backends.pytorch import LOWERINGS, to_torch
from ircomp.backends.pytorch.lower import Lowering, lower
from ircomp.dialects import nn
from ircomp.dialects.num import FixPType, PositType
from ircomp.errors import InputError
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder

RNG = np.random.default_rng(0)
I8, UI8, I32 = IntegerType(8), IntegerType(8, Signedness.UNSIGNED), IntegerType(32)
I1 = IntegerType(1)


def f(*shape: int, positive: bool = False) -> np.ndarray:
    x = RNG.normal(size=shape).astype(np.float32)
    return np.abs(x) + np.float32(0.1) if positive else x


def codes(*shape: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    return RNG.integers(lo, hi + 1, size=shape)


FLOAT_UNARY = [
    nn.ReluOp,
    nn.SigmoidOp,
    nn.TanhOp,
    nn.NegOp,
    nn.AbsOp,
    nn.ExpOp,
    nn.ErfOp,
    nn.HardSwishOp,
]

Case = Callable[[], tuple]
CASES: dict[str, Case] = {
    # multiply-accumulate
    "linear": lambda: one_op(nn.LinearOp, [In(f(2, 3, 5)), W(f(4, 5)), W(f(4))]),
    "linear-i8-zp": lambda: one_op(
        nn.LinearOp,
        [In(codes(3, 6), I8), W(codes(4, 6), I8), W(codes(4, lo=-900, hi=900), I32)],
        input_zero_point=3,
        weight_zero_point=-2,
    ),
    "linear-i8-wrap": lambda: one_op(
        nn.LinearOp, [In(codes(2, 6), I8), W(codes(4, 6), I8)], IntegerType(10)
    ),
    "linear-fixp": lambda: one_op(
        nn.LinearOp, [In(codes(2, 5), FixPType(8, 3)), W(codes(3, 5), FixPType(8, 2))]
    ),
    "linear-fixp-posit": lambda: one_op(
        nn.LinearOp,
        [
            In(codes(2, 5), FixPType(8, 3)),
            W(RNG.choice([0, 1, 5, 60, 127, 129, 200], (3, 5)), PositType(8, 0)),
        ],
    ),
    "matmul": lambda: one_op(nn.MatMulOp, [In(f(2, 3, 4)), In(f(4, 5))]),
    "matmul-i8": lambda: one_op(
        nn.MatMulOp, [In(codes(2, 3, 4), I8), In(codes(4, 5), I8)], input_zero_point=1
    ),
    "conv2d": lambda: one_op(
        nn.Conv2dOp,
        [In(f(2, 4, 6, 7)), W(f(6, 2, 3, 2)), W(f(6))],
        strides=[2, 1],
        padding=[1, 0, 2, 1],
        dilations=[1, 2],
        groups=2,
    ),
    "conv2d-f16": lambda: one_op(
        nn.Conv2dOp,
        [In(f(1, 2, 5, 5), Float16Type()), W(f(3, 2, 3, 3), Float16Type())],
        padding=[1, 1, 1, 1],
    ),
    "conv2d-i8": lambda: one_op(
        nn.Conv2dOp,
        [In(codes(1, 3, 5, 5), I8), W(codes(2, 3, 3, 3), I8), W(codes(2), I32)],
        padding=[1, 0, 0, 1],
        input_zero_point=-4,
        weight_zero_point=2,
    ),
    # normalization
    "batchnorm": lambda: one_op(
        nn.BatchNormOp, [In(f(2, 3, 4)), W(f(3)), W(f(3)), W(f(3)), W(f(3, positive=True))]
    ),
    "layernorm": lambda: one_op(
        nn.LayerNormOp, [In(f(2, 3, 4)), W(f(3, 4)), W(f(3, 4))], axis=1, epsilon=1e-3
    ),
    "layernorm-bf16": lambda: one_op(
        nn.LayerNormOp, [In(f(2, 8), BFloat16Type()), W(f(8), BFloat16Type())]
    ),
    # elementwise
    "add": lambda: one_op(nn.AddOp, [In(f(2, 3)), In(f(3))]),
    "sub": lambda: one_op(nn.SubOp, [In(f(2, 3)), In(f(2, 3))]),
    "mul": lambda: one_op(nn.MulOp, [In(f(2, 3)), In(f(1, 3))]),
    "div": lambda: one_op(nn.DivOp, [In(f(2, 3)), In(f(2, 3, positive=True))]),
    "add-fixp": lambda: one_op(
        nn.AddOp, [In(codes(2, 3), FixPType(8, 2)), In(codes(2, 3), FixPType(8, 5))]
    ),
    "sub-fixp-wrap": lambda: one_op(
        nn.SubOp,
        [In(codes(2, 3), FixPType(8, 2)), In(codes(2, 3), FixPType(8, 5))],
        FixPType(6, 5),
    ),
    "mul-fixp": lambda: one_op(
        nn.MulOp, [In(codes(2, 3), FixPType(8, 2)), In(codes(3), FixPType(8, 1))]
    ),
    "add-i8": lambda: one_op(nn.AddOp, [In(codes(4), I8), In(codes(4), I8)]),
    "relu-i8": lambda: one_op(nn.ReluOp, [In(codes(3, 4), I8)]),
    "clip": lambda: one_op(nn.ClipOp, [In(f(3, 4))], min=-0.3, max=0.7),
    "clip-ui8": lambda: one_op(
        nn.ClipOp, [In(codes(3, 4, lo=0, hi=255), UI8)], min=10.5, max=300.0
    ),
    "hardtanh": lambda: one_op(nn.HardTanhOp, [In(f(3, 4))], min=-0.5, max=0.25),
    "gelu": lambda: one_op(nn.GeluOp, [In(f(3, 4))]),
    "gelu-tanh": lambda: one_op(nn.GeluOp, [In(f(3, 4))], approximate="tanh"),
    "softmax": lambda: one_op(nn.SoftmaxOp, [In(f(2, 3, 4))], axis=1),
    "log_softmax": lambda: one_op(nn.LogSoftmaxOp, [In(f(2, 5))]),
    "pow": lambda: one_op(nn.PowOp, [In(f(2, 3, positive=True)), In(f(3))]),
    "sqrt": lambda: one_op(nn.SqrtOp, [In(f(5, positive=True))]),
    "reciprocal": lambda: one_op(nn.ReciprocalOp, [In(f(5, positive=True))]),
    "log": lambda: one_op(nn.LogOp, [In(f(5, positive=True))]),
    "leaky_relu": lambda: one_op(nn.LeakyReluOp, [In(f(2, 5))], alpha=0.1),
    "hardsigmoid": lambda: one_op(nn.HardSigmoidOp, [In(f(2, 5) * 4)], alpha=0.3, beta=0.4),
    "max": lambda: one_op(nn.MaxOp, [In(f(2, 3)), In(f(3))]),
    "min-i8": lambda: one_op(nn.MinOp, [In(codes(2, 3), I8), In(codes(3), I8)]),
    "where": lambda: one_op(nn.WhereOp, [In(codes(2, 3, lo=0, hi=1), I1), In(f(2, 3)), In(f(3))]),
    "cast-f16": lambda: one_op(nn.CastOp, [In(f(4) * 1000)], Float16Type()),
    "cast-bf16": lambda: one_op(nn.CastOp, [In(f(4))], BFloat16Type()),
    "cast-f32": lambda: one_op(nn.CastOp, [In(f(4), BFloat16Type())], Float32Type()),
    # reductions
    "reduce_mean": lambda: one_op(nn.ReduceMeanOp, [In(f(2, 3, 4))], axes=[0, 2]),
    "reduce_sum": lambda: one_op(nn.ReduceSumOp, [In(f(2, 3, 4))], keepdims=False),
    "reduce_max-i8": lambda: one_op(nn.ReduceMaxOp, [In(codes(2, 3, 4), I8)], axes=[-1]),
    # pooling
    "maxpool2d": lambda: one_op(
        nn.MaxPool2dOp,
        [In(f(1, 2, 7, 6))],
        kernel=[3, 2],
        strides=[2, 2],
        padding=[1, 0, 1, 1],
        ceil_mode=True,
    ),
    "maxpool2d-i8-dilated": lambda: one_op(
        nn.MaxPool2dOp,
        [In(codes(1, 2, 6, 6), I8)],
        kernel=[2, 2],
        dilations=[2, 1],
        padding=[1, 1, 0, 0],
    ),
    "avgpool2d": lambda: one_op(
        nn.AvgPool2dOp,
        [In(f(1, 2, 7, 6))],
        kernel=[3, 3],
        strides=[2, 2],
        padding=[1, 1, 1, 1],
        ceil_mode=True,
    ),
    "avgpool2d-pad": lambda: one_op(
        nn.AvgPool2dOp,
        [In(f(1, 2, 5, 5))],
        kernel=[2, 3],
        strides=[2, 2],
        padding=[1, 1, 0, 1],
        count_include_pad=True,
    ),
    "avgpool2d-i8": lambda: one_op(
        nn.AvgPool2dOp,
        [In(codes(1, 2, 5, 5), I8)],
        kernel=[2, 2],
        strides=[1, 2],
        padding=[0, 1, 1, 0],
    ),
    "global_avgpool2d": lambda: one_op(nn.GlobalAvgPool2dOp, [In(f(2, 3, 4, 5))]),
    "global_avgpool2d-fixp": lambda: one_op(
        nn.GlobalAvgPool2dOp, [In(codes(2, 3, 3, 3), FixPType(8, 4))]
    ),
    # shape ops
    "reshape": lambda: one_op(nn.ReshapeOp, [In(f(2, 3, 4))], shape=[3, -1]),
    "flatten": lambda: one_op(nn.FlattenOp, [In(codes(2, 3, 4), I8)], axis=2),
    "transpose": lambda: one_op(nn.TransposeOp, [In(f(2, 3, 4))], perm=[2, 0, 1]),
    "concat": lambda: one_op(nn.ConcatOp, [In(f(2, 3)), In(f(2, 2)), In(f(2, 1))], axis=-1),
    "slice": lambda: one_op(
        nn.SliceOp, [In(f(4, 6, 5))], starts=[-1, 1], ends=[-100, 6], axes=[1, 2], steps=[-2, 2]
    ),
    "split": lambda: one_op(nn.SplitOp, [In(f(2, 7))], axis=1, sizes=[2, 4, 1]),
    "expand": lambda: one_op(nn.ExpandOp, [In(f(3, 1))], shape=[2, 3, 4]),
    "gather": lambda: one_op(
        nn.GatherOp, [In(f(5, 3)), W(np.array([[0, -1], [4, 2]]), I32)], axis=0
    ),
    # format casts
    "quantize-i8": lambda: one_op(
        nn.QuantizeOp, [In(f(2, 6) * 3)], I8, scale=[0.05], zero_point=[3]
    ),
    "quantize-ui8-per-channel": lambda: one_op(
        nn.QuantizeOp,
        [In(f(2, 3, 4))],
        UI8,
        scale=[0.01, 0.02, 0.05],
        zero_point=[0, 128, 5],
        axis=1,
    ),
    "quantize-fixp": lambda: one_op(nn.QuantizeOp, [In(f(2, 6) * 8)], FixPType(6, 3), scale=[0.5]),
    "quantize-posit": lambda: one_op(
        nn.QuantizeOp, [In(f(2, 6) * 10)], PositType(8, 1), scale=[1.0]
    ),
    "dequantize-i8": lambda: one_op(
        nn.DequantizeOp,
        [In(codes(2, 3), I8)],
        Float32Type(),
        scale=[0.1, 0.2, 0.3],
        zero_point=[1, 2, 3],
        axis=-1,
    ),
    "dequantize-fixp-f16": lambda: one_op(
        nn.DequantizeOp, [In(codes(2, 3), FixPType(8, 2))], Float16Type(), scale=[0.3]
    ),
    "dequantize-posit": lambda: one_op(
        nn.DequantizeOp,
        [In(codes(2, 3, lo=0, hi=127), PositType(8, 0))],
        Float32Type(),
        scale=[2.0],
    ),
    "requantize-onnx": lambda: one_op(
        nn.RequantizeOp,
        [In(codes(3, 4, lo=-60000, hi=60000), I32)],
        I8,
        scale=[0.00123],
        zero_point=[-3],
        mode="onnx",
        input_zero_point=7,
    ),
    "requantize-integer-per-channel": lambda: one_op(
        nn.RequantizeOp,
        [In(codes(3, 4, lo=-60000, hi=60000), I32)],
        UI8,
        scale=[0.00123, 0.5, 0.0007, 3.0],
        zero_point=[3, 0, 9, 100],
        axis=1,
        mode="integer",
        clamp=[5, 200],
    ),
    # TFLite integer kernels (requantization mode "integer")
    "qadd": lambda: one_op(
        nn.QAddOp,
        [In(codes(2, 3, 4), I8), In(codes(2, 3, 4), I8)],
        I8,
        lhs_scale=0.0713,
        lhs_zero_point=-4,
        rhs_scale=0.1502,
        rhs_zero_point=9,
        scale=0.117,
        zero_point=-11,
        clamp=[-11, 100],
    ),
    "qadd-broadcast-ui8": lambda: one_op(
        nn.QAddOp,
        [In(codes(3, 1, lo=0, hi=255), UI8), In(codes(1, 5, lo=0, hi=255), UI8)],
        UI8,
        lhs_scale=0.02,
        lhs_zero_point=128,
        rhs_scale=0.5,
        rhs_zero_point=3,
        scale=0.3,
        zero_point=7,
    ),
    "qsoftmax": lambda: one_op(nn.QSoftmaxOp, [In(codes(3, 10), I8)], I8, input_scale=0.1719),
    "qsoftmax-axis1-ties": lambda: one_op(
        nn.QSoftmaxOp,
        [In(np.tile([127, 127, -128, 5], (2, 3, 1)).transpose(0, 2, 1), I8)],
        I8,
        input_scale=2.5,
        axis=1,
    ),
    "qsoftmax-long-ui8": lambda: one_op(
        nn.QSoftmaxOp, [In(codes(1, 511, lo=0, hi=255), UI8)], UI8, input_scale=0.0146
    ),
    "requantize-fixp": lambda: one_op(
        nn.RequantizeOp,
        [In(codes(3, 4, lo=-3000, hi=3000), FixPType(16, 6))],
        FixPType(8, 2),
        scale=[1 / 16],
        mode="integer",
    ),
}
for _op in FLOAT_UNARY:
    CASES[_op.name.removeprefix("nn.")] = lambda _op=_op: one_op(_op, [In(f(3, 4))])


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_interpreter(case: str) -> None:
    program, inputs = CASES[case]()
    check_against_interpreter(program, inputs, what=case)


def test_every_nn_op_has_a_kernel() -> None:
    ops = [t for t in nn.NN.operations if t is not nn.WeightOp]
    assert sorted(t.name for t in ops if t not in LOWERINGS) == []
    tested = {name.split("-")[0] for name in CASES}
    untested = sorted(t.name for t in ops if t.name.removeprefix("nn.") not in tested)
    assert untested == []


def test_op_without_kernel_is_an_input_error() -> None:
    b = GraphBuilder()
    w = b.weight("w", np.zeros(2, np.float32))
    program = b.finish([w])
    op = program.weight_ops()[0]
    with pytest.raises(InputError, match=r"nn\.weight"):
        lower(op, Lowering("exact", lambda fmt: None))


@settings(max_examples=40)
@given(graph_specs())
def test_random_graphs_match_interpreter(spec) -> None:  # type: ignore[no-untyped-def]
    program, inputs = build_program(spec)
    check_against_interpreter(program, inputs, what=repr(spec))


def test_parameters_named_after_weights() -> None:
    program, _ = CASES["conv2d-i8"]()
    exact = to_torch(program)
    assert dict(exact.named_parameters()) == {}
    assert exact.weight_names == {"layer_w1": "layer.w1", "layer_w2": "layer.w2"}
    assert exact.layer_w1.dtype == torch.int64
    program, _ = CASES["batchnorm"]()
    module = to_torch(program)
    # float weights train; batchnorm statistics are buffers, like torch's running stats
    assert sorted(n for n, _ in module.named_parameters()) == ["layer_w1", "layer_w2"]
    assert sorted(n for n, _ in module.named_buffers()) == ["layer_w3", "layer_w4"]
    frozen = to_torch(program, frozen={"layer.w1"})
    assert sorted(n for n, _ in frozen.named_parameters()) == ["layer_w2"]


def test_bad_inputs_are_input_errors() -> None:
    program, _ = CASES["quantize-i8"]()
    module = to_torch(program)
    with pytest.raises(InputError, match=r"nn\.quantize"):
        module(torch.full((2, 6), float("nan")))
    with pytest.raises(InputError, match="takes 1 inputs"):
        module()
    with pytest.raises(InputError, match="gradient"):
        to_torch(program, mode="train", gradient="bogus")


def test_outputs_keep_interpreter_float_types() -> None:
    program, inputs = CASES["cast-f16"]()
    out = to_torch(program)(torch.from_numpy(inputs[0]))
    assert out.dtype == torch.float16
    assert np.array_equal(out.numpy(), run(program, inputs)[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda)")
@pytest.mark.parametrize(
    "case",
    [
        "conv2d",
        "conv2d-i8",
        "requantize-integer-per-channel",
        "quantize-posit",
        "linear-fixp-posit",
        "avgpool2d-i8",
    ],
)
def test_cuda_matches_interpreter(case: str) -> None:
    program, inputs = CASES[case]()
    check_against_interpreter(program, inputs, device="cuda", what=case)
    out = torch_outputs(program, inputs, device="cuda")
    assert out  # ran on the device and came back


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda)")
@settings(max_examples=15)
@given(graph_specs())
def test_cuda_random_graphs(spec) -> None:  # type: ignore[no-untyped-def]
    program, inputs = build_program(spec)
    check_against_interpreter(program, inputs, device="cuda", what=repr(spec))
