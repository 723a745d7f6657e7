"""Random modules print and parse back byte for byte, in custom and generic form."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import build_program, graph_specs, with_dynamic_dims

from ircomp.ir.program import parse_module, print_module


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_specs(), st.booleans())
def test_print_parse_print_is_byte_identical(spec, dynamic) -> None:
    program, _ = build_program(spec)
    module = with_dynamic_dims(program, spec.seed).module if dynamic else program.module

    custom = print_module(module)
    generic = print_module(module, generic=True)
    from_custom = parse_module(custom)
    from_generic = parse_module(generic)

    assert print_module(from_custom) == custom
    assert print_module(from_generic, generic=True) == generic
    # The two forms describe the same module.
    assert print_module(from_generic) == custom
    assert print_module(from_custom, generic=True) == generic
    assert from_custom.is_structurally_equivalent(module)
    assert from_generic.is_structurally_equivalent(module)
