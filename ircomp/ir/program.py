"""A `Program` is an IR module plus the weight store its `nn.weight` ops point into.

Text I/O: `parse_program` / `print_program` (MLIR syntax, custom or generic form, parse(print(m))
is byte-identical), and `load_program` / `save_program` for `model.mlir` + `model.safetensors`.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException, ParseError, VerifyException

from ircomp.dialects.logic import Logic
from ircomp.dialects.nn import NN, WeightOp
from ircomp.dialects.num import Num
from ircomp.errors import IRParseError, VerificationError, WeightStoreError
from ircomp.fileio import publish
from ircomp.ir.weights import WeightStore

WEIGHTS_SUFFIX = ".safetensors"


def make_context() -> Context:
    """An xDSL context with every dialect ircomp reads and writes."""
    ctx = Context()
    for dialect in (Builtin, func.Func, Num, NN, Logic):
        ctx.load_dialect(dialect)
    return ctx


@dataclass(frozen=True)
class SourceText:
    """The text a module was parsed from, so errors can point at file:line:col."""

    filename: str
    text: str


@dataclass
class Program:
    module: ModuleOp
    weights: WeightStore = field(default_factory=WeightStore)
    source: SourceText | None = None
    # Fingerprints taken at the last full verification (see `verify_incremental`).
    _verified: ChangeTracker | None = field(default=None, repr=False, compare=False)

    def weight_ops(self) -> list[WeightOp]:
        return [op for op in self.module.walk() if isinstance(op, WeightOp)]

    def verify(self) -> None:
        """Verify every op and that each weight handle resolves to a tensor of its type."""
        verify_module(self.module, self.source)
        for op in self.weight_ops():
            self.check_weight(op)
        self._verified = ChangeTracker(self.module)

    def verify_incremental(self) -> None:
        """Verify what changed since the last `verify()` (everything, if it never ran)."""
        if self._verified is None:
            self.verify()
            return
        try:
            self.verify_ops(self._verified.changed_ops(self.module))
        except VerificationError:
            self._verified = None
            raise

    def verify_ops(self, ops: Iterable[Operation]) -> None:
        """Verify only `ops` (each on its own, not what it nests): incremental verification."""
        for op in ops:
            try:
                op.verify(verify_nested_ops=False)
            except VerifyException as err:
                raise VerificationError(str(err)) from None
            if isinstance(op, WeightOp):
                self.check_weight(op)

    def check_weight(self, op: WeightOp) -> None:
        array = self.weights.get(op.hash.data)
        expected = tuple(op.result.type.get_shape())  # type: ignore[union-attr]
        if array.shape != expected:
            raise VerificationError(
                f"nn.weight '{op.weight_name.data}': stored tensor has shape "
                f"{array.shape}, the IR says {expected}"
            )

    def clone(self) -> Program:
        """A deep copy of the module sharing the (read-only) weight arrays."""
        return Program(self.module.clone(), self.weights)

    def used_weights(self) -> WeightStore:
        return self.weights.subset({op.hash.data for op in self.weight_ops()})


class ChangeTracker:
    """Fingerprints every op so that after a pass only what it touched is verified again.

    An op's verifier reads only its operands' types, its properties, attributes and result
    types, so an op needs re-verification when it is new, when any of those changed, or when
    it uses a value whose defining op changed. Fingerprinting is a small fraction of the cost of
    verifying, which keeps verify-after-every-pass cheap on large modules.
    """

    def __init__(self, module: Operation) -> None:
        self._prints = self._take(module)

    @staticmethod
    def _take(module: Operation) -> dict[int, tuple[Operation, tuple[Any, ...]]]:
        return {
            id(op): (
                op,
                (
                    id(op.parent),
                    tuple(map(id, op.operands)),
                    tuple(r.type for r in op.results),
                    tuple(op.properties.items()),
                    tuple(op.attributes.items()),
                ),
            )
            for op in module.walk()
        }

    def changed_ops(self, module: Operation) -> list[Operation]:
        """Ops to re-verify since the last call, in program order; updates the fingerprints."""
        now = self._take(module)
        dirty: dict[int, Operation] = {}
        for key, (op, fingerprint) in now.items():
            before = self._prints.get(key)
            if before is None or before[0] is not op or before[1] != fingerprint:
                dirty[key] = op
                for result in op.results:
                    for use in result.uses:
                        dirty[id(use.operation)] = use.operation
        self._prints = now
        return [op for key, (op, _) in now.items() if key in dirty]


def verify_module(module: Operation, source: SourceText | None = None) -> None:
    """Verify `module`; with its source text, the error names file:line:col of the bad op."""
    try:
        module.verify()
    except VerifyException as err:
        failing = _first_failing_op(module)
        where = _locate(failing, source) if failing is not None and source else None
        if where is None:
            raise VerificationError(str(err)) from None
        location, line = where
        raise VerificationError(f"{location}: error: {err}\n{line}") from None


def _first_failing_op(module: Operation) -> Operation | None:
    for op in module.walk():
        try:
            op.verify(verify_nested_ops=False)
        except VerifyException:
            return op
    return None


def _locate(op: Operation, source: SourceText) -> tuple[str, str] | None:
    """file:line:col of `op` in its source, found by its first result's SSA name."""
    if not op.results or op.results[0].name_hint is None:
        return None
    name = re.escape(op.results[0].name_hint)
    pattern = re.compile(rf"^(\s*)%{name}(?:\s*,\s*%[\w.$-]+)*\s*=\s*{re.escape(op.name)}\b")
    for number, line in enumerate(source.text.splitlines(), start=1):
        match = pattern.match(line)
        if match:
            return f"{source.filename}:{number}:{len(match.group(1)) + 1}", line
    return None


