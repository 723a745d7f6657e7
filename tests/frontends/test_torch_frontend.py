"""The torch.export frontend, op by op: what each ATen op becomes and what it refuses.

Each test builds a tiny module, imports it, checks the `nn` ops it produced and that the golden
interpreter matches torch's eval output.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn as tnn
from torch.nn import functional as F

from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.frontends import torch as frontend
from ircomp.interpreter import run

RTOL, ATOL = 1e-4, 1e-5


class Fn(tnn.Module):
    """Wraps a function of the inputs as a module (no parameters)."""

    def __init__(self, fn) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.fn = fn

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def check(module: tnn.Module, *inputs: torch.Tensor, dynamic_batch: bool = False) -> Counter:
    """Import, compare with torch, return the count of each nn op in the program."""
    module.eval()
    program = frontend.load(module, inputs, dynamic_batch=dynamic_batch)
    with torch.no_grad():
        want = module(*inputs)
    wants = want if isinstance(want, tuple | list) else (want,)
    got = run(program, [x.numpy() for x in inputs])
    assert len(got) == len(wants)
    for g, w in zip(got, wants, strict=True):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), rtol=RTOL, atol=ATOL)
    return Counter(op.name for op in program.module.walk() if op.name.startswith("nn."))


# ---- export set-up ------------------------------------------------------------------------------


def test_decomposition_table_keeps_linear_conv_layernorm_whole() -> None:
    table = frontend.decomposition_table()
    aten = torch.ops.aten
    for op in (aten.linear.default, aten.conv2d.default, aten.layer_norm.default):
        assert op not in table
    assert aten.silu.default in table  # everything else decomposes as torch's default


def test_supported_ops_lists_core_ops() -> None:
    ops = frontend.supported_ops()
    for name in (
        "aten.linear.default",
        "aten.conv2d.default",
        "aten.layer_norm.default",
        "aten._native_batch_norm_legit_no_training.default",
        "aten.bmm.default",
    ):
        assert name in ops


def test_training_flags_are_restored() -> None:
    model = tnn.Sequential(tnn.Linear(4, 4), tnn.Dropout(0.5), tnn.BatchNorm1d(4)).train()
    program = frontend.load(model, (randn(3, 4),))
    assert all(m.training for m in model.modules())
    names = Counter(op.name for op in program.module.walk())
    assert names["nn.batchnorm"] == 1  # eval-mode batch norm, dropout gone


# ---- MAC ops and norms --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({"kernel_size": 3, "padding": 1}, (2, 4, 9, 9)),
        ({"kernel_size": 3, "stride": 2, "padding": (0, 2)}, (2, 4, 9, 8)),
        ({"kernel_size": (3, 1), "dilation": 2, "padding": 2}, (1, 4, 10, 10)),
        ({"kernel_size": 3, "groups": 4, "padding": 1, "bias": False}, (2, 4, 7, 7)),
        ({"kernel_size": 4, "padding": "same"}, (1, 4, 7, 7)),
        ({"kernel_size": 3, "padding": "valid"}, (1, 4, 7, 7)),
    ],
)
def test_conv2d(kwargs: dict, shape: tuple) -> None:
    torch.manual_seed(0)
    ops = check(tnn.Conv2d(4, 8, **kwargs), randn(*shape))
    assert ops["nn.conv2d"] == 1


def test_linear_with_and_without_bias() -> None:
    torch.manual_seed(0)
    model = tnn.Sequential(tnn.Linear(8, 6), tnn.Linear(6, 3, bias=False))
    assert check(model, randn(2, 5, 8))["nn.linear"] == 2


def test_batchnorm_and_layernorm_without_affine() -> None:
    torch.manual_seed(0)
    bn = tnn.BatchNorm2d(3, affine=False)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    assert check(bn, randn(2, 3, 4, 4))["nn.batchnorm"] == 1
    ln = tnn.LayerNorm([4, 5], elementwise_affine=False, eps=1e-3)
    assert check(ln, randn(2, 3, 4, 5))["nn.layernorm"] == 1


@pytest.mark.parametrize(
    ("fn", "shapes"),
    [
        (torch.matmul, [(2, 3, 4, 5), (5, 6)]),
        (torch.matmul, [(2, 1, 4, 5), (3, 5, 6)]),
        (torch.matmul, [(4, 5), (5,)]),
        (torch.matmul, [(5,), (2, 5, 3)]),
        (torch.bmm, [(2, 4, 5), (2, 5, 3)]),
        (torch.mm, [(4, 5), (5, 3)]),
        (lambda c, a, b: torch.addmm(c, a, b, beta=0.5, alpha=2.0), [(3,), (4, 5), (5, 3)]),
    ],
)
def test_matmul_family(fn, shapes) -> None:  # type: ignore[no-untyped-def]
    inputs = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    assert check(Fn(fn), *inputs)["nn.matmul"] == 1


# ---- elementwise --------------------------------------------------------------------------------


def test_scalar_arithmetic_becomes_small_weights() -> None:
    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (1.0 - x) * 3.0 + torch.sub(x, y, alpha=2) / 4.0 + torch.add(x, 2.5, alpha=2)

    module = Fn(fn)
    x, y = randn(2, 3), randn(2, 3, seed=1)
    ops = check(module, x, y)
    assert ops["nn.sub"] == 2 and ops["nn.div"] == 1
    program = frontend.load(module, (x, y))
    scalars = [
        program.weights.get(w.hash.data)
        for w in program.weight_ops()
        if w.weight_name.data.endswith(".scalar")
    ]
    assert scalars and all(s.shape == (1,) for s in scalars)


@pytest.mark.parametrize(
    ("fn", "op"),
    [
        (F.relu, "nn.relu"),
        (torch.sigmoid, "nn.sigmoid"),
        (torch.tanh, "nn.tanh"),
        (F.relu6, "nn.hardtanh"),
        (lambda x: F.hardtanh(x, -0.5, 0.25), "nn.hardtanh"),
        (lambda x: torch.clamp(x, 0.0, 6.0), "nn.clip"),
        (lambda x: torch.clamp(x, min=-0.3), "nn.clip"),
        (lambda x: torch.clamp(x, max=0.3), "nn.clip"),
        (lambda x: torch.clamp(x, min=0.0), "nn.relu"),
        (F.gelu, "nn.gelu"),
        (lambda x: F.gelu(x, approximate="tanh"), "nn.gelu"),
        (lambda x: F.softmax(x, dim=1), "nn.softmax"),
        (F.silu, "nn.sigmoid"),
    ],
)
def test_activations(fn, op: str) -> None:  # type: ignore[no-untyped-def]
    assert check(Fn(fn), randn(2, 5, 7) * 4)[op] == 1


def test_gelu_approximations_are_kept() -> None:
    program = frontend.load(Fn(lambda x: F.gelu(F.gelu(x), approximate="tanh")), (randn(3),))
    gelus = [op for op in program.module.walk() if op.name == "nn.gelu"]
    assert [op.get("approximate") for op in gelus] == ["none", "tanh"]


@pytest.mark.parametrize(
    ("fn", "op"),
    [
        (lambda x: torch.sqrt(x.abs()), "nn.sqrt"),
        (lambda x: torch.rsqrt(x.abs() + 1), "nn.reciprocal"),
        (lambda x: torch.log(x.abs() + 1), "nn.log"),
        (lambda x: torch.reciprocal(x.abs() + 1), "nn.reciprocal"),
        (torch.exp, "nn.exp"),
        (torch.erf, "nn.erf"),
        (torch.neg, "nn.neg"),
        (torch.abs, "nn.abs"),
        (lambda x: x.pow(2), "nn.pow"),
        (lambda x: torch.pow(2.0, x), "nn.pow"),
        (lambda x: x.abs().pow(x), "nn.pow"),
        (lambda x: F.log_softmax(x, -1), "nn.log_softmax"),
        (lambda x: F.log_softmax(x, 1), "nn.log_softmax"),
        (lambda x: F.leaky_relu(x, 0.2), "nn.leaky_relu"),
        (F.leaky_relu, "nn.leaky_relu"),
        (F.hardswish, "nn.hardswish"),
        (F.hardsigmoid, "nn.hardsigmoid"),
        (lambda x: torch.maximum(x, x[1:]), "nn.max"),
        (lambda x: torch.minimum(x, x[:1]), "nn.min"),
    ],
)
def test_new_elementwise_ops(fn, op: str) -> None:  # type: ignore[no-untyped-def]
    assert check(Fn(fn), randn(2, 5, 7) * 2)[op] >= 1


def test_where() -> None:
    cond = randn(2, 5, 7, seed=3) > 0
    x, y = randn(2, 5, 7), randn(5, 1, seed=1)
    assert check(Fn(lambda c, a, b: torch.where(c, a, b)), cond, x, y)["nn.where"] == 1
    assert check(Fn(lambda c, a: torch.where(c, a, 0.5)), cond, x)["nn.where"] == 1
    assert check(Fn(lambda c, a: a.masked_fill(c, -2.0)), cond, x)["nn.where"] == 1
    # A comparison computed at run time has no nn op (nn.where's condition must come in).
    with pytest.raises(InputError, match=r"aten\.gt"):
        frontend.load(Fn(lambda a: torch.where(a > 0, a, 0.0)), (x,))


def test_hardsigmoid_uses_torch_slope() -> None:
    program = frontend.load(Fn(F.hardsigmoid), (randn(3),))
    (op,) = [o for o in program.module.walk() if o.name == "nn.hardsigmoid"]
    assert op.get("alpha") == pytest.approx(1 / 6) and op.get("beta") == pytest.approx(0.5)
    # Where torch's (1/6) and ONNX's default slope (0.2) differ most: x = -2.5 and 2.5.
    check(Fn(F.hardsigmoid), torch.tensor([-3.0, -2.5, -1.0, 0.0, 1.0, 2.5, 3.0]))


# ---- pooling and reductions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        tnn.MaxPool2d(2),
        tnn.MaxPool2d(3, stride=2, padding=1),
        tnn.MaxPool2d(3, stride=2, ceil_mode=True),
        tnn.MaxPool2d(2, dilation=2),
        tnn.AvgPool2d(2),
        tnn.AvgPool2d(3, stride=2, padding=1),
        tnn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        tnn.AvgPool2d(3, stride=2, ceil_mode=True),
        tnn.AdaptiveAvgPool2d(1),
        tnn.AdaptiveAvgPool2d((2, 3)),
    ],
    ids=repr,
)
def test_pooling(module: tnn.Module) -> None:
    ops = check(module, randn(2, 3, 8, 9))
    assert ops["nn.maxpool2d"] + ops["nn.avgpool2d"] + ops["nn.global_avgpool2d"] == 1


def test_mean_over_spatial_dims_is_global_avgpool() -> None:
    ops = check(Fn(lambda x: x.mean((2, 3))), randn(2, 3, 5, 4))
    assert ops["nn.global_avgpool2d"] == 1


def test_reductions() -> None:
    def fn(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # Every term is [2, 3] (or broadcasts to it: [2, 1]).
        return (
            x.mean(-1) + x.sum(2).sum(-1, keepdim=True) + x.amax(-1) + x.max(dim=-1).values,
            x.mean((0, 2), keepdim=True),
            x.sum(),
            x.mean(),
            x.amax((1, 2)),
        )

    ops = check(Fn(fn), randn(2, 3, 4))
    assert ops["nn.reduce_mean"] == 3 and ops["nn.reduce_sum"] == 3 and ops["nn.reduce_max"] == 3


def test_max_indices_are_refused() -> None:
    with pytest.raises(InputError, match="indices"):
        frontend.load(Fn(lambda x: x.max(dim=-1).indices.float()), (randn(2, 3),))


# ---- shape ops ----------------------------------------------------------------------------------


def test_shape_ops() -> None:
    def fn(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a, b = torch.split(x, [1, 3], dim=1)
        c = torch.chunk(x, 2, dim=-1)[1]
        d = x.transpose(1, 2).contiguous().view(2, -1)
        e = x.permute(2, 0, 1).unsqueeze(0).squeeze(0).flatten(1)
        f = x[:, 1:3, ::2]
        g = x[:, -1]
        h = torch.cat([a, b.t() if b.dim() == 2 else b], dim=1)
        i = x.reshape(2, 4, 3, 2).unbind(2)[1]
        j = torch.narrow(x, 2, 1, 4)
        return a, c, d, e, f, g, h, i, j

    ops = check(Fn(fn), randn(2, 4, 6))
    assert ops["nn.split"] >= 2 and ops["nn.transpose"] >= 2 and ops["nn.concat"] == 1


def test_broadcasting_expand() -> None:
    ops = check(Fn(lambda x: x[:, :1].expand(-1, 5, -1) * 2), randn(2, 3, 4))
    assert ops["nn.expand"] == 1
    ops = check(Fn(lambda x: x[:, :1].expand(2, 4, 3, 4) * 2), randn(3, 4), dynamic_batch=False)
    assert ops["nn.expand"] == 1


def test_expand_under_dynamic_batch() -> None:
    fn = Fn(lambda x: x[:, :1].expand(-1, 5, -1) + 1)
    program = frontend.load(fn, (randn(2, 3, 4),), dynamic_batch=True)
    for batch in (1, 3):
        x = randn(batch, 3, 4, seed=batch)
        np.testing.assert_allclose(run(program, [x.numpy()])[0], fn(x).numpy(), rtol=RTOL)
    with pytest.raises(InputError, match="run-time batch size"):
        frontend.load(
            Fn(lambda x: torch.ones(1, 4).expand(x.shape[0], -1) * x),
            (randn(2, 4),),
            dynamic_batch=True,
        )


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_embedding_is_gather(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    emb = tnn.Embedding(20, 6)
    ids = torch.tensor([[1, 5, 19], [0, 0, 7]], dtype=dtype)
    assert check(emb, ids)["nn.gather"] == 1


def test_float_casts() -> None:
    ops = check(Fn(lambda x: (x.half() * 2).float() + x.to(torch.bfloat16).float()), randn(2, 5))
    assert ops["nn.cast"] == 4


def test_int_to_float_cast_is_refused() -> None:
    with pytest.raises(InputError, match="float formats only"):
        frontend.load(Fn(lambda ids: ids.float() * 2), (torch.tensor([[1, 2]]),))


def test_constant_subgraphs_are_folded() -> None:
    class M(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("steps", torch.arange(6, dtype=torch.float32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            ramp = torch.arange(6, dtype=torch.float32) * 0.5 + self.steps[None, :]
            return x + ramp

    ops = check(M(), randn(3, 6))
    assert ops["nn.add"] == 1 and ops["nn.weight"] == 1


# ---- attention ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "causal", "float_mask", "bool_mask", "scale"])
def test_scaled_dot_product_attention(variant: str) -> None:
    q, k, v = (randn(2, 3, 5, 8, seed=i) for i in range(3))

    class M(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer(
                "keep", torch.rand(5, 5, generator=torch.Generator().manual_seed(3)) > 0.3
            )
            self.keep[:, 0] = True

        def forward(self, q, k, v, mask):  # type: ignore[no-untyped-def]
            if variant == "causal":
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
            if variant == "float_mask":
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            if variant == "bool_mask":
                return F.scaled_dot_product_attention(q, k, v, attn_mask=self.keep)
            if variant == "scale":
                return F.scaled_dot_product_attention(q, k, v, scale=0.1)
            return F.scaled_dot_product_attention(q, k, v)

    mask = randn(5, 5, seed=9)
    ops = check(M(), q, k, v, mask)
    assert ops["nn.softmax"] == 1 and ops["nn.matmul"] == 2


# ---- names, dynamic batch -----------------------------------------------------------------------


def test_every_submodule_op_is_named_after_its_module() -> None:
    torch.manual_seed(0)
    model = tnn.Sequential(tnn.Conv2d(3, 4, 3), tnn.ReLU(), tnn.Flatten(), tnn.Linear(4 * 4 * 4, 2))
    program = frontend.load(model, (randn(1, 3, 6, 6),))
    names = {
        op.name: nn.op_name(op)
        for op in program.module.walk()
        if op.name != "nn.weight" and op.name.startswith("nn.")
    }
    assert names == {"nn.conv2d": "0", "nn.relu": "1", "nn.reshape": "2", "nn.linear": "3"}


def test_dynamic_batch_reshape_uses_minus_one() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return (x.view(b, 2, 6).transpose(1, 2) @ torch.ones(2, 3)).reshape(b * 6, 3)

    x = randn(4, 12)
    program = frontend.load(Fn(fn), (x,), dynamic_batch=True)
    reshapes = [op for op in program.module.walk() if op.name == "nn.reshape"]
    assert all(op.get("shape").count(-1) == 1 for op in reshapes)
    for batch in (1, 5):
        xb = randn(batch, 12, seed=batch)
        np.testing.assert_allclose(
            run(program, [xb.numpy()])[0], fn(xb).numpy(), rtol=RTOL, atol=ATOL
        )


def test_dynamic_batch_needs_batch_of_two() -> None:
    with pytest.raises(InputError, match="batch size >= 2"):
        frontend.load(tnn.Linear(3, 3), (randn(1, 3),), dynamic_batch=True)


def test_model_fixing_the_batch_refuses_dynamic_batch() -> None:
    with pytest.raises(InputError, match=r"torch\.export failed"):
        frontend.load(Fn(lambda x: x.view(2, -1)), (randn(2, 6),), dynamic_batch=True)


def test_data_dependent_shape_is_refused() -> None:
    with pytest.raises(InputError) as err:
        frontend.load(Fn(lambda x: x[x > 0].sum()), (randn(2, 6),))
    assert "torch.export failed" in str(err.value) or "dynamic" in str(err.value)


# ---- refusals -----------------------------------------------------------------------------------


class Spectral(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = tnn.Linear(8, 8)
        self.spectrum = Fn(lambda x: torch.fft.fft(x).real)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.spectrum(self.proj(x))
        return torch.cumsum(y, dim=-1) + torch.sin(y)


def test_unsupported_ops_are_listed_in_one_error() -> None:
    with pytest.raises(InputError) as err:
        frontend.load(Spectral(), (randn(2, 8),))
    message = str(err.value)
    assert "unsupported operation" in message
    assert "fft" in message and "spectrum" in message  # op and module path
    assert "aten.cumsum" in message and "aten.sin" in message
    assert message.count("\n") >= 3  # one line per unsupported node


def test_non_tensor_and_float64_inputs_are_refused() -> None:
    with pytest.raises(InputError, match="only tensors"):
        frontend.load(Fn(lambda x, n: x * n), (randn(2), 3))
    with pytest.raises(InputError, match="float64"):
        frontend.load(Fn(lambda x: x + 1), (randn(2).double(),))


def test_buffer_mutation_is_refused() -> None:
    class Counter_(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("count", torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.count.add_(1)
            return x + self.count

    with pytest.raises(InputError, match="writes state"):
        frontend.load(Counter_(), (randn(2),))


def test_not_a_module_is_refused() -> None:
    with pytest.raises(InputError, match=r"nn\.Module"):
        frontend.load(lambda x: x, (randn(2),))  # type: ignore[arg-type]


def test_frontend_never_unpickles() -> None:
    source = Path(frontend.__file__).read_text()
    assert not re.search(r"(?<!frontends\.)torch\.load\(|pickle|torch\.jit\.load", source)


def test_sqrt_of_head_dim_constant_matches() -> None:
    # Division by a Python float (BERT's / sqrt(d)) stays exact in float32.
    x = randn(2, 4)
    check(Fn(lambda t: t / math.sqrt(8)), x)
