"""Passes, the pass registry, pipeline strings and the pass manager.

Every pass is an `IrcompPass`: a frozen dataclass whose fields are its typed options, with a
`name` (its pipeline name) and a docstring saying what it does, requires and guarantees.
Pipelines are strings in xDSL/MLIR syntax, `fold-batchnorm,cse,constant-fold{max-elements=64}`;
option names use dashes in the text and underscores in Python.

    passes = parse_pipeline("fold-batchnorm,cse,dce")
    result = PassManager(passes, print_ir_after_change=True).run(program)

The pass manager works on a copy (the input `Program` is never modified, also on failure),
verifies after every pass, and reports a failing pass as `PassFailure` naming the pass and op.
Passes that read or add tensors get the weight store with `weights_of(ctx)`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import inspect
import io
import sys
import time
import types
import typing
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.printer import Printer
from xdsl.utils.arg_spec import ArgSpec
from xdsl.utils.arg_spec import parse_pipeline as xdsl_parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError

from ircomp.errors import InputError, IrcompError, PassFailure, PipelineError
from ircomp.ir.program import ChangeTracker, Program, make_context, print_module
from ircomp.ir.weights import WeightStore

ENTRY_POINT_GROUP = "ircomp.passes"

__all__ = [
    "ENTRY_POINT_GROUP",
    "IrcompPass",
    "PassContext",
    "PassManager",
    "available_passes",
    "describe_passes",
    "option_name",
    "parse_pipeline",
    "pipeline_text",
    "weights_of",
]


# ---- passes and their context -----------------------------------------------------------


@dataclass(frozen=True)
class IrcompPass(ModulePass):
    """Base of every ircomp pass.

    Subclasses are `@dataclass(frozen=True)` classes whose fields are the pass options (types
    int, float, bool, str, tuples of those, or `X | None`), set `name` to the pipeline name and
    implement `apply(ctx, module)`, rewriting `module` in place. The docstring says what the
    pass does, what it requires of its input and what it guarantees; `ircomp passes` shows it.
    """

    name: ClassVar[str]

    @abstractmethod
    def apply(self, ctx: Context, op: ModuleOp) -> None: ...

    @classmethod
    def options(cls) -> list[tuple[str, str, Any]]:
        """(pipeline option name, type, default) for each option; default is MISSING if none."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                default: Any = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = dataclasses.MISSING
            out.append((option_name(f.name), _type_text(hints[f.name]), default))
        return out

    def __str__(self) -> str:
        return pipeline_text([self])


@dataclass
class PassContext(Context):
    """An xDSL context with every ircomp dialect loaded and the weight store of the module."""

    weights: WeightStore = field(default_factory=WeightStore)

    @classmethod
    def for_weights(cls, weights: WeightStore) -> PassContext:
        ctx = cls(weights=weights)
        base = make_context()
        for dialect in base.loaded_dialects:
            ctx.load_dialect(dialect)
        return ctx

    def clone(self) -> PassContext:
        base = super().clone()
        return PassContext(
            base.allow_unregistered,
            base._loaded_dialects,
            base._loaded_ops,
            base._loaded_attrs,
            base._loaded_types,
            base._registered_dialects,
            weights=self.weights,
        )


def weights_of(ctx: Context) -> WeightStore:
    """The weight store a pass reads and adds tensors to (passes get it through the context)."""
    if not isinstance(ctx, PassContext):
        raise PassFailure(
            "this pass needs the weight store: run it through ircomp.pass_manager.PassManager "
            "(or give it a PassContext)"
        )
    return ctx.weights


def option_name(field_name: str) -> str:
    return field_name.replace("_", "-")


def _type_text(hint: Any) -> str:
    if hint is type(None):
        return "None"
    if isinstance(hint, type):
        return hint.__name__
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(a) for a in args)
    if origin is tuple:
        return f"tuple[{', '.join('...' if a is ... else _type_text(a) for a in args)}]"
    return str(hint).replace("typing.", "")


# ---- registry ---------------------------------------------------------------------------

PassLoader = Callable[[], type[IrcompPass]]


def _builtin_passes() -> dict[str, type[IrcompPass]]:
    from ircomp.passes import BUILTIN_PASSES

    return {cls.name: cls for cls in BUILTIN_PASSES}


