"""Configuration of LogicNets / NullaNet Tiny style networks (`LogicNetConfig`) and the presets.

Kept free of torch so that the `ircomp train` command line can list presets cheaply; the
network itself is `ircomp.train.logicnet`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ircomp.errors import InputError

__all__ = [
    "ACTIVATIONS",
    "MASK_MODES",
    "MAX_BITS",
    "PRESETS",
    "SCALE_MODES",
    "LogicNetConfig",
    "code_range",
    "preset",
]

ACTIVATIONS = ("binary", "bipolar", "relu", "hardtanh")
MASK_MODES = ("random", "learned")
SCALE_MODES = ("learned", "calibrated")
MAX_BITS = 8


# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class LogicNetConfig:
    """Everything that defines a LogicNet and how it is trained.

    Per-layer lists have one entry per linear layer: the hidden layers, then the output layer.
    `bits[i]` is the width of layer i's output codes (1 for ``binary``/``bipolar``).
    `epochs` are the quantization-aware epochs with the final masks; `float_epochs` the float
    pre-training before them (dense when `mask` is ``learned``).
    """

    hidden: list[int]
    fan_in: list[int]
    bits: list[int]
    activations: list[str]
    in_features: int = 64
    classes: int = 10
    input_bits: int = 2
    input_scale: float | None = None  # None: 1 / (2^input_bits - 1), [0, 1] onto every code
    mask: str = "random"
    seed: int = 0
    epochs: int = 60
    float_epochs: int = 30
    lr: float = 1e-2
    batch_size: int = 64
    weight_decay: float = 0.0
    fan_in_penalty: float = 0.0  # learned masks: fan-in penalty in the dense phase (0: off)
    prune_stages: int = 3  # learned masks: fan-in shrinks geometrically to F over these stages
    prune_epochs: int = 10  # learned masks: float fine-tuning epochs after each pruning stage
    scale_mode: str = "learned"
    accuracy_target: float | None = None  # learned masks: relax fan-ins until reached
    max_relax_rounds: int = 4
    max_table_bits: int = 16  # neurons with more input bits are checked on data, not exhaustively
    name: str = "custom"
    notes: str = field(default="", compare=False)

    @property
    def num_layers(self) -> int:
        return len(self.hidden) + 1

    @property
    def widths(self) -> list[int]:
        return [self.in_features, *self.hidden, self.classes]

    @property
    def in_scale(self) -> float:
        """The input quantizer's scale as a float32 value (what `nn.quantize` computes with)."""
        s = self.input_scale if self.input_scale is not None else 1.0 / (2**self.input_bits - 1)
        return float(np.float32(s))

    def input_code_bits(self, layer: int) -> int:
        """Width of the codes layer `layer` reads."""
        return self.input_bits if layer == 0 else self.bits[layer - 1]

    def table_bits(self) -> list[int]:
        """Input bits of each layer's neurons (β·F): the truth table has 2^(β·F) rows."""
        return [self.input_code_bits(i) * f for i, f in enumerate(self.fan_in)]

    def validate(self) -> LogicNetConfig:
        """Raise `InputError` with a clear message for any impossible setting; returns self."""
        n = self.num_layers
        if any(w < 1 for w in self.widths):
            raise InputError(f"layer widths must be positive, got {self.widths}")
        for key in ("fan_in", "bits", "activations"):
            value = getattr(self, key)
            if len(value) != n:
                raise InputError(
                    f"{key.replace('_', '-')} needs {n} values (one per layer: "
                    f"{len(self.hidden)} hidden + output), got {len(value)}: {value}"
                )
        for i, act in enumerate(self.activations):
            if act not in ACTIVATIONS:
                raise InputError(
                    f"layer {i}: unknown activation {act!r}; use one of {', '.join(ACTIVATIONS)}"
                )
        for i, (f, fin) in enumerate(zip(self.fan_in, self.widths[:-1], strict=True)):
            if f < 1:
                raise InputError(f"layer {i}: fan-in must be at least 1, got {f}")
            if f > fin:
                raise InputError(f"layer {i}: fan-in {f} exceeds the layer's {fin} inputs")
        if not 1 <= self.input_bits <= MAX_BITS:
            raise InputError(f"input bits must be between 1 and {MAX_BITS}, got {self.input_bits}")
        for i, (b, act) in enumerate(zip(self.bits, self.activations, strict=True)):
            if not 1 <= b <= MAX_BITS:
                raise InputError(f"layer {i}: bits must be between 1 and {MAX_BITS}, got {b}")
            if act in ("binary", "bipolar") and b != 1:
                raise InputError(f"layer {i}: a {act} activation has 1 bit, not {b}")
            if act == "hardtanh" and b < 2:
                raise InputError(
                    f"layer {i}: hardtanh needs at least 2 bits (signed codes); use bipolar "
                    "for a 1-bit signed activation"
                )
        if self.input_scale is not None and not (0 < self.input_scale < math.inf):
            raise InputError(f"input scale must be positive, got {self.input_scale}")
        if self.mask not in MASK_MODES:
            raise InputError(f"unknown mask mode {self.mask!r}; use random or learned")
        if self.scale_mode not in SCALE_MODES:
            raise InputError(f"unknown scale mode {self.scale_mode!r}; use learned or calibrated")
        if self.epochs < 0 or self.float_epochs < 0 or self.epochs + self.float_epochs == 0:
            raise InputError(
                f"epochs must be >= 0 and not all zero, got epochs={self.epochs}, "
                f"float_epochs={self.float_epochs}"
            )
        if not self.lr > 0:
            raise InputError(f"learning rate must be positive, got {self.lr}")
        if self.prune_stages < 1 or self.prune_epochs < 0:
            raise InputError(
                f"prune_stages must be >= 1 and prune_epochs >= 0, got {self.prune_stages}, "
                f"{self.prune_epochs}"
            )
        if self.batch_size < 1:
            raise InputError(f"batch size must be positive, got {self.batch_size}")
        if self.accuracy_target is not None:
            if not 0 < self.accuracy_target <= 1:
                raise InputError(
                    f"accuracy target must be a fraction in (0, 1], got {self.accuracy_target}"
                )
            if self.mask != "learned":
                raise InputError(
                    "an accuracy target relaxes learned fan-ins; use --mask learned with it"
                )
        if self.max_table_bits < 1 or self.max_table_bits > 20:
            raise InputError(f"max_table_bits must be in 1..20, got {self.max_table_bits}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogicNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown LogicNet config keys {unknown}")
        return cls(**data)

    def replace(self, **changes: Any) -> LogicNetConfig:
        out = copy.deepcopy(self)
        for key, value in changes.items():
            if not hasattr(out, key):
                raise InputError(f"LogicNetConfig has no field {key!r}")
            setattr(out, key, value)
        return out


