"""Draining a node for maintenance (``jobdeck drain``), and undraining it.

The request is a mark on the node's record (with its deadline), audited. The node sees
it at its next heartbeat (:class:`Drainer`): it stops its singleton worker processes
(stop, then start elsewhere) and hands leadership over, so that another node fires the
schedules and starts the workers; its other worker processes stay until the new leader
runs as many of each worker as it wants (new before old), then stop (each with its
``stop_grace``), and at the drain's deadline at the latest. It lets the runs it has
finish, cancels those still running at the deadline through the normal cancel path, and
marks itself ``drained``: safe to stop. ``jobdeck undrain`` ends the mark; the node takes
part again (and may lead).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from jobdeck.store.node_records import Node
from jobdeck.store.ports import DataStore
from jobdeck.store.records import AuditEntry, Via

log = logging.getLogger(__name__)


class DrainError(Exception):
    """The node named is unknown or ambiguous; the message says which ones exist."""


def resolve_node(store: DataStore, given: str | None, default: str) -> Node:
    """The node ``given`` (its id, or the end of it after the host, e.g. ``e1a2b3``),
    or this host's and state dir's node ``default`` when none is given."""
    nodes = store.nodes.nodes()
    wanted = given or default
    exact = [n for n in nodes if n.id == wanted]
    if exact:
        return exact[0]
    found = [n for n in nodes if given and (n.id.endswith(":" + given) or n.host == given)]
    if len(found) == 1:
        return found[0]
    known = ", ".join(n.id for n in nodes) or "none"
    if not found:
        raise DrainError(f"no node {wanted!r} in this store (nodes: {known})")
    raise DrainError(f"{given!r} names several nodes ({', '.join(n.id for n in found)})")


def set_drain(
    store: DataStore,
    node_id: str,
    *,
    draining: bool,
    timeout: timedelta | None,
    actor: str,
    via: Via,
    now: datetime,
) -> Node:
    """Asks ``node_id`` to drain (``timeout``: when its runs are cancelled; None waits
    for them) or to take part again, audited in the same unit of work."""
    deadline = now + timeout if draining and timeout is not None else None
    with store.transaction() as tx:
        node = tx.nodes.set_drain(node_id, draining=draining, deadline=deadline)
        detail: dict[str, object] = {"host": node.host, "pid": node.pid}
        if draining:
            detail["timeout_s"] = timeout.total_seconds() if timeout is not None else None
        tx.audit.record_audit(
            AuditEntry(
                at=now,
                actor=actor,
                via=via,
                action="drain" if draining else "undrain",
                target=f"node {node_id}",
                detail=detail,
            )
        )
    return node


# How long a drain without a timeout keeps its worker processes for the new leader.
HANDOVER_MOST = timedelta(minutes=30)


class Handover(Protocol):
    """The worker side of a drain (the application wires the supervisor and the fence)."""

    def stop_singletons(self, now: datetime) -> None:
        """Stops this node's singleton processes (each with its ``stop_grace``)."""

    def singletons_gone(self) -> bool:
        """True once they are gone (their leases given back), or could not be waited
        for any longer (the fence stops them then)."""

    async def stop_all(self) -> None:
        """Stops every worker process of this node and waits until they are gone."""

    def begin(self, until: datetime) -> bool:
        """Keeps this node's other worker processes past its fence until ``until``;
        False when there is none."""

    def step(self, now: datetime, *, final: bool) -> bool:
        """Stops those the new leader's replicas replace (all when ``final``); True
        once none is left, and the handover ends."""


class Drainer:
    """A node's side of a drain, one step per heartbeat."""

    def __init__(
        self,
        store: DataStore,
        node_id: str,
        *,
        workers: Handover,
        resign: Callable[[], None],
        resume: Callable[[], None],
        cancel: Callable[[int, str], None],
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.workers = workers
        self.resign = resign
        self.resume = resume
        self.cancel = cancel
        self.phase: str | None = None  # None, "singletons", "waiting", "drained"
        self.cancelled = False
        self.handover_until: datetime | None = None  # while worker processes stay

    async def step(self, node: Node | None, now: datetime) -> None:
        if node is None:
            return
        # A handover goes on until its processes are gone (all stopped when undrained).
        final = not node.draining or (
            self.handover_until is not None and now >= self.handover_until
        )
        if self.handover_until is not None and self.workers.step(now, final=final):
            log.info("node %s: its worker processes are handed over", self.node_id)
            self.handover_until = None
        if not node.draining:
            if self.phase is not None:
                log.info("node %s: undrained, it takes part again", self.node_id)
                self.phase, self.cancelled = None, False
                self.resume()
            return
        if self.phase is None:
            log.info("node %s: draining: stopping its singleton workers", self.node_id)
            self.workers.stop_singletons(now)
            self.phase = "singletons"
        if self.phase == "singletons":  # waited for beat by beat: this node still leads
            if not self.workers.singletons_gone():
                return
            await self._hand_over(node, now)
            self.phase = "waiting"
        if self.phase != "waiting":
            return
        active = [r for r in self.store.runs.active_runs(host=self.node_id) if r.kind != "worker"]
        running = [r for r in active if r.status == "running"]
        if node.drain_deadline is not None and now >= node.drain_deadline and running:
            if not self.cancelled:
                log.warning(
                    "node %s: the drain's timeout passed: cancelling %d running run(s): %s",
                    self.node_id,
                    len(running),
                    [r.id for r in running],
                )
                for run in running:
                    self.cancel(run.id, "the node's drain timed out")
                self.cancelled = True
            return
        if not active and self.handover_until is None:
            with self.store.transaction() as tx:
                tx.nodes.mark_drained(self.node_id)
            self.phase = "drained"
            log.info("node %s: drained: safe to stop", self.node_id)

    async def _hand_over(self, node: Node, now: datetime) -> None:
        """Once the singletons are gone: the other worker processes stay for the node
        that takes over (there is one: a live node that does not drain), or stop now;
        then leadership is handed over."""
        until = node.drain_deadline or now + HANDOVER_MOST
        if self._successor(now) and self.workers.begin(until):
            self.handover_until = until
            log.info(
                "node %s: draining: handing leadership over; its worker processes stay "
                "until the new leader's run (at the latest until %s)",
                self.node_id,
                until.isoformat(),
            )
        else:
            log.info(
                "node %s: draining: stopping its workers, handing leadership over", self.node_id
            )
            await self.workers.stop_all()
        self.resign()

    def _successor(self, now: datetime) -> bool:
        """Whether another node may take the lead: one that beats and does not drain."""
        return any(
            n.id != self.node_id and not n.draining and now - n.heartbeat_at < n.lost_after
            for n in self.store.nodes.nodes()
        )
