"""Reference architectures as plain `torch.nn.Module`s, their configurations, and loading of
the trained reference weights written by ``examples/reference/train_reference.py``.

Module names are meant to be read by people and by passes: ``stem.conv``, ``stages.1.conv2``,
``blocks.3.attn.qkv``, ``head``. The ViT's attention is written with `nn.Linear`, `matmul` and
`softmax` (no `nn.MultiheadAttention`, no fused attention) so that an importer sees plain ops.
No module works in place (full backward hooks, see `LayerCapture`, refuse in-place outputs).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ircomp.errors import InputError

__all__ = [
    "ARCHITECTURES",
    "MLP",
    "REFERENCES",
    "REFERENCE_DIR_ENV",
    "ResNet8",
    "SmallCNN",
    "TrainRecipe",
    "ViT",
    "build_model",
    "load_reference",
    "model_config",
    "model_from_config",
    "reference_dir",
]


# --------------------------------------------------------------------------------------------
# architectures


class MLP(nn.Module):
    """Flatten, then ``Linear -> ReLU`` per hidden width, then a ``head`` Linear."""

    def __init__(self, in_features: int, hidden: list[int], classes: int, dropout: float = 0.0):
        super().__init__()
        self.flatten = nn.Flatten()
        self.layers = nn.ModuleList()
        self.acts = nn.ModuleList()
        width = in_features
        for h in hidden:
            self.layers.append(nn.Linear(width, h))
            self.acts.append(nn.ReLU())
            width = h
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        for layer, act in zip(self.layers, self.acts, strict=True):
            x = act(layer(x))
        return self.head(self.dropout(x))


class ConvBNReLU(nn.Module):
    """``conv`` (no bias) -> ``bn`` -> ``relu``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ConvStage(ConvBNReLU):
    """`ConvBNReLU` followed by a 2x2 max ``pool``."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


class SmallCNN(nn.Module):
    """``features.i`` = conv3x3 + BN + ReLU + maxpool2 per entry of `channels`, then ``head``."""

    def __init__(
        self,
        in_channels: int,
        channels: list[int],
        classes: int,
        image_size: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        stages, cin, size = [], in_channels, image_size
        for c in channels:
            stages.append(ConvStage(cin, c))
            cin, size = c, size // 2
        if size < 1:
            raise InputError(f"SmallCNN: {len(channels)} pools do not fit a {image_size}px image")
        self.features = nn.Sequential(*stages)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(cin * size * size, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.flatten(self.features(x))))


class Shortcut(nn.Module):
    """1x1 strided ``conv`` + ``bn`` projection for a residual block that changes shape."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    """``conv1 -> bn1 -> relu1 -> conv2 -> bn2``, plus the (projected) input, then ``relu2``."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = Shortcut(cin, cout, stride) if stride != 1 or cin != cout else nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + self.shortcut(x))


