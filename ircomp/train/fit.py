"""One training and evaluation engine: seeded, deterministic training loops, evaluation,
comparison of outputs, distillation, Hessian traces and per-layer activation capture.

Determinism: data order draws from a CPU `torch.Generator` seeded from `seed` (the same order
on every device), augmentation from a generator on the training device; `seed_everything`
seeds the global generators and asks torch for deterministic kernels. The loss is written with
log-softmax and a dense target (no `nll_loss`/`gather`, whose CUDA backward accumulates
atomically). Two runs with the same seed on the same device give identical weights.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ircomp.errors import InputError

__all__ = [
    "FitResult",
    "LayerCapture",
    "LayerRecord",
    "RandomCropFlip",
    "RunningStats",
    "cosine_similarity",
    "cross_entropy",
    "distillation_loss",
    "evaluate",
    "fit",
    "hutchinson_trace",
    "seed_everything",
]

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


# --------------------------------------------------------------------------------------------
# seeding and devices


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python's, numpy's and torch's global generators (CPU and CUDA) with `seed`.

    With `deterministic`, also select deterministic cuDNN kernels and ask torch to warn about
    nondeterministic operations (without filling uninitialized memory); it sets
    ``CUBLAS_WORKSPACE_CONFIG`` if unset, which cuBLAS needs for reproducible results (this
    takes effect only if CUDA is not yet initialized).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Filling every new tensor with NaN costs a kernel per allocation; results do not
        # depend on uninitialized memory in the ops used here.
        torch.utils.deterministic.fill_uninitialized_memory = False


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" picks CUDA when present; an unavailable CUDA device is an input error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"bad device {device!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but torch sees no CUDA device")
    return dev


def _as_tensor(a: Any, device: torch.device | None = None) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device) if device is not None else t


# --------------------------------------------------------------------------------------------
# losses and metrics


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy with label smoothing, as `F.cross_entropy` computes it, written with
    a dense target so that its backward is deterministic on CUDA."""
    classes = logits.shape[-1]
    logp = F.log_softmax(logits.float(), dim=-1)
    dense = (target[:, None] == torch.arange(classes, device=target.device)).to(logp.dtype)
    if label_smoothing:
        dense = dense * (1.0 - label_smoothing) + label_smoothing / classes
    return -(dense * logp).sum(-1).mean()


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 4.0
) -> torch.Tensor:
    """Hinton's distillation loss: ``T^2 * KL(softmax(teacher/T) || softmax(student/T))``,
    averaged over the batch (the teacher is not differentiated)."""
    if T <= 0:
        raise InputError(f"distillation temperature must be positive, got {T}")
    teacher = teacher_logits.detach().float()
    log_p_t = F.log_softmax(teacher / T, dim=-1)
    log_p_s = F.log_softmax(student_logits.float() / T, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return kl.mean() * (T * T)


def cosine_similarity(a: Any, b: Any, *, eps: float = 1e-12) -> float:
    """Mean cosine similarity of two models' outputs, row by row.

    `a` and `b` are arrays or tensors of equal shape ``[N, ...]``; each row is flattened, the
    N cosines are averaged. A 1-D input is one vector. Two zero rows count as identical.
    """
    ta = _as_tensor(a).detach().double().cpu()
    tb = _as_tensor(b).detach().double().cpu()
    if ta.shape != tb.shape:
        raise InputError(f"cosine_similarity: shapes differ, {list(ta.shape)} vs {list(tb.shape)}")
    if ta.ndim <= 1:
        ta, tb = ta.reshape(1, -1), tb.reshape(1, -1)
    ta, tb = ta.reshape(ta.shape[0], -1), tb.reshape(tb.shape[0], -1)
    na, nb = ta.norm(dim=1), tb.norm(dim=1)
    cos = (ta * tb).sum(1) / (na * nb).clamp_min(eps)
    both_zero = (na <= eps) & (nb <= eps)
    cos = torch.where(both_zero, torch.ones_like(cos), cos)
    return float(cos.mean())


@torch.no_grad()
def predict(
    model: nn.Module,
    x: Any,
    *,
    batch_size: int = 1024,
    device: str | torch.device | None = "cpu",
) -> torch.Tensor:
    """The model's outputs on `x` (eval mode, batched), on the CPU."""
    dev = resolve_device(device)
    xt = _as_tensor(x)
    was_training = model.training
    model.eval()
    try:
        outs = [
            model(xt[i : i + batch_size].to(dev)).float().cpu()
            for i in range(0, len(xt), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    batch_size: int = 1024,
    device: str | torch.device | None = "cpu",
    topk: Sequence[int] = (1, 5),
) -> dict[int, float]:
    """Top-k accuracies (fractions in [0, 1]) of `model` on ``(x, y)``, keyed by k.

    `x`/`y` are numpy arrays or tensors; the model runs in eval mode and its mode is restored.
    A k larger than the number of classes counts every example as correct.
    """
    dev = resolve_device(device)
    xt, yt = _as_tensor(x), _as_tensor(y).long()
    if len(xt) != len(yt):
        raise InputError(f"evaluate: {len(xt)} inputs but {len(yt)} labels")
    if len(xt) == 0:
        raise InputError("evaluate: no examples")
    ks = sorted({int(k) for k in topk})
    correct = dict.fromkeys(ks, 0)
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(xt), batch_size):
            logits = model(xt[i : i + batch_size].to(dev, non_blocking=True))
            labels = yt[i : i + batch_size].to(logits.device)
            kmax = min(max(ks), logits.shape[-1])
            top = logits.topk(kmax, dim=-1).indices
            hit = top == labels[:, None]
            for k in ks:
                correct[k] += int(hit[:, : min(k, kmax)].any(dim=1).sum())
    finally:
        model.train(was_training)
    return {k: correct[k] / len(xt) for k in ks}


# --------------------------------------------------------------------------------------------
# augmentation


@dataclass(frozen=True)
class RandomCropFlip:
    """Random crop after zero padding by `padding` pixels, and a horizontal flip with
    probability one half; works on ``[B, C, H, W]`` batches on any device. Random numbers come
    from `generator`, which lives on the batch's device (no host-device copy per step)."""

    padding: int = 2
    flip: bool = True

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.padding
        if p > 0:
            padded = F.pad(x, (p, p, p, p))
            oy = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=x.device)
            ox = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=x.device)
            rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            batch = torch.arange(b, device=x.device)[:, None, None, None]
            chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[batch, chan, rows, cols]
        if self.flip:
            mask = torch.rand(b, generator=generator, device=x.device) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        return x


