"""The store's queries for applied revisions, suspensions and the audit log.

Each class is an aggregate of a unit of work (:class:`jobdeck.store.sql.SqlTx`): every
method runs on its connection and inside its transaction. No method reads the clock.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from jobdeck.store.errors import NotFound, RevisionConflict
from jobdeck.store.records import (
    AuditEntry,
    Outcome,
    Revision,
    RevisionInfo,
    Suspension,
    Via,
)
from jobdeck.store.tables import as_utc, audit_entries, revisions, suspensions


class SqlRevisions:
    """Applied revisions of the catalog."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def latest_revision(self) -> Revision | None:
        row = _first(
            self.connection, select(revisions).order_by(revisions.c.number.desc()).limit(1)
        )
        return None if row is None else _revision(row)

    def revision(self, number: int) -> Revision | None:
        row = _first(self.connection, select(revisions).where(revisions.c.number == number))
        return None if row is None else _revision(row)

    def latest_number(self) -> int | None:
        """The newest revision's number only: its row holds the whole catalog, which is
        large at thousands of schedules."""
        number = self.connection.execute(select(func.max(revisions.c.number))).scalar()
        return int(number) if number is not None else None

    def revisions(self, limit: int = 50) -> list[RevisionInfo]:
        """Newest first. Not the text and catalog of each: at thousands of schedules
        they are megabytes per revision, which a listing would read and parse for
        nothing."""
        listed = [c for c in revisions.c if c.name not in ("text", "catalog")]
        query = select(*listed).order_by(revisions.c.number.desc()).limit(limit)
        return [_revision_info(row) for row in self.connection.execute(query).mappings()]

    def add_revision(
        self,
        *,
        applied_at: datetime,
        applied_by: str,
        catalog_sha256: str,
        git_describe: str | None,
        source: str,
        text: str,
        catalog: dict[str, Any],
    ) -> Revision:
        """Records the next revision (1 for the first).

        Raises :class:`RevisionConflict` when a concurrent apply took the number first;
        the transaction is then unusable and must be abandoned (and the plan redone).
        """
        previous = self.connection.scalar(select(func.max(revisions.c.number)))
        number = 1 if previous is None else int(previous) + 1
        values = {
            "number": number,
            "applied_at": as_utc(applied_at, "applied_at"),
            "applied_by": applied_by,
            "catalog_sha256": catalog_sha256,
            "git_describe": git_describe,
            "source": source,
            "text": text,
            "catalog": catalog,
        }
        try:
            row = self.connection.execute(
                revisions.insert().values(values).returning(*revisions.c)
            ).mappings()
            return _revision(row.one())
        except IntegrityError as taken:
            raise RevisionConflict(
                f"revision {number} was just applied by someone else; plan again"
            ) from taken


