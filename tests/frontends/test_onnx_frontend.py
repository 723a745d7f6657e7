"""ONNX frontend: float models against onnxruntime, folding, names, the CLI and bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx_helpers import export

from ircomp.cli import main as cli_main
from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.frontends import onnx as onnx_frontend
from ircomp.interpreter import run
from ircomp.ir.program import load_program


class Block(torch.nn.Module):
    """Conv/BN/ReLU6, a residual, attention-style matmuls, decomposed layernorm, GELU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.qkv = torch.nn.Linear(8, 24)
        self.proj = torch.nn.Linear(8, 8)
        self.gamma = torch.nn.Parameter(torch.rand(8) + 0.5)
        self.beta = torch.nn.Parameter(torch.rand(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.relu6(self.bn(self.conv(x)))
        y = y + self.dw(y)
        t = y.flatten(2).transpose(1, 2)  # [B, 16, 8]
        q, k, v = self.qkv(t).split(8, dim=-1)
        att = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1)
        t = t + self.proj(att @ v)
        mean = t.mean(-1, keepdim=True)
        d = t - mean
        t = d / torch.sqrt(d.pow(2).mean(-1, keepdim=True) + 1e-5) * self.gamma + self.beta
        return torch.nn.functional.gelu(t).reshape(t.shape[0], -1)


@pytest.mark.parametrize("dynamic", [False, True])
def test_float_block_matches_onnxruntime(dynamic: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 4, 4)
    model = export(Block(), x, dynamic_axes={"x": {0: "b"}, "y": {0: "b"}} if dynamic else None)
    program = onnx_frontend.load(model)
    ops = [op for op in program.module.walk() if isinstance(op, nn.NNOp)]
    kinds = {type(op) for op in ops}
    assert nn.LayerNormOp in kinds and nn.ReduceMeanOp not in kinds  # decomposed LN recognized
    assert all(nn.op_name(op) for op in ops if not isinstance(op, nn.WeightOp))
    names = {op.weight_name.data for op in program.weight_ops()}
    assert {"conv.weight", "qkv.weight"} <= names or "qkv.bias" in names
    for batch in (1, 3) if dynamic else (2,):
        xb = np.random.default_rng(batch).standard_normal((batch, 4, 4, 4)).astype(np.float32)
        (expected,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": xb})
        (got,) = run(program, [xb])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_dynamic_batch_becomes_question_mark() -> None:
    model = export(torch.nn.Linear(3, 2), torch.randn(1, 3), dynamic_axes={"x": {0: "n"}})
    program = onnx_frontend.load(model)
    assert "tensor<?x3xf32>" in str(program.module)
    fixed = onnx_frontend.load(model, input_shapes={"x": [5, 3]})
    assert "tensor<5x3xf32>" in str(fixed.module)


def _graph(nodes, inputs, outputs, inits=(), opset=17):  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape, t=TensorProto.FLOAT):  # type: ignore[no-untyped-def]
    return helper.make_tensor_value_info(name, t, shape)


def test_shape_chains_are_folded() -> None:
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="flatten_it"),
        helper.make_node(
            "ConstantOfShape",
            ["two"],
            ["c"],
            value=numpy_helper.from_array(np.array([0.5], np.float32)),
        ),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "zero1"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
        numpy_helper.from_array(np.array([2], np.int64), "two"),
    ]
    model = _graph(nodes, [_vi("x", ["b", 3, 4])], [_vi("y", ["b", 12]), _vi("c", [2])], inits)
    program = onnx_frontend.load(model)
    text = str(program.module)
    assert "nn.reshape" in text and "nn.gather" not in text and "shape = array<i64: -1, 12>" in text
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    y, c = run(program, [x])
    np.testing.assert_array_equal(y, x.reshape(2, 12))
    np.testing.assert_array_equal(c, [0.5, 0.5])


# ---- bad input ------------------------------------------------------------------------------


def _unsupported_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("Mod", ["a", "a"], ["b"], name="bad_mod", fmod=1),
        helper.make_node("Loop", ["", ""], ["c"], name="bad_loop"),
        helper.make_node("Frobnicate", ["b"], ["y"], name="custom", domain="acme.ops"),
    ]
    model = _graph(nodes, [_vi("x", [2])], [_vi("y", [2])])
    model.opset_import.append(helper.make_opsetid("acme.ops", 3))
    return model


def test_unsupported_ops_are_listed_in_one_message(tmp_path) -> None:
    model = _unsupported_model()
    with pytest.raises(InputError) as info:
        onnx_frontend.load(model)
    message = str(info.value)
    assert message.startswith("2 unsupported node(s)")
    assert "'bad_loop' (Loop, domain ai.onnx, opset 17)" in message
    assert "'custom' (Frobnicate, domain acme.ops, opset 3)" in message
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    out = tmp_path / "out.mlir"
    assert cli_main(["import", str(path), "-o", str(out)]) == 2
    assert not out.exists() and not out.with_suffix(".safetensors").exists()
    assert sorted(os.listdir(tmp_path)) == ["bad.onnx"]


@pytest.mark.parametrize("content", [b"", b"hello, not a model\n", b"\x08\x07\x12\x04abc"])
def test_non_onnx_and_truncated_files(tmp_path, content: bytes) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    with pytest.raises(InputError, match="is not an ONNX model"):
        onnx_frontend.load(path)


