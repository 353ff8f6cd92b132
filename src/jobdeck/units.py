"""Durations (``1h30m``) and sizes (``512MiB``) as the catalog writes them, and the
times people give on the command line, the API and the dashboard (``2h`` from now or ISO).

Both parsers are pure and round-trip: ``parse_duration(format_duration(d)) == d`` and
``parse_size(format_size(n)) == n``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from fractions import Fraction

_DURATION_UNITS: dict[str, int] = {  # in milliseconds
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}
_DURATION_ORDER = ("d", "h", "m", "s", "ms")
# ASCII digits only: ``\d`` would also accept other scripts' digits.
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_DURATION_WHOLE = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d))+")

_SIZE_UNITS: dict[str, int] = {
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
_SIZE_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)")

DURATION_HINT = "write a duration such as 500ms, 30s, 15m, 2h, 1d or 1h30m"
SIZE_HINT = "write a size such as 512MiB, 2GiB, 256Mi or 1G"


def parse_duration(text: str) -> timedelta:
    """Parse ``500ms``, ``30s``, ``15m``, ``2h``, ``1d`` and combinations (``1h30m``).

    Units must appear from the largest to the smallest, each at most once, so that a
    typo such as ``30m1h`` is reported rather than silently summed.
    """
    value = text.strip()
    if not _DURATION_WHOLE.fullmatch(value):
        raise ValueError(f"invalid duration {text!r}; {DURATION_HINT}")
    total = 0
    last_rank = -1
    for number, unit in _DURATION_PART.findall(value):
        rank = _DURATION_ORDER.index(unit)
        if rank <= last_rank:
            raise ValueError(
                f"invalid duration {text!r}: units must go from the largest to the "
                f"smallest, each once; {DURATION_HINT}"
            )
        last_rank = rank
        total += int(number) * _DURATION_UNITS[unit]
    try:
        return timedelta(milliseconds=total)
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: it is too long; shorten it") from None


def parse_instant(text: str, zone: tzinfo = UTC) -> datetime:
    """An ISO 8601 time (``Z`` allowed); without an offset it is read in ``zone``."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def parse_until(text: str, now: datetime) -> datetime:
    """The end of a suspension: a duration from ``now`` (``2h``) or an ISO 8601 time.

    Raises ValueError when it is neither; callers say so in their own words.
    """
    try:
        return now + parse_duration(text)
    except ValueError:
        return parse_instant(text)


def format_duration(value: timedelta) -> str:
    """The shortest catalog spelling of a duration: ``timedelta(minutes=90)`` -> ``1h30m``."""
    # Integer arithmetic: total_seconds() is a float and loses precision on long spans.
    total_ms = (value // timedelta(microseconds=1) + 500) // 1000
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
    """Parse a size in bytes: ``512MiB``, ``2GiB``, ``256Mi``, ``1G``, ``1.5GiB``, ``4096B``.

    A unit is required: a bare ``512`` is far more often a forgotten ``MiB`` than a
    deliberate 512 bytes.
    """
    match = _SIZE_RE.fullmatch(text.strip())
    if match and not match.group(2):
        raise ValueError(
            f"invalid size {text!r}: a number without a unit is ambiguous; "
            f"add one, e.g. '{match.group(1)}MiB' (or '{match.group(1)}B' for bytes)"
        )
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"invalid size {text!r}; {SIZE_HINT}")
    number, unit = match.groups()
    # Fraction, not float: exact for any length of digits, so 1.1GiB is checked exactly.
    size = Fraction(number) * _SIZE_UNITS[unit]
    if size.denominator != 1:
        raise ValueError(
            f"invalid size {text!r}: it is not a whole number of bytes; "
            "use a smaller unit, e.g. 1536MiB for 1.5GiB"
        )
    if size <= 0:
        raise ValueError(f"invalid size {text!r}: it must be greater than zero; {SIZE_HINT}")
    return int(size)


def format_size(size: int) -> str:
    """The shortest catalog spelling of a byte count, binary units first on a tie:
    536870912 -> ``512MiB``, 128000000 -> ``128M`` (not ``125000KiB``), 1000 -> ``1K``,
    1500 -> ``1500B``."""
    if size <= 0:
        raise ValueError("sizes must be greater than zero")
    spellings = [f"{size}B"]
    for unit in ("TiB", "GiB", "MiB", "KiB", "T", "G", "M", "K"):
        factor = _SIZE_UNITS[unit]
        if size % factor == 0:
            spellings.append(f"{size // factor}{unit}")
    # The fewest digits; among equals, the first found (binary before decimal).
    return min(spellings[1:] or spellings, key=lambda s: len(s.rstrip("BKMGTi")))
