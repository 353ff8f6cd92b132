"""The contract of the runs aggregate: runs, their events, claimed fires, listings."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.store import DataStore, NotFound, Run, RunAlreadyEnded, RunStep

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def create(store: DataStore, job: str, minute: int, **fields: object) -> Run:
    with store.transaction() as tx:
        return tx.runs.create_run(
            job=job,
            kind=fields.pop("kind", "schedule"),  # type: ignore[arg-type]
            trigger="schedule",
            status=fields.pop("status", "pending"),  # type: ignore[arg-type]
            created_at=T0 + timedelta(minutes=minute),
            **fields,  # type: ignore[arg-type]
        )


def test_fires_are_claimed_once_and_attached(any_store: DataStore) -> None:
    with any_store.transaction() as tx:
        assert tx.runs.claim_fire("feed", T0, decided_at=T0, host="h1")
        assert not tx.runs.claim_fire("feed", T0, decided_at=T0, host="h2")
        later = T0 + timedelta(hours=1)
        assert tx.runs.claim_fire("feed", later, decided_at=later, host="h1")
        assert tx.runs.claim_fire("rank", T0, decided_at=T0, host="h1")
        run = tx.runs.create_run(
            job="feed", kind="schedule", trigger="schedule", status="pending", created_at=T0
        )
        tx.runs.attach_fire("feed", T0, run.id)
        with pytest.raises(NotFound):
            tx.runs.attach_fire("feed", T0 + timedelta(minutes=1), run.id)
    assert any_store.runs.last_fire("feed") == T0 + timedelta(hours=1)
    assert any_store.runs.last_fire("never") is None
    assert any_store.runs.last_fires() == {"feed": T0 + timedelta(hours=1), "rank": T0}


def test_claimed_fires_lists_a_range_with_the_runs_oldest_first(any_store: DataStore) -> None:
    """Backfill asks which slots of a range already have a run: both ends included,
    other schedules and slots outside the range left out, a bare claim as None."""
    slots = [T0 + timedelta(minutes=10 * i) for i in range(6)]
    with any_store.transaction() as tx:
        for slot in reversed(slots):
            assert tx.runs.claim_fire("feed", slot, decided_at=slot, host="h1")
        assert tx.runs.claim_fire("rank", slots[2], decided_at=T0, host="h1")
        run = tx.runs.create_run(
            job="feed", kind="schedule", trigger="backfill", status="pending", created_at=T0
        )
        tx.runs.attach_fire("feed", slots[2], run.id)
    found = any_store.runs.claimed_fires("feed", slots[1], slots[4])
    assert list(found) == slots[1:5]
    assert found[slots[2]] == run.id
    assert found[slots[1]] is None
    assert all(at.tzinfo is not None for at in found)
    after = slots[5] + timedelta(seconds=1)
    assert any_store.runs.claimed_fires("feed", after, after + timedelta(hours=1)) == {}
    stored = any_store.runs.run(run.id)
    assert stored is not None
    assert stored.trigger == "backfill"


def test_a_run_records_its_steps_and_its_first_outcome(any_store: DataStore) -> None:
    run = create(any_store, "feed", 0, params={"a": "1"}, detail={"x": 1})
    assert (run.status, run.params, run.detail, run.attempt) == ("pending", {"a": "1"}, {"x": 1}, 1)
    started = T0 + timedelta(seconds=5)
    with any_store.transaction() as tx:
        running = tx.runs.update_run(
            run.id, at=started, event="started", status="running", started_at=started
        )
        assert running.status == "running"
        assert running.started_at == started
        done = tx.runs.update_run_steps(
            run.id,
            at=started,
            steps=[
                RunStep("ended", "succeeded", ended_at=started, exit_code=0, detail={"y": 2}),
            ],
            known=running,
        )
        assert done.status == "succeeded"
        assert done.detail == {"x": 1, "y": 2}
        with pytest.raises(RunAlreadyEnded):
            tx.runs.update_run(run.id, at=started, event="ended", status="failed")
        measured = tx.runs.update_run(run.id, at=started, event="measured", detail={"z": 3})
        assert measured.status == "succeeded"
        assert measured.detail == {"x": 1, "y": 2, "z": 3}
        event = tx.runs.add_event(run.id, at=started, type="note", detail={"n": 1})
        assert (event.run_id, event.type, event.detail) == (run.id, "note", {"n": 1})
        tx.runs.append_events([run.id], at=started, type="bulk", detail={})
        with pytest.raises(NotFound):
            tx.runs.update_run(999, at=started, event="x", status="running")
        with pytest.raises(NotFound):
            tx.runs.add_event(999, at=started, type="note")
    assert any_store.runs.run(run.id) == measured
    assert any_store.runs.run(999) is None
    events = any_store.runs.events(run.id)
    assert [e.type for e in events] == ["created", "started", "ended", "measured", "note", "bulk"]
    assert events[0].detail == {"status": "pending", "reason": None}
    assert events[2].detail["status"] == "succeeded"
    assert any_store.runs.events(999) == []


def test_listings_filters_and_orders(any_store: DataStore) -> None:
    a = create(any_store, "a", 0)
    b = create(any_store, "b", 1, kind="worker", status="running", host="h1")
    c = create(any_store, "a", 2, status="running", host="h2")
    d = create(any_store, "a", 3, status="succeeded")

    def ids(runs: list[Run]) -> list[int]:
        return [r.id for r in runs]

    assert ids(any_store.runs.runs()) == [d.id, c.id, b.id, a.id]
    assert ids(any_store.runs.runs(job="a")) == [d.id, c.id, a.id]
    assert ids(any_store.runs.runs(kind="worker")) == [b.id]
    assert ids(any_store.runs.runs(status="running")) == [c.id, b.id]
    assert ids(any_store.runs.runs(trigger="manual")) == []
    assert ids(any_store.runs.runs(limit=2, offset=1)) == [c.id, b.id]
    since, until = T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)
    assert ids(any_store.runs.runs(since=since, until=until)) == [c.id, b.id]
    assert ids(any_store.runs.active_runs()) == [a.id, b.id, c.id]
    assert ids(any_store.runs.active_runs(job="a")) == [a.id, c.id]
    assert ids(any_store.runs.active_runs(kind="worker", host="h1")) == [b.id]
    assert ids(any_store.runs.active_runs(host="h3")) == []
    last = any_store.runs.last_runs()
    assert list(last) == ["a", "b"]
    assert last["a"].id == d.id
    assert list(any_store.runs.last_runs(["b", "z"])) == ["b"]
    assert any_store.runs.last_runs([]) == {}
    counts = {(c.kind, c.job, c.status): c.count for c in any_store.runs.run_counts()}
    assert counts == {
        ("schedule", "a", "pending"): 1,
        ("schedule", "a", "running"): 1,
        ("schedule", "a", "succeeded"): 1,
        ("worker", "b", "running"): 1,
    }
    assert [c.job for c in any_store.runs.run_counts(kind="worker")] == ["b"]
    assert len(any_store.runs.run_counts(since=T0 + timedelta(minutes=2))) == 2
    after = any_store.runs.runs_after("created_at", T0 + timedelta(minutes=1), b.id)
    assert [r.id for r in after] == [c.id, d.id]
    after = any_store.runs.runs_after("created_at", T0, 0, limit=1)
    assert [r.id for r in after] == [a.id]
    assert any_store.runs.runs_after("ended_at", T0, 0) == []


def test_a_slot_skipped_as_suspended_is_reclaimed_once_and_no_other(any_store: DataStore) -> None:
    held, ran, fresh = T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    with any_store.transaction() as tx:
        for slot, status, reason in ((held, "skipped", "suspended"), (ran, "succeeded", None)):
            assert tx.runs.claim_fire("feed", slot, decided_at=slot, host="h1")
            run = tx.runs.create_run(
                job="feed",
                kind="schedule",
                trigger="schedule",
                status=status,  # type: ignore[arg-type]
                reason=reason,
                created_at=slot,
                scheduled_for=slot,
            )
            tx.runs.attach_fire("feed", slot, run.id)
    later = T0 + timedelta(days=1)
    with any_store.transaction() as tx:
        # The suspended slot is claimed again once; a slot that ran never is.
        assert tx.runs.reclaim_fire("feed", held, decided_at=later, host="h2")
        assert not tx.runs.reclaim_fire("feed", held, decided_at=later, host="h3")
        assert not tx.runs.reclaim_fire("feed", ran, decided_at=later, host="h2")
        # A slot never claimed is claimed as claim_fire would.
        assert tx.runs.reclaim_fire("feed", fresh, decided_at=later, host="h2")
        assert not tx.runs.claim_fire("feed", fresh, decided_at=later, host="h3")
        again = tx.runs.create_run(
            job="feed", kind="schedule", trigger="catchup", status="pending", created_at=later
        )
        tx.runs.attach_fire("feed", held, again.id)
    with any_store.transaction() as tx:
        assert not tx.runs.reclaim_fire("feed", held, decided_at=later, host="h3")


def test_a_pending_run_is_taken_by_another_engine_and_only_while_pending(
    any_store: DataStore,
) -> None:
    waiting = create(any_store, "push", 0, kind="command", host="engine-a")
    running = create(any_store, "push", 1, kind="command", host="engine-a")
    with any_store.transaction() as tx:
        tx.runs.update_run(running.id, at=T0, event="started", status="running", started_at=T0)
    later = T0 + timedelta(minutes=5)
    with any_store.transaction() as tx:
        taken = tx.runs.take_run(waiting.id, "engine-b", at=later)
        assert tx.runs.take_run(running.id, "engine-b", at=later) is None
        assert tx.runs.take_run(10_000, "engine-b", at=later) is None
    assert taken is not None
    assert (taken.id, taken.host, taken.status) == (waiting.id, "engine-b", "pending")
    stored = any_store.runs.run(waiting.id)
    assert stored == taken
    (event,) = [e for e in any_store.runs.events(waiting.id) if e.type == "taken"]
    assert (event.at, event.detail) == (later, {"from": "engine-a", "to": "engine-b"})
    still = any_store.runs.run(running.id)
    assert still is not None
    assert still.host == "engine-a"
    assert [e.type for e in any_store.runs.events(running.id)] == ["created", "started"]


def test_a_run_is_taken_only_from_the_host_named(any_store: DataStore) -> None:
    """A run handed to whoever leads is taken once: by the leader's pick-up, or back by
    the node that recorded it (a cancel), never by both."""
    handed = create(any_store, "push", 0, kind="command", host="leader")
    later = T0 + timedelta(minutes=5)
    with any_store.transaction() as tx:
        assert tx.runs.take_run(handed.id, "engine-b", at=later, only_from="engine-a") is None
        taken = tx.runs.take_run(handed.id, "engine-b", at=later, only_from="leader")
        assert tx.runs.take_run(handed.id, "engine-c", at=later, only_from="leader") is None
    assert taken is not None
    assert (taken.host, taken.status) == ("engine-b", "pending")
    assert any_store.runs.run(handed.id) == taken
    assert any_store.runs.active_runs(host="leader") == []
    (event,) = [e for e in any_store.runs.events(handed.id) if e.type == "taken"]
    assert event.detail == {"from": "leader", "to": "engine-b"}


def test_runs_of_one_job_decided_at_once_are_decided_one_after_the_other(
    any_store: DataStore,
) -> None:
    """Engines that decide a new run of one job at the same time (each: no active run,
    so start one) take turns: one run is started, never two."""
    import threading

    started: list[int] = []
    gate = threading.Barrier(6)

    def decide(engine: int) -> None:
        gate.wait()
        with any_store.transaction() as tx:
            if tx.runs.decide_job("once", "schedule"):
                return
            time.sleep(0.05)  # the decision takes a while: a rival would see nothing
            run = tx.runs.create_run(
                job="once",
                kind="schedule",
                trigger="manual",
                status="pending",
                created_at=T0,
                host=f"engine-{engine}",
            )
            started.append(run.id)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 1
    assert [r.id for r in any_store.runs.active_runs(job="once")] == started
    # Another job, or another kind of the same name, is not held by it.
    with any_store.transaction() as tx:
        assert tx.runs.decide_job("once", "command") == []
        assert tx.runs.decide_job("other", "schedule") == []


def test_a_node_advertises_its_url(any_store: DataStore) -> None:
    from jobdeck.store.node_records import Node

    with any_store.transaction() as tx:
        tx.nodes.register_node(Node("web-1:a", "web-1", 1, "1", T0, T0, url="http://web-1:8080"))
        tx.nodes.register_node(Node("web-2:b", "web-2", 2, "1", T0, T0))
    assert [(n.id, n.url) for n in any_store.nodes.nodes()] == [
        ("web-1:a", "http://web-1:8080"),
        ("web-2:b", None),
    ]
    with any_store.transaction() as tx:  # a restart may advertise another URL
        tx.nodes.register_node(Node("web-1:a", "web-1", 3, "1", T0, T0, url="https://web-1"))
    node = any_store.nodes.node("web-1:a")
    assert node is not None
    assert node.url == "https://web-1"
