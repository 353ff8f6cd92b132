"""The store's interface for the cluster: its nodes and the leader's lease (part of
:mod:`jobdeck.store.ports`, which re-exports it)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from jobdeck.store.node_records import LeaderLease, Node

# -- nodes: the engines of a cluster, and the leader's lease -----------------------------


class NodeReads(Protocol):
    def nodes(self) -> list[Node]:
        """Every registered node, oldest start first."""
        ...

    def node(self, node_id: str) -> Node | None: ...

    def leader(self) -> LeaderLease | None:
        """The leader's lease as it stands (it may have expired); None if never taken."""
        ...


class Nodes(NodeReads, Protocol):
    def register_node(self, node: Node) -> Node:
        """Records ``node`` (with the URL it advertises), or replaces the record of the
        same id (a restart): its drain is kept, its ``drained`` mark is not."""
        ...

    def beat(self, node_id: str, *, at: datetime) -> Node | None:
        """The node's heartbeat at ``at``; None when the node is not registered."""
        ...

    def set_drain(self, node_id: str, *, draining: bool, deadline: datetime | None) -> Node:
        """Starts (or ends, ``draining=False``) the drain of a node; :class:`NotFound`."""
        ...

    def mark_drained(self, node_id: str) -> None:
        """The draining node has nothing left running: safe to stop."""
        ...

    def forget_node(self, node_id: str) -> bool:
        """Removes a node's record (it stopped for good); True if there was one."""
        ...

    def acquire_leadership(
        self, node_id: str, *, now: datetime, expires_at: datetime, own: bool = False
    ) -> LeaderLease | None:
        """Takes the leader's lease when nobody holds it or it expired at ``now`` (its
        holder's too), with the next fencing token; None while another lease is live.
        ``own``: also a live lease of ``node_id`` itself (the node restarted, and its
        earlier life, which had the same id, is gone)."""
        ...

    def renew_leadership(
        self, node_id: str, token: int, *, now: datetime, expires_at: datetime
    ) -> LeaderLease | None:
        """Extends the lease that ``node_id`` holds with ``token``, if still live at
        ``now``; None when it was lost (expired or taken: acquire it anew)."""
        ...

    def resign_leadership(self, node_id: str, token: int, *, now: datetime) -> bool:
        """Lets the lease expire at ``now`` (a drain or a stop hands leadership over);
        True if ``node_id`` held it with ``token``."""
        ...

    def fence(self, node_id: str, token: int, *, now: datetime) -> None:
        """Raises :class:`jobdeck.store.errors.Fenced` unless ``node_id`` holds a live
        lease with ``token`` at ``now``. A write that only the leader may make calls it
        in its unit of work: on PostgreSQL the lease row stays locked against a new
        acquisition until the unit of work ends."""
        ...
