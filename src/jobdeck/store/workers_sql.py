"""The store's queries for workers: singleton leases, the supervisor's state, its events.

:class:`SqlWorkers` is the workers aggregate of a unit of work
(:class:`jobdeck.store.sql.SqlTx`): every method runs on its connection and inside its
transaction. No method reads the clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobdeck.store.tables import as_utc, runs, worker_events, worker_leases, worker_states
from jobdeck.store.worker_records import WorkerEvent, WorkerLease, WorkerState, overview


class SqlWorkers:
    """Leases, states and events of workers, on the connection of one unit of work."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- singleton leases --------------------------------------------------------------

    def lease(self, worker: str) -> WorkerLease | None:
        query = select(worker_leases).where(worker_leases.c.worker == worker)
        row = self.connection.execute(query).mappings().first()
        return None if row is None else _lease(row)

    def take_lease(
        self, worker: str, *, run_id: int, host: str, now: datetime, expires_at: datetime
    ) -> bool:
        """Makes ``run_id`` the holder; True when taken. Only a free lease, or one that
        another engine let expire, can be taken: the holder's own engine gives it back
        (:meth:`release_lease`) once its process is gone. Losing leaves the transaction
        usable."""
        values = {
            "worker": worker,
            "holder_run": run_id,
            "holder_host": host,
            "acquired_at": as_utc(now, "now"),
            "expires_at": as_utc(expires_at, "expires_at"),
        }
        dialect = self.connection.dialect.name
        insert: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            insert = postgresql.insert(worker_leases).values(values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            insert = sqlite.insert(worker_leases).values(values).on_conflict_do_nothing()
        else:
            raise NotImplementedError(f"taking a lease is not supported on {dialect}")
        if self.connection.execute(insert.returning(worker_leases.c.worker)).first():
            return True
        takeover = (
            update(worker_leases)
            .where(
                worker_leases.c.worker == worker,
                worker_leases.c.holder_host != host,
                worker_leases.c.expires_at <= as_utc(now, "now"),
            )
            .values(values)
            .returning(worker_leases.c.worker)
        )
        return self.connection.execute(takeover).first() is not None

    def renew_leases(self, host: str, expires_at: datetime) -> int:
        """Extends every lease that ``host`` holds; returns how many."""
        query = (
            update(worker_leases)
            .where(worker_leases.c.holder_host == host)
            .values(expires_at=as_utc(expires_at, "expires_at"))
        )
        return int(self.connection.execute(query).rowcount or 0)

    def release_lease(self, worker: str, run_id: int) -> bool:
        """Gives the lease back if ``run_id`` still holds it."""
        query = delete(worker_leases).where(
            worker_leases.c.worker == worker, worker_leases.c.holder_run == run_id
        )
        return bool(self.connection.execute(query).rowcount)

    # -- the supervisor's state ----------------------------------------------------------

    def save_worker_state(self, state: WorkerState) -> None:
        values = {
            "worker": state.worker,
            "desired": state.desired,
            "restarts": state.restarts,
            "last_exit": state.last_exit,
            "decision": state.decision,
            "updated_at": as_utc(state.updated_at, "updated_at"),
        }
        changed = {k: v for k, v in values.items() if k != "worker"}
        dialect = self.connection.dialect.name
        if dialect == "postgresql":
            pg = postgresql.insert(worker_states).values(values)
            self.connection.execute(
                pg.on_conflict_do_update(index_elements=["worker"], set_=changed)
            )
        elif dialect == "sqlite":
            lite = sqlite.insert(worker_states).values(values)
            self.connection.execute(
                lite.on_conflict_do_update(index_elements=["worker"], set_=changed)
            )
        else:
            raise NotImplementedError(f"saving a worker state is not supported on {dialect}")

    def worker_states(self) -> dict[str, WorkerState]:
        query = select(worker_states).order_by(worker_states.c.worker)
        return {row["worker"]: _state(row) for row in self.connection.execute(query).mappings()}

    def running_workers(self) -> dict[str, int]:
        """Worker processes running now, by worker (from the runs of kind ``worker``)."""
        query = (
            select(runs.c.job, func.count().label("n"))
            .where(runs.c.kind == "worker", runs.c.status == "running")
            .group_by(runs.c.job)
        )
        return {row.job: int(row.n) for row in self.connection.execute(query)}

    def worker_overview(self) -> dict[str, dict[str, Any]]:
        """What `jobdeck status` shows of each worker the supervisor looked after:
        desired and running replicas, restarts, the last exit, the scaling decision."""
        return overview(self.worker_states(), self.running_workers())

    # -- events --------------------------------------------------------------------------

    def add_worker_event(
        self, worker: str, *, at: datetime, type: str, detail: dict[str, Any] | None = None
    ) -> WorkerEvent:
        values = {"worker": worker, "at": as_utc(at, "at"), "type": type, "detail": detail or {}}
        row = self.connection.execute(
            worker_events.insert().values(values).returning(*worker_events.c)
        )
        return _event(row.mappings().one())

    def worker_events(
        self, worker: str | None = None, *, types: tuple[str, ...] = (), limit: int = 100
    ) -> list[WorkerEvent]:
        """The newest ``limit`` events (of ``worker``, of ``types``), oldest first."""
        query = select(worker_events).order_by(worker_events.c.id.desc()).limit(limit)
        if worker is not None:
            query = query.where(worker_events.c.worker == worker)
        if types:
            query = query.where(or_(*(worker_events.c.type == t for t in types)))
        found = [_event(row) for row in self.connection.execute(query).mappings()]
        return list(reversed(found))


def _lease(row: RowMapping) -> WorkerLease:
    return WorkerLease(
        worker=row["worker"],
        holder_run=row["holder_run"],
        holder_host=row["holder_host"],
        acquired_at=row["acquired_at"],
        expires_at=row["expires_at"],
    )


def _state(row: RowMapping) -> WorkerState:
    return WorkerState(
        worker=row["worker"],
        desired=row["desired"],
        restarts=row["restarts"],
        updated_at=row["updated_at"],
        last_exit=row["last_exit"],
        decision=row["decision"],
    )


def _event(row: RowMapping) -> WorkerEvent:
    return WorkerEvent(
        worker=row["worker"], at=row["at"], type=row["type"], detail=row["detail"], id=row["id"]
    )
