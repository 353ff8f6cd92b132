"""The store in memory: the Protocols of :mod:`jobdeck.store.ports` over plain dicts, for
the unit tests of the cores (as apscheduler ships ``MemoryDataStore`` and procrastinate
``InMemoryConnector``).

Same semantics as the SQL store (orders, filters, claims that succeed once, the errors
it raises), checked by the contract tests that run the same assertions against memory,
SQLite and PostgreSQL. A unit of work runs on a copy of the state, which replaces the
state when the block ends and is dropped if it raises (copy-on-write): records are
frozen, so copying the containers is enough. One unit of work at a time, like SQLite.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from jobdeck.store.errors import NotFound
from jobdeck.store.invocations_sql import stored_key
from jobdeck.store.memory_nodes import MemoryNodes, NodeState
from jobdeck.store.memory_queues import MemoryQueues, QueueState
from jobdeck.store.memory_runs import MemoryRuns, RunState
from jobdeck.store.ports import (
    AuditReads,
    KeyReads,
    NodeReads,
    NoticeReads,
    QueueReads,
    RevisionReads,
    RunReads,
    SuspensionReads,
    WorkerReads,
)
from jobdeck.store.records import (
    AuditEntry,
    Notice,
    NoticeCount,
    Revision,
    RevisionInfo,
    Suspension,
)
from jobdeck.store.tables import as_utc
from jobdeck.store.views import read_view
from jobdeck.store.worker_records import WorkerEvent, WorkerLease, WorkerState, overview

__all__ = ["MemoryStore", "MemoryTx"]


@dataclasses.dataclass
class _State:
    revisions: list[Revision] = dataclasses.field(default_factory=list)
    suspensions: dict[int, Suspension] = dataclasses.field(default_factory=dict)
    audit: list[AuditEntry] = dataclasses.field(default_factory=list)
    runs: RunState = dataclasses.field(default_factory=RunState)
    queues: QueueState = dataclasses.field(default_factory=QueueState)
    leases: dict[str, WorkerLease] = dataclasses.field(default_factory=dict)
    worker_states: dict[str, WorkerState] = dataclasses.field(default_factory=dict)
    worker_events: list[WorkerEvent] = dataclasses.field(default_factory=list)
    keys: dict[str, tuple[datetime, int | None]] = dataclasses.field(default_factory=dict)
    notices: list[Notice] = dataclasses.field(default_factory=list)
    nodes: NodeState = dataclasses.field(default_factory=NodeState)

    def copy(self) -> _State:
        return _State(
            revisions=list(self.revisions),
            suspensions=dict(self.suspensions),
            audit=list(self.audit),
            runs=self.runs.copy(),
            queues=self.queues.copy(),
            leases=dict(self.leases),
            worker_states=dict(self.worker_states),
            worker_events=list(self.worker_events),
            keys=dict(self.keys),
            notices=list(self.notices),
            nodes=self.nodes.copy(),
        )


class MemoryStore:
    """A store that lives as long as the object; nothing is written anywhere."""

    def __init__(self) -> None:
        self.url = "memory://"
        self.single_writer = True
        self._state = _State()
        self._lock = threading.RLock()
        self.revisions: RevisionReads = read_view(self.reading, "revisions", RevisionReads)
        self.suspensions: SuspensionReads = read_view(self.reading, "suspensions", SuspensionReads)
        self.audit: AuditReads = read_view(self.reading, "audit", AuditReads)
        self.runs: RunReads = read_view(self.reading, "runs", RunReads)
        self.queues: QueueReads = read_view(self.reading, "queues", QueueReads)
        self.workers: WorkerReads = read_view(self.reading, "workers", WorkerReads)
        self.keys: KeyReads = read_view(self.reading, "keys", KeyReads)
        self.notices: NoticeReads = read_view(self.reading, "notices", NoticeReads)
        self.nodes: NodeReads = read_view(self.reading, "nodes", NodeReads)

    def __repr__(self) -> str:
        return "MemoryStore()"

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release; for the same use as the SQL store."""

    @contextmanager
    def transaction(self) -> Iterator[MemoryTx]:
        """One atomic unit of work: its changes replace the state at the end, and are
        dropped if the block raises."""
        with self._lock:
            working = self._state.copy()
            yield MemoryTx(working)
            self._state = working

    @contextmanager
    def reading(self) -> Iterator[MemoryTx]:
        """A snapshot for reads (its changes, if any, are dropped)."""
        with self._lock:
            snapshot = self._state.copy()
        yield MemoryTx(snapshot)


class MemoryTx:
    """The aggregates of one unit of work, over one copy of the state."""

    def __init__(self, state: _State) -> None:
        self.revisions = MemoryRevisions(state)
        self.suspensions = MemorySuspensions(state)
        self.audit = MemoryAudit(state)
        self.runs = MemoryRuns(state.runs)
        self.queues = MemoryQueues(state.queues)
        self.workers = MemoryWorkers(state)
        self.keys = MemoryKeys(state)
        self.notices = MemoryNotices(state)
        self.nodes = MemoryNodes(state.nodes)


