"""The contract of the queues aggregate: queues, messages (standard and FIFO),
deduplication, counts, moves, tags and message-move tasks."""

from __future__ import annotations

import pytest

from jobdeck.store import DataStore, QueueGone
from jobdeck.store.queue_records import MoveTask, NewMessage, QueueSettings

NOW = 1_700_000_000_000


def message(n: int, *, visible_ms: int = NOW, group: str | None = None) -> NewMessage:
    return NewMessage(
        message_id=f"m{n}",
        body=f"body {n}",
        attributes={},
        system_attributes={},
        md5_body="x",
        md5_attributes=None,
        md5_system_attributes=None,
        visible_ms=visible_ms,
        group_id=group,
        dedup_id=None if group is None else f"d{n}",
    )


def make(store: DataStore, name: str, *, fifo: bool = False, **settings: object) -> None:
    with store.transaction() as tx:
        tx.queues.create_queue(
            name,
            fifo=fifo,
            settings=QueueSettings(**settings),  # type: ignore[arg-type]
            origin="api",
            now_ms=NOW,
        )


def test_queues_are_created_listed_changed_and_deleted(any_store: DataStore) -> None:
    make(any_store, "jobs")
    make(any_store, "jobs-dlq")
    make(any_store, "other", dead_letter_target="jobs-dlq", max_receive_count=3)
    queue = any_store.queues.queue("jobs")
    assert queue is not None
    assert (queue.fifo, queue.origin, queue.created_ms) == (False, "api", NOW)
    assert [q.name for q in any_store.queues.queues()] == ["jobs", "jobs-dlq", "other"]
    assert [q.name for q in any_store.queues.queues("jobs")] == ["jobs", "jobs-dlq"]
    assert any_store.queues.dead_letter_sources("jobs-dlq") == ["other"]
    with any_store.transaction() as tx:
        changed = tx.queues.update_queue(
            "jobs", settings=QueueSettings(visibility_timeout=5), now_ms=NOW + 1, origin="catalog"
        )
        assert (changed.settings.visibility_timeout, changed.modified_ms) == (5, NOW + 1)
        tx.queues.set_queue_origin("jobs", "api")
        tx.queues.mark_purged("jobs", NOW + 2)
        tx.queues.set_queue_tags("jobs", {"team": "news"})
        tx.queues.insert_messages("jobs", [message(1)], NOW)
    queue = any_store.queues.queue("jobs")
    assert queue is not None
    assert queue.origin == "api"
    assert any_store.queues.last_purge_ms("jobs") == NOW + 2
    assert any_store.queues.last_purge_ms("other") is None
    assert any_store.queues.queue_tags("jobs") == {"team": "news"}
    assert any_store.queues.queue_tags("other") == {}
    with any_store.transaction() as tx:
        assert tx.queues.delete_queue("jobs")
        assert not tx.queues.delete_queue("jobs")
    assert any_store.queues.queue("jobs") is None
    with pytest.raises(QueueGone), any_store.transaction() as tx:
        tx.queues.insert_messages("jobs", [message(2)], NOW)


def test_standard_receive_delete_and_visibility(any_store: DataStore) -> None:
    make(any_store, "q")
    with any_store.transaction() as tx:
        ids = tx.queues.insert_messages(
            "q", [message(1), message(2, visible_ms=NOW + 10_000), message(3)], NOW
        )
        assert len(ids) == 3
        assert ids == sorted(ids)
        assert tx.queues.insert_messages("q", [message(4)], NOW, ids=False) == []
    with any_store.transaction() as tx:
        found = tx.queues.receivable("q", now_ms=NOW, sent_after_ms=0, limit=2, fifo=False)
        assert [m.message_id for m in found] == ["m1", "m3"]
        got = tx.queues.mark_received(found, visible_ms=NOW + 30_000, token="t1", now_ms=NOW)
        assert [(m.receive_count, m.receipt_token, m.first_received_ms) for m in got] == [
            (1, "t1", NOW),
            (1, "t1", NOW),
        ]
    counts = any_store.queues.queue_counts(NOW)["q"]
    assert (counts.visible, counts.in_flight, counts.delayed) == (1, 2, 1)
    assert any_store.queues.oldest_sent_ms() == {"q": NOW}
    first, third = got
    with any_store.transaction() as tx:
        assert not tx.queues.set_visible_at("q", first.id, "wrong", visible_ms=NOW)
        assert tx.queues.set_visible_at("q", first.id, "t1", visible_ms=NOW)
        again = tx.queues.receivable("q", now_ms=NOW, sent_after_ms=0, limit=10, fifo=False)
        assert [m.message_id for m in again] == ["m1", "m4"]
        tx.queues.delete_received("q", [(third.id, "wrong")])
        tx.queues.delete_received("q", [(first.id, "t1")])
        tx.queues.delete_received("q", [(third.id, "m3")], by_message_id=True)
        assert tx.queues.received_message("q", first.id) is None
        assert tx.queues.received_message("other", ids[1]) is None
        second = tx.queues.received_message("q", ids[1])
        assert second is not None
        assert second.body == "body 2"
    assert any_store.queues.queue_message_count("q") == 2
    assert any_store.queues.queue_message_ids("q")[0] == ids[1]
    with any_store.transaction() as tx:
        assert tx.queues.purge_messages("q") == 2
    assert any_store.queues.queue_counts(NOW, ["q"])["q"].visible == 0
    assert any_store.queues.oldest_sent_ms() == {}


