"""torch.export frontend: a PyTorch `nn.Module` becomes an ircomp `Program`.

    program = ircomp.frontends.torch.load(model, (x,), dynamic_batch=True)

**Export.** `torch.export.export(module, example_inputs, strict=False)` in eval mode (training
flags are restored afterwards), then `run_decompositions` with torch's default table *minus*
the composite ops that map onto one `nn` op: `aten.linear`, `aten.conv2d`, `aten.layer_norm`,
`aten.matmul` (kept whole so a batched matmul stays one `nn.matmul` instead of
expand/view/bmm/view), `aten.scaled_dot_product_attention` (decomposed here into
matmul/softmax/matmul; torch's own decomposition brings in a NaN-guarding `_safe_softmax`
built from comparisons and `where`), `hardswish` and `hardsigmoid`.
The model is traced in-process; no file is read and nothing is deserialized.

**Weights.** Parameters and buffers go into the weight store under their state-dict names
(`blocks.0.attn.qkv.weight`), lifted tensor constants under their lifted names; each
`nn.weight` op is created once, at its first use, and unused ones (`num_batches_tracked`) are
dropped. Python scalars in arithmetic become `[1]`-shaped weights named
`<module path>.<node>.scalar`. A subgraph computed only from buffers, lifted constants and
tensor-creation ops (`arange`, `full`, `scalar_tensor`, ...) is evaluated at import time and
stored as one weight; subgraphs that read parameters are never folded, so every parameter
keeps its name. int64 tensors (token ids, index buffers) become `i32` (values are checked).

**Names.** Every op gets `name = <module path>` from the last entry of
`node.meta["nn_module_stack"]` (`blocks.3.attn.qkv`); ops of the root module get no name.
SSA values are named after the FX nodes (`%linear`, `%x`) in the printed text.

**Shapes.** Result shapes come from each op's shape rule (`GraphBuilder`) and are checked
against torch's. With `dynamic_batch=True`, dim 0 of every input is exported as one
`torch.export.Dim("batch")` and becomes `?` in the IR; reshape targets use -1 for the one dim
that depends on the batch. Any other symbolic dimension is refused with an `InputError`.

**Mapping (ATen -> nn).**

| ATen | nn |
| --- | --- |
| linear | linear |
| conv2d, convolution (2-D, not transposed) | conv2d (groups, dilation, padding; "same"/"valid") |
| constant_pad_nd (zeros, feeding only convs) | folded into conv2d's padding |
| _native_batch_norm_legit_no_training | batchnorm (missing affine -> ones / zeros) |
| layer_norm, native_layer_norm | layernorm (axis = -len(normalized_shape)) |
| matmul, mm, bmm | matmul (1-D operands reshaped) |
| addmm | matmul + add (alpha/beta as mul) |
| add, sub, rsub, mul, div (Tensor / Scalar) | add, sub, mul, div (scalar -> `[1]` weight) |
| relu, hardtanh, clamp(_min/_max) | relu, hardtanh, clip (relu when clamp is [0, inf)) |
| sigmoid, tanh, gelu (none / tanh) | sigmoid, tanh, gelu |
| _softmax, _log_softmax | softmax, log_softmax |
| hardswish, pow, sqrt, exp, log, erf, neg, abs, reciprocal | same name |
| leaky_relu | leaky_relu (alpha = negative_slope) |
| hardsigmoid | hardsigmoid (alpha 1/6, beta 1/2: torch's, not ONNX's default 0.2) |
| rsqrt | sqrt + reciprocal |
| maximum, minimum | max, min |
| max_pool2d(_with_indices) | maxpool2d (indices output refused) |
| avg_pool2d | avgpool2d (divisor_override refused) |
| _adaptive_avg_pool2d, mean over H,W of NCHW | global_avgpool2d (output 1x1), or avgpool2d |
| mean(.dim), sum(.dim_IntList), amax, max.dim (values) | reduce_mean, reduce_sum, reduce_max |
| view, _unsafe_view, reshape, flatten, unflatten, squeeze, unsqueeze | reshape |
| permute, transpose, t | transpose |
| cat | concat |
| slice, select, narrow | slice (+ reshape for select) |
| split, split_with_sizes, unbind | split (+ reshape for unbind) |
| expand | nothing when the shape is unchanged, else expand |
| clone, contiguous, alias, detach, dropout (eval), _to_copy (same dtype) | nothing |
| _to_copy (other float dtype) | cast |
| embedding | gather (axis 0) |
| where.self, masked_fill.Scalar | where (scalar -> `[1]` weight) |
| scaled_dot_product_attention | transpose, matmul, mul, add (mask; causal: constant), softmax, |
| | matmul |

**Limits.** A size-1 dimension expanded to the run-time batch (`cls_token.expand(B, -1, -1)`
under `dynamic_batch=True`) is refused: `nn.expand`'s shape is static, and a -1 in it keeps the
input's size. `nn` has no comparison ops, so `where`/`masked_fill` need a condition that is a
model input or foldable at import time (`x > 0` computed at run time is refused). `nn.cast`
converts between float formats only: int/bool -> float casts (`attention_mask.float()` on an
integer mask) are refused unless folded. mean/sum of integer tensors and reductions with a
`dtype` argument are refused; `max.dim`/`max_pool2d_with_indices` give values only. Attention
rows that mask every key give NaN (torch's `_safe_softmax` gives 0).

Unsupported ops are collected over the whole graph first and reported in one `InputError`,
each with its FX node name, target and module path.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BFloat16Type,
    Float16Type,
    Float32Type,
    IntegerType,
    Signedness,
    TensorType,
)
from xdsl.ir import Attribute, SSAValue

from ircomp.dialects import nn
from ircomp.errors import InputError, IrcompError
from ircomp.ir.builder import GraphBuilder
from ircomp.ir.program import Program

aten = torch.ops.aten

__all__ = ["export", "load", "supported_ops"]

# ---- dtypes -----------------------------------------------------------------------------------

_INT32 = np.iinfo(np.int32)


def _element_type(dtype: torch.dtype) -> Attribute | None:
    if dtype == torch.float32:
        return Float32Type()
    if dtype == torch.float16:
        return Float16Type()
    if dtype == torch.bfloat16:
        return BFloat16Type()
    if dtype in (torch.int64, torch.int32):
        return IntegerType(32)
    if dtype == torch.int16:
        return IntegerType(16)
    if dtype == torch.int8:
        return IntegerType(8)
    if dtype == torch.uint8:
        return IntegerType(8, Signedness.UNSIGNED)
    if dtype == torch.bool:
        return IntegerType(1)
    return None


def _to_numpy(tensor: torch.Tensor, what: str) -> np.ndarray:
    """A detached CPU tensor as the weight store's array for its element type."""
    t = tensor.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)  # bf16 codes
    if t.dtype == torch.int64:
        if t.numel() and (int(t.min()) < _INT32.min or int(t.max()) > _INT32.max):
            raise InputError(f"{what}: int64 values outside the int32 range cannot become i32")
        return t.numpy().astype(np.int32)
    if _element_type(t.dtype) is None:
        raise InputError(f"{what}: dtype {t.dtype} is not supported; cast the model to float32")
    return t.numpy()


