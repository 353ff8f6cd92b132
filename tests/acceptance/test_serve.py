"""`jobdeck serve` as a user runs it: a real server process, restarted and killed.

Runs outlive the engine (each has its own shim), so a restart or a `kill -9` of the
server neither kills nor loses them; a run whose process died while no engine ran ends
`lost`. A new applied revision is picked up without a restart.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import boto3
import httpx
import pytest

from tests.acceptance.server import Server, wait_for

CATALOG = """\
version: 1
project: servetest
schedules:
  slow:
    cron: "0 0 1 1 *"
    command:
      - python3
      - -c
      - "import time; print('begin', flush=True); time.sleep({sleep}); print('end')"
    timeout: 2m
  quick:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "print('quick ran')"]
"""


def write_catalog(workdir: Path, text: str) -> None:
    (workdir / "jobdeck.yaml").write_text(text)


def cli(server: Server, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobdeck", *args],
        cwd=server.workdir,
        env=server.environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


def make_server(tmp_path: Path, servers: list[Server], **kwargs: Any) -> Server:
    server = Server(tmp_path, args=("--isolation", "rlimit"), **kwargs)
    servers.append(server)
    return server


def run_record(server: Server, run_id: int) -> dict[str, Any]:
    record: dict[str, Any] = server.get(f"/api/v1/runs/{run_id}")
    return record


def start_run(server: Server, name: str) -> int:
    response = server.post(f"/api/v1/schedules/{name}/runs")
    assert response.status_code == 201, response.text
    run_id: int = response.json()["id"]
    return run_id


def ended(server: Server, run_id: int) -> dict[str, Any] | None:
    record = run_record(server, run_id)
    return record if record["status"] not in ("pending", "running") else None


def runs_in_store(state_dir: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(state_dir / "jobdeck.db") as db:
        return db.execute("SELECT id, job, status, reason FROM runs ORDER BY id").fetchall()


def test_serve_runs_a_schedule_and_stops_cleanly_on_sigterm(
    tmp_path: Path, servers: list[Server]
) -> None:
    write_catalog(tmp_path, CATALOG.format(sleep=0))
    server = make_server(tmp_path, servers)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    done = cli(server, "run", "quick", "--wait")
    assert done.returncode == 0, done.stderr
    run_id = int(done.stdout.split()[0])
    record = run_record(server, run_id)
    assert record["status"] == "succeeded"
    assert record["trigger"] == "manual"
    logs = cli(server, "logs", str(run_id))
    assert "quick ran" in logs.stdout
    assert server.stop(signal.SIGTERM) == 0


def test_a_run_survives_a_clean_restart_and_is_adopted(
    tmp_path: Path, servers: list[Server]
) -> None:
    write_catalog(tmp_path, CATALOG.format(sleep=3))
    server = make_server(tmp_path, servers)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    run_id = start_run(server, "slow")
    wait_for(lambda: run_record(server, run_id)["status"] == "running", what="running")
    assert server.stop(signal.SIGTERM) == 0
    server.start()
    record = wait_for(lambda: ended(server, run_id), timeout=60, what="the adopted run")
    assert record["status"] == "succeeded", record
    types = [event["type"] for event in record["events"]]
    assert "adopted" in types
    log = cli(server, "logs", str(run_id)).stdout
    assert "begin" in log
    assert "end" in log


def test_kill_9_of_the_server_neither_kills_nor_loses_the_run(
    tmp_path: Path, servers: list[Server]
) -> None:
    write_catalog(tmp_path, CATALOG.format(sleep=3))
    server = make_server(tmp_path, servers)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    run_id = start_run(server, "slow")
    wait_for(lambda: run_record(server, run_id)["status"] == "running", what="running")
    server.kill9()
    server.start()
    record = wait_for(lambda: ended(server, run_id), timeout=60, what="the adopted run")
    assert record["status"] == "succeeded", record
    assert record["exit_code"] == 0
    assert "end" in cli(server, "logs", str(run_id)).stdout


def test_a_run_killed_while_the_server_is_down_ends_lost(
    tmp_path: Path, servers: list[Server]
) -> None:
    write_catalog(tmp_path, CATALOG.format(sleep=60))
    server = make_server(tmp_path, servers)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    run_id = start_run(server, "slow")
    wait_for(lambda: run_record(server, run_id)["status"] == "running", what="running")
    run_dir = server.state_dir / "runs" / str(run_id)
    shim = _record(run_dir)
    assert {"shim_pid", "child_pid"} <= shim.keys()
    server.kill9()
    # The host loses the run while no engine watches: its supervisor and program die.
    os.kill(shim["shim_pid"], signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(shim["child_pid"], signal.SIGKILL)
    wait_for(lambda: not _alive(shim["shim_pid"]), what="the shim to die")
    assert "status" not in _record(run_dir), "the killed shim wrote no result"
    server.start()
    record = wait_for(lambda: ended(server, run_id), timeout=30, what="the lost run")
    assert record["status"] == "lost"
    assert record["reason"] == "engine_restart"


def _record(run_dir: Path) -> dict[str, Any]:
    """The run's record (``run.jsonl``: one object per line, written by the engine and
    the run's supervisor) with every part merged, the spec left out."""
    merged: dict[str, Any] = {}
    for line in (run_dir / "run.jsonl").read_text().splitlines():
        for kind, part in json.loads(line).items():
            if kind != "spec":
                merged.update(part)
    return merged


