"""The store: SQLAlchemy Core queries behind a narrow, record-based interface.

Every unit of work is a :class:`Tx` from :meth:`Store.transaction`; it commits when the
block ends and rolls back if it raises. No method reads the clock: callers pass times.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
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

from jobdeck.store import migrate
from jobdeck.store.engine import (
    READ_ONLY,
    checkpoint,
    create_store_engine,
    display_url,
    store_url,
    take_over_checkpoints,
)
from jobdeck.store.errors import NotFound, RevisionConflict, StoreError
from jobdeck.store.queue_tasks_sql import QueueTaskQueries
from jobdeck.store.queues_sql import QueueQueries
from jobdeck.store.records import (
    AuditEntry,
    Outcome,
    Revision,
    RevisionInfo,
    Run,
    RunEvent,
    RunKind,
    Suspension,
    Via,
)
from jobdeck.store.runs_sql import RunQueries
from jobdeck.store.tables import as_utc, audit_entries, revisions, suspensions
from jobdeck.store.workers_sql import WorkerQueries

__all__ = ["NotFound", "RevisionConflict", "Store", "StoreError", "Tx", "open_store"]


def open_store(url: str | None = None, state_dir: str | Path = ".jobdeck") -> Store:
    """Opens the store at ``url``, or the SQLite file in ``state_dir`` when ``url`` is
    None, and migrates its schema to the newest version."""
    engine = create_store_engine(store_url(url, state_dir))
    try:
        migrate.upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


class Store:
    """One database, shared by every thread and process of a jobdeck installation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = display_url(engine.url)
        # SQLite has one writer at a time. Writers of another process wait in SQLite's
        # busy handler, which sleeps in growing steps (up to 100 ms) between tries;
        # writers of this process (the event loop, the scheduler, the API's threads)
        # queue here instead, and the next one starts the moment the lock is free.
        self.write_lock: AbstractContextManager[object] = (
            threading.RLock() if engine.dialect.name == "sqlite" else nullcontext()
        )
        # The connection of the thread that pinned one (see pin_writes), and that thread.
        self._pinned: Connection | None = None
        self._pinned_thread: int | None = None

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes every pooled connection; the store must not be used afterwards."""
        if self._pinned is not None:
            self._pinned.close()
            self._pinned = self._pinned_thread = None
        self.engine.dispose()

    def pin_writes(self) -> None:
        """Run the transactions of the calling thread on one connection of its own, on
        SQLite: for the engine's event loop, which writes a few times per run, a pool
        checkout, a reset and a check-in per transaction were a tenth of its time.
        Other threads use the pool as before. On PostgreSQL nothing changes (a pooled
        connection that the server dropped is replaced; a pinned one would not be)."""
        if self.engine.dialect.name == "sqlite" and self._pinned is None:
            self._pinned = self.engine.connect()
            self._pinned_thread = threading.get_ident()

    def take_over_checkpoints(self) -> bool:
        """For a long-running server on SQLite: checkpoint the WAL with
        :meth:`checkpoint`, off the commits' path. See :mod:`jobdeck.store.engine`."""
        return take_over_checkpoints(self.engine)

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database as far as readers allow (SQLite)."""
        return checkpoint(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One atomic unit of work: committed at the end, rolled back on an exception.

        On SQLite it holds the database's write lock from its start, so keep it short;
        concurrent writers wait for it (up to the busy timeout) instead of failing.
        """
        pinned = self._pinned
        if pinned is not None and threading.get_ident() == self._pinned_thread:
            with self.write_lock, pinned.begin():
                yield Tx(pinned)
            return
        with self.write_lock, self.engine.begin() as connection:
            yield Tx(connection)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """A consistent snapshot for reads only; it does not wait for writers."""
        with self.engine.connect() as connection:
            connection.execution_options(**{READ_ONLY: True})
            with connection.begin():
                yield Tx(connection)

    def latest_revision(self) -> Revision | None:
        with self.reading() as tx:
            return tx.latest_revision()

    def revision(self, number: int) -> Revision | None:
        with self.reading() as tx:
            return tx.revision(number)

    def revisions(self, limit: int = 50) -> list[RevisionInfo]:
        """Applied revisions, newest first (without their text and catalog)."""
        with self.reading() as tx:
            return tx.revisions(limit)

    def suspensions(self, now: datetime, *, include_ended: bool = False) -> list[Suspension]:
        """Suspensions active at ``now`` (all of them with ``include_ended``), newest first."""
        with self.reading() as tx:
            return tx.suspensions(now, include_ended=include_ended)

    def audit(self, limit: int = 50, offset: int = 0) -> list[AuditEntry]:
        """Audit entries, newest first."""
        with self.reading() as tx:
            return tx.audit(limit, offset)

    def run(self, run_id: int) -> Run | None:
        with self.reading() as tx:
            return tx.run(run_id)

    def runs(
        self,
        *,
        job: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Run]:
        """Runs matching every filter given, newest first; ``since <= created_at < until``."""
        with self.reading() as tx:
            return tx.runs(
                job=job,
                kind=kind,
                status=status,
                trigger=trigger,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
            )

    def events(self, run_id: int) -> list[RunEvent]:
        """The history of a run, oldest first."""
        with self.reading() as tx:
            return tx.events(run_id)

    def active_runs(
        self, *, job: str | None = None, kind: RunKind | None = None, host: str | None = None
    ) -> list[Run]:
        """Runs still pending or running, oldest first."""
        with self.reading() as tx:
            return tx.active_runs(job=job, kind=kind, host=host)

    def last_fire(self, schedule: str) -> datetime | None:
        """The newest nominal time claimed for ``schedule``."""
        with self.reading() as tx:
            return tx.last_fire(schedule)

    def last_fires(self) -> dict[str, datetime]:
        """The newest nominal time claimed for each schedule that has one."""
        with self.reading() as tx:
            return tx.last_fires()

    def last_runs(self, jobs: list[str] | None = None) -> dict[str, Run]:
        """The newest run of each job (of each of ``jobs`` that has one, when given)."""
        with self.reading() as tx:
            return tx.last_runs(jobs)


