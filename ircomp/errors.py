"""ircomp's error hierarchy. Library code raises these; only the CLI prints them.

`InputError` means the user's input is wrong (the CLI exits with 2); any other `IrcompError`
is a failure inside ircomp (exit 1, with a hint to report it).
"""

from __future__ import annotations


class IrcompError(Exception):
    """Base of every error ircomp raises on purpose."""


class InputError(IrcompError):
    """Bad input: a malformed file, an unknown pass, an invalid option, a failed verification."""


class IRParseError(InputError):
    """Text that is not valid ircomp IR; the message carries file:line:col and the token."""


class VerificationError(InputError):
    """A module that breaks an op's shape or format rule."""


class WeightStoreError(InputError):
    """A weight file that is missing, unreadable, or whose content does not match its hash."""


class PipelineError(InputError):
    """An unknown pass, a bad option, or a malformed pipeline string."""


class PassFailure(IrcompError):
    """A pass raised or broke the IR; the message names the pass and the op."""
