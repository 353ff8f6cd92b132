"""Queues of the catalog exist once applied, with their dead-letter queues, and follow it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobdeck.catalog.load import load_catalog_text
from jobdeck.catalog.model import Catalog
from jobdeck.clock import FakeClock
from jobdeck.control import Control, ControlError
from jobdeck.queues import admin
from jobdeck.queues.catalog import sync_catalog_queues, worker_environment
from jobdeck.queues.service import QueueService
from jobdeck.store import Store, Tx
from jobdeck.store.records import Revision

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

CATALOG = """\
version: 1
project: newsroom
queues:
  feed-index:
    visibility_timeout: 60s
    max_receive_count: 2
    retention: 2d
  orders:
    fifo: true
    content_based_deduplication: true
"""


def apply(store: Store, clock: FakeClock, text: str) -> None:
    control = Control(store, clock, "alice@ops")
    control.apply(load_catalog_text(text, "jobdeck.yaml"), steps=[sync_catalog_queues])


def test_applied_queues_exist_with_their_dead_letter_queues(store: Store) -> None:
    clock = FakeClock(T0)
    apply(store, clock, CATALOG)
    with store.reading() as tx:
        queues = {q.name: q for q in tx.queues.queues()}
    assert sorted(queues) == ["feed-index", "feed-index-dlq", "orders-dlq.fifo", "orders.fifo"]
    feed = queues["feed-index"].settings
    assert (feed.visibility_timeout, feed.retention_seconds) == (60, 2 * 86_400)
    assert (feed.dead_letter_target, feed.max_receive_count) == ("feed-index-dlq", 2)
    assert queues["orders.fifo"].fifo
    assert queues["orders.fifo"].settings.content_based_deduplication
    assert queues["orders.fifo"].settings.dead_letter_target is None
    assert {q.origin for q in queues.values()} == {"catalog"}


def test_settings_follow_the_catalog_and_dropped_queues_keep_their_messages(
    store: Store,
) -> None:
    clock = FakeClock(T0)
    apply(store, clock, CATALOG)
    service = QueueService(store, clock, "http://127.0.0.1:9324")
    url = service.get_queue_url({"QueueName": "orders.fifo"})["QueueUrl"]
    service.send_message({"QueueUrl": url, "MessageBody": "keep me", "MessageGroupId": "g"})
    service.set_queue_attributes(
        {"QueueUrl": url, "Attributes": {"Policy": '{"Version": "2012-10-17"}'}}
    )
    apply(store, clock, CATALOG.replace("60s", "90s").split("  orders:")[0])
    with store.reading() as tx:
        feed = tx.queues.queue("feed-index")
        orders = tx.queues.queue("orders.fifo")
    assert feed is not None
    assert feed.settings.visibility_timeout == 90
    assert orders is not None
    assert orders.origin == "api"
    assert service.receive({"QueueUrl": url})["Messages"][0]["Body"] == "keep me"
    # Declared again: adopted, the catalog's settings win, API-only attributes stay.
    apply(store, clock, CATALOG)
    with store.reading() as tx:
        orders = tx.queues.queue("orders.fifo")
    assert orders is not None
    assert orders.origin == "catalog"
    assert orders.settings.extra == {"Policy": '{"Version": "2012-10-17"}'}


def test_a_queue_created_through_the_api_first_is_adopted(store: Store) -> None:
    clock = FakeClock(T0)
    service = QueueService(store, clock, "http://127.0.0.1:9324")
    service.create_queue({"QueueName": "feed-index", "Attributes": {"VisibilityTimeout": "5"}})
    apply(store, clock, CATALOG)
    with store.reading() as tx:
        feed = tx.queues.queue("feed-index")
    assert feed is not None
    assert feed.origin == "catalog"
    assert feed.settings.visibility_timeout == 60


def test_a_failing_apply_changes_no_queue(store: Store) -> None:
    clock = FakeClock(T0)
    control = Control(store, clock, "alice@ops")

    def breaks(tx: Tx, revision: Revision) -> None:
        raise ControlError("boom")

    with pytest.raises(ControlError):
        control.apply(
            load_catalog_text(CATALOG, "jobdeck.yaml"), steps=[sync_catalog_queues, breaks]
        )
    with store.reading() as tx:
        assert tx.queues.queues() == []
        assert tx.revisions.latest_revision() is None


def test_dead_letters_redrive_back_to_their_source(store: Store) -> None:
    clock = FakeClock(T0)
    apply(store, clock, CATALOG)
    service = QueueService(store, clock, "http://127.0.0.1:9324")
    url = service.get_queue_url({"QueueName": "feed-index"})["QueueUrl"]
    service.send_message({"QueueUrl": url, "MessageBody": "poison"})
    for _ in range(2):
        assert service.receive({"QueueUrl": url, "VisibilityTimeout": 0})["Messages"]
    assert service.receive({"QueueUrl": url}) == {}
    now = int(T0.timestamp() * 1000)
    with store.reading() as tx:
        (row,) = [r for r in admin.stats(tx, now) if r["name"] == "feed-index"]
    assert (row["visible"], row["dead_lettered"]) == (0, 1)
    with store.transaction() as tx:
        done = admin.redrive(tx, "feed-index-dlq", now)
    assert done.moved == {"feed-index": 1}
    got = service.receive({"QueueUrl": url, "AttributeNames": ["ApproximateReceiveCount"]})
    assert got["Messages"][0]["Body"] == "poison"
    assert got["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "1"


def test_worker_environment_points_sdks_at_the_endpoint() -> None:
    env = worker_environment("http://127.0.0.1:9324/", "feed-index")
    assert env["JOBDECK_QUEUE_URL"] == "http://127.0.0.1:9324/000000000000/feed-index"
    assert env["AWS_ENDPOINT_URL_SQS"] == "http://127.0.0.1:9324"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"]
    assert env["AWS_ACCESS_KEY_ID"]
    assert env["AWS_SECRET_ACCESS_KEY"]


def test_catalog_names_resolve_to_their_wire_names(store: Store) -> None:
    clock = FakeClock(T0)
    apply(store, clock, CATALOG)
    with store.reading() as tx:
        revision = tx.revisions.latest_revision()
        assert revision is not None
        catalog = Catalog.model_validate(revision.catalog)
        assert admin.resolve(tx, "orders", catalog) == "orders.fifo"
        assert admin.resolve(tx, "orders-dlq", catalog) == "orders-dlq.fifo"
        assert admin.resolve(tx, "feed-index", catalog) == "feed-index"
        with pytest.raises(admin.QueueAdminError, match="no queue named 'nope'"):
            admin.resolve(tx, "nope", catalog)
