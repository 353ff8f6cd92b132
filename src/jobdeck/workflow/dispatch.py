"""The dispatching half of the run driver: waiting runs -> pool room -> launch.

A run that the driver decided to start is ``pending`` in the store and waits here until
its backoff has passed, no other run of its job runs (when it must run alone: buffered
or cancel_other), and its pool has room (``max_concurrency``). Then it is launched,
watched, and handed to its :class:`~jobdeck.workflow.outcomes.Outcomes` when it ends
(recorded, retried or not, notified). Every step is a run event in the store. All of
it runs in the event loop's thread: the driver hands it what other threads ask for
(through its :class:`~jobdeck.execute.tasks.LoopGate`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from jobdeck.catalog.model import Command
from jobdeck.clock import Clock
from jobdeck.execute.executor import DEFAULT_POOL, Executor, Launched
from jobdeck.execute.tasks import Supervised
from jobdeck.store import Store, Tx
from jobdeck.store.errors import RunAlreadyEnded
from jobdeck.store.records import CancelRequest, Run, RunStatus
from jobdeck.workflow.keys import POLL, KeyClaims, waited_too_long, waits_for
from jobdeck.workflow.outcome import iso, start_timings
from jobdeck.workflow.outcomes import Outcomes
from jobdeck.workflow.placement import DISPATCHED
from jobdeck.workflow.remote_cancel import cancel_elsewhere
from jobdeck.workflow.state import Notify, Runs, Spec, started_step
from jobdeck.workflow.waiting import Waiting

log = logging.getLogger(__name__)

JobKey = tuple[str, str]  # (run kind, job name): a schedule and a command may share a name


def _key(run: Run) -> JobKey:
    return (run.kind, run.job)


def _full(pool: str, cap: int) -> str:
    """What a run waits for in a full pool."""
    return f"pool {pool} is full ({cap} running)"


class Dispatcher:
    """Starts the waiting runs of :class:`~jobdeck.workflow.state.Runs` as their pools
    and jobs allow, and stops the ones cancelled; its :attr:`outcomes` end them."""

    def __init__(
        self,
        runs: Runs,
        store: Store,
        clock: Clock,
        executor: Executor,
        supervised: Supervised,
        *,
        notify: Notify | None = None,
    ) -> None:
        self.runs = runs
        self.store = store
        self.clock = clock
        self.executor = executor
        self.supervised = supervised
        self._timer: asyncio.TimerHandle | None = None
        self._shown: list[tuple[int, str]] = []  # waiting events of the current pump
        self.outcomes = Outcomes(runs, store, clock, executor, supervised, notify, self.pump)
        # In a cluster: the runs still running on other nodes (a fenced old leader's),
        # which count for their jobs' overlap and their pools' room here; and each run
        # handed to the executor is marked (event ``dispatched``), so that a lost node's
        # runs that never launched can be told from those that may have.
        self.elsewhere: Callable[[], list[Run]] | None = None
        # Whether another node is alive in the cluster (then the marks are written, and
        # the store is asked before each launch: a run may be cancelled through another
        # node up to its launch, see jobdeck.workflow.elsewhere); a node alone writes
        # and asks nothing, and its run path is one engine's.
        self.shared: Callable[[], bool] = lambda: False

    def enqueue_all(self, batch: list[Run]) -> None:
        """:meth:`enqueue` for the runs of a batch (a backfill), with one pump for all."""
        for run in batch:
            self.enqueue(run, pump=False)
        self.supervised.guarded(self.pump)

    def enqueue(self, run: Run, shown: str | None = None, *, pump: bool = True) -> None:
        """A pending run joins the waiting ones (stopping the runs it replaces first);
        ``shown``: what it waits for, recorded already (see :meth:`note_waiting`)."""
        runs = self.runs
        plan = run.plan
        runs.waiting[run.id] = Waiting(run, plan.not_before, plan.exclusive, shown)
        if run.id in runs.asked:
            # Cancelled between its record and its arrival here: it never starts, and
            # stops none of the runs it was to replace (cancel_other).
            self.abandon(runs.waiting[run.id], "cancelled", "cancelled before it queued")
            return
        for victim in plan.cancels:
            runs.cancelled_by[victim] = run.id
            self.stop(victim)
        # Guarded, as when the pump is handed to the loop from another thread: the run
        # is recorded already, and a pump that fails stops the engine (on_error), not
        # the request that recorded it (whose caller would ask again: a second run).
        if pump:
            self.supervised.guarded(self.pump)

    def note_waiting(self, tx: Tx, run: Run, now: datetime) -> str | None:
        """In the transaction that records a new run, the event that it waits for room
        in its pool, when it will: the request is then one commit, not two (the pump
        would record the same event in a commit of its own). Returns what it waits for,
        for :meth:`enqueue`; None when the pump tells (the run may start, or waits for
        something else). In the loop's thread only."""
        applied = self.runs.applied
        if (
            applied is None
            or run.status != "pending"
            or run.plan.not_before is not None
            or run.plan.exclusive
        ):
            return None
        pool = run.pool or DEFAULT_POOL
        limit = applied.catalog.pools.get(pool)
        cap = limit.max_concurrency if limit else None
        busy = sum(1 for r in self.runs.running.values() if (r.pool or DEFAULT_POOL) == pool)
        if cap is None or busy < cap:
            return None
        why = _full(pool, cap)
        tx.runs.append_events([run.id], at=now, type="waiting", detail={"for": why})
        return why

    # -- dispatching ------------------------------------------------------------------

    def pump(self) -> None:
        """Start every waiting run that may start now; arm a timer for the next one."""
        runs = self.runs
        if runs.applied is None:
            return
        now = self.clock.now()
        running = list(runs.running.values())
        soonest: datetime | None = None
        shared = self.elsewhere is not None and self.shared()
        if self.elsewhere is not None and shared and runs.waiting:
            others = self.elsewhere()
            if others:  # looked at again when they may have ended
                running += others
                soonest = now + POLL
        running_jobs = {_key(r) for r in running}
        in_pool: dict[str, int] = {}
        for r in running:
            in_pool[r.pool or DEFAULT_POOL] = in_pool.get(r.pool or DEFAULT_POOL, 0) + 1
        dispatched: list[int] = []
        self._shown = []
        pools = runs.applied.catalog.pools

        def room(pool: str) -> int | None:
            limit = pools.get(pool)
            cap = limit.max_concurrency if limit else None
            return None if cap is None else max(0, cap - in_pool.get(pool, 0))

        # Pools left without room in this pump, with the reason their runs wait. A run
        # that waits only for room is parked once told so (see jobdeck.workflow.waiting):
        # every event pumps again, and a backlog of thousands must not be looked at each
        # time.
        full: dict[str, str] = {}
        keys = KeyClaims(self.store, now)
        for run_id in runs.waiting.candidates(room):
            wait = runs.waiting[run_id]
            pool = wait.run.pool or DEFAULT_POOL
            if pool in full and wait.plain:
                self._show(wait, full[pool])
                runs.waiting.park(run_id, pool)
                continue
            spec = runs.spec_of(wait.run.kind, wait.run.job)
            if spec is None:
                self.abandon(wait, "removed", "removed from the catalog")
                continue
            # The pool recorded at creation, also when a reload moved the job since: the
            # run is counted, placed and released in one pool.
            limit = pools.get(pool)
            cap = limit.max_concurrency if limit else None
            if wait.not_before and wait.not_before > now:
                soonest = min(soonest or wait.not_before, wait.not_before)
                # A timed slot's jitter, or a retry's backoff.
                self._show(wait, "jitter" if "jitter_ms" in wait.run.detail else "backoff")
            elif wait.exclusive and _key(wait.run) in running_jobs:
                self._show(wait, "overlap")
            elif cap is not None and in_pool.get(pool, 0) >= cap:
                full[pool] = _full(pool, cap)
                self._show(wait, full[pool])
                runs.waiting.park(run_id, pool)
            elif not keys.holds(wait, spec):
                assert spec.concurrency is not None
                if waited_too_long(wait, spec, now):
                    self.abandon(wait, "concurrency", "waited for its key past its timeout")
                    continue
                self._show(wait, waits_for(spec.concurrency.key))
                soonest = min(soonest or now + POLL, now + POLL)
            else:
                del runs.waiting[run_id]
                runs.running[run_id] = wait.run
                runs.starting.add(run_id)
                running_jobs.add(_key(wait.run))
                in_pool[pool] = in_pool.get(pool, 0) + 1
                if shared:
                    dispatched.append(run_id)
                self.supervised.spawn(self._start(wait.run, spec, now))
        if self._shown or dispatched:
            # What each waiting run waits for, in one transaction for all of them; the
            # launches start once this pump returns, after its commit.
            reasons: dict[str, list[int]] = {}
            for run_id, why in self._shown:
                reasons.setdefault(why, []).append(run_id)
            with self.store.transaction() as tx:
                for why, ids in reasons.items():
                    tx.runs.append_events(ids, at=now, type="waiting", detail={"for": why})
                if dispatched:
                    tx.runs.append_events(dispatched, at=now, type=DISPATCHED, detail={})
        self._arm(soonest)

    def _arm(self, when: datetime | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            delay = max(0.0, (when - self.clock.now()).total_seconds())
            self._timer = asyncio.get_running_loop().call_later(
                delay, self.supervised.guarded, self.pump
            )

    def _show(self, wait: Waiting, why: str) -> None:
        """Record (at the end of this pump) what the run waits for, when that changed."""
        if wait.shown != why:
            wait.shown = why
            self._shown.append((wait.run.id, why))

    def abandon(self, wait: Waiting, reason: str, why: str) -> None:
        """A waiting run that will not start: it ends ``cancelled`` (``reason``), or
        ``timed_out`` when it waited for its concurrency key past its timeout."""
        del self.runs.waiting[wait.run.id]
        status: RunStatus = "timed_out" if reason == "concurrency" else "cancelled"
        with self.store.transaction() as tx:
            ended = tx.runs.update_run(
                wait.run.id,
                at=self.clock.now(),
                event=status,
                status=status,
                reason=reason,
                ended_at=self.clock.now(),
                detail={"why": why, **self.runs.asked.pop(wait.run.id, {})},
            )
        if status == "timed_out":
            self.outcomes.notify_ended(ended)  # told like any timeout

    def _environment(self, run: Run, spec: Spec) -> dict[str, str]:
        env = {
            **spec.env,
            "JOBDECK_RUN_ID": str(run.id),
            "JOBDECK_JOB": run.job,
            "JOBDECK_KIND": run.kind,
            "JOBDECK_ATTEMPT": str(run.attempt),
            "JOBDECK_TRIGGER": run.trigger,
        }
        if run.scheduled_for is not None:
            env["JOBDECK_SCHEDULED_FOR"] = iso(run.scheduled_for)
        return env

    async def _start(self, run: Run, spec: Spec, dispatched_at: datetime) -> None:
        runs = self.runs
        assert runs.applied is not None
        try:
            if self.shared() and not await asyncio.to_thread(self._still_mine, run.id):
                runs.running.pop(run.id, None)
                log.info("run %d: cancelled through another node before it started", run.id)
                self.pump()
                return
            if isinstance(spec, Command):
                # Rendered by the caller from the command's params: one argv element
                # per param, never a shell.
                given = run.plan.argv
                argv: list[str] | None = list(spec.command if given is None else given)
            else:
                argv = list(spec.command) if spec.command else None
            launched = await self.executor.start(
                run.id,
                spec,
                pool=run.pool,
                argv=argv,
                workdir=(runs.applied.base_dir / spec.workdir).resolve(),
                env=self._environment(run, spec),
            )
        finally:
            runs.starting.discard(run.id)
        await self._launched(run, launched, dispatched_at)

    def resume(self, run: Run) -> None:
        """Complete, as a task of its own, the launch of a run an earlier engine began
        and did not finish (its spec written, no shim took it: see recovery)."""
        self.runs.starting.add(run.id)
        self.supervised.spawn(self._resume(run))

    async def _resume(self, run: Run) -> None:
        dispatched_at = self.clock.now()
        # Looked up in the task: an engine's start recovers its runs before it reads
        # the catalog, and runs its tasks after.
        spec = self.runs.spec_of(run.kind, run.job)
        memory = spec.memory if spec is not None else None
        try:
            launched = await self.executor.resume(run.id, memory=memory, pool=run.pool)
        finally:
            self.runs.starting.discard(run.id)
        await self._launched(run, launched, dispatched_at)

    async def _launched(self, run: Run, launched: Launched, dispatched_at: datetime) -> None:
        """What follows a launch: the run is recorded running, or its end is."""
        runs = self.runs
        timings = start_timings(run.plan.requested_at, dispatched_at, launched.started_at)
        if launched.result is not None and launched.result.reason == "launch_error":
            self.outcomes.finish(run.id, launched.result, timings)
            return
        started = {
            "run_dir": str(launched.run_dir),
            "pid": launched.pid,
            "launch": launched.launch,
            **timings,
        }
        done = self.executor.finished(run.id, launched.shim)
        if done is not None:
            # A quick program, over with its shim already: its start and its end are
            # recorded in one commit, with one write of the run.
            self.outcomes.finish(run.id, done, started=started)
            return
        now = self.clock.now()
        try:
            with self.store.transaction() as tx:
                runs.running[run.id] = self.record_started(tx, run.id, now, started)
        except RunAlreadyEnded:
            # Cancelled through another node while it was launched: stopped at once.
            current = self.store.runs.run(run.id)
            detail = current.detail if current is not None else {}
            runs.asked[run.id] = {k: detail.get(k) for k in ("cancelled_by", "cancel_reason")}
        # A program that ended meanwhile is reported by the watch at once.
        self.executor.watch(run.id, self.outcomes.on_exit, launched.shim)
        if run.id in runs.cancelled_by or run.id in runs.asked:
            # Cancelled (or replaced by a newer run) while it was being launched.
            await self.cancel(run.id)

    def _replace_elsewhere(self, run_id: int, by: int) -> None:
        """Asks the node of ``run_id`` (another one) to stop it: run ``by`` replaces it
        (``overlap: cancel_other``). It ends ``cancelled`` there, with who and why."""
        request = CancelRequest(f"run {by}", f"replaced by run {by} (cancel_other)")
        with self.store.transaction() as tx:
            current = tx.runs.run(run_id)
            if current is None or not current.active or current.host == self.runs.host:
                return
            cancel_elsewhere(tx, current, request, self.runs.host, self.clock.now())
        log.info("run %d of node %s: replaced by run %d, asked to stop", run_id, current.host, by)

    def _still_mine(self, run_id: int) -> bool:
        """Whether the run is still pending on this node in the store (a cancel through
        another node ends it there and takes it away)."""
        current = self.store.runs.run(run_id)
        mine = current is not None and current.host == self.runs.host
        return mine and current is not None and current.status == "pending"

    def record_started(self, tx: Tx, run_id: int, now: datetime, detail: dict[str, Any]) -> Run:
        """The run is running (launched now, or found launched after a restart)."""
        step = started_step(now, detail)
        # This engine alone changes the runs it runs: what it holds of one is current.
        known = self.runs.running.get(run_id)
        return tx.runs.update_run_steps(run_id, at=now, steps=[step], known=known)

    def stop(self, run_id: int) -> None:
        """Cancel the run, as a task of its own (see :meth:`cancel`)."""
        self.supervised.spawn(self.cancel(run_id))

    async def cancel(self, run_id: int) -> None:
        """Stop a run: a waiting one never starts, a running one is signalled."""
        runs = self.runs
        if run_id in runs.waiting:
            by = runs.cancelled_by.pop(run_id, None)
            self.abandon(runs.waiting[run_id], "overlap", f"replaced by run {by} (cancel_other)")
            self.pump()
            return
        if run_id in runs.starting or run_id in runs.cancelling:
            return  # _start cancels it once the program runs; or it is being stopped
        run = runs.running.get(run_id)
        if run is None:
            # It ended before the stop came (its outcome is recorded as it ended): there
            # is nothing to stop, and it is not being cancelled. Or it runs on another
            # node (a fenced old leader's, a drained node's): the stop is asked of that
            # node through the store (cancel_other across nodes).
            by = runs.cancelled_by.pop(run_id, None)
            if by is not None and self.shared():
                await asyncio.to_thread(self._replace_elsewhere, run_id, by)
            return
        runs.cancelling.add(run_id)
        spec = runs.spec_of(run.kind, run.job)
        grace = spec.kill_grace.total_seconds() if spec else 10.0
        with self.store.transaction() as tx:
            tx.runs.add_event(
                run_id,
                at=self.clock.now(),
                type="cancelling",
                detail={
                    "by": runs.cancelled_by.get(run_id),
                    "grace_s": grace,
                    **runs.asked.get(run_id, {}),
                },
            )
        try:
            await self.executor.cancel(run_id, grace)
        except OSError as exc:
            # The run goes on; its outcome is still recorded when it ends.
            runs.cancelling.discard(run_id)
            log.warning("run %s: cannot stop it: %s", run_id, exc)
            with self.store.transaction() as tx:
                tx.runs.add_event(
                    run_id, at=self.clock.now(), type="cancel_failed", detail={"error": str(exc)}
                )

    # -- closing ----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop dispatching and watching; runs go on, and the next engine adopts them."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.supervised.cancel()
        self.executor.close()
