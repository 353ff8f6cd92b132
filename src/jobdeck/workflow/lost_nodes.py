"""The runs of a node that went silent: recorded ``lost`` by the leader once the node's
last heartbeat is older than the cluster's deadline (default twice the lease), and
notified. A node that comes back before adopts its runs itself (it finds them active,
with its own host, at its start: :mod:`jobdeck.workflow.recovery`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from jobdeck.store import DataStore, Tx
from jobdeck.store.errors import Fenced, RunAlreadyEnded
from jobdeck.store.records import Run
from jobdeck.workflow.approvals import AWAITING
from jobdeck.workflow.placement import DISPATCHED, LEADER, PLACED_KINDS

log = logging.getLogger(__name__)

REASON = "node_lost"


def silent_nodes(store: DataStore, me: str, now: datetime, deadline: timedelta) -> list[str]:
    """The nodes, other than ``me``, whose last heartbeat is older than ``deadline``."""
    return [
        node.id
        for node in store.nodes.nodes()
        if node.id != me and node.heartbeat_at + deadline <= now
    ]


def record_lost(
    store: DataStore,
    hosts: list[str],
    now: datetime,
    fence: Callable[[Tx, datetime], None],
    announce: Callable[[Run], None],
    retry: Callable[[Tx, Run, datetime], Run | None] | None = None,
) -> list[int]:
    """Every active run of ``hosts`` ends ``lost`` (reason ``node_lost``), in one fenced
    unit of work with the retries ``retry`` records of them (their policy's
    ``retry.lost``); each is then announced. Returns their ids. A pending run that never
    reached the node's executor is not lost: it is placed on the leader, which runs it."""
    found = [run for host in hosts for run in store.runs.active_runs(host=host)]
    if not found:
        return []
    ended: list[Run] = []
    try:
        with store.transaction() as tx:
            fence(tx, now)
            for run in found:
                if unlaunched(store, run):
                    tx.runs.take_run(run.id, LEADER, at=now, only_from=run.host)
                    continue
                try:
                    ended.append(
                        tx.runs.update_run(
                            run.id,
                            at=now,
                            event="lost",
                            status="lost",
                            reason=REASON,
                            ended_at=now,
                            detail={"lost_node": run.host},
                        )
                    )
                except RunAlreadyEnded:
                    continue
                if run.kind == "worker":
                    tx.workers.release_lease(run.job, run.id)
                elif retry is not None:
                    retry(tx, ended[-1], now)
    except Fenced:
        return []
    for run in ended:
        log.warning("run %d of node %s recorded lost: the node is silent", run.id, run.host)
        announce(run)
    return [run.id for run in ended]


def unlaunched(store: DataStore, run: Run) -> bool:
    """Whether ``run`` is pending and was never handed to its node's executor."""
    if run.status != "pending" or run.kind not in PLACED_KINDS or run.reason == AWAITING:
        return False  # one that waits for approval expires where it was asked for
    return all(event.type != DISPATCHED for event in store.runs.events(run.id))
