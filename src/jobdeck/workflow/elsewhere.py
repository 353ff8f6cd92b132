"""Cancels across the nodes of a cluster: a run cancelled through another node than the
one that runs it.

The node that takes the request records it in the store (:func:`cancel_elsewhere`): a
pending run ends ``cancelled`` there at once; a running one keeps the request in its plan
(``cancel_requested``). The node that owns the run notices (:class:`CancelFollower`,
once a second, only while it holds runs and another node lives, as its heartbeat last
saw): it drops a pending run that ended so and stops
a running one as its own cancel would (SIGTERM to the whole tree, SIGKILL after its
``kill_grace``), which then ends ``cancelled`` with who and why. A run cancelled in the
store while its owner was launching it is refused by the store when the owner records
its start (see :meth:`jobdeck.workflow.dispatch.Dispatcher.record_started`), and the
owner stops it at once.
"""

from __future__ import annotations

import asyncio
import logging

from jobdeck.store import Store
from jobdeck.store.records import Run
from jobdeck.workflow.dispatch import Dispatcher

log = logging.getLogger(__name__)

# How often a node of a cluster looks for cancels of its runs asked through other nodes.
POLL_SECONDS = 1.0


class CancelFollower:
    """The owning node's side: what other nodes asked of its runs, acted upon."""

    def __init__(self, store: Store, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher
        # Whether another node lives (set at each heartbeat): alone, nobody else can ask.
        self.others = True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            await self.step()

    async def step(self) -> None:
        """One look: nothing is read while this node holds no run."""
        runs = self.dispatcher.runs
        if not self.others or (not runs.running and not len(runs.waiting)):
            return
        # Only the runs waiting before the read may be dropped: one queued meanwhile
        # (committed before it queued) may be missing from what the read saw.
        waited = set(runs.waiting)
        found = await asyncio.to_thread(self.store.runs.active_runs, host=runs.host)
        self.apply({run.id: run for run in found}, waited)

    def apply(self, active: dict[int, Run], waited: set[int]) -> None:
        """In the loop's thread: ``active``, this node's active runs in the store as read
        after ``waited``, the runs that waited here, were seen."""
        runs = self.dispatcher.runs
        dropped = False
        for run_id in list(runs.waiting):
            if run_id in waited and run_id not in active:  # cancelled through another node
                del runs.waiting[run_id]
                log.info("run %d: cancelled through another node before it started", run_id)
                dropped = True
        for run_id in list(runs.running):
            current = active.get(run_id)
            if current is None or run_id in runs.starting:
                continue  # ended (its watch records it), or its launch checks for itself
            requested = current.plan.cancel_requested
            if requested is None or run_id in runs.asked or run_id in runs.cancelling:
                continue
            log.info("run %d: cancelled through another node by %s", run_id, requested.cancelled_by)
            runs.running[run_id] = current
            runs.asked[run_id] = requested.detail()
            self.dispatcher.stop(run_id)
        if dropped:
            self.dispatcher.pump()
