"""Writing many files safely and in parallel: atomic writes, and the process pool's start-up checks.

Shared by the demo generator and `autotune resize`, which both write datasets that a killed run must never
leave half-written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2


def temp_name(path: Path) -> Path:
    """Hidden, per-process temp name beside `path`: never matched by a glob for images, and removed on rerun."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and os.replace, so a file under its final name is always whole."""
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:  # cleanup, then the same error: Ctrl-C included
        tmp.unlink(missing_ok=True)
        raise


def worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would only oversubscribe


def spawn_can_start() -> bool:
    """False when spawned workers could not re-import the caller's main script (``python - < file``)."""
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    by_name = getattr(getattr(main, "__spec__", None), "name", None)
    return by_name is not None or main_file is None or os.path.isfile(main_file)
