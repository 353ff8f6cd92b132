"""Small pure helpers of the run driver: a shim's result as store fields, timings.

No clock, no store, no processes: functions of their inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jobdeck.execute import RunResult
from jobdeck.store.records import Run, RunStatus

# Runs that end like this are sent to the notify targets (SPEC section 3).
NOTIFY_STATUSES: tuple[RunStatus, ...] = ("failed", "timed_out", "lost")


def iso(instant: datetime) -> str:
    """An instant as ISO 8601 in UTC, the form every detail field uses."""
    return instant.astimezone(UTC).isoformat()


def parse_iso(text: object) -> datetime | None:
    """An ISO 8601 instant (``Z`` or an offset) in UTC; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def not_before(run: Run) -> datetime | None:
    """When a pending run may start at the earliest (a retry's backoff)."""
    return parse_iso(run.detail.get("not_before"))


def milliseconds(delta: timedelta) -> float:
    return round(delta / timedelta(milliseconds=1), 3)


def start_timings(
    detail: Mapping[str, Any], dispatched_at: datetime, process_started_at: str | None
) -> dict[str, Any]:
    """What a run's detail records when its program started: when the driver handed it
    to the executor, when the program really started (the shim's own clock), and, when
    the request time is known, the whole dispatch latency in milliseconds."""
    timings: dict[str, Any] = {"dispatched_at": iso(dispatched_at)}
    started = parse_iso(process_started_at)
    if started is not None:
        timings["process_started_at"] = iso(started)
    requested = parse_iso(detail.get("requested_at"))
    if requested is not None:
        timings["dispatch_ms"] = milliseconds((started or dispatched_at) - requested)
    return timings


def outcome_of(result: RunResult | None) -> tuple[RunStatus, str | None, dict[str, Any]]:
    """(status, reason, fields for ``update_run``) of a run that ended with ``result``.

    No result means the shim died without writing one: the run is lost.
    """
    if result is None:
        return "lost", "vanished", {}
    detail: dict[str, Any] = {
        key: value
        for key, value in (
            ("signal", result.signal),
            ("error", result.error),
            ("peak_memory", result.peak_memory),
            ("log_dropped_bytes", result.log_dropped_bytes or None),
        )
        if value is not None
    }
    began, ended = parse_iso(result.started_at), parse_iso(result.ended_at)
    if began is not None and ended is not None:
        detail["duration_ms"] = milliseconds(ended - began)
    status: RunStatus = result.status
    reason = result.reason
    if reason == "shim_error":
        status = "failed"
    return status, reason, {"exit_code": result.exit_code, "detail": detail}