def test_fifo_one_receiver_per_group_and_deduplication(any_store: DataStore) -> None:
    make(any_store, "q.fifo", fifo=True)
    with any_store.transaction() as tx:
        tx.queues.insert_messages(
            "q.fifo", [message(1, group="g1"), message(2, group="g1"), message(3, group="g2")], NOW
        )
        tx.queues.remember_dedup("q.fifo", [("d1", "m1", "1"), ("d3", "m3", "3")], NOW + 300)
        assert tx.queues.recent_dedup("q.fifo", ["d1", "d2", "d3"], NOW) == {
            "d1": ("m1", "1"),
            "d3": ("m3", "3"),
        }
        assert tx.queues.recent_dedup("q.fifo", ["d1"], NOW + 300) == {}
    with any_store.transaction() as tx:
        (first,) = tx.queues.receivable("q.fifo", now_ms=NOW, sent_after_ms=0, limit=1, fifo=True)
        assert first.message_id == "m1"
        tx.queues.mark_received([first], visible_ms=NOW + 30_000, token="t", now_ms=NOW)
        rest = tx.queues.receivable("q.fifo", now_ms=NOW, sent_after_ms=0, limit=10, fifo=True)
        assert [m.message_id for m in rest] == ["m3"]
    with any_store.transaction() as tx:
        assert tx.queues.prune_expired(NOW + 301) == 0
        assert tx.queues.recent_dedup("q.fifo", ["d1"], NOW) == {}


def test_dead_letters_move_and_retention(any_store: DataStore) -> None:
    make(any_store, "src", retention_seconds=60)
    make(any_store, "dlq")
    with any_store.transaction() as tx:
        ids = tx.queues.insert_messages("src", [message(1), message(2)], NOW)
        (one,) = tx.queues.receivable("src", now_ms=NOW, sent_after_ms=0, limit=1, fifo=False)
        tx.queues.mark_received([one], visible_ms=NOW + 5, token="t", now_ms=NOW)
        assert (
            tx.queues.move_messages([one.id], to_queue="dlq", now_ms=NOW, dead_lettered_from="src")
            == 1
        )
        assert tx.queues.move_messages([], to_queue="dlq", now_ms=NOW, dead_lettered_from=None) == 0
    assert any_store.queues.dead_letters("dlq") == [(ids[0], "src")]
    assert any_store.queues.dead_letters("dlq", source="other") == []
    moved = any_store.queues.received_message("dlq", ids[0])
    assert moved is not None
    assert (moved.receive_count, moved.receipt_token) == (1, None)
    with any_store.transaction() as tx:
        assert (
            tx.queues.move_messages([ids[0]], to_queue="src", now_ms=NOW, dead_lettered_from=None)
            == 1
        )
    back = any_store.queues.received_message("src", ids[0])
    assert back is not None
    assert (back.receive_count, back.first_received_ms) == (0, None)
    assert any_store.queues.queue_counts(NOW + 60_000)["src"].visible == 0
    with any_store.transaction() as tx:
        assert tx.queues.prune_expired(NOW + 59_999) == 0
        assert tx.queues.prune_expired(NOW + 60_000) == 2
    assert any_store.queues.queue_message_count("src") == 0


def test_move_tasks_latest_first(any_store: DataStore) -> None:
    make(any_store, "dlq")
    with any_store.transaction() as tx:
        for n in range(3):
            tx.queues.record_move_task(
                MoveTask(
                    handle=f"h{n}",
                    source="dlq",
                    destination=None,
                    max_per_second=None,
                    status="RUNNING",
                    moved=n,
                    to_move=3,
                    failure=None,
                    started_ms=NOW + n,
                )
            )
    task = any_store.queues.move_task("h1")
    assert task is not None
    assert (task.moved, task.to_move) == (1, 3)
    assert any_store.queues.move_task("none") is None
    assert [t.handle for t in any_store.queues.move_tasks("dlq", 2)] == ["h2", "h1"]
    assert any_store.queues.move_tasks("other", 5) == []