def parse_module(text: str, filename: str = "<input>", ctx: Context | None = None) -> ModuleOp:
    """Parse MLIR text; errors become IRParseError with file:line:col and the offending token."""
    try:
        return Parser(ctx or make_context(), text, filename).parse_module()
    except ParseError as err:
        raise IRParseError(str(err).rstrip()) from None
    except DiagnosticException as err:
        raise IRParseError(f"{filename}: {err}") from None


def print_module(module: Operation, generic: bool = False) -> str:
    out = io.StringIO()
    Printer(stream=out, print_generic_format=generic).print_op(module)
    out.write("\n")
    return out.getvalue()


def weights_path_for(mlir_path: Path) -> Path:
    return mlir_path.with_suffix(WEIGHTS_SUFFIX)


def load_program(path: Path, weights: Path | None = None, verify: bool = True) -> Program:
    """Read `model.mlir` and the weights file beside it (`model.safetensors`)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise IRParseError(f"cannot read {path}: {err}") from None
    module = parse_module(text, str(path))
    program = Program(module, WeightStore(), SourceText(str(path), text))
    if program.weight_ops():
        wpath = weights or weights_path_for(path)
        if not wpath.exists():
            raise WeightStoreError(
                f"{path} uses weights but {wpath} is missing; keep the .safetensors file beside "
                "the .mlir file or pass its path"
            )
        program.weights = WeightStore.load(wpath)
    if verify:
        program.verify()
    return program


def save_program(program: Program, path: Path, generic: bool = False) -> None:
    """Write `path` (.mlir) and its weights file; each is fully written before it replaces
    the old file, weights first, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".ircomp-") as tmp:
        tmp_mlir = Path(tmp) / path.name
        tmp_mlir.write_text(print_module(program.module, generic))
        tmp_weights = weights_path_for(tmp_mlir)
        has_weights = bool(program.weight_ops())
        if has_weights:
            program.used_weights().save(tmp_weights)
        if has_weights:
            publish(tmp_weights, weights_path_for(path))
        publish(tmp_mlir, path)
