"""`jobdeck run`, `runs` and `logs` from the real command line, against a real server.

The server is a real Application with its HTTP API on a free 127.0.0.1 port, run on an
event loop in a thread of the test process; the CLI runs in child processes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobdeck.store import open_store
from tests.acceptance.conftest import Jobdeck, Result
from tests.integration.test_api_harness import base_environ, free_port, serving

CATALOG = """\
version: 1
project: clitest
schedules:
  hello:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "print('hello'); print('world')"]
    timeout: 60s
  fails:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "import sys; print('bad', file=sys.stderr); sys.exit(3)"]
    timeout: 60s
  flaky:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "import sys; sys.exit(4)"]
    retry: {failure: 1, backoff: 1s}
    timeout: 60s
  gated:
    cron: "0 0 1 1 *"
    command:
      - python3
      - -c
      - |
        import os, time
        print("before the gate", flush=True)
        while not os.path.exists(os.environ["GATE"]):
            time.sleep(0.05)
        print("after the gate", flush=True)
    env: {GATE: "@GATE@"}
    timeout: 60s
"""

TOKEN = "cli-test-token-0123456789abcdef"

RUN_FIELDS = {
    "id",
    "job",
    "kind",
    "trigger",
    "status",
    "reason",
    "attempt",
    "scheduled_for",
    "started_at",
    "ended_at",
    "exit_code",
    "pool",
}


@dataclass
class LiveServer:
    url: str
    state_dir: Path
    gate: Path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve_in_a_thread(tmp_path)


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with the rules of a public address (on 127.0.0.1)."""
    yield from serve_in_a_thread(
        tmp_path, environ=base_environ(JOBDECK_API_TOKEN=TOKEN), require_token=True
    )


def serve_in_a_thread(tmp_path: Path, text: str = CATALOG, **options: Any) -> Iterator[LiveServer]:
    """A served Application on its own event loop, stopped (with its runs) at the end."""
    gate = tmp_path / "gate"
    catalog = text.replace("@GATE@", str(gate))
    ready: Future[str] = Future()
    stop = threading.Event()

    async def main() -> None:
        async with serving(tmp_path, catalog, **options) as served:
            ready.set_result(served.url)
            await asyncio.to_thread(stop.wait)

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=thread_main, name="jobdeck-server")
    thread.start()
    try:
        url = ready.result(timeout=60)
        yield LiveServer(url, tmp_path / "state", gate)
    finally:
        gate.touch()  # lets a gated run end
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


def cli(jobdeck: Jobdeck, live: LiveServer, *args: str) -> Result:
    env = {"JOBDECK_URL": live.url, "JOBDECK_STATE_DIR": str(live.state_dir)}
    return jobdeck(*args, env=env)


def test_run_wait_succeeds_and_shows_up_in_runs_and_logs(
    jobdeck: Jobdeck, server: LiveServer
) -> None:
    done = cli(jobdeck, server, "run", "hello", "--wait")
    assert done.code == 0, done.err
    run_id = int(done.out.splitlines()[0])
    assert "succeeded" in done.err

    listed = cli(jobdeck, server, "runs", "--json")
    assert listed.code == 0, listed.err
    (item,) = listed.json()
    assert set(item) == RUN_FIELDS
    assert item["id"] == run_id
    assert (item["job"], item["kind"], item["trigger"], item["status"]) == (
        "hello",
        "schedule",
        "manual",
        "succeeded",
    )
    assert item["exit_code"] == 0
    assert item["started_at"].endswith("Z")
    assert item["ended_at"].endswith("Z")

    table = cli(jobdeck, server, "runs", "hello")
    assert table.code == 0
    assert str(run_id) in table.out
    assert "succeeded" in table.out
    assert "manual" in table.out

    shown = cli(jobdeck, server, "logs", str(run_id))
    assert shown.code == 0
    assert shown.out == "hello\nworld\n"


def test_run_wait_exits_1_when_the_run_fails(jobdeck: Jobdeck, server: LiveServer) -> None:
    done = cli(jobdeck, server, "run", "fails", "--wait")
    assert done.code == 1
    assert "failed" in done.err
    assert "exit 3" in done.err
    run_id = int(done.out.splitlines()[0])
    assert cli(jobdeck, server, "logs", str(run_id)).out == "bad\n"
    failed = cli(jobdeck, server, "runs", "--status", "failed", "--json").json()
    assert [r["id"] for r in failed] == [run_id]
    assert cli(jobdeck, server, "runs", "--status", "succeeded", "--json").json() == []


def test_run_wait_follows_the_retries_to_the_last_attempt(
    jobdeck: Jobdeck, server: LiveServer
) -> None:
    done = cli(jobdeck, server, "run", "flaky", "--wait")
    assert done.code == 1
    first = int(done.out.splitlines()[0])
    assert "retried as run" in done.err
    attempts = cli(jobdeck, server, "runs", "flaky", "--json").json()
    assert [(r["attempt"], r["trigger"], r["status"]) for r in attempts] == [
        (2, "retry", "failed"),
        (1, "manual", "failed"),
    ]
    assert attempts[1]["id"] == first
    assert f"run {attempts[0]['id']}: flaky failed" in done.err


def test_run_without_wait_prints_the_id_at_once(jobdeck: Jobdeck, server: LiveServer) -> None:
    done = cli(jobdeck, server, "run", "gated")
    assert done.code == 0, done.err
    run_id = int(done.out.strip())
    run = httpx.get(f"{server.url}/api/v1/runs/{run_id}").json()
    assert run["status"] in ("pending", "running")
    assert run["requested_by"] == "alice"  # the CLI names its user on loopback


