"""Backfill and the re-run of a slot over real HTTP, on SQLite and PostgreSQL: the runs,
their audit entries, the errors in the API's shape, and jitter on the schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_api_harness import serving, wait_for_end

pytestmark = pytest.mark.anyio

CATALOG = """\
version: 1
project: backfill
timezone: Asia/Tokyo
schedules:
  nightly:
    cron: "0 3 * * *"
    command: ["python3", "-c", "import os; print(os.environ['JOBDECK_SCHEDULED_FOR'])"]
    timeout: 60s
  spread:
    rate: 1h
    jitter: 5m
    command: ["true"]
"""


def assert_error(response: Any, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    for word in words:
        assert word in error["message"], error["message"]


async def test_backfill_over_http_runs_each_slot_once_with_its_time_and_is_audited(
    tmp_path: Path, store_url: str | None
) -> None:
    async with serving(tmp_path, CATALOG, store_url=store_url) as served:
        client = served.client
        body = {"from": "2026-11-01T00:00", "to": "2026-11-03T23:59", "via": "cli"}
        # Without an offset, in the schedule's zone: 03:00 Tokyo is 18:00 UTC the day before.
        preview = await client.post(
            "/api/v1/schedules/nightly/backfill", json={**body, "dry_run": True}
        )
        assert preview.status_code == 200, preview.text
        shown = preview.json()
        assert [s["slot"] for s in shown["slots"]] == [
            "2026-10-31T18:00:00Z",
            "2026-11-01T18:00:00Z",
            "2026-11-02T18:00:00Z",
        ]
        assert (shown["dry_run"], shown["to_run"], shown["kept"]) == (True, 3, 0)
        assert (await client.get("/api/v1/runs?trigger=backfill")).json()["items"] == []

        done = await client.post("/api/v1/schedules/nightly/backfill", json=body)
        assert done.status_code == 201, done.text
        runs = [s["run"] for s in done.json()["slots"]]
        assert [r["scheduled_for"] for r in runs] == [s["slot"] for s in shown["slots"]]
        assert {r["trigger"] for r in runs} == {"backfill"}
        for run in runs:
            ended = await wait_for_end(client, run["id"])
            assert ended["status"] == "succeeded"
            log = (await client.get(f"/api/v1/runs/{run['id']}/log")).text
            assert log.strip().replace("+00:00", "Z") == run["scheduled_for"]

        again = (await client.post("/api/v1/schedules/nightly/backfill", json=body)).json()
        assert [s["action"] for s in again["slots"]] == ["keep"] * 3
        assert [s["existing_run"] for s in again["slots"]] == [r["id"] for r in runs]

        # One slot again, with its own time.
        rerun = await client.post(
            "/api/v1/schedules/nightly/runs", json={"slot": "2026-11-01T18:00:00Z"}
        )
        assert rerun.status_code == 201, rerun.text
        assert rerun.json()["scheduled_for"] == "2026-11-01T18:00:00Z"
        assert (await wait_for_end(client, rerun.json()["id"]))["status"] == "succeeded"

        # The dashboard marks backfilled runs, in the schedule's history and on the run.
        page = (await client.get("/schedules/nightly")).text
        assert page.count('class="pill backfill"') == 3
        one = (await client.get(f"/runs/{runs[0]['id']}")).text
        assert 'id="backfilled"' in one
        plain = (await client.get(f"/runs/{rerun.json()['id']}")).text
        assert 'id="backfilled"' not in plain

        audit = (await client.get("/api/v1/audit")).json()["items"]
        backfills = [e for e in audit if e["action"] == "backfill"]
        assert len(backfills) == 2  # the dry run changed nothing and is not recorded
        first = backfills[-1]
        assert (first["via"], first["target"], first["outcome"]) == (
            "cli",
            "schedule nightly",
            "ok",
        )
        assert first["detail"]["runs"] == [r["id"] for r in runs]
        slot_runs = [e for e in audit if e["action"] == "run" and "slot" in e["detail"]]
        assert [e["detail"]["run_id"] for e in slot_runs] == [rerun.json()["id"]]


async def test_bad_ranges_and_slots_are_clear_errors_that_change_nothing(
    tmp_path: Path, store_url: str | None
) -> None:
    async with serving(tmp_path, CATALOG, store_url=store_url) as served:
        client = served.client
        url = "/api/v1/schedules/spread/backfill"
        assert_error(
            await client.post(url, json={"from": "2026-01-01T00:00Z", "to": "2026-03-01T00:00Z"}),
            400,
            "bad_request",
            "more than 1,000 slots",
            "split the range",
        )
        assert_error(
            await client.post(url, json={"from": "2026-01-02T00:00Z", "to": "2026-01-01T00:00Z"}),
            400,
            "bad_request",
            "swap them",
        )
        assert_error(
            await client.post(url, json={"from": "2026-01-01T00:00Z", "to": "2999-01-01T00:00Z"}),
            400,
            "bad_request",
            "in the future",
        )
        assert_error(
            await client.post(url, json={"from": "yesterday", "to": "2026-01-01T00:00Z"}),
            400,
            "bad_request",
            "from 'yesterday' is not an ISO 8601 time",
        )
        assert_error(
            await client.post(url, json={"from": "2026-01-01T00:00Z", "to": "x", "rerun": "yes"}),
            400,
            "bad_request",
            "rerun must be true or false",
        )
        assert_error(await client.post(url, json={"to": "2026-01-01T00:00Z"}), 400, "bad_request")
        assert_error(
            await client.post(
                "/api/v1/schedules/nope/backfill", json={"from": "2026-01-01", "to": "2026-01-02"}
            ),
            404,
            "not_found",
        )
        assert_error(
            await client.post("/api/v1/schedules/spread/runs", json={"slot": "2026-01-01T00:30Z"}),
            400,
            "bad_request",
            "is not a slot",
            "2026-01-01T01:00:00Z",
        )
        suspended = await client.post("/api/v1/schedules/spread/suspend", json={"reason": "hold"})
        assert suspended.status_code == 201
        assert_error(
            await client.post(url, json={"from": "2026-01-01T00:00Z", "to": "2026-01-01T05:00Z"}),
            409,
            "refused",
            "suspended: hold",
        )
        assert (await client.get("/api/v1/runs")).json()["items"] == []
        refused = [
            e
            for e in (await client.get("/api/v1/audit")).json()["items"]
            if e["action"] == "backfill"
        ]
        assert [e["outcome"] for e in refused] == ["refused"]

        # Jitter on the schedule's page: each upcoming slot with its delay and start.
        page = (await client.get("/schedules/spread")).text
        assert 'id="jitter"' in page
        assert page.count('class="jitter"') == 5

        detail = (await client.get("/api/v1/schedules/spread")).json()
        upcoming = detail["upcoming"][0]
        assert 0 <= upcoming["jitter_ms"] < 300_000
        assert detail["definition"]["jitter"] == "5m"
