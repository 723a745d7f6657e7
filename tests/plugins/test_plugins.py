"""Third-party passes: discovered through the `ircomp.passes` entry points, no pip needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ircomp.dialects import nn
from ircomp.errors import PipelineError
from ircomp.ir.builder import GraphBuilder
from ircomp.pass_manager import PassManager, available_passes, describe_passes, parse_pipeline

HERE = Path(__file__).resolve().parent


def _program():
    b = GraphBuilder()
    x = b.input((1, 2))
    return b.finish([b.op(nn.AddOp, [x, b.weight("bias", np.ones(2, np.float32))])])


def test_plugin_pass_is_listed_and_runs(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(HERE / "site"))
    passes = available_passes()
    assert "demo-prefix-weights" in passes
    assert passes["demo-prefix-weights"].__module__ == "ircomp_demo_plugin"
    assert 'demo-prefix-weights\n  prefix: str = "demo."' in describe_passes()

    result = PassManager(parse_pipeline("cse,demo-prefix-weights{prefix=p_},dce")).run(_program())
    assert [op.weight_name.data for op in result.weight_ops()] == ["p_bias"]


def test_plugin_options_are_checked(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(HERE / "site"))
    with pytest.raises(PipelineError, match="did you mean 'prefix'"):
        parse_pipeline("demo-prefix-weights{prefx=a}")


def test_without_the_plugin_on_the_path_it_is_unknown() -> None:
    assert "demo-prefix-weights" not in available_passes()
    with pytest.raises(PipelineError, match="unknown pass 'demo-prefix-weights'"):
        parse_pipeline("demo-prefix-weights")


def test_a_broken_plugin_is_named(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(HERE / "broken_site"))
    with pytest.raises(PipelineError) as info:
        available_passes()
    message = str(info.value)
    assert "plugin pass 'broken-pass'" in message
    assert "ircomp_no_such_module:SomePass" in message
    assert "ircomp-broken-plugin 0.1.0" in message
    assert "ModuleNotFoundError" in message
    # Pipelines that do not use it still work; one that does fails with the same message.
    assert [p.name for p in parse_pipeline("cse,dce")] == ["cse", "dce"]
    with pytest.raises(PipelineError, match=r"plugin pass 'broken-pass'.*failed to load"):
        parse_pipeline("broken-pass")