class MemoryRevisions:
    def __init__(self, state: _State) -> None:
        self._state = state

    def latest_revision(self) -> Revision | None:
        return self._state.revisions[-1] if self._state.revisions else None

    def latest_number(self) -> int | None:
        latest = self.latest_revision()
        return None if latest is None else latest.number

    def revision(self, number: int) -> Revision | None:
        return next((r for r in self._state.revisions if r.number == number), None)

    def revisions(self, limit: int = 50) -> list[RevisionInfo]:
        newest = list(reversed(self._state.revisions))[:limit]
        return [
            RevisionInfo(
                number=r.number,
                applied_at=r.applied_at,
                applied_by=r.applied_by,
                catalog_sha256=r.catalog_sha256,
                git_describe=r.git_describe,
                source=r.source,
            )
            for r in newest
        ]

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
        # One unit of work at a time: no concurrent apply can take the number first.
        number = (self.latest_number() or 0) + 1
        revision = Revision(
            number=number,
            applied_at=as_utc(applied_at, "applied_at"),
            applied_by=applied_by,
            catalog_sha256=catalog_sha256,
            git_describe=git_describe,
            source=source,
            text=text,
            catalog=catalog,
        )
        self._state.revisions.append(revision)
        return revision


class MemorySuspensions:
    def __init__(self, state: _State) -> None:
        self._state = state

    def _newest_first(self) -> list[Suspension]:
        return sorted(
            self._state.suspensions.values(), key=lambda s: (s.created_at, s.id), reverse=True
        )

    def active_suspension(self, kind: str, name: str, now: datetime) -> Suspension | None:
        instant = as_utc(now, "now")
        return next(
            (
                s
                for s in self._newest_first()
                if s.kind == kind and s.name == name and _in_force(s, instant)
            ),
            None,
        )

    def suspensions(self, now: datetime, *, include_ended: bool = False) -> list[Suspension]:
        instant = as_utc(now, "now")
        return [s for s in self._newest_first() if include_ended or _in_force(s, instant)]

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
        suspension = Suspension(
            id=max(self._state.suspensions, default=0) + 1,
            kind=kind,
            name=name,
            reason=reason,
            created_by=created_by,
            created_at=as_utc(created_at, "created_at"),
            until=None if until is None else as_utc(until, "until"),
        )
        self._state.suspensions[suspension.id] = suspension
        return suspension

    def end_suspension(
        self, suspension_id: int, *, ended_by: str, ended_at: datetime, catch_up: bool = False
    ) -> Suspension:
        found = self._state.suspensions.get(suspension_id)
        if found is None:
            raise NotFound(f"no suspension with id {suspension_id}")
        if found.ended_at is not None:
            return found
        ended = dataclasses.replace(
            found, ended_by=ended_by, ended_at=as_utc(ended_at, "ended_at"), catch_up=catch_up
        )
        self._state.suspensions[suspension_id] = ended
        return ended

    def catch_ups_asked(self) -> list[Suspension]:
        asked = [
            s
            for s in self._state.suspensions.values()
            if s.catch_up and s.ended_at is not None and s.caught_up_at is None
        ]
        return sorted(asked, key=lambda s: (s.ended_at, s.id))

    def take_catch_up(self, suspension_id: int, *, at: datetime) -> bool:
        found = self._state.suspensions.get(suspension_id)
        if found is None or not found.catch_up or found.ended_at is None:
            return False
        if found.caught_up_at is not None:
            return False
        taken = dataclasses.replace(found, caught_up_at=as_utc(at, "at"))
        self._state.suspensions[suspension_id] = taken
        return True


def _in_force(suspension: Suspension, now: datetime) -> bool:
    return suspension.ended_at is None and (suspension.until is None or suspension.until > now)


class MemoryAudit:
    def __init__(self, state: _State) -> None:
        self._state = state

    def record_audit(self, entry: AuditEntry) -> AuditEntry:
        stored = dataclasses.replace(
            entry, id=len(self._state.audit) + 1, at=as_utc(entry.at, "at")
        )
        self._state.audit.append(stored)
        return dataclasses.replace(entry, id=stored.id)

    def audit(self, limit: int = 50, offset: int = 0) -> list[AuditEntry]:
        newest = sorted(self._state.audit, key=lambda e: (e.at, e.id or 0), reverse=True)
        return newest[offset : offset + limit]


