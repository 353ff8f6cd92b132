"""Notices as an outbox: what a notice to send holds, and when a failed one is tried
again (pure: functions of their inputs).

A notice that a policy decides to send is recorded ``due``, with the run as it is to be
sent and its log tail (its ``message``), in the unit of work that decides it. The engine
sends it at once; once every target accepted it, it is ``delivered``. One that failed, or
whose engine died before it was accepted, is sent again by the engine that leads (after
a restart: at its first sweep): delivery is at least once, and each webhook delivery of
one notice carries the same id (``X-Jobdeck-Notice-Id``) for receivers to drop
duplicates. Retries back off from :data:`FIRST_RETRY` doubling to :data:`LAST_RETRY`;
a notice still undelivered :data:`GIVE_UP_AFTER` after it was decided is ``given_up``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from jobdeck.store.records import Notice, Run

DUE = "due"
DELIVERED = "delivered"
GIVEN_UP = "given_up"

# A notice the engine is sending now is left alone this long by the outbox's sweep (of
# this engine: it also tracks what it has in flight; of another: at least once).
CLAIM = timedelta(seconds=15)
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=24)

_DATES = ("created_at", "scheduled_for", "started_at", "ended_at")


def message_of(run: Run, tail: str) -> dict[str, Any]:
    """What to send again about ``run`` (JSON)."""
    fields = dataclasses.asdict(run)
    for name in _DATES:
        value = fields[name]
        fields[name] = None if value is None else value.isoformat()
    return {"run": fields, "tail": tail}


def run_of(message: dict[str, Any]) -> tuple[Run, str] | None:
    """The run and log tail of a ``message``; None for a message this engine cannot read."""
    try:
        fields = dict(message["run"])
        for name in _DATES:
            value = fields.get(name)
            fields[name] = None if value is None else datetime.fromisoformat(value)
        return Run(**fields), str(message.get("tail") or "")
    except (KeyError, TypeError, ValueError):
        return None


def due_fields(run: Run, tail: str, now: datetime) -> dict[str, Any]:
    """The outbox fields of a notice to send, decided at ``now``."""
    return {"delivery": DUE, "next_try_at": now + CLAIM, "message": message_of(run, tail)}


def with_notice(run: Run, notice: Notice, **more: Any) -> Run:
    """``run`` carrying the notice it is sent for (its id names the delivery)."""
    shown = {"notice_id": notice.id, "event": notice.event, "why": notice.why, **more}
    return dataclasses.replace(run, detail={**run.detail, "notice": shown})


def notice_id_of(run: Run) -> int | None:
    shown = run.detail.get("notice")
    value = shown.get("notice_id") if isinstance(shown, dict) else None
    return value if isinstance(value, int) else None


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try (1, 2, ...)."""
    delay: timedelta = FIRST_RETRY * (2 ** max(0, min(attempts, 20) - 1))
    return min(delay, LAST_RETRY)


def after_failure(
    decided_at: datetime, attempts: int, now: datetime
) -> tuple[str, datetime | None]:
    """The delivery and next try of a notice decided at ``decided_at`` whose
    ``attempts``-th try failed at ``now``: given up once it is too old."""
    if now - decided_at >= GIVE_UP_AFTER:
        return GIVEN_UP, None
    return DUE, now + retry_delay(attempts)
