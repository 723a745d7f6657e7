"""The pass manager: pipelines, verification after each pass, failures, dumps, printing, timing."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.rewriter import Rewriter

from ircomp.dialects import nn
from ircomp.errors import PassFailure, PipelineError, VerificationError, WeightStoreError
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program, parse_module, print_module
from ircomp.ir.weights import WeightStore
from ircomp.pass_manager import (
    ChangeTracker,
    IrcompPass,
    PassContext,
    PassManager,
    available_passes,
    describe_passes,
    parse_pipeline,
    pipeline_text,
    weights_of,
)
from ircomp.passes import BUILTIN_PASSES, ConstantFoldPass, FoldBatchNormPass

BUILTINS = {
    "cse",
    "dce",
    "constant-fold",
    "fold-batchnorm",
    "logic-extract",
    "logic-minimize",
    "matmul-to-linear",
    "narrow-codes",
    "shape-inference",
}


def _program() -> Program:
    """relu(x) + a dead sigmoid and an unused weight: dce changes it, cse does not."""
    b = GraphBuilder()
    x = b.input((2, 4))
    b.op(nn.SigmoidOp, [x])
    b.weight("unused", np.ones(3, np.float32))
    return b.finish([b.op(nn.ReluOp, [x])])


# ---- test passes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BreakShapesPass(IrcompPass):
    """Gives every relu a wrong result shape (a deliberately broken pass)."""

    name: ClassVar[str] = "break-shapes"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for inner in op.walk():
            if isinstance(inner, nn.ReluOp):
                t = inner.result.type
                assert isinstance(t, TensorType)
                Rewriter.replace_value_with_new_type(
                    inner.result, TensorType(t.element_type, [7, 7])
                )


@dataclass(frozen=True)
class RaisingPass(IrcompPass):
    """Raises in the middle of its work, after erasing an op."""

    name: ClassVar[str] = "raising"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for inner in list(op.walk()):
            if isinstance(inner, nn.SigmoidOp):
                Rewriter.erase_op(inner)
        raise ZeroDivisionError("division by zero in the middle of a pass")


@dataclass(frozen=True)
class AddWeightPass(IrcompPass):
    """Adds a tensor to the weight store (only)."""

    name: ClassVar[str] = "add-weight"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        weights_of(ctx).add(np.arange(5, dtype=np.float32))


# ---- registry and pipelines --------------------------------------------------------------------


def test_builtins_are_registered_by_name() -> None:
    passes = available_passes()
    assert set(passes) >= BUILTINS
    assert {cls.name for cls in BUILTIN_PASSES} == BUILTINS
    for name, cls in passes.items():
        assert cls.name == name and issubclass(cls, IrcompPass) and cls.__doc__


def test_pipeline_with_typed_options() -> None:
    passes = parse_pipeline("fold-batchnorm,cse,constant-fold{max-elements=64},dce")
    assert [p.name for p in passes] == ["fold-batchnorm", "cse", "constant-fold", "dce"]
    assert passes[2] == ConstantFoldPass(max_elements=64)
    assert isinstance(passes[0], FoldBatchNormPass)
    assert pipeline_text(passes) == "fold-batchnorm,cse,constant-fold{max-elements=64},dce"
    assert parse_pipeline("constant-fold{max_elements=3}") == [ConstantFoldPass(3)]
    assert parse_pipeline("") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fold-batchnrom", ["unknown pass 'fold-batchnrom'", "did you mean 'fold-batchnorm'"]),
        ("cse,constant_fold", ["unknown pass 'constant_fold'", "'constant-fold'"]),
        ("zzzzzz", ["unknown pass 'zzzzzz'", "ircomp passes"]),
        (
            "constant-fold{max-element=3}",
            ["pass 'constant-fold' has no option 'max-element'", "did you mean 'max-elements'"],
        ),
        ("dce{level=3}", ["pass 'dce' has no option 'level'", "its options: none"]),
        (
            "constant-fold{max-elements=lots}",
            ["pass 'constant-fold'", "option 'max-elements'", "expects int", '"lots"'],
        ),
        ("constant-fold{max-elements=1.5}", ["option 'max-elements' expects int, got 1.5"]),
        ("constant-fold{max-elements=true}", ["option 'max-elements' expects int, got true"]),
        ("constant-fold{max-elements=-4}", ["pass 'constant-fold'", "must be >= 0"]),
        ("cse{", ["Expected argument name"]),
        ("cse dce", ["Expected a comma"]),
        ("cse,,dce", ["Expected pass name"]),
    ],
)
def test_bad_pipelines_raise_pipeline_error(text: str, expected: list[str]) -> None:
    with pytest.raises(PipelineError) as info:
        parse_pipeline(text)
    for part in expected:
        assert part in str(info.value)


def test_options_are_typed_and_floats_accept_ints(monkeypatch) -> None:
    @dataclass(frozen=True)
    class OptionsPass(IrcompPass):
        """Has one option of each kind."""

        name: ClassVar[str] = "options"
        rate: float = 0.5
        flag: bool = False
        mode: str = "fast"
        sizes: tuple[int, ...] = (1, 2)
        limit: int | None = None

        def apply(self, ctx: Context, op: ModuleOp) -> None:
            pass

    import ircomp.pass_manager as pm

    real = pm._builtin_passes
    monkeypatch.setattr(pm, "_builtin_passes", lambda: {**real(), "options": OptionsPass})
    (p,) = parse_pipeline("options{rate=2 flag=true mode=slow sizes=3,4,5 limit=9}")
    assert p == OptionsPass(2.0, True, "slow", (3, 4, 5), 9)
    assert isinstance(p.rate, float)
    assert parse_pipeline("options{limit}") == [OptionsPass()]
    with pytest.raises(PipelineError, match="option 'sizes' expects tuple"):
        parse_pipeline("options{sizes=a,b}")
    with pytest.raises(PipelineError, match="option 'flag' expects bool, got 1"):
        parse_pipeline("options{flag=1}")
    text = describe_passes()
    assert "options\n" in text
    assert "  rate: float = 0.5" in text and '  mode: str = "fast"' in text
    assert "  limit: int | None = None" in text and "  sizes: tuple[int, ...] = (1, 2)" in text


def test_describe_passes_lists_names_options_and_docs() -> None:
    text = describe_passes()
    for name in BUILTINS:
        assert f"\n{name}\n" in f"\n{text}"
    assert "  max-elements: int = 1048576" in text
    assert "Requires:" in text and "Guarantees:" in text


# ---- running ----------------------------------------------------------------------------------


def test_run_returns_a_new_program_and_leaves_the_input_alone() -> None:
    program = _program()
    before = print_module(program.module)
    result = PassManager(parse_pipeline("dce")).run(program)
    assert print_module(program.module) == before
    assert len(program.weights) == 1 and len(result.weights) == 0
    assert not any(isinstance(op, nn.SigmoidOp) for op in result.module.walk())


def test_verify_each_names_the_broken_pass_and_op() -> None:
    program = _program()
    before = print_module(program.module)
    manager = PassManager([*parse_pipeline("cse"), BreakShapesPass(), *parse_pipeline("dce")])
    with pytest.raises(PassFailure) as info:
        manager.run(program)
    message = str(info.value)
    assert "pass 'break-shapes' left IR that fails verification" in message
    assert "at line 5: %3 = nn.relu %0 : (tensor<2x4xf32>) -> tensor<7x7xf32>" in message
    assert print_module(program.module) == before


def test_without_verify_each_the_result_is_still_verified_once_at_the_end() -> None:
    with pytest.raises(PassFailure, match="pass 'the pipeline' left IR that fails verification"):
        PassManager([BreakShapesPass()], verify_each=False).run(_program())


def test_change_tracker_reports_changed_ops_and_their_users() -> None:
    program = _program()
    tracker = ChangeTracker(program.module)
    assert tracker.changed_ops(program.module) == []
    relu = next(op for op in program.module.walk() if isinstance(op, nn.ReluOp))
    users = {use.operation for use in relu.result.uses}
    t = relu.result.type
    assert isinstance(t, TensorType)
    Rewriter.replace_value_with_new_type(relu.result, TensorType(t.element_type, [7, 7]))
    changed = tracker.changed_ops(program.module)
    assert relu in changed and users <= set(changed)
    assert len(changed) == 1 + len(users)
    assert tracker.changed_ops(program.module) == []


def test_a_raising_pass_becomes_pass_failure_naming_it() -> None:
    program = _program()
    before = print_module(program.module)
    with pytest.raises(PassFailure) as info:
        PassManager([*parse_pipeline("cse"), RaisingPass()]).run(program)
    assert "pass 'raising' failed: ZeroDivisionError: division by zero" in str(info.value)
    assert print_module(program.module) == before


def test_an_invalid_input_is_reported_as_input_error() -> None:
    module = parse_module(
        "func.func @main(%0: tensor<2xf32>) -> tensor<2xf32> {\n"
        '  %1 = nn.weight {name = "w", hash = "0123456789abcdef"} : () -> tensor<2xf32>\n'
        "  func.return %1 : tensor<2xf32>\n}\n"
    )
    with pytest.raises(WeightStoreError, match="input to the pass pipeline"):
        PassManager([]).run(Program(module, WeightStore()))
    store = WeightStore()
    key = store.add(np.zeros(3, np.float32))
    text = print_module(module).replace("0123456789abcdef", key)
    with pytest.raises(VerificationError, match=r"input to the pass pipeline.*shape"):
        PassManager([]).run(Program(parse_module(text), store))


def test_passes_add_weights_to_the_copy_only() -> None:
    program = _program()
    manager = PassManager([AddWeightPass()])
    manager.run(program)
    assert len(program.weights) == 1


def test_pass_context_keeps_its_weights_when_cloned() -> None:
    store = WeightStore()
    ctx = PassContext.for_weights(store)
    clone = ctx.clone()
    assert isinstance(clone, PassContext) and weights_of(clone) is store
    assert {d.name for d in clone.loaded_dialects} >= {"builtin", "func", "nn", "num"}
    with pytest.raises(PassFailure, match="needs the weight store"):
        weights_of(Context())


# ---- instrumentation ---------------------------------------------------------------------------


def test_dump_dir_has_one_file_per_pass(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    PassManager(parse_pipeline("cse,dce,shape-inference"), dump_dir=dumps).run(_program())
    names = sorted(p.name for p in dumps.iterdir())
    assert names == ["00-input.mlir", "01-cse.mlir", "02-dce.mlir", "03-shape-inference.mlir"]
    assert "nn.sigmoid" in (dumps / "01-cse.mlir").read_text()
    assert "nn.sigmoid" not in (dumps / "02-dce.mlir").read_text()
    for path in dumps.iterdir():
        parse_module(path.read_text())


def test_dump_dir_keeps_the_failing_ir(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    with pytest.raises(PassFailure):
        PassManager([BreakShapesPass()], dump_dir=dumps).run(_program())
    assert sorted(p.name for p in dumps.iterdir()) == [
        "00-input.mlir",
        "01-break-shapes.failed.mlir",
    ]


def test_print_ir_after_change_prints_only_changes() -> None:
    out = io.StringIO()
    PassManager(parse_pipeline("cse,dce,cse"), print_ir_after_change=True, out=out).run(_program())
    text = out.getvalue()
    assert "// -----// IR Dump After cse //----- //" not in text
    assert text.count("// -----// IR Dump After dce //----- //") == 1
    assert "nn.relu" in text and "nn.sigmoid" not in text


def test_print_ir_after_all_prints_every_pass() -> None:
    out = io.StringIO()
    PassManager(parse_pipeline("cse,dce"), print_ir_after_all=True, out=out).run(_program())
    text = out.getvalue()
    assert text.index("IR Dump After cse") < text.index("IR Dump After dce")
    assert text.count("builtin.module") == 2


def test_time_passes_prints_a_table() -> None:
    out = io.StringIO()
    manager = PassManager(parse_pipeline("cse,dce"), time_passes=True, out=out)
    manager.run(_program())
    text = out.getvalue()
    for name in ("cse", "dce", "(verification)", "Total", "Wall Time"):
        assert name in text
    assert [t.name for t in manager.timings] == ["cse", "dce", "(verification)"]
    assert all(t.seconds >= 0 for t in manager.timings)


def test_nothing_is_printed_by_default(capsys) -> None:
    PassManager(parse_pipeline("cse,dce")).run(_program())
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