def test_logs_follow_streams_until_the_run_ends(jobdeck: Jobdeck, server: LiveServer) -> None:
    run_id = int(cli(jobdeck, server, "run", "gated").out.strip())
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
    environment["JOBDECK_STATE_DIR"] = str(server.state_dir)
    follower = subprocess.Popen(
        [sys.executable, "-m", "jobdeck", "logs", str(run_id), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    try:
        assert follower.stdout is not None
        # The first line arrives while the run still waits at its gate.
        assert follower.stdout.readline() == b"before the gate\n"
        assert follower.poll() is None
        server.gate.touch()
        rest, _ = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert rest == b"after the gate\n"
    assert follower.returncode == 0


def test_unknown_names_and_runs_exit_1(jobdeck: Jobdeck, server: LiveServer) -> None:
    unknown = cli(jobdeck, server, "run", "nope")
    assert unknown.code == 1
    assert "no schedule named 'nope'" in unknown.err
    missing = cli(jobdeck, server, "logs", "999")
    assert missing.code == 1
    assert "no run with id 999" in missing.err
    bad = cli(jobdeck, server, "runs", "--status", "exploded")
    assert bad.code == 2
    assert "--status 'exploded'" in bad.err


def test_run_sends_the_token_a_public_server_needs(
    jobdeck: Jobdeck, token_server: LiveServer
) -> None:
    refused = cli(jobdeck, token_server, "run", "hello")
    assert refused.code == 1
    assert "JOBDECK_API_TOKEN" in refused.err
    env = {
        "JOBDECK_URL": token_server.url,
        "JOBDECK_STATE_DIR": str(token_server.state_dir),
        "JOBDECK_API_TOKEN": TOKEN,
    }
    done = jobdeck("run", "hello", "--wait", env=env)
    assert done.code == 0, done.err
    assert int(done.out.splitlines()[0]) > 0


def test_run_without_a_server_says_where_it_looked(jobdeck: Jobdeck, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = jobdeck("run", "hello", env={"JOBDECK_URL": url})
    assert done.code == 1
    assert url in done.err
    assert "jobdeck serve" in done.err


def test_runs_and_logs_work_without_a_server(jobdeck: Jobdeck, tmp_path: Path) -> None:
    state = tmp_path / "empty-state"
    empty = jobdeck("runs", env={"JOBDECK_STATE_DIR": str(state)})
    assert empty.code == 0
    assert "No runs" in empty.out
    assert jobdeck("runs", "--json", env={"JOBDECK_STATE_DIR": str(state)}).json() == []


def test_a_pending_run_shows_no_start_time(jobdeck: Jobdeck, tmp_path: Path) -> None:
    state = tmp_path / "state"
    created = datetime(2026, 3, 8, 1, 2, 3, tzinfo=UTC)
    store = open_store(None, state_dir=state)
    with store.transaction() as tx:
        run = tx.runs.create_run(
            job="hello", kind="schedule", trigger="manual", status="pending", created_at=created
        )
    store.close()
    listed = jobdeck("runs", env={"JOBDECK_STATE_DIR": str(state)})
    assert listed.code == 0, listed.err
    header, row = listed.out.splitlines()
    started = header.index("STARTED")
    assert row.split()[0] == str(run.id)
    assert row[started:].split()[0] == "-"
    assert "2026-03-08T01:02:03" not in listed.out
    item = jobdeck("runs", "--json", env={"JOBDECK_STATE_DIR": str(state)}).json()[0]
    assert item["started_at"] is None


def _running(live: LiveServer, run_id: int) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{live.url}/api/v1/runs/{run_id}").json()["status"] != "running":
        assert time.monotonic() < deadline, f"run {run_id} did not start"
        time.sleep(0.05)


def test_cancel_stops_a_running_run_and_refuses_an_ended_one(
    jobdeck: Jobdeck, server: LiveServer
) -> None:
    started = cli(jobdeck, server, "run", "gated")
    assert started.code == 0, started.err
    run_id = int(started.out.split()[0])
    _running(server, run_id)
    done = cli(jobdeck, server, "cancel", str(run_id), "--reason", "stuck", "--json")
    assert done.code == 0, done.err
    final = done.json()
    assert (final["status"], final["reason"]) == ("cancelled", "cancelled")
    assert final["detail"]["cancel_reason"] == "stuck"
    assert final["detail"]["cancelled_by"] == "alice"

    again = cli(jobdeck, server, "cancel", str(run_id))
    assert again.code == 1
    assert "already ended" in again.err
    assert httpx.get(f"{server.url}/api/v1/runs/{run_id}").json() == final
    audit = cli(jobdeck, server, "audit", "--json").json()
    assert [(a["action"], a["outcome"], a["via"]) for a in audit][:3] == [
        ("cancel", "refused", "cli"),
        ("cancel", "ok", "cli"),
        ("run", "ok", "cli"),
    ]


def test_suspend_cancel_running_stops_the_active_runs(jobdeck: Jobdeck, server: LiveServer) -> None:
    started = cli(jobdeck, server, "run", "gated")
    run_id = int(started.out.split()[0])
    _running(server, run_id)
    done = cli(
        jobdeck, server, "suspend", "gated", "--reason", "bad data", "--cancel-running", "--json"
    )
    assert done.code == 0, done.err
    shown = done.json()
    assert [(r["id"], r["status"]) for r in shown["cancelled_runs"]] == [(run_id, "cancelled")]
    record = httpx.get(f"{server.url}/api/v1/runs/{run_id}").json()
    assert record["detail"]["cancel_reason"] == "suspended: bad data"
