"""A node's leadership by an injected clock, on the memory store: acquisition, renewal
at a third of the lease, self-fencing before the lease ends, the fence of leader-only
writes, a drain's hand-over, and the roles `jobdeck nodes` shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.cluster.leadership import Leadership, Timing
from jobdeck.cluster.view import node_rows, role_of
from jobdeck.store.errors import Fenced
from jobdeck.store.memory import MemoryStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=6)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def nodes(store: MemoryStore) -> tuple[Leadership, Leadership]:
    timing = Timing(LEASE)
    a = Leadership(store, "h1:a", version="1", timing=timing, host="h1", pid=1)
    b = Leadership(store, "h2:b", version="1", timing=timing, host="h2", pid=2)
    a.register(T0)
    b.register(T0)
    return a, b


def test_one_leads_the_other_stands_by_and_takes_over_after_expiry() -> None:
    store = MemoryStore()
    a, b = nodes(store)
    assert a.step(T0) == "acquired"
    assert b.step(T0) == "standby"
    assert a.token == 1
    assert a.timing.renew_every == timedelta(seconds=2)
    assert a.step(at(2)) == "kept"
    assert a.leads(at(2))
    # a stops beating (killed, paused, cut off): it believes it leads only until a
    # margin (a sixth of the lease) before the lease it last renewed ends...
    assert a.leads(at(6.9))
    assert not a.leads(at(7))
    assert a.lapse(at(7))
    # ... and b takes over only once that lease has expired, with the next token.
    assert b.step(at(7.9)) == "standby"
    assert b.step(at(8)) == "acquired"
    assert b.token == 2


def test_a_paused_leader_cannot_write_after_a_new_one_took_over() -> None:
    store = MemoryStore()
    a, b = nodes(store)
    a.step(T0)
    with store.transaction() as tx:
        a.fence(tx, at(1))
    b.step(at(6))
    # a wakes up, still holding its old lease in memory: its clock says it is late...
    with pytest.raises(Fenced), store.transaction() as tx:
        a.fence(tx, at(6.5))
    # ... and even with a clock that lags, the store refuses the older token.
    with pytest.raises(Fenced), store.transaction() as tx:
        a.fence(tx, at(1))
    assert a.step(at(6.5)) == "lost"
    assert a.token is None


def test_a_restarted_node_takes_its_own_lease_back_at_once() -> None:
    store = MemoryStore()
    a, _ = nodes(store)
    a.step(T0)
    again = Leadership(store, "h1:a", version="1", timing=Timing(LEASE), host="h1", pid=9)
    again.register(at(1))
    assert again.step(at(1)) == "standby"
    assert again.step(at(1), own_restart=True) == "acquired"
    assert again.token == 2


def test_a_draining_leader_stops_leading_resigns_and_does_not_acquire_again() -> None:
    store = MemoryStore()
    a, b = nodes(store)
    a.step(T0)
    with store.transaction() as tx:
        tx.nodes.set_drain("h1:a", draining=True, deadline=None)
    assert a.step(at(2)) == "kept"  # it still holds the lease while its workers stop
    assert a.draining
    assert not a.leads(at(2))
    assert a.holds(at(2))
    assert a.resign(at(3))
    assert a.step(at(4)) == "standby"
    assert b.step(at(4)) == "acquired"


def test_a_leader_that_stops_resigns_and_its_last_beats_take_nothing_back() -> None:
    store = MemoryStore()
    a, b = nodes(store)
    a.step(T0)
    b.step(T0)
    a.closing = True  # a clean stop: its loops end, then it resigns
    assert a.resign(at(1))
    # A beat of its own still in flight finds the lease free: it does not take it.
    assert a.step(at(1)) == "standby"
    assert not a.leads(at(1))
    # The standby takes it at its next beat, long before the lease would have expired.
    assert b.step(at(2)) == "acquired"
    assert b.token == 2


def test_roles_and_rows_of_nodes() -> None:
    store = MemoryStore()
    a, _ = nodes(store)
    a.step(T0)
    lease = store.nodes.leader()
    found = {n.id: n for n in store.nodes.nodes()}
    assert role_of(found["h1:a"], lease, at(1)) == "leader"
    assert role_of(found["h2:b"], lease, at(1)) == "standby"
    # Silent past its lost deadline (twice the lease by default): lost.
    assert role_of(found["h2:b"], lease, at(12)) == "lost"
    with store.transaction() as tx:
        tx.nodes.set_drain("h2:b", draining=True, deadline=None)
    drained = store.nodes.node("h2:b")
    assert drained is not None
    assert role_of(drained, lease, at(1)) == "draining"
    rows = node_rows(store.nodes.nodes(), lease, [], at(1.5))
    assert [(r["id"], r["role"], r["heartbeat_age_s"], r["token"]) for r in rows] == [
        ("h1:a", "leader", 1.5, 1),
        ("h2:b", "draining", 1.5, None),
    ]
