"""The run driver: every run of a schedule or a command goes through here.

fire / run_now / run_command -> (suspension, overlap) -> a run record -> wait for pool
room -> launch -> watch -> record the outcome -> retry or not -> notify. The decisions are
the pure functions of :mod:`jobdeck.workflow.decisions`; the waiting and launching are
its :class:`~jobdeck.workflow.dispatch.Dispatcher`, the ends its
:class:`~jobdeck.workflow.outcomes.Outcomes`; this module decides what a request
becomes, and adopts the runs an earlier engine left running. Runs that are waiting live
in the store (``pending``), so a restarted engine finds them again.

The driver is called from other threads (the scheduler's, the HTTP side's worker
threads): what they ask is recorded in their thread, in one transaction, and the run is
handed to the engine's loop through one :class:`~jobdeck.execute.tasks.LoopGate`; all
the rest runs in the loop's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from jobdeck.cadence import jitter_delay
from jobdeck.catalog.model import Schedule
from jobdeck.clock import Clock
from jobdeck.execute.executor import Applied, Executor
from jobdeck.execute.tasks import LoopGate, OnError, Supervised
from jobdeck.store import Store, Tx
from jobdeck.store.records import CancelRequest, Run, RunPlan, Suspension, Trigger
from jobdeck.workflow.approvals import AWAITING, Approvals, approval_for, awaiting
from jobdeck.workflow.catchup import catch_up, catch_up_resumed
from jobdeck.workflow.decisions import (
    ActiveRun,
    CatchupDecision,
    MissCause,
    decide_overlap,
)
from jobdeck.workflow.dispatch import Dispatcher
from jobdeck.workflow.elsewhere import CancelFollower
from jobdeck.workflow.monitors import MonitorWatch
from jobdeck.workflow.placement import LEADER, PLACED_KINDS, take_placed
from jobdeck.workflow.recovery import DRIVEN_KINDS, Recovered, recover
from jobdeck.workflow.refusals import CancelRefused, RunRefused
from jobdeck.workflow.remote_cancel import cancel_elsewhere
from jobdeck.workflow.state import Notify, Runs

__all__ = ["Applied", "CancelRefused", "Notify", "Recovered", "RunDriver", "RunRefused"]

log = logging.getLogger(__name__)


class RunDriver:
    """Decides what a request becomes; its :attr:`dispatcher` runs it."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        executor: Executor,
        *,
        host: str,
        notify: Notify | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.executor = executor
        self.host = host
        self.runs = Runs(host)
        supervised = Supervised("run driver", on_error)
        self.gate = LoopGate(supervised)
        self.dispatcher = Dispatcher(self.runs, store, clock, executor, supervised, notify=notify)
        self.approvals = Approvals(store, clock, host, self.hand_over)
        self.monitors = MonitorWatch(self.runs, store, clock, self.dispatcher.outcomes)
        self._supervised = supervised
        # In a cluster: cancels of this node's runs asked through other nodes.
        self.cancels = CancelFollower(store, self.dispatcher)
        self._watching = False
        # In a cluster: raises Fenced in a unit of work that only the leader may commit
        # (a timed fire, a catch-up); see jobdeck.cluster.leadership.
        self.fence: Callable[[Tx, datetime], None] | None = None
        # In a cluster: whether runs asked for here execute here (this node leads);
        # else they are placed on the leader (see jobdeck.workflow.placement).
        self.executes: Callable[[], bool] = lambda: True
        self.approvals.placement = self.placement

    def placement(self) -> str:
        """The host of a run asked for now: this node's, or the leader's marker."""
        return self.host if self.executes() else LEADER

    def take_placed(self) -> list[Run]:
        """The leader takes the runs placed on it and dispatches them (any thread)."""
        taken = take_placed(
            self.store,
            self.host,
            self.clock.now(),
            self.fence,
            lambda r: r.reason != AWAITING and r.kind in PLACED_KINDS,
        )
        for run in taken:
            self.hand_over(run)
        return taken

    # -- configuration ----------------------------------------------------------------

    def load(self, applied: Applied) -> None:
        self.gate.bind()
        self.runs.applied = applied
        self.runs.waiting.unpark_all()  # the new revision's limits and jobs apply to all
        self.dispatcher.outcomes.flush_deferred()
        self.dispatcher.pump()
        if not self._watching:  # duration alerts: one look a second at what waits and runs
            self._watching = True
            self._supervised.spawn(self.dispatcher.outcomes.watch.watch())
            self._supervised.spawn(self.monitors.watch())

    def schedule(self, name: str) -> Schedule | None:
        applied = self.runs.applied
        return applied.catalog.schedules.get(name) if applied else None

    def hand_over_all(self, recorded: list[Run]) -> None:
        """The runs recorded by a caller of :meth:`decide_slot`, to the dispatcher."""
        waiting = [run for run in recorded if run.status == "pending" and run.host == self.host]
        if waiting:
            self.gate.call(self.dispatcher.enqueue_all, waiting)

    def decide_slot(
        self,
        tx: Tx,
        name: str,
        spec: Schedule,
        trigger: Trigger,
        slot: datetime,
        now: datetime,
        detail: dict[str, Any],
        requested_by: str | None,
        before: Sequence[Run],
    ) -> Run:
        """The run of one slot of a batch (a backfill), recorded in ``tx`` (whose caller
        found no suspension): it queues behind the others of its batch, and meets the
        schedule's overlap policy against ``before``, the schedule's active runs as the
        batch began (read once for the whole batch, not once per slot)."""
        return self.decide(
            tx, name, spec, trigger, slot, now, detail,
            requested_by=requested_by, unsuspended=True, catching_up=True, active=before,
        )  # fmt: skip

    def hand_over(self, run: Run, shown: str | None = None) -> None:
        """A run just recorded, to the dispatcher in the engine's loop (when it waits);
        one placed on the leader is taken by the leader's pick-up instead."""
        if run.host != self.host:
            return
        if run.status == "pending" and run.reason != AWAITING:  # approval: not yet
            self.gate.call(self.dispatcher.enqueue, run, shown)

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
            if self.fence is not None:
                self.fence(tx, now)
            if not tx.runs.claim_fire(name, nominal, decided_at=now, host=self.host):
                return None
            detail: dict[str, Any] = {"lateness_ms": lateness_ms}
            late = catching_up is not None or trigger == "catchup"
            if late:
                detail.update(RunPlan(catchup_of=catching_up or "engine_down").detail())
            elif spec.jitter:
                # A timed slot starts after its own delay, counted from its nominal time
                # (the same on every engine); a slot caught up late starts at once.
                delay = jitter_delay(name, nominal, spec.jitter)
                detail.update(RunPlan(not_before=nominal + delay).detail())
                detail["jitter_ms"] = round(delay.total_seconds() * 1000)
            run = self.decide(tx, name, spec, trigger, nominal, now, detail, catching_up=late)
            tx.runs.attach_fire(name, nominal, run.id)
        self.hand_over(run)
        return run

    def catch_up(
        self,
        name: str,
        decision: CatchupDecision,
        *,
        trigger: Trigger,
        cause: MissCause,
        held: bool = False,
    ) -> None:
        """Missed slots recorded, caught up by policy, notified (see :func:`catch_up`)."""
        catch_up(self, name, decision, trigger=trigger, cause=cause, held=held)

    def catch_up_resumed(self, held: Suspension) -> list[Run]:
        """A suspension resumed with ``--catch-up`` (see :func:`catch_up_resumed`)."""
        return catch_up_resumed(self, held)

    def run_now(
        self,
        name: str,
        *,
        trigger: Trigger = "manual",
        requested_by: str | None = None,
        ignore_overlap: bool = False,
        slot: datetime | None = None,
        audit: Callable[[Tx, Run], None] | None = None,
    ) -> Run:
        """Record a run of ``name`` now and hand it to the dispatcher; ``audit`` records
        who asked in the same transaction (one commit for the request, not two).

        ``slot``: a re-run of that slot (one of the schedule's instants, checked by the
        caller), with it as its nominal time; a slot that no run ever claimed is claimed
        by this one, so that no timed fire or catch-up runs it again."""
        spec = self.schedule(name)
        if spec is None:
            raise RunRefused("unknown", f"no schedule named {name!r} in the applied revision")
        if not spec.enabled:
            raise RunRefused(
                "disabled", f"schedule {name} is disabled (enabled: false in the catalog)"
            )
        now = self.clock.now()
        with self.store.transaction() as tx:
            held = self.suspended("schedule", name, now, tx)
            if held is not None:
                raise RunRefused("suspended", f"schedule {name} is suspended: {held.reason}", held)
            claimed = slot is not None and tx.runs.claim_fire(
                name, slot, decided_at=now, host=self.host
            )
            run = self.decide(
                tx,
                name,
                spec,
                trigger,
                slot,
                now,
                RunPlan(requested_at=now).detail(),
                requested_by=requested_by,
                ignore_overlap=ignore_overlap,
                unsuspended=True,
            )
            if claimed:
                assert slot is not None
                tx.runs.attach_fire(name, slot, run.id)
            if audit is not None:
                audit(tx, run)
            waits = self._note_waiting(tx, run, now)
        self.hand_over(run, waits)
        return run

    def _note_waiting(self, tx: Tx, run: Run, now: datetime) -> str | None:
        """See :meth:`Dispatcher.note_waiting`: only in the loop's thread (from another,
        the run reaches the dispatcher later, which tells what it waits for)."""
        if run.host != self.host:  # placed on the leader
            return None
        return self.dispatcher.note_waiting(tx, run, now) if self.gate.here() else None

    def decide(
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
        catching_up: bool = False,
        active: Sequence[Run] | None = None,
    ) -> Run:
        """The run a request becomes, recorded in ``tx``; ``unsuspended`` when the caller
        found no suspension in ``tx`` already; ``catching_up`` for a missed slot's run."""
        host = self.placement()

        def record(status: Any, reason: str | None, extra: Mapping[str, Any]) -> Run:
            return self.runs.record(
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
                host=host,
            )

        if not unsuspended and self.suspended("schedule", name, now, tx):
            return record("skipped", "suspended", {})
        policy = "allow" if ignore_overlap else spec.overlap
        if policy == "allow":
            return record("pending", None, {})  # whatever else runs: no need to look
        if active is None:
            # Under the job's lock in the store: engines deciding at once take turns.
            active = tx.runs.decide_job(name, "schedule")
        if catching_up:
            # Missed slots caught up at once queue behind each other (each waits until no
            # other run of the schedule runs): none is skipped or cancelled for the others
            # of its catch-up. Runs from before meet the schedule's own policy.
            # Backfilled slots do the same among themselves.
            active = [r for r in active if r.plan.catchup_of is None and r.trigger != "backfill"]
        # A run already handed to the executor is still pending in the store while its
        # launch is in flight; it is running for the overlap decision.
        running = self.runs.running
        decision = decide_overlap(
            policy,
            [ActiveRun(r.id, r.status == "pending" and r.id not in running) for r in active],
        )
        if decision.action == "skip":
            return record("skipped", "overlap", {"active_runs": [r.id for r in active]})
        if decision.action == "buffer":
            return record("pending", None, RunPlan(buffered=True, exclusive=True).detail())
        if decision.action == "cancel_and_start":
            replaces = RunPlan(cancels=tuple(decision.cancel), exclusive=True)
            return record("pending", None, replaces.detail())
        return record("pending", None, RunPlan(exclusive=catching_up).detail())

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
        transaction. A run of another node (a cluster) is cancelled in the store, and
        its node drops or stops it (see :mod:`jobdeck.workflow.elsewhere`). Returns the
        run as recorded now. Raises :class:`KeyError` for an
        unknown run and :class:`CancelRefused`, changing nothing, for an ended one.
        """
        now = self.clock.now()
        request = CancelRequest(by, why)
        asked = request.detail()
        runs = self.runs
        waiting = False
        with self.store.transaction() as tx:
            run = tx.runs.run(run_id)
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
            placed = False
            if run.host == LEADER and run.status == "pending":
                # Placed on the leader, not taken yet: taken back here and cancelled
                # (one conditional write: the leader's pick-up cannot take it too).
                taken = tx.runs.take_run(run_id, self.host, at=now, only_from=LEADER)
                if taken is not None:
                    run, placed = taken, True
                else:
                    run = tx.runs.run(run_id) or run
            if run.host != self.host:
                # Recorded in the store; the run's own node drops or stops it.
                run = cancel_elsewhere(tx, run, request, self.host, now)
                if audit is not None:
                    audit(tx, run)
                return run
            # Awaiting approval, or placed on the leader: never queued here.
            waiting = placed or run_id in runs.waiting or awaiting(run)
            if waiting:
                run = tx.runs.update_run(
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
                run = tx.runs.update_run(
                    run_id,
                    at=now,
                    event="cancel_requested",
                    detail=RunPlan(cancel_requested=request).detail(),
                )
            if audit is not None:
                audit(tx, run)
        if waiting:
            runs.waiting.pop(run_id, None)
            self.dispatcher.pump()
        else:
            if run_id in runs.running:
                runs.running[run_id] = run  # what this engine holds of it is current
            runs.asked[run_id] = asked
            if run_id in runs.running:
                self.dispatcher.stop(run_id)
            # else: recorded, and on its way to the queue from another thread, where it
            # is dropped without starting (see Dispatcher.enqueue)
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
        applied = self.runs.applied
        spec = applied.catalog.commands.get(name) if applied else None
        if spec is None:
            raise RunRefused("unknown", f"no command named {name!r} in the applied revision")
        if not spec.enabled:
            raise RunRefused(
                "disabled", f"command {name} is disabled (enabled: false in the catalog)"
            )
        if not argv or not all(isinstance(arg, str) for arg in argv):
            raise ValueError("argv must be a non-empty list of strings")
        now = self.clock.now()
        recorded = {
            **RunPlan(requested_at=now).detail(),
            **(detail or {}),
            **RunPlan(argv=tuple(argv)).detail(),
        }
        approve = spec.approve
        if approve is not None:  # four-eyes: recorded, started only once approved
            asked = approval_for(approve.users, approve.usergroups, now + approve.expires)
            recorded.update(RunPlan(approval=asked).detail())
        with self.store.transaction() as tx:
            held = self.suspended("command", name, now, tx)
            if held is not None:
                raise RunRefused("suspended", f"command {name} is suspended: {held.reason}", held)
            run = self.runs.record(
                tx,
                "command",
                name,
                trigger,
                "pending",
                None if approve is None else AWAITING,
                None,
                now,
                spec,
                detail=recorded,
                requested_by=requested_by,
                params=params,
                # One that waits for approval stays here until decided (its expiry is
                # this node's); approved, it is placed where runs execute then.
                host=self.host if approve is not None else self.placement(),
            )
            waits = None if approve is not None else self._note_waiting(tx, run, now)
        self.hand_over(run, waits)
        return run

    def suspended(
        self, kind: str, name: str, now: datetime, tx: Tx | None = None
    ) -> Suspension | None:
        if tx is not None:
            return tx.suspensions.active_suspension(kind, name, now)
        for found in self.store.suspensions.suspensions(now):
            if found.kind == kind and found.name == name:
                return found
        return None

    async def aclose(self) -> None:
        """Stop dispatching and watching; runs go on, and the next engine adopts them."""
        await self.dispatcher.aclose()

    # -- recovery ---------------------------------------------------------------------

    def recover(self) -> Recovered:
        """Take over this host's active runs from the store (see :func:`recover`)."""
        self.gate.bind()
        return recover(self.store, self.clock, self.executor, self.dispatcher)
