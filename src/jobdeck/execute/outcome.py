"""What a run's end means, from its shim's result: status, reason and the fields to record.

Pure: no clock, no store, no processes. The run driver (schedules and commands) and the
worker supervisor both record their runs' ends with :func:`outcome_of`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from jobdeck.execute.spec import RunResult

# A run's status once it ended: the shim's own, or ``lost`` when there is no result.
Ended = Literal["succeeded", "failed", "timed_out", "cancelled", "lost"]


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


def milliseconds(delta: timedelta) -> float:
    return round(delta / timedelta(milliseconds=1), 3)


def outcome_of(result: RunResult | None) -> tuple[Ended, str | None, dict[str, Any]]:
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
    status: Ended = result.status
    reason = result.reason
    if reason == "shim_error":
        status = "failed"
    return status, reason, {"exit_code": result.exit_code, "detail": detail}
