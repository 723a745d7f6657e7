"""Small models for frontend tests: random seeded weights, no downloads.

Each entry of `ZOO` builds a model in eval mode and its example inputs:

    model, inputs = ZOO["vit"]()

Models stay small (well under 1M parameters) so that importing every one through torch.export
and through `torch.onnx.export` and running the golden interpreter takes seconds. Layer names
follow the usual PyTorch layouts (`blocks.0.attn.qkv` in the ViT, `layer1.0.conv1` in the
ResNet) so tests can check that op names carry module paths.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

SEED = 0


def _randomize_batchnorm(model: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters, so batch norm really computes."""
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            with torch.no_grad():
                mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                mod.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                mod.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                mod.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def _finish(model: nn.Module, *shapes: tuple[int, ...]) -> tuple[nn.Module, tuple]:
    gen = torch.Generator().manual_seed(SEED + 1)
    _randomize_batchnorm(model, gen)
    model.eval()
    inputs = tuple(torch.randn(*s, generator=gen) for s in shapes)
    return model, inputs


# ---- MLP ----------------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(self, sizes: tuple[int, ...] = (64, 128, 64, 10)) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def mlp() -> tuple[nn.Module, tuple]:
    torch.manual_seed(SEED)
    return _finish(MLP(), (2, 64))


# ---- LeNet-5 ------------------------------------------------------------------------------


