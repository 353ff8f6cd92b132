"""Durations (``1h30m``) and sizes (``512MiB``) as the catalog writes them.

Both parsers are pure and round-trip: ``parse_duration(format_duration(d)) == d`` and
``parse_size(format_size(n)) == n``.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION_UNITS: dict[str, int] = {  # in milliseconds
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}
_DURATION_ORDER = ("d", "h", "m", "s", "ms")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_DURATION_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d))+")

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)")

DURATION_HINT = "write a duration such as 500ms, 30s, 15m, 2h, 1d or 1h30m"
SIZE_HINT = "write a size such as 512MiB, 2GiB, 256Mi or 1G"


def parse_duration(text: str) -> timedelta:
    """Parse ``500ms``, ``30s``, ``15m``, ``2h``, ``1d`` and combinations (``1h30m``).

    Units must appear from the largest to the smallest, each at most once, so that a
    typo such as ``30m1h`` is reported rather than silently summed.
    """
    value = text.strip()
    if not _DURATION_WHOLE.fullmatch(value):
        raise ValueError(f"invalid duration {text!r}: {DURATION_HINT}")
    total = 0
    last_rank = -1
    for number, unit in _DURATION_PART.findall(value):
        rank = _DURATION_ORDER.index(unit)
        if rank <= last_rank:
            raise ValueError(
                f"invalid duration {text!r}: units must go from largest to smallest, "
                f"each once ({DURATION_HINT})"
            )
        last_rank = rank
        total += int(number) * _DURATION_UNITS[unit]
    return timedelta(milliseconds=total)


def format_duration(value: timedelta) -> str:
    """The shortest catalog spelling of a duration: ``timedelta(minutes=90)`` -> ``1h30m``."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms < 0:
        raise ValueError("durations cannot be negative")
    if total_ms == 0:
        return "0s"
    parts: list[str] = []
    for unit in _DURATION_ORDER:
        size = _DURATION_UNITS[unit]
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_size(text: str) -> int:
    """Parse a size in bytes: ``512MiB``, ``2GiB``, ``256Mi``, ``1G``, ``1.5GiB``, ``4096``."""
    match = _SIZE_RE.fullmatch(text.strip())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"invalid size {text!r}: {SIZE_HINT}")
    number, unit = match.groups()
    size = float(number) * _SIZE_UNITS[unit]
    if size != int(size):
        raise ValueError(f"invalid size {text!r}: it is not a whole number of bytes")
    if size <= 0:
        raise ValueError(f"invalid size {text!r}: a size must be greater than zero")
    return int(size)


def format_size(size: int) -> str:
    """The catalog spelling of a byte count, binary units first: 536870912 -> ``512MiB``."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = _SIZE_UNITS[unit]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
