"""The processes of workers: starting replicas, stopping them, and what their exits mean.

The half of the supervisor that talks to the executor and records runs: a replica is
created as a run of kind ``worker`` (a singleton takes its lease in the same transaction),
launched in its pool with the worker environment, watched, stopped with SIGTERM and its
``stop_grace``, and its exit recorded, counted and backed off. A process whose shim died
without a result is stopped and confirmed gone before its lease is given back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jobdeck.catalog.model import Worker
from jobdeck.clock import Clock
from jobdeck.execute import RunResult
from jobdeck.execute.executor import DEFAULT_POOL, Applied, Executor
from jobdeck.execute.outcome import outcome_of
from jobdeck.execute.tasks import Supervised
from jobdeck.queues.catalog import wire_name, worker_environment
from jobdeck.store import Store, Tx
from jobdeck.store.errors import Fenced, RunAlreadyEnded
from jobdeck.store.records import Run, RunPlan
from jobdeck.workers.autoscale import ScaleState
from jobdeck.workers.lease import process_gone
from jobdeck.workers.rollout import ReplicaState, StopReason

log = logging.getLogger(__name__)

TICK = timedelta(seconds=1)
LEASE_TTL = timedelta(seconds=60)


class _LeaseBusy(Exception):
    """Raised inside a transaction to roll back a start whose lease was taken."""


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``base`` after the first quick exit, doubling up to ``most``; a
    process that ran ``stable_after`` or longer resets the count."""

    base: timedelta = timedelta(seconds=1)
    most: timedelta = timedelta(minutes=1)
    stable_after: timedelta = timedelta(seconds=30)

    def delay(self, failures: int) -> timedelta:
        if failures <= 0:
            return timedelta(0)
        grown: timedelta = self.base * (2 ** min(failures - 1, 30))
        return min(self.most, grown)


@dataclass
class Replica:
    run: Run
    spec_hash: str
    state: ReplicaState
    started_at: datetime | None = None
    stop_reason: StopReason | None = None


@dataclass
class WorkerLife:
    """What the supervisor knows of one worker between rounds."""

    name: str
    replicas: dict[int, Replica] = field(default_factory=dict)
    desired: int = 0
    failures: int = 0  # exits in a row of processes that did not run stable_after
    not_before: datetime | None = None  # the restart backoff
    exits: list[Run] = field(default_factory=list)  # ended runs that restarts link to
    restarts: int = 0
    last_exit: dict[str, Any] | None = None
    scale: ScaleState | None = None
    decision: dict[str, Any] | None = None
    spec_hash: str | None = None
    cleaning: bool = False  # confirming a vanished singleton holder is gone
    saved: tuple[Any, ...] | None = None


