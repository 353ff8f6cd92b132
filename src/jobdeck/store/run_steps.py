"""What a run's steps change, as a pure function shared by the store's implementations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jobdeck.store.errors import RunAlreadyEnded
from jobdeck.store.records import TERMINAL_STATUSES, RunStep
from jobdeck.store.tables import as_utc


def apply_steps(
    run_id: int,
    at: datetime,
    steps: Sequence[RunStep],
    status: str,
    detail: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The columns that ``steps`` change in a run that is ``status`` with ``detail``, and
    an event for each step; raises :class:`RunAlreadyEnded` for a step that gives a
    status once the run's is final."""
    changes: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    for step in steps:
        if step.status is not None and status in TERMINAL_STATUSES:
            raise RunAlreadyEnded(
                f"run {run_id} already ended {status}; it cannot become {step.status}"
            )
        recorded: dict[str, Any] = {}
        for name, value in (
            ("status", step.status),
            ("reason", step.reason),
            ("exit_code", step.exit_code),
        ):
            if value is not None:
                changes[name] = recorded[name] = value
        for name, instant in (("started_at", step.started_at), ("ended_at", step.ended_at)):
            if instant is not None:
                changes[name] = as_utc(instant, name)
                recorded[name] = changes[name].isoformat()
        if step.detail is not None:
            detail = changes["detail"] = {**detail, **step.detail}
            recorded["detail"] = step.detail
        status = step.status or status
        events.append(
            {"run_id": run_id, "at": as_utc(at, "at"), "type": step.event, "detail": recorded}
        )
    return changes, events
