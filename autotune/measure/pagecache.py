"""Whether files are in the OS page cache (read warm) or must come from disk (read cold), and moving them.

Linux only: mincore(2) on a read-only mapping tells which pages are resident; posix_fadvise(DONTNEED) drops them.
Elsewhere the state is reported as unknown and nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from collections.abc import Iterable
from pathlib import Path

_PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_MAP_FAILED = ctypes.c_void_p(-1).value


def resident_pages(path: str | Path) -> tuple[int, int]:
    """(resident pages, total pages) of one file; (0, 0) when it cannot be told."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            return 0, 0
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0, 0
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, _MAP_FAILED):
            return 0, 0
        try:
            pages = (size + _PAGE - 1) // _PAGE
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                return 0, 0
            return sum(v & 1 for v in vec), pages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def resident_fraction(paths: Iterable[str | Path]) -> float | None:
    """Share of the files' pages already in RAM (page-weighted); None when nothing could be checked."""
    res = tot = 0
    for p in paths:
        r, t = resident_pages(p)
        res, tot = res + r, tot + t
    return res / tot if tot else None


def describe(fraction: float | None) -> str:
    """'warm' (>= 90% resident), 'cold' (<= 10%), 'mixed', or 'unknown'."""
    if fraction is None:
        return "unknown"
    if fraction >= 0.9:
        return "warm"
    if fraction <= 0.1:
        return "cold"
    return "mixed"


def drop(paths: Iterable[str | Path]) -> None:
    """Ask the kernel to evict the files' clean pages, so the next read comes from disk."""
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fdatasync(fd)  # dirty pages (a freshly written .npy) cannot be evicted until written back
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (OSError, AttributeError):
            pass  # not supported here: the files simply stay as they are, and the measured state says so
        finally:
            os.close(fd)


def warm(paths: Iterable[str | Path], chunk: int = 1 << 20) -> None:
    """Read the files once so they sit in the page cache."""
    for p in paths:
        try:
            with open(p, "rb", buffering=0) as f:
                while f.read(chunk):
                    pass
        except OSError:
            continue
