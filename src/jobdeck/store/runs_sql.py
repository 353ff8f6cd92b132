"""The store's queries for runs, their events and claimed timed fires.

:class:`RunQueries` is mixed into :class:`jobdeck.store.sql.Tx`: every method runs on
the unit of work's connection and inside its transaction. No method reads the clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, RowMapping, Select, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobdeck.store.errors import NotFound, RunAlreadyEnded
from jobdeck.store.records import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Run,
    RunEvent,
    RunKind,
    RunStatus,
    Trigger,
)
from jobdeck.store.tables import as_utc, fires, run_events, runs

# Newest first, and a stable order among runs created at the same instant.
_NEWEST_FIRST = (runs.c.created_at.desc(), runs.c.id.desc())
_OLDEST_FIRST = (runs.c.created_at, runs.c.id)


class RunQueries:
    """Runs, run events and fires, on the connection of one unit of work."""

    connection: Connection

    # -- fires -----------------------------------------------------------------------

    def claim_fire(
        self, schedule: str, nominal: datetime, *, decided_at: datetime, host: str
    ) -> bool:
        """Claims the timed fire of ``schedule`` at ``nominal``; True if this caller won.

        The claim is an insert that the primary key lets succeed once, ever: a
        concurrent claimer waits for this transaction and then finds the slot taken (or
        free again, if this transaction rolls back). Losing leaves the transaction usable.
        """
        values = {
            "schedule": schedule,
            "nominal_time": as_utc(nominal, "nominal"),
            "decided_at": as_utc(decided_at, "decided_at"),
            "host": host,
        }
        dialect = self.connection.dialect.name
        insert: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            insert = postgresql.insert(fires).values(values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            insert = sqlite.insert(fires).values(values).on_conflict_do_nothing()
        else:
            raise NotImplementedError(f"claiming a fire is not supported on {dialect}")
        won = self.connection.execute(insert.returning(fires.c.schedule)).first()
        return won is not None

    def attach_fire(self, schedule: str, nominal: datetime, run_id: int) -> None:
        """Records which run a claimed fire started (or recorded as skipped)."""
        query = (
            update(fires)
            .where(
                fires.c.schedule == schedule,
                fires.c.nominal_time == as_utc(nominal, "nominal"),
            )
            .values(run_id=run_id)
            .returning(fires.c.schedule)
        )
        if self.connection.execute(query).first() is None:
            raise NotFound(f"no claimed fire of {schedule!r} at {nominal.isoformat()}")

    def last_fire(self, schedule: str) -> datetime | None:
        """The newest nominal time claimed for ``schedule``; None if none ever was."""
        query = (
            select(fires.c.nominal_time)
            .where(fires.c.schedule == schedule)
            .order_by(fires.c.nominal_time.desc())
            .limit(1)
        )
        return cast("datetime | None", self.connection.scalar(query))

    # -- runs ------------------------------------------------------------------------

    def create_run(
        self,
        *,
        job: str,
        kind: RunKind,
        trigger: Trigger,
        status: RunStatus,
        created_at: datetime,
        reason: str | None = None,
        attempt: int = 1,
        scheduled_for: datetime | None = None,
        pool: str | None = None,
        revision: int | None = None,
        retry_of: int | None = None,
        requested_by: str | None = None,
        host: str | None = None,
        params: dict[str, Any] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Run:
        """Records a new run, and its ``created`` event with its status and reason."""
        values = {
            "job": job,
            "kind": kind,
            "trigger": trigger,
            "status": status,
            "reason": reason,
            "attempt": attempt,
            "scheduled_for": _optional_utc(scheduled_for, "scheduled_for"),
            "created_at": as_utc(created_at, "created_at"),
            "pool": pool,
            "revision": revision,
            "retry_of": retry_of,
            "requested_by": requested_by,
            "host": host,
            "params": {} if params is None else params,
            "detail": {} if detail is None else detail,
        }
        row = self.connection.execute(runs.insert().values(values).returning(*runs.c))
        created = _run(row.mappings().one())
        self._insert_event(created.id, created_at, "created", {"status": status, "reason": reason})
        return created

    def update_run(
        self,
        run_id: int,
        *,
        at: datetime,
        event: str,
        status: RunStatus | None = None,
        reason: str | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        exit_code: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Run:
        """Sets the fields given (merging ``detail`` into the run's, key by key) and
        records an event of type ``event`` at ``at`` with them.

        Raises :class:`NotFound` for an unknown run and :class:`RunAlreadyEnded` when
        ``status`` is given for a run whose status is already final: the first outcome
        recorded stands. Other fields of an ended run can still be added.
        """
        # FOR UPDATE (PostgreSQL; SQLite's write lock already serializes): a concurrent
        # completion waits here, then sees the final status and is refused.
        current = (
            self.connection.execute(select(runs).where(runs.c.id == run_id).with_for_update())
            .mappings()
            .first()
        )
        if current is None:
            raise NotFound(f"no run with id {run_id}")
        if status is not None and current["status"] in TERMINAL_STATUSES:
            raise RunAlreadyEnded(
                f"run {run_id} already ended {current['status']}; it cannot become {status}"
            )
        changes: dict[str, Any] = {}
        recorded: dict[str, Any] = {}
        for name, value in (("status", status), ("reason", reason), ("exit_code", exit_code)):
            if value is not None:
                changes[name] = recorded[name] = value
        for name, instant in (("started_at", started_at), ("ended_at", ended_at)):
            if instant is not None:
                changes[name] = as_utc(instant, name)
                recorded[name] = changes[name].isoformat()
        if detail is not None:
            changes["detail"] = {**current["detail"], **detail}
            recorded["detail"] = detail
        updated = _run(current)
        if changes:
            query = update(runs).where(runs.c.id == run_id).values(changes).returning(*runs.c)
            updated = _run(self.connection.execute(query).mappings().one())
        self._insert_event(run_id, at, event, recorded)
        return updated

    def add_event(
        self, run_id: int, *, at: datetime, type: str, detail: dict[str, Any] | None = None
    ) -> RunEvent:
        """Appends a step to a run's history; raises :class:`NotFound` for an unknown run."""
        if self.connection.scalar(select(runs.c.id).where(runs.c.id == run_id)) is None:
            raise NotFound(f"no run with id {run_id}")
        return self._insert_event(run_id, at, type, {} if detail is None else detail)

    def run(self, run_id: int) -> Run | None:
        row = self._first_row(select(runs).where(runs.c.id == run_id))
        return None if row is None else _run(row)

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
        """Runs matching every filter given, newest first.

        ``since`` and ``until`` bound the creation time: ``since <= created_at < until``.
        """
        query = select(runs).order_by(*_NEWEST_FIRST).limit(limit).offset(offset)
        for column, wanted in (
            (runs.c.job, job),
            (runs.c.kind, kind),
            (runs.c.status, status),
            (runs.c.trigger, trigger),
        ):
            if wanted is not None:
                query = query.where(column == wanted)
        if since is not None:
            query = query.where(runs.c.created_at >= as_utc(since, "since"))
        if until is not None:
            query = query.where(runs.c.created_at < as_utc(until, "until"))
        return [_run(row) for row in self.connection.execute(query).mappings()]

    def active_runs(
        self, *, job: str | None = None, kind: RunKind | None = None, host: str | None = None
    ) -> list[Run]:
        """Runs still pending or running, oldest first."""
        query = select(runs).where(runs.c.status.in_(ACTIVE_STATUSES)).order_by(*_OLDEST_FIRST)
        for column, wanted in ((runs.c.job, job), (runs.c.kind, kind), (runs.c.host, host)):
            if wanted is not None:
                query = query.where(column == wanted)
        return [_run(row) for row in self.connection.execute(query).mappings()]

    def last_runs(self, jobs: list[str] | None = None) -> dict[str, Run]:
        """The newest run of each job (of each of ``jobs`` that has one, when given)."""
        if jobs is not None and not jobs:
            return {}
        newness = func.row_number().over(partition_by=runs.c.job, order_by=_NEWEST_FIRST)
        ranked = select(runs, newness.label("newness"))
        if jobs is not None:
            ranked = ranked.where(runs.c.job.in_(jobs))
        latest = ranked.subquery()
        query = select(*(latest.c[column.name] for column in runs.c)).where(latest.c.newness == 1)
        found = [_run(row) for row in self.connection.execute(query).mappings()]
        return {run.job: run for run in sorted(found, key=lambda run: run.job)}

    def events(self, run_id: int) -> list[RunEvent]:
        """The history of a run, oldest first; empty for an unknown run."""
        query = select(run_events).where(run_events.c.run_id == run_id).order_by(run_events.c.id)
        return [_event(row) for row in self.connection.execute(query).mappings()]

    def _insert_event(
        self, run_id: int, at: datetime, type: str, detail: dict[str, Any]
    ) -> RunEvent:
        values = {"run_id": run_id, "at": as_utc(at, "at"), "type": type, "detail": detail}
        row = self.connection.execute(run_events.insert().values(values).returning(*run_events.c))
        return _event(row.mappings().one())

    def _first_row(self, query: Select[Any]) -> RowMapping | None:
        return self.connection.execute(query).mappings().first()


def _optional_utc(value: datetime | None, what: str) -> datetime | None:
    return None if value is None else as_utc(value, what)


def _run(row: RowMapping) -> Run:
    return Run(
        id=row["id"],
        job=row["job"],
        kind=cast(RunKind, row["kind"]),
        trigger=cast(Trigger, row["trigger"]),
        status=cast(RunStatus, row["status"]),
        created_at=row["created_at"],
        reason=row["reason"],
        attempt=row["attempt"],
        scheduled_for=row["scheduled_for"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        exit_code=row["exit_code"],
        pool=row["pool"],
        revision=row["revision"],
        retry_of=row["retry_of"],
        requested_by=row["requested_by"],
        host=row["host"],
        params=row["params"],
        detail=row["detail"],
    )


def _event(row: RowMapping) -> RunEvent:
    return RunEvent(
        id=row["id"], run_id=row["run_id"], at=row["at"], type=row["type"], detail=row["detail"]
    )
