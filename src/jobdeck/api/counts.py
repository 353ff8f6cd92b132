"""Read-only aggregate queries over the runs table, for metrics and listings.

The store's own interface answers questions about single runs and pages of them; the
API also needs "how many, by job and status" and "which runs were created or ended
since", which are a GROUP BY and a range scan. They read through the store's read-only
units of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select

from jobdeck.store import Store
from jobdeck.store.tables import runs


@dataclass(frozen=True)
class RunCount:
    kind: str
    job: str
    status: str
    count: int


@dataclass(frozen=True)
class RunRow:
    id: int
    job: str
    kind: str
    trigger: str
    status: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    detail: dict[str, Any]


Moment = Literal["created_at", "ended_at"]


def run_counts(
    store: Store, *, kind: str | None = None, since: datetime | None = None
) -> list[RunCount]:
    """How many runs each job has in each status (created at or after ``since``)."""
    query = select(runs.c.kind, runs.c.job, runs.c.status, func.count().label("n")).group_by(
        runs.c.kind, runs.c.job, runs.c.status
    )
    if kind is not None:
        query = query.where(runs.c.kind == kind)
    if since is not None:
        query = query.where(runs.c.created_at >= since)
    with store.reading() as tx:
        rows = tx.connection.execute(query).all()
    return [RunCount(row.kind, row.job, row.status, int(row.n)) for row in rows]


def runs_after(
    store: Store, moment: Moment, at: datetime, run_id: int, limit: int = 1000
) -> list[RunRow]:
    """Runs whose (``moment``, id) comes after ``(at, run_id)``, in that order: the runs
    created, or ended, since a reader last looked."""
    column = runs.c[moment]
    query = (
        select(
            runs.c.id,
            runs.c.job,
            runs.c.kind,
            runs.c.trigger,
            runs.c.status,
            runs.c.created_at,
            runs.c.started_at,
            runs.c.ended_at,
            runs.c.detail,
        )
        .where(column.is_not(None))
        .where(or_(column > at, and_(column == at, runs.c.id > run_id)))
        .order_by(column, runs.c.id)
        .limit(limit)
    )
    with store.reading() as tx:
        rows = tx.connection.execute(query).all()
    return [
        RunRow(
            row.id,
            row.job,
            row.kind,
            row.trigger,
            row.status,
            row.created_at,
            row.started_at,
            row.ended_at,
            dict(row.detail or {}),
        )
        for row in rows
    ]
