"""The run driver: every run of a schedule goes through here, timed or manual.

fire -> (suspension, overlap) -> a run record -> wait for pool room -> launch -> watch ->
record the outcome -> retry or not -> notify. The decisions are the pure functions of
:mod:`jobdeck.workflow.decisions`; this module only applies them to the store and the
executor. All of it runs in the event loop's thread; runs that are waiting live in the
store (``pending``), so a restarted engine finds them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jobdeck.catalog.model import Catalog, Schedule
from jobdeck.clock import Clock
from jobdeck.execute import RunResult
from jobdeck.store import Store, Tx
from jobdeck.store.records import Run, RunStatus, Trigger
from jobdeck.workflow.decisions import (
    ActiveRun,
    RetryState,
    decide_overlap,
    decide_retry,
)
from jobdeck.workflow.executor import DEFAULT_POOL, Executor

log = logging.getLogger(__name__)

NOTIFY_STATUSES = ("failed", "timed_out", "lost")
# Notify(targets, run, log tail) is called after a run ends badly; it must not block.
Notify = Callable[[list[str], Run, str], None]


class RunRefused(Exception):
    """A manual run that cannot start: unknown, disabled or suspended schedule."""


@dataclass(frozen=True)
class Applied:
    """The revision the engine runs, and where relative workdirs resolve."""

    revision: int
    catalog: Catalog
    base_dir: Path


@dataclass
class _Waiting:
    run: Run
    not_before: datetime | None = None
    exclusive: bool = False  # waits until no other run of its job is running
    shown: str | None = field(default=None)  # the waiting reason last recorded


class RunDriver:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        executor: Executor,
        *,
        host: str,
        notify: Notify | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.executor = executor
        self.host = host
        self.notify = notify
        self.on_error = on_error
        self.applied: Applied | None = None
        self.running: dict[int, Run] = {}
        self.waiting: dict[int, _Waiting] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- configuration ----------------------------------------------------------------

    def load(self, applied: Applied) -> None:
        self.applied = applied
        self._pump()

    def schedule(self, name: str) -> Schedule | None:
        return self.applied.catalog.schedules.get(name) if self.applied else None

    # -- starting runs ------------------------------------------------------------------

    def fire(self, name: str, nominal: datetime, trigger: Trigger = "schedule") -> Run | None:
        """A timed fire (or a catch-up of a missed one). None when another engine, or an
        earlier life of this one, already decided this slot."""
        spec = self.schedule(name)
        if spec is None or not spec.enabled:
            return None
        now = self.clock.now()
        lateness_ms = round((now - nominal).total_seconds() * 1000, 3)
        with self.store.transaction() as tx:
            if not tx.claim_fire(name, nominal, decided_at=now, host=self.host):
                return None
            run = self._decide(tx, name, spec, trigger, nominal, now, {"lateness_ms": lateness_ms})
            tx.attach_fire(name, nominal, run.id)
        self._after_create(run)
        return run

    def record_missed(self, name: str, slots: list[datetime], summary: dict[str, Any]) -> None:
        """Missed slots that catch-up does not run are recorded, never dropped."""
        now = self.clock.now()
        suspended = self._suspended(name, now)
        reason = "suspended" if suspended else "missed"
        spec = self.schedule(name)
        with self.store.transaction() as tx:
            for slot in slots:
                if tx.claim_fire(name, slot, decided_at=now, host=self.host):
                    run = self._record(tx, name, "catchup", "skipped", reason, slot, now, spec)
                    tx.attach_fire(name, slot, run.id)
            if summary:
                self._record(
                    tx, name, "catchup", "skipped", reason, None, now, spec, detail=summary
                )
        if spec is not None and self.notify and reason == "missed" and (slots or summary):
            count = len(slots) + int(summary.get("missed_slots", 0))
            notice = Run(
                0,
                name,
                "schedule",
                "catchup",
                "skipped",
                now,
                reason="missed",
                detail={"missed_slots": count},
            )
            self.notify(list(spec.notify), notice, "")

    def run_now(
        self,
        name: str,
        *,
        trigger: Trigger = "manual",
        requested_by: str | None = None,
        ignore_overlap: bool = False,
    ) -> Run:
        spec = self.schedule(name)
        if spec is None:
            raise RunRefused(f"no schedule named {name!r} in the applied revision")
        now = self.clock.now()
        held = self._suspended(name, now)
        if held:
            raise RunRefused(f"schedule {name} is suspended: {held}")
        with self.store.transaction() as tx:
            run = self._decide(
                tx,
                name,
                spec,
                trigger,
                None,
                now,
                {},
                requested_by=requested_by,
                ignore_overlap=ignore_overlap,
            )
        self._after_create(run)
        return run

    def _decide(
        self,
        tx: Tx,
        name: str,
        spec: Schedule,
        trigger: Trigger,
        nominal: datetime | None,
        now: datetime,
        detail: dict[str, Any],
        *,
        requested_by: str | None = None,
        ignore_overlap: bool = False,
    ) -> Run:
        if self._suspended(name, now, tx):
            return self._record(
                tx, name, trigger, "skipped", "suspended", nominal, now, spec, detail=detail
            )
        active = tx.active_runs(job=name, kind="schedule")
        policy = "allow" if ignore_overlap else spec.overlap
        decision = decide_overlap(policy, [ActiveRun(r.id, r.status == "pending") for r in active])
        if decision.action == "skip":
            blocking = [r.id for r in active]
            return self._record(
                tx,
                name,
                trigger,
                "skipped",
                "overlap",
                nominal,
                now,
                spec,
                detail={**detail, "active_runs": blocking},
            )
        extra: dict[str, Any] = {}
        if decision.action == "buffer":
            extra = {"buffered": True, "exclusive": True}
        elif decision.action == "cancel_and_start":
            extra = {"cancels": list(decision.cancel), "exclusive": True}
        return self._record(
            tx,
            name,
            trigger,
            "pending",
            None,
            nominal,
            now,
            spec,
            detail={**detail, **extra},
            requested_by=requested_by,
        )

    def _record(
        self,
        tx: Tx,
        name: str,
        trigger: Trigger,
        status: RunStatus,
        reason: str | None,
        nominal: datetime | None,
        now: datetime,
        spec: Schedule | None,
        *,
        detail: Mapping[str, Any] | None = None,
        requested_by: str | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
    ) -> Run:
        return tx.create_run(
            job=name,
            kind="schedule",
            trigger=trigger,
            status=status,
            created_at=now,
            reason=reason,
            attempt=attempt,
            scheduled_for=nominal,
            pool=(spec.pool or DEFAULT_POOL) if spec else None,
            revision=self.applied.revision if self.applied else None,
            retry_of=retry_of,
            requested_by=requested_by,
            host=self.host,
            detail=dict(detail or {}),
        )

    def _after_create(self, run: Run) -> None:
        if run.status != "pending":
            return
        for victim in run.detail.get("cancels", []):
            self._spawn(self._cancel(victim))
        self.waiting[run.id] = _Waiting(run, _not_before(run), bool(run.detail.get("exclusive")))
        self._pump()

    def _suspended(self, name: str, now: datetime, tx: Tx | None = None) -> str | None:
        found = (tx or self.store).suspensions(now)
        for held in found:
            if held.kind == "schedule" and held.name == name:
                return held.reason
        return None

    # -- dispatching ----------------------------------------------------------------------

    def _pump(self) -> None:
        """Start every waiting run that may start now; arm a timer for the next one."""
        if self.applied is None:
            return
        now = self.clock.now()
        running_jobs = {r.job for r in self.running.values()}
        in_pool: dict[str, int] = {}
        for r in self.running.values():
            in_pool[r.pool or DEFAULT_POOL] = in_pool.get(r.pool or DEFAULT_POOL, 0) + 1
        soonest: datetime | None = None
        for run_id in sorted(self.waiting):
            wait = self.waiting[run_id]
            spec = self.schedule(wait.run.job)
            if spec is None:
                self._abandon(wait, "removed from the catalog")
                continue
            pool = spec.pool or DEFAULT_POOL
            limit = self.applied.catalog.pools.get(pool)
            cap = limit.max_concurrency if limit else None
            if wait.not_before and wait.not_before > now:
                soonest = min(soonest or wait.not_before, wait.not_before)
                self._show(wait, "backoff")
            elif wait.exclusive and wait.run.job in running_jobs:
                self._show(wait, "overlap")
            elif cap is not None and in_pool.get(pool, 0) >= cap:
                self._show(wait, f"pool {pool} is full ({cap} running)")
            else:
                del self.waiting[run_id]
                self.running[run_id] = wait.run
                running_jobs.add(wait.run.job)
                in_pool[pool] = in_pool.get(pool, 0) + 1
                self._spawn(self._start(wait.run, spec))
        self._arm(soonest)

    def _arm(self, when: datetime | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            delay = max(0.0, (when - self.clock.now()).total_seconds())
            self._timer = asyncio.get_running_loop().call_later(delay, self._pump)

    def _show(self, wait: _Waiting, why: str) -> None:
        if wait.shown != why:
            wait.shown = why
            with self.store.transaction() as tx:
                tx.add_event(wait.run.id, at=self.clock.now(), type="waiting", detail={"for": why})

    def _abandon(self, wait: _Waiting, why: str) -> None:
        del self.waiting[wait.run.id]
        with self.store.transaction() as tx:
            tx.update_run(
                wait.run.id,
                at=self.clock.now(),
                event="cancelled",
                status="cancelled",
                reason="removed",
                detail={"why": why},
            )

    async def _start(self, run: Run, spec: Schedule) -> None:
        assert self.applied is not None
        env = {
            **spec.env,
            "JOBDECK_RUN_ID": str(run.id),
            "JOBDECK_JOB": run.job,
            "JOBDECK_ATTEMPT": str(run.attempt),
            "JOBDECK_TRIGGER": run.trigger,
        }
        if run.scheduled_for is not None:
            env["JOBDECK_SCHEDULED_FOR"] = run.scheduled_for.isoformat()
        workdir = (self.applied.base_dir / spec.workdir).resolve()
        launched = await self.executor.start(
            run.id,
            spec,
            pool=spec.pool,
            argv=list(spec.command) if spec.command else None,
            workdir=workdir,
            env=env,
        )
        now = self.clock.now()
        if launched.result is not None:
            self._finish(run.id, launched.result)
            return
        with self.store.transaction() as tx:
            self.running[run.id] = tx.update_run(
                run.id,
                at=now,
                event="started",
                status="running",
                started_at=now,
                detail={"run_dir": str(launched.run_dir), "pid": launched.pid},
            )
        self.executor.watch(run.id, self._finish)

    async def _cancel(self, run_id: int) -> None:
        if run_id in self.waiting:
            self._abandon(self.waiting[run_id], "cancelled by a newer run (cancel_other)")
            return
        spec = self.schedule(self.running[run_id].job) if run_id in self.running else None
        grace = spec.kill_grace.total_seconds() if spec else 10.0
        await self.executor.cancel(run_id, grace)

    # -- outcomes -------------------------------------------------------------------------

    def _finish(self, run_id: int, result: RunResult | None) -> None:
        run = self.running.pop(run_id, None)
        if run is None:
            return
        now = self.clock.now()
        status, reason, fields = _outcome(result)
        with self.store.transaction() as tx:
            ended = tx.update_run(
                run_id, at=now, event="ended", status=status, reason=reason, ended_at=now, **fields
            )
            retry = self._retry(tx, ended, now)
        self.executor.release(run.pool, run_id)
        spec = self.schedule(run.job)
        if spec and self.notify and status in NOTIFY_STATUSES:
            self.notify(list(spec.notify), ended, self.executor.log_tail(run_id))
        if retry is not None:
            self.waiting[retry.id] = _Waiting(retry, _not_before(retry))
        self._pump()

    def _retry(self, tx: Tx, ended: Run, now: datetime) -> Run | None:
        spec = self.schedule(ended.job)
        if spec is None:
            return None
        spent = RetryState(**ended.detail.get("retries", {}))
        decision = decide_retry(ended.reason, ended.status, spent, spec.retry)
        if decision is None:
            return None
        not_before = now + decision.delay
        return self._record(
            tx,
            ended.job,
            "retry",
            "pending",
            None,
            ended.scheduled_for,
            now,
            spec,
            detail={
                "not_before": not_before.isoformat(),
                "retry_of_reason": ended.reason,
                "retries": {"launch": decision.state.launch, "failure": decision.state.failure},
            },
            attempt=ended.attempt + 1,
            retry_of=ended.id,
        )

    # -- recovery -------------------------------------------------------------------------

    def recover(self) -> list[int]:
        """Adopt this host's runs found active in the store; returns the adopted ids."""
        adopted: list[int] = []
        now = self.clock.now()
        for run in self.store.active_runs(host=self.host, kind="schedule"):
            if run.status == "pending":
                self.waiting[run.id] = _Waiting(
                    run, _not_before(run), bool(run.detail.get("exclusive"))
                )
                continue
            state = self.executor.probe(run.id)
            self.running[run.id] = run
            if state == "vanished":
                with self.store.transaction() as tx:
                    tx.add_event(
                        run.id,
                        at=now,
                        type="vanished",
                        detail={"why": "no process and no result after a restart"},
                    )
                self._finish_lost(run.id, "engine_restart")
                continue
            with self.store.transaction() as tx:
                tx.add_event(run.id, at=now, type="adopted", detail={"state": state})
            adopted.append(run.id)
            self.executor.watch(run.id, self._finish)
        self._pump()
        return adopted

    def _finish_lost(self, run_id: int, reason: str) -> None:
        run = self.running.pop(run_id)
        now = self.clock.now()
        with self.store.transaction() as tx:
            ended = tx.update_run(
                run_id, at=now, event="lost", status="lost", reason=reason, ended_at=now
            )
        self.executor.release(run.pool, run_id)
        spec = self.schedule(run.job)
        if spec and self.notify:
            self.notify(list(spec.notify), ended, self.executor.log_tail(run_id))

    # -- tasks ------------------------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("run driver task failed", exc_info=error)
            if self.on_error:
                self.on_error(error)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.executor.close()


def _not_before(run: Run) -> datetime | None:
    text = run.detail.get("not_before")
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def _outcome(result: RunResult | None) -> tuple[RunStatus, str | None, dict[str, Any]]:
    if result is None:
        return "lost", "vanished", {}
    detail: dict[str, Any] = {
        key: value
        for key, value in (
            ("signal", result.signal),
            ("error", result.error),
            ("peak_memory", result.peak_memory),
            ("log_dropped_bytes", result.log_dropped_bytes or None),
        )
        if value is not None
    }
    if result.started_at and result.ended_at:
        began, ended = (
            datetime.fromisoformat(result.started_at),
            datetime.fromisoformat(result.ended_at),
        )
        detail["duration_ms"] = round((ended - began) / timedelta(milliseconds=1), 3)
    status: RunStatus = result.status
    reason = result.reason
    if reason == "shim_error":
        status = "failed"
    return status, reason, {"exit_code": result.exit_code, "detail": detail}
