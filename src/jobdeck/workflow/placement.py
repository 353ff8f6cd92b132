"""Where a run asked for on a node executes: on the leader.

On a store shared by several engines (PostgreSQL), every run executes on the node that
leads, so that overlap policies, ``buffer_one`` and pools' ``max_concurrency`` are
decided in one place. A run asked for through a node that does not lead (a standby, a
draining or drained node) is recorded ``pending`` with the host :data:`LEADER`, a
placement marker no node's id can be (a node's id holds a colon); the leader's
pick-up (:func:`take_placed`, twice a second) takes each such run with one fenced,
conditional write (``take_run``, event ``taken``) and dispatches it as its own. A new
leader takes those left by a failover. On one engine (SQLite) runs execute where they
are asked for, as they always did.

The same marker hands over runs that never launched: the waiting runs of a draining
node (:func:`hand_over_waiting`) and the pending, never dispatched runs of a lost node
(:mod:`jobdeck.workflow.lost_nodes`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from jobdeck.clock import Clock
from jobdeck.store import DataStore, Tx
from jobdeck.store.errors import Fenced
from jobdeck.store.records import Run
from jobdeck.workflow.state import Runs

log = logging.getLogger(__name__)

LEADER = "leader"  # the host of a run that waits for whoever leads to take it
DISPATCHED = "dispatched"  # the event of a run handed to the executor (in a cluster)
PLACED_KINDS = ("schedule", "command")  # the runs the driver dispatches (not monitors')
INTERVAL = 0.5  # how often the leader looks for runs placed on it, in seconds
ELSEWHERE_TTL = 0.25  # how long the runs running on other nodes are taken as read


def waits_for_leader(run: Run) -> bool:
    """Whether ``run`` is placed on the leader and not taken yet."""
    return run.host == LEADER and run.status == "pending"


def take_placed(
    store: DataStore,
    host: str,
    now: datetime,
    fence: Callable[[Tx, datetime], None] | None,
    ready: Callable[[Run], bool],
) -> list[Run]:
    """The runs placed on the leader that ``ready`` accepts, moved to ``host`` (the
    leader) in one fenced unit of work; those another node took meanwhile are left."""
    placed = [run for run in store.runs.active_runs(host=LEADER) if ready(run)]
    if not placed:
        return []
    taken: list[Run] = []
    try:
        with store.transaction() as tx:
            if fence is not None:
                fence(tx, now)
            for run in placed:
                got = tx.runs.take_run(run.id, host, at=now, only_from=LEADER)
                if got is not None:
                    taken.append(got)
    except Fenced:
        return []
    for run in taken:
        log.info("run %d of %s: taken from the nodes' requests, runs here", run.id, run.job)
    return taken


def hand_over_waiting(store: DataStore, host: str, run_ids: list[int], now: datetime) -> list[int]:
    """Runs of ``host`` that never launched, placed on the leader (a drain); the ids of
    those moved (a run that started or ended meanwhile stays)."""
    moved: list[int] = []
    if not run_ids:
        return moved
    with store.transaction() as tx:
        for run_id in run_ids:
            if tx.runs.take_run(run_id, LEADER, at=now, only_from=host) is not None:
                moved.append(run_id)
    return moved


class Placement:
    """A clustered engine's part in placing runs: as the leader, it takes the runs
    placed on it (:meth:`run`) and counts those running on other nodes; draining, it
    hands its waiting runs over."""

    def __init__(
        self,
        store: DataStore,
        host: str,
        clock: Clock,
        leads: Callable[[], bool],
        take: Callable[[], list[Run]],
    ) -> None:
        self.store = store
        self.clock = clock
        self.host = host
        self.leads = leads
        self.take = take
        self._elsewhere: tuple[float, list[Run]] = (0.0, [])
        # Whether another node is alive (registered, not silent past its deadline);
        # until the first look, assumed.
        self.shared = True

    async def run(self) -> None:
        """The leader takes the runs asked for through other nodes (or handed over by
        a draining or lost one) within half a second; a new leader, those left."""
        while True:
            await asyncio.sleep(INTERVAL)
            if self.leads():
                self.shared = await asyncio.to_thread(self.others_alive)
                await asyncio.to_thread(self.take)

    def others_alive(self) -> bool:
        """Whether a node other than this one is registered and not lost. A node alone
        neither marks its dispatches nor reads other nodes' runs: its run path is one
        engine's. (A node that joins is seen within half a second.)"""
        now = self.clock.now()
        return any(
            node.id != self.host and node.heartbeat_at + node.lost_after > now
            for node in self.store.nodes.nodes()
        )

    def running_elsewhere(self) -> list[Run]:
        """The runs running on other nodes (a fenced old leader's, a drained node's),
        read at most every quarter of a second: they count for overlap and pools here."""
        at, found = self._elsewhere
        now = time.monotonic()
        if now - at >= ELSEWHERE_TTL:
            found = [
                run
                for run in self.store.runs.active_runs()
                if run.status == "running" and run.kind in PLACED_KINDS
                and run.host not in (self.host, LEADER)
            ]  # fmt: skip
            self._elsewhere = (now, found)
        return found

    def hand_over_waiting(self, runs: Runs, now: datetime) -> None:
        """A draining node takes no new runs: those of its runs that wait (never
        launched) are placed on the leader, which takes and starts them. In the
        engine's loop's thread (where ``runs`` lives)."""
        ids = [run_id for run_id in runs.waiting if run_id not in runs.asked]
        for run_id in hand_over_waiting(self.store, self.host, ids, now):
            del runs.waiting[run_id]
            log.info("draining: run %d handed over to the leader", run_id)
