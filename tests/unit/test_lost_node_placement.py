"""The runs of a lost node: those that never reached its executor are placed on the
leader (which runs them), the others are recorded lost; and the leader's pick-up takes
the runs placed on it, once, fenced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobdeck.store import Tx
from jobdeck.store.errors import Fenced
from jobdeck.store.memory import MemoryStore
from jobdeck.store.records import Run
from jobdeck.workflow.lost_nodes import record_lost
from jobdeck.workflow.placement import DISPATCHED, LEADER, take_placed

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEAD = "web-1:aaaa"


def create(
    store: MemoryStore, status: str = "pending", reason: str | None = None, kind: str = "command"
) -> Run:
    with store.transaction() as tx:
        return tx.runs.create_run(
            job="push",
            kind=kind,  # type: ignore[arg-type]
            trigger="manual",
            status=status,  # type: ignore[arg-type]
            reason=reason,
            created_at=T0,
            host=DEAD,
        )


def allowed(tx: Tx, now: datetime) -> None:
    return None


def test_a_lost_nodes_runs_that_never_launched_are_placed_on_the_leader() -> None:
    store = MemoryStore()
    queued = create(store)
    launching = create(store)
    with store.transaction() as tx:
        tx.runs.append_events([launching.id], at=T0, type=DISPATCHED, detail={})
    running = create(store, "running")
    awaiting = create(store, reason="approval")
    monitored = create(store, kind="monitor")  # not the driver's to dispatch
    announced: list[Run] = []
    later = T0 + timedelta(minutes=1)
    lost = record_lost(store, [DEAD], later, allowed, announced.append)
    assert sorted(lost) == sorted([launching.id, running.id, awaiting.id, monitored.id])
    assert [r.id for r in announced] == lost
    moved = store.runs.run(queued.id)
    assert moved is not None
    assert (moved.host, moved.status) == (LEADER, "pending")
    # The leader's pick-up takes it, once.
    taken = take_placed(store, "web-2:bbbb", later, allowed, lambda run: True)
    assert [r.id for r in taken] == [queued.id]
    assert take_placed(store, "web-3:cccc", later, allowed, lambda run: True) == []
    final = store.runs.run(queued.id)
    assert final is not None
    assert final.host == "web-2:bbbb"


def test_a_fenced_pick_up_takes_nothing() -> None:
    store = MemoryStore()
    with store.transaction() as tx:
        placed = tx.runs.create_run(
            job="push", kind="command", trigger="manual", status="pending", created_at=T0,
            host=LEADER,
        )  # fmt: skip

    def fenced(tx: Tx, now: datetime) -> None:
        raise Fenced("web-2:bbbb", 1, "not the leader")

    assert take_placed(store, "web-2:bbbb", T0, fenced, lambda run: True) == []
    kept = store.runs.run(placed.id)
    assert kept is not None
    assert kept.host == LEADER
