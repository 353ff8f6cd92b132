"""Time-dependent queue semantics with a fake clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command

from jobdeck.clock import FakeClock
from jobdeck.queues.errors import SqsError
from jobdeck.queues.service import QueueService
from jobdeck.store import Store
from jobdeck.store.migrate import alembic_config, current_revision, head_revision, upgrade

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def service(store: Store, clock: FakeClock) -> QueueService:
    return QueueService(store, clock, "http://127.0.0.1:9324")


def create(service: QueueService, name: str, **attributes: str) -> str:
    return str(service.create_queue({"QueueName": name, "Attributes": attributes})["QueueUrl"])


def bodies(service: QueueService, url: str, **params: Any) -> list[str]:
    got = service.receive({"QueueUrl": url, "MaxNumberOfMessages": 10, **params})
    return [m["Body"] for m in got.get("Messages", [])]


def depth(service: QueueService, url: str) -> tuple[str, str, str]:
    a = service.get_queue_attributes({"QueueUrl": url, "AttributeNames": ["All"]})["Attributes"]
    return (
        a["ApproximateNumberOfMessages"],
        a["ApproximateNumberOfMessagesNotVisible"],
        a["ApproximateNumberOfMessagesDelayed"],
    )


def test_visibility_timeout_expires_exactly(service: QueueService, clock: FakeClock) -> None:
    url = create(service, "work", VisibilityTimeout="30")
    service.send_message({"QueueUrl": url, "MessageBody": "m"})
    assert bodies(service, url) == ["m"]
    assert depth(service, url) == ("0", "1", "0")
    clock.advance(timedelta(seconds=29, milliseconds=999))
    assert bodies(service, url) == []
    clock.advance(timedelta(milliseconds=1))
    assert depth(service, url) == ("1", "0", "0")
    got = service.receive({"QueueUrl": url, "AttributeNames": ["ApproximateReceiveCount"]})
    assert got["Messages"][0]["Attributes"] == {"ApproximateReceiveCount": "2"}


def test_delay_seconds_per_queue_and_per_message(service: QueueService, clock: FakeClock) -> None:
    url = create(service, "later", DelaySeconds="10")
    service.send_message({"QueueUrl": url, "MessageBody": "queue-delay"})
    service.send_message({"QueueUrl": url, "MessageBody": "no-delay", "DelaySeconds": 0})
    assert depth(service, url) == ("1", "0", "1")
    assert bodies(service, url) == ["no-delay"]
    clock.advance(timedelta(seconds=10))
    assert bodies(service, url) == ["queue-delay"]


def test_retention_drops_old_messages(service: QueueService, clock: FakeClock) -> None:
    url = create(service, "short", MessageRetentionPeriod="60")
    service.send_message({"QueueUrl": url, "MessageBody": "old"})
    clock.advance(timedelta(seconds=30))
    service.send_message({"QueueUrl": url, "MessageBody": "new"})
    clock.advance(timedelta(seconds=30))
    assert depth(service, url) == ("1", "0", "0")
    assert bodies(service, url) == ["new"]
    with service.store.transaction() as tx:
        assert tx.queues.prune_expired(int(clock.now().timestamp() * 1000)) == 1


def test_fifo_deduplication_window_is_five_minutes(service: QueueService, clock: FakeClock) -> None:
    url = create(service, "orders.fifo", FifoQueue="true")
    entry = {"QueueUrl": url, "MessageGroupId": "g", "MessageDeduplicationId": "d"}
    first = service.send_message({**entry, "MessageBody": "1"})
    clock.advance(timedelta(minutes=4, seconds=59))
    assert service.send_message({**entry, "MessageBody": "2"})["MessageId"] == first["MessageId"]
    clock.advance(timedelta(seconds=1))
    third = service.send_message({**entry, "MessageBody": "3"})
    assert third["MessageId"] != first["MessageId"]
    assert int(third["SequenceNumber"]) > int(first["SequenceNumber"])
    assert bodies(service, url) == ["1", "3"]


def test_fifo_group_waits_for_its_visibility_timeout(
    service: QueueService, clock: FakeClock
) -> None:
    url = create(service, "jobs.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    for body in ("a1", "a2"):
        service.send_message({"QueueUrl": url, "MessageBody": body, "MessageGroupId": "a"})
    assert bodies(service, url, MaxNumberOfMessages=1, VisibilityTimeout=20) == ["a1"]
    clock.advance(timedelta(seconds=19))
    assert bodies(service, url) == []
    clock.advance(timedelta(seconds=1))
    assert bodies(service, url) == ["a1", "a2"]


def test_purge_is_allowed_again_after_sixty_seconds(
    service: QueueService, clock: FakeClock
) -> None:
    url = create(service, "p")
    service.purge_queue({"QueueUrl": url})
    with pytest.raises(SqsError) as refused:
        service.purge_queue({"QueueUrl": url})
    assert refused.value.shape == "PurgeQueueInProgress"
    clock.advance(timedelta(seconds=60))
    service.purge_queue({"QueueUrl": url})


def test_deleting_a_queue_deletes_its_messages(service: QueueService, store: Store) -> None:
    url = create(service, "gone")
    service.send_message({"QueueUrl": url, "MessageBody": "m"})
    service.delete_queue({"QueueUrl": url})
    create(service, "gone")
    assert bodies(service, url) == []


def test_the_queues_migration_can_be_undone_and_redone(service: QueueService, store: Store) -> None:
    create(service, "before")
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0002")
    assert current_revision(store.engine) == "0002"
    upgrade(store.engine)
    assert current_revision(store.engine) == head_revision()
    with store.reading() as tx:
        assert tx.queues.queues() == []
