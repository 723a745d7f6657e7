"""The training engine: fit, evaluate, losses, Hessian traces, layer capture."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ircomp.errors import InputError
from ircomp.train.data import Dataset, load_digits
from ircomp.train.fit import (
    LayerCapture,
    RandomCropFlip,
    cosine_similarity,
    cross_entropy,
    distillation_loss,
    evaluate,
    fit,
    hutchinson_trace,
    lr_at,
    seed_everything,
)
from ircomp.train.zoo import MLP


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits(seed=0)


def _train_mlp(digits: Dataset, **kw):
    seed_everything(0)
    model = MLP(64, [64], 10)
    args = dict(epochs=8, batch_size=32, lr=3e-3, warmup_epochs=0.5, seed=0, progress=False)
    args.update(kw)
    return model, fit(model, digits, **args)


def test_fit_learns_digits_and_is_deterministic(digits):
    model_a, res_a = _train_mlp(digits)
    model_b, _ = _train_mlp(digits)
    assert res_a.best_accuracy > 0.90
    assert not res_a.interrupted and len(res_a.history) == 8
    assert res_a.history[-1]["test_acc"] <= res_a.best_accuracy
    for (ka, va), (kb, vb) in zip(
        model_a.state_dict().items(), model_b.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb), ka
    # the model holds the best state, which evaluates to the best accuracy
    acc = evaluate(model_a, digits.x_test, digits.y_test, topk=(1, 5))
    assert acc[1] == pytest.approx(res_a.best_accuracy) and acc[5] >= acc[1]


def test_fit_interrupt_returns_best_so_far(digits):
    steps_per_epoch = len(digits.x_train) // 32
    calls = 0

    def augment(x, generator):
        nonlocal calls
        calls += 1
        if calls > steps_per_epoch + 5:  # inside the second epoch
            raise KeyboardInterrupt
        return x

    model, res = _train_mlp(digits, augment=augment)
    assert res.interrupted
    assert len(res.history) == 1 and res.best_epoch == 0
    assert res.steps == steps_per_epoch + 5
    for k, v in model.state_dict().items():
        assert torch.equal(v, res.best_state[k])


def test_fit_interrupt_in_first_epoch_still_returns_a_state(digits):
    def augment(x, generator):
        raise KeyboardInterrupt

    _, res = _train_mlp(digits, augment=augment)
    assert res.interrupted and res.steps == 0 and res.best_state
    assert 0.0 <= res.best_accuracy <= 1.0


def test_fit_fractional_epochs_and_early_stop(digits):
    _, res = _train_mlp(digits, epochs=0.25)
    assert res.steps == round(0.25 * (len(digits.x_train) // 32)) and len(res.history) == 1
    _, res = _train_mlp(digits, epochs=30, lr=0.0, early_stop_patience=2)
    assert res.stopped_early and len(res.history) == 3


def test_fit_rejects_bad_options(digits):
    with pytest.raises(InputError, match="optimizer"):
        _train_mlp(digits, optimizer="lion")
    with pytest.raises(InputError, match="augmentation"):
        _train_mlp(digits, augment="mixup")
    with pytest.raises(InputError, match="epochs"):
        _train_mlp(digits, epochs=0)


def test_lr_schedule_warmup_then_cosine():
    rates = [lr_at(s, 100, 1.0, "cosine", 10) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[10] == pytest.approx(1.0) and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))
    assert lr_at(50, 100, 0.5, "constant", 10) == 0.5


def test_random_crop_flip_is_seeded_and_keeps_shape():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    aug = RandomCropFlip(padding=2)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    assert torch.equal(RandomCropFlip(padding=0, flip=False)(x, torch.Generator()), x)


def test_cross_entropy_matches_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    for ls in (0.0, 0.1):
        expected = F.cross_entropy(logits, y, label_smoothing=ls)
        torch.testing.assert_close(cross_entropy(logits, y, ls), expected)


def test_distillation_loss_and_cosine_similarity():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(6, 10, generator=g)
    s = torch.randn(6, 10, generator=g, requires_grad=True)
    assert float(distillation_loss(t, t, T=2.0)) == pytest.approx(0.0, abs=1e-6)
    T = 3.0
    expected = F.kl_div(
        F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="batchmean"
    ) * (T * T)
    loss = distillation_loss(s, t, T)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert s.grad is not None
    assert cosine_similarity(t, t) == pytest.approx(1.0)
    assert cosine_similarity(t, -t) == pytest.approx(-1.0)
    assert cosine_similarity(np.zeros((2, 3)), np.zeros((2, 3))) == 1.0
    with pytest.raises(InputError):
        cosine_similarity(t, t[:2])


class _Quadratic(nn.Module):
    """loss = 0.5 a^T A a + 0.5 b^T B b + a^T C b: the Hessian's diagonal blocks are A, B."""

    def __init__(self, A, B, C):
        super().__init__()
        self.a = nn.Parameter(torch.randn(A.shape[0], dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(B.shape[0], dtype=torch.float64))
        self.A, self.B, self.C = A, B, C

    def forward(self, x):
        a, b = self.a, self.b
        return 0.5 * a @ self.A @ a + 0.5 * b @ self.B @ b + a @ self.C @ b + 0 * x.sum()


def _spd(n: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return q @ torch.diag(torch.linspace(1.0, 3.0, n, dtype=torch.float64)) @ q.T


def test_hutchinson_trace_on_a_quadratic():
    gen = torch.Generator().manual_seed(0)
    A, B = _spd(12, gen), _spd(5, gen) * 2
    C = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    model = _Quadratic(A, B, C)
    batch = (torch.zeros(1), None)
    est = hutchinson_trace(
        model, lambda out, _: out, batch, samples=3000, generator=torch.Generator().manual_seed(1)
    )
    assert set(est) == {"a", "b"}
    assert est["a"] == pytest.approx(float(torch.trace(A)), rel=0.03)
    assert est["b"] == pytest.approx(float(torch.trace(B)), rel=0.03)
    only_b = hutchinson_trace(model, lambda out, _: out, batch, params=["b"], samples=4)
    assert set(only_b) == {"b"}
    with pytest.raises(InputError, match="no parameter"):
        hutchinson_trace(model, lambda out, _: out, batch, params=["c"])


# torch says so when the first captured layer's input needs no gradient; expected here.
@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_layer_capture_records_stats_samples_and_grads():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(4, 3))
    model.add_module("act", nn.ReLU())
    model.add_module("fc2", nn.Linear(3, 2))
    xs = [torch.randn(4, 4), torch.randn(4, 4)]
    outs = []
    with LayerCapture(model, ["fc1", "fc2"], grads=True, gram=True, max_samples=5) as cap:
        for x in xs:
            h = model.fc1(x)
            h.retain_grad()
            y = model.fc2(model.act(h))
            (y**2).sum().backward()
            outs.append(h.grad.clone())
    rec = cap.records["fc1"]
    x_all = torch.cat(xs).double()
    assert rec.calls == 2 and rec.input_stats.count == 8
    torch.testing.assert_close(rec.input_stats.mean, x_all.mean(0))
    torch.testing.assert_close(rec.input_stats.var, x_all.var(0, unbiased=False))
    torch.testing.assert_close(rec.input_stats.gram, x_all.T @ x_all)
    torch.testing.assert_close(rec.input_stats.max, x_all.max(0).values)
    assert rec.input_samples.shape == (5, 4)  # capped
    torch.testing.assert_close(rec.input_samples, torch.cat(xs)[:5])
    assert rec.output_stats.shape == (4, 3)
    grads = torch.cat(outs)
    assert rec.grad_samples.shape == (5, 3)
    torch.testing.assert_close(rec.grad_samples, grads[:5])
    torch.testing.assert_close(rec.grad_stats.mean, grads.double().mean(0))
    # hooks are gone after the context
    model(torch.randn(2, 4))
    assert cap.records["fc1"].calls == 2


def test_layer_capture_conv_channels_and_defaults():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2))  # fmt: skip
    with LayerCapture(model) as cap:
        model(torch.randn(5, 2, 4, 4))
    assert set(cap.records) == {"0", "3"}
    assert cap.records["0"].input_stats.sum.shape == (2,)  # channels
    assert cap.records["0"].output_stats.count == 5 * 16
    assert cap.records["3"].input_stats.sum.shape == (48,)
    assert cap.records["0"].inputs == []  # no samples unless asked
    with pytest.raises(InputError, match="no module named"):
        LayerCapture(model, ["blocks.0"])
