"""`to_torch`: an IR program as a `torch.nn.Module`; `write_back`: its weights back into IR."""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Operation, SSAValue

from ircomp.backends.pytorch import qat
from ircomp.backends.pytorch import runtime as rt
from ircomp.backends.pytorch.lower import MODES, Lowering, clipped_ste, kind_of, lower
from ircomp.dialects import nn
from ircomp.errors import InputError
from ircomp.interpreter.values import Repr, decode_bf16_codes, repr_of
from ircomp.ir.program import Program
from ircomp.ir.weights import WeightStore
from ircomp.numerics import Bit, FixP, Float, FormatError, Int, Posit

GradientHook = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
Gradient = str | GradientHook

_RESERVED = set(dir(torch.nn.Module)) | {"weight_names"}


def sanitize(name: str, taken: Collection[str] = ()) -> str:
    """A valid Python identifier derived from `name`, not in `taken` nor a Module attribute."""
    ident = re.sub(r"\W", "_", name).strip("_") or "w"
    if ident[0].isdigit() or keyword.iskeyword(ident) or ident in _RESERVED:
        ident = f"w_{ident}"
    base, n = ident, 1
    while ident in taken:
        n += 1
        ident = f"{base}_{n}"
    return ident


def find_function(program: Program, name: str) -> func.FuncOp:
    for op in program.module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            return op
    raise InputError(f"the module has no function @{name}")


def weight_key(op: nn.WeightOp) -> tuple[str, str, str]:
    return (op.weight_name.data, op.hash.data, str(op.result.type))


@dataclass
class WeightSlot:
    """One torch tensor of the module: which IR weight it holds and how."""

    attr: str
    ir_name: str
    rep: Repr
    latent: bool  # train mode: a float parameter holding code values (posits: real values)
    trainable: bool


def _index_uses(block_ops: Sequence[Operation]) -> set[SSAValue]:
    """Values used as gather indices or where conditions (never trained)."""
    out: set[SSAValue] = set()
    for op in block_ops:
        if isinstance(op, nn.GatherOp):
            out.add(op.indices)
        elif isinstance(op, nn.WhereOp):
            out.add(op.condition)
    return out


def _statistics(block_ops: Sequence[Operation]) -> set[SSAValue]:
    """batchnorm running mean and variance: buffers, like torch's running statistics."""
    return {v for op in block_ops if isinstance(op, nn.BatchNormOp) for v in (op.mean, op.var)}


def _gradient_factory(gradient: Gradient) -> Callable[[Any], Any]:
    if gradient == "ste":
        return lambda fmt: None
    if gradient == "clipped_ste":
        return clipped_ste
    if callable(gradient):
        hook = gradient
        return lambda fmt: lambda u, q: hook(u, q, fmt)
    raise InputError(
        f"gradient must be 'ste', 'clipped_ste' or a callable (x, q, fmt) -> grad_scale, "
        f"got {gradient!r}"
    )


def _initial_tensor(array: np.ndarray, rep: Repr, latent: bool) -> torch.Tensor:
    if rep.is_float:
        if rep.fmt.kind == "bf16":  # type: ignore[union-attr]
            array = decode_bf16_codes(array)
        return torch.from_numpy(np.array(array, dtype=np.float32))
    codes = torch.from_numpy(np.array(array, dtype=np.int64))
    if not latent:
        return codes
    if isinstance(rep.fmt, Posit):
        return rt.posit_decode(codes, rep.fmt.n, rep.fmt.es).float()
    return codes.float()


