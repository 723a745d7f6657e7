"""Reference architectures, their registry, the training script and `load_reference`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ircomp.errors import InputError
from ircomp.train.data import FASHION_MNIST_DEFAULT_ROOT, fashion_mnist_root
from ircomp.train.zoo import REFERENCES, build_model, load_reference, model_config

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "reference" / "train_reference.py"
SHAPES = {
    "digits": {"in_channels": 1, "image_size": 8, "classes": 10},
    "fashion-mnist": {"in_channels": 1, "image_size": 28, "classes": 10},
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_every_reference_runs_forward(name):
    shape = SHAPES[REFERENCES[name].dataset]
    torch.manual_seed(0)
    model = build_model(name, shape).eval()
    size = shape["image_size"]
    with torch.no_grad():
        out = model(torch.rand(3, 1, size, size))
    assert out.shape == (3, 10)
    assert all(not isinstance(m, torch.nn.MultiheadAttention) for m in model.modules())


def test_vit_layout_and_size():
    model = build_model("vit-fmnist", SHAPES["fashion-mnist"])
    names = dict(model.named_modules())
    for n in ("patch_embed.proj", "blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.norm1",
              "blocks.0.mlp.fc1", "blocks.0.mlp.fc2", "norm", "head"):  # fmt: skip
        assert n in names, n
    assert model.pos_embed.shape == (1, 49 + 1, model.head.in_features)
    assert names["patch_embed.proj"].stride == (4, 4)
    nbytes = sum(p.numel() * 4 for p in model.parameters())
    assert nbytes <= 6 * 1024 * 1024


def test_resnet8_stages():
    model = build_model("resnet8", SHAPES["fashion-mnist"])
    assert model.stages[1].conv1.stride == (2, 2) and model.stages[2].conv1.stride == (2, 2)
    assert [model.stages[i].conv2.out_channels for i in range(3)] == [16, 32, 64]


def test_build_model_is_seeded_and_names_are_checked():
    torch.manual_seed(1)
    a = build_model("cnn-digits", SHAPES["digits"])
    torch.manual_seed(1)
    b = build_model("cnn-digits", SHAPES["digits"])
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert model_config("mlp", SHAPES["digits"])["kwargs"]["in_features"] == 64
    with pytest.raises(InputError, match="unknown model"):
        build_model("gpt-fmnist", SHAPES["digits"])


def test_load_reference_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"train_reference\.py"):
        load_reference("mlp-digits", tmp_path)


def _script():
    spec = importlib.util.spec_from_file_location("train_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not any(fashion_mnist_root().glob("train-images-idx3-ubyte*")),
    reason=f"Fashion-MNIST not installed in {FASHION_MNIST_DEFAULT_ROOT} "
    "(apt-get install dataset-fashion-mnist, or set $IRCOMP_FASHION_MNIST)",
)
def test_train_reference_end_to_end(tmp_path):
    script = _script()
    # --limit keeps the CPU run short (a tenth of a ViT epoch on 60,000 images takes a minute)
    args = script.parse_args(
        ["--epochs-scale", "0.002", "--models", "mlp-digits,vit-fmnist", "--out", str(tmp_path),
         "--device", "cpu", "--no-progress", "--limit", "512"]
    )  # fmt: skip
    results = script.run(args)
    assert set(results) == {"mlp-digits", "vit-fmnist"}
    for name, (model, record) in results.items():
        meta = json.loads((tmp_path / f"{name}.json").read_text())
        for key in ("architecture", "dataset", "seed", "epochs", "test_accuracy", "wall_time_s",
                    "device", "torch_version", "weights_dtype"):  # fmt: skip
            assert key in meta, key
        assert set(meta["test_accuracy"]) == {"top1", "top5"}
        assert meta["weights_dtype"] == "float32"
        weights = load_file(str(tmp_path / f"{name}.safetensors"))
        assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
        restored = load_reference(name, tmp_path)
        size = meta["input_shape"][-1]
        x = torch.rand(4, 1, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(restored(x), model.eval()(x))
        assert record["test_accuracy"] == meta["test_accuracy"]
    assert script.main(["--models", "nope", "--out", str(tmp_path)]) == 2


def test_large_weights_are_stored_as_float16(tmp_path):
    script = _script()
    model = torch.nn.Linear(1100, 1000)  # 4.4 MB as float32
    dtype = script.save_weights(model, tmp_path / "big.safetensors", {"name": "big"})
    assert dtype == "float16"
    assert load_file(str(tmp_path / "big.safetensors"))["weight"].dtype == torch.float16