class MemoryWorkers:
    def __init__(self, state: _State) -> None:
        self._state = state

    def lease(self, worker: str) -> WorkerLease | None:
        return self._state.leases.get(worker)

    def take_lease(
        self, worker: str, *, run_id: int, host: str, now: datetime, expires_at: datetime
    ) -> bool:
        instant = as_utc(now, "now")
        held = self._state.leases.get(worker)
        if held is not None and (held.holder_host == host or held.expires_at > instant):
            return False
        self._state.leases[worker] = WorkerLease(
            worker=worker,
            holder_run=run_id,
            holder_host=host,
            acquired_at=instant,
            expires_at=as_utc(expires_at, "expires_at"),
        )
        return True

    def renew_leases(self, host: str, expires_at: datetime) -> int:
        until = as_utc(expires_at, "expires_at")
        mine = [lease for lease in self._state.leases.values() if lease.holder_host == host]
        for lease in mine:
            self._state.leases[lease.worker] = dataclasses.replace(lease, expires_at=until)
        return len(mine)

    def release_lease(self, worker: str, run_id: int) -> bool:
        held = self._state.leases.get(worker)
        if held is None or held.holder_run != run_id:
            return False
        del self._state.leases[worker]
        return True

    def save_worker_state(self, state: WorkerState) -> None:
        updated_at = as_utc(state.updated_at, "updated_at")
        self._state.worker_states[state.worker] = dataclasses.replace(state, updated_at=updated_at)

    def worker_states(self) -> dict[str, WorkerState]:
        return dict(sorted(self._state.worker_states.items()))

    def running_workers(self) -> dict[str, int]:
        return MemoryRuns(self._state.runs).running_workers()

    def worker_overview(self) -> dict[str, dict[str, Any]]:
        return overview(self.worker_states(), self.running_workers())

    def add_worker_event(
        self, worker: str, *, at: datetime, type: str, detail: dict[str, Any] | None = None
    ) -> WorkerEvent:
        event = WorkerEvent(
            worker=worker,
            at=as_utc(at, "at"),
            type=type,
            detail=detail or {},
            id=len(self._state.worker_events) + 1,
        )
        self._state.worker_events.append(event)
        return event

    def worker_events(
        self, worker: str | None = None, *, types: tuple[str, ...] = (), limit: int = 100
    ) -> list[WorkerEvent]:
        found = [
            e
            for e in self._state.worker_events
            if (worker is None or e.worker == worker) and (not types or e.type in types)
        ]
        return found[-limit:] if limit > 0 else []


class MemoryKeys:
    def __init__(self, state: _State) -> None:
        self._state = state

    def claim_key(self, key: str, *, at: datetime) -> bool:
        stored = stored_key(key)
        if stored in self._state.keys:
            return False
        self._state.keys[stored] = (as_utc(at, "at"), None)
        return True

    def attach_run(self, key: str, run_id: int) -> None:
        stored = stored_key(key)
        if stored in self._state.keys:
            self._state.keys[stored] = (self._state.keys[stored][0], run_id)

    def key_run(self, key: str) -> int | None:
        found = self._state.keys.get(stored_key(key))
        return None if found is None else found[1]

    def prune_keys(self, *, before: datetime) -> int:
        cutoff = as_utc(before, "before")
        old = [k for k, (created, _) in self._state.keys.items() if created < cutoff]
        for k in old:
            del self._state.keys[k]
        return len(old)

    def release_key(self, key: str) -> None:
        self._state.keys.pop(stored_key(key), None)


class MemoryNotices:
    def __init__(self, state: _State) -> None:
        self._state = state

    def record_notice(self, notice: Notice) -> Notice:
        stored = dataclasses.replace(
            notice,
            id=len(self._state.notices) + 1,
            at=as_utc(notice.at, "at"),
            targets=list(notice.targets),
            detail=dict(notice.detail),
            message=dict(notice.message),
            next_try_at=None
            if notice.next_try_at is None
            else as_utc(notice.next_try_at, "next_try_at"),
        )
        self._state.notices.append(stored)
        return stored

    def due_notices(self, now: datetime, *, limit: int = 100) -> list[Notice]:
        return [
            n
            for n in self._state.notices
            if n.delivery == "due" and (n.next_try_at is None or n.next_try_at <= now)
        ][:limit]

    def set_delivery(
        self,
        notice_id: int,
        delivery: str,
        *,
        attempts: int,
        next_try_at: datetime | None = None,
        delivered_at: datetime | None = None,
    ) -> bool:
        for index, n in enumerate(self._state.notices):
            if n.id == notice_id and n.delivery == "due":
                self._state.notices[index] = dataclasses.replace(
                    n,
                    delivery=delivery,
                    attempts=attempts,
                    next_try_at=next_try_at,
                    delivered_at=delivered_at,
                )
                return True
        return False

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
        found = [
            n
            for n in self._state.notices
            if (job is None or n.job == job)
            and (kind is None or n.kind == kind)
            and (stream is None or n.stream == stream)
            and (run_id is None or n.run_id == run_id)
        ]
        found.sort(key=lambda n: (n.at, n.id or 0), reverse=True)
        return found[offset : offset + limit]

    def notice_counts(self) -> list[NoticeCount]:
        counts: dict[tuple[str, str, str, bool], int] = {}
        for n in self._state.notices:
            key = (n.kind, n.job, n.event, n.sent)
            counts[key] = counts.get(key, 0) + 1
        return [NoticeCount(*key, count) for key, count in counts.items()]