# ---- export -----------------------------------------------------------------------------------

# Composite ops kept whole (they map onto one nn op or are decomposed here).
_KEEP_WHOLE = (
    aten.linear.default,
    aten.conv2d.default,
    aten.layer_norm.default,
    aten.matmul.default,
    aten.scaled_dot_product_attention.default,
    aten.hardswish.default,
    aten.hardsigmoid.default,
)


def _nn_ops() -> dict[str, type[nn.NNOp]]:
    return {op.name: op for op in nn.NN.operations}  # type: ignore[misc]


def decomposition_table() -> dict[Any, Callable[..., Any]]:
    """torch's default decompositions minus the ops this frontend maps whole."""
    table = torch.export.default_decompositions()
    for op in _KEEP_WHOLE:
        table.pop(op, None)
    return table


@contextmanager
def _eval_mode(module: torch.nn.Module):  # type: ignore[no-untyped-def]
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def export(
    module: torch.nn.Module, example_inputs: tuple, *, dynamic_batch: bool = False
) -> torch.export.ExportedProgram:
    """The decomposed ExportedProgram `load` imports (eval mode, non-strict export)."""
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    for i, x in enumerate(example_inputs):
        if not isinstance(x, torch.Tensor):
            raise InputError(
                f"example input {i} is a {type(x).__name__}; only tensors are supported as "
                "model inputs (bind other arguments with functools.partial or a wrapper module)"
            )
    dynamic_shapes = None
    if dynamic_batch:
        if any(x.dim() == 0 for x in example_inputs):
            raise InputError("dynamic_batch needs every input to have a batch dimension (dim 0)")
        if any(x.shape[0] < 2 for x in example_inputs):
            raise InputError(
                "dynamic_batch: give example inputs with batch size >= 2 (torch.export "
                "specializes dimensions of size 0 and 1)"
            )
    with _eval_mode(module), torch.no_grad(), warnings.catch_warnings():
        # torch's own pytree deprecation noise, not actionable by the user.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        try:
            if dynamic_batch:
                batch = torch.export.Dim("batch")
                shapes = torch.export.ShapesCollection()
                for x in example_inputs:
                    shapes[x] = {0: batch}
                dynamic_shapes = shapes.dynamic_shapes(module, example_inputs)
            ep = torch.export.export(
                module, example_inputs, dynamic_shapes=dynamic_shapes, strict=False
            )
        except Exception as err:  # torch raises many types; all mean "this model won't export"
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            hint = ""
            if dynamic_batch and "Constraint" in type(err).__name__ + str(err):
                hint = " (the model fixes the batch size; import without dynamic_batch)"
            raise InputError(f"torch.export failed: {type(err).__name__}: {first}{hint}") from err
        return ep.run_decompositions(decomposition_table())


# ---- converters -------------------------------------------------------------------------------

Converter = Callable[["_Importer", fx.Node], Any]
Checker = Callable[[fx.Node, "_Importer"], str | None]


@dataclass(frozen=True)
class _Rule:
    convert: Converter
    check: Checker | None = None  # reason the node's arguments are unsupported, or None


_RULES: dict[Any, _Rule] = {}


def _converts(*targets: Any, check: Checker | None = None) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for target in targets:
            _RULES[target] = _Rule(fn, check)
        return fn

    return register


def supported_ops() -> list[str]:
    """ATen targets this frontend maps."""
    return sorted({_target_name(t) for t in _RULES})


def _target_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    return getattr(target, "__name__", str(target))


# Nodes that only carry shape arithmetic or assertions; they produce no IR.
_SHAPE_ONLY = {
    aten.sym_size.int,
    aten.sym_numel.default,
    aten.sym_stride.int,
    aten._assert_tensor_metadata.default,
    aten._assert_scalar.default,
    aten.sym_constrain_range_for_size.default,
    aten.sym_constrain_range.default,
    torch.sym_max,
    torch.sym_min,
    torch.sym_not,
    operator.mul,
    operator.add,
    operator.sub,
    operator.floordiv,
    operator.mod,
    operator.eq,
    operator.ne,
    operator.ge,
    operator.gt,
    operator.le,
    operator.lt,
}

# Ops without tensor operands whose results are evaluated at import time.
_CREATION_OPS = {
    aten.arange.default,
    aten.arange.start,
    aten.arange.start_step,
    aten.full.default,
    aten.zeros.default,
    aten.ones.default,
    aten.scalar_tensor.default,
    aten.empty.memory_format,
    aten.lift_fresh_copy.default,
    aten.full_like.default,
    aten.zeros_like.default,
    aten.ones_like.default,
    aten.tril.default,
    aten.triu.default,
    aten.eq.Scalar,
    aten.eq.Tensor,
    aten.ne.Scalar,
    aten.lt.Scalar,
    aten.gt.Scalar,
    aten.le.Scalar,
    aten.ge.Scalar,
    aten.logical_not.default,
    aten.bitwise_not.default,
    aten.masked_fill.Scalar,
}