AUGMENTATIONS: dict[str, Callable[[], Augment]] = {
    "crop-flip": lambda: RandomCropFlip(padding=2, flip=True),
    "crop": lambda: RandomCropFlip(padding=2, flip=False),
}


# --------------------------------------------------------------------------------------------
# training


@dataclass
class FitResult:
    """What `fit` returns. Accuracies are fractions; `best_state` holds CPU copies."""

    best_accuracy: float
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    stopped_early: bool = False
    steps: int = 0
    wall_time: float = 0.0


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and kernels only: not on biases, norms, tokens, embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(("cls_token", "pos_embed")):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _make_optimizer(
    name: str, model: nn.Module, lr: float, weight_decay: float, device: torch.device
) -> torch.optim.Optimizer:
    groups = _param_groups(model, weight_decay)
    fused = device.type == "cuda"  # one kernel per step instead of several per tensor group
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=fused)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    raise InputError(f"unknown optimizer {name!r}: use adamw, adam or sgd")


def lr_at(
    step: int, total: int, lr: float, schedule: str, warmup: int, min_lr_ratio: float = 0.0
) -> float:
    """Learning rate of (0-based) `step` of `total`: linear warmup over `warmup` steps, then
    constant or cosine decay to ``lr * min_lr_ratio`` at the last step."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        span = max(1, total - warmup - 1)
        t = min(1.0, (step - warmup) / span)
        floor = lr * min_lr_ratio
        return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
    raise InputError(f"unknown schedule {schedule!r}: use cosine or constant")


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, label: str) -> Iterator[Callable[..., None]]:
    """Yields ``update(advance=1, **fields)``; a rich progress bar when `enabled`."""
    if not enabled:
        yield lambda advance=1, **fields: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(label, total=total, status="")

        def update(advance: int = 1, **fields: Any) -> None:
            status = " ".join(f"{k}={v}" for k, v in fields.items())
            if status:
                bar.update(task, advance=advance, status=status)
            else:
                bar.update(task, advance=advance)

        yield update


def fit(
    model: nn.Module,
    dataset: Any,
    *,
    epochs: float,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: str = "adamw",
    schedule: str = "cosine",
    warmup_epochs: float = 0.0,
    min_lr_ratio: float = 0.0,
    label_smoothing: float = 0.0,
    augment: Augment | str | None = None,
    device: str | torch.device | None = "cpu",
    early_stop_patience: int | None = None,
    seed: int = 0,
    eval_batch_size: int = 1024,
    restore_best: bool = True,
    progress: bool = True,
    label: str = "train",
) -> FitResult:
    """Train `model` on ``dataset.x_train/y_train``; evaluate top-1 on ``x_test/y_test`` after
    each epoch and keep the best state.

    The whole data set is moved to `device` once (no DataLoader workers); each epoch shuffles
    it with a CPU `torch.Generator` seeded from `seed` (the same order on every device) and
    drops the last partial batch. `augment(x, generator)` gets a generator on `device` seeded
    from `seed + 1`, so augmented runs are reproducible on one kind of device.
    `epochs` may be fractional (< 1 trains that share of one epoch's steps, at least one).
    The schedule is linear warmup over `warmup_epochs` then cosine decay (or constant).
    `augment` transforms each batch (a callable, or the name of one of `AUGMENTATIONS`).
    Training stops after `early_stop_patience` epochs without improvement, and on Ctrl-C
    (KeyboardInterrupt): the loop ends cleanly and the result is the best state so far
    (``interrupted=True``). With `restore_best`, the model holds the best state on return.
    """
    if epochs <= 0:
        raise InputError(f"epochs must be positive, got {epochs}")
    if batch_size < 1:
        raise InputError(f"batch_size must be positive, got {batch_size}")
    if isinstance(augment, str):
        if augment not in AUGMENTATIONS:
            raise InputError(f"unknown augmentation {augment!r}: use {sorted(AUGMENTATIONS)}")
        augment = AUGMENTATIONS[augment]()
    dev = resolve_device(device)
    torch.manual_seed(seed)  # dropout and any other global draws inside the model
    order_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=dev).manual_seed(seed + 1)

    x_train = _as_tensor(dataset.x_train, dev).float()
    y_train = _as_tensor(dataset.y_train, dev).long()
    x_test = _as_tensor(dataset.x_test, dev).float()
    y_test = _as_tensor(dataset.y_test, dev).long()
    n = len(x_train)
    if n == 0:
        raise InputError(f"data set {getattr(dataset, 'name', '?')!r} has no training examples")
    bs = min(batch_size, n)
    steps_per_epoch = n // bs
    total_steps = max(1, round(epochs * steps_per_epoch))
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    warmup = min(round(warmup_epochs * steps_per_epoch), total_steps - 1)

    model.to(dev)
    opt = _make_optimizer(optimizer, model, lr, weight_decay, dev)
    result = FitResult(best_accuracy=-1.0, best_epoch=-1, best_state={})
    start = time.perf_counter()
    step = 0
    since_best = 0

    def record_eval(epoch: int) -> float:
        acc = evaluate(model, x_test, y_test, batch_size=eval_batch_size, device=dev, topk=(1,))[1]
        if acc > result.best_accuracy:
            result.best_accuracy, result.best_epoch = acc, epoch
            result.best_state = _cpu_state(model)
        return acc

    with _progress_bar(progress, total_steps, label) as update:
        try:
            for epoch in range(n_epochs):
                model.train()
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=order_gen).to(dev)
                loss_sum = torch.zeros((), device=dev)
                correct = torch.zeros((), device=dev, dtype=torch.long)
                seen = 0
                for b in range(steps_per_epoch):
                    if step >= total_steps:
                        break
                    idx = perm[b * bs : (b + 1) * bs]
                    xb, yb = x_train[idx], y_train[idx]
                    if augment is not None:
                        xb = augment(xb, aug_gen)
                    rate = lr_at(step, total_steps, lr, schedule, warmup, min_lr_ratio)
                    for group in opt.param_groups:
                        group["lr"] = rate
                    logits = model(xb)
                    loss = cross_entropy(logits, yb, label_smoothing)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loss_sum += loss.detach() * len(yb)
                    correct += (logits.detach().argmax(-1) == yb).sum()
                    seen += len(yb)
                    step += 1
                    update(1)
                test_acc = record_eval(epoch)
                entry = {
                    "epoch": epoch + 1,
                    "train_loss": float(loss_sum) / max(seen, 1),
                    "train_acc": float(correct) / max(seen, 1),
                    "test_acc": test_acc,
                    "lr": rate,
                    "seconds": time.perf_counter() - t0,
                }
                result.history.append(entry)
                update(
                    0,
                    epoch=f"{epoch + 1}/{n_epochs}",
                    loss=f"{entry['train_loss']:.4f}",
                    test=f"{test_acc:.4f}",
                    best=f"{result.best_accuracy:.4f}",
                )
                since_best = 0 if result.best_epoch == epoch else since_best + 1
                if early_stop_patience is not None and since_best >= early_stop_patience:
                    result.stopped_early = True
                    break
        except KeyboardInterrupt:
            result.interrupted = True
            if not result.best_state:  # interrupted inside the first epoch: keep what we have
                with contextlib.suppress(KeyboardInterrupt):
                    record_eval(len(result.history))
                if not result.best_state:
                    result.best_state = _cpu_state(model)
    result.steps = step
    result.wall_time = time.perf_counter() - start
    if restore_best and result.best_state:
        model.load_state_dict(result.best_state)
    return result


# --------------------------------------------------------------------------------------------
# Hessian trace


def hutchinson_trace(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batch: tuple[Any, Any],
    params: Mapping[str, torch.Tensor] | Iterable[str] | None = None,
    samples: int = 64,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Hutchinson estimate of the Hessian trace of ``loss_fn(model(x), y)`` per parameter tensor.

    ``tr(H_p) ~ mean_i z_i^T H_p z_i`` with Rademacher `z_i` drawn from the CPU `generator`
    (a fresh one seeded 0 when None), and Hessian-vector products by double backprop over the
    diagonal block of each tensor. `params` is a mapping name -> parameter, an iterable of
    parameter names, or None for every parameter that requires grad. `batch` is ``(x, y)``
    already on the model's device.
    """
    named = dict(model.named_parameters())
    if params is None:
        chosen = {k: p for k, p in named.items() if p.requires_grad}
    elif isinstance(params, Mapping):
        chosen = dict(params)
    else:
        chosen = {}
        for k in params:
            if k not in named:
                raise InputError(f"hutchinson_trace: model has no parameter {k!r}")
            chosen[k] = named[k]
    if not chosen:
        raise InputError("hutchinson_trace: no parameters to estimate")
    if samples < 1:
        raise InputError(f"hutchinson_trace: samples must be positive, got {samples}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    names, tensors = list(chosen), list(chosen.values())
    x, y = batch
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, tensors, create_graph=True, allow_unused=True)
    totals = dict.fromkeys(names, 0.0)
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    for _ in range(samples):
        zs = [
            (torch.randint(0, 2, tensors[i].shape, generator=gen) * 2 - 1).to(
                tensors[i].device, tensors[i].dtype
            )
            for i in live
        ]
        if not live:
            break
        hvs = torch.autograd.grad(
            [grads[i] for i in live],
            [tensors[i] for i in live],
            grad_outputs=zs,
            retain_graph=True,
            allow_unused=True,
        )
        for i, z, hv in zip(live, zs, hvs, strict=True):
            if hv is not None:
                totals[names[i]] += float((z * hv).sum())
    return {k: v / samples for k, v in totals.items()}


# --------------------------------------------------------------------------------------------
# per-layer capture


class RunningStats:
    """Running statistics of a tensor stream along one feature axis (float64 accumulators on
    the tensor's device): count of feature vectors, mean, variance, min, max, mean |x|, and
    optionally the uncentered Gram matrix ``X^T X`` (features x features)."""

    def __init__(self, feature_axis: int, gram: bool = False):
        self.feature_axis = feature_axis
        self.want_gram = gram
        self.count = 0
        self.sum: torch.Tensor | None = None
        self.sumsq: torch.Tensor | None = None
        self.abssum: torch.Tensor | None = None
        self.min: torch.Tensor | None = None
        self.max: torch.Tensor | None = None
        self.gram: torch.Tensor | None = None
        self.shape: tuple[int, ...] | None = None

    def update(self, t: torch.Tensor) -> None:
        t = t.detach()
        self.shape = tuple(t.shape)
        axis = self.feature_axis % t.ndim if t.ndim else 0
        rows = t.movedim(axis, -1).reshape(-1, t.shape[axis] if t.ndim else 1).double()
        if self.sum is None:
            f = rows.shape[1]
            self.sum = rows.new_zeros(f)
            self.sumsq = rows.new_zeros(f)
            self.abssum = rows.new_zeros(f)
            self.min = rows.new_full((f,), math.inf)
            self.max = rows.new_full((f,), -math.inf)
            if self.want_gram:
                self.gram = rows.new_zeros(f, f)
        self.count += rows.shape[0]
        self.sum += rows.sum(0)
        self.sumsq += (rows * rows).sum(0)
        self.abssum += rows.abs().sum(0)
        self.min = torch.minimum(self.min, rows.min(0).values)
        self.max = torch.maximum(self.max, rows.max(0).values)
        if self.gram is not None:
            self.gram += rows.T @ rows

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / max(self.count, 1)

    @property
    def var(self) -> torch.Tensor:
        """Population variance per feature."""
        return (self.sumsq / max(self.count, 1) - self.mean**2).clamp_min(0.0)

    @property
    def abs_mean(self) -> torch.Tensor:
        return self.abssum / max(self.count, 1)

    @property
    def abs_max(self) -> torch.Tensor:
        return torch.maximum(self.min.abs(), self.max.abs())


@dataclass
class LayerRecord:
    """What `LayerCapture` recorded for one module. Samples are CPU tensors, at most
    `max_samples` rows (batch entries) each, in the order seen."""

    name: str
    module_type: str
    input_stats: RunningStats | None = None
    output_stats: RunningStats | None = None
    grad_stats: RunningStats | None = None
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    grad_outputs: list[torch.Tensor] = field(default_factory=list)
    calls: int = 0

    @staticmethod
    def _cat(parts: list[torch.Tensor]) -> torch.Tensor | None:
        return torch.cat(parts) if parts else None

    @property
    def input_samples(self) -> torch.Tensor | None:
        return self._cat(self.inputs)

    @property
    def output_samples(self) -> torch.Tensor | None:
        return self._cat(self.outputs)

    @property
    def grad_samples(self) -> torch.Tensor | None:
        return self._cat(self.grad_outputs)


_CHANNELS_FIRST = (
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            if isinstance(v, torch.Tensor):
                return v
    return None


class LayerCapture:
    """Context manager recording per-layer inputs and outputs, and optionally gradients with
    respect to layer outputs, through hooks on named modules.

    `layers` names the modules (``"blocks.0.attn.qkv"``); by default every Linear and Conv
    module. Memory is bounded: running statistics (`RunningStats`, along the channel axis for
    conv/BN/pool modules and the last axis otherwise; with `gram`, also ``X^T X`` of inputs)
    plus at most `max_samples` raw rows per stream, kept on the CPU. With `grads`, full
    backward hooks record ``dL/d output`` whenever the caller runs ``loss.backward()`` inside
    the context (the captured modules must not be followed by in-place operations on their
    outputs). Hooks are removed on exit; `records` stays readable.

        with LayerCapture(model, ["fc1"], grads=True) as cap:
            loss_fn(model(x), y).backward()
        cap.records["fc1"].input_stats.mean
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str] | None = None,
        *,
        inputs: bool = True,
        outputs: bool = True,
        grads: bool = False,
        stats: bool = True,
        gram: bool = False,
        max_samples: int = 0,
    ):
        modules = dict(model.named_modules())
        if layers is None:
            names = [
                k for k, m in modules.items() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))
            ]
        else:
            names = list(layers)
            unknown = [k for k in names if k not in modules]
            if unknown:
                raise InputError(
                    f"LayerCapture: the model has no module named {unknown}; its modules are "
                    f"{[k for k in modules if k][:20]}..."
                )
        if max_samples < 0:
            raise InputError(f"LayerCapture: max_samples must be >= 0, got {max_samples}")
        self.model = model
        self.modules = {k: modules[k] for k in names}
        self.want_inputs, self.want_outputs, self.want_grads = inputs, outputs, grads
        self.want_stats, self.want_gram, self.max_samples = stats, gram, max_samples
        self.records: dict[str, LayerRecord] = {}
        self._handles: list[Any] = []

    def _stats(self, module: nn.Module, gram: bool = False) -> RunningStats | None:
        if not self.want_stats:
            return None
        return RunningStats(1 if isinstance(module, _CHANNELS_FIRST) else -1, gram=gram)

    def _keep(self, store: list[torch.Tensor], t: torch.Tensor) -> None:
        have = sum(len(s) for s in store)
        room = self.max_samples - have
        if room > 0:
            piece = t.detach()[:room] if t.ndim else t.detach().reshape(1)
            store.append(piece.to("cpu", copy=True))

    def __enter__(self) -> LayerCapture:
        for name, module in self.modules.items():
            rec = LayerRecord(name, type(module).__name__)
            if self.want_inputs:
                rec.input_stats = self._stats(module, gram=self.want_gram)
            if self.want_outputs:
                rec.output_stats = self._stats(module)
            if self.want_grads:
                rec.grad_stats = self._stats(module)
            self.records[name] = rec
            self._handles.append(module.register_forward_hook(self._forward_hook(rec)))
            if self.want_grads:
                self._handles.append(module.register_full_backward_hook(self._backward_hook(rec)))
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove all hooks (also done on leaving the context)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _forward_hook(self, rec: LayerRecord) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            rec.calls += 1
            if self.want_inputs:
                x = _first_tensor(args)
                if x is not None:
                    if rec.input_stats is not None:
                        rec.input_stats.update(x)
                    self._keep(rec.inputs, x)
            if self.want_outputs:
                y = _first_tensor(output)
                if y is not None:
                    if rec.output_stats is not None:
                        rec.output_stats.update(y)
                    self._keep(rec.outputs, y)

        return hook

    def _backward_hook(self, rec: LayerRecord) -> Callable[..., None]:
        def hook(module: nn.Module, grad_input: Any, grad_output: Any) -> None:
            g = _first_tensor(grad_output)
            if g is not None:
                if rec.grad_stats is not None:
                    rec.grad_stats.update(g)
                self._keep(rec.grad_outputs, g)

        return hook
