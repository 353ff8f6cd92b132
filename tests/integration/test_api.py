"""The HTTP API against a real Application served on 127.0.0.1: endpoints, filters,
pagination, errors, suspend/resume and logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from tests.integration.test_api_harness import (
    Served,
    serving,
    wait_for_end,
    wait_for_status,
)

pytestmark = pytest.mark.anyio


def assert_error(response: Any, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    for word in words:
        assert word in error["message"]


async def start(served: Served, name: str, **body: Any) -> dict[str, Any]:
    response = await served.client.post(f"/api/v1/schedules/{name}/runs", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/v1/runs/{response.json()['id']}"
    run: dict[str, Any] = response.json()
    return run


async def test_catalog_listings(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        client = served.client
        health = (await client.get("/healthz")).json()
        assert health["status"] == "ok"
        assert health["revision"] == 1

        schedules = (await client.get("/api/v1/schedules")).json()["items"]
        assert [s["name"] for s in schedules] == ["hello", "fails", "slow"]
        assert schedules[0]["next_fire"].startswith("20")
        assert schedules[0]["last_run"] is None

        detail = (await client.get("/api/v1/schedules/hello?upcoming=3")).json()
        assert detail["definition"]["command"][0] == "python3"
        assert [f["at"][5:10] for f in detail["upcoming"]] == ["01-01"] * 3

        workers = (await client.get("/api/v1/workers")).json()["items"]
        assert workers == [
            {
                "name": "indexer",
                "desired": 2,
                "autoscale": None,
                "singleton": False,
                "queue": None,
                "enabled": False,
                "suspension": None,
                "running": 0,
                "restarts": 0,
                "last_exit": None,
                "autoscale_decision": None,
            }
        ]
        commands = (await client.get("/api/v1/commands")).json()["items"]
        assert [c["name"] for c in commands] == ["push"]
        queues = (await client.get("/api/v1/queues")).json()["items"]
        assert [q["name"] for q in queues] == ["inbox"]
        assert queues[0]["visibility_timeout"] == "30s"
        pools = (await client.get("/api/v1/pools")).json()
        small = next(p for p in pools["items"] if p["name"] == "small")
        assert small["memory_limit"] == 256 * 1024 * 1024

        revisions = (await client.get("/api/v1/revisions")).json()["items"]
        assert [(r["number"], r["applied_by"]) for r in revisions] == [(1, "tester@test")]
        one = (await client.get("/api/v1/revisions/1")).json()
        assert one["text"].startswith("version: 1")
        assert_error(await client.get("/api/v1/revisions/9"), 404, "not_found", "revision 9")


async def test_a_run_started_over_the_api_has_its_events_attempts_and_log(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as served:
        started = await start(served, "hello")
        assert (started["trigger"], started["status"]) == ("manual", "pending")
        assert started["requested_by"] == "api@127.0.0.1"
        ended = await wait_for_end(served.client, started["id"])
        assert ended["status"] == "succeeded"
        assert ended["exit_code"] == 0
        assert ended["duration_ms"] > 0
        assert ended["events"][0]["type"] == "created"
        assert "ended" in [e["type"] for e in ended["events"]]
        assert ended["attempts"] == [
            {"id": started["id"], "attempt": 1, "status": "succeeded", "reason": None}
        ]

        log = await served.client.get(f"/api/v1/runs/{started['id']}/log")
        assert log.status_code == 200
        assert log.text == "hello\nworld\n"
        assert log.headers["content-type"].startswith("text/plain")
        assert log.headers["x-jobdeck-run-status"] == "succeeded"
        assert log.headers["x-jobdeck-log-offset"] == log.headers["x-jobdeck-log-size"] == "12"
        rest = await served.client.get(f"/api/v1/runs/{started['id']}/log?offset=6")
        assert rest.text == "world\n"
        beyond = await served.client.get(f"/api/v1/runs/{started['id']}/log?offset=500")
        assert beyond.text == ""
        assert beyond.headers["x-jobdeck-log-offset"] == "12"

        schedule = (await served.client.get("/api/v1/schedules/hello")).json()
        assert schedule["last_run"]["id"] == started["id"]

        audit = (await served.client.get("/api/v1/audit")).json()["items"]
        assert audit[0]["action"] == "run"
        assert audit[0]["via"] == "api"
        assert audit[0]["target"] == "schedule hello"
        assert audit[0]["detail"]["run_id"] == started["id"]


async def test_a_run_is_started_while_the_thread_pool_is_taken(tmp_path: Path) -> None:
    """Starting a run needs no worker thread: slow reads that take every thread of the
    pool (a crowd of dashboards, a large log) do not hold up an operator's run."""
    async with serving(tmp_path) as served:
        suspended = await served.client.post(
            "/api/v1/schedules/fails/suspend", json={"reason": "held for the test"}
        )
        assert suspended.status_code == 201, suspended.text
        limiter = anyio.to_thread.current_default_thread_limiter()
        holders = [object() for _ in range(int(limiter.total_tokens))]
        for holder in holders:
            await limiter.acquire_on_behalf_of(holder)
        try:
            with anyio.fail_after(10):
                started = await start(served, "hello")
                refused = await served.client.post("/api/v1/schedules/fails/runs", json={})
        finally:
            for holder in holders:
                limiter.release_on_behalf_of(holder)
        assert started["status"] == "pending"
        assert refused.status_code == 409, refused.text
        ended = await wait_for_end(served.client, started["id"])
        assert ended["status"] == "succeeded"


