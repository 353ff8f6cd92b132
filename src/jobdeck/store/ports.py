"""The store's interface: one narrow Protocol per aggregate, and the unit of work that
holds one of each.

A unit of work (:class:`Tx`, from ``store.transaction()``) exposes its aggregates as
attributes: ``tx.runs.create_run(...)``, ``tx.queues.insert_messages(...)``,
``tx.keys.claim_key(...)``. Outside a transaction, ``store.runs.run(id)`` and the like
read through a view typed by the aggregate's read-only Protocol (``*Reads``), each call
in a snapshot of its own. Two implementations: SQL (:mod:`jobdeck.store.sql`, SQLite and
PostgreSQL) and memory (:mod:`jobdeck.store.memory`, for the cores' unit tests). No
method reads the clock: callers pass times.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from jobdeck.store.key_records import KeyUse
from jobdeck.store.node_ports import NodeReads as NodeReads
from jobdeck.store.node_ports import Nodes as Nodes
from jobdeck.store.queue_ports import QueueReads as QueueReads
from jobdeck.store.queue_ports import Queues as Queues
from jobdeck.store.records import (
    AuditEntry,
    Notice,
    NoticeCount,
    Revision,
    RevisionInfo,
    Run,
    RunEvent,
    RunKind,
    RunStatus,
    RunStep,
    Suspension,
    Trigger,
)
from jobdeck.store.run_rows import Moment, RunCount, RunRow
from jobdeck.store.worker_ports import WorkerReads as WorkerReads
from jobdeck.store.worker_ports import Workers as Workers

# -- revisions -------------------------------------------------------------------------


class RevisionReads(Protocol):
    def latest_revision(self) -> Revision | None: ...

    def latest_number(self) -> int | None:
        """The newest revision's number only (a revision's row holds the whole catalog)."""
        ...

    def revision(self, number: int) -> Revision | None: ...

    def revisions(self, limit: int = 50) -> list[RevisionInfo]:
        """Applied revisions, newest first (without their text and catalog)."""
        ...


class Revisions(RevisionReads, Protocol):
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
        """Records the next revision (1 for the first); :class:`RevisionConflict` when a
        concurrent apply took the number first (the unit of work is then unusable)."""
        ...


# -- suspensions -----------------------------------------------------------------------


class SuspensionReads(Protocol):
    def active_suspension(self, kind: str, name: str, now: datetime) -> Suspension | None:
        """The newest suspension of ``kind``/``name`` in force at ``now``, if any."""
        ...

    def catch_ups_asked(self) -> list[Suspension]:
        """Suspensions resumed with catch-up that no engine has taken, oldest first."""
        ...

    def suspensions(self, now: datetime, *, include_ended: bool = False) -> list[Suspension]:
        """Suspensions active at ``now`` (all of them with ``include_ended``), newest first."""
        ...


class Suspensions(SuspensionReads, Protocol):
    def add_suspension(
        self,
        *,
        kind: str,
        name: str,
        reason: str,
        created_by: str,
        created_at: datetime,
        until: datetime | None,
    ) -> Suspension: ...

    def end_suspension(
        self, suspension_id: int, *, ended_by: str, ended_at: datetime, catch_up: bool = False
    ) -> Suspension:
        """Ends a suspension (one already ended is returned unchanged); :class:`NotFound`
        for an unknown id. ``catch_up``: the resume asks for the slots it held."""
        ...

    def take_catch_up(self, suspension_id: int, *, at: datetime) -> bool:
        """Takes the catch-up that a resume asked for; True for the one caller that does,
        False when another took it (or none was asked)."""
        ...


# -- audit -----------------------------------------------------------------------------


class AuditReads(Protocol):
    def audit(self, limit: int = 50, offset: int = 0) -> list[AuditEntry]:
        """Audit entries, newest first."""
        ...


class Audit(AuditReads, Protocol):
    def record_audit(self, entry: AuditEntry) -> AuditEntry:
        """Stores ``entry`` and returns it with its id."""
        ...


# -- notices ---------------------------------------------------------------------------


class NoticeReads(Protocol):
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
        """Notices matching every filter given, sent and held back, newest first."""
        ...

    def notice_counts(self) -> list[NoticeCount]:
        """How many notices each job has of each event, sent and held back (ever)."""
        ...

    def due_notices(self, now: datetime, *, limit: int = 100) -> list[Notice]:
        """Notices to send (``delivery`` ``due``) whose ``next_try_at`` is ``now`` or
        earlier, oldest first."""
        ...


class Notices(NoticeReads, Protocol):
    def record_notice(self, notice: Notice) -> Notice:
        """Stores ``notice`` and returns it with its id."""
        ...

    def set_delivery(
        self,
        notice_id: int,
        delivery: str,
        *,
        attempts: int,
        next_try_at: datetime | None = None,
        delivered_at: datetime | None = None,
    ) -> bool:
        """Records how sending notice ``notice_id`` went; False if it is not ``due``
        (already delivered or given up: the first outcome recorded stands)."""
        ...


# -- runs, their events, claimed fires -------------------------------------------------


class RunReads(Protocol):
    def last_fire(self, schedule: str) -> datetime | None:
        """The newest nominal time claimed for ``schedule``; None if none ever was."""
        ...

    def last_fires(self) -> dict[str, datetime]:
        """The newest nominal time claimed for each schedule that ever claimed one."""
        ...

    def claimed_fires(
        self, schedule: str, start: datetime, end: datetime
    ) -> dict[datetime, int | None]:
        """The slots of ``schedule`` claimed with ``start <= nominal <= end``, each with
        the run its claim started (None while a claim has none), oldest first."""
        ...

    def run(self, run_id: int) -> Run | None: ...

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
        ...

    def active_runs(
        self, *, job: str | None = None, kind: RunKind | None = None, host: str | None = None
    ) -> list[Run]:
        """Runs still pending or running, oldest first."""
        ...

    def last_runs(self, jobs: list[str] | None = None) -> dict[str, Run]:
        """The newest run of each job (of each of ``jobs`` that has one, when given)."""
        ...

    def events(self, run_id: int) -> list[RunEvent]:
        """The history of a run, oldest first; empty for an unknown run."""
        ...

    def run_counts(
        self, *, kind: str | None = None, since: datetime | None = None
    ) -> list[RunCount]:
        """How many runs each job has in each status (created at or after ``since``)."""
        ...

    def runs_after(
        self, moment: Moment, at: datetime, run_id: int, limit: int = 1000
    ) -> list[RunRow]:
        """Runs whose (``moment``, id) comes after ``(at, run_id)``, in that order."""
        ...

    def concurrency_keys(self, keys: Sequence[str] | None = None) -> list[KeyUse]:
        """Each concurrency key that active runs hold or wait for (of ``keys`` when
        given), by name, with its holders and its waiters in the order they get it."""
        ...

    def concurrency_key_of(self, run_id: int) -> str | None:
        """The concurrency key the run holds or waits for; None if it never asked."""
        ...


class Runs(RunReads, Protocol):
    def claim_fire(
        self, schedule: str, nominal: datetime, *, decided_at: datetime, host: str
    ) -> bool:
        """Claims the timed fire of ``schedule`` at ``nominal``; True if this caller won
        (once, ever). Losing leaves the unit of work usable."""
        ...

    def reclaim_fire(
        self, schedule: str, nominal: datetime, *, decided_at: datetime, host: str
    ) -> bool:
        """Claims a slot that was never claimed, or whose run was recorded skipped /
        suspended (a resume with catch-up asks for it); True if this caller won. The
        slot's claim then waits for its new run (:meth:`attach_fire`)."""
        ...

    def attach_fire(self, schedule: str, nominal: datetime, run_id: int) -> None:
        """Records which run a claimed fire started; :class:`NotFound` if unclaimed."""
        ...

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
        ...

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
        """Sets the fields given (merging ``detail``) and records an event ``event``;
        :class:`NotFound`, or :class:`RunAlreadyEnded` for a status after a final one."""
        ...

    def take_run(
        self, run_id: int, host: str, *, at: datetime, only_from: str | None = None
    ) -> Run | None:
        """Moves a pending run to engine ``host`` (which will start it), with an event
        ``taken`` naming both engines; None when the run is no longer pending, or (with
        ``only_from``) no longer on host ``only_from`` (the check and the move are one
        write, so two engines never both take it)."""
        ...

    def decide_job(self, job: str, kind: RunKind) -> list[Run]:
        """The active runs of ``job``, read under the job's lock held to the end of the
        unit of work (PostgreSQL: a transaction-scoped advisory lock; one engine's
        SQLite or memory store serializes writers already), so that engines deciding a
        new run of one job at once (its overlap) decide one after the other."""
        ...

    def update_run_steps(
        self, run_id: int, *, at: datetime, steps: Sequence[RunStep], known: Run | None = None
    ) -> Run:
        """:meth:`update_run` for several steps in turn (``known``: the run as its only
        writer last had it, which spares reading it)."""
        ...

    def add_event(
        self, run_id: int, *, at: datetime, type: str, detail: dict[str, Any] | None = None
    ) -> RunEvent:
        """Appends a step to a run's history; :class:`NotFound` for an unknown run."""
        ...

    def append_events(
        self, run_ids: Sequence[int], *, at: datetime, type: str, detail: dict[str, Any]
    ) -> None:
        """:meth:`add_event` for runs the caller knows to exist, nothing returned."""
        ...

    def claim_concurrency(self, run_id: int, key: str, limit: int, *, at: datetime) -> bool:
        """The run asks for ``key``; True when it holds it (now or since earlier). At most
        ``limit`` active runs hold a key, whoever claims it on whichever connection; the
        others wait, oldest run first, with reason ``concurrency``. A run's end (any end)
        releases its key. Claiming again is how a waiter asks again."""
        ...