class _Importer:
    def __init__(self, ep: torch.export.ExportedProgram, dynamic_batch: bool) -> None:
        self.ep = ep
        self.graph = ep.graph
        self.b = GraphBuilder("main")
        self.nn_ops = _nn_ops()
        self.values: dict[fx.Node, Any] = {}
        self.constants: dict[fx.Node, torch.Tensor] = {}  # foldable values (never parameters)
        self.params: dict[fx.Node, tuple[str, torch.Tensor]] = {}
        self.batch_symbol: Any = None
        self.dynamic_batch = dynamic_batch
        # The node being converted: scalar weights are named after it.
        self._current_path = ""
        self._current_node = ""

    # ---- entry ---------------------------------------------------------------------------

    def run(self) -> Program:
        sig = self.ep.graph_signature
        bad_outputs = [
            f"{spec.kind.name.lower()} of '{spec.target}'"
            for spec in sig.output_specs
            if spec.kind.name != "USER_OUTPUT"
        ]
        if bad_outputs:
            raise InputError(
                "the model writes state in forward (" + ", ".join(bad_outputs) + "); only "
                "inference graphs can be imported (batch norm in eval mode, no in-place buffer "
                "updates)"
            )
        self._bind_placeholders()
        self._check_graph()
        for node in self.graph.nodes:
            if node.op == "call_function":
                self._convert(node)
        output = next(n for n in self.graph.nodes if n.op == "output")
        outs = []
        for i, arg in enumerate(output.args[0]):
            if not isinstance(arg, fx.Node):
                raise InputError(f"output {i} is the constant {arg!r}; outputs must be tensors")
            outs.append(self.value(arg))
        return self.b.finish(outs)

    # ---- placeholders --------------------------------------------------------------------

    def _bind_placeholders(self) -> None:
        sig = self.ep.graph_signature
        state = self.ep.state_dict
        specs = {spec.arg.name: spec for spec in sig.input_specs}
        for node in self.graph.nodes:
            if node.op != "placeholder":
                continue
            spec = specs[node.name]
            kind = spec.kind.name
            if kind == "USER_INPUT":
                val = node.meta.get("val")
                if not isinstance(val, torch.Tensor):
                    raise InputError(f"input '{node.name}' is not a tensor ({val!r})")
                if self.dynamic_batch and self.batch_symbol is None:
                    dim0 = val.shape[0]
                    if isinstance(dim0, torch.SymInt) and not dim0.node.expr.is_number:
                        self.batch_symbol = dim0.node.expr
                elem = _element_type(val.dtype)
                if elem is None:
                    raise InputError(
                        f"input '{node.name}' has dtype {val.dtype}; supported: float32, "
                        "float16, bfloat16, int64/int32 (as i32), int16, int8, uint8, bool"
                    )
                shape = self.dims(val.shape, f"input '{node.name}'")
                if any(d < 0 for d in shape[1:]):
                    raise InputError(f"input '{node.name}': only dim 0 may be dynamic")
                arg = self.b.input(shape, elem)
                _set_name(arg, node.name)
                self.values[node] = arg
            elif kind in ("PARAMETER", "BUFFER", "CONSTANT_TENSOR"):
                target = spec.target
                assert target is not None
                tensor = state.get(target)
                if tensor is None:
                    tensor = self.ep.constants.get(target)
                if not isinstance(tensor, torch.Tensor):
                    raise InputError(f"cannot find the value of {kind.lower()} '{target}'")
                if kind == "PARAMETER":
                    self.params[node] = (target, tensor)
                else:
                    self.constants[node] = tensor.detach()
                    self.params[node] = (target, tensor)
            else:
                raise InputError(f"unsupported graph input kind {kind} ('{node.name}')")

    # ---- checks --------------------------------------------------------------------------

    def _check_graph(self) -> None:
        """Every unsupported op and every non-batch dynamic dim, reported together."""
        problems: list[str] = []
        for node in self.graph.nodes:
            if node.op != "call_function" or node.target in _SHAPE_ONLY:
                continue
            reasons = [
                f"dynamic dimension {d} (only the batch may vary)"
                for d in _meta_dims(node)[:1]
                if not self._dim_ok(d)
            ] + [d for d in [self._unsupported(node)] if d]
            if reasons:
                problems.append(f"{_describe(node)}: {'; '.join(reasons)}")
        # The foldable markers set by `_unsupported` are recomputed in order by `_convert`.
        for node in list(self.constants):
            if node.op == "call_function":
                del self.constants[node]
        if problems:
            raise InputError(
                f"the model uses {len(problems)} unsupported operation(s):\n  "
                + "\n  ".join(problems)
            )

    def _unsupported(self, node: fx.Node) -> str | None:
        """Why `node` cannot be imported, or None."""
        if self._foldable(node):
            self.constants[node] = torch.empty(0)  # marker; the value is computed in _convert
            return None
        if node.target is operator.getitem:
            return _check_getitem(node)
        rule = _RULES.get(node.target)
        if rule is None:
            return "no mapping to nn"
        return rule.check(node, self) if rule.check else None

    def _foldable(self, node: fx.Node) -> bool:
        """Computed only from buffers/constants/creation ops, never from parameters."""
        if node.target not in _CREATION_OPS and node.target not in _RULES:
            return False
        inputs = node.all_input_nodes
        if not inputs and node.target not in _CREATION_OPS:
            return False
        if any(n.target in _SHAPE_ONLY for n in inputs):
            return False
        return all(n in self.constants for n in inputs) and _static(node)

    def _dim_ok(self, d: Any) -> bool:
        if isinstance(d, int):
            return True
        expr = d.node.expr
        if expr.is_number:
            return True
        return self.batch_symbol is not None and expr.free_symbols <= {self.batch_symbol}

    def dims(self, shape: Sequence[Any], what: str) -> tuple[int, ...]:
        """Concrete dims, -1 for those that depend on the batch."""
        out = []
        for d in shape:
            if isinstance(d, int):
                out.append(d)
            elif d.node.expr.is_number:
                out.append(int(d.node.expr))
            elif self._dim_ok(d):
                out.append(-1)
            else:
                raise InputError(f"{what}: dynamic dimension {d}; only the batch may vary")
        return tuple(out)

    # ---- conversion ----------------------------------------------------------------------

    def _convert(self, node: fx.Node) -> None:
        if node.target in _SHAPE_ONLY:
            return
        self._current_path = module_path(node)
        self._current_node = node.name
        if self._foldable(node):
            self.constants[node] = self._fold(node)
            return
        if node.target is operator.getitem:
            source, index = node.args
            self.values[node] = self.values[source][index]  # type: ignore[index]
            return
        result = _RULES[node.target].convert(self, node)
        self.values[node] = result
        if isinstance(result, SSAValue):
            _set_name(result, node.name)
            self._check_shape(node, result)

    def _fold(self, node: fx.Node) -> torch.Tensor:
        def arg(a: Any) -> Any:
            return self.constants[a] if isinstance(a, fx.Node) else a

        args = fx.node.map_aggregate(node.args, arg)
        kwargs = fx.node.map_aggregate(node.kwargs, arg)
        with torch.no_grad():
            out = node.target(*args, **kwargs)  # type: ignore[operator]
        if not isinstance(out, torch.Tensor):
            raise InputError(f"{_describe(node)}: constant folding gave {type(out).__name__}")
        return out

    def _check_shape(self, node: fx.Node, value: SSAValue) -> None:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            return
        want = self.dims(val.shape, _describe(node))
        got = tuple(_shape(value))
        if len(want) != len(got) or any(
            w >= 0 and g >= 0 and w != g for w, g in zip(want, got, strict=True)
        ):
            raise IrcompError(
                f"torch frontend: {_describe(node)} gave shape {list(got)} in the IR, torch "
                f"says {list(want)}; please report this"
            )

    # ---- values --------------------------------------------------------------------------

    def value(self, arg: Any, like: SSAValue | None = None) -> SSAValue:
        """The IR value of an FX node (weights created on first use) or of a Python scalar."""
        if isinstance(arg, fx.Node):
            if arg in self.values:
                return self.values[arg]
            if arg in self.params or arg in self.constants:
                name, tensor = self.params.get(arg) or (None, self.constants[arg])
                if name is None:
                    name = self._const_name(arg)
                v = self.weight(name, tensor)
                _set_name(v, arg.name)
                self.values[arg] = v
                return v
            raise IrcompError(f"torch frontend: no value for {_describe(arg)}")
        if isinstance(arg, bool | int | float):
            return self.scalar(arg, like)
        raise InputError(f"cannot use {arg!r} as a tensor operand")

    def weight(self, name: str, tensor: torch.Tensor) -> SSAValue:
        elem = _element_type(tensor.dtype)
        if elem is None:
            raise InputError(f"weight '{name}': dtype {tensor.dtype} is not supported")
        return self.b.weight(name, _to_numpy(tensor, f"weight '{name}'"), elem)

    def _const_name(self, node: fx.Node) -> str:
        path = module_path(node)
        return f"{path}.{node.name}" if path else node.name

    def scalar(self, number: float, like: SSAValue | None, hint: str = "scalar") -> SSAValue:
        elem = nn.elem(like) if like is not None else Float32Type()
        path = self._current_path
        name = f"{path}.{self._current_node}.{hint}" if path else f"{self._current_node}.{hint}"
        if isinstance(elem, IntegerType) and float(number).is_integer():
            array = np.array([int(number)], np.int64)
        else:
            array = np.array([number], np.float64)
        tensor = torch.from_numpy(array).to(_torch_dtype(elem))
        return self.weight(name, tensor)

    def op(self, op_name: str, operands: Sequence[SSAValue], node: fx.Node, **props: Any) -> Any:
        """Append one nn op named after the node's module path."""
        op_type = self.nn_ops[op_name]
        path = module_path(node) or None
        results = self.b.op_multi(op_type, list(operands), name=path, **props)
        return results[0] if len(results) == 1 else results

    def reshape(self, x: SSAValue, shape: Sequence[int], node: fx.Node) -> SSAValue:
        if tuple(_shape(x)) == tuple(shape) and -1 not in shape:
            return x
        if list(shape).count(-1) > 1:
            raise InputError(
                f"{_describe(node)}: reshape to {list(shape)} has more than one dimension that "
                "depends on the batch"
            )
        return self.op("nn.reshape", [x], node, shape=list(shape))

    def out_shape(self, node: fx.Node, index: int | None = None) -> tuple[int, ...]:
        val = node.meta["val"]
        if index is not None:
            val = val[index]
        return self.dims(val.shape, _describe(node))


