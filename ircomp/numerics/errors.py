"""The error type of the numerics library."""

from __future__ import annotations


class FormatError(ValueError):
    """A numeric format, code or value is invalid for the operation asked."""
