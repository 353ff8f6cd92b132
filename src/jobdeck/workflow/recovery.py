"""An engine's start: the runs an earlier engine left active on this host, taken over.

A pending run waits again, unless an earlier engine launched it before it could record
so: then it is adopted like a running one; one whose spec that engine wrote and whose
shim never took it (the engine died in between) is launched from that spec now. A
running run whose shim is alive is watched again (the shim still enforces its timeout);
one that ended while no engine ran gets its outcome recorded; one whose shim is gone
without a result ends ``lost`` (reason ``engine_restart``). A run someone asked to cancel
is cancelled now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobdeck.clock import Clock
from jobdeck.execute.executor import Executor
from jobdeck.store import Store
from jobdeck.workflow.approvals import awaiting
from jobdeck.workflow.dispatch import Dispatcher
from jobdeck.workflow.waiting import Waiting

# Kinds of runs the run driver owns (workers have their own supervisor).
DRIVEN_KINDS = ("schedule", "command")


def recover(store: Store, clock: Clock, executor: Executor, dispatcher: Dispatcher) -> Recovered:
    """Take over this host's active runs from the store, in the engine's loop."""
    runs, outcomes = dispatcher.runs, dispatcher.outcomes
    found = Recovered()
    now = clock.now()
    for run in store.runs.active_runs(host=runs.host):
        if run.kind not in DRIVEN_KINDS or run.id in runs.running or run.id in runs.waiting:
            continue
        if awaiting(run):  # waits for a person, not for the dispatcher
            found.awaiting.append(run.id)
            continue
        plan = run.plan
        requested = plan.cancel_requested
        if run.status == "pending" and not executor.launched(run.id):
            runs.waiting[run.id] = Waiting(run, plan.not_before, plan.exclusive)
            if requested:
                runs.asked[run.id] = requested.detail()
                dispatcher.abandon(runs.waiting[run.id], "cancelled", "cancelled before it started")
                continue
            found.waiting.append(run.id)
            continue
        if run.status == "pending" and executor.unclaimed(run.id):
            # The earlier engine wrote its spec and died before a shim took it: the
            # launch is completed from that spec (once, should its shim come after all).
            if requested:
                runs.asked[run.id] = requested.detail()  # stopped once it runs
            dispatcher.resume(run)
            found.resumed.append(run.id)
            continue
        state = executor.probe(run.id)
        if state == "vanished":
            outcomes.finish_lost(run, "engine_restart", "no process and no result after a restart")
            found.lost.append(run.id)
            continue
        runs.running[run.id] = run
        with store.transaction() as tx:
            tx.runs.add_event(run.id, at=now, type="adopted", detail={"state": state})
            if run.status == "pending":
                detail = {"run_dir": str(executor.run_dir(run.id))}
                runs.running[run.id] = dispatcher.record_started(tx, run.id, now, detail)
        # A run that ended while no engine ran is not running: its outcome is recorded
        # now, before the engine decides anything (a catch-up must not find it active
        # and skip a missed slot for it), and it is told apart from those that still run.
        if state == "finished":
            found.finished.append(run.id)
            if requested:
                runs.asked[run.id] = requested.detail()
            outcomes.on_exit(run.id, executor.result(run.id))
            continue
        found.adopted.append(run.id)
        executor.watch(run.id, outcomes.on_exit)
        if requested:
            # Cancelled while an earlier engine ran it, which died before it stopped it:
            # stopped now (nothing happens when it has ended meanwhile).
            runs.asked[run.id] = requested.detail()
            dispatcher.stop(run.id)
    dispatcher.pump()
    return found


@dataclass
class Recovered:
    """What :func:`recover` found of the runs an earlier engine left active."""

    adopted: list[int] = field(default_factory=list)  # still running: watched again
    finished: list[int] = field(default_factory=list)  # ended meanwhile: outcome recorded
    lost: list[int] = field(default_factory=list)  # gone without a result
    resumed: list[int] = field(default_factory=list)  # launched from their spec now
    waiting: list[int] = field(default_factory=list)  # pending: they wait again
    awaiting: list[int] = field(default_factory=list)  # pending: they wait for approval

    def report(self) -> str:
        """One line for the engine's log; empty when there was nothing to take over."""
        parts = [
            f"{what} {len(ids)} {label}: {ids}"
            for what, ids, label in (
                ("adopted", self.adopted, "running run(s)"),
                ("recorded", self.finished, "run(s) that ended while the engine was down"),
                ("lost", self.lost, "run(s) with no process and no result"),
                ("launched", self.resumed, "run(s) an earlier engine began to launch"),
                ("queued again", self.waiting, "pending run(s)"),
                ("found", self.awaiting, "run(s) waiting for approval"),
            )
            if ids
        ]
        return "; ".join(parts)
