"""Monitors in the engine: the pings of jobs that jobdeck does not run, their slots and
their timeouts.

A ping (from the API's threads, :meth:`MonitorWatch.ping`) is recorded at once as a run
of kind ``monitor``, trigger ``ping``: a start opens a ``running`` run, an end closes the
newest open one (or is a run of zero duration when none is open). The engine's loop
(:meth:`MonitorWatch.check`, once a second, the one place that decides slots and
timeouts) records each slot whose ``grace`` passed with no ping as ``skipped`` /
``missed``, ends a start with no end within ``timeout`` as ``timed_out``, and notifies
through the same alert policy and duration alerts as schedules. The decisions are the
pure functions of :mod:`jobdeck.workflow.monitor_slots`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from jobdeck.catalog.monitors import Monitor, monitor_cadence
from jobdeck.clock import Clock
from jobdeck.store import Store, Tx
from jobdeck.store.errors import Fenced, RunAlreadyEnded
from jobdeck.store.records import Run, Suspension
from jobdeck.units import format_duration
from jobdeck.workflow.durations import decide_fast, decide_slow, fast_threshold, slow_threshold
from jobdeck.workflow.missed import LISTED_SLOTS, iso
from jobdeck.workflow.monitor_slots import (
    Action,
    due_slots,
    ping_outcome,
    slot_met,
    timed_out,
    window,
)
from jobdeck.workflow.outcomes import Outcomes
from jobdeck.workflow.state import Runs
from jobdeck.workflow.watch import duration_of

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0  # seconds between two looks at the monitors' slots and open runs
MAX_BODY = 10 * 1024  # bytes of a ping's body kept as its run's log
TRUNCATED = b"\n[jobdeck: the ping's body was longer than 10 KiB; the rest was dropped]\n"


class MonitorWatch:
    """The monitors of the applied revision (``runs.applied``), their pings and slots."""

    def __init__(self, runs: Runs, store: Store, clock: Clock, outcomes: Outcomes) -> None:
        self.runs = runs
        self.store = store
        self.clock = clock
        self.outcomes = outcomes
        self._ended: queue.SimpleQueue[Run] = queue.SimpleQueue()  # pings -> the loop
        self._since: dict[str, datetime] = {}  # first sight of a monitor with no claim
        self._last: dict[str, datetime] = {}  # the newest slot decided, by monitor
        self._slow_said: set[int] = set()
        # In a cluster, only the leader decides slots and timeouts: ``leads`` says whether
        # this engine does now, and ``fence`` refuses a unit of work of a leader that
        # has been replaced meanwhile (see jobdeck.cluster.leadership).
        self.leads: Callable[[], bool] | None = None
        self.fence: Callable[[Tx, datetime], None] | None = None

    def monitors(self) -> dict[str, Monitor]:
        applied = self.runs.applied
        return dict(applied.catalog.monitors) if applied is not None else {}

    # -- pings (any thread) -------------------------------------------------------------

    def ping(
        self, name: str, action: Action, exit_code: int | None, body: bytes, now: datetime
    ) -> Run | None:
        """Record a ping of monitor ``name``; None when no such monitor is applied."""
        if name not in self.monitors():
            return None
        for _ in range(3):
            try:
                run = self._record(name, action, exit_code, now)
                break
            except RunAlreadyEnded:
                continue  # another end ping (or the timeout) closed the run first: again
        else:
            raise RuntimeError(f"monitor {name}: the ping could not be recorded")
        self._keep_body(run.id, body)
        if run.ended_at is not None:
            self._ended.put(run)
        return run

    def _record(self, name: str, action: Action, exit_code: int | None, now: datetime) -> Run:
        """One ping in one transaction: a start opens a run; an end closes the newest
        open run, or is a run of zero duration when none is open."""
        with self.store.transaction() as tx:
            opened = next(iter(reversed(tx.runs.active_runs(job=name, kind="monitor"))), None)
            if action == "start" or opened is None:
                created = tx.runs.create_run(
                    job=name,
                    kind="monitor",
                    trigger="ping",
                    status="pending",
                    created_at=now,
                    revision=self.runs.applied.revision if self.runs.applied else None,
                    host=self.runs.host,
                )
                opened = tx.runs.update_run(
                    created.id, at=now, event="started", status="running", started_at=now
                )
                if action == "start":
                    return opened
            outcome = ping_outcome(action, exit_code)
            return tx.runs.update_run(
                opened.id,
                at=now,
                event="ended",
                status=outcome.status,
                reason="exit_code" if outcome.status == "failed" else None,
                ended_at=now,
                exit_code=outcome.exit_code,
            )

    def _keep_body(self, run_id: int, body: bytes) -> None:
        if not body:
            return
        data = body[:MAX_BODY] + (TRUNCATED if len(body) > MAX_BODY else b"")
        folder: Path = self.outcomes.executor.run_dir(run_id)
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            with (folder / "log").open("ab") as handle:
                handle.write(data)
        except OSError as exc:
            log.warning("run %s: cannot keep the ping's body: %s", run_id, exc)

    # -- the engine's loop --------------------------------------------------------------

    async def watch(self) -> None:
        while True:
            self.check(self.clock.now())
            self.flush()
            await asyncio.sleep(CHECK_INTERVAL)

    def check(self, now: datetime) -> None:
        """Decide every monitor's due slots and open runs at ``now`` (the one place that
        does). Notices wait for :meth:`flush`, in the event loop's thread."""
        monitors = self.monitors()
        if not monitors:
            return
        if self.leads is not None and not self.leads():
            self._last.clear()  # once it leads, it reads what the leader decided
            for name in monitors:  # and decides the slots since it first saw them
                self._since.setdefault(name, now)
            return
        open_runs: dict[str, list[Run]] = {}
        for run in self.store.runs.active_runs(kind="monitor"):
            open_runs.setdefault(run.job, []).append(run)
        try:
            for name, spec in monitors.items():
                self._check_slots(name, spec, now)
                self._check_open(spec, open_runs.get(name, []), now)
        except Fenced as exc:
            log.warning("monitors not checked: %s", exc)
            self._last.clear()

    def flush(self) -> None:
        """Notify what pings and checks ended (in the event loop's thread)."""
        while True:
            try:
                run = self._ended.get_nowait()
            except queue.Empty:
                return
            self._notify_ended(run)

    def _check_slots(self, name: str, spec: Monitor, now: datetime) -> None:
        last = self._last.get(name)
        if last is None:
            last = self.store.runs.last_fire(name) or self._since.setdefault(name, now)
            self._last[name] = last
        cadence = monitor_cadence(spec)
        upcoming = next(iter(cadence.fires_after(last)), None)
        if upcoming is None or now < upcoming + spec.grace:
            return  # nothing due: no read of the store
        due = due_slots(cadence, spec.grace, last, now)
        if due.dropped:
            log.warning("monitor %s: %d older slots left undecided", name, due.dropped)
        held = held_spans(self.store.suspensions.suspensions(now, include_ended=True), name)
        missed: list[Run] = []
        for slot in due.slots:
            start, end = window(slot, spec.grace)
            suspended = slot_held(held, start, end)
            pings = self.store.runs.runs(
                job=name,
                kind="monitor",
                trigger="ping",
                since=start,
                until=end + timedelta(microseconds=1),
                limit=1,
            )
            met = slot_met(slot, spec.grace, [run.created_at for run in pings])
            self._last[name] = slot
            with self.store.transaction() as tx:
                if self.fence is not None:
                    self.fence(tx, now)
                if not tx.runs.claim_fire(name, slot, decided_at=now, host=self.runs.host):
                    continue  # decided already (another engine, an earlier life)
                if met:
                    tx.runs.attach_fire(name, slot, pings[0].id)
                    continue
                run = tx.runs.create_run(
                    job=name,
                    kind="monitor",
                    trigger="schedule",
                    status="skipped",
                    reason="suspended" if suspended else "missed",
                    created_at=now,
                    scheduled_for=slot,
                    revision=self.runs.applied.revision if self.runs.applied else None,
                    host=self.runs.host,
                    detail={"missed": missed_detail(name, [slot], spec.grace)},
                )
                tx.runs.attach_fire(name, slot, run.id)
            if suspended:
                log.info("monitor %s: no ping for the slot of %s (suspended)", name, iso(slot))
                continue  # not notified, now or at resume
            log.info("monitor %s: no ping for the slot of %s", name, iso(slot))
            missed.append(run)
        if missed:
            # One notice for the slots missed at once (after the engine was down): the
            # newest run, with all of them.
            slots = [run.scheduled_for for run in missed if run.scheduled_for is not None]
            newest = missed[-1]
            detail = {**newest.detail, "missed": missed_detail(name, slots, spec.grace)}
            self._ended.put(dataclasses.replace(newest, detail=detail))

    def _check_open(self, spec: Monitor, open_runs: list[Run], now: datetime) -> None:
        for run in open_runs:
            if run.started_at is None:
                continue
            if timed_out(run.started_at, spec.timeout, now):
                try:
                    with self.store.transaction() as tx:
                        if self.fence is not None:
                            self.fence(tx, now)
                        ended = tx.runs.update_run(
                            run.id,
                            at=now,
                            event="timed_out",
                            status="timed_out",
                            reason="timeout",
                            ended_at=now,
                            detail={"timeout": format_duration(spec.timeout)},
                        )
                except RunAlreadyEnded:
                    continue  # its end ping came in the meantime
                self._ended.put(ended)
            elif (
                spec.alerts.slow is not None
                and spec.notify
                and run.id not in self._slow_said
                and self.store.suspensions.active_suspension("monitor", run.job, now) is None
            ):
                sample = self.outcomes.watch.sample(run)
                alert = decide_slow(
                    slow_threshold(spec.alerts, sample), run.started_at, now, spec.timeout
                )
                if alert is not None:
                    self._slow_said.add(run.id)
                    self.outcomes.watch.notify_alert(run, alert, list(spec.notify), "")

    def _notify_ended(self, run: Run) -> None:
        self._slow_said.discard(run.id)
        spec = self.monitors().get(run.job)
        if spec is None or not spec.notify:
            return
        held = self.store.suspensions.active_suspension("monitor", run.job, self.clock.now())
        if held is not None:
            log.info("monitor %s: run %s not notified: suspended", run.job, run.id)
            return
        targets = list(spec.notify)
        missed = run.reason == "missed"
        tail = "" if run.status == "succeeded" else self.outcomes.executor.log_tail(run.id)
        notice = self.outcomes.decide(
            run, targets, spec.notify_policy, status="missed" if missed else None, tail=tail
        )
        if notice is not None:
            self.outcomes.send(targets, notice, tail)
        duration = duration_of(run)
        if run.status == "succeeded" and spec.alerts.fast is not None and duration is not None:
            sample = self.outcomes.watch.sample(run)
            alert = decide_fast(fast_threshold(spec.alerts, sample), duration)
            if alert is not None:
                self.outcomes.watch.notify_alert(run, alert, targets, "")


