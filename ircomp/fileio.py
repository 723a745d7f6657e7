"""Writing outputs so that a failure never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def default_file_mode() -> int:
    """What `open(..., "w")` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def publish(tmp: Path, target: Path) -> None:
    """Move a fully written temporary file onto `target` with ordinary permissions."""
    os.chmod(tmp, default_file_mode())
    os.replace(tmp, target)


def atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `target`, then rename it onto `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        publish(Path(tmp), target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