def test_a_new_revision_is_picked_up_within_two_seconds(
    tmp_path: Path, servers: list[Server]
) -> None:
    write_catalog(tmp_path, CATALOG.format(sleep=0))
    server = make_server(tmp_path, servers)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    write_catalog(
        tmp_path,
        CATALOG.format(sleep=0)
        + '  ticker:\n    rate: 1s\n    command: ["python3", "-c", "print(\'tick\')"]\n',
    )
    assert cli(server, "apply", "--yes").returncode == 0
    applied = time.monotonic()
    wait_for(
        lambda: any(s["name"] == "ticker" for s in server.get("/api/v1/schedules")["items"]),
        timeout=10,
        what="the new schedule in the API",
    )
    first = wait_for(
        lambda: server.get("/api/v1/runs?job=ticker")["items"],
        timeout=10,
        what="the new schedule's first run",
    )
    assert time.monotonic() - applied < 2.0 + 1.5  # picked up in 2 s, fired in the next 1 s
    assert first[0]["trigger"] == "schedule"
    assert first[0]["scheduled_for"] is not None


def test_serve_speaks_sqs_for_the_catalog_queues_and_stops_cleanly(
    tmp_path: Path, servers: list[Server]
) -> None:
    write_catalog(tmp_path, CATALOG.format(sleep=0) + "queues:\n  feed-index: {}\n")
    server = make_server(tmp_path, servers, sqs=True)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    sqs = boto3.client(
        "sqs",
        endpoint_url=server.sqs_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    url = sqs.get_queue_url(QueueName="feed-index")["QueueUrl"]
    assert url.endswith("/feed-index")
    sqs.send_message(QueueUrl=url, MessageBody="article 1")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]
    assert [m["Body"] for m in got] == ["article 1"]
    names = sqs.list_queues()["QueueUrls"]
    assert any(n.endswith("/feed-index-dlq") for n in names)
    assert server.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("policy", ["latest", "all", "none"])