def _plugin_description(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    origin = f" from distribution '{dist.name} {dist.version}'" if dist is not None else ""
    return f"plugin pass '{ep.name}' (entry point '{ep.name} = {ep.value}'{origin})"


def _plugin_loader(ep: importlib.metadata.EntryPoint) -> PassLoader:
    def load() -> type[IrcompPass]:
        what = _plugin_description(ep)
        try:
            cls = ep.load()
        except Exception as err:
            raise PipelineError(
                f"{what} failed to load: {type(err).__name__}: {err}; fix or uninstall the plugin"
            ) from err
        if not (inspect.isclass(cls) and issubclass(cls, IrcompPass)):
            raise PipelineError(f"{what} is {cls!r}, not a subclass of IrcompPass")
        if getattr(cls, "name", None) != ep.name:
            raise PipelineError(
                f"{what} loads {cls.__qualname__} whose name is "
                f"{getattr(cls, 'name', None)!r}; the entry point name must equal the "
                "pass name"
            )
        return cls

    return load


def _registry() -> dict[str, PassLoader]:
    """Pass name -> loader; plugins are only imported when asked for."""
    registry: dict[str, PassLoader] = {}
    for name, cls in _builtin_passes().items():
        registry[name] = lambda cls=cls: cls
    for ep in sorted(
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
    ):
        if ep.name in registry:
            raise PipelineError(
                f"{_plugin_description(ep)} has the name of another pass ('{ep.name}'); "
                "rename the plugin's pass"
            )
        registry[ep.name] = _plugin_loader(ep)
    return registry


def available_passes() -> dict[str, type[IrcompPass]]:
    """Every pass by pipeline name: the built-ins, then plugins (entry-point group
    `ircomp.passes`). A plugin that fails to load raises PipelineError naming it."""
    return {name: load() for name, load in sorted(_registry().items())}


# ---- pipeline strings -------------------------------------------------------------------


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def _convert_option(cls: type[IrcompPass], field_name: str, hint: Any, values: tuple) -> Any:
    """Check one option value against its declared type; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    optional = origin in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        if not values:
            return None
        hint = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)

    def one(value: Any, want: Any) -> Any:
        if want is Any:
            return value
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if want is int and isinstance(value, bool):
            raise TypeError
        if isinstance(want, type) and isinstance(value, want):
            return value
        if typing.get_origin(want) in (typing.Union, types.UnionType):
            for alt in typing.get_args(want):
                try:
                    return one(value, alt)
                except TypeError:
                    pass
        raise TypeError

    try:
        if origin is tuple:
            item = args[0] if args else Any
            return tuple(one(v, item) for v in values)
        if len(values) != 1:
            raise TypeError
        return one(values[0], hint)
    except TypeError:
        shown = ",".join(_value_text(v) for v in values) if values else "(no value)"
        raise PipelineError(
            f"pass '{cls.name}': option '{option_name(field_name)}' expects "
            f"{_type_text(hint if not optional else typing.get_type_hints(cls)[field_name])}, "
            f"got {shown}"
        ) from None


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _instantiate(cls: type[IrcompPass], spec: ArgSpec) -> IrcompPass:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    params = spec.normalize_parameter_names().parameters
    converted: dict[str, tuple] = {}
    for key, values in params.items():
        if key not in fields:
            known = [option_name(n) for n in fields]
            listing = ", ".join(known) if known else "none"
            raise PipelineError(
                f"pass '{cls.name}' has no option '{option_name(key)}'"
                f"{_suggest(option_name(key), known)} (its options: {listing})"
            )
        value = _convert_option(cls, key, hints[key], values)
        converted[key] = () if value is None else value if isinstance(value, tuple) else (value,)
    missing = sorted(cls.required_fields() - set(params))
    if missing:
        raise PipelineError(
            f"pass '{cls.name}' needs the option(s) {', '.join(map(option_name, missing))}"
        )
    try:
        return cls.from_spec(ArgSpec(cls.name, converted))
    except (ValueError, TypeError, IrcompError) as err:
        raise PipelineError(f"pass '{cls.name}': {err}") from None


def parse_pipeline(text: str) -> list[IrcompPass]:
    """Parse `pass-a,pass-b{opt=1 other=x}` into pass instances (PipelineError if invalid)."""
    try:
        specs = list(xdsl_parse_pipeline(text.strip()))
    except ArgSpecParseError as err:
        detail = str(err).rstrip().removeprefix("Error parsing pass pipeline specification:\n")
        syntax = "pass-name{option=value ...},..."
        raise PipelineError(f"malformed pipeline (expected {syntax}):\n{detail}") from None
    registry = _registry()
    passes: list[IrcompPass] = []
    for spec in specs:
        if spec.name not in registry:
            raise PipelineError(
                f"unknown pass '{spec.name}'{_suggest(spec.name, sorted(registry))} "
                "('ircomp passes' lists them all)"
            )
        passes.append(_instantiate(registry[spec.name](), spec))
    return passes


def pipeline_text(passes: Sequence[ModulePass]) -> str:
    """The pipeline string of pass instances (options that differ from their defaults)."""
    parts = []
    for p in passes:
        spec = p.spec()
        params = {option_name(k): v for k, v in spec.parameters.items()}
        parts.append(str(ArgSpec(spec.name, params)))
    return ",".join(parts)


def describe_passes() -> str:
    """Every available pass: name, options with types and defaults, and its docstring."""
    chunks = []
    for name, cls in available_passes().items():
        lines = [name]
        for opt, type_text, default in cls.options():
            shown = "required" if default is dataclasses.MISSING else _value_text(default)
            lines.append(f"  {opt}: {type_text} = {shown}")
        doc = inspect.cleandoc(cls.__doc__ or "(no description)")
        lines.extend("    " + line if line else "" for line in doc.splitlines())
        chunks.append("\n".join(lines))
    return "\n\n".join(chunks) + "\n"


# ---- the pass manager -------------------------------------------------------------------


class _LocatingPrinter(Printer):
    """Records the line on which each op is printed (to point at a failing op)."""

    def __init__(self, stream: io.StringIO) -> None:
        super().__init__(stream=stream)
        self.lines: dict[Operation, int] = {}

    def print_op(self, op: Operation) -> None:
        stream = self.stream
        assert isinstance(stream, io.StringIO)
        self.lines[op] = stream.getvalue().count("\n")
        super().print_op(op)


def _describe_op(module: ModuleOp, op: Operation) -> str:
    """`line N: <the op as printed in the module>`, or the op name if it is not in it."""
    try:
        stream = io.StringIO()
        printer = _LocatingPrinter(stream)
        printer.print_op(module)
        line = printer.lines.get(op)
        if line is not None:
            return f"line {line + 1}: {stream.getvalue().splitlines()[line].strip()}"
    except Exception:
        pass
    return op.name


def _failing_op(module: ModuleOp) -> Operation | None:
    """The first op (innermost first) whose own verifier fails."""
    for op in module.walk():
        try:
            op.verify(verify_nested_ops=False)
        except Exception:
            return op
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0] if text else type(err).__name__


@dataclass
class PassTiming:
    name: str
    seconds: float


class PassManager:
    """Runs passes over a copy of a Program, verifying after each (see the module docstring).

    `print_ir_after_all` / `print_ir_after_change` write the IR to `out` after each pass (or
    each pass that changed it) under an MLIR-style `// -----// IR Dump After <pass> //----- //`
    header; `dump_dir` gets `00-input.mlir`, `01-<pass>.mlir`, ...; `time_passes` writes a
    table of wall time per pass and for verification to `out` after the run.
    """

    def __init__(
        self,
        passes: Sequence[ModulePass],
        *,
        verify_each: bool = True,
        print_ir_after_all: bool = False,
        print_ir_after_change: bool = False,
        dump_dir: Path | str | None = None,
        time_passes: bool = False,
        out: TextIO | None = None,
    ) -> None:
        self.passes = list(passes)
        self.verify_each = verify_each
        self.print_ir_after_all = print_ir_after_all
        self.print_ir_after_change = print_ir_after_change
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.time_passes = time_passes
        self.out = out if out is not None else sys.stderr
        self.timings: list[PassTiming] = []

    @classmethod
    def from_pipeline(cls, text: str, **kwargs: Any) -> PassManager:
        return cls(parse_pipeline(text), **kwargs)

    def run(self, program: Program) -> Program:
        """Apply the passes to a copy of `program` and return it; `program` is untouched."""
        self.timings = []
        weights = program.weights.subset(set(program.weights))
        work = Program(program.module.clone(), weights)
        ctx = PassContext.for_weights(weights)
        verify_total = 0.0
        start = time.perf_counter()
        try:
            program.verify_incremental()
        except InputError as err:
            raise type(err)(f"the input to the pass pipeline: {err}") from None
        tracker = ChangeTracker(work.module) if self.verify_each else None
        verify_total += time.perf_counter() - start
        track_text = self.print_ir_after_change
        text = print_module(work.module) if (track_text or self.dump_dir) else ""
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            (self.dump_dir / "00-input.mlir").write_text(text)
        width = len(str(len(self.passes)))
        width = max(width, 2)
        for index, pass_ in enumerate(self.passes, start=1):
            pass_name = getattr(pass_, "name", type(pass_).__name__)
            start = time.perf_counter()
            try:
                pass_.apply(ctx, work.module)
            except Exception as err:
                self._dump_failure(work, index, width, pass_name)
                raise self._pass_error(pass_name, err, work.module) from err
            self.timings.append(PassTiming(pass_name, time.perf_counter() - start))
            if tracker is not None:
                start = time.perf_counter()
                self._verify_after(pass_name, work, tracker.changed_ops(work.module), index, width)
                verify_total += time.perf_counter() - start
            new_text = (
                print_module(work.module)
                if (track_text or self.dump_dir or self.print_ir_after_all)
                else ""
            )
            changed = new_text != text
            if self.print_ir_after_all or (self.print_ir_after_change and changed):
                self.out.write(f"// -----// IR Dump After {pass_name} //----- //\n")
                self.out.write(new_text)
                self.out.write("\n")
            if self.dump_dir is not None:
                name = f"{index:0{width}d}-{pass_name}.mlir"
                (self.dump_dir / name).write_text(new_text)
            text = new_text
        if tracker is None:
            start = time.perf_counter()
            self._verify_after("the pipeline", work, None, len(self.passes), width)
            verify_total += time.perf_counter() - start
        self.timings.append(PassTiming("(verification)", verify_total))
        if self.time_passes:
            self.out.write(self.timing_report())
        return Program(work.module, work.used_weights())

    def timing_report(self) -> str:
        total = sum(t.seconds for t in self.timings)
        rule = "===" + "-" * 70 + "==="
        lines = [
            rule,
            "ircomp pass execution timing report".center(len(rule)),
            rule,
            f"  Total Execution Time: {total:.4f} seconds",
            "",
            f"  {'Wall Time (s)':>13}  {'Percent':>7}  Name",
        ]
        for t in self.timings:
            percent = 100.0 * t.seconds / total if total > 0 else 0.0
            lines.append(f"  {t.seconds:13.4f}  {percent:6.1f}%  {t.name}")
        lines.append(f"  {total:13.4f}  {100.0:6.1f}%  Total")
        return "\n".join(lines) + "\n"

    # ---- failures ---------------------------------------------------------------------

    def _verify_after(
        self,
        pass_name: str,
        work: Program,
        changed: list[Operation] | None,
        index: int,
        width: int,
    ) -> None:
        """Verify what the pass changed (`changed`), or the whole program when None."""
        try:
            if changed is None:
                work.verify()
            else:
                work.verify_ops(changed)
        except Exception as err:
            self._dump_failure(work, index, width, pass_name)
            op = _failing_op(work.module)
            where = f"\n  at {_describe_op(work.module, op)}" if op is not None else ""
            raise PassFailure(
                f"pass '{pass_name}' left IR that fails verification: {_first_line(err)}{where}"
            ) from None

    def _pass_error(
        self, pass_name: str, err: Exception, module: ModuleOp
    ) -> PassFailure | InputError:
        op = getattr(err, "op", None)
        where = ""
        if isinstance(op, Operation):
            where = f"\n  at {_describe_op(module, op)}"
        if isinstance(err, InputError):  # the model cannot take this pass: the user can fix it
            return InputError(f"pass '{pass_name}': {err}{where}")
        kind = "" if isinstance(err, IrcompError) else f"{type(err).__name__}: "
        return PassFailure(f"pass '{pass_name}' failed: {kind}{_first_line(err)}{where}")

    def _dump_failure(self, work: Program, index: int, width: int, pass_name: str) -> None:
        if self.dump_dir is None:
            return
        try:
            text = print_module(work.module, generic=True)
        except Exception:
            return
        (self.dump_dir / f"{index:0{width}d}-{pass_name}.failed.mlir").write_text(text)