class SqlSuspensions:
    """Suspensions of schedules, jobs and workers."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def active_suspension(self, kind: str, name: str, now: datetime) -> Suspension | None:
        """The newest suspension of ``kind``/``name`` in force at ``now``, if any."""
        values = {"b_kind": kind, "b_name": name, "b_now": as_utc(now, "now")}
        row = self.connection.execute(_ACTIVE_SUSPENSION, values).mappings().first()
        return None if row is None else _suspension(row)

    def add_suspension(
        self,
        *,
        kind: str,
        name: str,
        reason: str,
        created_by: str,
        created_at: datetime,
        until: datetime | None,
    ) -> Suspension:
        values = {
            "kind": kind,
            "name": name,
            "reason": reason,
            "created_by": created_by,
            "created_at": as_utc(created_at, "created_at"),
            "until": None if until is None else as_utc(until, "until"),
        }
        row = self.connection.execute(
            suspensions.insert().values(values).returning(*suspensions.c)
        ).mappings()
        return _suspension(row.one())

    def end_suspension(
        self, suspension_id: int, *, ended_by: str, ended_at: datetime, catch_up: bool = False
    ) -> Suspension:
        """Ends a suspension. One that has already ended is returned unchanged, so
        that its first ``ended_by``/``ended_at`` stay on record."""
        query = (
            update(suspensions)
            .where(suspensions.c.id == suspension_id, suspensions.c.ended_at.is_(None))
            .values(ended_by=ended_by, ended_at=as_utc(ended_at, "ended_at"), catch_up=catch_up)
            .returning(*suspensions.c)
        )
        row = self.connection.execute(query).mappings().first()
        if row is None:
            row = _first(
                self.connection, select(suspensions).where(suspensions.c.id == suspension_id)
            )
        if row is None:
            raise NotFound(f"no suspension with id {suspension_id}")
        return _suspension(row)

    def catch_ups_asked(self) -> list[Suspension]:
        """Suspensions resumed with catch-up that no engine has taken yet, oldest first."""
        query = (
            select(suspensions)
            .where(
                suspensions.c.catch_up.is_(True),
                suspensions.c.ended_at.is_not(None),
                suspensions.c.caught_up_at.is_(None),
            )
            .order_by(suspensions.c.ended_at, suspensions.c.id)
        )
        return [_suspension(row) for row in self.connection.execute(query).mappings()]

    def take_catch_up(self, suspension_id: int, *, at: datetime) -> bool:
        """Takes the catch-up a resume asked for; True for the one caller that does (a
        guarded write: a second engine finds it taken)."""
        query = (
            update(suspensions)
            .where(
                suspensions.c.id == suspension_id,
                suspensions.c.catch_up.is_(True),
                suspensions.c.ended_at.is_not(None),
                suspensions.c.caught_up_at.is_(None),
            )
            .values(caught_up_at=as_utc(at, "at"))
            .returning(suspensions.c.id)
        )
        return self.connection.execute(query).first() is not None

    def suspensions(self, now: datetime, *, include_ended: bool = False) -> list[Suspension]:
        """Suspensions active at ``now`` (all of them with ``include_ended``), newest first."""
        query = select(suspensions).order_by(
            suspensions.c.created_at.desc(), suspensions.c.id.desc()
        )
        if not include_ended:
            query = query.where(_active(now))
        return [_suspension(row) for row in self.connection.execute(query).mappings()]


class SqlAudit:
    """The audit log."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def record_audit(self, entry: AuditEntry) -> AuditEntry:
        """Stores ``entry`` and returns it with its id."""
        values = {
            "at": as_utc(entry.at, "at"),
            "actor": entry.actor,
            "via": entry.via,
            "action": entry.action,
            "target": entry.target,
            "outcome": entry.outcome,
            "detail": entry.detail,
        }
        new_id = self.connection.scalar(_INSERT_AUDIT, values)
        return dataclasses.replace(entry, id=int(cast(int, new_id)))

    def audit(self, limit: int = 50, offset: int = 0) -> list[AuditEntry]:
        """Audit entries, newest first."""
        query = (
            select(audit_entries)
            .order_by(audit_entries.c.at.desc(), audit_entries.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [_audit_entry(row) for row in self.connection.execute(query).mappings()]


def _first(connection: Connection, query: Select[Any]) -> RowMapping | None:
    return connection.execute(query).mappings().first()


# Written with every run requested (its audit entry): built once, with bound parameters
# (see runs_sql); with its values embedded it was built and hashed anew for each entry.
_INSERT_AUDIT = audit_entries.insert().returning(audit_entries.c.id)
# Asked before every run starts: built once, with bound parameters (see runs_sql).
_ACTIVE_SUSPENSION = (
    select(suspensions)
    .where(
        suspensions.c.kind == bindparam("b_kind"),
        suspensions.c.name == bindparam("b_name"),
        suspensions.c.ended_at.is_(None),
        or_(suspensions.c.until.is_(None), suspensions.c.until > bindparam("b_now")),
    )
    .order_by(suspensions.c.created_at.desc(), suspensions.c.id.desc())
    .limit(1)
)


def _active(now: datetime) -> ColumnElement[bool]:
    instant = as_utc(now, "now")
    return and_(
        suspensions.c.ended_at.is_(None),
        or_(suspensions.c.until.is_(None), suspensions.c.until > instant),
    )


def _revision_info(row: RowMapping) -> RevisionInfo:
    return RevisionInfo(
        number=row["number"],
        applied_at=row["applied_at"],
        applied_by=row["applied_by"],
        catalog_sha256=row["catalog_sha256"],
        git_describe=row["git_describe"],
        source=row["source"],
    )


def _revision(row: RowMapping) -> Revision:
    return Revision(**vars(_revision_info(row)), text=row["text"], catalog=row["catalog"])


def _suspension(row: RowMapping) -> Suspension:
    return Suspension(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        reason=row["reason"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        until=row["until"],
        ended_at=row["ended_at"],
        ended_by=row["ended_by"],
        catch_up=bool(row["catch_up"]),
        caught_up_at=row["caught_up_at"],
    )


def _audit_entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        via=cast(Via, row["via"]),
        action=row["action"],
        target=row["target"],
        outcome=cast(Outcome, row["outcome"]),
        detail=row["detail"],
    )
