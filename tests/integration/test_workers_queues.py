"""Workers on a real SQS-compatible endpoint, consuming with plain boto3: autoscaling on
the visible backlog (out promptly, in after a cooldown, each stop with its grace), and a
worker killed mid-message losing nothing."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sqs_harness import SqsServer
from tests.integration.test_workers_harness import Deck, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def endpoint(sqs_store_url: str) -> Iterator[SqsServer]:
    server = SqsServer(sqs_store_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def deck(endpoint: SqsServer, tmp_path: Path) -> AsyncIterator[Deck]:
    made = Deck(tmp_path, endpoint.store_url)
    try:
        yield made
    finally:
        await made.cleanup()


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_autoscaling_follows_the_backlog_out_and_back_in(
    deck: Deck, endpoint: SqsServer, tmp_path: Path
) -> None:
    folder = tmp_path / "consumer"
    folder.mkdir()
    (folder / "hold").touch()  # the replicas take nothing until the backlog is there
    engine = await deck.engine(sqs_url=endpoint.endpoint, cooldown=timedelta(seconds=2))
    deck.apply(
        engine,
        f"""
        version: 1
        project: scaling
        queues:
          jobs: {{visibility_timeout: 10s}}
        workers:
          consumer:
            command: {deck.argv("--sqs", str(folder))}
            queue: jobs
            autoscale: {{min: 1, max: 3, backlog_per_replica: 4}}
            stop_grace: 5s
        """,
    )
    await until(lambda: len(engine.running("consumer")) == 1, "the minimum of one replica")
    sqs = endpoint.client()
    url = sqs.get_queue_url(QueueName="jobs")["QueueUrl"]
    for start in (0, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"job-{i}"} for i in range(start, start + 10)],
        )
    # 20 visible, 4 per replica: out to the maximum of 3, promptly.
    await until(lambda: len(engine.running("consumer")) == 3, "three replicas", within=15)
    shown = engine.worker_status("consumer")
    assert shown["desired"] == 3
    assert shown["autoscale_decision"]["action"] == "out"
    assert shown["autoscale_decision"]["visible"] >= 12
    (folder / "hold").unlink()
    await until(lambda: len(records(folder / "done")) == 20, "every message processed")
    # Drained: back in to 1, but only after the cooldown, and each stop with SIGTERM.
    await until(lambda: len(engine.running("consumer")) == 1, "back to one replica", within=30)
    with engine.store.reading() as tx:
        decisions = [e.detail for e in tx.workers.worker_events("consumer", types=("autoscale",))]
    actions = [d["action"] for d in decisions]
    assert actions[0] == "start"
    assert "out" in actions
    assert actions[-1] == "in"
    assert actions[-2] == "cooldown"
    cooled = decisions[-2]
    scaled = decisions[-1]
    from datetime import datetime

    waited = datetime.fromisoformat(scaled["at"]) - datetime.fromisoformat(cooled["at"])
    assert waited >= timedelta(seconds=2)
    stopped = [r for r in engine.runs("consumer") if r.reason == "scaled_in"]
    assert len(stopped) == 2
    terms = {pid for what, pid, _, _ in deck.life.entries() if what == "term"}
    ends = {pid for what, pid, _, _ in deck.life.entries() if what == "end"}
    for run in stopped:
        assert run.status == "cancelled"
        pid = int(run.detail["pid"])
        assert pid in terms  # asked with SIGTERM, and it finished on its own
        assert pid in ends
        assert run.detail.get("signal") != signal.SIGKILL
    assert sorted(r["body"] for r in records(folder / "done")) == sorted(
        f"job-{i}" for i in range(20)
    )
    assert engine.worker_status("consumer")["autoscale_decision"]["action"] == "in"


async def test_a_worker_killed_mid_message_loses_nothing(
    deck: Deck, endpoint: SqsServer, tmp_path: Path
) -> None:
    folder = tmp_path / "consumer"
    folder.mkdir()
    (folder / "hang-once").touch()  # the first process takes a message and hangs
    engine = await deck.engine(sqs_url=endpoint.endpoint)
    deck.apply(
        engine,
        f"""
        version: 1
        project: durable
        queues:
          tasks: {{visibility_timeout: 2s}}
        workers:
          consumer:
            command: {deck.argv("--sqs", str(folder))}
            queue: tasks
            replicas: 1
            env: {{AWS_MAX_ATTEMPTS: "1"}}
        """,
    )
    await until(lambda: len(engine.running("consumer")) == 1, "the worker running")
    first = engine.running("consumer")[0]
    sqs = endpoint.client()
    url = sqs.get_queue_url(QueueName="tasks")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="article-42")
    await until(
        lambda: any(what == "hanging" for what, _, _, _ in deck.life.entries()),
        "the worker to take the message and hang",
    )
    os.kill(int(first.detail["pid"]), signal.SIGKILL)  # mid-message, no clean-up
    await until(lambda: records(folder / "done"), "the message processed again", within=30)
    received = records(folder / "received")
    assert [r["body"] for r in received] == ["article-42", "article-42"]
    assert [r["count"] for r in received] == [1, 2]
    # It came back only once its visibility timeout had passed.
    assert received[1]["at"] - received[0]["at"] >= 1.9
    assert received[1]["pid"] != received[0]["pid"]
    killed = engine.store.runs.run(first.id)
    assert killed is not None
    assert killed.status == "failed"
    assert killed.detail.get("signal") == signal.SIGKILL
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }
    # The worker got the endpoint, its queue's URL and a region from the engine.
    assert url.endswith("/tasks")
    env_log = engine.app.log_path(first.id).read_text()
    assert "started" in env_log
