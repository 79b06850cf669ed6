"""Atomic file writes (a crash or a full disk mid-write never leaves half a file), and free space."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once, at import: os.umask() briefly changes a process-wide setting
_UMASK = _read_umask()


def _atomic(dest: Path, fill: Callable[[str], object]) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}-", suffix=".part", dir=str(dest.parent))
    os.close(fd)
    try:
        fill(tmp)
        # mkstemp makes 0600; the file gets the permissions a normal write would give
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return dest


def atomic_write_text(dest: Path, text: str) -> Path:
    return _atomic(dest, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


_COPY_BLOCK = 8 << 20


def atomic_copy(src: Path, dest: Path, on_block: Callable[[int], None] | None = None) -> Path:
    """Copy ``src`` to ``dest`` atomically. ``on_block(n)`` is called after every block of ``n``
    bytes (progress; it may raise to stop the copy, which then leaves nothing behind)."""
    if on_block is None:
        return _atomic(dest, lambda tmp: shutil.copyfile(src, tmp))

    def fill(tmp: str) -> None:
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            while block := fi.read(_COPY_BLOCK):
                fo.write(block)
                on_block(len(block))

    return _atomic(dest, fill)


def free_bytes(path: Path) -> int:
    """Free space on the disk that holds ``path`` (or its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p.parent != p:
        p = p.parent
    return shutil.disk_usage(p).free
