"""Where autotune keeps its own files, and how it writes them: whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

from autotune.errors import UserError


def cache_root() -> Path:
    """autotune's folder: $AUTOTUNE_CACHE, else $XDG_CACHE_HOME/autotune, else ~/.cache/autotune."""
    if os.environ.get("AUTOTUNE_CACHE"):
        return Path(os.environ["AUTOTUNE_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "autotune"
    return Path.home() / ".cache" / "autotune"


def temp_name(path: Path) -> Path:
    """Hidden, per-process temp name beside `path`: never matched by a glob for images, and removed on rerun."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: Path, data: bytes | str) -> Path:
    """Write via a temp file in the same folder and os.replace, so a file under its final name is always whole
    (a crash or Ctrl-C leaves the old file or none, never a truncated one)."""
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:  # cleanup, then the same error: Ctrl-C included
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_out_folder(path: Path, flag: str = "--out") -> Path:
    """A folder autotune may create or write into: not a file, and not under one (checked before any work, so a bad
    --out is one line, not an error after minutes of measuring)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {path}: {parent} is a file, not a folder")
            break
    return path
