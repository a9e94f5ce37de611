"""Ultralytics, when autotune's own process imports it, logs to stderr: stdout carries autotune's results alone.

Ultralytics binds its log handler to sys.stdout at import time, and its first import on a machine prints
"Creating new Ultralytics Settings ..." there, which broke `--json` output on a fresh GPU machine.
"""

from __future__ import annotations

import contextlib
import sys


def import_quietly() -> None:
    """Import Ultralytics with stdout pointed at the process's real stderr (once; later calls do nothing)."""
    if "ultralytics" in sys.modules:
        return
    # sys.__stderr__, not sys.stderr: a test runner's stand-in stream would be closed while the handler lives on
    with contextlib.redirect_stdout(sys.__stderr__ or sys.stderr):
        import ultralytics.utils  # noqa: F401  (binds Ultralytics' LOGGER handler to the stream above)
