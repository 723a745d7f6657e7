"""Shared helpers of the PyTorch backend tests: one-op programs and comparisons with the
golden interpreter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ircomp.backends.pytorch import to_torch
from ircomp.interpreter import run
from ircomp.ir.program import Program


def as_numpy(value: torch.Tensor) -> np.ndarray:
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:
        value = value.float()
    return value.numpy()


def torch_outputs(
    program: Program, inputs: Sequence[np.ndarray], device: str = "cpu", **options: Any
) -> list[np.ndarray]:
    module = to_torch(program, **options).to(device)
    with torch.no_grad():
        out = module(*[torch.from_numpy(np.array(x)).to(device) for x in inputs])
    return [as_numpy(o) for o in (out if isinstance(out, tuple) else (out,))]


def assert_agree(
    want: Sequence[np.ndarray], got: Sequence[np.ndarray], rtol: float = 1e-5, what: str = ""
) -> None:
    """Float outputs to float tolerance (relative to the format), codes bit for bit."""
    assert len(want) == len(got), what
    for w, g in zip(want, got, strict=True):
        assert tuple(w.shape) == tuple(g.shape), what
        if w.dtype.kind == "f":
            tol = {2: 1e-2}.get(w.dtype.itemsize, rtol)
            np.testing.assert_allclose(
                g.astype(np.float64), w.astype(np.float64), rtol=tol, atol=tol, err_msg=what
            )
        else:
            np.testing.assert_array_equal(g.astype(np.int64), w.astype(np.int64), err_msg=what)


def check_against_interpreter(
    program: Program, inputs: Sequence[np.ndarray], device: str = "cpu", what: str = ""
) -> None:
    want = run(program, list(inputs))
    got = torch_outputs(program, inputs, device)
    # bf16 / f16 results may differ by one unit in their last place (float32 summation order).
    rtol = 1e-2 if ("bf16" in str(program.module) or "f16" in str(program.module)) else 1e-5
    assert_agree(want, got, rtol=rtol, what=what)
