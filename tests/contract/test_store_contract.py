"""The contract of the store's aggregates other than runs and queues: revisions,
suspensions, audit, workers, invocation keys, and units of work themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.store import AuditEntry, DataStore, NotFound
from jobdeck.store.worker_records import WorkerState

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def add_revision(store: DataStore, n: int) -> None:
    with store.transaction() as tx:
        tx.revisions.add_revision(
            applied_at=T0 + timedelta(minutes=n),
            applied_by="alice",
            catalog_sha256=f"sha{n}",
            git_describe=None,
            source="jobdeck.yaml",
            text=f"text {n}",
            catalog={"n": n},
        )


def test_revisions_are_numbered_from_one_and_listed_newest_first(any_store: DataStore) -> None:
    assert any_store.revisions.latest_revision() is None
    assert any_store.revisions.latest_number() is None
    for n in range(3):
        add_revision(any_store, n)
    latest = any_store.revisions.latest_revision()
    assert latest is not None
    assert (latest.number, latest.catalog, latest.text) == (3, {"n": 2}, "text 2")
    assert latest.applied_at == T0 + timedelta(minutes=2)
    assert any_store.revisions.latest_number() == 3
    assert [r.number for r in any_store.revisions.revisions()] == [3, 2, 1]
    assert [r.number for r in any_store.revisions.revisions(limit=1)] == [3]
    first = any_store.revisions.revision(1)
    assert first is not None
    assert first.catalog == {"n": 0}
    assert any_store.revisions.revision(9) is None


def test_a_unit_of_work_that_raises_leaves_nothing(any_store: DataStore) -> None:
    def abandoned() -> None:
        with any_store.transaction() as tx:
            tx.audit.record_audit(AuditEntry(at=T0, actor="a", via="cli", action="apply"))
            tx.runs.create_run(
                job="j", kind="schedule", trigger="manual", status="pending", created_at=T0
            )
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError):
        abandoned()
    assert any_store.audit.audit() == []
    assert any_store.runs.runs() == []
    with any_store.transaction() as tx:
        tx.audit.record_audit(AuditEntry(at=T0, actor="a", via="cli", action="apply"))
    assert [e.actor for e in any_store.audit.audit()] == ["a"]


def test_reads_outside_a_transaction_refuse_writes(any_store: DataStore) -> None:
    # What mypy refuses statically, the views refuse when the program runs.
    assert not hasattr(any_store.runs, "create_run")
    assert not hasattr(any_store.queues, "insert_messages")
    assert hasattr(any_store.runs, "active_runs")


def test_suspensions_in_force_and_their_end(any_store: DataStore) -> None:
    until = T0 + timedelta(hours=1)
    with any_store.transaction() as tx:
        first = tx.suspensions.add_suspension(
            kind="schedule", name="feed", reason="r", created_by="a", created_at=T0, until=until
        )
        second = tx.suspensions.add_suspension(
            kind="schedule",
            name="feed",
            reason="again",
            created_by="b",
            created_at=T0 + timedelta(minutes=1),
            until=None,
        )
    with any_store.reading() as tx:
        # The newest in force, whenever it was created.
        assert tx.suspensions.active_suspension("schedule", "feed", T0) == second
        later = T0 + timedelta(minutes=5)
        assert tx.suspensions.active_suspension("schedule", "feed", later) == second
        assert tx.suspensions.active_suspension("worker", "feed", later) is None
    assert [s.id for s in any_store.suspensions.suspensions(T0)] == [second.id, first.id]
    assert [s.id for s in any_store.suspensions.suspensions(until)] == [second.id]
    with any_store.transaction() as tx:
        ended = tx.suspensions.end_suspension(second.id, ended_by="c", ended_at=until)
        again = tx.suspensions.end_suspension(
            second.id, ended_by="d", ended_at=until + timedelta(hours=1)
        )
        assert again == ended
        assert ended.ended_by == "c"
        assert ended.ended_at == until
        with pytest.raises(NotFound):
            tx.suspensions.end_suspension(999, ended_by="c", ended_at=until)
    assert any_store.suspensions.suspensions(until) == []
    everything = any_store.suspensions.suspensions(until, include_ended=True)
    assert [s.id for s in everything] == [second.id, first.id]


def test_audit_newest_first_with_paging(any_store: DataStore) -> None:
    with any_store.transaction() as tx:
        for n in range(4):
            stored = tx.audit.record_audit(
                AuditEntry(
                    at=T0 + timedelta(minutes=n),
                    actor=f"u{n}",
                    via="slack",
                    action="invoke",
                    outcome="refused" if n == 1 else "ok",
                    detail={"n": n},
                )
            )
            assert stored.id is not None
    entries = any_store.audit.audit()
    assert [e.actor for e in entries] == ["u3", "u2", "u1", "u0"]
    assert entries[2].outcome == "refused"
    assert entries[0].detail == {"n": 3}
    assert [e.actor for e in any_store.audit.audit(limit=2, offset=1)] == ["u2", "u1"]


def test_invocation_keys_are_claimed_once(any_store: DataStore) -> None:
    long_key = "slack:" + "x" * 500
    with any_store.transaction() as tx:
        assert tx.keys.claim_key("k", at=T0)
        assert not tx.keys.claim_key("k", at=T0)
        assert tx.keys.claim_key(long_key, at=T0 + timedelta(hours=2))
        assert not tx.keys.claim_key(long_key, at=T0 + timedelta(hours=2))
        run = tx.runs.create_run(
            job="j", kind="command", trigger="chatops", status="pending", created_at=T0
        )
        tx.keys.attach_run("k", run.id)
    assert any_store.keys.key_run("k") == run.id
    assert any_store.keys.key_run("never") is None
    with any_store.transaction() as tx:
        assert tx.keys.prune_keys(before=T0 + timedelta(hours=1)) == 1
        assert tx.keys.claim_key("k", at=T0 + timedelta(hours=3))
        tx.keys.release_key(long_key)
        assert tx.keys.claim_key(long_key, at=T0 + timedelta(hours=3))


def test_worker_leases(any_store: DataStore) -> None:
    expires = T0 + timedelta(seconds=30)
    with any_store.transaction() as tx:
        assert tx.workers.take_lease("w", run_id=1, host="h1", now=T0, expires_at=expires)
        # Held and not expired: nobody takes it, not even its own host.
        assert not tx.workers.take_lease("w", run_id=2, host="h2", now=T0, expires_at=expires)
        late = expires + timedelta(seconds=1)
        assert not tx.workers.take_lease("w", run_id=3, host="h1", now=late, expires_at=late)
        assert tx.workers.renew_leases("h1", expires + timedelta(minutes=1)) == 1
        assert not tx.workers.take_lease("w", run_id=2, host="h2", now=late, expires_at=late)
        much_later = expires + timedelta(minutes=2)
        assert tx.workers.take_lease(
            "w", run_id=2, host="h2", now=much_later, expires_at=much_later
        )
        lease = tx.workers.lease("w")
        assert lease is not None
        assert (lease.holder_run, lease.holder_host) == (2, "h2")
        assert not tx.workers.release_lease("w", 1)
        assert tx.workers.release_lease("w", 2)
        assert tx.workers.lease("w") is None
        assert tx.workers.renew_leases("h1", expires) == 0


def test_worker_states_events_and_overview(any_store: DataStore) -> None:
    with any_store.transaction() as tx:
        tx.workers.save_worker_state(WorkerState("b", desired=2, restarts=0, updated_at=T0))
        tx.workers.save_worker_state(WorkerState("a", desired=1, restarts=0, updated_at=T0))
        tx.workers.save_worker_state(
            WorkerState("a", desired=3, restarts=1, updated_at=T0, last_exit={"code": 1})
        )
        run = tx.runs.create_run(
            job="c", kind="worker", trigger="schedule", status="running", created_at=T0
        )
        for n in range(4):
            tx.workers.add_worker_event(
                "a" if n % 2 else "b", at=T0, type="scaled" if n < 3 else "exit", detail={"n": n}
            )
    assert run.status == "running"
    states = any_store.workers.worker_states()
    assert list(states) == ["a", "b"]
    assert (states["a"].desired, states["a"].restarts, states["a"].last_exit) == (
        3,
        1,
        {"code": 1},
    )
    assert any_store.workers.running_workers() == {"c": 1}
    overview = any_store.workers.worker_overview()
    assert overview["a"]["desired"] == 3
    assert overview["c"]["running"] == 1
    events = any_store.workers.worker_events()
    assert [e.detail["n"] for e in events] == [0, 1, 2, 3]
    assert [e.detail["n"] for e in any_store.workers.worker_events("a")] == [1, 3]
    assert [e.detail["n"] for e in any_store.workers.worker_events(types=("exit",))] == [3]
    assert [e.detail["n"] for e in any_store.workers.worker_events(limit=2)] == [2, 3]


def test_a_resume_with_catch_up_is_taken_by_one_caller(any_store: DataStore) -> None:
    with any_store.transaction() as tx:
        asked = tx.suspensions.add_suspension(
            kind="schedule", name="a", reason="r", created_by="x", created_at=T0, until=None
        )
        plain = tx.suspensions.add_suspension(
            kind="schedule", name="b", reason="r", created_by="x", created_at=T0, until=None
        )
        # Not ended yet: nothing to take.
        assert not tx.suspensions.take_catch_up(asked.id, at=T0)
    resumed = T0 + timedelta(hours=1)
    with any_store.transaction() as tx:
        ended = tx.suspensions.end_suspension(
            asked.id, ended_by="y", ended_at=resumed, catch_up=True
        )
        assert (ended.catch_up, ended.caught_up_at) == (True, None)
        assert not tx.suspensions.end_suspension(plain.id, ended_by="y", ended_at=resumed).catch_up
    assert [s.id for s in any_store.suspensions.catch_ups_asked()] == [asked.id]
    taken_at = resumed + timedelta(seconds=1)
    with any_store.transaction() as tx:
        assert not tx.suspensions.take_catch_up(plain.id, at=taken_at)
        assert tx.suspensions.take_catch_up(asked.id, at=taken_at)
        assert not tx.suspensions.take_catch_up(asked.id, at=taken_at)
    assert any_store.suspensions.catch_ups_asked() == []
    (found,) = [
        s for s in any_store.suspensions.suspensions(T0, include_ended=True) if s.id == asked.id
    ]
    assert (found.catch_up, found.caught_up_at) == (True, taken_at)