class IRModule(torch.nn.Module):
    """A function of an IR program as a torch module; see `to_torch`.

    `weight_names` maps each parameter / buffer attribute to its IR weight name.
    """

    def __init__(
        self,
        program: Program,
        *,
        mode: str = "exact",
        gradient: Gradient = "ste",
        frozen: Collection[str] = (),
        function: str = "main",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.function = function
        ctx = Lowering(mode, _gradient_factory(gradient))
        fn_op = find_function(program, function)
        block = fn_op.body.block
        ops = list(block.ops)
        index_uses, statistics = _index_uses(ops), _statistics(ops)
        frozen_names = set(frozen)
        slots: dict[SSAValue, int] = {arg: i for i, arg in enumerate(block.args)}
        self.input_reprs = [repr_of(a) for a in block.args]
        self.weight_names: dict[str, str] = {}
        self.weight_slots: dict[tuple[str, str, str], WeightSlot] = {}
        self._steps: list[tuple[Any, tuple[int, ...], tuple[int, ...], dict[str, Any], str]] = []
        self._ops: list[Operation] = []
        outputs: tuple[int, ...] | None = None
        for op in ops:
            if isinstance(op, func.ReturnOp):
                outputs = tuple(slots[v] for v in op.operands)
                break
            outs = tuple(slots.setdefault(r, len(slots)) for r in op.results)
            if isinstance(op, nn.WeightOp):
                slot = self._add_weight(
                    program,
                    op,
                    op.result in index_uses,
                    op.result in statistics or op.weight_name.data in frozen_names,
                )
                fn, kwargs = self._weight_call(slot, ctx)
                self._steps.append((fn, (), outs, kwargs, slot.attr))
            else:
                call = lower(op, ctx)
                fn = getattr(qat if call.train else rt, call.fn)
                ins = tuple(slots[v] for v in op.operands)
                self._steps.append((fn, ins, outs, call.kwargs, ""))
            self._ops.append(op)
        if outputs is None:
            raise InputError(f"@{function} has no func.return")
        self._outputs = outputs
        self._output_reprs = [repr_of(v) for v in fn_op.body.block.last_op.operands]
        self._num_slots = len(slots)

    def _add_weight(
        self, program: Program, op: nn.WeightOp, index: bool, frozen: bool
    ) -> WeightSlot:
        key = weight_key(op)
        if key in self.weight_slots:
            return self.weight_slots[key]
        rep = repr_of(op.result)
        trainable_codes = (
            self.mode == "train"
            and not index
            and isinstance(rep.fmt, FixP | Int | Posit)
            and not (isinstance(rep.fmt, Int) and rep.fmt.width == 1)
        )
        latent = trainable_codes and not frozen
        trainable = (rep.is_float or latent) and not frozen
        attr = sanitize(op.weight_name.data, self.weight_names)
        tensor = _initial_tensor(program.weights.get(op.hash.data), rep, latent)
        if trainable:
            self.register_parameter(attr, torch.nn.Parameter(tensor))
        else:
            self.register_buffer(attr, tensor)
        slot = WeightSlot(attr, op.weight_name.data, rep, latent, trainable)
        self.weight_names[attr] = op.weight_name.data
        self.weight_slots[key] = slot
        return slot

    def _weight_call(self, slot: WeightSlot, ctx: Lowering) -> tuple[Any, dict[str, Any]]:
        rep = slot.rep
        if rep.is_float:
            return rt.float_weight, {"kind": kind_of(rep)}
        if self.mode == "exact":
            return _identity, {}
        fmt = rep.fmt
        posit = [fmt.n, fmt.es] if isinstance(fmt, Posit) else None
        if not slot.latent:
            return qat.t_codes, {"posit": posit}
        if posit is not None:
            return qat.t_weight_posit, {
                "n": posit[0],
                "es": posit[1],
                "gradient": ctx.gradient_for(fmt),
            }
        lo, hi = rep.code_range()
        return qat.t_weight_grid, {"lo": lo, "hi": hi, "gradient": ctx.gradient_for(fmt)}

    def _convert_input(self, index: int, value: Any, device: torch.device) -> torch.Tensor:
        rep = self.input_reprs[index]
        x = torch.as_tensor(value, device=device)
        if rep.is_float:
            return rt.round_float(x.float(), kind_of(rep))
        if x.is_floating_point() and self.mode == "exact":
            raise InputError(
                f"input {index}: expected integer codes of {rep.fmt.short_name}, got {x.dtype}"
            )
        return x.float() if self.mode == "train" else x.long()

    def _device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def forward(self, *inputs: Any) -> Any:
        if len(inputs) != len(self.input_reprs):
            raise InputError(
                f"@{self.function} takes {len(self.input_reprs)} inputs, got {len(inputs)}"
            )
        device = self._device()
        env: list[Any] = [None] * self._num_slots
        for i, value in enumerate(inputs):
            env[i] = self._convert_input(i, value, device)
        index = -1
        try:
            for fn, ins, outs, kwargs, attr in self._steps:
                index += 1
                args = (getattr(self, attr),) if attr else tuple(env[i] for i in ins)
                result = fn(*args, **kwargs)
                if len(outs) == 1:
                    env[outs[0]] = result
                else:
                    for slot, value in zip(outs, result, strict=True):
                        env[slot] = value
        except (ValueError, FormatError) as err:
            op = self._ops[index]
            raise InputError(f"{op.name} (op {index} of @{self.function}): {err}") from err
        results = []
        for slot, rep in zip(self._outputs, self._output_reprs, strict=True):
            value = env[slot]
            if rep.is_float and rep.fmt.kind == "f16":  # type: ignore[union-attr]
                value = value.to(torch.float16)
            results.append(value)
        return results[0] if len(results) == 1 else tuple(results)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def to_torch(
    program: Program,
    *,
    mode: str = "exact",
    gradient: Gradient = "ste",
    frozen: Collection[str] = (),
    function: str = "main",
) -> IRModule:
    """`function` of a verified program as a `torch.nn.Module` (move it with `.to(device)`).

    * `mode="exact"` (inference): the golden interpreter's semantics. Floats compute in float32
      (f16/bf16 rounded after every op); codes are int64 tensors and integer ops are exact,
      so codes agree bit for bit with `ircomp.interpreter.run`.
    * `mode="train"` (QAT): non-float tensors are float32 code values, code weights become
      trainable latent float parameters, and format casts fake-quantize with `gradient`:
      `"ste"`, `"clipped_ste"` or a hook `gradient(x, q, fmt) -> grad_scale` (see `qat`).

    Weights become parameters named after their IR names (sanitized; `module.weight_names`
    maps back); float weights are trainable. Buffers hold code weights in exact mode, gather
    indices / where conditions, batchnorm mean and variance, and every weight named in `frozen`.
    """
    return IRModule(program, mode=mode, gradient=gradient, frozen=frozen, function=function)


def _stored_array(slot: WeightSlot, tensor: torch.Tensor) -> np.ndarray:
    """A module tensor back in the weight store's representation of its format."""
    rep = slot.rep
    values = tensor.detach().cpu()
    fmt = rep.fmt
    if rep.is_float:
        array = values.to(torch.float32).numpy()
        if fmt.kind == "bf16":  # type: ignore[union-attr]
            return Float("bf16").encode(array).astype(np.uint16)
        return array.astype(rep.dtype)
    if slot.latent:
        if isinstance(fmt, Posit):
            return fmt.encode(values.double().numpy()).astype(rep.dtype)
        lo, hi = rep.code_range()
        return np.clip(np.rint(values.double().numpy()), lo, hi).astype(rep.dtype)
    codes = values.long().numpy()
    lo, hi = rep.code_range()
    if codes.size and (codes.min() < lo or codes.max() > hi):
        raise InputError(f"weight '{slot.ir_name}': codes outside {lo}..{hi}")
    if isinstance(fmt, Bit):
        return codes.astype(bool)
    return codes.astype(rep.dtype)


def write_back(program: Program, module: IRModule) -> Program:
    """A new verified Program: the same IR, weights taken from `module` (made from `program`).

    Float weights go back as they are (f16 / bf16 rounded to their format); code weights are
    re-encoded (latent train-mode parameters rounded and saturated, posits encoded). Unchanged
    tensors keep their hashes; changed ones get new hashes.
    """
    clone = program.module.clone()
    store = WeightStore()
    state = dict(module.named_parameters()) | dict(module.named_buffers())
    weight_ops = [op for op in clone.walk() if isinstance(op, nn.WeightOp)]
    originals = [op for op in program.module.walk() if isinstance(op, nn.WeightOp)]
    converted: dict[str, str] = {}
    for op, original in zip(weight_ops, originals, strict=True):
        slot = module.weight_slots.get(weight_key(original))
        if slot is None:  # a weight of another function: keep it
            array = program.weights.get(original.hash.data)
            digest = store.add(array)
        elif slot.attr in converted:
            digest = converted[slot.attr]
        else:
            digest = store.add(_stored_array(slot, state[slot.attr]))
            converted[slot.attr] = digest
        op.properties["hash"] = StringAttr(digest)
    result = Program(clone, store)
    result.verify()
    return result
