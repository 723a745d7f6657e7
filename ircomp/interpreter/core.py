"""Prepare a `func.func` once (a list of steps), then run it on numpy arrays."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from ircomp.errors import InputError
from ircomp.interpreter.kernels import KERNELS, Context, Fn
from ircomp.interpreter.values import Repr, float_rounder, repr_of
from ircomp.ir.program import Program
from ircomp.numerics import FormatError

Observer = Callable[[Operation, list[np.ndarray]], None]


def _find_function(program: Program, name: str) -> func.FuncOp:
    functions = [op for op in program.module.ops if isinstance(op, func.FuncOp)]
    for op in functions:
        if op.sym_name.data == name:
            return op
    names = ", ".join(f"@{f.sym_name.data}" for f in functions) or "none"
    raise InputError(f"the module has no function @{name} (functions: {names})")


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


class _InputCheck:
    """Checks and converts one argument of the function to the interpreter's representation."""

    def __init__(self, index: int, arg: SSAValue) -> None:
        assert isinstance(arg.type, TensorType)
        hint = f" (%{arg.name_hint})" if arg.name_hint else ""
        self.name = f"input {index}{hint}"
        self.shape = tuple(arg.type.get_shape())
        self.type_text = str(arg.type)
        self.rep: Repr = repr_of(arg)
        self.round = float_rounder(self.rep) if self.rep.is_float else None

    def __call__(self, value: Any) -> np.ndarray:
        array = np.asarray(value)
        if array.ndim != len(self.shape) or any(
            want >= 0 and want != got for want, got in zip(self.shape, array.shape, strict=False)
        ):
            raise InputError(
                f"{self.name}: expected shape {_shape_text(self.shape)} ({self.type_text}), "
                f"got {list(array.shape)}"
            )
        rep = self.rep
        if array.dtype.kind not in ("fiub" if rep.is_float else "iub"):
            what = "float values" if rep.is_float else f"integer codes of {rep.fmt.short_name}"
            raise InputError(
                f"{self.name}: expected {what} ({self.type_text}), got dtype {array.dtype}"
            )
        if self.round is not None:
            return self.round(array)
        lo, hi = rep.code_range()
        if array.size and (array.min() < lo or array.max() > hi):
            raise InputError(
                f"{self.name}: {rep.fmt.short_name} codes must be in {lo}..{hi}, got values in "
                f"{array.min()}..{array.max()}"
            )
        return array.astype(rep.dtype, copy=False)


class Interpreter:
    """A function of a verified program, prepared for repeated runs.

    Preparation looks up each op's kernel and lets it decode properties and weights; a run
    then costs one call per op. Values die after their last use.
    """

    def __init__(self, program: Program, function: str = "main") -> None:
        fn_op = _find_function(program, function)
        block = fn_op.body.block
        ctx = Context(program.weights)
        slots: dict[SSAValue, int] = {arg: i for i, arg in enumerate(block.args)}
        self.inputs = [_InputCheck(i, arg) for i, arg in enumerate(block.args)]
        self.function = function
        self.ops: list[Operation] = []
        steps: list[tuple[Fn, tuple[int, ...], tuple[int, ...]]] = []
        returned: tuple[int, ...] | None = None
        for op in block.ops:
            if isinstance(op, func.ReturnOp):
                returned = tuple(slots[v] for v in op.operands)
                break
            prepare = KERNELS.get(type(op))
            if prepare is None:
                raise InputError(f"the interpreter has no kernel for '{op.name}'")
            fn = prepare(op, ctx)
            ins = tuple(slots[v] for v in op.operands)
            outs = tuple(slots.setdefault(r, len(slots)) for r in op.results)
            self.ops.append(op)
            steps.append((fn, ins, outs))
        if returned is None:
            raise InputError(f"@{function} has no func.return")
        self.outputs = returned
        self.num_slots = len(slots)
        self.steps = self._with_frees(steps, returned)

    @staticmethod
    def _with_frees(
        steps: list[tuple[Fn, tuple[int, ...], tuple[int, ...]]], keep: tuple[int, ...]
    ) -> list[tuple[Fn, tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """Append to each step the slots whose last use it is (never the returned ones)."""
        last_use: dict[int, int] = {}
        for i, (_, ins, outs) in enumerate(steps):
            for slot in (*ins, *outs):
                last_use[slot] = i
        frees: list[list[int]] = [[] for _ in steps]
        for slot, i in last_use.items():
            if slot not in keep:
                frees[i].append(slot)
        return [(fn, ins, outs, tuple(f)) for (fn, ins, outs), f in zip(steps, frees, strict=True)]

    def __call__(self, inputs: Sequence[Any], observer: Observer | None = None) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            expected = ", ".join(check.type_text for check in self.inputs) or "none"
            raise InputError(
                f"@{self.function} takes {len(self.inputs)} inputs ({expected}), got {len(inputs)}"
            )
        env: list[Any] = [None] * self.num_slots
        for i, (check, value) in enumerate(zip(self.inputs, inputs, strict=True)):
            env[i] = check(value)
        index = 0
        try:
            for index, (fn, ins, outs, frees) in enumerate(self.steps):
                results = fn(*[env[i] for i in ins])
                if observer is not None:
                    observer(self.ops[index], list(results))
                for slot, value in zip(outs, results, strict=True):
                    env[slot] = value
                for slot in frees:
                    env[slot] = None
        except (FormatError, InputError) as err:
            op = self.ops[index]
            raise InputError(f"{op.name} (op {index} of @{self.function}): {err}") from err
        return [env[i] for i in self.outputs]


def run(
    program: Program,
    inputs: Sequence[Any],
    *,
    function: str = "main",
    observer: Observer | None = None,
) -> list[np.ndarray]:
    """Execute `function` of a verified program on `inputs`; see `ircomp.interpreter`."""
    return Interpreter(program, function)(inputs, observer)