def test_truncated_model_file(tmp_path) -> None:
    data = export(torch.nn.Linear(64, 64), torch.randn(1, 64)).SerializeToString()
    path = tmp_path / "t.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not an ONNX model"):
        onnx_frontend.load(path)
    assert cli_main(["import", str(path), "-o", str(tmp_path / "t.mlir")]) == 2


def test_cycle_is_reported_with_its_nodes() -> None:
    nodes = [
        helper.make_node(
            "Relu",
            [
                "x",
            ],
            ["a"],
            name="start",
        ),
        helper.make_node("Add", ["a", "c"], ["b"], name="loop_add"),
        helper.make_node("Relu", ["b"], ["c"], name="loop_relu"),
    ]
    model = _graph(nodes, [_vi("x", [2])], [_vi("c", [2])])
    with pytest.raises(InputError, match=r"cycle.*'loop_add'.*'loop_relu'"):
        onnx_frontend.load(model)


def test_mismatched_shapes_name_the_node() -> None:
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="bad_add")]
    inits = [numpy_helper.from_array(np.zeros((4, 3), np.float32), "w")]
    model = _graph(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])], inits)
    with pytest.raises(InputError, match="bad_add"):
        onnx_frontend.load(model)
    w = numpy_helper.from_array(np.zeros((5, 3), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="bad_matmul")]
    model = _graph(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])], [w])
    with pytest.raises(InputError, match="bad_matmul"):
        onnx_frontend.load(model)


@pytest.mark.parametrize("location", ["/etc/passwd", "../secret.bin", "sub/../../x.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location: str) -> None:
    w = numpy_helper.from_array(np.ones((4,), np.float32), "w")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add")]
    model = _graph(nodes, [_vi("x", [4])], [_vi("y", [4])], [w])
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(InputError, match="refused"):
        onnx_frontend.load(path)


def test_external_data_inside_the_folder_loads(tmp_path) -> None:
    model = export(torch.nn.Linear(300, 20), torch.randn(1, 300))
    path = tmp_path / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, location="m.data", size_threshold=0)
    program = onnx_frontend.load(path)
    x = np.ones((1, 300), np.float32)
    (expected,) = ort.InferenceSession(str(path)).run(None, {"x": x})
    np.testing.assert_allclose(run(program, [x])[0], expected, rtol=1e-5, atol=1e-6)


def test_cli_import_writes_mlir_and_weights(tmp_path) -> None:
    model = export(torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU()), torch.randn(1, 6))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    out = tmp_path / "out" / "m.mlir"
    result = subprocess.run(
        [sys.executable, "-m", "ircomp", "import", str(path), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    program = load_program(out)
    x = np.ones((1, 6), np.float32)
    np.testing.assert_allclose(
        run(program, [x])[0], ort.InferenceSession(str(path)).run(None, {"x": x})[0], rtol=1e-6
    )
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "ircomp",
            "import",
            str(tmp_path / "missing.onnx"),
            "-o",
            str(tmp_path / "z.mlir"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr


# ---- int64 inputs and streamed initializers ------------------------------------------------


def test_int64_input_gather_matches_onnxruntime() -> None:
    table = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["y"], name="embed", axis=0)]
    model = _graph(
        nodes,
        [_vi("ids", ["b", 5], TensorProto.INT64)],
        [_vi("y", ["b", 5, 8])],
        [numpy_helper.from_array(table, "table")],
    )
    program = onnx_frontend.load(model)
    assert "tensor<?x5xi32>" in str(program.module)  # int64 ids are typed i32
    ids = np.array([[0, 7, 49, 3, 3], [12, 1, 0, 48, 25]], np.int64)
    (expected,) = ort.InferenceSession(model.SerializeToString()).run(None, {"ids": ids})
    (got,) = run(program, [ids])
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(InputError, match="ids"):
        run(program, [np.full((1, 5), 2**40, np.int64)])  # outside int32: refused at run time


def test_large_initializers_are_read_from_the_file(tmp_path) -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(96, 80), torch.nn.ReLU(), torch.nn.Linear(80, 4))
    model = export(module, torch.randn(1, 96))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    parsed, source = onnx_frontend._read_model(path)
    sizes = {
        t.name: (int(np.prod(t.dims)), t.HasField("raw_data")) for t in parsed.graph.initializer
    }
    assert any(n > 4096 and not has for n, has in sizes.values())  # left in the file
    assert all(has for n, has in sizes.values() if n <= 4096)
    assert source is not None and set(source.spans) == {k for k, v in sizes.items() if v[0] > 4096}
    programs = [onnx_frontend.load(s) for s in (path, path.read_bytes(), model)]
    assert len({str(p.module) for p in programs}) == 1
    assert len({tuple(p.weights) for p in programs}) == 1
    x = np.random.default_rng(1).standard_normal((1, 96)).astype(np.float32)
    (expected,) = ort.InferenceSession(str(path)).run(None, {"x": x})
    np.testing.assert_allclose(run(programs[0], [x])[0], expected, rtol=1e-5, atol=1e-6)


def test_truncated_weights_are_reported(tmp_path) -> None:
    model = export(torch.nn.Linear(96, 80), torch.randn(1, 96))
    data = model.SerializeToString()
    path = tmp_path / "t.onnx"
    path.write_bytes(data[:-200])  # the cut falls inside the last fields or the weights
    with pytest.raises(InputError, match="not an ONNX model"):
        onnx_frontend.load(path)
