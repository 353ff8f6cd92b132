"""Monitors on a real `jobdeck serve`: real HTTP pings, the runs they record, slots with
no ping and starts with no end notified to a webhook received by a real local server."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from tests.acceptance.server import Server, wait_for
from tests.acceptance.test_serve import cli, make_server, servers, write_catalog

__all__ = ["servers"]

KEY = "monitor-test-key-0123456789"


class Hook(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.seen = []
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    finally:
        receiver.shutdown()
        receiver.server_close()


def events(run_event: str) -> list[dict[str, Any]]:
    return [body for body in Hook.seen if body.get("event") == run_event]


def urls(server: Server) -> dict[str, str]:
    shown = cli(server, "monitors", "--json")
    assert shown.returncode == 0, shown.stderr
    return {item["name"]: item["ping"] for item in json.loads(shown.stdout)}


def test_pings_missed_slots_and_timeouts_over_real_http(
    tmp_path: Path, servers: list[Server], hook: str
) -> None:
    write_catalog(
        tmp_path,
        "version: 1\nproject: watch\nmonitors:\n"
        f'  backup: {{cron: "0 0 1 1 *", timeout: 3s, notify: ["webhook:{hook}"]}}\n'
        f'  silent: {{rate: 1m, grace: 1s, notify: ["webhook:{hook}"]}}\n',
    )
    server = make_server(tmp_path, servers, env={"JOBDECK_PING_KEY": KEY})
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    ping = urls(server)
    assert ping["backup"].startswith(f"{server.url}/ping/backup/")

    # A start, then an end with an exit code and a body: one run of kind monitor.
    started = httpx.get(f"{ping['backup']}/start", timeout=10)
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
    ended = httpx.post(f"{ping['backup']}/fail?exit=3", content=b"disk full\n", timeout=10)
    assert ended.status_code == 200, ended.text
    assert ended.json()["run_id"] == run_id
    record = server.get(f"/api/v1/runs/{run_id}")
    assert (record["kind"], record["trigger"], record["status"], record["exit_code"]) == (
        "monitor",
        "ping",
        "failed",
        3,
    )
    log = httpx.get(f"{server.url}/api/v1/runs/{run_id}/log", timeout=10)
    assert "disk full" in log.text
    failed = wait_for(lambda: events("run.failed"), what="the failure's notice")
    assert failed[0]["run"]["id"] == run_id

    # A start with no end: timed out after 3s, notified.
    hung = httpx.post(f"{ping['backup']}/start", timeout=10).json()["run_id"]
    wait_for(lambda: events("run.timed_out"), timeout=30, what="the timeout's notice")
    assert server.get(f"/api/v1/runs/{hung}")["status"] == "timed_out"

    # Unknown monitor, wrong token, unknown action: one and the same 404.
    token = ping["backup"].rsplit("/", 1)[1]
    refused = [
        httpx.get(f"{server.url}/ping/nothing/{token}", timeout=10),
        httpx.get(f"{server.url}/ping/backup/{token[:-1]}x", timeout=10),
        httpx.get(f"{ping['backup']}/explode", timeout=10),
    ]
    assert {(r.status_code, r.text) for r in refused} == {(404, refused[0].text)}
    bad_exit = httpx.get(f"{ping['backup']}?exit=oops", timeout=10)
    assert bad_exit.status_code == 400
    assert bad_exit.json()["error"]["code"] == "bad_request"

    # Status, runs and metrics show monitors like the other items.
    status = cli(server, "status")
    assert status.returncode == 0, status.stderr
    assert "Monitors" in status.stdout
    assert "silent" in status.stdout
    assert "timed_out" in status.stdout  # backup's newest run
    history = cli(server, "runs", "backup", "--json")
    assert history.returncode == 0, history.stderr
    assert [r["id"] for r in json.loads(history.stdout)] == [hung, run_id]
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'jobdeck_monitor_last_ping_seconds{monitor="backup"}' in metrics
    assert (
        'jobdeck_run_duration_seconds_count{job="backup",kind="monitor",status="failed"} 1.0'
        in metrics
    )
    assert (
        'jobdeck_alerts_total{event="run.failed",job="backup",kind="monitor",sent="true"}'
        in metrics
    )

    listed_monitors = server.get("/api/v1/monitors")["items"]
    assert [(m["name"], m["grace"]) for m in listed_monitors] == [
        ("backup", "5m"),
        ("silent", "1s"),
    ]
    assert listed_monitors[0]["last_run"]["id"] == hung
    page = httpx.get(f"{server.url}/", timeout=10).text
    assert 'id="monitors"' in page
    assert 'data-name="silent"' in page

    # The silent monitor is never pinged: its next slot is recorded missed and notified.
    missed = wait_for(lambda: events("run.missed"), timeout=90, what="the missed slot's notice")
    assert missed[0]["run"]["job"] == "silent"
    assert missed[0]["missed"]["cause"] == "no_ping"
    assert missed[0]["missed"]["count"] == 1
    listed = server.get("/api/v1/runs?kind=monitor&limit=10")
    statuses = {(r["job"], r["status"], r["reason"]) for r in listed["items"]}
    assert ("silent", "skipped", "missed") in statuses


def test_without_a_ping_key_every_ping_is_refused(tmp_path: Path, servers: list[Server]) -> None:
    write_catalog(tmp_path, "version: 1\nproject: watch\nmonitors:\n  backup: {rate: 1h}\n")
    server = make_server(tmp_path, servers)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    shown = cli(server, "monitors")
    assert shown.returncode == 0
    assert "JOBDECK_PING_KEY" in shown.stderr
    # Even the token that a key would give is refused by a server that has no key.
    from jobdeck.api.ping_tokens import token_for

    response = httpx.get(f"{server.url}/ping/backup/{token_for(KEY, 'backup')}", timeout=10)
    assert response.status_code == 404
    assert server.get("/api/v1/runs?kind=monitor")["items"] == []
