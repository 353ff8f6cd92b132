"""The outcome half of the run driver: a run's end recorded, retried or not, notified.

What the dispatching half (:mod:`jobdeck.workflow.dispatch`) launched ends here: the
shim's result becomes the run's outcome in one commit with the retry it leads to, a
run whose supervisor vanished ends ``lost`` and what is left of it is stopped, and the
runs that ended badly are sent to their ``notify`` targets. Like the dispatcher, all of
it runs in the event loop's thread; :meth:`Outcomes.send` hands itself over to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jobdeck.catalog.model import Schedule
from jobdeck.execute import RunResult
from jobdeck.execute.outcome import outcome_of
from jobdeck.store import Tx
from jobdeck.store.errors import RunAlreadyEnded
from jobdeck.store.records import Run, RunStep
from jobdeck.workflow.decisions import RetryState, decide_retry
from jobdeck.workflow.outcome import NOTIFY_STATUSES, iso, not_before
from jobdeck.workflow.waiting import Waiting

if TYPE_CHECKING:
    from datetime import datetime

    from jobdeck.workflow.dispatch import Dispatcher

log = logging.getLogger(__name__)


class Outcomes:
    """The ends of the runs of one dispatcher, whose state (running, waiting, being
    cancelled) it shares: it is the dispatcher's, held by it."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher
        self._deferred: list[Run] = []  # notices of runs that ended before a revision loaded

    def on_exit(self, run_id: int, result: RunResult | None) -> None:
        self.d._guarded(self.finish, run_id, result)

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
        run = self.d.running.pop(run_id, None)
        if run is None:
            return
        if result is None:
            # The shim died without a result; its program may live on without it.
            self.finish_lost(run, "vanished", "the run's supervisor died without a result")
            self.d._pump()
            return
        now = self.d.clock.now()
        status, reason, fields = outcome_of(result)
        fields["detail"] = {**fields["detail"], **(extra or {})}
        by = self.d._cancelled_by.pop(run_id, None)
        asked = self.d._asked.pop(run_id, None)
        self.d._cancelling.discard(run_id)
        if asked is not None and status == "cancelled":
            fields["detail"].update(asked)  # who cancelled it, and why
        elif by is not None and status == "cancelled":
            reason = "overlap"
            fields["detail"]["cancelled_by"] = by
        retry: Run | None = None
        ended: Run | None = None
        try:
            end = RunStep("ended", status, reason, ended_at=now, **fields)
            steps = [end] if started is None else [self.d._started_step(now, started), end]
            with self.d.store.transaction() as tx:
                ended = tx.update_run_steps(run_id, at=now, steps=steps, known=run)
                if asked is None and by is None:
                    # A run someone cancelled (or a newer run replaced) is not tried
                    # again, also when it failed before the cancel could stop it.
                    retry = self._retry(tx, ended, now)
        except RunAlreadyEnded as exc:
            log.warning("run %s: %s", run_id, exc)
        self.d.executor.release(run.pool, run_id)
        if ended is not None and retry is None:
            # A retried attempt is not the end of the fire: only its last attempt tells.
            self._notify_ended(ended)
        if retry is not None:
            self.d.waiting[retry.id] = Waiting(retry, not_before(retry))
        self.d._pump()

    def _retry(self, tx: Tx, ended: Run, now: datetime) -> Run | None:
        spec = self.d.spec_of(ended.kind, ended.job)
        if not isinstance(spec, Schedule):
            return None  # commands answer their caller at once: no retries
        spent = RetryState(**ended.detail.get("retries", {}))
        decision = decide_retry(ended.reason, ended.status, spent, spec.retry)
        if decision is None:
            return None
        return self.d._record(
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
                "not_before": iso(now + decision.delay),
                "backoff_ms": round(decision.delay.total_seconds() * 1000, 3),
                "retry_of_reason": ended.reason,
                "retries": {"launch": decision.state.launch, "failure": decision.state.failure},
            },
            requested_by=ended.requested_by,
            attempt=ended.attempt + 1,
            retry_of=ended.id,
        )

    def finish_lost(self, run: Run, reason: str, why: str) -> None:
        """A run whose shim is gone without a result: record it lost, stop what is left
        of its program (it may have outlived its shim), then give back its cgroup."""
        self.d.running.pop(run.id, None)
        self.d._cancelled_by.pop(run.id, None)
        self.d._asked.pop(run.id, None)
        self.d._cancelling.discard(run.id)
        now = self.d.clock.now()
        with self.d.store.transaction() as tx:
            tx.add_event(run.id, at=now, type="vanished", detail={"why": why})
            ended = tx.update_run(
                run.id, at=now, event="lost", status="lost", reason=reason, ended_at=now
            )
        self._notify_ended(ended)
        self.d._spawn(self._clean_up_lost(run))

    async def _clean_up_lost(self, run: Run) -> None:
        grace = 10.0
        spec = self.d.spec_of(run.kind, run.job)
        if spec is not None:
            grace = spec.kill_grace.total_seconds()
        try:
            stopped = await self.d.executor.cancel(run.id, grace)
        except OSError as exc:
            log.warning("run %s: cannot stop what is left of it: %s", run.id, exc)
            stopped = False
        if stopped:
            with self.d.store.transaction() as tx:
                tx.add_event(run.id, at=self.d.clock.now(), type="orphans_stopped")
        self.d.executor.release(run.pool, run.id)

    def _notify_ended(self, run: Run) -> None:
        if self.d.notify is None or run.status not in NOTIFY_STATUSES:
            return
        if self.d.applied is None:
            self._deferred.append(run)  # the targets are known once a revision loads
            return
        spec = self.d.spec_of(run.kind, run.job)
        if spec is None or not spec.notify:
            return
        self.send(list(spec.notify), run, self.d.executor.log_tail(run.id))

    def send(self, targets: list[str], run: Run, tail: str) -> None:
        if self.d.notify is None or self.d._elsewhere(self.send, targets, run, tail):
            return
        try:
            self.d.notify(targets, run, tail)
        except Exception:  # a failing notification never fails a run
            log.exception("run %s: notifying %s failed", run.id, targets)

    def flush_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for run in deferred:
            self._notify_ended(run)
