"""/metrics: present from the start, changing as runs happen, never counting a run twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from jobdeck.clock import FakeClock
from jobdeck.queues.service import QueueService
from tests.integration.test_api_harness import CATALOG, DEADLINE, Served, serving, wait_for_end

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(served: Served) -> Samples:
    response = await served.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def tick_catalog() -> str:
    # The ticking schedule goes among the schedules, before the workers section.
    head, tail = CATALOG.split("workers:\n", 1)
    return (
        head
        + '  tick:\n    rate: 1s\n    command: ["true"]\n    overlap: skip\n    timeout: 30s\n'
        + "workers:\n"
        + tail
    )


async def test_state_gauges_are_there_from_the_start(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        samples = await scrape(served)
        # declared with 2 replicas but disabled: the supervisor keeps none alive
        assert value(samples, "jobdeck_worker_replicas_desired", worker="indexer") == 0
        assert value(samples, "jobdeck_worker_replicas_running", worker="indexer") == 0
        assert value(samples, "jobdeck_worker_restarts_total", worker="indexer") == 0
        limit = value(samples, "jobdeck_pool_memory_limit_bytes", pool="small")
        assert limit == 256 * 1024 * 1024
        assert value(samples, "jobdeck_revision") == 1
        assert not [key for key in samples if key[0] == "jobdeck_runs"]


async def test_runs_and_durations_change_as_runs_happen(
    tmp_path: Path, store_url: str | None
) -> None:
    async with serving(tmp_path, store_url=store_url) as served:
        for name in ("hello", "fails", "hello"):
            started = await served.client.post(f"/api/v1/schedules/{name}/runs", json={})
            await wait_for_end(served.client, started.json()["id"])
        samples = await scrape(served)
        runs = {"kind": "schedule"}
        assert value(samples, "jobdeck_runs", **runs, job="hello", status="succeeded") == 2
        assert value(samples, "jobdeck_runs", **runs, job="fails", status="failed") == 1
        ok = {"kind": "schedule", "job": "hello", "status": "succeeded"}
        assert value(samples, "jobdeck_run_duration_seconds_count", **ok) == 2
        total = value(samples, "jobdeck_run_duration_seconds_sum", **ok)
        assert total is not None
        assert total > 0
        bad = {"kind": "schedule", "job": "fails", "status": "failed"}
        assert value(samples, "jobdeck_run_duration_seconds_count", **bad) == 1

        # A second scrape with nothing new observes nothing twice.
        again = await scrape(served)
        assert value(again, "jobdeck_run_duration_seconds_count", **ok) == 2

        started = await served.client.post("/api/v1/schedules/hello/runs", json={})
        await wait_for_end(served.client, started.json()["id"])
        after = await scrape(served)
        assert value(after, "jobdeck_run_duration_seconds_count", **ok) == 3
        assert value(after, "jobdeck_runs", **runs, job="hello", status="succeeded") == 3


async def test_fire_lateness_and_command_dispatch_are_observed(tmp_path: Path) -> None:
    async with serving(tmp_path, tick_catalog()) as served:
        deadline = time.monotonic() + DEADLINE
        while True:
            ticks = (await served.client.get("/api/v1/runs?job=tick")).json()["items"]
            if ticks:
                break
            assert time.monotonic() < deadline, "the 1s schedule never fired"
            await asyncio.sleep(0.1)
        samples = await scrape(served)
        fired = value(samples, "jobdeck_fire_lateness_seconds_count", schedule="tick")
        assert fired is not None
        assert fired >= 1
        lateness = value(samples, "jobdeck_fire_lateness_seconds_sum", schedule="tick")
        assert lateness is not None
        assert 0 <= lateness < 5 * fired

        invoked = await served.client.post("/api/v1/commands/push/invocations", json={})
        assert invoked.status_code == 201, invoked.text
        await wait_for_end(served.client, invoked.json()["id"])
        samples = await scrape(served)
        assert value(samples, "jobdeck_command_dispatch_seconds_count", command="push") == 1
        ran = {"kind": "command", "job": "push", "status": "succeeded"}
        assert value(samples, "jobdeck_run_duration_seconds_count", **ran) == 1


async def test_other_features_add_their_metric_families(tmp_path: Path) -> None:
    depth = {"inbox": 0}

    def queues() -> Iterable[Metric]:
        gauge = GaugeMetricFamily("jobdeck_queue_depth", "Visible messages.", labels=["queue"])
        for name, visible in depth.items():
            gauge.add_metric([name], visible)
        yield gauge

    async with serving(tmp_path, metric_sources=[queues]) as served:
        assert value(await scrape(served), "jobdeck_queue_depth", queue="inbox") == 0
        depth["inbox"] = 7
        assert value(await scrape(served), "jobdeck_queue_depth", queue="inbox") == 7


async def test_queue_depth_and_the_age_of_the_oldest_message(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        samples = await scrape(served)
        # the catalog's queue and its dead-letter queue exist once applied, empty
        assert value(samples, "jobdeck_queue_messages", queue="inbox", state="visible") == 0
        assert value(samples, "jobdeck_queue_messages", queue="inbox-dlq", state="visible") == 0
        assert value(samples, "jobdeck_queue_oldest_message_age_seconds", queue="inbox") == 0
        earlier = FakeClock(served.app.clock.now() - timedelta(seconds=5))
        sender = QueueService(served.app.store, earlier, "http://127.0.0.1:9324")
        url = sender.get_queue_url({"QueueName": "inbox"})["QueueUrl"]
        for body in ("a", "b", "c"):
            sender.send_message({"QueueUrl": url, "MessageBody": body})
        samples = await scrape(served)
        assert value(samples, "jobdeck_queue_messages", queue="inbox", state="visible") == 3
        age = value(samples, "jobdeck_queue_oldest_message_age_seconds", queue="inbox")
        assert age is not None
        assert age >= 5


async def test_concurrency_keys_have_their_limit_holders_and_waiters(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        store, now = served.app.store, served.app.clock.now()
        with store.transaction() as tx:
            made = [
                tx.runs.create_run(
                    job=f"job-{i}", kind="command", trigger="api", status="pending", created_at=now
                )
                for i in range(3)
            ]
        with store.transaction() as tx:
            held = [tx.runs.claim_concurrency(r.id, "db", 2, at=now) for r in made]
        assert held == [True, True, False]
        samples = await scrape(served)
        assert value(samples, "jobdeck_concurrency_key_limit", key="db") == 2
        assert value(samples, "jobdeck_concurrency_key_holders", key="db") == 2
        assert value(samples, "jobdeck_concurrency_key_waiters", key="db") == 1
