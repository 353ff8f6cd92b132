"""The outcome half of the run driver: a run's end recorded, retried or not, notified.

What the dispatching half (:mod:`jobdeck.workflow.dispatch`) launched ends here: the
shim's result becomes the run's outcome in one commit with the retry it leads to, a
run whose supervisor vanished ends ``lost`` and what is left of it is stopped, and the
runs that ended badly are sent to their ``notify`` targets. Like the dispatcher, all of
it runs in the event loop's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from jobdeck.catalog.alerting import NotifyPolicy
from jobdeck.catalog.model import Schedule
from jobdeck.clock import Clock
from jobdeck.execute import RunResult
from jobdeck.execute.executor import Executor
from jobdeck.execute.outcome import outcome_of
from jobdeck.execute.tasks import Supervised
from jobdeck.store import Store, Tx
from jobdeck.store.errors import Fenced, RunAlreadyEnded
from jobdeck.store.records import Notice, Retries, Run, RunPlan, RunStep
from jobdeck.workflow.alerting import FAILURE_STREAM, decide_notice, open_streak
from jobdeck.workflow.decisions import RetryState, decide_retry
from jobdeck.workflow.outbox import due_fields, with_notice
from jobdeck.workflow.outcome import NOTIFY_STATUSES
from jobdeck.workflow.state import Notify, Runs, started_step
from jobdeck.workflow.waiting import Waiting
from jobdeck.workflow.watch import DurationWatch

log = logging.getLogger(__name__)


class Outcomes:
    """The ends of the runs of one driver, in its :class:`~jobdeck.workflow.state.Runs`;
    ``pump`` starts what may start once a run ended (the dispatcher's)."""

    def __init__(
        self,
        runs: Runs,
        store: Store,
        clock: Clock,
        executor: Executor,
        supervised: Supervised,
        notify: Notify | None,
        pump: Callable[[], None],
    ) -> None:
        self.runs = runs
        self.store = store
        self.clock = clock
        self.executor = executor
        self.supervised = supervised
        self.notify = notify
        self.pump = pump
        self._deferred: list[Run] = []  # notices of runs that ended before a revision loaded
        self._lost_later: list[Run] = []  # lost before a revision loaded: retried once loaded
        # In a cluster: raises Fenced unless this node leads (a lost run's retry is the
        # leader's; see jobdeck.cluster.leadership).
        self.fence: Callable[[Tx, datetime], None] | None = None
        self.watch = DurationWatch(runs, store, clock, executor, self.send)

    def on_exit(self, run_id: int, result: RunResult | None) -> None:
        self.supervised.guarded(self.finish, run_id, result)

    def finish(
        self,
        run_id: int,
        result: RunResult | None,
        extra: Mapping[str, Any] | None = None,
        *,
        started: dict[str, Any] | None = None,
    ) -> None:
        """Record the run's outcome; ``started``: the detail of its start, not recorded
        yet (the program ended before it was), recorded first in the same commit."""
        runs = self.runs
        run = runs.running.pop(run_id, None)
        if run is None:
            return
        if result is None:
            # The shim died without a result; its program may live on without it.
            self.finish_lost(run, "vanished", "the run's supervisor died without a result")
            self.pump()
            return
        now = self.clock.now()
        status, reason, fields = outcome_of(result)
        fields["detail"] = {**fields["detail"], **(extra or {})}
        by = runs.cancelled_by.pop(run_id, None)
        asked = runs.asked.pop(run_id, None)
        runs.cancelling.discard(run_id)
        if asked is not None and status == "cancelled":
            fields["detail"].update(asked)  # who cancelled it, and why
        elif by is not None and status == "cancelled":
            reason = "overlap"
            fields["detail"]["cancelled_by"] = by
        retry: Run | None = None
        ended: Run | None = None
        try:
            end = RunStep("ended", status, reason, ended_at=now, **fields)
            steps = [end] if started is None else [started_step(now, started), end]
            with self.store.transaction() as tx:
                ended = tx.runs.update_run_steps(run_id, at=now, steps=steps, known=run)
                if asked is None and by is None:
                    # A run someone cancelled (or a newer run replaced) is not tried
                    # again, also when it failed before the cancel could stop it.
                    retry = self.retry(tx, ended, now)
        except RunAlreadyEnded as exc:
            log.warning("run %s: %s", run_id, exc)
        self.executor.release(run.pool, run_id)
        if ended is not None and retry is None:
            # A retried attempt is not the end of the fire: only its last attempt tells.
            self.notify_ended(ended)
        if retry is not None:
            runs.waiting[retry.id] = Waiting(retry, retry.plan.not_before)
        self.pump()

    def retry(self, tx: Tx, ended: Run, now: datetime) -> Run | None:
        """The retry of ``ended`` that its schedule's ``retry`` policy asks for, recorded
        in ``tx`` on this engine; None when none is (never for a run someone asked to
        cancel)."""
        spec = self.runs.spec_of(ended.kind, ended.job)
        if not isinstance(spec, Schedule):
            return None  # commands answer their caller at once: no retries
        if ended.plan.cancel_requested is not None:
            return None
        spent = ended.plan.retries or Retries()
        decision = decide_retry(
            ended.reason,
            ended.status,
            RetryState(spent.launch, spent.failure, spent.lost),
            spec.retry,
        )
        if decision is None:
            return None
        state = decision.state
        retries = Retries(state.launch, state.failure, state.lost)
        return self.runs.record(
            tx,
            "schedule",
            ended.job,
            "retry",
            "pending",
            None,
            ended.scheduled_for,
            now,
            spec,
            detail={
                **RunPlan(not_before=now + decision.delay).detail(),
                "backoff_ms": round(decision.delay.total_seconds() * 1000, 3),
                "retry_of_reason": ended.reason,
                **RunPlan(retries=retries).detail(),
            },
            requested_by=ended.requested_by,
            attempt=ended.attempt + 1,
            retry_of=ended.id,
        )

    def finish_lost(self, run: Run, reason: str, why: str) -> None:
        """A run whose shim is gone without a result: record it lost, retry it when its
        policy says so (``retry.lost``), stop what is left of its program (it may have
        outlived its shim), then give back its cgroup."""
        runs = self.runs
        cancelled = run.id in runs.asked or run.id in runs.cancelled_by
        runs.forget(run.id)
        now = self.clock.now()
        with self.store.transaction() as tx:
            tx.runs.add_event(run.id, at=now, type="vanished", detail={"why": why})
            ended = tx.runs.update_run(
                run.id, at=now, event="lost", status="lost", reason=reason, ended_at=now
            )
        if not cancelled and runs.applied is None:
            self._lost_later.append(ended)  # its policy is known once a revision loads
        elif cancelled or self.retry_lost(ended) is None:
            self.notify_ended(ended)  # a retried attempt is not the end of the fire
        self.supervised.spawn(self._clean_up_lost(run))

    def retry_lost(self, ended: Run) -> Run | None:
        """The retry of a run just recorded lost, in a unit of work of its own that only
        the leader may commit (in a cluster); it waits in this engine's queue."""
        now = self.clock.now()
        try:
            with self.store.transaction() as tx:
                if self.fence is not None:
                    self.fence(tx, now)
                retry = self.retry(tx, ended, now)
        except Fenced:
            log.warning("run %d: lost, and not retried: this node does not lead", ended.id)
            return None
        if retry is not None:
            log.info("run %d: lost; retried as run %d", ended.id, retry.id)
            self.runs.waiting[retry.id] = Waiting(retry, retry.plan.not_before)
        return retry

    async def _clean_up_lost(self, run: Run) -> None:
        grace = 10.0
        spec = self.runs.spec_of(run.kind, run.job)
        if spec is not None:
            grace = spec.kill_grace.total_seconds()
        try:
            stopped = await self.executor.cancel(run.id, grace)
        except OSError as exc:
            log.warning("run %s: cannot stop what is left of it: %s", run.id, exc)
            stopped = False
        if stopped:
            with self.store.transaction() as tx:
                tx.runs.add_event(run.id, at=self.clock.now(), type="orphans_stopped")
        self.executor.release(run.pool, run.id)

    def notify_ended(self, run: Run) -> None:
        """Notify the end of ``run`` to its item's targets, as its notify policy says
        (also of a run recorded elsewhere: a lost node's, see
        :mod:`jobdeck.workflow.lost_nodes`)."""
        if self.notify is None or (run.status not in NOTIFY_STATUSES and run.status != "succeeded"):
            return
        if self.runs.applied is None:
            self._deferred.append(run)  # the targets are known once a revision loads
            return
        spec = self.runs.spec_of(run.kind, run.job)
        if spec is None or not spec.notify:
            return
        targets = list(spec.notify)
        policy = getattr(spec, "notify_policy", None) or NotifyPolicy()
        tail = self.executor.log_tail(run.id) if run.status in NOTIFY_STATUSES else ""
        notice = self.decide(run, targets, policy, tail=tail)
        if notice is not None:
            self.send(targets, notice, tail)
        if run.status == "succeeded":
            self.watch.on_success(run)

    def decide(
        self,
        run: Run,
        targets: list[str],
        policy: NotifyPolicy,
        status: str | None = None,
        *,
        tail: str = "",
    ) -> Run | None:
        """Record what the policy decides about ``run`` (on the run and in the notices);
        the run to send a notice about, or None when the policy holds it back (a notice
        to send is recorded ``due`` with ``tail``: see :mod:`jobdeck.workflow.outbox`).
        ``status``: what the policy takes the run for (``missed``: a monitor's slot)."""
        now = self.clock.now()
        status = status or run.status
        if status == "succeeded":
            # Most runs succeed with no failure streak open: a read says so, no write.
            latest = self.store.notices.notices(
                job=run.job, kind=run.kind, stream=FAILURE_STREAM, limit=1
            )
            if open_streak(next(iter(latest), None)) is None:
                return None
        with self.store.transaction() as tx:
            previous = tx.notices.notices(
                job=run.job, kind=run.kind, stream=FAILURE_STREAM, limit=1
            )
            decision = decide_notice(policy, next(iter(previous), None), status, now)
            if decision is None:
                return None
            notice = tx.notices.record_notice(
                Notice(
                    at=now,
                    job=run.job,
                    kind=run.kind,
                    event=decision.event,
                    stream=FAILURE_STREAM,
                    sent=decision.send,
                    why=decision.why,
                    run_id=run.id,
                    streak=decision.streak,
                    targets=targets,
                    detail=decision.detail(),
                    **(due_fields(run, tail, now) if decision.send else {}),
                )
            )
        if not decision.send:
            log.info("run %s: notice %s held back: %s", run.id, decision.event, decision.why)
            return None
        return with_notice(run, notice, streak=decision.streak)

    def send(self, targets: list[str], run: Run, tail: str) -> None:
        """Tell ``targets`` about ``run`` (in the loop's thread, where notices queue)."""
        if self.notify is None:
            return
        try:
            self.notify(targets, run, tail)
        except Exception:  # a failing notification never fails a run
            log.exception("run %s: notifying %s failed", run.id, targets)

    def flush_deferred(self) -> None:
        lost, self._lost_later = self._lost_later, []
        for run in lost:
            if self.retry_lost(run) is None:
                self.notify_ended(run)
        deferred, self._deferred = self._deferred, []
        for run in deferred:
            self.notify_ended(run)
