"""Writing outputs so that a failure never leaves a half-written file behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def default_file_mode() -> int:
    """What `open(..., "w")` would give a new file under the current umask."""
    return 0o666 & ~_umask()


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


def write_folder(out_dir: Path, files: dict[str, bytes | str]) -> Path:
    """Write `files` into a temporary folder beside `out_dir`, then put it in place of `out_dir`
    (replaced whole), so a failure leaves the old folder, never a half-written one."""
    out_dir = Path(out_dir)
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        for name, content in sorted(files.items()):
            path = tmp / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out_dir.name}.old-"))
            os.replace(out_dir, old / "out")
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
