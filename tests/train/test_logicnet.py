"""LogicNet training side of the fpga-lut flow: fan-in masks, quantizers, the integer-exact
export to the IR, QONNX / QDQ round trips, the shipped example and `ircomp train`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from ircomp.cli import main
from ircomp.dialects import nn as irnn
from ircomp.errors import InputError
from ircomp.examples import digits_lut_path, load_digits_lut
from ircomp.frontends import onnx as onnx_frontend
from ircomp.interpreter import Interpreter
from ircomp.ir.program import load_program
from ircomp.train.data import load_digits
from ircomp.train.logicnet import (
    ActQuant,
    InputQuant,
    LogicNet,
    LogicNetConfig,
    SparseLinear,
    first_argmax,
    preset,
)
from ircomp.train.logicnet_export import (
    FoldedNetwork,
    fold_network,
    interpreter_predictions,
    to_program,
)
from ircomp.train.logicnet_onnx import to_qdq, to_qonnx
from ircomp.train.logicnet_train import train_logicnet

# --------------------------------------------------------------------------------------------
# masks


@pytest.mark.parametrize("fan_in", [1, 3, 7])
def test_random_masks_have_exactly_f_inputs_per_neuron_and_follow_the_seed(fan_in: int) -> None:
    def mask(seed: int) -> torch.Tensor:
        layer = SparseLinear(20, 9, fan_in)
        layer.set_random_mask(torch.Generator().manual_seed(seed))
        return layer.mask.clone()

    m = mask(1)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert (m.sum(dim=1) == fan_in).all()
    assert torch.equal(m, mask(1))
    assert not torch.equal(m, mask(2))


def test_pruning_keeps_the_f_most_important_inputs_of_each_neuron() -> None:
    layer = SparseLinear(6, 2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, -3.0, 0.5, 2.0, 0.2, 0.0], [1, 1, 1, 1, 1, 1.0]]))
        # Input 1 never varies: its large weight does not matter.
        layer.input_std.copy_(torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 1.0]))
    layer.prune_to_fan_in()
    assert layer.fan_in_indices().tolist() == [[2, 3], [0, 2]]  # row 2: ties -> lower index
    layer.prune_to_fan_in(1)  # only among the kept inputs
    assert layer.fan_in_indices().tolist() == [[3], [0]]
    assert (layer.masked_weight()[0] != 0).sum() == 1


# --------------------------------------------------------------------------------------------
# quantizers


def test_step_quantizers_forward_values_and_clipped_ste() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5], requires_grad=True)
    binary, bipolar = ActQuant("binary", 1), ActQuant("bipolar", 1)
    assert binary(x).tolist() == [0, 0, 1, 1, 1]
    assert bipolar(x).tolist() == [-1, -1, 1, 1, 1]
    binary(x).sum().backward()
    assert x.grad.tolist() == [0, 0.5, 0.5, 0.5, 0]
    x.grad = None
    bipolar(x).sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 0]
    assert binary.codes(x).tolist() == [0, 0, 1, 1, 1]
    assert bipolar.codes(x).tolist() == [0, 0, 1, 1, 1]  # exported as bits b, x = 2b - 1


def test_multibit_quantizers_round_half_even_clamp_and_clip_the_gradient() -> None:
    relu = ActQuant("relu", 2)
    hardtanh = ActQuant("hardtanh", 3)
    with torch.no_grad():
        relu.scale.fill_(0.5)
        hardtanh.scale.fill_(0.25)
    x = torch.tensor([-1.0, 0.2, 0.25, 0.3, 0.75, 1.25, 5.0], requires_grad=True)
    assert relu.codes(x).tolist() == [0, 0, 0, 1, 2, 2, 3]  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
    assert torch.equal(relu(x), relu.codes(x).float() * 0.5)
    relu(x).sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]
    assert relu.scale.grad is not None  # learned step size (LSQ)
    y = torch.tensor([-9.0, -1.0, -0.125, 0.1, 0.5, 0.875, 3.0])
    assert hardtanh.codes(y).tolist() == [-4, -4, 0, 0, 2, 3, 3]  # -0.5 -> 0, 3.5 -> 3 (clamp)
    assert torch.equal(hardtanh(y), hardtanh.codes(y).float() * 0.25)
    assert (relu.lo, relu.hi, hardtanh.lo, hardtanh.hi) == (0, 3, -4, 3)


def test_input_quantizer_gives_nn_quantize_codes() -> None:
    q = InputQuant(2, 1 / 3)
    x = torch.tensor([[0.0, 1 / 6, 0.17, 0.5, 5 / 6, 1.0, 2.0, -1.0]])
    assert q.codes(x).tolist() == [[0, 0, 1, 2, 2, 3, 3, 0]]
    assert torch.equal(q(x), q.codes(x).float() * q.scale)


def test_float_mode_is_the_float_counterpart() -> None:
    x = torch.tensor([-2.0, 0.4, 3.0])
    act = ActQuant("relu", 2)
    act.quantize = False
    assert act(x).tolist() == [0.0, pytest.approx(0.4), 3.0]
    out = ActQuant("hardtanh", 2, is_output=True)
    out.quantize = False
    assert torch.equal(out(x), x)


# --------------------------------------------------------------------------------------------
# config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fan_in": [0, 2, 2]}, "fan-in must be at least 1"),
        ({"fan_in": [13, 2, 2]}, "exceeds the layer's 12 inputs"),
        ({"bits": [9, 1, 2]}, "bits must be between 1 and 8"),
        ({"input_bits": 9}, "input bits must be between 1 and 8"),
        ({"bits": [2, 2, 2]}, "a bipolar activation has 1 bit"),
        ({"activations": ["relu", "bipolar", "hardtanh"], "bits": [2, 1, 1]}, "at least 2 bits"),
        ({"activations": ["relu", "swish", "relu"]}, "unknown activation 'swish'"),
        ({"mask": "magic"}, "unknown mask mode"),
        ({"accuracy_target": 0.9}, "use --mask learned"),
        ({"fan_in": [2, 2]}, "fan-in needs 3 values"),
    ],
)
def test_config_validation_names_the_problem(changes: dict, message: str) -> None:
    cfg = _small_config().replace(**changes)
    with pytest.raises(InputError, match=message):
        cfg.validate()


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(InputError, match="jsc-m, jsc-s, logicnets-digits, nullanet-digits"):
        preset("nope")


def test_presets_are_valid_and_shaped_like_the_papers() -> None:
    jsc_s, jsc_m = preset("jsc-s").validate(), preset("jsc-m").validate()
    assert jsc_s.hidden == jsc_m.hidden == [64, 32, 32, 32]
    assert set(jsc_s.fan_in) == {3} and set(jsc_s.bits) == {2}
    assert set(jsc_m.fan_in) == {4} and set(jsc_m.bits) == {3}
    logicnets = preset("logicnets-digits").validate()
    assert logicnets.widths == [64, 32, 16, 10] and logicnets.mask == "random"
    assert set(logicnets.fan_in) == {4} and set(logicnets.bits) == {2}
    nullanet = preset("nullanet-digits").validate()
    assert nullanet.mask == "learned" and max(nullanet.table_bits()) <= 12


# --------------------------------------------------------------------------------------------
# export


def _small_config(**changes: object) -> LogicNetConfig:
    cfg = LogicNetConfig(
        hidden=[8, 6],
        fan_in=[3, 3, 2],
        bits=[2, 1, 3],
        activations=["relu", "bipolar", "hardtanh"],
        in_features=12,
        classes=4,
        input_bits=2,
    )
    return cfg.replace(**changes)


def _random_model(cfg: LogicNetConfig, seed: int) -> LogicNet:
    """Random masks, weights, BatchNorm statistics (some negative gammas) and scales."""
    torch.manual_seed(seed)
    model = LogicNet(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            layer.linear.set_random_mask(gen)
            n = layer.bn.num_features
            layer.bn.weight.copy_(torch.randn(n, generator=gen) * 2)
            layer.bn.bias.copy_(torch.randn(n, generator=gen))
            layer.bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            layer.bn.running_var.copy_(torch.rand(n, generator=gen) + 0.1)
            layer.act.scale.fill_(float(torch.rand((), generator=gen)) + 0.3)
    model.eval()
    return model


def _inputs(n: int, features: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.1, 1.1, (n, features)).astype(np.float32)
    x[: n // 2] = rng.integers(0, 7, (n // 2, features)) / np.float32(6)  # rounding ties
    return x


def _numpy_reference(folded: FoldedNetwork, x: np.ndarray) -> np.ndarray:
    """The folded integer network evaluated from its definition (independent of the IR)."""
    s = np.float32(folded.input_scale)
    h = np.clip(np.rint(x.astype(np.float32) / s), 0, 2**folded.input_bits - 1).astype(np.int64)
    for layer in folded.layers:
        acc = h @ layer.weight.T + layer.bias
        if layer.activation in ("binary", "bipolar"):
            h = np.clip(acc, 0, 1)
        else:
            m = (1.0 / layer.divisor).astype(np.float32)
            h = np.clip(np.rint(acc.astype(np.float32) * m), layer.lo, layer.hi).astype(np.int64)
    return h


MIXED = [
    _small_config(),
    _small_config(
        hidden=[8, 6, 5],
        fan_in=[2, 3, 4, 3],
        bits=[3, 1, 1, 2],
        activations=["hardtanh", "bipolar", "binary", "relu"],
    ),
]


@pytest.mark.parametrize("cfg", MIXED, ids=["relu-bipolar-hardtanh", "hardtanh-bipolar-binary"])
def test_export_is_integer_exact(cfg: LogicNetConfig) -> None:
    model = _random_model(cfg, seed=3)
    folded = fold_network(model)
    assert folded.exact  # every truth-table row of every neuron equals the torch neuron
    program = to_program(folded)
    x = _inputs(300, cfg.in_features, seed=4)
    (codes,) = Interpreter(program)([x])
    np.testing.assert_array_equal(codes, _numpy_reference(folded, x))
    np.testing.assert_array_equal(codes, model.output_codes(torch.from_numpy(x)).numpy())
    assert np.array_equal(
        interpreter_predictions(program, x), first_argmax(model.output_codes(torch.from_numpy(x)))
    )
    # Each neuron reads only its fan-in columns.
    for layer in folded.layers:
        outside = np.ones_like(layer.weight, dtype=bool)
        np.put_along_axis(outside, layer.fan_in, False, axis=1)
        assert not layer.weight[outside].any()


def test_wide_neurons_are_matched_on_the_rows_calibration_data_produces() -> None:
    cfg = _small_config(max_table_bits=4)  # layers 0 and 1 read 6 bits: not enumerated
    model = _random_model(cfg, seed=11)
    with pytest.raises(InputError, match="give calibration data"):
        fold_network(model)
    x = _inputs(200, cfg.in_features, seed=12)
    folded = fold_network(model, calibration=x)
    assert [layer.exhaustive for layer in folded.layers] == [False, False, True]
    assert folded.layers[0].rows_checked < 4**3
    (codes,) = Interpreter(to_program(folded))([x])
    np.testing.assert_array_equal(codes, model.output_codes(torch.from_numpy(x)).numpy())


def test_exported_ir_has_the_logic_extract_form() -> None:
    cfg = MIXED[1]
    program = to_program(fold_network(_random_model(cfg, seed=5)))
    ops = [op for op in program.module.walk() if isinstance(op, irnn.NNOp)]
    ops = [op for op in ops if not isinstance(op, irnn.WeightOp)]
    assert [type(op).__name__ for op in ops] == ["QuantizeOp"] + ["LinearOp", "RequantizeOp"] * 4
    assert str(irnn.elem(ops[0].result)) == "ui2" and ops[0].get("scale") == [pytest.approx(1 / 3)]
    assert irnn.op_name(ops[0]) == "input_quant"
    formats = [str(irnn.elem(op.result)) for op in ops[2::2]]
    assert formats == ["i3", "ui1", "ui1", "ui2"]
    for i, (lin, req) in enumerate(zip(ops[1::2], ops[2::2], strict=True)):
        assert irnn.op_name(lin) == f"layers.{i}.linear"
        assert irnn.op_name(req) == f"layers.{i}.act"
        assert str(irnn.elem(lin.weight)) in ("i8", "i16")
        assert str(irnn.elem(lin.bias)) == "i32" and str(irnn.elem(lin.result)) == "i32"
        assert req.get("mode") == "onnx" and req.get("axis") == 1
        assert len(req.get("scale")) == cfg.widths[i + 1]
        assert req.get("clamp") == [[-4, 3], [0, 1], [0, 1], [0, 3]][i]
        if formats[i] == "ui1":
            assert set(req.get("scale")) == {1.0}  # exact integer threshold
    assert "@main(%0: tensor<?x12xf32>) -> tensor<?x4xui2>" in str(program.module)


@pytest.mark.parametrize("kind", ["qonnx", "qdq"])
def test_onnx_round_trip_gives_the_same_codes(kind: str) -> None:
    cfg = MIXED[0]
    model = _random_model(cfg, seed=7)
    folded = fold_network(model)
    x = _inputs(300, cfg.in_features, seed=8)
    (want,) = Interpreter(to_program(folded))([x])
    proto = to_qonnx(folded) if kind == "qonnx" else to_qdq(folded)
    (got,) = Interpreter(onnx_frontend.load(proto))([x])
    step = np.float32(folded.layers[-1].out_code_scale)
    np.testing.assert_array_equal(np.rint(np.asarray(got) / step), want)
    if kind == "qdq":  # onnxruntime agrees as well
        (ort_out,) = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})
        np.testing.assert_array_equal(np.rint(ort_out / step), want)


# --------------------------------------------------------------------------------------------
# training


def test_learned_fan_in_training_respects_f_and_relaxes_for_a_target() -> None:
    cfg = preset("nullanet-digits").replace(
        fan_in=[2, 2, 3],
        epochs=1,
        float_epochs=1,
        prune_stages=2,
        prune_epochs=1,
        accuracy_target=0.999,
        max_relax_rounds=1,
    )
    result = train_logicnet(cfg, load_digits())
    rep = result.report
    assert len(rep["relaxations"]) == 1 and rep["target_met"] is False
    relaxed = rep["relaxations"][0]
    layer = int(relaxed["layer"].split(".")[1])
    assert rep["fan_in"] == [f + (i == layer) for i, f in enumerate(cfg.fan_in)]
    for lin, f, folded in zip(
        result.model.linears(), rep["fan_in"], result.folded.layers, strict=True
    ):
        assert (lin.mask.sum(dim=1) == f).all()
        assert folded.fan_in.shape[1] == f
        assert ((folded.weight != 0).sum(axis=1) <= f).all()
    assert rep["interpreter_accuracy"] == pytest.approx(rep["fake_quant_accuracy"], abs=0.005)


# --------------------------------------------------------------------------------------------
# the shipped example


def test_shipped_example_loads_verifies_and_reaches_its_recorded_accuracy() -> None:
    folder = digits_lut_path()
    assert {p.name for p in folder.iterdir()} >= {"model.mlir", "model.safetensors", "meta.json"}
    program, meta = load_digits_lut()
    assert meta["dataset"] == "digits" and meta["interpreter_accuracy"] >= 0.90
    data = load_digits(seed=meta["split"]["seed"], test_fraction=meta["split"]["test_fraction"])
    preds = interpreter_predictions(program, data.x_test)
    assert float((preds == data.y_test).mean()) == meta["interpreter_accuracy"]
    # Every neuron is a function of at most 12 input bits.
    ops = [op for op in program.module.walk() if isinstance(op, irnn.LinearOp)]
    for op in ops:
        in_bits = irnn.elem(op.input).width.data
        weight_op = op.weight.owner
        weights = program.weights.get(weight_op.hash.data)
        assert in_bits * int((weights != 0).sum(axis=1).max()) <= 12


# --------------------------------------------------------------------------------------------
# command line


def _train(tmp_path, *extra: str) -> int:
    return main(
        [
            "train",
            "--preset",
            "logicnets-digits",
            "--epochs",
            "1",
            "--float-epochs",
            "1",
            "--no-progress",
            "-o",
            str(tmp_path),
            *extra,
        ]
    )


def test_cli_train_writes_the_ir_and_report_deterministically(tmp_path) -> None:
    assert _train(tmp_path / "a", "--seed", "3", "--fan-in", "3") == 0
    assert _train(tmp_path / "b", "--seed", "3", "--fan-in", "3") == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert {p.name for p in a.iterdir()} == {"model.mlir", "model.safetensors", "train.json"}
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.mlir").read_text() == (b / "model.mlir").read_text()
    report = json.loads((a / "train.json").read_text())
    for key in ("config", "float_accuracy", "fake_quant_accuracy", "interpreter_accuracy"):
        assert key in report
    assert report["fan_in"] == [3, 3, 3] and report["epochs"] == {"float": 1, "qat": 1}
    program = load_program(a / "model.mlir")
    data = load_digits()
    acc = float((interpreter_predictions(program, data.x_test) == data.y_test).mean())
    assert acc == report["interpreter_accuracy"]


def test_cli_train_writes_qonnx(tmp_path) -> None:
    assert _train(tmp_path, "--format", "qonnx") == 0
    assert {p.name for p in tmp_path.iterdir()} == {"model.onnx", "train.json"}
    program = onnx_frontend.load(str(tmp_path / "model.onnx"))
    data = load_digits()
    acc = float((interpreter_predictions(program, data.x_test) == data.y_test).mean())
    assert acc == json.loads((tmp_path / "train.json").read_text())["interpreter_accuracy"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--fan-in", "0"], "fan-in must be at least 1, got 0"),
        (["--bits", "9"], "bits must be between 1 and 8, got 9"),
        (["--format", "xml"], "unknown --format 'xml'"),
        (["--accuracy-target", "0.9"], "use --mask learned"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(tmp_path, capsys, args, message) -> None:
    assert _train(tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("ircomp train: error:") and message in err
    assert not (tmp_path / "out").exists()


def test_command_line_start_does_not_import_torch() -> None:
    code = "import sys, ircomp.cli; ircomp.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_train_package_exports_the_fit_function() -> None:
    import ircomp.train
    import ircomp.train.fit  # the submodule import must not shadow the function

    assert callable(ircomp.train.fit) and ircomp.train.fit.__name__ == "fit"
    assert ircomp.train.LogicNet is LogicNet
