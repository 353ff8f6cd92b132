"""The run driver: every run of a schedule or a command goes through here.

fire / run_now / run_command -> (suspension, overlap) -> a run record -> wait for pool
room -> launch -> watch -> record the outcome -> retry or not -> notify. The decisions are
the pure functions of :mod:`jobdeck.workflow.decisions`; the waiting, launching and
outcomes are :mod:`jobdeck.workflow.dispatch`; this module decides what a request
becomes, and adopts the runs an earlier engine left running. Runs that are waiting live
in the store (``pending``), so a restarted engine finds them again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobdeck.catalog.model import Schedule
from jobdeck.execute.executor import Applied
from jobdeck.store import Tx
from jobdeck.store.records import Run, Suspension, Trigger
from jobdeck.workflow.decisions import (
    ActiveRun,
    CatchupDecision,
    MissCause,
    decide_overlap,
    missed_why,
)
from jobdeck.workflow.dispatch import Dispatcher, Notify
from jobdeck.workflow.missed import MissedSlots
from jobdeck.workflow.outcome import NOTIFY_STATUSES, iso, not_before
from jobdeck.workflow.refusals import CancelRefused, RunRefused
from jobdeck.workflow.waiting import Waiting

__all__ = [
    "NOTIFY_STATUSES",
    "Applied",
    "CancelRefused",
    "Notify",
    "Recovered",
    "RunDriver",
    "RunRefused",
    "Waiting",
]

log = logging.getLogger(__name__)

# Kinds of runs this driver owns (workers have their own supervisor).
DRIVEN_KINDS = ("schedule", "command")


# The key of a run's detail that holds who asked to cancel it and why, from the request
# until it ends (the outcome then records them as cancelled_by and cancel_reason).
CANCEL_REQUESTED = "cancel_requested"


class RunDriver(Dispatcher):
    # -- configuration ----------------------------------------------------------------

    def load(self, applied: Applied) -> None:
        self._bind()
        self.applied = applied
        self.waiting.unpark_all()  # the new revision's limits and jobs apply to all of them
        self.outcomes.flush_deferred()
        self._pump()

    def schedule(self, name: str) -> Schedule | None:
        return self.applied.catalog.schedules.get(name) if self.applied else None

    # -- schedule runs ----------------------------------------------------------------

    def fire(
        self,
        name: str,
        nominal: datetime,
        trigger: Trigger = "schedule",
        decided_at: datetime | None = None,
        *,
        catching_up: MissCause | None = None,
    ) -> Run | None:
        """A timed fire (or a catch-up of a missed one), decided by the scheduler at
        ``decided_at`` (default: now). None when another engine, or an earlier life of
        this one, already decided this slot. ``catching_up``: why the slot is fired late,
        when it is (its run queues behind the others of its catch-up)."""
        spec = self.schedule(name)
        if spec is None or not spec.enabled:
            return None
        now = decided_at or self.clock.now()
        lateness_ms = round((now - nominal).total_seconds() * 1000, 3)
        with self.store.transaction() as tx:
            if not tx.claim_fire(name, nominal, decided_at=now, host=self.host):
                return None
            detail: dict[str, Any] = {"lateness_ms": lateness_ms}
            if catching_up is not None or trigger == "catchup":
                detail["catchup_of"] = catching_up or "engine_down"
            run = self._decide(tx, name, spec, trigger, nominal, now, detail)
            tx.attach_fire(name, nominal, run.id)
        self._enqueue(run)
        return run

    def catch_up(
        self, name: str, decision: CatchupDecision, *, trigger: Trigger, cause: MissCause
    ) -> None:
        """Missed slots: those catch-up does not run are recorded, never dropped; those it
        runs are fired oldest first. One notice tells the schedule's targets about every
        slot that did not run (also one fired but skipped: a run from before still ran);
        none when the schedule is suspended (that is on purpose)."""
        spec = self.schedule(name)
        if spec is None or not spec.enabled:
            return
        now = self.clock.now()
        reason = "suspended" if self._suspended("schedule", name, now) else "missed"
        missed = MissedSlots(name, cause, spec.catchup, spec.catchup_window)
        first: Run | None = None
        with self.store.transaction() as tx:
            for slot in decision.missed:
                if not tx.claim_fire(name, slot, decided_at=now, host=self.host):
                    continue  # another engine (or an earlier life) decided it
                why = missed_why(slot, now, spec.catchup, spec.catchup_window)
                detail = {"cause": cause, "why": why}
                run = self._record(
                    tx, "schedule", name, "catchup", "skipped", reason, slot, now, spec,
                    detail=detail,
                )  # fmt: skip
                tx.attach_fire(name, slot, run.id)
                missed.slots.append((slot, why))
                first = first or run
            if decision.missed_beyond:
                assert decision.last_beyond is not None
                missed.beyond = decision.missed_beyond
                missed.first_beyond, missed.last_beyond = (
                    decision.first_beyond,
                    decision.last_beyond,
                )
                missed.beyond_why = missed_why(
                    decision.last_beyond, now, spec.catchup, spec.catchup_window
                )
                summary = {
                    "cause": cause,
                    "why": missed.beyond_why,
                    "missed_slots": decision.missed_beyond,
                    "first": iso(decision.first_beyond or decision.last_beyond),
                    "last": iso(decision.last_beyond),
                }
                run = self._record(
                    tx, "schedule", name, "catchup", "skipped", reason, None, now, spec,
                    detail=summary,
                )  # fmt: skip
                first = first or run
        for slot in decision.run:
            fired = self.fire(name, slot, trigger, catching_up=cause)
            if fired is None:
                continue
            missed.caught_up.append(slot)
            if fired.status == "skipped" and fired.reason != "suspended":
                missed.skipped(fired)
                first = first or fired
        if reason == "missed" and first is not None and missed.count and spec.notify:
            self._send_missed(list(spec.notify), first, missed, now)

    def _send_missed(
        self, targets: list[str], first: Run, missed: MissedSlots, now: datetime
    ) -> None:
        """One notice for the slots of one catch-up; it stands on the first run recorded
        for them (a real run that the link opens), carrying the whole ``missed`` detail."""
        notice = Run(
            first.id,
            missed.schedule,
            "schedule",
            first.trigger,
            "skipped",
            now,
            reason="missed",
            scheduled_for=first.scheduled_for,
            pool=first.pool,
            host=first.host,
            detail={"missed": missed.detail()},
        )
        self.outcomes.send(targets, notice, "")

    def run_now(
        self,
        name: str,
        *,
        trigger: Trigger = "manual",
        requested_by: str | None = None,
        ignore_overlap: bool = False,
        audit: Callable[[Tx, Run], None] | None = None,
    ) -> Run:
        """Record a run of ``name`` now and hand it to the dispatcher; ``audit`` records
        who asked in the same transaction (one commit for the request, not two)."""
        spec = self.schedule(name)
        if spec is None:
            raise RunRefused("unknown", f"no schedule named {name!r} in the applied revision")
        if not spec.enabled:
            raise RunRefused(
                "disabled", f"schedule {name} is disabled (enabled: false in the catalog)"
            )
        now = self.clock.now()
        with self.store.transaction() as tx:
            held = self._suspended("schedule", name, now, tx)
            if held is not None:
                raise RunRefused("suspended", f"schedule {name} is suspended: {held.reason}", held)
            run = self._decide(
                tx,
                name,
                spec,
                trigger,
                None,
                now,
                {"requested_at": iso(now)},
                requested_by=requested_by,
                ignore_overlap=ignore_overlap,
                unsuspended=True,
            )
            if audit is not None:
                audit(tx, run)
            waits = self._note_waiting(tx, run, now)
        self._enqueue(run, waits)
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
        unsuspended: bool = False,
    ) -> Run:
        """The run a request becomes, recorded in ``tx``; ``unsuspended`` when the caller
        found no suspension in ``tx`` already."""

        def record(status: Any, reason: str | None, extra: Mapping[str, Any]) -> Run:
            return self._record(
                tx,
                "schedule",
                name,
                trigger,
                status,
                reason,
                nominal,
                now,
                spec,
                detail={**detail, **extra},
                requested_by=requested_by,
            )

        if not unsuspended and self._suspended("schedule", name, now, tx):
            return record("skipped", "suspended", {})
        policy = "allow" if ignore_overlap else spec.overlap
        if policy == "allow":
            return record("pending", None, {})  # whatever else runs: no need to look
        active = tx.active_runs(job=name, kind="schedule")
        catching_up = "catchup_of" in detail
        if catching_up:
            # Missed slots caught up at once queue behind each other (each waits until no
            # other run of the schedule runs): none is skipped or cancelled for the others
            # of its catch-up. Runs from before meet the schedule's own policy.
            active = [r for r in active if "catchup_of" not in r.detail]
        # A run already handed to the executor is still pending in the store while its
        # launch is in flight; it is running for the overlap decision.
        decision = decide_overlap(
            policy,
            [ActiveRun(r.id, r.status == "pending" and r.id not in self.running) for r in active],
        )
        if decision.action == "skip":
            return record("skipped", "overlap", {"active_runs": [r.id for r in active]})
        if decision.action == "buffer":
            return record("pending", None, {"buffered": True, "exclusive": True})
        if decision.action == "cancel_and_start":
            return record("pending", None, {"cancels": list(decision.cancel), "exclusive": True})
        return record("pending", None, {"exclusive": True} if catching_up else {})

    # -- cancelling -------------------------------------------------------------------

    def cancel(
        self,
        run_id: int,
        *,
        by: str,
        why: str | None = None,
        audit: Callable[[Tx, Run], None] | None = None,
    ) -> Run:
        """Cancel a run that has not ended, in the driver's event loop's thread.

        A pending run (waiting for room, a backoff or its turn) ends ``cancelled`` at
        once and never starts. A running one is stopped as a timeout stops it: SIGTERM
        to its whole process tree, SIGKILL after its ``kill_grace``; it ends
        ``cancelled`` when its supervisor says so. Either way the outcome records
        ``cancelled_by`` and ``cancel_reason``; ``audit`` records the request in the same
        transaction. Returns the run as recorded now. Raises :class:`KeyError` for an
        unknown run and :class:`CancelRefused`, changing nothing, for an ended one.
        """
        now = self.clock.now()
        asked: dict[str, Any] = {"cancelled_by": by, "cancel_reason": why}
        waiting = False
        with self.store.transaction() as tx:
            run = tx.run(run_id)
            if run is None:
                raise KeyError(run_id)
            if not run.active:
                raise CancelRefused(
                    "ended",
                    f"run {run_id} has already ended ({run.status}); there is nothing to cancel",
                )
            if run.kind not in DRIVEN_KINDS:
                raise CancelRefused(
                    "worker",
                    f"run {run_id} is a process of worker {run.job}: suspend the worker or "
                    "change its replicas instead",
                )
            if run.host != self.host:
                raise CancelRefused(
                    "elsewhere",
                    f"run {run_id} runs on host {run.host}; cancel it through that engine",
                )
            waiting = run_id in self.waiting
            if waiting:
                run = tx.update_run(
                    run_id,
                    at=now,
                    event="cancelled",
                    status="cancelled",
                    reason="cancelled",
                    ended_at=now,
                    detail=asked,
                )
            else:
                # Kept with the run: an engine that dies before it stops the run, and
                # the next one that adopts it, still cancel it (see recover).
                run = tx.update_run(
                    run_id, at=now, event="cancel_requested", detail={CANCEL_REQUESTED: asked}
                )
            if audit is not None:
                audit(tx, run)
        if waiting:
            del self.waiting[run_id]
            self._pump()
        else:
            if run_id in self.running:
                self.running[run_id] = run  # what this engine holds of it is current
            self._asked[run_id] = asked
            if run_id in self.running:
                self._spawn(self._cancel(run_id))
            # else: recorded, and on its way to the queue from another thread, where it
            # is dropped without starting (see _enqueue)
        return run

    # -- command runs -----------------------------------------------------------------

    def run_command(
        self,
        name: str,
        argv: Sequence[str],
        *,
        trigger: Trigger,
        requested_by: str | None,
        detail: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Run:
        """A run of the command ``name`` with ``argv`` already rendered from its params
        (each param one whole argv element; no shell ever sees them).

        It runs in the command's pool with its memory and timeout, waits for the pool's
        ``max_concurrency`` like any run, and is not retried: the caller is answered with
        its outcome. ``detail`` may carry ``requested_at`` (ISO) when the request arrived
        earlier than this call, so that ``dispatch_ms`` covers the whole way.
        """
        spec = self.applied.catalog.commands.get(name) if self.applied else None
        if spec is None:
            raise RunRefused("unknown", f"no command named {name!r} in the applied revision")
        if not spec.enabled:
            raise RunRefused(
                "disabled", f"command {name} is disabled (enabled: false in the catalog)"
            )
        if not argv or not all(isinstance(arg, str) for arg in argv):
            raise ValueError("argv must be a non-empty list of strings")
        now = self.clock.now()
        recorded = {"requested_at": iso(now), **(detail or {}), "argv": list(argv)}
        with self.store.transaction() as tx:
            held = self._suspended("command", name, now, tx)
            if held is not None:
                raise RunRefused("suspended", f"command {name} is suspended: {held.reason}", held)
            run = self._record(
                tx,
                "command",
                name,
                trigger,
                "pending",
                None,
                None,
                now,
                spec,
                detail=recorded,
                requested_by=requested_by,
                params=params,
            )
            waits = self._note_waiting(tx, run, now)
        self._enqueue(run, waits)
        return run

    def _suspended(
        self, kind: str, name: str, now: datetime, tx: Tx | None = None
    ) -> Suspension | None:
        if tx is not None:
            return tx.active_suspension(kind, name, now)
        for found in self.store.suspensions(now):
            if found.kind == kind and found.name == name:
                return found
        return None

    # -- recovery ---------------------------------------------------------------------

    def recover(self) -> Recovered:
        """Take over this host's active runs from the store.

        A pending run waits again, unless an earlier engine launched it before it could
        record so: then it is adopted like a running one. A running run whose shim is
        alive is watched again (the shim still enforces its timeout); one that ended
        while no engine ran gets its outcome recorded; one whose shim is gone without
        a result ends ``lost`` (reason ``engine_restart``).
        """
        self._bind()
        found = Recovered()
        now = self.clock.now()
        for run in self.store.active_runs(host=self.host):
            if run.kind not in DRIVEN_KINDS or run.id in self.running or run.id in self.waiting:
                continue
            requested = run.detail.get(CANCEL_REQUESTED)
            if run.status == "pending" and not self.executor.launched(run.id):
                exclusive = bool(run.detail.get("exclusive"))
                self.waiting[run.id] = Waiting(run, not_before(run), exclusive)
                if requested:
                    self._asked[run.id] = dict(requested)
                    self._abandon(self.waiting[run.id], "cancelled", "cancelled before it started")
                    continue
                found.waiting.append(run.id)
                continue
            state = self.executor.probe(run.id)
            if state == "vanished":
                self.outcomes.finish_lost(
                    run, "engine_restart", "no process and no result after a restart"
                )
                found.lost.append(run.id)
                continue
            self.running[run.id] = run
            with self.store.transaction() as tx:
                tx.add_event(run.id, at=now, type="adopted", detail={"state": state})
                if run.status == "pending":
                    detail = {"run_dir": str(self.executor.run_dir(run.id))}
                    self.running[run.id] = self._record_started(tx, run.id, now, detail)
            # A run that ended while no engine ran is not running: its watch reports its
            # outcome at once, and it is told apart from those that still run.
            (found.finished if state == "finished" else found.adopted).append(run.id)
            self.executor.watch(run.id, self.outcomes.on_exit)
            if requested:
                # Cancelled while an earlier engine ran it, which died before it stopped
                # it: stopped now (nothing happens when it has ended meanwhile).
                self._asked[run.id] = dict(requested)
                self._spawn(self._cancel(run.id))
        self._pump()
        return found


@dataclass
class Recovered:
    """What :meth:`RunDriver.recover` found of the runs an earlier engine left active."""

    adopted: list[int] = field(default_factory=list)  # still running: watched again
    finished: list[int] = field(default_factory=list)  # ended meanwhile: outcome recorded
    lost: list[int] = field(default_factory=list)  # gone without a result
    waiting: list[int] = field(default_factory=list)  # pending: they wait again

    def report(self) -> str:
        """One line for the engine's log; empty when there was nothing to take over."""
        parts = [
            f"{what} {len(ids)} {label}: {ids}"
            for what, ids, label in (
                ("adopted", self.adopted, "running run(s)"),
                ("recorded", self.finished, "run(s) that ended while the engine was down"),
                ("lost", self.lost, "run(s) with no process and no result"),
                ("queued again", self.waiting, "pending run(s)"),
            )
            if ids
        ]
        return "; ".join(parts)
