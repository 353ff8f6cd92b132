"""Cancelling runs over the HTTP API, against a real Application with real processes:
a running run's whole tree is stopped, a pending run never starts, an ended run is
refused and unchanged, and every request is audited."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from jobdeck.api.openapi import openapi_document
from jobdeck.execute.proc import is_alive
from tests.integration.test_api_harness import serving, wait_for_end, wait_for_status

pytestmark = pytest.mark.anyio

# The program starts a child that ignores SIGTERM, writes both pids and holds.
HOLDER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
with open(os.environ["PIDS"] + ".tmp", "w") as out:
    out.write(f"{os.getpid()} {child.pid}")
os.rename(os.environ["PIDS"] + ".tmp", os.environ["PIDS"])
time.sleep(600)
"""


def catalog(tmp_path: Path) -> str:
    (tmp_path / "holder.py").write_text(HOLDER)
    return f"""\
version: 1
project: canceltest
pools:
  single: {{max_concurrency: 1}}
schedules:
  holder:
    cron: "0 0 1 1 *"
    command: ["python3", "{tmp_path / "holder.py"}"]
    env: {{PIDS: "{tmp_path / "pids"}"}}
    pool: single
    overlap: allow
    kill_grace: 1s
    timeout: 10m
  quick:
    cron: "0 0 1 1 *"
    command: ["true"]
    pool: single
"""


async def until(check: Any, what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return found


async def test_cancel_stops_the_whole_tree_of_a_running_run_and_records_who_and_why(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, catalog(tmp_path)) as served:
        client = served.client
        run = (await client.post("/api/v1/schedules/holder/runs")).json()
        await wait_for_status(client, run["id"], "running")
        pids = tmp_path / "pids"
        await until(pids.exists, "the program's pids")
        main, child = (int(pid) for pid in pids.read_text().split())
        # A second run waits for the pool (max_concurrency 1): cancelled, it never starts.
        waiting = (await client.post("/api/v1/schedules/quick/runs")).json()
        assert waiting["status"] == "pending"
        answer = await client.post(
            f"/api/v1/runs/{waiting['id']}/cancel", json={"reason": "not needed"}
        )
        assert answer.status_code == 200, answer.text
        assert (answer.json()["status"], answer.json()["reason"]) == ("cancelled", "cancelled")
        events = (await client.get(f"/api/v1/runs/{waiting['id']}")).json()["events"]
        assert "started" not in [e["type"] for e in events]

        answer = await client.post(f"/api/v1/runs/{run['id']}/cancel", json={"reason": "stuck"})
        assert answer.status_code == 202, answer.text
        ended = await wait_for_end(client, run["id"])
        assert (ended["status"], ended["reason"]) == ("cancelled", "cancelled")
        detail = (await client.get(f"/api/v1/runs/{run['id']}")).json()
        assert detail["detail"]["cancelled_by"]
        assert detail["detail"]["cancel_reason"] == "stuck"
        assert "cancel_requested" in [e["type"] for e in detail["events"]]
        # The child ignored SIGTERM: SIGKILL after kill_grace took it too.
        await until(lambda: not is_alive(main, None) and not is_alive(child, None), "the tree")

        # An ended run: refused, unchanged.
        again = await client.post(f"/api/v1/runs/{run['id']}/cancel", json={})
        assert again.status_code == 409
        assert "already ended" in again.json()["error"]["message"]
        assert (await client.get(f"/api/v1/runs/{run['id']}")).json() == detail
        missing = await client.post("/api/v1/runs/999999/cancel")
        assert missing.status_code == 404
        bad = await client.post(f"/api/v1/runs/{run['id']}/cancel", json={"reason": 3})
        assert bad.status_code == 400
        bad = await client.post(f"/api/v1/runs/{run['id']}/cancel", json={"via": "slack"})
        assert bad.status_code == 400
        assert "via must be one of api, cli" in bad.json()["error"]["message"]
        bad = await client.post("/api/v1/schedules/quick/runs", json={"via": "slack"})
        assert bad.status_code == 400
        assert "via must be one of api, cli" in bad.json()["error"]["message"]

        audit = (await client.get("/api/v1/audit")).json()["items"]
        cancels = [a for a in audit if a["action"] == "cancel"]
        assert [(a["outcome"], a["detail"]["run_id"]) for a in cancels] == [
            ("refused", run["id"]),
            ("ok", run["id"]),
            ("ok", waiting["id"]),
        ]
        assert cancels[1]["detail"]["reason"] == "stuck"
        assert cancels[1]["actor"] == detail["detail"]["cancelled_by"]
        assert cancels[1]["target"] == "schedule holder"
        assert {a["via"] for a in cancels} == {"api"}


def test_the_openapi_document_has_the_cancel_endpoint() -> None:
    path = openapi_document()["paths"]["/api/v1/runs/{run_id}/cancel"]["post"]
    assert set(path["responses"]) >= {"200", "202", "404", "409"}
