"""fold-batchnorm: conv2d/linear -> batchnorm becomes one conv2d/linear with new tensors."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from pass_checks import apply, assert_ir_equal, check_pass
from strategies import build_program, float_graphs

from ircomp.dialects import nn
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.weights import content_hash

BN_OPS = ("linear", "conv2d", "batchnorm", "relu", "add", "maxpool", "flatten", "split")


def _bn_params(b: GraphBuilder, name: str, rng: np.random.Generator, c: int) -> list:
    return [
        b.weight(f"{name}.scale", rng.normal(size=c)),
        b.weight(f"{name}.bias", rng.normal(size=c)),
        b.weight(f"{name}.mean", rng.normal(size=c)),
        b.weight(f"{name}.var", rng.uniform(0.5, 2.0, size=c)),
    ]


def test_linear_with_bias_folds() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    b = GraphBuilder()
    x = b.input((2, 4))
    y = b.op(nn.LinearOp, [x, b.weight("fc.weight", w), b.weight("fc.bias", bias)])
    params = _bn_params(b, "bn", rng, 3)
    before = b.finish([b.op(nn.BatchNormOp, [y, *params], epsilon=1e-3)])

    after = apply(before, "fold-batchnorm")

    scale, beta, mean, var = (
        before.weights.get(p.owner.hash.data).astype(np.float64) for p in params
    )
    s = scale / np.sqrt(var + 1e-3)
    new_w = (w * s[:, None]).astype(np.float32)
    new_b = ((bias - mean) * s + beta).astype(np.float32)
    assert_ir_equal(
        after,
        f"""
        func.func @main(%0: tensor<2x4xf32>) -> tensor<2x3xf32> {{
          %1 = nn.weight {{name = "fc.weight.bn_folded", hash = "{content_hash(new_w)}"}}
            : () -> tensor<3x4xf32>
          %2 = nn.weight {{name = "fc.bias.bn_folded", hash = "{content_hash(new_b)}"}}
            : () -> tensor<3xf32>
          %3 = nn.linear %0, %1, %2
            : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
          func.return %3 : tensor<2x3xf32>
        }}
        """,
    )
    x = rng.normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_allclose(run(after, [x])[0], run(before, [x])[0], rtol=1e-5, atol=1e-5)


def test_conv_without_bias_gets_one() -> None:
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    x = b.input((1, 2, 5, 5))
    w = b.weight("conv.weight", rng.normal(size=(4, 1, 3, 3)))
    y = b.op(nn.Conv2dOp, [x, w], groups=2, padding=[1, 1, 1, 1])
    before = b.finish([b.op(nn.BatchNormOp, [y, *_bn_params(b, "bn", rng, 4)])])
    after = check_pass(
        before,
        [rng.normal(size=(1, 2, 5, 5)).astype(np.float32)],
        "fold-batchnorm",
        rtol=1e-5,
        atol=1e-5,
    )
    (conv,) = [op for op in after.module.walk() if isinstance(op, nn.Conv2dOp)]
    assert conv.bias is not None and conv.get("groups") == 2
    assert conv.bias.owner.weight_name.data == "conv.bias.bn_folded"
    assert not any(isinstance(op, nn.BatchNormOp) for op in after.module.walk())


def test_conv_with_another_user_is_left_alone() -> None:
    rng = np.random.default_rng(2)
    b = GraphBuilder()
    x = b.input((1, 1, 4, 4))
    y = b.op(nn.Conv2dOp, [x, b.weight("w", rng.normal(size=(2, 1, 1, 1)))])
    bn = b.op(nn.BatchNormOp, [y, *_bn_params(b, "bn", rng, 2)])
    before = b.finish([bn, b.op(nn.ReluOp, [y])])
    assert apply(before, "fold-batchnorm").module.is_structurally_equivalent(before.module)


def test_batchnorm_on_a_3d_linear_result_is_left_alone() -> None:
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input((2, 3, 4))
    y = b.op(nn.LinearOp, [x, b.weight("w", rng.normal(size=(5, 4)))])
    before = b.finish([b.op(nn.BatchNormOp, [y, *_bn_params(b, "bn", rng, 3)])])
    assert apply(before, "fold-batchnorm").module.is_structurally_equivalent(before.module)


def _foldable_left(program) -> int:
    count = 0
    for op in program.module.walk():
        if isinstance(op, nn.BatchNormOp):
            mac = op.input.owner
            if isinstance(mac, nn.Conv2dOp) or (
                isinstance(mac, nn.LinearOp) and len(mac.result.type.get_shape()) == 2
            ):
                count += mac.result.has_one_use()
    return count


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(float_graphs(formats=("f32",), ops=BN_OPS, max_nodes=6))
def test_fold_batchnorm_properties(spec) -> None:
    program, inputs = build_program(spec)
    result = check_pass(program, inputs, "fold-batchnorm", rtol=1e-5, atol=1e-5)
    assert _foldable_left(result) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(float_graphs(formats=("f16", "bf16"), ops=BN_OPS, max_nodes=4))
def test_fold_batchnorm_on_half_formats_verifies_and_is_idempotent(spec) -> None:
    program, _ = build_program(spec)
    once = apply(program, "fold-batchnorm")
    assert _foldable_left(once) == 0
    assert apply(once, "fold-batchnorm").module.is_structurally_equivalent(once.module)
