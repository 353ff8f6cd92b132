"""Duration alerts in the engine: runs still running past ``alerts.slow``, successes
quicker than ``alerts.fast``, slots not started ``alerts.not_started_by`` after their
nominal time.

The decisions are the pure functions of :mod:`jobdeck.workflow.durations`; this module
reads their inputs (the runs the driver holds, the item's recent successful runs, the
clock), records each notice (stream ``duration``) and sends it. A run gets each alert at
most once, also across a restart of the engine (the recorded notices say which it got).
Everything here runs in the event loop's thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from jobdeck.catalog.alerting import Alerts
from jobdeck.catalog.model import Command, Schedule
from jobdeck.clock import Clock
from jobdeck.execute.executor import Executor
from jobdeck.store import Store
from jobdeck.store.records import Notice, Run
from jobdeck.workflow.durations import (
    AUTO_SAMPLES,
    DurationAlert,
    Threshold,
    decide_fast,
    decide_not_started,
    decide_slow,
    fast_threshold,
    slow_threshold,
)
from jobdeck.workflow.outbox import due_fields, with_notice
from jobdeck.workflow.state import Runs

log = logging.getLogger(__name__)

DURATION_STREAM = "duration"
WATCH_INTERVAL = 1.0  # seconds between two looks at the running and waiting runs

Send = Callable[[list[str], Run, str], None]


def duration_of(run: Run) -> timedelta | None:
    if run.started_at is None or run.ended_at is None:
        return None
    return max(run.ended_at - run.started_at, timedelta(0))


class DurationWatch:
    """The duration alerts of one driver's runs."""

    def __init__(
        self, runs: Runs, store: Store, clock: Clock, executor: Executor, send: Send
    ) -> None:
        self.runs = runs
        self.store = store
        self.clock = clock
        self.executor = executor
        self.send = send
        self._slow: dict[int, Threshold | None] = {}  # per running run, read once
        self._said: set[tuple[int, str]] = set()

    def sample(self, run: Run) -> list[timedelta]:
        """Durations of the item's newest successful runs, ``run`` itself left out."""
        found = self.store.runs.runs(
            job=run.job, kind=run.kind, status="succeeded", limit=AUTO_SAMPLES + 1
        )
        if run.kind == "schedule" and len(found) <= AUTO_SAMPLES:
            # A schedule migrated from a monitor (`jobdeck migrate`) learns from the
            # monitor's runs too, newest first after its own.
            found += self.store.runs.runs(
                job=run.job, kind="monitor", status="succeeded", limit=AUTO_SAMPLES + 1
            )
        durations = [duration_of(r) for r in found if r.id != run.id]
        return [d for d in durations if d is not None][:AUTO_SAMPLES]

    def _alerts(self, run: Run) -> tuple[Alerts, list[str], timedelta] | None:
        spec = self.runs.spec_of(run.kind, run.job)
        if not isinstance(spec, Schedule | Command) or not spec.notify:
            return None
        return spec.alerts, list(spec.notify), spec.timeout

    # -- at the end of a run ------------------------------------------------------------

    def on_success(self, run: Run) -> None:
        """A run that succeeded: too quickly?"""
        found = self._alerts(run)
        duration = duration_of(run)
        if found is None or found[0].fast is None or duration is None:
            return
        alerts, targets, _ = found
        alert = decide_fast(fast_threshold(alerts, self.sample(run)), duration)
        if alert is not None:
            self.notify_alert(run, alert, targets, "")

    # -- while runs wait and run --------------------------------------------------------

    async def watch(self) -> None:
        while True:
            self.sweep()
            await asyncio.sleep(WATCH_INTERVAL)

    def sweep(self) -> None:
        """One look at the runs waiting and running, at the clock's now."""
        if self.runs.applied is None:
            return
        now = self.clock.now()
        for run in list(self.runs.running.values()):
            self._check_running(run, now)
        for run_id in list(self.runs.waiting):
            self._check_waiting(self.runs.waiting[run_id].run, now)
        alive = set(self.runs.running) | set(self.runs.waiting)
        self._slow = {k: v for k, v in self._slow.items() if k in alive}
        self._said = {said for said in self._said if said[0] in alive}

    def _check_running(self, run: Run, now: datetime) -> None:
        if run.started_at is None:
            return
        found = self._alerts(run)
        if found is None:
            return
        alerts, targets, timeout = found
        if run.scheduled_for is not None and run.attempt == 1:
            late = decide_not_started(alerts.not_started_by, run.scheduled_for, run.started_at)
            if late is not None:
                self.notify_alert(run, late, targets, "")
        if alerts.slow is None:
            return
        if run.id not in self._slow:
            self._slow[run.id] = slow_threshold(alerts, self.sample(run))
        slow = decide_slow(self._slow[run.id], run.started_at, now, timeout)
        if slow is not None:
            self.notify_alert(run, slow, targets, self.executor.log_tail(run.id))

    def _check_waiting(self, run: Run, now: datetime) -> None:
        if run.scheduled_for is None or run.attempt != 1:
            return
        found = self._alerts(run)
        if found is None:
            return
        alerts, targets, _ = found
        late = decide_not_started(alerts.not_started_by, run.scheduled_for, now)
        if late is not None:
            self.notify_alert(run, late, targets, "")

    # -- recording and sending ----------------------------------------------------------

    def notify_alert(self, run: Run, alert: DurationAlert, targets: list[str], tail: str) -> None:
        key = (run.id, alert.event)
        if key in self._said:
            return
        self._said.add(key)
        now = self.clock.now()
        told = dataclasses.replace(run, detail={**run.detail, "alert": alert.detail()})
        with self.store.transaction() as tx:
            earlier = tx.notices.notices(run_id=run.id, stream=DURATION_STREAM, limit=20)
            if any(n.event == alert.event for n in earlier):
                return  # an earlier life of the engine said it already
            notice = tx.notices.record_notice(
                Notice(
                    at=now,
                    job=run.job,
                    kind=run.kind,
                    event=alert.event,
                    stream=DURATION_STREAM,
                    sent=True,
                    why=alert.why,
                    run_id=run.id,
                    targets=targets,
                    detail=alert.detail(),
                    **due_fields(told, tail, now),
                )
            )
        log.info("run %s: %s", run.id, alert.why)
        self.send(targets, with_notice(told, notice), tail)