class ReplicaKeeper:
    """Starts, stops and records worker processes; :class:`Supervisor` decides which."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        executor: Executor,
        *,
        host: str,
        sqs_url: str | None = None,
        tick: timedelta = TICK,
        backoff: Backoff | None = None,
        lease_ttl: timedelta = LEASE_TTL,
        cooldown: timedelta | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.executor = executor
        self.host = host
        self.sqs_url = sqs_url
        self.tick = tick
        self.backoff = backoff or Backoff()
        self.lease_ttl = lease_ttl
        self.cooldown = cooldown  # overrides every autoscale policy's cooldown (tests)
        self.on_error = on_error
        self.applied: Applied | None = None
        self.workers: dict[str, WorkerLife] = {}
        self._wake = asyncio.Event()
        self.tasks = Supervised("worker supervisor", on_error)
        self._warned_no_endpoint = False
        self._observing: asyncio.Future[tuple[set[str], dict[str, int]]] | None = None
        # In a cluster: whether this node leads at a time (only the leader keeps the
        # workers at their replicas), the fence of its leader-only writes, and the file
        # past whose time the run shims stop its worker processes (see cluster/).
        self.leads: Callable[[datetime], bool] | None = None
        self.fence: Callable[[Tx, datetime], None] | None = None
        self.fence_file: Path | None = None

    def wake(self) -> None:
        self._wake.set()

    def life(self, name: str) -> WorkerLife:
        if name not in self.workers:
            self.workers[name] = WorkerLife(name)
        return self.workers[name]

    def _spec(self, name: str) -> Worker | None:
        return self.applied.catalog.workers.get(name) if self.applied else None

    # -- starting -----------------------------------------------------------------------

    def _start(self, life: WorkerLife, spec: Worker, now: datetime) -> None:
        assert self.applied is not None
        assert life.spec_hash is not None
        link = life.exits.pop(0) if life.exits else None
        detail = RunPlan(spec_hash=life.spec_hash, singleton=spec.singleton).detail()
        if link is not None:
            detail["restart_of"] = link.id
            detail["failures"] = life.failures
        try:
            with self.store.transaction() as tx:
                if self.fence is not None:
                    self.fence(tx, now)
                run = tx.runs.create_run(
                    job=life.name,
                    kind="worker",
                    trigger="retry" if link else "schedule",
                    status="pending",
                    created_at=now,
                    attempt=link.attempt + 1 if link else 1,
                    pool=spec.pool or DEFAULT_POOL,
                    revision=self.applied.revision,
                    retry_of=link.id if link else None,
                    host=self.host,
                    detail=detail,
                )
                if spec.singleton and not tx.workers.take_lease(
                    life.name,
                    run_id=run.id,
                    host=self.host,
                    now=now,
                    expires_at=now + self.lease_ttl,
                ):
                    raise _LeaseBusy
        except (_LeaseBusy, Fenced):
            if link is not None:
                life.exits.insert(0, link)
            return
        if life.decision is not None and "lease" in life.decision:
            life.decision = {k: v for k, v in life.decision.items() if k != "lease"} or None
        replica = Replica(run, life.spec_hash, "starting")
        life.replicas[run.id] = replica
        self.tasks.spawn(self._launch(life, spec, replica))

    def _environment(self, run: Run, spec: Worker) -> dict[str, str]:
        assert self.applied is not None
        env: dict[str, str] = {}
        if spec.queue is not None:
            declared = self.applied.catalog.queues.get(spec.queue)
            wire = wire_name(spec.queue, declared.fifo if declared else False)
            if self.sqs_url:
                env.update(worker_environment(self.sqs_url, wire))
            elif not self._warned_no_endpoint:
                self._warned_no_endpoint = True
                log.warning(
                    "worker %s: no SQS endpoint is served; its queue URL is not set", run.job
                )
        env.update(spec.env)
        env.update(
            {
                "JOBDECK_RUN_ID": str(run.id),
                "JOBDECK_JOB": run.job,
                "JOBDECK_KIND": "worker",
                "JOBDECK_ATTEMPT": str(run.attempt),
                "JOBDECK_TRIGGER": run.trigger,
            }
        )
        return env

    async def _launch(self, life: WorkerLife, spec: Worker, replica: Replica) -> None:
        assert self.applied is not None
        run = replica.run
        launched = await self.executor.start(
            run.id,
            spec,
            pool=run.pool,
            argv=list(spec.command) if spec.command else None,
            workdir=(self.applied.base_dir / spec.workdir).resolve(),
            env=self._environment(run, spec),
            fence=self.fence_file,
        )
        if launched.result is not None and launched.result.reason == "launch_error":
            self._on_exit(run.id, launched.result)
            return
        now = self.clock.now()
        with self.store.transaction() as tx:
            replica.run = tx.runs.update_run(
                run.id,
                at=now,
                event="started",
                status="running",
                started_at=now,
                detail={
                    "run_dir": str(launched.run_dir),
                    "pid": launched.pid,
                    "launch": launched.launch,
                },
            )
        replica.started_at = now
        if replica.state == "starting":
            replica.state = "running"
        self.executor.watch(run.id, self._on_exit)
        if replica.state == "stopping":
            await self._signal_stop(replica, spec.stop_grace.total_seconds())
        self.wake()  # a rolling update takes its next step once the new process runs

    # -- stopping -----------------------------------------------------------------------

    def _stop(self, life: WorkerLife, replica: Replica, reason: StopReason, now: datetime) -> None:
        was = replica.state
        replica.state = "stopping"
        replica.stop_reason = reason
        spec = self._spec(life.name)
        grace = (spec.stop_grace if spec else timedelta(seconds=30)).total_seconds()
        with self.store.transaction() as tx:
            tx.runs.update_run(
                replica.run.id,
                at=now,
                event="stopping",
                detail={**RunPlan(stop_reason=reason).detail(), "grace_s": grace},
            )
            tx.workers.add_worker_event(
                life.name, at=now, type="stopping", detail={"run": replica.run.id, "reason": reason}
            )
        log.info("worker %s: stopping run %d (%s)", life.name, replica.run.id, reason)
        if was != "starting":  # a starting one is stopped once its launch returns
            self.tasks.spawn(self._signal_stop(replica, grace))

    async def _signal_stop(self, replica: Replica, grace: float) -> None:
        try:
            await self.executor.cancel(replica.run.id, grace)
        except OSError as exc:
            log.warning("run %s: cannot stop it: %s", replica.run.id, exc)

    # -- exits --------------------------------------------------------------------------

    def _on_exit(self, run_id: int, result: RunResult | None) -> None:
        try:
            self._exited(run_id, result)
        except Exception as exc:
            log.exception("worker supervisor callback failed")
            if self.on_error:
                self.on_error(exc)

    def _exited(self, run_id: int, result: RunResult | None) -> None:
        found = [
            (life, life.replicas[run_id])
            for life in self.workers.values()
            if run_id in life.replicas
        ]
        if not found:
            return
        life, replica = found[0]
        del life.replicas[run_id]
        now = self.clock.now()
        status, reason, fields = outcome_of(result)
        stopped = replica.stop_reason
        if stopped is not None and result is not None:
            status, reason = "cancelled", stopped
        # A result written by the shim comes only once everything of the run is gone; a
        # launch error that the engine made up (a launch that timed out) proves nothing.
        gone = result is not None and process_gone(self.executor.run_dir(run_id))
        ended: Run | None = None
        try:
            with self.store.transaction() as tx:
                ended = tx.runs.update_run(
                    run_id,
                    at=now,
                    event="ended" if result else "lost",
                    status=status,
                    reason=reason,
                    ended_at=now,
                    **fields,
                )
                if gone:
                    tx.workers.release_lease(life.name, run_id)
                if stopped is None:
                    tx.workers.add_worker_event(
                        life.name,
                        at=now,
                        type="exited",
                        detail={
                            "run": run_id,
                            "status": status,
                            "reason": reason,
                            "exit_code": ended.exit_code,
                        },
                    )
        except RunAlreadyEnded as exc:
            log.warning("run %s: %s", run_id, exc)
        if not gone:
            life.cleaning = life.cleaning or bool(replica.run.plan.singleton)
            self.tasks.spawn(self._clean_up(life, run_id, replica.run.pool))
        else:
            self.executor.release(replica.run.pool, run_id)
        if stopped is None and ended is not None:
            self._count_exit(life, replica, ended, now)
        self.wake()

    def _count_exit(self, life: WorkerLife, replica: Replica, ended: Run, now: datetime) -> None:
        ran = now - (replica.started_at or now)
        life.failures = 1 if ran >= self.backoff.stable_after else life.failures + 1
        delay = self.backoff.delay(life.failures)
        life.not_before = now + delay
        life.restarts += 1
        life.exits.append(ended)
        life.last_exit = {
            "run": ended.id,
            "at": now.isoformat(),
            "status": ended.status,
            "reason": ended.reason,
            "exit_code": ended.exit_code,
            "restart_in_s": delay.total_seconds(),
            "failures_in_a_row": life.failures,
        }
        log.info(
            "worker %s: run %d ended %s; restart in %gs",
            life.name,
            ended.id,
            ended.status,
            delay.total_seconds(),
        )

    async def _clean_up(self, life: WorkerLife, run_id: int, pool: str | None) -> None:
        """A process whose shim is gone without a result may live on: stop what is
        left, and give the lease back only once nothing of it runs."""
        spec = self._spec(life.name)
        grace = (spec.stop_grace if spec else timedelta(seconds=30)).total_seconds()
        try:
            await self.executor.cancel(run_id, grace)
        except OSError as exc:
            log.warning("run %s: cannot stop what is left of it: %s", run_id, exc)
        gone = await asyncio.to_thread(process_gone, self.executor.run_dir(run_id))
        if gone:
            with self.store.transaction() as tx:
                tx.workers.release_lease(life.name, run_id)
            self.executor.release(pool, run_id)
        else:
            log.warning(
                "worker %s: run %d is not confirmed gone; its lease stays", life.name, run_id
            )
        life.cleaning = False
        self.wake()
