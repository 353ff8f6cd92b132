"""A drain's steps by an injected clock, on the memory store, with the worker side
recorded: singletons stop before leadership is handed over; the other worker processes
stay past the fence until the new leader's replicas replace them (bounded by the drain's
deadline, and by a lease when the engine dies); the node is drained only after that."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobdeck.clock import FakeClock
from jobdeck.cluster.drain import Drainer
from jobdeck.cluster.leadership import Leadership, Timing
from jobdeck.cluster.role import ClusterRole
from jobdeck.execute.spec import fence_until
from jobdeck.store.memory import MemoryStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=6)


class Workers:
    """The worker side, as the drain drives it."""

    def __init__(self, replicas: tuple[int, ...]) -> None:
        self.replicas = replicas
        self.singletons = 1
        self.calls: list[str] = []
        self.replaced = False
        self.kept: tuple[int, ...] = ()

    def stop_singletons(self, now: datetime) -> None:
        self.calls.append("stop singletons")

    def singletons_gone(self) -> bool:
        return self.singletons == 0

    async def stop_all(self) -> None:
        self.calls.append("stop all")

    def begin(self, until: datetime) -> bool:
        self.calls.append(f"keep until {until:%H:%M:%S}")
        self.kept = self.replicas
        return bool(self.replicas)

    def step(self, now: datetime, *, final: bool) -> bool:
        if final or self.replaced:
            self.calls.append("final" if final else "replaced")
            self.kept = ()
            return True
        return False


def drainer(store: MemoryStore, workers: Workers, calls: list[str]) -> Drainer:
    return Drainer(
        store,
        "h1:a",
        workers=workers,
        resign=lambda: calls.append("resign"),
        resume=lambda: calls.append("resume"),
        cancel=lambda run_id, why: calls.append(f"cancel {run_id}"),
    )


def setup(others: int = 1) -> MemoryStore:
    store = MemoryStore()
    timing = Timing(LEASE)
    Leadership(store, "h1:a", version="1", timing=timing, host="h1", pid=1).register(T0)
    for i in range(others):
        Leadership(store, f"h{i + 2}:b", version="1", timing=timing, host="h", pid=2).register(T0)
    return store


def step(d: Drainer, store: MemoryStore, now: datetime) -> None:
    asyncio.run(d.step(store.nodes.node("h1:a"), now))


def test_singletons_stop_first_then_leadership_moves_and_replicas_stay_until_replaced() -> None:
    store = setup()
    workers = Workers((7, 8))
    d = drainer(store, workers, workers.calls)
    with store.transaction() as tx:
        tx.nodes.set_drain("h1:a", draining=True, deadline=T0 + timedelta(minutes=5))
    step(d, store, T0)
    assert workers.calls == ["stop singletons"]  # still leads while its singleton stops
    step(d, store, T0 + timedelta(seconds=2))
    assert workers.calls == ["stop singletons"]
    workers.singletons = 0
    step(d, store, T0 + timedelta(seconds=4))
    assert workers.calls == ["stop singletons", "keep until 09:05:00", "resign"]
    step(d, store, T0 + timedelta(seconds=6))  # the new leader's replicas not up yet
    assert store.nodes.node("h1:a").drained is False  # type: ignore[union-attr]
    workers.replaced = True
    step(d, store, T0 + timedelta(seconds=8))
    assert workers.calls[-1] == "replaced"
    assert store.nodes.node("h1:a").drained is True  # type: ignore[union-attr]


def test_the_handover_ends_at_the_drains_deadline_and_without_a_successor_workers_stop() -> None:
    store = setup()
    workers = Workers((7,))
    workers.singletons = 0
    d = drainer(store, workers, workers.calls)
    with store.transaction() as tx:
        tx.nodes.set_drain("h1:a", draining=True, deadline=T0 + timedelta(seconds=30))
    step(d, store, T0)
    step(d, store, T0 + timedelta(seconds=29))
    assert "final" not in workers.calls
    step(d, store, T0 + timedelta(seconds=30))
    assert workers.calls[-1] == "final"
    # Alone (no other live node to take over): stop, then resign, as before.
    alone = setup(others=0)
    solo = Workers((7,))
    solo.singletons = 0
    d = drainer(alone, solo, solo.calls)
    with alone.transaction() as tx:
        tx.nodes.set_drain("h1:a", draining=True, deadline=None)
    step(d, alone, T0)
    assert solo.calls == ["stop singletons", "stop all", "resign"]
    assert alone.nodes.node("h1:a").drained is True  # type: ignore[union-attr]


def test_a_handover_in_the_fence_file_is_rolled_a_lease_at_a_time(tmp_path: Path) -> None:
    store = setup(others=0)
    clock = FakeClock(T0)
    leadership = Leadership(store, "h1:a", version="1", timing=Timing(LEASE), host="h1", pid=1)
    role = ClusterRole(leadership, clock, tmp_path, on_acquired=lambda: None, on_lost=lambda: None)
    role.start()
    role.hand_over((7, 8), T0 + timedelta(minutes=30))
    role.resign()
    fence = tmp_path / "fence.json"
    assert fence_until(fence, "9") == 0.0  # not handed over: stops at once
    # A handed over replica stays a lease at a time (the engine's crash ends it then).
    assert fence_until(fence, "7") == (T0 + LEASE).timestamp()
    clock.advance(timedelta(seconds=2))
    role._write_fence()  # a beat
    assert fence_until(fence, "8") == (T0 + timedelta(seconds=8)).timestamp()
    role.hand_over((), None)
    assert fence_until(fence, "7") == 0.0
    assert "handover" not in json.loads(fence.read_text())


def test_an_undrain_during_a_handover_stops_the_handed_over_processes() -> None:
    store = setup()
    workers = Workers((7, 8))
    workers.singletons = 0
    d = drainer(store, workers, workers.calls)
    with store.transaction() as tx:
        tx.nodes.set_drain("h1:a", draining=True, deadline=T0 + timedelta(minutes=5))
    step(d, store, T0)
    assert workers.calls[-1] == "resign"
    with store.transaction() as tx:
        tx.nodes.set_drain("h1:a", draining=False, deadline=None)
    step(d, store, T0 + timedelta(seconds=2))
    # Undrained: it takes part again (and may lead), without the processes it handed over.
    assert workers.calls[-2:] == ["final", "resume"]
    assert d.handover_until is None