async def test_a_live_log_is_followed_by_offset(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        started = await start(served, "slow")
        await wait_for_status(served.client, started["id"], "running")
        offset = 0
        seen = b""
        while b"started\n" not in seen:
            piece = await served.client.get(
                f"/api/v1/runs/{started['id']}/log", params={"offset": offset}
            )
            assert piece.headers["x-jobdeck-run-status"] == "running"
            seen += piece.content
            offset = int(piece.headers["x-jobdeck-log-offset"])
        assert seen == b"started\n"


async def test_overlap_skip_and_ignore_overlap(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        first = await start(served, "slow")
        await wait_for_status(served.client, first["id"], "running")
        second = await start(served, "slow")
        assert (second["status"], second["reason"]) == ("skipped", "overlap")
        third = await start(served, "slow", ignore_overlap=True)
        assert third["status"] == "pending"
        await wait_for_status(served.client, third["id"], "running")


async def test_run_requests_that_are_refused(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        client = served.client
        assert_error(
            await client.post("/api/v1/schedules/nope/runs", json={}),
            404,
            "not_found",
            "'nope'",
        )
        assert_error(
            await client.post("/api/v1/schedules/hello/runs", json={"ignore_overlap": "yes"}),
            400,
            "bad_request",
            "ignore_overlap",
        )
        assert_error(
            await client.post("/api/v1/schedules/hello/runs", json={"force": True}),
            400,
            "bad_request",
            "force",
        )
        assert_error(
            await client.post(
                "/api/v1/schedules/hello/runs",
                content=b"{nope",
                headers={"content-type": "application/json"},
            ),
            400,
            "bad_request",
            "not valid JSON",
        )
        suspended = await client.post(
            "/api/v1/schedules/hello/suspend", json={"reason": "db migration", "until": "2h"}
        )
        assert suspended.status_code == 201, suspended.text
        assert_error(
            await client.post("/api/v1/schedules/hello/runs", json={}),
            409,
            "refused",
            "suspended",
        )
        refused = (await client.get("/api/v1/audit?limit=1")).json()["items"][0]
        assert (refused["action"], refused["outcome"]) == ("run", "refused")


async def test_suspend_and_resume_record_who_and_why(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        client = served.client
        headers = {"X-Jobdeck-User": "carol@laptop"}
        done = await client.post(
            "/api/v1/workers/indexer/suspend", json={"reason": "reindexing"}, headers=headers
        )
        assert done.status_code == 201, done.text
        held = done.json()
        assert (held["kind"], held["name"], held["created_by"]) == (
            "worker",
            "indexer",
            "carol@laptop",
        )
        assert held["until"] is None
        workers = (await client.get("/api/v1/workers")).json()["items"]
        assert workers[0]["suspension"]["reason"] == "reindexing"
        assert_error(
            await client.post("/api/v1/workers/indexer/suspend", json={"reason": "again"}),
            409,
            "conflict",
            "already suspended",
        )
        resumed = await client.post("/api/v1/workers/indexer/resume", headers=headers)
        assert resumed.status_code == 200
        assert resumed.json()["ended_by"] == "carol@laptop"
        assert_error(await client.post("/api/v1/workers/indexer/resume"), 409, "not_suspended")

        until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        timed = await client.post(
            "/api/v1/commands/push/suspend", json={"reason": "freeze", "until": until}
        )
        assert timed.status_code == 201
        assert timed.json()["until"] is not None
        assert timed.json()["created_by"] == "api@127.0.0.1"

        audit = (await client.get("/api/v1/audit")).json()["items"]
        assert [(e["action"], e["target"], e["via"]) for e in audit[:3]] == [
            ("suspend", "command push", "api"),
            ("resume", "worker indexer", "api"),
            ("suspend", "worker indexer", "api"),
        ]


async def test_suspend_errors(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        client = served.client
        assert_error(
            await client.post("/api/v1/schedules/hello/suspend", json={}),
            400,
            "bad_request",
            "reason",
        )
        assert_error(
            await client.post(
                "/api/v1/schedules/hello/suspend", json={"reason": "x", "until": "soon"}
            ),
            400,
            "bad_request",
            "until",
        )
        assert_error(
            await client.post(
                "/api/v1/schedules/hello/suspend",
                json={"reason": "x", "until": "2020-01-01T00:00:00Z"},
            ),
            400,
            "bad_request",
            "not in the future",
        )
        # A schedule's name is not a worker's.
        assert_error(
            await client.post("/api/v1/workers/hello/suspend", json={"reason": "x"}),
            404,
            "not_found",
            "no worker named 'hello'",
        )
        assert_error(await client.post("/api/v1/schedules/nope/resume"), 404, "not_found")


async def test_runs_filters_and_pages(tmp_path: Path, store_url: str | None) -> None:
    async with serving(tmp_path, store_url=store_url) as served:
        client = served.client
        ids = []
        for name in ("hello", "fails", "hello", "fails", "hello"):
            run = await start(served, name)
            ids.append(run["id"])
            await wait_for_end(client, run["id"])

        everything = (await client.get("/api/v1/runs")).json()
        assert [r["id"] for r in everything["items"]] == ids[::-1]
        assert everything["next"] is None

        hello = (await client.get("/api/v1/runs", params={"job": "hello"})).json()["items"]
        assert [r["id"] for r in hello] == [ids[4], ids[2], ids[0]]
        failed = (await client.get("/api/v1/runs", params={"status": "failed"})).json()
        assert [r["id"] for r in failed["items"]] == [ids[3], ids[1]]
        assert {r["exit_code"] for r in failed["items"]} == {3}
        manual = (await client.get("/api/v1/runs?trigger=manual&kind=schedule")).json()
        assert len(manual["items"]) == 5
        assert (await client.get("/api/v1/runs?trigger=retry")).json()["items"] == []

        # Pages follow their `next` link, keeping the filters.
        pages: list[list[int]] = []
        link: str | None = "/api/v1/runs?job=hello&limit=2"
        while link:
            body = (await client.get(link)).json()
            pages.append([r["id"] for r in body["items"]])
            link = body["next"]
        assert pages == [[ids[4], ids[2]], [ids[0]]]

        # Time range: creation time, since inclusive, until exclusive.
        third = (await client.get(f"/api/v1/runs/{ids[2]}")).json()
        since = third["created_at"]
        newer = (await client.get("/api/v1/runs", params={"since": since})).json()["items"]
        assert [r["id"] for r in newer] == [ids[4], ids[3], ids[2]]
        older = (await client.get("/api/v1/runs", params={"until": since})).json()["items"]
        assert [r["id"] for r in older] == [ids[1], ids[0]]

        audit = (await client.get("/api/v1/audit?limit=2")).json()
        assert len(audit["items"]) == 2
        assert audit["next"] == "/api/v1/audit?limit=2&offset=2"
        second = (await client.get(audit["next"])).json()
        assert second["items"][0]["id"] == audit["items"][1]["id"] - 1


async def test_bad_parameters_and_unknown_things(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        client = served.client
        assert_error(await client.get("/api/v1/runs?status=exploded"), 400, "bad_request", "status")
        assert_error(await client.get("/api/v1/runs?limit=0"), 400, "bad_request", "limit")
        assert_error(await client.get("/api/v1/runs?limit=ten"), 400, "bad_request", "limit")
        assert_error(await client.get("/api/v1/runs?since=yesterday"), 400, "bad_request", "ISO")
        assert_error(await client.get("/api/v1/runs/12345"), 404, "not_found", "12345")
        assert_error(await client.get("/api/v1/runs/12345/log"), 404, "not_found", "12345")
        assert_error(await client.get("/api/v1/schedules/nope"), 404, "not_found", "'nope'")
        assert_error(await client.get("/api/v1/nothing"), 404, "not_found", "no such endpoint")
        assert_error(await client.delete("/api/v1/runs"), 405, "method_not_allowed", "DELETE")
        assert_error(await client.get("/api/v1/runs/1/log?offset=-1"), 400, "bad_request", "offset")
