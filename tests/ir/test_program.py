"""Program text and file I/O: byte-identical round trips, weights beside the IR, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import IntegerType

from ircomp.dialects import nn
from ircomp.dialects.num import PositType
from ircomp.errors import IRParseError, VerificationError, WeightStoreError
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import (
    Program,
    load_program,
    parse_module,
    print_module,
    save_program,
    weights_path_for,
)


def _small_program() -> Program:
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    x = b.input((2, 8))
    w1 = b.weight("fc1.weight", rng.normal(size=(4, 8)))
    shared = rng.normal(size=(4,))
    y = b.op(nn.LinearOp, [x, w1, b.weight("fc1.bias", shared)])
    y = b.op(nn.AddOp, [y, b.weight("offset", shared)])  # same content: stored once
    q = b.op(nn.QuantizeOp, [y], IntegerType(8), scale=[0.05])
    pw = b.weight("posit.w", rng.integers(0, 16, size=(3, 4)), PositType(4, 1))
    return b.finish([q, pw])


def test_print_parse_is_byte_identical_in_both_forms() -> None:
    module = _small_program().module
    for generic in (False, True):
        text = print_module(module, generic)
        assert print_module(parse_module(text), generic) == text
    assert print_module(parse_module(print_module(module, True))) == print_module(module)


def test_save_and_load_reproduce_module_and_weights(tmp_path: Path) -> None:
    program = _small_program()
    path = tmp_path / "model.mlir"
    save_program(program, path)
    assert weights_path_for(path).exists()
    loaded = load_program(path)
    assert print_module(loaded.module) == print_module(program.module)
    assert len(loaded.weights) == 3  # fc1.bias and offset share one tensor
    for op in program.weight_ops():
        key = op.hash.data
        np.testing.assert_array_equal(loaded.weights.get(key), program.weights.get(key))
        assert loaded.weights.get(key).dtype == program.weights.get(key).dtype
    save_program(loaded, tmp_path / "again.mlir")
    assert (tmp_path / "again.mlir").read_bytes() == path.read_bytes()
    assert (tmp_path / "again.safetensors").read_bytes() == weights_path_for(path).read_bytes()


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.mlir"
    save_program(_small_program(), path)
    weights_path_for(path).unlink()
    with pytest.raises(WeightStoreError, match=r"model.safetensors is missing"):
        load_program(path)


def test_weight_shape_mismatch_is_caught(tmp_path: Path) -> None:
    program = _small_program()
    path = tmp_path / "model.mlir"
    save_program(program, path)
    ops = {op.weight_name.data: op.hash.data for op in program.weight_ops()}
    path.write_text(path.read_text().replace(ops["fc1.weight"], ops["fc1.bias"]))
    with pytest.raises(VerificationError, match=r"'fc1.weight': stored tensor has shape \(4,\)"):
        load_program(path)


def test_parse_error_names_file_line_column_and_token(tmp_path: Path) -> None:
    path = tmp_path / "broken.mlir"
    path.write_text(
        "func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {\n"
        "  %y = nn.relu %x : (tensor<4xf32>) -> tensor<4xf32\n"
        "  func.return %y : tensor<4xf32>\n}\n"
    )
    with pytest.raises(IRParseError) as err:
        load_program(path)
    message = str(err.value)
    assert f"{path}:3:" in message or f"{path}:2:" in message
    assert "func.return" in message or ">" in message


def test_unknown_op_is_a_parse_error() -> None:
    with pytest.raises(IRParseError, match=r"nn\.frobnicate"):
        parse_module(
            "func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {\n"
            "  %y = nn.frobnicate %x : (tensor<4xf32>) -> tensor<4xf32>\n"
            "  func.return %y : tensor<4xf32>\n}\n"
        )