class LeNet5(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.pool1 = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(torch.tanh(self.conv1(x)))
        x = self.pool2(torch.sigmoid(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def lenet5() -> tuple[nn.Module, tuple]:
    torch.manual_seed(SEED)
    return _finish(LeNet5(), (2, 1, 28, 28))


# ---- ResNet-style CNN -----------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNetSmall(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet() -> tuple[nn.Module, tuple]:
    torch.manual_seed(SEED)
    return _finish(ResNetSmall(), (2, 3, 32, 32))


# ---- MobileNetV2-style inverted residuals --------------------------------------------------


class InvertedResidual(nn.Module):
    """1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1 linear projection, residual if it fits."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, clamp: bool = False) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.clamp = clamp
        self.expand = nn.Conv2d(cin, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act1 = nn.ReLU6()
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.expand(x)))
        out = self.bn2(self.depthwise(out))
        # ReLU6 written both ways: nn.ReLU6 (hardtanh) and torch.clamp.
        out = torch.clamp(out, 0.0, 6.0) if self.clamp else F.relu6(out)
        out = self.bn3(self.project(out))
        return x + out if self.use_res else out


class MobileNetV2Small(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()
        )
        self.features = nn.Sequential(
            InvertedResidual(16, 16, 1, 4),
            InvertedResidual(16, 24, 2, 4, clamp=True),
            InvertedResidual(24, 24, 1, 4, clamp=True),
        )
        # A dilated conv keeps the dilation mapping honest.
        self.head = nn.Conv2d(24, 64, 3, padding=2, dilation=2)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.head(self.features(self.stem(x))))
        return self.classifier(self.pool(x).flatten(1))


def mobilenetv2() -> tuple[nn.Module, tuple]:
    torch.manual_seed(SEED)
    return _finish(MobileNetV2Small(), (2, 3, 32, 32))


# ---- VGG-style stack --------------------------------------------------------------------------


class VGGSmall(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        cfg = [16, 16, "M", 32, 32, "M", 64, "M"]
        layers: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(v, int)
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(64 * 4 * 4, 128),
            nn.ReLU(True),
            nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


def vgg() -> tuple[nn.Module, tuple]:
    torch.manual_seed(SEED)
    return _finish(VGGSmall(), (2, 3, 32, 32))


# ---- DeiT-Tiny-style ViT ------------------------------------------------------------------


class Attention(nn.Module):
    """timm's multi-head self-attention, written out with Linear/reshape/permute/matmul."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, approximate: str = "none") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate=approximate)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, approximate: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden, approximate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTTiny(nn.Module):
    def __init__(
        self,
        image: int = 32,
        patch: int = 8,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        hidden: int = 128,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        num_patches = (image // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, dim) * 0.02)
        # The first block uses exact (erf) GELU, the second the tanh approximation.
        self.blocks = nn.Sequential(
            *(Block(dim, heads, hidden, "none" if i % 2 == 0 else "tanh") for i in range(depth))
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit() -> tuple[nn.Module, tuple]:
    torch.manual_seed(SEED)
    return _finish(ViTTiny(), (2, 3, 32, 32))


# ---- BERT-style encoder layer -------------------------------------------------------------


class BertEmbeddings(nn.Module):
    def __init__(self, vocab: int, dim: int, max_positions: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(max_positions, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-12)
        self.dropout = nn.Dropout(0.1)
        self.register_buffer("position_ids", torch.arange(max_positions).unsqueeze(0))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq = input_ids.shape[1]
        positions = self.position_ids[:, :seq]
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(0.1)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = self.split_heads(self.query(x))
        k = self.split_heads(self.key(x))
        v = self.split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        probs = self.dropout(F.softmax(scores + mask, dim=-1))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.shape[0], ctx.shape[1], -1)


class BertLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.attention = BertSelfAttention(dim, heads)
        self.attention_output = nn.Linear(dim, dim)
        self.attention_norm = nn.LayerNorm(dim, eps=1e-12)
        self.intermediate = nn.Linear(dim, hidden)
        self.output = nn.Linear(hidden, dim)
        self.output_norm = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.attention_output(self.attention(x, mask)))
        ffn = self.output(F.gelu(self.intermediate(x)))
        return self.output_norm(x + ffn)


class BertEncoder(nn.Module):
    """Embeddings + one encoder layer + a tanh pooler on the first token."""

    def __init__(
        self, vocab: int = 100, dim: int = 64, heads: int = 4, hidden: int = 128, max_pos: int = 32
    ) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, dim, max_pos)
        self.layer = nn.ModuleList([BertLayer(dim, heads, hidden)])
        self.pooler = nn.Linear(dim, dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # The usual additive mask: 0 where attended, -10000 where masked.
        mask = (1.0 - attention_mask[:, None, None, :]) * -10000.0
        x = self.embeddings(input_ids)
        for layer in self.layer:
            x = layer(x, mask)
        return torch.tanh(self.pooler(x[:, 0]))


def bert_inputs(batch: int, seq: int = 16, vocab: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(SEED + 2)
    # int32 ids: the ONNX frontend (like ircomp) holds integers of at most 32 bits, so an int64
    # graph input is refused there; nn.Embedding takes int32 indices as well.
    ids = torch.randint(0, vocab, (batch, seq), generator=gen, dtype=torch.int32)
    mask = torch.ones(batch, seq)
    mask[0, seq - 4 :] = 0.0  # padding at the end of the first sequence
    return ids, mask


def bert() -> tuple[nn.Module, tuple]:
    torch.manual_seed(SEED)
    model = BertEncoder().eval()
    return model, bert_inputs(2)


def random_inputs(example: tuple, batch: int, seed: int = 7) -> tuple:
    """Inputs like `example` with another batch size (token ids stay in the vocabulary)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in example:
        shape = (batch, *t.shape[1:])
        if t.dtype.is_floating_point:
            if set(t.unique().tolist()) <= {0.0, 1.0}:
                out.append(torch.ones(shape))  # an attention mask
            else:
                out.append(torch.randn(*shape, generator=gen))
        else:
            out.append(torch.randint(0, int(t.max()) + 1, shape, generator=gen, dtype=t.dtype))
    return tuple(out)


ZOO: dict[str, Callable[[], tuple[nn.Module, tuple]]] = {
    "mlp": mlp,
    "lenet5": lenet5,
    "resnet": resnet,
    "mobilenetv2": mobilenetv2,
    "vgg": vgg,
    "vit": vit,
    "bert": bert,
}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
