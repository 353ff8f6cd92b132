"""The dispatching half of the run driver: waiting runs -> pool room -> launch.

A run that the driver decided to start is ``pending`` in the store and waits here until
its backoff has passed, no other run of its job runs (when it must run alone: buffered
or cancel_other), and its pool has room (``max_concurrency``). Then it is launched,
watched, and handed to its :class:`~jobdeck.workflow.outcomes.Outcomes` when it ends
(recorded, retried or not, notified). Every step is a run event in the store. All of
it runs in the event loop's thread; what other threads ask for is handed to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any

from jobdeck.catalog.model import Command, Schedule
from jobdeck.clock import Clock
from jobdeck.execute.executor import DEFAULT_POOL, Applied, Executor
from jobdeck.store import Store, Tx
from jobdeck.store.records import Run, RunKind, RunStatus, RunStep, Trigger
from jobdeck.workflow.outcome import iso, not_before, start_timings
from jobdeck.workflow.outcomes import Outcomes
from jobdeck.workflow.waiting import Waiting, WaitingRuns

log = logging.getLogger(__name__)

# Notify(targets, run, log tail) is called after a run ends badly; it must not block.
Notify = Callable[[list[str], Run, str], None]
Spec = Schedule | Command
JobKey = tuple[str, str]  # (run kind, job name): a schedule and a command may share a name


def _key(run: Run) -> JobKey:
    return (run.kind, run.job)


def _full(pool: str, cap: int) -> str:
    """What a run waits for in a full pool."""
    return f"pool {pool} is full ({cap} running)"


class Dispatcher:
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
        self.waiting = WaitingRuns()
        self._starting: set[int] = set()  # launches in flight
        self._cancelled_by: dict[int, int] = {}  # run -> the newer run that cancels it
        self._cancelling: set[int] = set()  # runs asked to stop, not ended yet
        # Runs that someone cancelled (jobdeck cancel, the API): who and why, recorded
        # with the outcome.
        self._asked: dict[int, dict[str, Any]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.outcomes = Outcomes(self)  # the ends of the runs dispatched here
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._shown: list[tuple[int, str]] = []  # waiting events of the current pump

    # -- the catalog ------------------------------------------------------------------

    def spec_of(self, kind: str, name: str) -> Spec | None:
        if self.applied is None:
            return None
        if kind == "schedule":
            return self.applied.catalog.schedules.get(name)
        if kind == "command":
            return self.applied.catalog.commands.get(name)
        return None

    def _record(
        self,
        tx: Tx,
        kind: RunKind,
        name: str,
        trigger: Trigger,
        status: RunStatus,
        reason: str | None,
        nominal: datetime | None,
        now: datetime,
        spec: Spec | None,
        *,
        detail: Mapping[str, Any] | None = None,
        requested_by: str | None = None,
        params: Mapping[str, Any] | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
    ) -> Run:
        return tx.create_run(
            job=name,
            kind=kind,
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
            params=dict(params or {}),
            detail=dict(detail or {}),
        )

    def _bind(self) -> None:
        """Remember the event loop the driver lives in (it arms timers and tasks there)."""
        self._loop = asyncio.get_running_loop()

    def _in_own_loop(self) -> bool:
        """True in the driver's event loop's thread (or before it has one)."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        return self._loop is None or current is self._loop

    def _elsewhere(self, call: Callable[..., None], *args: Any) -> bool:
        """True, having handed ``call(*args)`` to the driver's event loop, when called
        from another thread (the scheduler's, or a worker thread of the HTTP side):
        the driver's queues and timers live in its loop's thread only."""
        if self._in_own_loop():
            return False
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._guarded, call, *args)
        return True

    def _enqueue(self, run: Run, shown: str | None = None) -> None:
        """A pending run joins the waiting ones (stopping the runs it replaces first);
        ``shown``: what it waits for, recorded already (see :meth:`_note_waiting`)."""
        if run.status != "pending" or self._elsewhere(self._enqueue, run, shown):
            return  # recorded already: it joins the queue in the driver's own loop
        exclusive = bool(run.detail.get("exclusive"))
        self.waiting[run.id] = Waiting(run, not_before(run), exclusive, shown)
        if run.id in self._asked:
            # Cancelled between its record and its arrival here: it never starts, and
            # stops none of the runs it was to replace (cancel_other).
            self._abandon(self.waiting[run.id], "cancelled", "cancelled before it queued")
            return
        for victim in run.detail.get("cancels", []):
            self._cancelled_by[int(victim)] = run.id
            self._spawn(self._cancel(int(victim)))
        # Guarded, as when the pump is handed to the loop from another thread: the run
        # is recorded already, and a pump that fails stops the engine (on_error), not
        # the request that recorded it (whose caller would ask again: a second run).
        self._guarded(self._pump)

    def _note_waiting(self, tx: Tx, run: Run, now: datetime) -> str | None:
        """In the transaction that records a new run, the event that it waits for room
        in its pool, when it will: the request is then one commit, not two (the pump
        would record the same event in a commit of its own). Returns what it waits for,
        for :meth:`_enqueue`; None when the pump tells (the run may start, or waits for
        something else, or the run is enqueued from another thread, later)."""
        if (
            self.applied is None
            or run.status != "pending"
            or not_before(run) is not None
            or run.detail.get("exclusive")
            or not self._in_own_loop()
        ):
            return None
        pool = run.pool or DEFAULT_POOL
        limit = self.applied.catalog.pools.get(pool)
        cap = limit.max_concurrency if limit else None
        busy = sum(1 for r in self.running.values() if (r.pool or DEFAULT_POOL) == pool)
        if cap is None or busy < cap:
            return None
        why = _full(pool, cap)
        tx.append_events([run.id], at=now, type="waiting", detail={"for": why})
        return why

    # -- dispatching ------------------------------------------------------------------

    def _pump(self) -> None:
        """Start every waiting run that may start now; arm a timer for the next one."""
        if self.applied is None:
            return
        now = self.clock.now()
        running_jobs = {_key(r) for r in self.running.values()}
        in_pool: dict[str, int] = {}
        for r in self.running.values():
            in_pool[r.pool or DEFAULT_POOL] = in_pool.get(r.pool or DEFAULT_POOL, 0) + 1
        soonest: datetime | None = None
        self._shown = []
        pools = self.applied.catalog.pools

        def room(pool: str) -> int | None:
            limit = pools.get(pool)
            cap = limit.max_concurrency if limit else None
            return None if cap is None else max(0, cap - in_pool.get(pool, 0))

        # Pools left without room in this pump, with the reason their runs wait. A run
        # that waits only for room is parked once told so (see jobdeck.workflow.waiting):
        # every event pumps again, and a backlog of thousands must not be looked at each
        # time.
        full: dict[str, str] = {}
        for run_id in self.waiting.candidates(room):
            wait = self.waiting[run_id]
            pool = wait.run.pool or DEFAULT_POOL
            if pool in full and wait.plain:
                self._show(wait, full[pool])
                self.waiting.park(run_id, pool)
                continue
            spec = self.spec_of(wait.run.kind, wait.run.job)
            if spec is None:
                self._abandon(wait, "removed", "removed from the catalog")
                continue
            # The pool recorded at creation, also when a reload moved the job since: the
            # run is counted, placed and released in one pool.
            limit = pools.get(pool)
            cap = limit.max_concurrency if limit else None
            if wait.not_before and wait.not_before > now:
                soonest = min(soonest or wait.not_before, wait.not_before)
                self._show(wait, "backoff")
            elif wait.exclusive and _key(wait.run) in running_jobs:
                self._show(wait, "overlap")
            elif cap is not None and in_pool.get(pool, 0) >= cap:
                full[pool] = _full(pool, cap)
                self._show(wait, full[pool])
                self.waiting.park(run_id, pool)
            else:
                del self.waiting[run_id]
                self.running[run_id] = wait.run
                self._starting.add(run_id)
                running_jobs.add(_key(wait.run))
                in_pool[pool] = in_pool.get(pool, 0) + 1
                self._spawn(self._start(wait.run, spec, now))
        if self._shown:
            # What each waiting run waits for, in one transaction for all of them.
            reasons: dict[str, list[int]] = {}
            for run_id, why in self._shown:
                reasons.setdefault(why, []).append(run_id)
            with self.store.transaction() as tx:
                for why, ids in reasons.items():
                    tx.append_events(ids, at=now, type="waiting", detail={"for": why})
        self._arm(soonest)

    def _arm(self, when: datetime | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            delay = max(0.0, (when - self.clock.now()).total_seconds())
            self._timer = asyncio.get_running_loop().call_later(delay, self._guarded, self._pump)

    def _show(self, wait: Waiting, why: str) -> None:
        """Record (at the end of this pump) what the run waits for, when that changed."""
        if wait.shown != why:
            wait.shown = why
            self._shown.append((wait.run.id, why))

    def _abandon(self, wait: Waiting, reason: str, why: str) -> None:
        del self.waiting[wait.run.id]
        with self.store.transaction() as tx:
            tx.update_run(
                wait.run.id,
                at=self.clock.now(),
                event="cancelled",
                status="cancelled",
                reason=reason,
                ended_at=self.clock.now(),
                detail={"why": why, **self._asked.pop(wait.run.id, {})},
            )

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
        assert self.applied is not None
        try:
            if isinstance(spec, Command):
                # Rendered by the caller from the command's params: one argv element
                # per param, never a shell.
                argv: list[str] | None = [str(a) for a in run.detail.get("argv", spec.command)]
            else:
                argv = list(spec.command) if spec.command else None
            launched = await self.executor.start(
                run.id,
                spec,
                pool=run.pool,
                argv=argv,
                workdir=(self.applied.base_dir / spec.workdir).resolve(),
                env=self._environment(run, spec),
            )
        finally:
            self._starting.discard(run.id)
        timings = start_timings(run.detail, dispatched_at, launched.started_at)
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
        with self.store.transaction() as tx:
            self.running[run.id] = self._record_started(tx, run.id, now, started)
        # A program that ended meanwhile is reported by the watch at once.
        self.executor.watch(run.id, self.outcomes.on_exit, launched.shim)
        if run.id in self._cancelled_by or run.id in self._asked:
            # Cancelled (or replaced by a newer run) while it was being launched.
            await self._cancel(run.id)

    def _record_started(self, tx: Tx, run_id: int, now: datetime, detail: dict[str, Any]) -> Run:
        """The run is running (launched now, or found launched after a restart)."""
        step = self._started_step(now, detail)
        # This engine alone changes the runs it runs: what it holds of one is current.
        return tx.update_run_steps(run_id, at=now, steps=[step], known=self.running.get(run_id))

    @staticmethod
    def _started_step(now: datetime, detail: dict[str, Any]) -> RunStep:
        return RunStep("started", "running", started_at=now, detail=detail)

    async def _cancel(self, run_id: int) -> None:
        if run_id in self.waiting:
            by = self._cancelled_by.pop(run_id, None)
            self._abandon(self.waiting[run_id], "overlap", f"replaced by run {by} (cancel_other)")
            self._pump()
            return
        if run_id in self._starting or run_id in self._cancelling:
            return  # _start cancels it once the program runs; or it is being stopped
        run = self.running.get(run_id)
        if run is None:
            # It ended before the stop came (its outcome is recorded as it ended): there
            # is nothing to stop, and it is not being cancelled.
            self._cancelled_by.pop(run_id, None)
            return
        self._cancelling.add(run_id)
        spec = self.spec_of(run.kind, run.job)
        grace = spec.kill_grace.total_seconds() if spec else 10.0
        with self.store.transaction() as tx:
            tx.add_event(
                run_id,
                at=self.clock.now(),
                type="cancelling",
                detail={
                    "by": self._cancelled_by.get(run_id),
                    "grace_s": grace,
                    **self._asked.get(run_id, {}),
                },
            )
        try:
            await self.executor.cancel(run_id, grace)
        except OSError as exc:
            # The run goes on; its outcome is still recorded when it ends.
            self._cancelling.discard(run_id)
            log.warning("run %s: cannot stop it: %s", run_id, exc)
            with self.store.transaction() as tx:
                tx.add_event(
                    run_id, at=self.clock.now(), type="cancel_failed", detail={"error": str(exc)}
                )

    # -- outcomes ---------------------------------------------------------------------

    def _guarded(self, call: Callable[..., None], *args: Any) -> None:
        """Callbacks of the event loop report a failure like the driver's tasks do: a
        driver that cannot record outcomes must stop the server, not limp on."""
        try:
            call(*args)
        except Exception as exc:
            log.exception("run driver callback failed")
            if self.on_error:
                self.on_error(exc)

    # -- tasks ------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
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
        """Stop dispatching and watching; runs go on, and the next engine adopts them."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.executor.close()