def held_spans(suspensions: list[Suspension], name: str) -> list[tuple[datetime, datetime | None]]:
    """When monitor ``name`` was (or is) suspended: from, until (None: still)."""
    spans: list[tuple[datetime, datetime | None]] = []
    for s in suspensions:
        if s.kind != "monitor" or s.name != name:
            continue
        ends = [at for at in (s.ended_at, s.until) if at is not None]
        spans.append((s.created_at, min(ends) if ends else None))
    return spans


def slot_held(
    spans: list[tuple[datetime, datetime | None]], start: datetime, end: datetime
) -> bool:
    """Whether a suspension covered any part of a slot's window ``start``..``end``: its
    slot is then ``suspended``, not ``missed`` (no alert for it, also after resume)."""
    return any(begin <= end and (until is None or until > start) for begin, until in spans)


def missed_detail(name: str, slots: list[datetime], grace: timedelta) -> dict[str, object]:
    """Missed slots' ``missed`` (the notice's), in the shape of a schedule's missed slots
    (see :mod:`jobdeck.workflow.missed`), cause ``no_ping``."""
    listed = [iso(slot) for slot in slots]
    return {
        "monitor": name,
        "cause": "no_ping",
        "count": len(listed),
        "first": listed[0],
        "last": listed[-1],
        "slots": [{"at": at, "reason": "no_ping"} for at in listed[-LISTED_SLOTS:]],
        "slots_listed": min(len(listed), LISTED_SLOTS),
        "reasons": {"no_ping": len(listed)},
        "grace": format_duration(grace),
    }
