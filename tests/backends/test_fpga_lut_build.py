"""`ircomp build --target fpga-lut`: the whole flow on small models, checked by real tools."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from logic_nets import integer_mlp

from ircomp.cli import main
from ircomp.dialects import nn
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import save_program

TOOLS = all(shutil.which(t) for t in ("yosys", "iverilog", "verilator"))
needs_tools = pytest.mark.skipif(not TOOLS, reason="yosys, iverilog and verilator needed")


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, Path]:
    """A 12-8-6 fan-in-3 2-bit integer MLP and a random data set for it."""
    path = tmp_path / "mlp.mlir"
    save_program(integer_mlp(0, widths=(12, 8, 6), fan_in=3, bits=2), path)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (120, 12)).astype(np.float32)
    y = rng.integers(0, 6, 120)
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:])
    return path, data


def _build(model: Path, data: Path, out: Path, *extra: str) -> int:
    """`ircomp build` as a process would exit (argparse's usage errors included)."""
    args = [str(model), "--target", "fpga-lut", "-o", str(out), "--dataset", str(data)]
    try:
        return main(["build", *args, *extra])
    except SystemExit as exit:
        return int(exit.code or 0)


@needs_tools
def test_case_rom_baseline_builds_and_simulates_bit_exact(
    model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _build(*model, out, "--no-minimize", "--simulator", "both", "--synth", "generic") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["simulation"] == {
        "iverilog": {"passed": 40, "total": 40},
        "verilator": {"passed": 40, "total": 40},
    }
    assert report["accuracy"]["netlist"] == report["accuracy"]["quantized_model"]
    assert [row["op"] for row in report["layers"]] == ["logic.table", "logic.table"]
    assert [row["case_roms"] for row in report["layers"]] == [8, 6]
    assert report["synthesis"]["generic"]["luts"] > 0
    assert all(row["generic_luts"] > 0 for row in report["layers"])  # each module alone
    registers = [row["register_bits"] for row in report["layers"]]
    assert registers == [row["neurons"] * row["output_bits"] for row in report["layers"]]
    # registers + the valid pipeline, less the output bits yosys finds constant
    assert 2 < report["synthesis"]["generic"]["ffs"] <= sum(registers) + 2
    assert report["netlist"]["latency_cycles"] == 2
    assert "netlist 2" not in capsys.readouterr().err
    assert {"report.md", "netlist.mlir", "tb_ircomp_top.v", "ircomp_top.v"} <= {
        p.name for p in out.iterdir()
    }


@needs_tools
def test_wide_integer_neurons_become_thresholds(model: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "wide.mlir"
    save_program(integer_mlp(1, widths=(12, 8, 6), fan_in=7, bits=2), path)
    out = tmp_path / "out"
    assert _build(path, model[1], out, "--max-inputs", "8", "--synth", "generic") == 0
    report = json.loads((out / "report.json").read_text())
    assert [row["realization"] for row in report["layers"]] == ["threshold", "threshold"]
    assert report["simulation"] == {"iverilog": {"passed": 40, "total": 40}}
    assert report["accuracy"]["netlist"] == report["accuracy"]["quantized_model"]
    assert report["synthesis"]["generic"]["luts"] > 0


@needs_tools
def test_design_files_are_deterministic(model: tuple[Path, Path], tmp_path: Path) -> None:
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert (
            _build(*model, out, "--no-minimize", "--synth", "none", "--pipeline-stages", "0") == 0
        )
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir())
    for name in names:
        if not name.startswith("report."):  # reports carry stage times
            assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_a_model_without_logic_layers_is_refused(
    tmp_path: Path, model: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    b = GraphBuilder()
    x = b.input((1, 12))
    y = b.op(nn.LinearOp, [x, b.weight("fc.weight", np.ones((6, 12)))], name="fc")
    dense = tmp_path / "dense.mlir"
    save_program(b.finish([y]), dense)
    out = tmp_path / "out"
    assert _build(dense, model[1], out, "--synth", "none", "--no-minimize") == 2
    err = capsys.readouterr().err
    assert "no layer of the model became logic" in err
    assert "layer 'fc' (nn.linear): its input is f32, not integer codes" in err
    assert not out.exists()


def test_wide_neurons_name_their_layer(
    tmp_path: Path, model: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wide.mlir"
    save_program(integer_mlp(1, widths=(12, 8, 6), fan_in=7, bits=2), path)
    args = ("--max-inputs", "8", "--no-minimize", "--decompose", "none")
    assert _build(path, model[1], tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert "layer 'fc0'" in err and "max-inputs" in err
    assert "decompose=threshold" in err


def test_truth_table_size_guard_refuses_before_enumerating(
    model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _build(*model, out, "--max-rows", "100", "--no-minimize") == 2
    err = capsys.readouterr().err
    assert "exceeds max-rows=100" in err and "--max-rows" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--simulator", "modelsim", "argument --simulator: invalid choice: 'modelsim'"),
        ("--route", "sat", "argument --route: invalid choice: 'sat'"),
        ("--realize", "rom", "argument --realize: invalid choice: 'rom'"),
        ("--synth", "vivado", "unknown synthesis flow"),
        ("--pipeline-stages", "-1", "--pipeline-stages must be 0"),
    ],
)
def test_bad_options_exit_2(
    model: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    message: str,
) -> None:
    assert _build(*model, tmp_path / "out", flag, value) == 2
    assert message in capsys.readouterr().err


def test_missing_tools_name_the_debian_packages(
    model: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert _build(*model, tmp_path / "out", "--no-minimize") == 2
    err = capsys.readouterr().err
    assert "Debian packages" in err and "yosys, verilator and iverilog" in err
    assert not (tmp_path / "out").exists()


def test_other_targets_still_need_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--target", "c", "-o", "x"]) == 2
    assert "needs an input model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LogicNets-style digits MLP trained briefly, exported as QONNX and as QDQ."""
    import dataclasses

    import onnx

    from ircomp.train.data import load_digits
    from ircomp.train.logicnet_config import preset
    from ircomp.train.logicnet_onnx import to_qdq, to_qonnx
    from ircomp.train.logicnet_train import train_logicnet

    config = dataclasses.replace(
        preset("logicnets-digits"),
        hidden=[16, 8],
        fan_in=[3, 3, 3],
        bits=[2, 2, 2],
        activations=["relu", "relu", "relu"],
        epochs=2,
        float_epochs=2,
    )
    trained = train_logicnet(config, load_digits())
    folder = tmp_path_factory.mktemp("exported")
    onnx.save(to_qonnx(trained.folded), folder / "qonnx.onnx")
    onnx.save(to_qdq(trained.folded), folder / "qdq.onnx")
    (folder / "accuracy.txt").write_text(str(trained.report["interpreter_accuracy"]))
    return folder


@needs_tools
@pytest.mark.parametrize("kind", ["qonnx", "qdq"])
def test_user_exported_onnx_models_build(exported: Path, tmp_path: Path, kind: str) -> None:
    out = tmp_path / kind
    args = [str(exported / f"{kind}.onnx"), "--target", "fpga-lut", "-o", str(out)]
    assert main(["build", *args, "--dataset", "digits", "--no-minimize", "--synth", "none"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["simulation"]["iverilog"]["passed"] == report["simulation"]["iverilog"]["total"]
    assert [row["input_bits"] for row in report["layers"]] == [2, 2, 2]
    expected = float((exported / "accuracy.txt").read_text())
    assert report["accuracy"]["netlist"] == pytest.approx(expected, abs=1e-9)


@needs_tools
@pytest.mark.slow
def test_builtin_example_is_bit_exact_on_the_whole_test_split(tmp_path: Path) -> None:
    from ircomp.examples import load_digits_lut

    meta = load_digits_lut()[1]
    out = tmp_path / "example"
    assert main(["build", "--target", "fpga-lut", "-o", str(out), "--synth", "generic"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["simulation"] == {"iverilog": {"passed": 359, "total": 359}}
    accuracy = report["accuracy"]
    assert accuracy["netlist"] == accuracy["quantized_model"]
    assert accuracy["netlist"] == pytest.approx(meta["interpreter_accuracy"], abs=1e-9)
    assert [row["op"] for row in report["layers"]] == ["logic.lut_network"] * 3
    emitted = sum(row["emitted_luts"] for row in report["layers"])
    assert 0 < report["synthesis"]["generic"]["luts"] <= emitted
    assert report["netlist"]["latency_cycles"] == 3
