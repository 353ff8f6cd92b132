"""The JSON forms of the store's records, shared by the HTTP API and the CLI listings.

Pure: records in, JSON-ready dicts out, every time in ISO 8601 UTC with a ``Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobdeck.store.key_records import KeyUse
from jobdeck.store.ports import RunReads
from jobdeck.store.records import AuditEntry, Notice, Revision, RevisionInfo, Run, RunEvent


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_item(run: Run) -> dict[str, Any]:
    """A run as ``jobdeck runs --json`` lists it: the contract's fields, nothing else."""
    return {
        "id": run.id,
        "job": run.job,
        "kind": run.kind,
        "trigger": run.trigger,
        "status": run.status,
        "reason": run.reason,
        "attempt": run.attempt,
        "scheduled_for": iso(run.scheduled_for),
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "exit_code": run.exit_code,
        "pool": run.pool,
    }


def duration_ms(run: Run) -> float | None:
    """How long the program ran: the shim's measure when it has one, else the records'."""
    measured = run.detail.get("duration_ms")
    if isinstance(measured, int | float):
        return float(measured)
    if run.started_at is None or run.ended_at is None:
        return None
    return round((run.ended_at - run.started_at).total_seconds() * 1000, 3)


def run_json(run: Run) -> dict[str, Any]:
    """A run as the API lists it: the contract's fields plus who, when and how long."""
    return {
        **run_item(run),
        "created_at": iso(run.created_at),
        "duration_ms": duration_ms(run),
        "retry_of": run.retry_of,
        "requested_by": run.requested_by,
        "revision": run.revision,
        **({"approval": approval.detail()} if (approval := run.plan.approval) else {}),
    }


def run_concurrency(runs: RunReads, run: Run) -> dict[str, Any] | None:
    """:func:`concurrency_json` of the key the run asked for; None if it asked for none."""
    key = runs.concurrency_key_of(run.id)
    if key is None:
        return None
    uses = runs.concurrency_keys([key]) if run.active else []
    return concurrency_json(key, run.id, uses[0] if uses else None)


def concurrency_json(key: str, run_id: int, use: KeyUse | None) -> dict[str, Any]:
    """The concurrency key a run asked for: whether it holds it, its place among the
    waiters (1: next), and the key's holders and waiters now (none once it ended)."""
    holders = [h.run_id for h in use.holders] if use else []
    waiters = [w.run_id for w in use.waiters] if use else []
    return {
        "key": key,
        "limit": use.limit if use else None,
        "held": run_id in holders,
        "position": waiters.index(run_id) + 1 if run_id in waiters else None,
        "holders": [
            {"run_id": h.run_id, "kind": h.kind, "job": h.job, "since": iso(h.since)}
            for h in (use.holders if use else ())
        ],
        "waiters": waiters,
    }


def run_detail_json(
    run: Run, events: list[RunEvent], attempts: list[Run], notices: list[Notice] | None = None
) -> dict[str, Any]:
    """One run with its history, the attempts it is linked to by retries, and the notices
    decided about it (sent or held back by the alert policy), oldest first."""
    return {
        **run_json(run),
        "host": run.host,
        "params": run.params,
        "detail": run.detail,
        "events": [event_json(e) for e in events],
        "attempts": [
            {"id": a.id, "attempt": a.attempt, "status": a.status, "reason": a.reason}
            for a in attempts
        ],
        "notices": [notice_json(n) for n in reversed(notices or [])],
    }


def notice_json(notice: Notice) -> dict[str, Any]:
    return {
        "id": notice.id,
        "at": iso(notice.at),
        "job": notice.job,
        "kind": notice.kind,
        "event": notice.event,
        "stream": notice.stream,
        "sent": notice.sent,
        "why": notice.why,
        "run_id": notice.run_id,
        "consecutive_failures": notice.streak,
        "targets": list(notice.targets),
        "detail": notice.detail,
        "delivery": notice.delivery,
        "attempts": notice.attempts,
        "next_try_at": iso(notice.next_try_at),
        "delivered_at": iso(notice.delivered_at),
    }


def event_json(event: RunEvent) -> dict[str, Any]:
    return {"id": event.id, "at": iso(event.at), "type": event.type, "detail": event.detail}


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor": entry.actor,
        "via": entry.via,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "detail": entry.detail,
    }


def revision_json(revision: RevisionInfo, *, full: bool = False) -> dict[str, Any]:
    """A revision's record; ``full`` adds the file's text and the effective catalog
    (of a :class:`Revision` read whole)."""
    shown: dict[str, Any] = {
        "number": revision.number,
        "applied_at": iso(revision.applied_at),
        "applied_by": revision.applied_by,
        "catalog_sha256": revision.catalog_sha256,
        "git_describe": revision.git_describe,
        "source": revision.source,
    }
    if full:
        assert isinstance(revision, Revision), "a listed revision has no text or catalog"
        shown["text"] = revision.text
        shown["catalog"] = revision.catalog
    return shown


def jsonable(value: Any) -> Any:
    """Datetimes anywhere inside ``value`` as ISO strings (for documents built elsewhere)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
