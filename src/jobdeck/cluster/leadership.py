"""This engine's part in a cluster: its node record, its heartbeat and the leader's lease.

Every ``jobdeck serve`` registers as a node and beats; one of them holds the leader's
lease (:class:`jobdeck.store.node_records.LeaderLease`), renewed at a third of its length.
Only the leader claims due slots, catches up, and keeps the workers at their replicas;
each of those writes carries its fencing token (:meth:`Leadership.fence`), which the store
refuses once a newer leader took over. A node believes it leads only until a margin before
the lease it last renewed runs out, by its own clock, and its worker processes (whose run
shims read the same deadline, ``fence.json``) stop by then: a leader that cannot renew
fences itself before anybody else may take over.

Time is passed in (``now``): the engine's loop (:meth:`Leadership.step`) reads its clock.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from jobdeck.store.errors import Fenced, StoreError
from jobdeck.store.node_records import LeaderLease, Node
from jobdeck.store.ports import DataStore, Tx

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=10)

Change = Literal["acquired", "kept", "lost", "standby"]


@dataclass(frozen=True)
class Timing:
    """The lease's length, how often it is renewed, and when a silent node is lost."""

    lease: timedelta = DEFAULT_LEASE
    lost_after: timedelta | None = None  # default: twice the lease

    @property
    def renew_every(self) -> timedelta:
        return self.lease / 3

    @property
    def margin(self) -> timedelta:
        """How long before its lease runs out a leader stops acting as one."""
        return self.lease / 6

    @property
    def lost_deadline(self) -> timedelta:
        return self.lost_after if self.lost_after is not None else 2 * self.lease


class Leadership:
    """The node ``node_id`` of the store's cluster, leader or standby."""

    def __init__(
        self,
        store: DataStore,
        node_id: str,
        *,
        version: str,
        timing: Timing | None = None,
        host: str | None = None,
        pid: int | None = None,
        url: str | None = None,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.version = version
        self.timing = timing or Timing()
        self.host = host or socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self.url = url  # where this node's API answers, for the other nodes
        self.lease: LeaderLease | None = None  # held by this node, as last renewed
        self.draining = False
        self.closing = False  # a clean stop: it resigns, and takes the lease no more

    # -- the node -----------------------------------------------------------------------

    def register(self, now: datetime) -> Node:
        """Records this node (again, after a restart: a drain asked before stays)."""
        node = self._node(now)
        with self.store.transaction() as tx:
            stored = tx.nodes.register_node(node)
        self.draining = stored.draining
        return stored

    def _node(self, now: datetime) -> Node:
        return Node(
            self.node_id,
            self.host,
            self.pid,
            self.version,
            now,
            now,
            lost_after=self.timing.lost_deadline,
            url=self.url,
        )

    # -- the lease ----------------------------------------------------------------------

    @property
    def token(self) -> int | None:
        return self.lease.token if self.lease is not None else None

    def holds(self, now: datetime) -> bool:
        """True while this node holds the lease, more than the margin from its end."""
        lease = self.lease
        return lease is not None and now < lease.expires_at - self.timing.margin

    def leads(self, now: datetime) -> bool:
        """True while this node may act as the leader: it holds the lease and is not
        draining (a draining leader only stops its workers, then resigns)."""
        return self.holds(now) and not self.draining

    def fence_deadline(self) -> datetime | None:
        """When this node stops acting as the leader unless it renews (None: not now)."""
        lease = self.lease
        return None if lease is None else lease.expires_at - self.timing.margin

    def step(self, now: datetime, *, own_restart: bool = False) -> Change:
        """One heartbeat: renew the lease held, or try to acquire a free one (unless
        draining). ``now`` is read before the store is reached, so that the deadline
        this node believes in never outlasts the lease the store records."""
        until = now + self.timing.lease
        was = self.lease
        try:
            with self.store.transaction() as tx:
                node = tx.nodes.beat(self.node_id, at=now)
                if node is None:  # forgotten meanwhile: register again
                    node = tx.nodes.register_node(self._node(now))
                self.draining = node.draining
                held = was is not None and self.holds(now)
                if was is not None and held:
                    self.lease = tx.nodes.renew_leadership(
                        self.node_id, was.token, now=now, expires_at=until
                    )
                else:
                    self.lease = None
                if self.lease is None and not self.draining and not self.closing:
                    self.lease = tx.nodes.acquire_leadership(
                        self.node_id, now=now, expires_at=until, own=own_restart
                    )
        except StoreError as exc:
            log.warning("the leader's lease: %s", exc)
            self.lease = was if was is not None and self.holds(now) else None
        return self._change(was, now)

    def _change(self, was: LeaderLease | None, now: datetime) -> Change:
        lease = self.lease
        if lease is not None and (was is None or was.token != lease.token):
            log.info("node %s leads the cluster (token %d)", self.node_id, lease.token)
            return "acquired"
        if lease is not None:
            return "kept"
        if was is not None:
            log.warning("node %s no longer leads the cluster", self.node_id)
            return "lost"
        return "standby"

    def lapse(self, now: datetime) -> bool:
        """Forgets a lease that this node could not renew in time (self-fencing);
        True when it did."""
        if self.lease is not None and not self.holds(now):
            log.warning("node %s could not renew its lease: it stops leading", self.node_id)
            self.lease = None
            return True
        return False

    def resign(self, now: datetime) -> bool:
        """Hands leadership over at once (a drain, a stop); the caller stopped first
        what only the leader may run. True if this node led."""
        lease, self.lease = self.lease, None
        if lease is None:
            return False
        with self.store.transaction() as tx:
            return tx.nodes.resign_leadership(self.node_id, lease.token, now=now)

    def fence(self, tx: Tx, now: datetime) -> None:
        """Called in a unit of work that only the leader may commit: raises
        :class:`Fenced` unless this node leads with the newest token."""
        lease = self.lease
        if lease is None or not self.leads(now):
            raise Fenced(self.node_id, lease.token if lease else 0, "not the leader")
        tx.nodes.fence(self.node_id, lease.token, now=now)
