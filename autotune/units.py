"""The quantities users type and read: durations, byte sizes, WIDTHxHEIGHT, key=value lists; and one way to print
seconds and bytes. Pure functions; a bad value is a UserError with one sentence."""

from __future__ import annotations

import re

from autotune.errors import UserError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|hr|hours?|m|min|mins|minutes?|s|sec|secs|seconds?)?\s*$", re.I)
_UNIT_S = {"h": 3600, "m": 60, "s": 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.I)


def parse_duration(text: str) -> float:
    """'20min' -> 1200.0 seconds; '90s', '1h', '1.5h', '45' (minutes) are accepted. Must be > 0."""
    total = 0.0
    parts = re.findall(r"\d+(?:\.\d+)?\s*[a-zA-Z]*", text or "")
    if not parts or "".join(p.replace(" ", "") for p in parts) != (text or "").replace(" ", ""):
        raise UserError(f"cannot read duration {text!r}: use e.g. 20min, 90s, 1h, 1h30m")
    for part in parts:
        m = _DURATION.match(part)
        if not m:
            raise UserError(f"cannot read duration {text!r}: use e.g. 20min, 90s, 1h, 1h30m")
        unit = (m.group(2) or "m").lower()[0]
        total += float(m.group(1)) * _UNIT_S[unit]
    if total <= 0:
        raise UserError(f"duration must be more than zero, got {text!r}")
    return total


def parse_memory_limit(text: str, total_bytes: int) -> int:
    """'0.9' -> 90% of total_bytes; '20GiB', '20GB', '512MiB' -> bytes (binary units either way)."""
    s = str(text).strip()
    try:
        frac = float(s)
    except ValueError:
        frac = None
    if frac is not None:
        if not 0 < frac <= 1:
            raise UserError(f"memory limit fraction must be in (0, 1], got {text!r}; or give a size like 20GiB")
        return int(frac * total_bytes)
    m = _SIZE.match(s)
    if not m or not m.group(2):
        raise UserError(f"cannot read memory limit {text!r}: use a fraction like 0.9 or a size like 20GiB")
    power = "BKMGT".index(m.group(2)[0].upper())
    value = int(float(m.group(1)) * 1024**power)
    if value <= 0:
        raise UserError(f"memory limit must be more than zero, got {text!r}")
    return value


def parse_size(text: str, least: int = 32) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); each side at least `least` pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m:
        raise UserError(f"cannot read size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720")
    w, h = int(m.group(1)), int(m.group(2))
    if w < least or h < least:
        raise UserError(f"size must be at least {least}x{least}, got {text!r}")
    return w, h


def parse_assignments(text: str) -> dict[str, str]:
    """'batch=16,workers=8' -> {'batch': '16', 'workers': '8'}."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"cannot read {item!r}: use key=value pairs separated by commas, e.g. batch=16,workers=8")
        out[key.strip()] = value.strip()
    return out


def fmt_s(s: float | None, missing: str = "n/a") -> str:
    """Seconds for people, three significant digits or so: '2.50 h', '12.3 min', '44.0 s', '4.20 s', '310 ms'."""
    if s is None:
        return missing
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1000:.0f} ms" if s >= 0.1 else f"{s * 1000:.1f} ms"


def fmt_bytes(n: float | None) -> str:
    """Bytes in binary units: '512 B', '3.1 MiB', '2.00 TiB'."""
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"
