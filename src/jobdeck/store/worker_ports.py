"""The store's interface for workers: singleton leases, the supervisor's state and its
events (part of :mod:`jobdeck.store.ports`, which re-exports it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from jobdeck.store.worker_records import WorkerEvent, WorkerLease, WorkerState

# -- workers: singleton leases, the supervisor's state, its events ---------------------


class WorkerReads(Protocol):
    def lease(self, worker: str) -> WorkerLease | None: ...

    def worker_states(self) -> dict[str, WorkerState]: ...

    def running_workers(self) -> dict[str, int]:
        """Worker processes running now, by worker (from the runs of kind ``worker``)."""
        ...

    def worker_overview(self) -> dict[str, dict[str, Any]]:
        """What `jobdeck status` shows of each worker."""
        ...

    def worker_events(
        self, worker: str | None = None, *, types: tuple[str, ...] = (), limit: int = 100
    ) -> list[WorkerEvent]:
        """The newest ``limit`` events (of ``worker``, of ``types``), oldest first."""
        ...


class Workers(WorkerReads, Protocol):
    def take_lease(
        self, worker: str, *, run_id: int, host: str, now: datetime, expires_at: datetime
    ) -> bool:
        """Makes ``run_id`` the holder of a free lease, or of one that another host let
        expire; True when taken. Losing leaves the unit of work usable."""
        ...

    def renew_leases(self, host: str, expires_at: datetime) -> int:
        """Extends every lease that ``host`` holds; returns how many."""
        ...

    def release_lease(self, worker: str, run_id: int) -> bool:
        """Gives the lease back if ``run_id`` still holds it."""
        ...

    def save_worker_state(self, state: WorkerState) -> None: ...

    def add_worker_event(
        self, worker: str, *, at: datetime, type: str, detail: dict[str, Any] | None = None
    ) -> WorkerEvent: ...
