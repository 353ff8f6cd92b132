"""The nodes aggregate in memory (see :mod:`jobdeck.store.memory`), with the semantics
of :mod:`jobdeck.store.nodes_sql`."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from jobdeck.store.errors import Fenced, NotFound
from jobdeck.store.node_records import LeaderLease, Node
from jobdeck.store.tables import as_utc


@dataclasses.dataclass
class NodeState:
    nodes: dict[str, Node] = dataclasses.field(default_factory=dict)
    lease: LeaderLease | None = None

    def copy(self) -> NodeState:
        return NodeState(nodes=dict(self.nodes), lease=self.lease)


class MemoryNodes:
    def __init__(self, state: NodeState) -> None:
        self._state = state

    def nodes(self) -> list[Node]:
        return sorted(self._state.nodes.values(), key=lambda n: (n.started_at, n.id))

    def node(self, node_id: str) -> Node | None:
        return self._state.nodes.get(node_id)

    def register_node(self, node: Node) -> Node:
        old = self._state.nodes.get(node.id)
        kept = (old.draining, old.drain_deadline) if old else (node.draining, node.drain_deadline)
        stored = dataclasses.replace(
            node,
            started_at=as_utc(node.started_at, "started_at"),
            heartbeat_at=as_utc(node.heartbeat_at, "heartbeat_at"),
            draining=kept[0],
            drain_deadline=kept[1],
            drained=False,
        )
        self._state.nodes[node.id] = stored
        return stored

    def beat(self, node_id: str, *, at: datetime) -> Node | None:
        node = self._state.nodes.get(node_id)
        if node is None:
            return None
        node = dataclasses.replace(node, heartbeat_at=as_utc(at, "at"))
        self._state.nodes[node_id] = node
        return node

    def set_drain(self, node_id: str, *, draining: bool, deadline: datetime | None) -> Node:
        node = self._state.nodes.get(node_id)
        if node is None:
            raise NotFound(f"no node {node_id!r}")
        node = dataclasses.replace(
            node,
            draining=draining,
            drain_deadline=as_utc(deadline, "deadline") if deadline else None,
            drained=False,
        )
        self._state.nodes[node_id] = node
        return node

    def mark_drained(self, node_id: str) -> None:
        node = self._state.nodes.get(node_id)
        if node is not None and node.draining:
            self._state.nodes[node_id] = dataclasses.replace(node, drained=True)

    def forget_node(self, node_id: str) -> bool:
        return self._state.nodes.pop(node_id, None) is not None

    def leader(self) -> LeaderLease | None:
        return self._state.lease

    def acquire_leadership(
        self, node_id: str, *, now: datetime, expires_at: datetime, own: bool = False
    ) -> LeaderLease | None:
        at, until = as_utc(now, "now"), as_utc(expires_at, "expires_at")
        current = self._state.lease
        mine = own and current is not None and current.holder == node_id
        if current is not None and current.expires_at > at and not mine:
            return None
        token = 1 if current is None else current.token + 1
        self._state.lease = LeaderLease(node_id, token, at, until)
        return self._state.lease

    def renew_leadership(
        self, node_id: str, token: int, *, now: datetime, expires_at: datetime
    ) -> LeaderLease | None:
        current = self._state.lease
        if current is None or current.token != token or not current.held_by(node_id, now):
            return None
        self._state.lease = dataclasses.replace(
            current, expires_at=as_utc(expires_at, "expires_at")
        )
        return self._state.lease

    def resign_leadership(self, node_id: str, token: int, *, now: datetime) -> bool:
        current = self._state.lease
        if current is None or current.token != token or not current.held_by(node_id, now):
            return False
        self._state.lease = dataclasses.replace(current, expires_at=as_utc(now, "now"))
        return True

    def fence(self, node_id: str, token: int, *, now: datetime) -> None:
        current = self._state.lease
        if current is None or current.token != token or not current.held_by(node_id, now):
            raise Fenced(node_id, token, current)