def test_slots_missed_while_the_server_was_down_follow_the_catchup_policy(
    tmp_path: Path, servers: list[Server], policy: str
) -> None:
    write_catalog(
        tmp_path,
        "version: 1\nproject: catchup\nschedules:\n  tick:\n    rate: 1s\n"
        '    command: ["true"]\n'
        f"    catchup: {policy}\n    catchup_window: 1h\n",
    )
    server = make_server(tmp_path, servers)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    wait_for(lambda: server.get("/api/v1/runs?job=tick")["items"], what="a first fire")
    assert server.stop(signal.SIGTERM) == 0
    down_since = time.time()
    time.sleep(3.5)  # the engine is down: at least three slots go by
    server.start()

    def caught_up() -> list[dict[str, Any]] | None:
        runs: list[dict[str, Any]] = server.get("/api/v1/runs?job=tick&trigger=catchup&limit=100")[
            "items"
        ]
        return runs or None

    decided = wait_for(caught_up, timeout=20, what="the catch-up decisions")
    every = {r["id"]: r for r in server.get("/api/v1/runs?job=tick&limit=500")["items"]}
    # A caught-up slot meets the overlap policy against a run from before the engine
    # went down that had not ended (it was still pending or running at the stop, and
    # runs now): by the policy, not a defect. Against a fire that came after it, or a
    # run that ended while the engine was down, it never does.
    before = {
        i
        for i, r in every.items()
        if r["trigger"] == "schedule" and r["created_at"] < _iso(down_since)
    }
    overlapped = [r for r in decided if r["status"] == "skipped" and r["reason"] == "overlap"]
    for run in overlapped:
        assert set(run["detail"]["active_runs"]) <= before, (run, every)
    rest = [r for r in decided if r not in overlapped]
    ran = [r for r in rest if r["status"] != "skipped"]
    missed = [r for r in rest if r["status"] == "skipped"]
    assert all(r["reason"] == "missed" for r in missed)
    slots = sorted(r["scheduled_for"] for r in decided)
    assert len(slots) >= 3
    assert all(slot >= _iso(down_since - 1) for slot in slots)
    if policy == "latest":
        assert len(ran) + len(overlapped) == 1
        chosen = (ran or overlapped)[0]
        assert chosen["scheduled_for"] == slots[-1]  # the most recent missed slot
    elif policy == "all":
        # The default overlap (skip) queues the caught-up slots behind each other.
        assert missed == []
        assert len(ran) + len(overlapped) == len(slots)
        for run_id in [int(r["id"]) for r in ran]:
            record = wait_for(partial(ended, server, run_id), what="a caught-up run")
            assert record["status"] == "succeeded"
    else:
        assert ran == []


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Plays Slack's Web API and a webhook receiver at the wire; records every request."""

    seen: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, body))
        answer = json.dumps({"ok": True, "channel": "C1", "ts": "1.2"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_a_failed_run_is_notified_to_slack_and_a_webhook(
    tmp_path: Path, servers: list[Server]
) -> None:
    _Receiver.seen = []
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    try:
        write_catalog(
            tmp_path,
            "version: 1\nproject: alerts\nschedules:\n  broken:\n"
            '    cron: "0 0 1 1 *"\n'
            '    command: ["python3", "-c", "print(\'boom\'); raise SystemExit(3)"]\n'
            f'    notify: ["slack:#batch-alerts", "webhook:{base}/hook"]\n',
        )
        server = make_server(
            tmp_path, servers, env={"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": f"{base}/api"}
        )
        assert cli(server, "apply", "--yes").returncode == 0
        server.start()
        run_id = start_run(server, "broken")
        record = wait_for(lambda: ended(server, run_id), what="the failing run")
        assert (record["status"], record["reason"], record["exit_code"]) == (
            "failed",
            "exit_code",
            3,
        )
        wait_for(lambda: len(_Receiver.seen) >= 2, what="both notifications")
        by_path = dict(_Receiver.seen)
        slack = by_path["/api/chat.postMessage"]
        assert slack["channel"] == "#batch-alerts"
        assert "broken" in slack["text"]
        hook = by_path["/hook"]
        assert hook["run"]["id"] == run_id
        assert hook["run"]["status"] == "failed"
        assert "boom" in hook["log_tail"]
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_slots_missed_while_the_server_was_down_are_told_in_one_notice(
    tmp_path: Path, servers: list[Server]
) -> None:
    _Receiver.seen = []
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    try:
        write_catalog(
            tmp_path,
            "version: 1\nproject: missed\nschedules:\n  tick:\n    rate: 1s\n"
            '    command: ["true"]\n    catchup: none\n'
            f'    notify: ["webhook:{base}/hook"]\n',
        )
        server = make_server(tmp_path, servers)
        assert cli(server, "apply", "--yes").returncode == 0
        server.start()
        wait_for(lambda: server.get("/api/v1/runs?job=tick")["items"], what="a first fire")
        assert server.stop(signal.SIGTERM) == 0
        time.sleep(2.5)  # the engine is down: at least two slots go by
        server.start()
        wait_for(lambda: _Receiver.seen, timeout=20, what="the missed-run notice")
        time.sleep(0.5)  # a second notice for the same catch-up would arrive by now
        assert len(_Receiver.seen) == 1
        path, hook = _Receiver.seen[0]
        assert path == "/hook"
        assert hook["type"] == hook["event"] == "run.missed"
        missed = hook["missed"]
        skipped = server.get("/api/v1/runs?job=tick&trigger=catchup&limit=100")["items"]
        assert missed["count"] == len(skipped) >= 2
        assert missed["schedule"] == "tick"
        assert missed["cause"] == "engine_down"
        assert missed["reasons"] == {"catchup_policy": len(skipped)}
        assert [slot["at"] for slot in missed["slots"]] == sorted(
            r["scheduled_for"] for r in skipped
        )
        assert (missed["first"], missed["last"]) == (
            missed["slots"][0]["at"],
            missed["slots"][-1]["at"],
        )
        assert hook["run"]["id"] in [r["id"] for r in skipped]
        assert hook["run"]["scheduled_for"] == missed["first"]
        # The link opens the schedule's page.
        assert hook["run"]["url"].endswith("/schedules/tick")
        assert httpx.get(hook["run"]["url"]).status_code == 200
        assert f"tick: missed {missed['count']} slots (engine_down)" in server.output()
    finally:
        receiver.shutdown()
        receiver.server_close()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; its parent (init) reaps it.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
