"""The newsroom example's queue programs, as its catalog declares them, on a real endpoint:
the producer enqueues articles with boto3, the two feed-indexers index them and announce
their URLs, and the singleton sitemap-notifier pings once per batch."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from jobdeck.queues.catalog import worker_environment
from tests.integration.sqs_harness import SqsServer
from tests.integration.test_workers_harness import Deck, until

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "newsroom"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[SqsServer]:
    server = SqsServer(f"sqlite:///{tmp_path / 'jobdeck.db'}")
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


def queue_side(text: str) -> str:
    """The example catalog with its queues, pools and workers only (no batches)."""
    yaml = YAML()
    data = yaml.load(text)
    for section in ("schedules", "commands"):
        data.pop(section, None)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


async def test_the_newsroom_workers_index_and_notify(
    deck: Deck, endpoint: SqsServer, tmp_path: Path
) -> None:
    shutil.copytree(EXAMPLE / "newsroom", tmp_path / "newsroom")
    # "python3" of the catalog is this interpreter, with boto3.
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    engine = await deck.engine(sqs_url=endpoint.endpoint, environ={"PATH": path})
    deck.apply(engine, queue_side((EXAMPLE / "jobdeck.yaml").read_text()))
    await until(lambda: len(engine.running("feed-indexer")) == 2, "two feed-indexers")
    await until(lambda: len(engine.running("sitemap-notifier")) == 1, "the sitemap-notifier")

    # The producer, as its schedule runs it: the endpoint's environment and FEED_QUEUE.
    produced = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsroom.workers.produce_articles",
        cwd=tmp_path,
        env={
            **os.environ,
            **worker_environment(endpoint.endpoint, None),
            "FEED_QUEUE": "feed-index",
            "PYTHONPATH": str(tmp_path),
        },
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await produced.communicate()
    assert produced.returncode == 0
    count = int(out.decode().split("enqueued ")[1].split()[0])

    def indexed() -> int:
        logs = [engine.app.log_path(r.id).read_text() for r in engine.runs("feed-indexer")]
        return sum(text.count("indexed ") for text in logs)

    def pinged() -> int:
        logs = [engine.app.log_path(r.id).read_text() for r in engine.runs("sitemap-notifier")]
        total = 0
        for text in logs:
            for line in text.splitlines():
                if line.startswith("pinged the search engines with"):
                    total += int(line.split()[5])
        return total

    await until(lambda: indexed() == count, f"{count} articles indexed", within=60)
    await until(lambda: pinged() == count, f"{count} URLs pinged", within=60)
    sqs = endpoint.client()
    for queue in ("feed-index", "sitemap-updates"):
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "0"
    # Nothing crashed on the way: the same processes run as at the start.
    assert len(engine.runs("feed-indexer")) == 2
    assert len(engine.runs("sitemap-notifier")) == 1
