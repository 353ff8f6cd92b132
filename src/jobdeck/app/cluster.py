"""The engine's side of its store's cluster: its node, the leader's lease, the drain,
the runs handed to the leader, the notices' outbox, and what changes when this node
starts or stops leading (see docs/ha.md).

Every engine is a node. On PostgreSQL, where several engines may share the store, only
the leader fires, catches up, keeps the workers and sends the notices left due, with
fenced writes; on SQLite (one engine) the node leads alone and nothing is gated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from jobdeck.app.options import SHUTDOWN_SLACK, Options
from jobdeck.clock import Clock
from jobdeck.cluster.drain import Drainer
from jobdeck.cluster.leadership import Leadership, Timing
from jobdeck.cluster.role import ClusterRole
from jobdeck.outbox import Outbox
from jobdeck.schedule.leader import LeaderFiring
from jobdeck.schedule.scheduler import Scheduler
from jobdeck.store import Run, Store, Tx
from jobdeck.workers.handover import WorkerHandover
from jobdeck.workers.supervisor import Supervisor
from jobdeck.workflow.driver import Applied, RunDriver
from jobdeck.workflow.lost_nodes import record_lost, silent_nodes
from jobdeck.workflow.placement import Placement
from jobdeck.workflow.refusals import CancelRefused

log = logging.getLogger("jobdeck")

Notify = Callable[[list[str], Run, str], None]


class ClusterSide:
    """This engine as a node of its store's cluster."""

    def __init__(
        self,
        options: Options,
        store: Store,
        clock: Clock,
        host: str,
        state_dir: Path,
        *,
        driver: RunDriver,
        supervisor: Supervisor,
        scheduler: Scheduler,
        firing: LeaderFiring,
        notify: Notify,
        applied: Callable[[], Applied | None],
    ) -> None:
        """Every engine is a node of its store's cluster. On PostgreSQL, where several
        engines may share the store, only the leader fires, catches up and keeps the
        workers, with fenced writes, and its worker processes stop at its fence; on
        SQLite (one engine) the node leads alone and nothing is gated."""
        self.store = store
        self.clock = clock
        self.host = host
        self.state_dir = state_dir
        self.driver = driver
        self.supervisor = supervisor
        self.scheduler = scheduler
        self.firing = firing
        self.applied = applied
        timing = Timing(options.lease, options.lost_after)
        self.leadership = Leadership(
            self.store,
            self.host,
            version=options.version,
            timing=timing,
            url=options.advertise_url or options.public_url,
        )
        self.role = ClusterRole(
            self.leadership,
            self.clock,
            self.state_dir,
            on_acquired=self._became_leader,
            on_lost=self._stopped_leading,
            on_leading=self._sweep_lost_nodes,
            on_beat=self._drain_step,
        )
        self.drainer = Drainer(
            self.store,
            self.host,
            workers=WorkerHandover(
                self.supervisor,
                keep=self.role.hand_over,
                leader=self._leader_now,
                stop_all=self._stop_workers_for_drain,
                within=self.stop_within,
            ),
            resign=self.role.resign,
            resume=self._undrained,
            cancel=self._cancel_for_drain,
        )
        self.clustered = self.store.engine.dialect.name == "postgresql"
        self.placement = Placement(
            self.store, self.host, self.clock, self.leads, self.driver.take_placed
        )
        self.driver.monitors.leads = self.leads  # missed pings and timeouts: the leader's
        self.outbox = Outbox(self.store, self.clock, notify, self.leads)
        if self.clustered:
            # Runs asked for on any node execute on the leader (jobdeck.workflow.placement).
            self.driver.executes = self.leads
            self.driver.dispatcher.elsewhere = self.placement.running_elsewhere
            # Another node alive: marks written, and the store asked before a launch (a
            # cancel through another node).
            self.driver.dispatcher.shared = lambda: self.placement.shared
            self.outbox.fence = self.leadership.fence
            self.driver.fence = self.leadership.fence
            self.driver.dispatcher.outcomes.fence = self.leadership.fence  # lost runs' retries
            self.driver.monitors.fence = self.leadership.fence
            self.supervisor.leads = self.leadership.leads
            self.supervisor.fence = self.leadership.fence
            self.supervisor.fence_file = self.role.fence_file
            self.supervisor.lease_ttl = timing.lease
        else:  # one engine: it keeps its workers unless drained
            self.supervisor.leads = lambda now: not self.leadership.draining

    def leads(self) -> bool:
        """Whether this engine does what only one may (on SQLite: unless drained)."""
        if not self.clustered:
            return not self.leadership.draining
        return self.leadership.leads(self.clock.now())

    def _became_leader(self) -> None:
        """Slots that fell due while no node led are caught up by each schedule's
        policy (claimed in the store: none runs twice); the workers are started."""
        token = self.leadership.token
        applied = self.applied()
        if applied is not None:
            self.scheduler.load(applied.catalog.schedules, catch_up=True)
        self.firing.caught_up(token)  # the timer's fires of this tenure go ahead
        self.supervisor.wake()

    def _stopped_leading(self) -> None:
        """Self-fencing: the worker processes stop by their fence (their shims see it);
        the supervisor starts nothing until this node leads again."""
        self.supervisor.wake()

    async def _drain_step(self, now: datetime) -> None:
        nodes = await asyncio.to_thread(self.store.nodes.nodes)
        node = next((n for n in nodes if n.id == self.host), None)
        # Cancels through other nodes are looked for only while another node lives.
        self.driver.cancels.others = any(
            n.id != self.host and n.heartbeat_at + n.lost_after > now for n in nodes
        )
        if self.clustered and node is not None and node.draining:
            self.placement.hand_over_waiting(self.driver.runs, now)
        await self.drainer.step(node, now)

    def stop_within(self) -> float:
        applied = self.applied()
        catalog = applied.catalog if applied is not None else None
        graces = [w.stop_grace.total_seconds() for w in catalog.workers.values()] if catalog else []
        return max(graces, default=30.0) + SHUTDOWN_SLACK

    def _leader_now(self, now: datetime) -> str | None:
        lease = self.store.nodes.leader()
        return lease.holder if lease is not None and lease.expires_at > now else None

    async def _stop_workers_for_drain(self) -> None:
        within = self.stop_within()
        try:
            await asyncio.wait_for(self.supervisor.stop_all(within, "shutdown"), within + 5)
        except TimeoutError:
            log.warning("draining: some worker processes did not stop in time")

    def _undrained(self) -> None:
        applied = self.applied()
        if applied is not None:
            self.supervisor.load(applied)

    def _cancel_for_drain(self, run_id: int, why: str) -> None:
        try:
            self.driver.cancel(run_id, by="drain", why=why)
        except (KeyError, CancelRefused) as exc:
            log.info("draining: run %d not cancelled: %s", run_id, exc)

    def _sweep_lost_nodes(self, now: datetime) -> None:
        if not self.clustered:
            return
        timing = self.leadership.timing
        silent = silent_nodes(self.store, self.host, now, timing.lost_deadline)
        if not silent:
            return
        outcomes = self.driver.dispatcher.outcomes
        retries: list[Run] = []

        def retry(tx: Tx, lost: Run, at: datetime) -> Run | None:
            again = outcomes.retry(tx, lost, at)  # retry.lost: on this node, the leader
            if again is not None:
                retries.append(again)
            return again

        def announce(lost: Run) -> None:
            if not any(again.retry_of == lost.id for again in retries):
                outcomes.notify_ended(lost)  # a retried attempt is not the fire's end

        if not record_lost(self.store, silent, now, self.leadership.fence, announce, retry):
            return  # nothing lost, or fenced: nothing was recorded, no retry either
        for again in retries:
            log.info("run %s: lost with its node; retried as run %d", again.retry_of, again.id)
            self.driver.hand_over(again)
