"""Small pure helpers of the run driver: instants as detail fields, timings (a shim's
result as store fields is :mod:`jobdeck.execute.outcome`).

No clock, no store, no processes: functions of their inputs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobdeck.execute.outcome import milliseconds, parse_iso
from jobdeck.store.records import RunStatus

# Runs that end like this are sent to the notify targets (SPEC section 3).
NOTIFY_STATUSES: tuple[RunStatus, ...] = ("failed", "timed_out", "lost")


def iso(instant: datetime) -> str:
    """An instant as ISO 8601 in UTC, the form every detail field uses."""
    return instant.astimezone(UTC).isoformat()


def start_timings(
    requested_at: datetime | None, dispatched_at: datetime, process_started_at: str | None
) -> dict[str, Any]:
    """What a run's detail records when its program started: when the driver handed it
    to the executor, when the program really started (the shim's own clock), and, when
    the request time is known, the whole dispatch latency in milliseconds."""
    timings: dict[str, Any] = {"dispatched_at": iso(dispatched_at)}
    started = parse_iso(process_started_at)
    if started is not None:
        timings["process_started_at"] = iso(started)
    if requested_at is not None:
        timings["dispatch_ms"] = milliseconds((started or dispatched_at) - requested_at)
    return timings
