"""The contract of the nodes aggregate: registration, heartbeats, drains, and the
leader's lease with its fencing token."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.store import DataStore
from jobdeck.store.errors import Fenced, NotFound
from jobdeck.store.node_records import Node

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=10)


def node(node_id: str, started: datetime = T0) -> Node:
    return Node(
        id=node_id,
        host="h1",
        pid=42,
        version="1.0",
        started_at=started,
        heartbeat_at=started,
    )


def test_nodes_register_beat_and_come_back_oldest_first(any_store: DataStore) -> None:
    with any_store.transaction() as tx:
        tx.nodes.register_node(node("b", T0 + timedelta(seconds=1)))
        tx.nodes.register_node(node("a", T0))
        beaten = tx.nodes.beat("b", at=T0 + timedelta(seconds=5))
        assert tx.nodes.beat("nobody", at=T0) is None
    assert beaten is not None
    assert beaten.heartbeat_at == T0 + timedelta(seconds=5)
    found = any_store.nodes.nodes()
    assert [n.id for n in found] == ["a", "b"]
    assert found[0] == node("a")
    assert any_store.nodes.node("zzz") is None


def test_a_drain_survives_a_restart_and_ends_with_undrain(any_store: DataStore) -> None:
    deadline = T0 + timedelta(minutes=30)
    with any_store.transaction() as tx:
        tx.nodes.register_node(node("a"))
        drained = tx.nodes.set_drain("a", draining=True, deadline=deadline)
        tx.nodes.mark_drained("a")
    assert drained.draining
    assert drained.drain_deadline == deadline
    assert any_store.nodes.node("a") == node("a").__class__(
        **{**node("a").__dict__, "draining": True, "drain_deadline": deadline, "drained": True}
    )
    with any_store.transaction() as tx:
        again = tx.nodes.register_node(node("a", T0 + timedelta(minutes=1)))
    assert again.draining
    assert not again.drained
    with any_store.transaction() as tx:
        ended = tx.nodes.set_drain("a", draining=False, deadline=None)
        tx.nodes.mark_drained("a")  # not draining: nothing to mark
        with pytest.raises(NotFound):
            tx.nodes.set_drain("nobody", draining=True, deadline=None)
    assert not ended.draining
    assert ended.drain_deadline is None
    assert any_store.nodes.node("a") == ended
    with any_store.transaction() as tx:
        assert tx.nodes.forget_node("a")
        assert not tx.nodes.forget_node("a")
    assert any_store.nodes.nodes() == []


def test_the_lease_is_held_by_one_and_its_token_grows_at_every_acquisition(
    any_store: DataStore,
) -> None:
    assert any_store.nodes.leader() is None
    with any_store.transaction() as tx:
        first = tx.nodes.acquire_leadership("a", now=T0, expires_at=T0 + LEASE)
        assert tx.nodes.acquire_leadership("b", now=T0, expires_at=T0 + LEASE) is None
        # Its holder does not acquire a live lease again either: it renews it.
        assert tx.nodes.acquire_leadership("a", now=T0, expires_at=T0 + LEASE) is None
    assert first is not None
    assert (first.holder, first.token) == ("a", 1)
    later = T0 + timedelta(seconds=4)
    with any_store.transaction() as tx:
        renewed = tx.nodes.renew_leadership("a", 1, now=later, expires_at=later + LEASE)
        assert tx.nodes.renew_leadership("a", 7, now=later, expires_at=later + LEASE) is None
        assert tx.nodes.renew_leadership("b", 1, now=later, expires_at=later + LEASE) is None
    assert renewed is not None
    assert renewed.expires_at == later + LEASE
    assert renewed.acquired_at == T0
    assert renewed.token == 1
    expired = later + LEASE
    with any_store.transaction() as tx:
        # Expired: its holder cannot renew it, another node takes it with the next token.
        assert tx.nodes.renew_leadership("a", 1, now=expired, expires_at=expired + LEASE) is None
        taken = tx.nodes.acquire_leadership("b", now=expired, expires_at=expired + LEASE)
    assert taken is not None
    assert (taken.holder, taken.token) == ("b", 2)
    assert any_store.nodes.leader() == taken


def test_a_resigned_lease_is_free_at_once_for_the_next_token(any_store: DataStore) -> None:
    with any_store.transaction() as tx:
        tx.nodes.acquire_leadership("a", now=T0, expires_at=T0 + LEASE)
        assert not tx.nodes.resign_leadership("a", 2, now=T0)
        assert not tx.nodes.resign_leadership("b", 1, now=T0)
        assert tx.nodes.resign_leadership("a", 1, now=T0)
        assert not tx.nodes.resign_leadership("a", 1, now=T0)
        taken = tx.nodes.acquire_leadership("b", now=T0, expires_at=T0 + LEASE)
        # Even its old holder acquires anew with a new token.
    assert taken is not None
    assert taken.token == 2


def test_the_fence_refuses_an_older_token_and_an_expired_lease(any_store: DataStore) -> None:
    with any_store.transaction() as tx:
        with pytest.raises(Fenced):
            tx.nodes.fence("a", 1, now=T0)  # nobody ever led
        tx.nodes.acquire_leadership("a", now=T0, expires_at=T0 + LEASE)
        tx.nodes.fence("a", 1, now=T0 + timedelta(seconds=9))
        with pytest.raises(Fenced):
            tx.nodes.fence("a", 1, now=T0 + LEASE)
        with pytest.raises(Fenced):
            tx.nodes.fence("b", 1, now=T0)
    late = T0 + LEASE
    with any_store.transaction() as tx:
        tx.nodes.acquire_leadership("b", now=late, expires_at=late + LEASE)
    with pytest.raises(Fenced) as refused, any_store.transaction() as tx:
        # The old leader, woken up with its old token, may not write.
        tx.nodes.fence("a", 1, now=T0 + timedelta(seconds=1))
    assert refused.value.token == 1
    with any_store.transaction() as tx:
        tx.nodes.fence("b", 2, now=late)


def test_of_many_nodes_acquiring_at_once_one_wins(any_store: DataStore) -> None:
    winners: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def contend(name: str) -> None:
        try:
            start.wait()
            with any_store.transaction() as tx:
                if tx.nodes.acquire_leadership(name, now=T0, expires_at=T0 + LEASE):
                    winners.append(name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(f"n{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(winners) == 1
    lease = any_store.nodes.leader()
    assert lease is not None
    assert lease.holder == winners[0]
    assert lease.token == 1


def test_a_restarted_node_takes_its_own_live_lease_with_a_new_token(
    any_store: DataStore,
) -> None:
    with any_store.transaction() as tx:
        tx.nodes.acquire_leadership("a", now=T0, expires_at=T0 + LEASE)
        assert tx.nodes.acquire_leadership("b", now=T0, expires_at=T0 + LEASE, own=True) is None
        again = tx.nodes.acquire_leadership("a", now=T0, expires_at=T0 + LEASE, own=True)
    assert again is not None
    assert (again.holder, again.token) == ("a", 2)
