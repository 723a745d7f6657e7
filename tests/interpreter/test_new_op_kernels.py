"""Golden-interpreter kernels of the ops added for the frontends, against torch / numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from interp_helpers import In, W, run_op
from xdsl.dialects.builtin import BFloat16Type, Float16Type, IntegerType, i1

from ircomp.dialects import nn
from ircomp.errors import InputError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5)).astype(np.float32)
POS = np.abs(X) + np.float32(0.1)
I32 = IntegerType(32)
I8 = IntegerType(8)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x)


@pytest.mark.parametrize(
    ("op_type", "x", "ref", "props"),
    [
        (nn.SqrtOp, POS, lambda t: torch.sqrt(t), {}),
        (nn.ReciprocalOp, POS, lambda t: torch.reciprocal(t), {}),
        (nn.ExpOp, X, lambda t: torch.exp(t), {}),
        (nn.LogOp, POS, lambda t: torch.log(t), {}),
        (nn.ErfOp, X, lambda t: torch.erf(t), {}),
        (nn.NegOp, X, lambda t: -t, {}),
        (nn.AbsOp, X, lambda t: t.abs(), {}),
        (nn.LeakyReluOp, X, lambda t: torch.nn.functional.leaky_relu(t, 0.1), {"alpha": 0.1}),
        (
            nn.HardSigmoidOp,
            X * 4,
            lambda t: torch.nn.functional.hardsigmoid(t),
            {"alpha": 1 / 6, "beta": 0.5},
        ),
        (nn.HardSwishOp, X * 4, lambda t: torch.nn.functional.hardswish(t), {}),
        (nn.LogSoftmaxOp, X, lambda t: torch.log_softmax(t, 1), {"axis": 1}),
    ],
)
def test_float_unary_matches_torch(op_type, x, ref, props) -> None:
    got = run_op(op_type, [In(x)], **props)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref(_t(x)).numpy(), rtol=1e-6, atol=1e-6)


def test_f16_unary_rounds_once() -> None:
    x = POS.astype(np.float16)
    got = run_op(nn.SqrtOp, [In(x, Float16Type())])
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, np.sqrt(x.astype(np.float32)).astype(np.float16))


def test_pow_max_min_broadcast() -> None:
    b = RNG.standard_normal((4, 1)).astype(np.float32)
    np.testing.assert_allclose(run_op(nn.PowOp, [In(POS), In(b)]), np.power(POS, b), rtol=1e-6)
    np.testing.assert_array_equal(run_op(nn.MaxOp, [In(X), In(b)]), np.maximum(X, b))
    np.testing.assert_array_equal(run_op(nn.MinOp, [In(X), In(b)]), np.minimum(X, b))
    codes = np.array([-128, 5, 127], np.int8)
    other = np.array([3, -4, 0], np.int8)
    got = run_op(nn.MaxOp, [In(codes, I8), In(other, I8)])
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, [3, 5, 127])


@pytest.mark.parametrize(("axes", "keep"), [([1], True), ([0, 2], False), ([], False)])
def test_reductions(axes, keep) -> None:
    dims = tuple(axes) or (0, 1, 2)
    mean = run_op(nn.ReduceMeanOp, [In(X)], axes=axes, keepdims=keep)
    np.testing.assert_allclose(mean, _t(X).mean(dim=dims, keepdim=keep).numpy(), rtol=1e-6)
    total = run_op(nn.ReduceSumOp, [In(X)], axes=axes, keepdims=keep)
    np.testing.assert_allclose(total, _t(X).sum(dim=dims, keepdim=keep).numpy(), rtol=1e-5)
    top = run_op(nn.ReduceMaxOp, [In(X)], axes=axes, keepdims=keep)
    np.testing.assert_array_equal(top, _t(X).amax(dim=dims, keepdim=keep).numpy())


def test_reduce_max_on_codes() -> None:
    codes = np.array([[1, -7], [9, 2]], np.int8)
    got = run_op(nn.ReduceMaxOp, [In(codes, I8)], axes=[1], keepdims=False)
    np.testing.assert_array_equal(got, [1, 9])
    assert got.dtype == np.int8


def test_gather_is_numpy_take_with_negative_indices() -> None:
    idx = np.array([[0, -1], [2, 1]], np.int32)
    got = run_op(nn.GatherOp, [In(X), W(idx, I32)], axis=1)
    np.testing.assert_array_equal(got, np.take(X, idx, axis=1))
    scalar = run_op(nn.GatherOp, [In(X), W(np.array(-2, np.int32), I32)], axis=2)
    np.testing.assert_array_equal(scalar, X[:, :, -2])
    with pytest.raises(InputError, match="out of range"):
        run_op(nn.GatherOp, [In(X), W(np.array([4], np.int32), I32)], axis=1)


def test_expand_where_cast() -> None:
    x = RNG.standard_normal((3, 1)).astype(np.float32)
    got = run_op(nn.ExpandOp, [In(x)], shape=[2, 1, 4])
    np.testing.assert_array_equal(got, np.broadcast_to(x, (2, 3, 4)))
    cond = np.array([[True], [False]])
    a = np.arange(3, dtype=np.float32)[None, :]
    b = -np.arange(6, dtype=np.float32).reshape(2, 3)
    got = run_op(nn.WhereOp, [In(cond, i1), In(a), In(b)])
    np.testing.assert_array_equal(got, np.where(cond, a, b))
    half = run_op(nn.CastOp, [In(X)], Float16Type())
    np.testing.assert_array_equal(half, X.astype(np.float16))
    bf = run_op(nn.CastOp, [In(X)], BFloat16Type())
    np.testing.assert_array_equal(bf, _t(X).to(torch.bfloat16).float().numpy())
    back = run_op(nn.CastOp, [In(half, Float16Type())])
    np.testing.assert_array_equal(back, half.astype(np.float32))
