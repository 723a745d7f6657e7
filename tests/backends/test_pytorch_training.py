"""Train mode (fake quantization with a chosen gradient) and the write-back round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from op_helpers import In, W, one_op
from strategies import build_program, graph_specs
from xdsl.dialects.builtin import Float32Type, IntegerType

from ircomp.backends.pytorch import to_torch, write_back
from ircomp.dialects import nn
from ircomp.dialects.num import FixPType, PositType
from ircomp.interpreter import run
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import print_module
from ircomp.numerics import Posit

I8 = IntegerType(8)


def qat_program(seed: int = 0):  # type: ignore[no-untyped-def]
    """quantize -> int8 linear (int32 bias) -> requantize -> dequantize -> float linear."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input((8, 6))
    q = b.op(nn.QuantizeOp, [x], I8, scale=[0.05])
    w = b.weight("fc1.weight", rng.integers(-60, 60, size=(5, 6)), I8)
    bias = b.weight("fc1.bias", rng.integers(-100, 100, size=5), IntegerType(32))
    acc = b.op(nn.LinearOp, [q, w, bias], name="fc1")
    y = b.op(nn.RequantizeOp, [acc], I8, scale=[0.01], mode="integer")
    y = b.op(nn.ReluOp, [y])
    d = b.op(nn.DequantizeOp, [y], Float32Type(), scale=[0.1])
    w2 = b.weight("head.weight", rng.normal(size=(3, 5)).astype(np.float32) * 0.3)
    return b.finish([b.op(nn.LinearOp, [d, w2], name="head")])


def test_qat_step_reduces_loss_with_ste() -> None:
    program = qat_program()
    module = to_torch(program, mode="train", gradient="ste")
    assert sorted(n for n, _ in module.named_parameters()) == [
        "fc1_bias",
        "fc1_weight",
        "head_weight",
    ]
    torch.manual_seed(0)
    x = torch.randn(8, 6)
    target = torch.randn(8, 3)
    opt = torch.optim.AdamW(module.parameters(), lr=0.5)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(module(x), target)
        loss.backward()
        assert module.fc1_weight.grad is not None and module.fc1_weight.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    trained = write_back(program, module)
    trained.verify()
    # The IR is the same but for the hashes of weights that changed.
    old = [op.hash.data for op in program.weight_ops()]
    new = [op.hash.data for op in trained.weight_ops()]
    assert old != new
    strip = [print_module(p.module) for p in (program, trained)]
    for h in old + new:
        strip = [s.replace(h, "") for s in strip]
    assert strip[0] == strip[1]
    # The exact module of the trained program runs what the interpreter runs.
    want = run(trained, [x.numpy()])[0]
    got = to_torch(trained)(x).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_train_forward_equals_exact_on_fake_quant_pairs() -> None:
    program, inputs = one_op(
        nn.QuantizeOp,
        [In(np.linspace(-9, 9, 40, dtype=np.float32))],
        I8,
        scale=[0.05],
        zero_point=[4],
    )
    exact = to_torch(program)(torch.from_numpy(inputs[0]))
    train = to_torch(program, mode="train")(torch.from_numpy(inputs[0]))
    assert train.dtype == torch.float32
    assert torch.equal(train.long(), exact)


def _grad_of_quantize(gradient):  # type: ignore[no-untyped-def]
    program, _ = one_op(nn.QuantizeOp, [In(np.zeros(5, np.float32))], I8, scale=[1.0])
    module = to_torch(program, mode="train", gradient=gradient)
    x = torch.tensor([-300.0, -1.2, 0.4, 100.0, 127.4], requires_grad=True)
    module(x).sum().backward()
    return x.grad


def test_gradients_ste_and_clipped_ste() -> None:
    assert torch.equal(_grad_of_quantize("ste"), torch.ones(5))
    assert torch.equal(_grad_of_quantize("clipped_ste"), torch.tensor([0.0, 1, 1, 1, 1]))


