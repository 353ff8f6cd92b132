"""The contract of the notices aggregate: what the engine sent or held back, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.store import DataStore, Notice

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def notice(n: int, **fields: object) -> Notice:
    values: dict[str, object] = {
        "at": T0 + timedelta(minutes=n),
        "job": "backup",
        "kind": "schedule",
        "event": "run.failed",
        "stream": "failure",
        "sent": n % 2 == 0,
        "why": f"why {n}",
        "run_id": n,
        "streak": n,
        "targets": ["webhook:https://hooks.example/x"],
        "detail": {"n": n, "last_sent_at": None},
    }
    values.update(fields)
    return Notice(**values)  # type: ignore[arg-type]


def test_notices_come_back_as_recorded_newest_first(any_store: DataStore) -> None:
    with any_store.transaction() as tx:
        first = tx.notices.record_notice(notice(1))
        second = tx.notices.record_notice(notice(2))
    assert first.id is not None
    assert second.id is not None
    assert first.id != second.id
    found = any_store.notices.notices()
    assert [n.run_id for n in found] == [2, 1]
    back = found[1]
    assert back == notice(1, id=first.id)
    assert back.at.tzinfo is not None
    assert back.at == T0 + timedelta(minutes=1)
    assert (back.sent, found[0].sent) == (False, True)


def test_notices_filter_by_job_kind_stream_and_run(any_store: DataStore) -> None:
    with any_store.transaction() as tx:
        tx.notices.record_notice(notice(1))
        tx.notices.record_notice(notice(2, job="other"))
        tx.notices.record_notice(notice(3, kind="command"))
        tx.notices.record_notice(notice(4, stream="duration", event="run.slow"))
        tx.notices.record_notice(notice(5, run_id=None))
    reads = any_store.notices
    assert [n.run_id for n in reads.notices(job="backup")] == [None, 4, 3, 1]
    assert [n.run_id for n in reads.notices(job="backup", kind="schedule")] == [None, 4, 1]
    assert [n.run_id for n in reads.notices(job="backup", stream="failure", limit=1)] == [None]
    assert [n.event for n in reads.notices(stream="duration")] == ["run.slow"]
    assert [n.job for n in reads.notices(run_id=2)] == ["other"]
    assert [n.run_id for n in reads.notices(limit=2, offset=1)] == [4, 3]
    assert reads.notices(job="nobody") == []


def test_a_notice_in_an_abandoned_unit_of_work_is_not_kept(any_store: DataStore) -> None:
    def abandoned() -> None:
        with any_store.transaction() as tx:
            tx.notices.record_notice(notice(1))
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError):
        abandoned()
    assert any_store.notices.notices() == []


def test_a_naive_time_is_refused(any_store: DataStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"), any_store.transaction() as tx:
        tx.notices.record_notice(notice(1, at=datetime(2026, 3, 2, 9, 0)))


def test_notice_counts_by_job_event_and_whether_sent(any_store: DataStore) -> None:
    assert any_store.notices.notice_counts() == []
    with any_store.transaction() as tx:
        for n in range(5):
            tx.notices.record_notice(notice(n))  # sent when n is even
        tx.notices.record_notice(notice(9, job="other", event="run.slow", sent=True))
    counts = {(c.kind, c.job, c.event, c.sent): c.count for c in any_store.notices.notice_counts()}
    assert counts == {
        ("schedule", "backup", "run.failed", True): 3,
        ("schedule", "backup", "run.failed", False): 2,
        ("schedule", "other", "run.slow", True): 1,
    }


def test_a_notice_to_send_is_due_until_its_delivery_is_recorded(any_store: DataStore) -> None:
    message = {"run": {"id": 3, "job": "backup"}, "tail": "last lines"}
    with any_store.transaction() as tx:
        held = tx.notices.record_notice(notice(1, sent=False))
        later = tx.notices.record_notice(
            notice(2, delivery="due", next_try_at=T0 + timedelta(hours=1), message=message)
        )
        due = tx.notices.record_notice(notice(3, delivery="due", next_try_at=T0, message=message))
    assert due.id is not None
    assert later.id is not None
    reads = any_store.notices
    assert [n.id for n in reads.due_notices(T0)] == [due.id]
    assert [n.id for n in reads.due_notices(T0 + timedelta(hours=2))] == [later.id, due.id]
    [back] = reads.due_notices(T0)
    assert (back.delivery, back.attempts, back.message) == ("due", 0, message)
    assert back.next_try_at == T0
    assert held.delivery is None

    at = T0 + timedelta(minutes=5)
    with any_store.transaction() as tx:
        assert tx.notices.set_delivery(due.id, "delivered", attempts=1, delivered_at=at)
        # The first outcome recorded stands.
        assert not tx.notices.set_delivery(due.id, "due", attempts=2, next_try_at=at)
        retry = T0 + timedelta(hours=3)
        assert tx.notices.set_delivery(later.id, "due", attempts=1, next_try_at=retry)
    assert reads.due_notices(T0 + timedelta(hours=2)) == []
    [again] = reads.due_notices(T0 + timedelta(hours=3))
    assert (again.id, again.attempts) == (later.id, 1)
    delivered = next(n for n in reads.notices() if n.id == due.id)
    assert (delivered.delivery, delivered.delivered_at, delivered.attempts) == (
        "delivered",
        at,
        1,
    )
    with any_store.transaction() as tx:
        assert tx.notices.set_delivery(later.id, "given_up", attempts=2)
    assert reads.due_notices(T0 + timedelta(days=2)) == []
    gone = next(n for n in reads.notices() if n.id == later.id)
    assert (gone.delivery, gone.next_try_at) == ("given_up", None)