def _torch_dtype(elem: Attribute) -> torch.dtype:
    if isinstance(elem, Float16Type):
        return torch.float16
    if isinstance(elem, BFloat16Type):
        return torch.bfloat16
    if isinstance(elem, IntegerType):
        width = elem.width.data
        if width == 1:
            return torch.bool
        if elem.signedness.data == Signedness.UNSIGNED:
            return torch.uint8
        return {8: torch.int8, 16: torch.int16}.get(width, torch.int32)
    return torch.float32


# ---- helpers ------------------------------------------------------------------------------------


def module_path(node: fx.Node) -> str:
    """The dotted path of the innermost module a node came from ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, _ = list(stack.values())[-1]
    return _clean_path(str(path))


def _clean_path(path: str) -> str:
    # Strict-mode style paths look like "L['self'].blocks[0].attn"; normalize to dots.
    if path.startswith("L['self']"):
        path = path[len("L['self']") :].lstrip(".")
    return path.replace("[", ".").replace("]", "").replace("'", "").strip(".")


def _describe(node: fx.Node) -> str:
    path = module_path(node)
    where = f" in module '{path}'" if path else " in the root module"
    return f"node '{node.name}' ({_target_name(node.target)}){where}"


def _set_name(value: SSAValue, name: str) -> None:
    with suppress(ValueError, TypeError):
        value.name_hint = name


def _shape(value: SSAValue) -> list[int]:
    assert isinstance(value.type, TensorType)
    return [-1 if d == DYNAMIC_INDEX else int(d) for d in value.type.get_shape()]


def _meta_dims(node: fx.Node) -> list[Any]:
    val = node.meta.get("val")
    vals = val if isinstance(val, list | tuple) else [val]
    return [d for v in vals if isinstance(v, torch.Tensor) for d in v.shape]


def _is_static(d: Any) -> bool:
    return isinstance(d, int) or bool(d.node.expr.is_number)


def _static(node: fx.Node) -> bool:
    return all(_is_static(d) for d in _meta_dims(node))


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _pair(value: Any, default: int) -> list[int]:
    if value is None or (isinstance(value, list | tuple) and len(value) == 0):
        return [default, default]
    if isinstance(value, int):
        return [value, value]
    values = [int(v) for v in value]
    return values * 2 if len(values) == 1 else values[:2]


def _rank(node: fx.Node) -> int:
    val = node.meta.get("val")
    return val.dim() if isinstance(val, torch.Tensor) else -1


def _norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _check_getitem(node: fx.Node) -> str | None:
    source, index = node.args
    if not isinstance(source, fx.Node):
        return "getitem of a non-node"
    if index != 0 and source.target in (
        aten.max_pool2d_with_indices.default,
        aten.max.dim,
        aten.native_layer_norm.default,
        aten._native_batch_norm_legit_no_training.default,
    ):
        return f"output {index} (indices/statistics) of {_target_name(source.target)}"
    return None


# ---- MAC ops ------------------------------------------------------------------------------------


@_converts(aten.linear.default)
def _linear(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    w = imp.value(node.args[1])
    bias = _arg(node, 2, "bias")
    operands = [x, w] + ([imp.value(bias)] if bias is not None else [])
    return imp.op("nn.linear", operands, node)


def _conv_check(node: fx.Node, imp: _Importer) -> str | None:
    w = node.args[1]
    if not isinstance(w, fx.Node) or _rank(w) != 4:
        return "only 2-D convolution is supported (4-D weight)"
    if node.target is aten.convolution.default and node.args[6]:
        return "transposed convolution is not supported"
    return None


@_converts(aten.conv2d.default, aten.conv2d.padding, aten.convolution.default, check=_conv_check)
def _conv2d(imp: _Importer, node: fx.Node) -> SSAValue:
    x: Any = imp.value(node.args[0])
    extra = (0, 0, 0, 0)
    if isinstance(x, _Padded):  # constant_pad_nd folded into the conv's padding
        x, extra = x.value, x.pads
    w = imp.value(node.args[1])
    bias = _arg(node, 2, "bias")
    stride = _pair(_arg(node, 3, "stride"), 1)
    padding_arg = _arg(node, 4, "padding")
    dilation = _pair(_arg(node, 5, "dilation"), 1)
    if node.target is aten.convolution.default:
        groups = int(node.args[8])
    else:
        groups = int(_arg(node, 6, "groups", 1))
    kh, kw = _shape(w)[2:]
    if isinstance(padding_arg, str):
        if padding_arg == "valid":
            pads = [0, 0, 0, 0]
        else:  # "same" (stride 1): torch puts the odd extra padding at the end
            total = [dilation[0] * (kh - 1), dilation[1] * (kw - 1)]
            before = [total[0] // 2, total[1] // 2]
            pads = [*before, total[0] - before[0], total[1] - before[1]]
    else:
        ph, pw = _pair(padding_arg, 0)
        pads = [ph, pw, ph, pw]
    pads = [p + e for p, e in zip(pads, extra, strict=True)]
    operands = [x, w] + ([imp.value(bias)] if bias is not None else [])
    return imp.op(
        "nn.conv2d", operands, node, strides=stride, padding=pads, dilations=dilation, groups=groups
    )


@dataclass(frozen=True)
class _Padded:
    """A zero-padded tensor that only feeds convolutions, which absorb the padding."""

    value: SSAValue
    pads: tuple[int, int, int, int]  # top, left, bottom, right


_CONVS = (aten.conv2d.default, aten.conv2d.padding, aten.convolution.default)


def _pad_check(node: fx.Node, imp: _Importer) -> str | None:
    pad = [int(p) for p in node.args[1]]  # type: ignore[union-attr]
    if float(_arg(node, 2, "value", 0.0)) != 0.0:
        return "constant padding with a non-zero value"
    if _rank(node.args[0]) != 4 or len(pad) > 4 or min(pad) < 0:  # type: ignore[arg-type]
        return "padding other than non-negative zero padding of H and W of NCHW"
    users = list(node.users)
    if not users or any(u.target not in _CONVS or u.args[0] is not node for u in users):
        return "zero padding is supported only where it feeds conv2d (folded into its padding)"
    return None


@_converts(aten.constant_pad_nd.default, check=_pad_check)
def _constant_pad(imp: _Importer, node: fx.Node) -> _Padded:
    left, right, top, bottom = ([int(p) for p in node.args[1]] + [0, 0, 0, 0])[:4]  # type: ignore[union-attr]
    return _Padded(imp.value(node.args[0]), (top, left, bottom, right))


def _matmul_value(imp: _Importer, node: fx.Node, a: SSAValue, b: SSAValue) -> SSAValue:
    sa, sb = _shape(a), _shape(b)
    if len(sa) == 1:
        a = imp.op("nn.reshape", [a], node, shape=[1, sa[0]])
    if len(sb) == 1:
        b = imp.op("nn.reshape", [b], node, shape=[sb[0], 1])
    out = imp.op("nn.matmul", [a, b], node)
    if len(sa) == 1 or len(sb) == 1:
        out = imp.reshape(out, imp.out_shape(node), node)
    return out


@_converts(aten.matmul.default, aten.mm.default, aten.bmm.default)
def _matmul(imp: _Importer, node: fx.Node) -> SSAValue:
    return _matmul_value(imp, node, imp.value(node.args[0]), imp.value(node.args[1]))


@_converts(aten.addmm.default)
def _addmm(imp: _Importer, node: fx.Node) -> SSAValue:
    bias, a, b = (imp.value(x) for x in node.args[:3])
    beta = node.kwargs.get("beta", 1)
    alpha = node.kwargs.get("alpha", 1)
    prod = _matmul_value(imp, node, a, b)
    if alpha != 1:
        prod = imp.op("nn.mul", [prod, imp.scalar(alpha, prod, "alpha")], node)
    if beta != 1:
        bias = imp.op("nn.mul", [bias, imp.scalar(beta, bias, "beta")], node)
    return imp.op("nn.add", [prod, bias], node)


# ---- normalization ----------------------------------------------------------------------------


@_converts(aten._native_batch_norm_legit_no_training.default)
def _batchnorm(imp: _Importer, node: fx.Node) -> list[SSAValue | None]:
    x_node, w, b, mean, var = node.args[:5]
    eps = float(node.args[6]) if len(node.args) > 6 else 1e-5
    x = imp.value(x_node)
    channels = _shape(x)[1]
    like = torch.zeros(channels, dtype=x_node.meta["val"].dtype)  # type: ignore[union-attr]
    scale = imp.value(w) if w is not None else imp.weight(f"{node.name}.ones", like + 1)
    bias = imp.value(b) if b is not None else imp.weight(f"{node.name}.zeros", like)
    out = imp.op(
        "nn.batchnorm", [x, scale, bias, imp.value(mean), imp.value(var)], node, epsilon=eps
    )
    _set_name(out, node.name)
    return [out, None, None]


def _layernorm_value(imp: _Importer, node: fx.Node, eps: float) -> SSAValue:
    x = imp.value(node.args[0])
    normalized = list(node.args[1])  # type: ignore[arg-type]
    w, b = _arg(node, 2, "weight"), _arg(node, 3, "bias")
    if w is None:
        dtype = node.args[0].meta["val"].dtype  # type: ignore[union-attr]
        scale = imp.weight(f"{node.name}.ones", torch.ones(normalized, dtype=dtype))
    else:
        scale = imp.value(w)
    operands = [x, scale] + ([imp.value(b)] if b is not None else [])
    return imp.op("nn.layernorm", operands, node, axis=-len(normalized), epsilon=eps)


@_converts(aten.layer_norm.default)
def _layer_norm(imp: _Importer, node: fx.Node) -> SSAValue:
    return _layernorm_value(imp, node, float(_arg(node, 4, "eps", 1e-5)))


@_converts(aten.native_layer_norm.default)
def _native_layer_norm(imp: _Importer, node: fx.Node) -> list[SSAValue | None]:
    out = _layernorm_value(imp, node, float(node.args[4]))
    _set_name(out, node.name)
    return [out, None, None]


# ---- elementwise ------------------------------------------------------------------------------

_BINARY = {
    aten.add.Tensor: "nn.add",
    aten.add.Scalar: "nn.add",
    aten.sub.Tensor: "nn.sub",
    aten.sub.Scalar: "nn.sub",
    aten.mul.Tensor: "nn.mul",
    aten.mul.Scalar: "nn.mul",
    aten.div.Tensor: "nn.div",
    aten.div.Scalar: "nn.div",
    aten.rsub.Scalar: "nn.sub",
    aten.rsub.Tensor: "nn.sub",
}


def _binary_check(node: fx.Node, imp: _Importer) -> str | None:
    if not any(isinstance(a, fx.Node) for a in node.args[:2]):
        return "both operands are Python scalars"
    return None


def _operands(imp: _Importer, node: fx.Node) -> tuple[SSAValue, SSAValue]:
    a, b = node.args[:2]
    like = imp.value(a) if isinstance(a, fx.Node) else imp.value(b)
    return imp.value(a, like), imp.value(b, like)


@_converts(*_BINARY, check=_binary_check)
def _binary(imp: _Importer, node: fx.Node) -> SSAValue:
    a, b = _operands(imp, node)
    alpha = node.kwargs.get("alpha", 1)
    reverse = node.target in (aten.rsub.Scalar, aten.rsub.Tensor)
    if alpha != 1:  # add/sub: a + alpha * b (rsub: b - alpha * a)
        if reverse:
            a = imp.op("nn.mul", [a, imp.scalar(alpha, a, "alpha")], node)
        else:
            b = imp.op("nn.mul", [b, imp.scalar(alpha, b, "alpha")], node)
    if reverse:
        a, b = b, a
    return imp.op(_BINARY[node.target], [a, b], node)


@_converts(
    aten.div.Tensor_mode,
    check=lambda n, imp: None if n.kwargs.get("rounding_mode") is None else "rounding division",
)
def _div_mode(imp: _Importer, node: fx.Node) -> SSAValue:
    return imp.op("nn.div", list(_operands(imp, node)), node)


_UNARY = {
    aten.relu.default: "nn.relu",
    aten.sigmoid.default: "nn.sigmoid",
    aten.tanh.default: "nn.tanh",
    aten.sqrt.default: "nn.sqrt",
    aten.exp.default: "nn.exp",
    aten.log.default: "nn.log",
    aten.erf.default: "nn.erf",
    aten.neg.default: "nn.neg",
    aten.abs.default: "nn.abs",
    aten.hardswish.default: "nn.hardswish",
    aten.reciprocal.default: "nn.reciprocal",
}


@_converts(*_UNARY)
def _unary(imp: _Importer, node: fx.Node) -> SSAValue:
    return imp.op(_UNARY[node.target], [imp.value(node.args[0])], node)


@_converts(aten.hardsigmoid.default)
def _hardsigmoid(imp: _Importer, node: fx.Node) -> SSAValue:
    # torch: relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1); nn.hardsigmoid's defaults are ONNX's
    # (alpha 0.2), so both are always given.
    return imp.op("nn.hardsigmoid", [imp.value(node.args[0])], node, alpha=1.0 / 6.0, beta=0.5)


@_converts(aten.rsqrt.default)
def _rsqrt(imp: _Importer, node: fx.Node) -> SSAValue:
    root = imp.op("nn.sqrt", [imp.value(node.args[0])], node)
    return imp.op("nn.reciprocal", [root], node)


@_converts(aten.pow.Tensor_Scalar, aten.pow.Tensor_Tensor, aten.pow.Scalar)
def _pow(imp: _Importer, node: fx.Node) -> SSAValue:
    return imp.op("nn.pow", list(_operands(imp, node)), node)


@_converts(aten.maximum.default, aten.minimum.default)
def _max_min(imp: _Importer, node: fx.Node) -> SSAValue:
    op_name = "nn.max" if node.target is aten.maximum.default else "nn.min"
    return imp.op(op_name, list(_operands(imp, node)), node)


@_converts(aten.gelu.default)
def _gelu(imp: _Importer, node: fx.Node) -> SSAValue:
    approximate = str(node.kwargs.get("approximate", _arg(node, 1, "approximate", "none")))
    return imp.op("nn.gelu", [imp.value(node.args[0])], node, approximate=approximate)


@_converts(aten.hardtanh.default)
def _hardtanh(imp: _Importer, node: fx.Node) -> SSAValue:
    lo = float(_arg(node, 1, "min_val", -1.0))
    hi = float(_arg(node, 2, "max_val", 1.0))
    return imp.op("nn.hardtanh", [imp.value(node.args[0])], node, min=lo, max=hi)


def _clamp_check(node: fx.Node, imp: _Importer) -> str | None:
    bounds = node.args[1:3]
    if any(isinstance(b, fx.Node) for b in bounds):
        return "clamp with tensor bounds"
    return None


@_converts(aten.clamp.default, aten.clamp_min.default, aten.clamp_max.default, check=_clamp_check)
def _clamp(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    if node.target is aten.clamp_min.default:
        lo, hi = node.args[1], None
    elif node.target is aten.clamp_max.default:
        lo, hi = None, node.args[1]
    else:
        lo, hi = _arg(node, 1, "min"), _arg(node, 2, "max")
    if lo is not None and float(lo) == 0.0 and hi is None:
        return imp.op("nn.relu", [x], node)
    lo_f = -math.inf if lo is None else float(lo)
    hi_f = math.inf if hi is None else float(hi)
    return imp.op("nn.clip", [x], node, min=lo_f, max=hi_f)


@_converts(aten.leaky_relu.default)
def _leaky_relu(imp: _Importer, node: fx.Node) -> SSAValue:
    slope = float(_arg(node, 1, "negative_slope", 0.01))
    return imp.op("nn.leaky_relu", [imp.value(node.args[0])], node, alpha=slope)


@_converts(aten._softmax.default, aten.softmax.int)
def _softmax(imp: _Importer, node: fx.Node) -> SSAValue:
    return imp.op("nn.softmax", [imp.value(node.args[0])], node, axis=int(node.args[1]))


@_converts(aten._log_softmax.default, aten.log_softmax.int)
def _log_softmax(imp: _Importer, node: fx.Node) -> SSAValue:
    return imp.op("nn.log_softmax", [imp.value(node.args[0])], node, axis=int(node.args[1]))


@_converts(aten.where.self)
def _where(imp: _Importer, node: fx.Node) -> SSAValue:
    cond = imp.value(node.args[0])
    a_arg, b_arg = node.args[1:3]
    like = imp.value(a_arg) if isinstance(a_arg, fx.Node) else imp.value(b_arg)
    return imp.op("nn.where", [cond, imp.value(a_arg, like), imp.value(b_arg, like)], node)


@_converts(aten.masked_fill.Scalar)
def _masked_fill(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    fill = imp.value(node.args[2], x)
    return imp.op("nn.where", [imp.value(node.args[1]), fill, x], node)


# ---- pooling ----------------------------------------------------------------------------------


def _pool_check(node: fx.Node, imp: _Importer) -> str | None:
    if _rank(node.args[0]) != 4:  # type: ignore[arg-type]
        return "pooling needs NCHW input (rank 4)"
    if node.target is aten.avg_pool2d.default and _arg(node, 6, "divisor_override") is not None:
        return "avg_pool2d with divisor_override"
    return None


def _pool_geometry(node: fx.Node) -> tuple[list[int], list[int], list[int]]:
    kernel = _pair(node.args[1], 1)
    stride = _pair(_arg(node, 2, "stride"), 0)
    if stride == [0, 0]:
        stride = kernel
    ph, pw = _pair(_arg(node, 3, "padding"), 0)
    return kernel, stride, [ph, pw, ph, pw]


@_converts(aten.max_pool2d_with_indices.default, aten.max_pool2d.default, check=_pool_check)
def _maxpool(imp: _Importer, node: fx.Node) -> Any:
    kernel, stride, pads = _pool_geometry(node)
    dilation = _pair(_arg(node, 4, "dilation"), 1)
    ceil = bool(_arg(node, 5, "ceil_mode", False))
    out = imp.op(
        "nn.maxpool2d",
        [imp.value(node.args[0])],
        node,
        kernel=kernel,
        strides=stride,
        padding=pads,
        dilations=dilation,
        ceil_mode=ceil,
    )
    if node.target is aten.max_pool2d_with_indices.default:
        _set_name(out, node.name)
        return [out, None]
    return out


@_converts(aten.avg_pool2d.default, check=_pool_check)
def _avgpool(imp: _Importer, node: fx.Node) -> SSAValue:
    kernel, stride, pads = _pool_geometry(node)
    ceil = bool(_arg(node, 4, "ceil_mode", False))
    include_pad = bool(_arg(node, 5, "count_include_pad", True))
    return imp.op(
        "nn.avgpool2d",
        [imp.value(node.args[0])],
        node,
        kernel=kernel,
        strides=stride,
        padding=pads,
        ceil_mode=ceil,
        count_include_pad=include_pad,
    )


def _adaptive_check(node: fx.Node, imp: _Importer) -> str | None:
    val = node.args[0].meta["val"]  # type: ignore[union-attr]
    if val.dim() != 4:
        return "adaptive pooling needs NCHW input"
    out = _pair(node.args[1], 1)
    if out == [1, 1]:
        return None
    h, w = val.shape[2:]
    if not (isinstance(h, int) and isinstance(w, int)) or h % out[0] or w % out[1]:
        return f"adaptive average pooling from {h}x{w} to {out[0]}x{out[1]} (not a divisor)"
    return None


@_converts(
    aten._adaptive_avg_pool2d.default, aten.adaptive_avg_pool2d.default, check=_adaptive_check
)
def _adaptive_avgpool(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    out = _pair(node.args[1], 1)
    if out == [1, 1]:
        return imp.op("nn.global_avgpool2d", [x], node)
    h, w = _shape(x)[2:]
    kernel = [h // out[0], w // out[1]]
    return imp.op("nn.avgpool2d", [x], node, kernel=kernel, strides=kernel)


# ---- reductions -------------------------------------------------------------------------------


def _reduce_dims(node: fx.Node) -> tuple[list[int], bool]:
    rank = _rank(node.args[0])  # type: ignore[arg-type]
    if node.target in (aten.mean.default, aten.sum.default):
        return list(range(rank)), False
    if node.target is aten.max.dim:
        return [_norm_axis(int(node.args[1]), rank)], bool(_arg(node, 2, "keepdim", False))
    dims = _arg(node, 1, "dim")
    if dims is None or (isinstance(dims, list | tuple) and len(dims) == 0):
        dims = list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    return sorted(_norm_axis(int(d), rank) for d in dims), bool(_arg(node, 2, "keepdim", False))


def _reduce_check(node: fx.Node, imp: _Importer) -> str | None:
    if _arg(node, 3, "dtype") is not None:
        return "reduction with a dtype argument"
    dtype = node.args[0].meta["val"].dtype  # type: ignore[union-attr]
    if _REDUCE[node.target] != "nn.reduce_max" and not dtype.is_floating_point:  # type: ignore[index]
        return f"mean/sum of a {dtype} tensor (nn.reduce_mean/sum work on floats)"
    return None


_REDUCE = {
    aten.mean.dim: "nn.reduce_mean",
    aten.mean.default: "nn.reduce_mean",
    aten.sum.dim_IntList: "nn.reduce_sum",
    aten.sum.default: "nn.reduce_sum",
    aten.amax.default: "nn.reduce_max",
    aten.max.dim: "nn.reduce_max",
}


def _reduce(imp: _Importer, node: fx.Node) -> Any:
    x = imp.value(node.args[0])
    dims, keepdim = _reduce_dims(node)
    rank = len(_shape(x))
    op_name = _REDUCE[node.target]
    if op_name == "nn.reduce_mean" and rank == 4 and dims == [2, 3]:
        out = imp.op("nn.global_avgpool2d", [x], node)
        if not keepdim:
            out = imp.reshape(out, imp.out_shape(node), node)
    else:
        out = imp.op(op_name, [x], node, axes=dims, keepdims=keepdim)
    if node.target is aten.max.dim:
        _set_name(out, node.name)
        return [out, None]
    return out


for _target in _REDUCE:
    _RULES[_target] = _Rule(_reduce, _reduce_check)
del _target


# ---- shape ops --------------------------------------------------------------------------------

_RESHAPES = (
    aten.view.default,
    aten._unsafe_view.default,
    aten.reshape.default,
    aten.view_copy.default,
    aten.flatten.using_ints,
    aten.unflatten.int,
    aten.squeeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.unsqueeze.default,
)


@_converts(*_RESHAPES)
def _reshape(imp: _Importer, node: fx.Node) -> SSAValue:
    return imp.reshape(imp.value(node.args[0]), imp.out_shape(node), node)


_IDENTITY = (
    aten.clone.default,
    aten.contiguous.default,
    aten.alias.default,
    aten.detach.default,
    aten.lift_fresh_copy.default,
    aten.dropout.default,
    aten.feature_dropout.default,
)


def _identity_check(node: fx.Node, imp: _Importer) -> str | None:
    if node.target in (aten.dropout.default, aten.feature_dropout.default) and _arg(
        node, 2, "train", False
    ):
        return "dropout in training mode"
    return None


@_converts(*_IDENTITY, check=_identity_check)
def _identity(imp: _Importer, node: fx.Node) -> SSAValue:
    return imp.value(node.args[0])


def _to_copy_check(node: fx.Node, imp: _Importer) -> str | None:
    src = node.args[0].meta["val"].dtype  # type: ignore[union-attr]
    dst = node.kwargs.get("dtype", src)
    if dst == src or _element_type(dst) == _element_type(src):
        return None
    if _element_type(dst) is None:
        return f"cast to {dst}"
    if not (src.is_floating_point and dst.is_floating_point):
        return f"cast from {src} to {dst} (nn.cast converts between float formats only)"
    return None


@_converts(aten._to_copy.default, check=_to_copy_check)
def _to_copy(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    dst = _element_type(node.meta["val"].dtype)
    if dst == nn.elem(x):
        return x
    return imp.b.op(imp.nn_ops["nn.cast"], [x], dst, name=module_path(node) or None)


@_converts(aten.permute.default)
def _permute(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    rank = len(_shape(x))
    perm = [_norm_axis(int(p), rank) for p in node.args[1]]  # type: ignore[union-attr]
    if perm == list(range(rank)):
        return x
    return imp.op("nn.transpose", [x], node, perm=perm)


@_converts(aten.transpose.int, aten.t.default, aten.numpy_T.default)
def _transpose(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    rank = len(_shape(x))
    if rank < 2:
        return x
    if node.target is aten.transpose.int:
        d0, d1 = (_norm_axis(int(d), rank) for d in node.args[1:3])
    else:
        d0, d1 = rank - 2, rank - 1
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    if perm == list(range(rank)):
        return x
    return imp.op("nn.transpose", [x], node, perm=perm)


def _expand_check(node: fx.Node, imp: _Importer) -> str | None:
    src = node.args[0].meta["val"]  # type: ignore[union-attr]
    out = node.meta["val"]
    if tuple(src.shape) == tuple(out.shape):
        return None
    padded = [1] * (out.dim() - src.dim()) + list(src.shape)
    for before, after in zip(padded, out.shape, strict=True):
        if not _is_static(after) and _is_static(before):
            return (
                "expand of a size-1 dimension to the run-time batch size (nn.expand has a "
                "static shape); import without dynamic_batch"
            )
    return None


@_converts(aten.expand.default, aten.expand_copy.default, check=_expand_check)
def _expand(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    src = node.args[0].meta["val"]  # type: ignore[union-attr]
    if tuple(src.shape) == tuple(node.meta["val"].shape):
        return x
    # -1 marks the batch dim, which the input has too (expanding 1 to the batch is refused
    # by the check): nn.expand keeps the input's size there.
    return imp.op("nn.expand", [x], node, shape=list(imp.out_shape(node)))


@_converts(aten.cat.default, aten.concat.default)
def _cat(imp: _Importer, node: fx.Node) -> SSAValue:
    tensors = [t for t in node.args[0] if _rank(t) != 1 or t.meta["val"].shape[0] != 0]  # type: ignore[union-attr]
    values = [imp.value(t) for t in tensors]
    if len(values) == 1:
        return values[0]
    axis = _norm_axis(int(_arg(node, 1, "dim", 0)), len(_shape(values[0])))
    return imp.op("nn.concat", values, node, axis=axis)


def _slice_value(
    imp: _Importer, node: fx.Node, x: SSAValue, axis: int, start: int, end: int, step: int
) -> SSAValue:
    size = _shape(x)[axis]
    if size >= 0:
        start, end, step = slice(start, end, step).indices(size)
        if (start, end, step) == (0, size, 1):
            return x
    return imp.op("nn.slice", [x], node, starts=[start], ends=[end], axes=[axis], steps=[step])


@_converts(aten.slice.Tensor, aten.narrow.default)
def _slice(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    rank = len(_shape(x))
    axis = _norm_axis(int(_arg(node, 1, "dim", 0)), rank)
    if node.target is aten.narrow.default:
        start = int(node.args[2])
        end, step = start + int(node.args[3]), 1
    else:
        start = _arg(node, 2, "start")
        end = _arg(node, 3, "end")
        step = int(_arg(node, 4, "step", 1))
        start = 0 if start is None else int(start)
        end = (1 << 62) if end is None else min(int(end), 1 << 62)
    return _slice_value(imp, node, x, axis, start, end, step)


def _select_check(node: fx.Node, imp: _Importer) -> str | None:
    val = node.args[0].meta["val"]  # type: ignore[union-attr]
    dim = _norm_axis(int(node.args[1]), val.dim())
    if int(node.args[2]) < 0 and not isinstance(val.shape[dim], int):
        return "negative index into the dynamic batch dimension"
    return None


@_converts(aten.select.int, check=_select_check)
def _select(imp: _Importer, node: fx.Node) -> SSAValue:
    x = imp.value(node.args[0])
    shape = _shape(x)
    axis = _norm_axis(int(node.args[1]), len(shape))
    index = int(node.args[2])
    if index < 0:
        index += shape[axis]
    sliced = _slice_value(imp, node, x, axis, index, index + 1, 1)
    return imp.reshape(sliced, imp.out_shape(node), node)


def _split_sizes(node: fx.Node) -> tuple[int, list[int]]:
    val = node.args[0].meta["val"]  # type: ignore[union-attr]
    if node.target is aten.unbind.int:
        axis = _norm_axis(int(_arg(node, 1, "dim", 0)), val.dim())
        return axis, [1] * int(val.shape[axis])
    axis = _norm_axis(int(_arg(node, 2, "dim", 0)), val.dim())
    if node.target is aten.split.Tensor:
        size, total = int(node.args[1]), int(val.shape[axis])
        return axis, [min(size, total - i) for i in range(0, total, size)]
    return axis, [int(s) for s in node.args[1]]  # type: ignore[union-attr]


def _split_check(node: fx.Node, imp: _Importer) -> str | None:
    val = node.args[0].meta["val"]  # type: ignore[union-attr]
    dim = int(_arg(node, 1 if node.target is aten.unbind.int else 2, "dim", 0))
    if not isinstance(val.shape[_norm_axis(dim, val.dim())], int):
        return "split along the dynamic batch dimension"
    return None


@_converts(aten.split_with_sizes.default, aten.split.Tensor, aten.unbind.int, check=_split_check)
def _split(imp: _Importer, node: fx.Node) -> list[SSAValue]:
    x = imp.value(node.args[0])
    axis, sizes = _split_sizes(node)
    parts = [x] if len(sizes) == 1 else imp.op("nn.split", [x], node, axis=axis, sizes=sizes)
    if not isinstance(parts, list):
        parts = [parts]
    if node.target is aten.unbind.int:
        parts = [imp.reshape(p, imp.out_shape(node, i), node) for i, p in enumerate(parts)]
    for i, p in enumerate(parts):
        _set_name(p, f"{node.name}_{i}")
    return parts


@_converts(aten.embedding.default)
def _embedding(imp: _Importer, node: fx.Node) -> SSAValue:
    table = imp.value(node.args[0])
    indices = imp.value(node.args[1])
    return imp.op("nn.gather", [table, indices], node, axis=0)


# ---- attention --------------------------------------------------------------------------------


def _sdpa_check(node: fx.Node, imp: _Importer) -> str | None:
    if float(_arg(node, 4, "dropout_p", 0.0)) != 0.0:
        return "attention dropout"
    if node.kwargs.get("enable_gqa", False):
        return "grouped-query attention (enable_gqa)"
    mask = _arg(node, 3, "attn_mask")
    if (
        isinstance(mask, fx.Node)
        and mask.meta["val"].dtype == torch.bool
        and mask not in imp.constants
    ):
        return "boolean attention mask computed at run time (pass an additive float mask)"
    if _arg(node, 5, "is_causal", False):
        q, k = (node.args[i].meta["val"] for i in (0, 1))  # type: ignore[union-attr]
        if not (isinstance(q.shape[-2], int) and isinstance(k.shape[-2], int)):
            return "causal attention with dynamic sequence length"
    return None


@_converts(aten.scaled_dot_product_attention.default, check=_sdpa_check)
def _sdpa(imp: _Importer, node: fx.Node) -> SSAValue:
    q, k, v = (imp.value(a) for a in node.args[:3])
    mask_arg = _arg(node, 3, "attn_mask")
    causal = bool(_arg(node, 5, "is_causal", False))
    scale = node.kwargs.get("scale")
    head_dim = _shape(q)[-1]
    scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
    rank = len(_shape(k))
    perm = [*range(rank - 2), rank - 1, rank - 2]
    kt = imp.op("nn.transpose", [k], node, perm=perm)
    scores = imp.op("nn.matmul", [q, kt], node)
    scores = imp.op("nn.mul", [scores, imp.scalar(scale, scores, "scale")], node)
    if causal:
        length, source = _shape(q)[-2], _shape(k)[-2]
        keep = torch.ones(length, source, dtype=torch.bool).tril()
        bias = torch.zeros(length, source).masked_fill(~keep, -math.inf)
        path = module_path(node)
        name = f"{path}.{node.name}.causal_mask" if path else f"{node.name}.causal_mask"
        scores = imp.op("nn.add", [scores, imp.weight(name, bias)], node)
    if mask_arg is not None:
        mask_val = mask_arg.meta["val"]
        if mask_val.dtype == torch.bool:  # constant (checked): -inf where masked
            keep = imp.constants[mask_arg]
            bias = torch.zeros(keep.shape).masked_fill(~keep, -math.inf)
            name = f"{imp._const_name(mask_arg)}.additive"
            mask = imp.weight(name, bias)
        else:
            mask = imp.value(mask_arg)
        scores = imp.op("nn.add", [scores, mask], node)
    probs = imp.op("nn.softmax", [scores], node, axis=-1)
    return imp.op("nn.matmul", [probs, v], node)


# ---- entry point --------------------------------------------------------------------------------


def load(module: torch.nn.Module, example_inputs: tuple, *, dynamic_batch: bool = False) -> Program:
    """Import `module` traced on `example_inputs` (a tuple of tensors) as a verified Program.

    With `dynamic_batch=True` dim 0 of every input is symbolic (`?` in the IR). Raises
    `InputError` for models torch.export cannot trace, unsupported ops (all listed at once)
    and dynamic dimensions other than the batch.
    """
    ep = export(module, example_inputs, dynamic_batch=dynamic_batch)
    return _Importer(ep, dynamic_batch).run()
