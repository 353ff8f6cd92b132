"""`jobdeck queue stats|redrive` and queues in `jobdeck status`, from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobdeck.clock import SystemClock
from jobdeck.queues.service import QueueService
from jobdeck.store import open_store
from tests.acceptance.conftest import Jobdeck


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    url: str = request.getfixturevalue("pg_url")
    return {"JOBDECK_STORE": url}


def dead_letter_two(workdir: Path, store_env: dict[str, str]) -> None:
    """Sends two messages to feed-index and receives them past its max_receive_count (5)."""
    store = open_store(store_env.get("JOBDECK_STORE"), state_dir=workdir / ".jobdeck")
    try:
        service = QueueService(store, SystemClock(), "http://127.0.0.1:9324")
        url = service.get_queue_url({"QueueName": "feed-index"})["QueueUrl"]
        service.send_message({"QueueUrl": url, "MessageBody": "poison"})
        service.send_message({"QueueUrl": url, "MessageBody": "fine"})
        for _ in range(5):
            got = service.receive(
                {"QueueUrl": url, "VisibilityTimeout": 0, "MaxNumberOfMessages": 10}
            )
            assert {m["Body"] for m in got["Messages"]} == {"poison", "fine"}
        # A sixth receive finds both past max_receive_count: they move to feed-index-dlq.
        got = service.receive({"QueueUrl": url, "VisibilityTimeout": 0, "MaxNumberOfMessages": 10})
        assert got == {}
    finally:
        store.close()


def test_queue_stats_status_and_redrive(
    jobdeck: Jobdeck, workdir: Path, store_env: dict[str, str]
) -> None:
    assert jobdeck("apply", "--yes", env=store_env).code == 0
    stats = jobdeck("queue", "stats", "--json", env=store_env)
    assert stats.code == 0, stats.err
    names = [q["name"] for q in stats.json()]
    assert names == sorted(names)
    assert {"feed-index", "feed-index-dlq"} <= set(names)
    dead_letter_two(workdir, store_env)

    one = jobdeck("queue", "stats", "feed-index", "--json", env=store_env).json()
    assert (one["visible"], one["in_flight"], one["dead_lettered"]) == (0, 0, 2)
    assert one["dead_letter_queue"] == "feed-index-dlq"
    text = jobdeck("queue", "stats", env=store_env).out
    assert "2 in feed-index-dlq" in text

    status = jobdeck("status", "--json", env=store_env).json()
    (queue,) = [q for q in status["queues"] if q["name"] == "feed-index"]
    assert (queue["name"], queue["visible"], queue["in_flight"], queue["dead_lettered"]) == (
        "feed-index",
        0,
        0,
        2,
    )
    assert "feed-index" in jobdeck("status", env=store_env).out

    moved = jobdeck("queue", "redrive", "feed-index", env=store_env)
    assert moved.code == 0, moved.err
    assert moved.out.strip() == "moved 2 messages out of feed-index-dlq: 2 to feed-index"
    after = jobdeck("queue", "stats", "feed-index", "--json", env=store_env).json()
    assert (after["visible"], after["dead_lettered"]) == (2, 0)
    audit = jobdeck("audit", "--json", env=store_env).json()
    assert audit[0]["action"] == "queue redrive"
    assert audit[0]["detail"]["moved"] == {"feed-index": 2}
    # The redrive was a message-move task, listed as SQS lists them.
    store = open_store(store_env.get("JOBDECK_STORE"), state_dir=workdir / ".jobdeck")
    try:
        service = QueueService(store, SystemClock(), "http://127.0.0.1:9324")
        arn = "arn:aws:sqs:us-east-1:000000000000:feed-index-dlq"
        (task,) = service.list_message_move_tasks({"SourceArn": arn})["Results"]
    finally:
        store.close()
    assert (task["Status"], task["ApproximateNumberOfMessagesMoved"]) == ("COMPLETED", 2)
    assert audit[0]["detail"]["task"]


def test_queue_commands_name_unknown_queues(jobdeck: Jobdeck) -> None:
    assert jobdeck("apply", "--yes").code == 0
    missing = jobdeck("queue", "redrive", "nope")
    assert missing.code == 1
    assert "no queue named 'nope'" in missing.err
    assert "feed-index" in missing.err
    plain = jobdeck("queue", "redrive", "feed-index-dlq")
    assert plain.code == 0
    assert plain.out.strip() == "moved 0 messages out of feed-index-dlq"
