"""The store's queries for notices: what the engine sent or held back, and why.

:class:`SqlNotices` is the notices aggregate of a unit of work
(:class:`jobdeck.store.sql.SqlTx`); no method reads the clock.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, RowMapping, func, or_, select, update

from jobdeck.store.records import Notice, NoticeCount
from jobdeck.store.tables import as_utc, notices

_INSERT = notices.insert().returning(notices.c.id)


class SqlNotices:
    """Notices, on the connection of one unit of work."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def record_notice(self, notice: Notice) -> Notice:
        at = as_utc(notice.at, "at")
        next_try_at = (
            None if notice.next_try_at is None else as_utc(notice.next_try_at, "next_try_at")
        )
        values = {
            "at": at,
            "job": notice.job,
            "kind": notice.kind,
            "event": notice.event,
            "stream": notice.stream,
            "sent": notice.sent,
            "why": notice.why,
            "run_id": notice.run_id,
            "streak": notice.streak,
            "targets": list(notice.targets),
            "detail": dict(notice.detail),
            "delivery": notice.delivery,
            "attempts": notice.attempts,
            "next_try_at": next_try_at,
            "delivered_at": notice.delivered_at,
            "message": dict(notice.message) if notice.message else None,
        }
        new_id = self.connection.scalar(_INSERT, values)
        return dataclasses.replace(
            notice, id=int(cast(int, new_id)), at=at, next_try_at=next_try_at
        )

    def due_notices(self, now: datetime, *, limit: int = 100) -> list[Notice]:
        c = notices.c
        query = (
            select(notices)
            .where(c.delivery == "due")
            .where(or_(c.next_try_at.is_(None), c.next_try_at <= as_utc(now, "now")))
            .order_by(c.id)
            .limit(limit)
        )
        return [_notice(row) for row in self.connection.execute(query).mappings()]

    def set_delivery(
        self,
        notice_id: int,
        delivery: str,
        *,
        attempts: int,
        next_try_at: datetime | None = None,
        delivered_at: datetime | None = None,
    ) -> bool:
        c = notices.c
        done = self.connection.execute(
            update(notices)
            .where(c.id == notice_id)
            .where(c.delivery == "due")
            .values(
                delivery=delivery,
                attempts=attempts,
                next_try_at=next_try_at,
                delivered_at=delivered_at,
            )
        )
        return bool(done.rowcount)

    def notices(
        self,
        *,
        job: str | None = None,
        kind: str | None = None,
        stream: str | None = None,
        run_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Notice]:
        query = select(notices)
        if job is not None:
            query = query.where(notices.c.job == job)
        if kind is not None:
            query = query.where(notices.c.kind == kind)
        if stream is not None:
            query = query.where(notices.c.stream == stream)
        if run_id is not None:
            query = query.where(notices.c.run_id == run_id)
        query = query.order_by(notices.c.at.desc(), notices.c.id.desc()).limit(limit)
        query = query.offset(offset)
        return [_notice(row) for row in self.connection.execute(query).mappings()]

    def notice_counts(self) -> list[NoticeCount]:
        c = notices.c
        query = select(c.kind, c.job, c.event, c.sent, func.count()).group_by(
            c.kind, c.job, c.event, c.sent
        )
        return [
            NoticeCount(kind, job, event, bool(sent), int(count))
            for kind, job, event, sent, count in self.connection.execute(query)
        ]


def _notice(row: RowMapping) -> Notice:
    return Notice(
        id=row["id"],
        at=row["at"],
        job=row["job"],
        kind=row["kind"],
        event=row["event"],
        stream=row["stream"],
        sent=bool(row["sent"]),
        why=row["why"],
        run_id=row["run_id"],
        streak=row["streak"],
        targets=list(row["targets"] or []),
        detail=dict(row["detail"] or {}),
        delivery=row["delivery"],
        attempts=int(row["attempts"] or 0),
        next_try_at=row["next_try_at"],
        delivered_at=row["delivered_at"],
        message=dict(row["message"] or {}),
    )
