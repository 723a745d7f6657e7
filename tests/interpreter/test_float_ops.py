"""Float kernels against torch.nn.functional on random inputs (rtol 1e-5, atol 1e-6).

MAC ops (linear, matmul, conv2d) use atol 1e-5: both sides accumulate in float32 in different
orders (BLAS vs oneDNN), so outputs near zero carry absolute errors of a few 1e-7 times sqrt(K)
times the term magnitudes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from interp_helpers import In, W, rand, run_op, run_op_multi
from xdsl.dialects.builtin import BFloat16Type, Float16Type

from ircomp.dialects import nn

RTOL, ATOL, MAC_ATOL = 1e-5, 1e-6, 1e-5


def close(ours: np.ndarray, theirs: torch.Tensor | np.ndarray, atol: float = ATOL) -> None:
    expected = theirs.numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.dtype == expected.dtype
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=atol)


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ---- multiply-accumulate --------------------------------------------------------------------


def test_linear_with_bias_and_leading_dims(rng: np.random.Generator) -> None:
    x, w, b = rand(rng, 2, 3, 17), rand(rng, 9, 17), rand(rng, 9)
    close(run_op(nn.LinearOp, [In(x), W(w), W(b)]), F.linear(t(x), t(w), t(b)), MAC_ATOL)
    close(run_op(nn.LinearOp, [In(x), W(w)]), F.linear(t(x), t(w)), MAC_ATOL)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((4, 5), (5, 3)), ((2, 1, 3, 4), (5, 4, 6)), ((7, 2, 3), (3, 2)), ((1, 4, 8), (3, 8, 2))],
)
def test_matmul_broadcasts_batch_dims(
    rng: np.random.Generator, a_shape: tuple[int, ...], b_shape: tuple[int, ...]
) -> None:
    a, b = rand(rng, *a_shape), rand(rng, *b_shape)
    close(run_op(nn.MatMulOp, [In(a), In(b)]), torch.matmul(t(a), t(b)), MAC_ATOL)


CONV_CASES = [
    # in_c, out_c, k, strides, padding, dilations, groups
    (3, 4, (3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 1),
    (3, 6, (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),
    (4, 4, (3, 2), [1, 2], [2, 1, 2, 1], [2, 1], 1),
    (4, 6, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 2),
    (6, 6, (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 6),  # depthwise
    (4, 8, (5, 5), [1, 1], [2, 2, 2, 2], [2, 2], 4),  # depthwise, multiplier 2, dilated
    (2, 3, (3, 3), [2, 1], [1, 0, 2, 1], [1, 1], 1),  # asymmetric padding
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d(rng: np.random.Generator, case: tuple) -> None:
    in_c, out_c, k, strides, padding, dilations, groups = case
    x = rand(rng, 2, in_c, 11, 10)
    w = rand(rng, out_c, in_c // groups, *k)
    b = rand(rng, out_c)
    ours = run_op(
        nn.Conv2dOp,
        [In(x), W(w), W(b)],
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
    )
    top, left, bottom, right = padding
    padded = F.pad(t(x), (left, right, top, bottom))
    theirs = F.conv2d(padded, t(w), t(b), stride=strides, dilation=dilations, groups=groups)
    close(ours, theirs, MAC_ATOL)


# ---- normalization ----------------------------------------------------------------------------


def test_batchnorm(rng: np.random.Generator) -> None:
    x = rand(rng, 2, 5, 4, 3)
    scale, bias, mean = rand(rng, 5), rand(rng, 5), rand(rng, 5)
    var = rng.uniform(0.1, 2.0, 5).astype(np.float32)
    ours = run_op(nn.BatchNormOp, [In(x), W(scale), W(bias), W(mean), W(var)], epsilon=1e-3)
    theirs = F.batch_norm(t(x), t(mean), t(var), t(scale), t(bias), training=False, eps=1e-3)
    close(ours, theirs)


@pytest.mark.parametrize(("axis", "with_bias"), [(-1, True), (1, True), (2, False)])
def test_layernorm(rng: np.random.Generator, axis: int, with_bias: bool) -> None:
    x = rand(rng, 2, 3, 4, 5, scale=3.0) + 1.0
    dims = x.shape[axis % 4 :]
    scale, bias = rand(rng, *dims), rand(rng, *dims)
    operands = [In(x), W(scale), W(bias)] if with_bias else [In(x), W(scale)]
    ours = run_op(nn.LayerNormOp, operands, axis=axis, epsilon=1e-5)
    theirs = F.layer_norm(t(x), dims, t(scale), t(bias) if with_bias else None, eps=1e-5)
    close(ours, theirs)


# ---- elementwise ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op_type", "fn"),
    [(nn.AddOp, torch.add), (nn.SubOp, torch.sub), (nn.MulOp, torch.mul), (nn.DivOp, torch.div)],
)
def test_binary_broadcasting(rng: np.random.Generator, op_type: type, fn) -> None:
    a, b = rand(rng, 2, 3, 4), rand(rng, 3, 1) + 3.0
    close(run_op(op_type, [In(a), In(b)]), fn(t(a), t(b)))


@pytest.mark.parametrize(
    ("op_type", "props", "fn"),
    [
        (nn.ReluOp, {}, F.relu),
        (nn.SigmoidOp, {}, torch.sigmoid),
        (nn.TanhOp, {}, torch.tanh),
        (nn.GeluOp, {}, lambda x: F.gelu(x)),
        (nn.GeluOp, {"approximate": "tanh"}, lambda x: F.gelu(x, approximate="tanh")),
        (nn.HardTanhOp, {}, F.hardtanh),
        (nn.HardTanhOp, {"min": -0.5, "max": 2.0}, lambda x: F.hardtanh(x, -0.5, 2.0)),
        (nn.ClipOp, {"min": -0.25, "max": 0.75}, lambda x: torch.clamp(x, -0.25, 0.75)),
    ],
)
def test_unary(rng: np.random.Generator, op_type: type, props: dict, fn) -> None:
    x = rand(rng, 3, 50, scale=4.0)
    x[0, :4] = [0.0, -100.0, 100.0, -0.0]
    close(run_op(op_type, [In(x)], **props), fn(t(x)))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax(rng: np.random.Generator, axis: int) -> None:
    x = rand(rng, 3, 4, 5, scale=10.0)
    x[0, 0, 0] = 80.0  # exp overflows float32 unless the max is subtracted
    close(run_op(nn.SoftmaxOp, [In(x)], axis=axis), F.softmax(t(x), dim=axis))


# ---- pooling ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kernel", "strides", "pad", "dilations", "ceil"),
    [
        ([2, 2], [2, 2], 0, [1, 1], False),
        ([3, 3], [2, 2], 1, [1, 1], False),
        ([3, 3], [2, 2], 1, [1, 1], True),
        ([3, 2], [2, 3], 1, [2, 1], True),
        ([2, 2], [3, 3], 0, [1, 1], True),
    ],
)
def test_maxpool2d(rng: np.random.Generator, kernel, strides, pad, dilations, ceil) -> None:
    x = rand(rng, 2, 3, 10, 9) - 5.0  # all negative: zero padding would win
    ours = run_op(
        nn.MaxPool2dOp,
        [In(x)],
        kernel=kernel,
        strides=strides,
        padding=[pad] * 4,
        dilations=dilations,
        ceil_mode=ceil,
    )
    theirs = F.max_pool2d(t(x), kernel, strides, pad, dilations, ceil_mode=ceil)
    close(ours, theirs)


@pytest.mark.parametrize("ceil", [False, True])
@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize(
    ("kernel", "strides", "pad"), [([3, 3], [2, 2], 1), ([2, 3], [2, 2], 1), ([3, 3], [3, 2], 0)]
)
def test_avgpool2d(rng: np.random.Generator, kernel, strides, pad, ceil, include_pad) -> None:
    x = rand(rng, 2, 3, 10, 9)
    ours = run_op(
        nn.AvgPool2dOp,
        [In(x)],
        kernel=kernel,
        strides=strides,
        padding=[pad] * 4,
        ceil_mode=ceil,
        count_include_pad=include_pad,
    )
    theirs = F.avg_pool2d(t(x), kernel, strides, pad, ceil_mode=ceil, count_include_pad=include_pad)
    close(ours, theirs)


def test_global_avgpool2d(rng: np.random.Generator) -> None:
    x = rand(rng, 2, 3, 7, 5)
    close(run_op(nn.GlobalAvgPool2dOp, [In(x)]), F.adaptive_avg_pool2d(t(x), 1))


# ---- shape ops --------------------------------------------------------------------------------


def test_shape_ops(rng: np.random.Generator) -> None:
    x = rand(rng, 2, 3, 4, 5)
    assert np.array_equal(run_op(nn.ReshapeOp, [In(x)], shape=[6, -1]), x.reshape(6, 20))
    assert np.array_equal(run_op(nn.FlattenOp, [In(x)], axis=2), x.reshape(6, 20))
    assert np.array_equal(run_op(nn.FlattenOp, [In(x)], axis=0), x.reshape(1, 120))
    perm = [2, 0, 3, 1]
    assert np.array_equal(run_op(nn.TransposeOp, [In(x)], perm=perm), x.transpose(perm))
    y = rand(rng, 2, 1, 4, 5)
    assert np.array_equal(
        run_op(nn.ConcatOp, [In(x), In(y)], axis=1), np.concatenate([x, y], axis=1)
    )
    sliced = run_op(
        nn.SliceOp, [In(x)], starts=[1, -1, 0], ends=[3, 0, 5], axes=[1, 2, -1], steps=[1, -2, 2]
    )
    assert np.array_equal(sliced, x[:, 1:3, -1:0:-2, 0:5:2])
    parts = run_op_multi(nn.SplitOp, [In(x)], axis=-1, sizes=[2, 1, 2])
    for got, want in zip(parts, np.split(x, [2, 3], axis=-1), strict=True):
        assert np.array_equal(got, want)


# ---- reduced-precision floats -----------------------------------------------------------------


def test_f16_ops_round_the_float32_result(rng: np.random.Generator) -> None:
    x, w = rand(rng, 4, 8).astype(np.float16), rand(rng, 3, 8).astype(np.float16)
    y = run_op(nn.LinearOp, [In(x, Float16Type()), W(w, Float16Type())])
    assert y.dtype == np.float16
    expected = (x.astype(np.float32) @ w.astype(np.float32).T).astype(np.float16)
    np.testing.assert_array_equal(y, expected)
    s = run_op(nn.SigmoidOp, [In(x, Float16Type())])
    close(s, torch.sigmoid(t(x).float()).half(), atol=1e-3)


def test_bf16_values_are_bf16_rounded(rng: np.random.Generator) -> None:
    x, y = rand(rng, 5, 7), rand(rng, 5, 7)
    ours = run_op(nn.AddOp, [In(x, BFloat16Type()), In(y, BFloat16Type())])
    assert ours.dtype == np.float32
    xb, yb = t(x).bfloat16(), t(y).bfloat16()
    np.testing.assert_array_equal(ours, (xb.float() + yb.float()).bfloat16().float().numpy())
    # bf16 weights are stored as uint16 codes
    codes = (t(x).bfloat16().view(torch.int16).numpy().astype(np.int64) & 0xFFFF).astype(np.uint16)
    got = run_op(nn.ReluOp, [W(codes, BFloat16Type())])
    np.testing.assert_array_equal(got, F.relu(xb).float().numpy())