def _per_layer(value: int | str, n: int) -> list[Any]:
    return [value] * n


def _presets() -> dict[str, LogicNetConfig]:
    jsc_hidden = [64, 32, 32, 32]
    return {
        # LogicNets style: 64-32-16-10, fan-in 4, 2-bit everywhere, fixed random masks.
        # Hidden activations QuantReLU, output QuantHardTanh, as LogicNets' JSC models.
        "logicnets-digits": LogicNetConfig(
            name="logicnets-digits",
            hidden=[32, 16],
            fan_in=_per_layer(4, 3),
            bits=_per_layer(2, 3),
            activations=["relu", "relu", "hardtanh"],
            input_bits=2,
            mask="random",
            epochs=60,
            float_epochs=20,
            notes="LogicNets style: random fixed fan-in masks, 2-bit everywhere",
        ),
        # NullaNet Tiny style: learned fan-in, per-layer activation choice and bits, a cheap
        # output layer; every neuron reads at most 12 bits.
        "nullanet-digits": LogicNetConfig(
            name="nullanet-digits",
            hidden=[64, 32],
            fan_in=[6, 6, 12],
            bits=[2, 1, 3],
            activations=["relu", "binary", "relu"],
            input_bits=2,
            mask="learned",
            epochs=40,
            float_epochs=30,
            notes="NullaNet Tiny style: learned fan-in, per-layer activations and bits "
            "(2-bit relu, binary, 3-bit output); every neuron reads 12 bits",
        ),
        # LogicNets JSC-S / JSC-M shapes (hidden 64-32-32-32), adapted to 64 digit features
        # and 10 classes.
        "jsc-s": LogicNetConfig(
            name="jsc-s",
            hidden=jsc_hidden,
            fan_in=_per_layer(3, 5),
            bits=_per_layer(2, 5),
            activations=["relu"] * 4 + ["hardtanh"],
            input_bits=2,
            mask="random",
            epochs=60,
            float_epochs=20,
            notes="LogicNets JSC-S shape: fan-in 3, 2-bit",
        ),
        "jsc-m": LogicNetConfig(
            name="jsc-m",
            hidden=jsc_hidden,
            fan_in=_per_layer(4, 5),
            bits=_per_layer(3, 5),
            activations=["relu"] * 4 + ["hardtanh"],
            input_bits=3,
            mask="random",
            epochs=60,
            float_epochs=20,
            notes="LogicNets JSC-M shape: fan-in 4, 3-bit",
        ),
    }


PRESETS: dict[str, LogicNetConfig] = _presets()


def preset(name: str) -> LogicNetConfig:
    """A copy of the named preset; unknown names are an `InputError` listing the presets."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return copy.deepcopy(PRESETS[name])


def code_range(kind: str, bits: int) -> tuple[int, int]:
    """Output codes of an activation: binary/bipolar 0..1 (bipolar's bit b means 2b-1)."""
    if kind in ("binary", "bipolar"):
        return 0, 1
    if kind == "relu":
        return 0, 2**bits - 1
    if kind == "hardtanh":
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    raise InputError(f"unknown activation {kind!r}")
