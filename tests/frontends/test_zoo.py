"""The model zoo through both frontends, checked against torch and onnxruntime.

Every model in `zoo.ZOO` is imported from the `nn.Module` (torch.export frontend) and from its
`torch.onnx.export` file (ONNX frontend); the golden interpreter's outputs must match torch's
eval outputs and onnxruntime's at rtol 1e-4, atol 1e-5. Max abs errors go to stdout
(`pytest -s`) for the report.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from xdsl.dialects.builtin import DYNAMIC_INDEX
from zoo import ZOO, parameter_count, random_inputs

from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.frontends import torch as torch_frontend
from ircomp.interpreter import run
from ircomp.ir.program import (
    Program,
    load_program,
    parse_module,
    print_module,
    save_program,
)

RTOL, ATOL = 1e-4, 1e-5
NAMES = sorted(ZOO)
# The ViT's `cls_token.expand(batch, -1, -1)` needs an expand to the run-time batch size, which a
# static-shape nn.expand cannot state: the frontend refuses it clearly.
DYNAMIC_BATCH_REFUSED = {"vit": r"aten\.expand.*run-time batch size"}


def _numpy(inputs: tuple) -> list[np.ndarray]:
    return [t.numpy() for t in inputs]


def _torch_outputs(model: torch.nn.Module, inputs: tuple) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*inputs)
    outs = out if isinstance(out, tuple | list) else (out,)
    return [o.numpy() for o in outs]


def _assert_close(got: list[np.ndarray], want: list[np.ndarray], what: str) -> float:
    assert len(got) == len(want), what
    worst = 0.0
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape, f"{what}: shape {g.shape} vs {w.shape}"
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=what)
        worst = max(worst, float(np.abs(g.astype(np.float64) - w).max()))
    return worst


@functools.cache
def _imported(name: str) -> tuple[torch.nn.Module, tuple, Program]:
    model, inputs = ZOO[name]()
    return model, inputs, torch_frontend.load(model, inputs)


@pytest.fixture(scope="module")
def torch_programs() -> Any:
    """name -> (model, example inputs, Program from the torch frontend), imported once."""

    class Lazy:
        def __getitem__(self, name: str) -> tuple:
            return _imported(name)

    return Lazy()


def test_zoo_models_are_small() -> None:
    for name in NAMES:
        model, _ = ZOO[name]()
        assert parameter_count(model) < 1_000_000, name


@pytest.mark.parametrize("name", NAMES)
def test_torch_frontend_matches_torch(name: str, torch_programs: Any) -> None:
    model, inputs, program = torch_programs[name]
    got = run(program, _numpy(inputs))
    err = _assert_close(got, _torch_outputs(model, inputs), f"{name}: interpreter vs torch")
    print(f"\n{name}: torch frontend, max abs error vs torch = {err:.3g}")


@pytest.mark.parametrize("name", NAMES)
def test_dynamic_batch(name: str) -> None:
    model, inputs = ZOO[name]()
    if name in DYNAMIC_BATCH_REFUSED:
        with pytest.raises(InputError, match=DYNAMIC_BATCH_REFUSED[name]):
            torch_frontend.load(model, inputs, dynamic_batch=True)
        return
    program = torch_frontend.load(model, inputs, dynamic_batch=True)
    main = next(iter(program.module.ops))
    for t in (*main.function_type.inputs, *main.function_type.outputs):  # type: ignore[attr-defined]
        assert t.get_shape()[0] == DYNAMIC_INDEX, f"{name}: {t}"
    for batch in (1, 3):
        batch_inputs = random_inputs(inputs, batch)
        got = run(program, _numpy(batch_inputs))
        assert got[0].shape[0] == batch
        _assert_close(got, _torch_outputs(model, batch_inputs), f"{name} batch {batch}")


@pytest.mark.parametrize(
    ("name", "layer", "op"),
    [
        ("vit", "blocks.0.attn.qkv", "nn.linear"),
        ("vit", "blocks.1.mlp.fc2", "nn.linear"),
        ("vit", "patch_embed", "nn.conv2d"),
        ("vit", "blocks.0.norm1", "nn.layernorm"),
        ("vit", "blocks.0.attn", "nn.softmax"),
        ("bert", "layer.0.attention.query", "nn.linear"),
        ("bert", "embeddings.LayerNorm", "nn.layernorm"),
        ("resnet", "layer2.0.downsample.0", "nn.conv2d"),
        ("resnet", "layer1.1.bn2", "nn.batchnorm"),
        ("mobilenetv2", "features.1.depthwise", "nn.conv2d"),
        ("lenet5", "pool2", "nn.maxpool2d"),
    ],
)
def test_op_names_carry_module_paths(name: str, layer: str, op: str, torch_programs: Any) -> None:
    program = torch_programs[name][2]
    named = {(o.name, nn.op_name(o)) for o in program.module.walk()}
    assert (op, layer) in named, sorted(n for n in named if n[1] and n[1].startswith(layer))


def test_weights_keep_state_dict_names(torch_programs: Any) -> None:
    model, _, program = torch_programs["resnet"]
    names = {w.weight_name.data for w in program.weight_ops()}
    state = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert names == state
    for w in program.weight_ops():
        stored = program.weights.get(w.hash.data)
        np.testing.assert_array_equal(stored, model.state_dict()[w.weight_name.data].numpy())


@pytest.mark.parametrize("name", ["vit", "bert", "mobilenetv2"])
def test_imported_program_prints_parses_and_verifies(name: str, torch_programs: Any) -> None:
    program = torch_programs[name][2]
    text = print_module(program.module)
    assert print_module(parse_module(text)) == text
    generic = print_module(program.module, generic=True)
    assert print_module(parse_module(generic)) == text
    program.verify()


@pytest.mark.parametrize("name", ["vit", "bert", "resnet"])
def test_weights_round_trip_through_save_and_load(
    name: str, torch_programs: Any, tmp_path: Path
) -> None:
    _, inputs, program = torch_programs[name]
    save_program(program, tmp_path / "model.mlir")
    loaded = load_program(tmp_path / "model.mlir")
    assert print_module(loaded.module) == print_module(program.module)
    for op in program.weight_ops():
        np.testing.assert_array_equal(
            loaded.weights.get(op.hash.data), program.weights.get(op.hash.data)
        )
    before = run(program, _numpy(inputs))
    after = run(loaded, _numpy(inputs))
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


# ---- through ONNX ---------------------------------------------------------------------------


def _onnx_export(model: torch.nn.Module, inputs: tuple, path: Path) -> list[str]:
    names = [f"input_{i}" for i in range(len(inputs))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter: the dynamo one needs onnxscript, which is not installed.
        torch.onnx.export(
            model, inputs, str(path), dynamo=False, opset_version=17, input_names=names
        )
    return names


@pytest.mark.parametrize("name", NAMES)
def test_onnx_frontend_matches_onnxruntime_and_torch(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    from ircomp.frontends import onnx as onnx_frontend

    model, inputs = ZOO[name]()
    path = tmp_path / f"{name}.onnx"
    names = _onnx_export(model, inputs, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = dict(zip(names, _numpy(inputs), strict=True))
    want_ort = session.run(None, feeds)
    program = onnx_frontend.load(path)
    got = run(program, _numpy(inputs))
    err_ort = _assert_close(got, want_ort, f"{name}: ONNX import vs onnxruntime")
    err_torch = _assert_close(got, _torch_outputs(model, inputs), f"{name}: ONNX import vs torch")
    print(
        f"\n{name}: onnx frontend, max abs error vs onnxruntime = {err_ort:.3g}, "
        f"vs torch = {err_torch:.3g}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_both_frontends_agree(name: str, torch_programs: Any, tmp_path: Path) -> None:
    from ircomp.frontends import onnx as onnx_frontend

    model, inputs, program = torch_programs[name]
    path = tmp_path / f"{name}.onnx"
    _onnx_export(model, inputs, path)
    from_onnx = run(onnx_frontend.load(path), _numpy(inputs))
    from_torch = run(program, _numpy(inputs))
    _assert_close(from_torch, from_onnx, f"{name}: torch frontend vs ONNX frontend")