class Tx(RunQueries, QueueQueries, QueueTaskQueries, WorkerQueries):
    """The operations of one unit of work, all on one connection and transaction.

    The queries for runs and fires come from :class:`RunQueries`, those for queues
    and messages from :class:`QueueQueries`, those for workers (leases, states,
    events) from :class:`WorkerQueries`.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- revisions -------------------------------------------------------------------

    def latest_revision(self) -> Revision | None:
        row = self._first(select(revisions).order_by(revisions.c.number.desc()).limit(1))
        return None if row is None else _revision(row)

    def revision(self, number: int) -> Revision | None:
        row = self._first(select(revisions).where(revisions.c.number == number))
        return None if row is None else _revision(row)

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

    # -- suspensions -----------------------------------------------------------------

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
        self, suspension_id: int, *, ended_by: str, ended_at: datetime
    ) -> Suspension:
        """Ends a suspension. One that has already ended is returned unchanged, so
        that its first ``ended_by``/``ended_at`` stay on record."""
        query = (
            update(suspensions)
            .where(suspensions.c.id == suspension_id, suspensions.c.ended_at.is_(None))
            .values(ended_by=ended_by, ended_at=as_utc(ended_at, "ended_at"))
            .returning(*suspensions.c)
        )
        row = self.connection.execute(query).mappings().first()
        if row is None:
            row = self._first(select(suspensions).where(suspensions.c.id == suspension_id))
        if row is None:
            raise NotFound(f"no suspension with id {suspension_id}")
        return _suspension(row)

    def suspensions(self, now: datetime, *, include_ended: bool = False) -> list[Suspension]:
        """Suspensions active at ``now`` (all of them with ``include_ended``), newest first."""
        query = select(suspensions).order_by(
            suspensions.c.created_at.desc(), suspensions.c.id.desc()
        )
        if not include_ended:
            query = query.where(_active(now))
        return [_suspension(row) for row in self.connection.execute(query).mappings()]

    # -- audit -----------------------------------------------------------------------

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

    def _first(self, query: Select[Any]) -> RowMapping | None:
        return self.connection.execute(query).mappings().first()


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