# -- invocation keys (de-duplication of command requests) ------------------------------


class KeyReads(Protocol):
    def key_run(self, key: str) -> int | None:
        """The run that the request with ``key`` started, if any."""
        ...


class Keys(KeyReads, Protocol):
    def claim_key(self, key: str, *, at: datetime) -> bool:
        """True when this caller is the first ever to claim ``key``; losing leaves the
        unit of work usable."""
        ...

    def attach_run(self, key: str, run_id: int) -> None: ...

    def prune_keys(self, *, before: datetime) -> int:
        """Forgets keys claimed before ``before``; returns how many."""
        ...

    def release_key(self, key: str) -> None:
        """Frees a key whose request started nothing, so that it may be tried again."""
        ...


# -- the unit of work ------------------------------------------------------------------


class Tx(Protocol):
    """One atomic unit of work: every aggregate, on one transaction."""

    @property
    def revisions(self) -> Revisions: ...
    @property
    def suspensions(self) -> Suspensions: ...
    @property
    def audit(self) -> Audit: ...
    @property
    def runs(self) -> Runs: ...
    @property
    def queues(self) -> Queues: ...
    @property
    def workers(self) -> Workers: ...
    @property
    def keys(self) -> Keys: ...
    @property
    def notices(self) -> Notices: ...
    @property
    def nodes(self) -> Nodes: ...


class DataStore(Protocol):
    """What the cores need of a store: units of work, and reads outside one (each in a
    snapshot of its own, typed read-only)."""

    @property
    def revisions(self) -> RevisionReads: ...
    @property
    def suspensions(self) -> SuspensionReads: ...
    @property
    def audit(self) -> AuditReads: ...
    @property
    def runs(self) -> RunReads: ...
    @property
    def queues(self) -> QueueReads: ...
    @property
    def workers(self) -> WorkerReads: ...
    @property
    def keys(self) -> KeyReads: ...
    @property
    def notices(self) -> NoticeReads: ...
    @property
    def nodes(self) -> NodeReads: ...

    def transaction(self) -> AbstractContextManager[Tx]:
        """One atomic unit of work: committed at the end, rolled back on an exception."""
        ...

    def reading(self) -> AbstractContextManager[Tx]:
        """A consistent snapshot for reads only."""
        ...
