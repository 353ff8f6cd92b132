"""Notices and alerts seen from outside: the notices listing, a run's notices, the
metrics, and the notify webhook received by a real HTTP server, on a served engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_api_harness import serving, wait_for_end
from tests.integration.test_api_metrics import scrape, value
from tests.integration.test_notify import Receiver, Request, ok_json

pytestmark = pytest.mark.anyio


def catalog(hook: str) -> str:
    return f"""\
version: 1
project: alerting
defaults:
  notify_policy: {{after: 2, recovery: true}}
schedules:
  fails:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "import sys; print('bad'); sys.exit(3)"]
    timeout: 60s
    notify: ["webhook:{hook}"]
  hello:
    cron: "0 0 1 1 *"
    command: ["true"]
    timeout: 60s
    notify: ["webhook:{hook}"]
    alerts: {{slow: 30s, fast: auto}}
"""


async def test_notices_listing_run_detail_metrics_and_webhook(tmp_path: Path) -> None:
    bodies: list[dict[str, Any]] = []

    def record(request: Request, index: int) -> tuple[int, dict[str, str], bytes]:
        bodies.append(request.json())
        return ok_json({"ok": True})

    receiver = Receiver(record)
    try:
        async with serving(tmp_path, catalog(f"{receiver.url}/hook")) as served:
            ids = []
            for _ in range(2):
                started = await served.client.post("/api/v1/schedules/fails/runs", json={})
                ids.append(started.json()["id"])
                await wait_for_end(served.client, ids[-1])
            deadline = time.monotonic() + 30
            while not bodies:
                assert time.monotonic() < deadline, "no notice reached the webhook"
                await asyncio.sleep(0.05)
            assert [(b["type"], b["run"]["id"]) for b in bodies] == [("run.failed", ids[1])]

            listed = (await served.client.get("/api/v1/notices?job=fails")).json()
            items = listed["items"]
            assert [(n["run_id"], n["event"], n["sent"]) for n in items] == [
                (ids[1], "run.failed", True),
                (ids[0], "run.failed", False),
            ]
            assert items[1]["why"] == "failure 1 in a row; notify_policy.after is 2"
            assert items[0]["consecutive_failures"] == 2
            bad = await served.client.get("/api/v1/notices?kind=nope")
            assert bad.status_code == 400

            first = (await served.client.get(f"/api/v1/runs/{ids[0]}")).json()
            assert [(n["event"], n["sent"]) for n in first["notices"]] == [("run.failed", False)]

            page = await served.client.get(f"/runs/{ids[0]}")
            assert page.status_code == 200
            assert 'id="notices"' in page.text
            assert "held back" in page.text
            assert "failure 1 in a row; notify_policy.after is 2" in page.text

            samples = await scrape(served)
            failed = {"kind": "schedule", "job": "fails", "event": "run.failed"}
            assert value(samples, "jobdeck_alerts_total", **failed, sent="true") == 1
            assert value(samples, "jobdeck_alerts_total", **failed, sent="false") == 1
            slow = {"kind": "schedule", "job": "hello", "alert": "slow", "source": "catalog"}
            assert value(samples, "jobdeck_alert_threshold_seconds", **slow) == 30
            # fast: auto learns from five successful runs; none yet, so no threshold.
            assert not [k for k in samples if dict(k[1]).get("alert") == "fast"]
    finally:
        receiver.close()
