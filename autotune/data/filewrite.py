"""Writing many files in parallel: the process pool's start-up checks. Shared by the demo generator and
`autotune resize`; each file is written with files.atomic_write, so a killed run never leaves half a dataset."""

from __future__ import annotations

import os
import sys

import cv2


def worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would only oversubscribe


def spawn_can_start() -> bool:
    """False when spawned workers could not re-import the caller's main script (``python - < file``)."""
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    by_name = getattr(getattr(main, "__spec__", None), "name", None)
    return by_name is not None or main_file is None or os.path.isfile(main_file)
