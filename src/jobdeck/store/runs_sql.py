"""The store's queries for runs, their events and claimed timed fires.

:class:`SqlRuns` is the runs aggregate of a unit of work (:class:`jobdeck.store.sql.SqlTx`):
every method runs on its connection and inside its transaction. No method reads the clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Insert,
    RowMapping,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from jobdeck.store import concurrency_sql
from jobdeck.store.errors import NotFound
from jobdeck.store.key_records import KeyUse
from jobdeck.store.records import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Run,
    RunEvent,
    RunKind,
    RunStatus,
    RunStep,
    Trigger,
)
from jobdeck.store.run_rows import Moment, RunCount, RunRow
from jobdeck.store.run_steps import apply_steps
from jobdeck.store.tables import as_utc, fires, run_events, runs

# Newest first, and a stable order among runs created at the same instant.
_NEWEST_FIRST = (runs.c.created_at.desc(), runs.c.id.desc())
_OLDEST_FIRST = (runs.c.created_at, runs.c.id)

# The statements every run executes are built once, with bound parameters: SQLAlchemy
# then finds their compiled form by a memoized cache key, instead of building and
# hashing a new statement with its values embedded for every call (most of a run's
# store time went there). Bound names differ from column names, which SET reserves.
_CLAIMS: dict[str, Insert] = {
    name: dialect.insert(fires).on_conflict_do_nothing().returning(fires.c.schedule)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_ATTACH_FIRE = (
    update(fires)
    .where(
        fires.c.schedule == bindparam("b_schedule"),
        fires.c.nominal_time == bindparam("b_nominal"),
    )
    .returning(fires.c.schedule)
)
_INSERT_RUN = runs.insert().returning(*runs.c)
_INSERT_EVENT = run_events.insert()
_INSERT_EVENT_RETURNING = run_events.insert().returning(*run_events.c)
_RUN_BY_ID = select(runs).where(runs.c.id == bindparam("b_id"))
_RUN_FOR_UPDATE = _RUN_BY_ID.with_for_update()
_RUN_EXISTS = select(runs.c.id).where(runs.c.id == bindparam("b_id"))
_UPDATE_RUN = update(runs).where(runs.c.id == bindparam("b_id")).returning(*runs.c)
# A run's new status when the caller knows its current state (see update_run_steps): the
# final status guarded in the write itself, nothing read back.
# (Each final status compared on its own: NOT IN with a list is expanded at every
# execution, a statement's worth of work again.)
_UPDATE_ACTIVE_RUN = update(runs).where(
    runs.c.id == bindparam("b_id"), *(runs.c.status != final for final in TERMINAL_STATUSES)
)
_TAKE_RUN = (
    update(runs)
    .where(runs.c.id == bindparam("b_id"), runs.c.status == "pending")
    .values(host=bindparam("b_host"))
)
# A job's advisory lock while a new run of it is decided (see decide_job).
_JOB_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('jobdeck.job:' || :job))")
_TAKE_RUN_FROM = _TAKE_RUN.where(runs.c.host == bindparam("b_from"))
_ACTIVE_RUNS: dict[tuple[bool, bool, bool], Select[Any]] = {}


class SqlRuns:
    """Runs, run events and fires, on the connection of one unit of work."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

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
        claim = _CLAIMS.get(dialect)
        if claim is None:
            raise NotImplementedError(f"claiming a fire is not supported on {dialect}")
        return self.connection.execute(claim, values).first() is not None

    def reclaim_fire(
        self, schedule: str, nominal: datetime, *, decided_at: datetime, host: str
    ) -> bool:
        """Claims a slot never claimed, or one whose run was skipped as suspended: the
        write is guarded by the run it points to, so of two engines one wins (the other
        finds the claim moved off that run)."""
        if self.claim_fire(schedule, nominal, decided_at=decided_at, host=host):
            return True
        held = (
            select(runs.c.id)
            .where(
                runs.c.id == fires.c.run_id,
                runs.c.status == "skipped",
                runs.c.reason == "suspended",
            )
            .exists()
        )
        query = (
            update(fires)
            .where(
                fires.c.schedule == schedule,
                fires.c.nominal_time == as_utc(nominal, "nominal"),
                held,
            )
            .values(decided_at=as_utc(decided_at, "decided_at"), host=host, run_id=None)
            .returning(fires.c.schedule)
        )
        return self.connection.execute(query).first() is not None

    def attach_fire(self, schedule: str, nominal: datetime, run_id: int) -> None:
        """Records which run a claimed fire started (or recorded as skipped)."""
        values = {
            "b_schedule": schedule,
            "b_nominal": as_utc(nominal, "nominal"),
            "run_id": run_id,
        }
        if self.connection.execute(_ATTACH_FIRE, values).first() is None:
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

    def last_fires(self) -> dict[str, datetime]:
        """The newest nominal time claimed for each schedule that ever claimed one: one
        query for an engine that starts with thousands of schedules to catch up."""
        query = select(fires.c.schedule, func.max(fires.c.nominal_time)).group_by(fires.c.schedule)
        return {name: as_utc(last, "nominal") for name, last in self.connection.execute(query)}

    def claimed_fires(
        self, schedule: str, start: datetime, end: datetime
    ) -> dict[datetime, int | None]:
        """The claimed slots of ``schedule`` in ``[start, end]`` and their runs, oldest
        first: one range scan of the claims' primary key."""
        query = (
            select(fires.c.nominal_time, fires.c.run_id)
            .where(
                fires.c.schedule == schedule,
                fires.c.nominal_time >= as_utc(start, "start"),
                fires.c.nominal_time <= as_utc(end, "end"),
            )
            .order_by(fires.c.nominal_time)
        )
        return {as_utc(at, "nominal"): run_id for at, run_id in self.connection.execute(query)}

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
        created = _run(self.connection.execute(_INSERT_RUN, values).mappings().one())
        self._append_event(created.id, created_at, "created", {"status": status, "reason": reason})
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
        step = RunStep(event, status, reason, started_at, ended_at, exit_code, detail)
        return self.update_run_steps(run_id, at=at, steps=[step])

    def update_run_steps(
        self, run_id: int, *, at: datetime, steps: Sequence[RunStep], known: Run | None = None
    ) -> Run:
        """:meth:`update_run` for several steps in turn (a program's start and its end,
        learnt of together): one read and one write of the run, an event per step, the
        same checks as for each step on its own.

        ``known``: the run as the caller last had it from the store, when the caller is
        the only one that changes it (the engine that owns a run it is running). Steps
        that change its status are then written without reading the run first, the
        final status guarded in the write itself; when the write finds the run ended
        already (or gone), they are applied as without ``known``, which refuses them as
        usual.
        """
        if known is not None and known.id == run_id and any(s.status for s in steps):
            done = self._update_known(known, at, steps)
            if done is not None:
                return done
        # FOR UPDATE (PostgreSQL; SQLite's write lock already serializes): a concurrent
        # completion waits here, then sees the final status and is refused.
        current = self.connection.execute(_RUN_FOR_UPDATE, {"b_id": run_id}).mappings().first()
        if current is None:
            raise NotFound(f"no run with id {run_id}")
        changes, events = apply_steps(run_id, at, steps, current["status"], current["detail"])
        updated = _run(current)
        if changes:
            row = self.connection.execute(_UPDATE_RUN, {"b_id": run_id, **changes})
            updated = _run(row.mappings().one())
        if events:
            self.connection.execute(_INSERT_EVENT, events)
        return updated

    def _update_known(self, known: Run, at: datetime, steps: Sequence[RunStep]) -> Run | None:
        """Steps that change the status, written onto ``known`` without reading the run;
        None when the write found nothing to change (the run ended meanwhile, or is
        gone)."""
        changes, events = apply_steps(known.id, at, steps, known.status, known.detail)
        if self.connection.execute(_UPDATE_ACTIVE_RUN, {"b_id": known.id, **changes}).rowcount != 1:
            return None
        self.connection.execute(_INSERT_EVENT, events)
        return dataclasses.replace(known, **changes)

    def decide_job(self, job: str, kind: RunKind) -> list[Run]:
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(_JOB_LOCK, {"job": f"{kind}:{job}"})
        return self.active_runs(job=job, kind=kind)

    def take_run(
        self, run_id: int, host: str, *, at: datetime, only_from: str | None = None
    ) -> Run | None:
        before = self.run(run_id)
        values = {"b_id": run_id, "b_host": host, "b_from": only_from}
        statement = _TAKE_RUN if only_from is None else _TAKE_RUN_FROM
        moved = self.connection.execute(statement, values).rowcount
        if before is None or moved != 1:
            return None
        if only_from is not None:
            before = dataclasses.replace(before, host=only_from)
        self._append_event(run_id, at, "taken", {"from": before.host, "to": host})
        return dataclasses.replace(before, host=host)

    def add_event(
        self, run_id: int, *, at: datetime, type: str, detail: dict[str, Any] | None = None
    ) -> RunEvent:
        """Appends a step to a run's history; raises :class:`NotFound` for an unknown run."""
        if self.connection.scalar(_RUN_EXISTS, {"b_id": run_id}) is None:
            raise NotFound(f"no run with id {run_id}")
        return self._insert_event(run_id, at, type, {} if detail is None else detail)

    def append_events(
        self, run_ids: Sequence[int], *, at: datetime, type: str, detail: dict[str, Any]
    ) -> None:
        """:meth:`add_event` for runs the caller knows to exist (it holds them): one
        statement for all of them, nothing read or returned. The foreign key still
        refuses a run that does not exist (IntegrityError, for the whole unit of work)."""
        instant = as_utc(at, "at")
        rows = [{"run_id": i, "at": instant, "type": type, "detail": detail} for i in run_ids]
        if rows:
            self.connection.execute(_INSERT_EVENT, rows)

    # -- concurrency keys (jobdeck.store.concurrency_sql) ------------------------------

    def claim_concurrency(self, run_id: int, key: str, limit: int, *, at: datetime) -> bool:
        return concurrency_sql.claim(self.connection, run_id, key, limit, at)

    def concurrency_keys(self, keys: Sequence[str] | None = None) -> list[KeyUse]:
        return concurrency_sql.key_uses(self.connection, keys)

    def concurrency_key_of(self, run_id: int) -> str | None:
        return concurrency_sql.run_key(self.connection, run_id)

    def run(self, run_id: int) -> Run | None:
        row = self.connection.execute(_RUN_BY_ID, {"b_id": run_id}).mappings().first()
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
        wanted = {"b_job": job, "b_kind": kind, "b_host": host}
        shape = (job is not None, kind is not None, host is not None)
        query = _ACTIVE_RUNS.get(shape)
        if query is None:
            query = select(runs).where(runs.c.status.in_(ACTIVE_STATUSES))
            for column, present in zip((runs.c.job, runs.c.kind, runs.c.host), shape, strict=True):
                if present:
                    query = query.where(column == bindparam(f"b_{column.name}"))
            query = _ACTIVE_RUNS[shape] = query.order_by(*_OLDEST_FIRST)
        values = {name: value for name, value in wanted.items() if value is not None}
        return [_run(row) for row in self.connection.execute(query, values).mappings()]

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
        row = self.connection.execute(_INSERT_EVENT_RETURNING, values)
        return _event(row.mappings().one())

    def _append_event(self, run_id: int, at: datetime, type: str, detail: dict[str, Any]) -> None:
        """Like :meth:`_insert_event`, for callers that do not need the event back."""
        values = {"run_id": run_id, "at": as_utc(at, "at"), "type": type, "detail": detail}
        self.connection.execute(_INSERT_EVENT, values)

    # -- aggregates, for metrics and listings ----------------------------------------

    def run_counts(
        self, *, kind: str | None = None, since: datetime | None = None
    ) -> list[RunCount]:
        """How many runs each job has in each status (created at or after ``since``)."""
        query = select(runs.c.kind, runs.c.job, runs.c.status, func.count().label("n")).group_by(
            runs.c.kind, runs.c.job, runs.c.status
        )
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        if since is not None:
            query = query.where(runs.c.created_at >= since)
        rows = self.connection.execute(query).all()
        return [RunCount(row.kind, row.job, row.status, int(row.n)) for row in rows]

    def runs_after(
        self, moment: Moment, at: datetime, run_id: int, limit: int = 1000
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
        rows = self.connection.execute(query).all()
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