def test_gradient_hook_gets_the_format() -> None:
    seen = []

    def posit_gradient(u, q, fmt):  # type: ignore[no-untyped-def]
        seen.append(fmt)
        return 1.0 / (1.0 + u.abs())  # e.g. shrink where posits are coarse

    program, _ = one_op(nn.QuantizeOp, [In(np.zeros(3, np.float32))], PositType(8, 1), scale=[1.0])
    module = to_torch(program, mode="train", gradient=posit_gradient)
    x = torch.tensor([0.0, 1.0, 3.0], requires_grad=True)
    module(x).sum().backward()
    assert seen == [Posit(8, 1)]
    assert torch.allclose(x.grad, torch.tensor([1.0, 0.5, 0.25]))


def test_posit_weights_train_and_write_back() -> None:
    codes = np.array([[1, 64, 100, 200], [255, 3, 70, 127]])
    program, inputs = one_op(
        nn.LinearOp,
        [
            In(np.random.default_rng(0).integers(-100, 100, (2, 4)), FixPType(8, 3)),
            W(codes, PositType(8, 0)),
        ],
    )
    module = to_torch(program, mode="train")
    assert [n for n, _ in module.named_parameters()] == ["layer_w1"]
    same = write_back(program, module)
    assert [o.hash.data for o in same.weight_ops()] == [o.hash.data for o in program.weight_ops()]
    module(torch.from_numpy(inputs[0])).sum().backward()
    assert module.layer_w1.grad is not None


@settings(max_examples=30)
@given(graph_specs())
def test_write_back_round_trip_is_exact(spec) -> None:  # type: ignore[no-untyped-def]
    program, inputs = build_program(spec)
    for mode in ("exact", "train"):
        back = write_back(program, to_torch(program, mode=mode))
        assert print_module(back.module) == print_module(program.module)
        want, got = run(program, inputs), run(back, inputs)
        for w, g in zip(want, got, strict=True):
            assert w.dtype == g.dtype and np.array_equal(w, g, equal_nan=True)


@pytest.mark.parametrize("gradient", ["ste", "clipped_ste"])
def test_float_graph_trains_identically_in_both_modes(gradient: str) -> None:
    rng = np.random.default_rng(1)
    program, inputs = one_op(
        nn.LinearOp,
        [
            In(rng.normal(size=(4, 3)).astype(np.float32)),
            W(rng.normal(size=(2, 3)).astype(np.float32)),
        ],
    )
    a = to_torch(program)
    b = to_torch(program, mode="train", gradient=gradient)
    x = torch.from_numpy(inputs[0])
    assert torch.equal(a(x), b(x))


def test_tflite_kernels_train_close_to_exact() -> None:
    """nn.qadd / nn.qsoftmax in train mode: float surrogates of the fixed-point kernels, within
    a code of the exact ones here, with gradients to both operands."""
    rng = np.random.default_rng(7)
    a, b = rng.integers(-128, 128, (4, 6)), rng.integers(-128, 128, (4, 6))
    program, inputs = one_op(
        nn.QAddOp,
        [In(a, I8), In(b, I8)],
        I8,
        lhs_scale=0.0713,
        lhs_zero_point=-4,
        rhs_scale=0.1502,
        rhs_zero_point=9,
        scale=0.117,
        zero_point=-11,
    )
    exact = to_torch(program)(*(torch.from_numpy(x) for x in inputs))
    ta, tb = (torch.tensor(x, dtype=torch.float32, requires_grad=True) for x in inputs)
    train = to_torch(program, mode="train")(ta, tb)
    assert (train - exact).abs().max() <= 1
    train.sum().backward()
    assert ta.grad is not None and tb.grad is not None and ta.grad.abs().sum() > 0
    program, inputs = one_op(
        nn.QSoftmaxOp, [In(rng.integers(-128, 128, (3, 10)), I8)], I8, input_scale=0.1719
    )
    exact = to_torch(program)(torch.from_numpy(inputs[0]))
    tx = torch.tensor(inputs[0], dtype=torch.float32, requires_grad=True)
    train = to_torch(program, mode="train")(tx)
    assert (train - exact).abs().max() <= 1
    (train * torch.arange(10.0)).sum().backward()
    assert tx.grad is not None and tx.grad.abs().sum() > 0