class ResNet8(nn.Module):
    """MLPerf-Tiny style ResNet-8: ``stem`` (conv3x3, BN, ReLU), three residual ``stages`` of
    one basic block each (stride 2 at stages 2 and 3), global average ``pool``, ``head``."""

    def __init__(
        self,
        in_channels: int,
        classes: int,
        widths: tuple[int, int, int] | list[int] = (16, 32, 64),
    ):
        super().__init__()
        widths = list(widths)
        if len(widths) != 3:
            raise InputError(f"ResNet8 needs three stage widths, got {widths}")
        self.stem = ConvBNReLU(in_channels, widths[0])
        self.stages = nn.Sequential(
            BasicBlock(widths[0], widths[0], 1),
            BasicBlock(widths[0], widths[1], 2),
            BasicBlock(widths[1], widths[2], 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(widths[2], classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flatten(self.pool(self.stages(self.stem(x)))))


class PatchEmbed(nn.Module):
    """Non-overlapping patches: ``proj`` = Conv2d(kernel=stride=patch), then flatten to tokens."""

    def __init__(self, in_channels: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, N, dim]


class Attention(nn.Module):
    """Multi-head self-attention from plain ops: one ``qkv`` Linear, matmul, softmax, ``proj``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise InputError(f"ViT: dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, heads, N, head_dim]
        attn = self.softmax(torch.matmul(q * self.scale, k.transpose(-2, -1)))
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class FeedForward(nn.Module):
    """``fc1 -> act (GELU) -> fc2``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Vision transformer in the DeiT-Tiny layout: ``patch_embed``, ``cls_token``,
    ``pos_embed``, pre-norm ``blocks``, final ``norm``, ``head`` on the cls token."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        classes: int,
        patch: int = 4,
        dim: int = 192,
        depth: int = 12,
        heads: int = 3,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        if image_size % patch:
            raise InputError(f"ViT: image size {image_size} is not a multiple of patch {patch}")
        num_patches = (image_size // patch) ** 2
        self.patch_embed = PatchEmbed(in_channels, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "cnn": SmallCNN,
    "resnet8": ResNet8,
    "vit": ViT,
}


# --------------------------------------------------------------------------------------------
# configurations


@dataclass(frozen=True)
class TrainRecipe:
    """How a reference model is trained (arguments of `ircomp.train.fit.fit`)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    augment: str | None = None  # "crop-flip": random crop with padding 2 + horizontal flip
    early_stop_patience: int | None = None


@dataclass(frozen=True)
class Reference:
    """A reference model: architecture, its keyword arguments beyond the data set's shape,
    the data set it is trained on, and the training recipe."""

    arch: str
    dataset: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    recipe: TrainRecipe | None = None


REFERENCES: dict[str, Reference] = {
    "mlp-digits": Reference(
        "mlp", "digits", {"hidden": [256, 128]},
        TrainRecipe(epochs=60, batch_size=32, lr=2e-3, weight_decay=1e-4, warmup_epochs=2,
                    label_smoothing=0.1),
    ),
    "cnn-digits": Reference(
        "cnn", "digits", {"channels": [16, 32]},
        TrainRecipe(epochs=60, batch_size=64, lr=2e-3, weight_decay=1e-4, warmup_epochs=2),
    ),
    "mlp-fmnist": Reference(
        "mlp", "fashion-mnist", {"hidden": [256, 128]},
        TrainRecipe(epochs=30, batch_size=256, lr=1e-3, weight_decay=1e-4, warmup_epochs=1,
                    label_smoothing=0.1),
    ),
    "cnn-fmnist": Reference(
        "cnn", "fashion-mnist", {"channels": [32, 64, 64]},
        TrainRecipe(epochs=30, batch_size=256, lr=2e-3, weight_decay=5e-4, warmup_epochs=1,
                    label_smoothing=0.1, augment="crop-flip"),
    ),
    "resnet8-fmnist": Reference(
        "resnet8", "fashion-mnist", {"widths": [16, 32, 64]},
        TrainRecipe(epochs=40, batch_size=256, lr=3e-3, weight_decay=5e-4, warmup_epochs=2,
                    label_smoothing=0.1, augment="crop-flip"),
    ),
    "vit-fmnist": Reference(
        "vit", "fashion-mnist",
        {"patch": 4, "dim": 128, "depth": 6, "heads": 4, "mlp_ratio": 2.0},
        TrainRecipe(epochs=40, batch_size=512, lr=1.5e-3, weight_decay=0.05, warmup_epochs=3,
                    label_smoothing=0.1, augment="crop-flip"),
    ),
}  # fmt: skip


def _data_shape(dataset: Any) -> tuple[int, int, int]:
    """(channels, image size, classes) of a `Dataset`, or of a dict with those keys."""
    if isinstance(dataset, dict):
        return int(dataset["in_channels"]), int(dataset["image_size"]), int(dataset["classes"])
    shape = tuple(dataset.x_train.shape[1:])
    if len(shape) != 3 or shape[1] != shape[2]:
        raise InputError(
            f"data set {dataset.name!r}: expected square images [C, H, W], got {list(shape)}"
        )
    return int(shape[0]), int(shape[1]), int(dataset.num_classes)


def model_config(name: str, dataset: Any) -> dict[str, Any]:
    """The architecture configuration (``{"arch": ..., "kwargs": ...}``) that `build_model`
    uses: `name` is a reference (``"vit-fmnist"``) or an architecture (``"vit"``); the input
    shape and class count come from `dataset`."""
    if name in REFERENCES:
        ref = REFERENCES[name]
        arch, extra = ref.arch, dict(ref.kwargs)
    elif name in ARCHITECTURES:
        # An architecture alone takes the first reference's settings for it.
        ref = next(r for r in REFERENCES.values() if r.arch == name)
        arch, extra = name, dict(ref.kwargs)
    else:
        raise InputError(
            f"unknown model {name!r}: use one of {sorted(REFERENCES)} or {sorted(ARCHITECTURES)}"
        )
    channels, size, classes = _data_shape(dataset)
    if arch == "mlp":
        kwargs = {"in_features": channels * size * size, **extra, "classes": classes}
    elif arch == "cnn":
        kwargs = {"in_channels": channels, **extra, "classes": classes, "image_size": size}
    elif arch == "resnet8":
        kwargs = {"in_channels": channels, "classes": classes, **extra}
    else:
        kwargs = {"in_channels": channels, "image_size": size, "classes": classes, **extra}
    return {"arch": arch, "kwargs": kwargs}


def model_from_config(config: dict[str, Any]) -> nn.Module:
    """Build a model from a configuration written by `model_config`."""
    try:
        cls = ARCHITECTURES[config["arch"]]
        return cls(**config["kwargs"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"bad architecture configuration {config!r}: {exc}") from exc


def build_model(name: str, dataset: Any) -> nn.Module:
    """A freshly initialized model (seed torch first for reproducible weights)."""
    return model_from_config(model_config(name, dataset))


def recipe_dict(recipe: TrainRecipe) -> dict[str, Any]:
    return asdict(recipe)


# --------------------------------------------------------------------------------------------
# trained references

REFERENCE_DIR_ENV = "IRCOMP_REFERENCE_DIR"


def reference_dir() -> Path:
    """Where trained references live: ``$IRCOMP_REFERENCE_DIR``, else ``examples/reference``
    of the source tree."""
    env = os.environ.get(REFERENCE_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "examples" / "reference"


def load_reference(
    name: str, directory: str | os.PathLike | None = None, *, device: str = "cpu"
) -> nn.Module:
    """Build reference `name` from ``<name>.json`` and load ``<name>.safetensors`` (stored as
    float32 or float16; loaded into float32 parameters). Returns the model in eval mode."""
    from safetensors.torch import load_file

    root = Path(directory) if directory is not None else reference_dir()
    meta_path, weights_path = root / f"{name}.json", root / f"{name}.safetensors"
    for p in (meta_path, weights_path):
        if not p.is_file():
            raise InputError(
                f"{p}: no such file; train the reference with "
                f"`python examples/reference/train_reference.py --models {name} --out {root}`"
            )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_path}: unreadable: {exc}") from exc
    if "architecture" not in meta:
        raise InputError(f"{meta_path}: no 'architecture' entry")
    model = model_from_config(meta["architecture"])
    state = load_file(str(weights_path), device="cpu")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"{weights_path}: does not match {meta_path}: missing {missing}, unexpected "
            f"{unexpected}"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise InputError(
                f"{weights_path}: {key} has shape {list(value.shape)}, the architecture "
                f"wants {list(expected[key].shape)}"
            )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.to(device).eval()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_nbytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())
