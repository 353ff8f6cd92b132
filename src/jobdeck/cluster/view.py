"""What `jobdeck nodes`, the API and the dashboard show of the cluster's nodes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from jobdeck.store.node_records import LeaderLease, Node
from jobdeck.store.ports import NodeReads, RunReads
from jobdeck.store.records import Run

Role = Literal["leader", "standby", "draining", "drained", "lost"]


def role_of(node: Node, lease: LeaderLease | None, now: datetime) -> Role:
    """``lost`` once silent past its deadline; else ``drained`` / ``draining`` while a
    drain asks; else ``leader`` for the holder of the live lease; else ``standby``."""
    if node.heartbeat_at + node.lost_after <= now:
        return "lost"
    if node.draining:
        return "drained" if node.drained else "draining"
    if lease is not None and lease.held_by(node.id, now):
        return "leader"
    return "standby"


def node_rows(
    nodes: Sequence[Node], lease: LeaderLease | None, active: Sequence[Run], now: datetime
) -> list[dict[str, Any]]:
    """One row per node: id, host, pid, version, role, heartbeat age, its running runs
    and worker replicas, its drain."""
    running = Counter(r.host for r in active if r.status == "running" and r.kind != "worker")
    replicas = Counter(r.host for r in active if r.status == "running" and r.kind == "worker")
    return [
        {
            "id": node.id,
            "host": node.host,
            "pid": node.pid,
            "version": node.version,
            "role": role_of(node, lease, now),
            "started_at": node.started_at.isoformat(),
            "heartbeat_age_s": round((now - node.heartbeat_at).total_seconds(), 1),
            "running_runs": running.get(node.id, 0),
            "replicas": replicas.get(node.id, 0),
            "draining": node.draining,
            "drain_deadline": node.drain_deadline.isoformat() if node.drain_deadline else None,
            "url": node.url,
            "token": lease.token if lease is not None and lease.holder == node.id else None,
        }
        for node in nodes
    ]


def read_nodes(nodes: NodeReads, runs: RunReads, now: datetime) -> list[dict[str, Any]]:
    return node_rows(nodes.nodes(), nodes.leader(), runs.active_runs(), now)
