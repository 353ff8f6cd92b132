"""How the dashboard writes times, durations, sizes and triggers (pure, Jinja filters)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jobdeck.catalog.model import Schedule
from jobdeck.catalog.monitors import Monitor
from jobdeck.store.records import Run
from jobdeck.units import format_duration

# Statuses shown as trouble (red), as in progress (blue) and as fine (green).
BAD_STATUSES = frozenset({"failed", "timed_out", "lost"})
GOOD_STATUSES = frozenset({"succeeded"})
BUSY_STATUSES = frozenset({"pending", "running"})


def utc(moment: datetime | None) -> str:
    """``2026-12-01 07:35:12 UTC``, or a dash."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def in_zone(moment: datetime | None, zone: str | None) -> str:
    """The wall-clock time in ``zone`` with the zone's abbreviation: ``2026-12-01 16:40 JST``."""
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(zone or "UTC"))
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or zone or "UTC")


def relative(moment: datetime | None, now: datetime) -> str:
    """``in 4 min``, ``12 s ago``."""
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    text = span(abs(seconds))
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def span(seconds: float) -> str:
    """A length of time for people: ``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d"


def duration_seconds(run: Run, now: datetime | None = None) -> float | None:
    """How long a run took, or has been running (with ``now``); None before it started."""
    if run.started_at is None:
        return None
    end = run.ended_at or now
    if end is None:
        return None
    return max(0.0, (end - run.started_at).total_seconds())


def run_duration(run: Run, now: datetime | None = None) -> str:
    seconds = duration_seconds(run, now)
    return "—" if seconds is None else span(seconds)


def size(value: int | None) -> str:
    """``0 B``, ``812 KiB``, ``1.5 GiB``: one decimal at most, in binary units."""
    if value is None:
        return "—"
    amount = float(value)
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    unit = units.pop(0)
    while amount >= 1024 and units:
        amount /= 1024
        unit = units.pop(0)
    shown = f"{amount:.1f}".removesuffix(".0") if unit != "B" else str(value)
    return f"{shown} {unit}"


def duration(value: timedelta | None) -> str:
    return "—" if value is None else format_duration(value)


def trigger_text(spec: Schedule | Monitor) -> str:
    """``cron */10 * * * *`` or ``every 45s``."""
    if spec.cron is not None:
        return f"cron {spec.cron}"
    return f"every {duration(spec.rate)}"


def reason_text(run: Run) -> str:
    """Why a run ended as it did, shortly: ``exit 3``, ``oom killed``, ``overlap``."""
    if run.reason is None:
        return ""
    if run.reason == "exit_code" and run.exit_code is not None:
        return f"exit {run.exit_code}"
    return run.reason.replace("_", " ")


def status_class(status: str | None) -> str:
    if status in BAD_STATUSES:
        return "bad"
    if status in GOOD_STATUSES:
        return "good"
    if status in BUSY_STATUSES:
        return "busy"
    return "quiet"


def percent(used: int | None, limit: int | None) -> int | None:
    if used is None or not limit:
        return None
    return min(100, round(100 * used / limit))


# Event details that say nothing to a reader of the timeline (or name host paths).
_EVENT_NOISE = frozenset({"run_dir", "status"})


def event_facts(detail: dict[str, Any]) -> list[tuple[str, str]]:
    """An event's detail as ``(key, value)`` pairs, nested ``detail`` flattened into it."""
    flat: dict[str, Any] = {k: v for k, v in detail.items() if k != "detail"}
    nested = detail.get("detail")
    if isinstance(nested, dict):
        flat.update(nested)
    facts = []
    for key, value in flat.items():
        if key in _EVENT_NOISE or value is None or value == {}:
            continue
        if key.endswith("sha256") and isinstance(value, str):
            facts.append((key.replace("_", " "), value[:12]))
            continue
        if key.endswith("memory") and isinstance(value, int):
            facts.append((key.replace("_", " "), size(value)))
            continue
        facts.append((key.replace("_", " "), _fact(value)))
    return facts


def _fact(value: Any) -> str:
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        try:
            return utc(datetime.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)
