"""Notices are an outbox: a notice decided just before the engine dies is sent by the
next one, at least once, with the same id (a real `jobdeck serve`, `kill -9`, and a
webhook receiver on a real local HTTP server)."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from jobdeck.outbox import SWEEP_INTERVAL
from tests.acceptance.server import Server, wait_for


class _Hook(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that, while ``hang`` is set, takes a request and never
    answers it (the engine's delivery is then in flight for as long as it lives)."""

    hang = threading.Event()
    release = threading.Event()
    hung: ClassVar[list[tuple[str | None, dict[str, Any]]]] = []
    answered: ClassVar[list[tuple[str | None, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seen = (self.headers.get("X-Jobdeck-Notice-Id"), body)
        if self.hang.is_set():
            self.hung.append(seen)
            self.release.wait(120)
            self.close_connection = True
            return
        self.answered.append(seen)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.hung, _Hook.answered = [], []
    _Hook.hang.set()
    _Hook.release.clear()
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    _Hook.release.set()
    receiver.shutdown()
    receiver.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobdeck", *args],
        cwd=server.workdir,
        env=server.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def notices(server: Server) -> list[dict[str, Any]]:
    shown = cli(server, "notices", "--json")
    assert shown.returncode == 0, shown.stderr
    found: list[dict[str, Any]] = json.loads(shown.stdout)
    return found


def test_a_notice_decided_just_before_a_kill_9_is_sent_after_the_restart_once(
    tmp_path: Path, servers: list[Server], hook: str
) -> None:
    (tmp_path / "jobdeck.yaml").write_text(
        "version: 1\nproject: outbox\nschedules:\n  long:\n"
        '    cron: "0 0 1 1 *"\n'
        '    command: ["python3", "-c", "import time; time.sleep(40)"]\n'
        "    timeout: 5m\n"
        "    alerts: {slow: 2s}\n"
        f'    notify: ["webhook:{hook}"]\n'
    )
    server = Server(tmp_path, args=("--isolation", "rlimit"))
    servers.append(server)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    response = server.post("/api/v1/schedules/long/runs")
    assert response.status_code in (200, 201, 202), response.text
    run_id = int(response.json()["id"])

    # The slow notice is decided and on its way: the receiver holds it, unanswered.
    wait_for(lambda: _Hook.hung, timeout=60, what="the slow notice to reach the receiver")
    [(hung_id, hung_body)] = _Hook.hung
    assert hung_body["type"] == "run.slow"
    [due] = notices(server)
    assert (due["event"], due["run_id"], due["delivery"]) == ("run.slow", run_id, "due")
    assert hung_id == str(due["id"])
    server.kill9()

    _Hook.hang.clear()  # the receiver answers from now on
    server.start()
    wait_for(lambda: _Hook.answered, timeout=60, what="the notice sent again")
    wait_for(
        lambda: notices(server)[0]["delivery"] == "delivered",
        timeout=30,
        what="the notice recorded delivered",
    )
    time.sleep(3 * SWEEP_INTERVAL)  # a second delivery would be under way by now
    [(answered_id, body)] = _Hook.answered
    assert answered_id == hung_id
    assert body["delivery_id"] == hung_body["delivery_id"] == f"notice-{hung_id}"
    assert (body["type"], body["run"]["id"]) == ("run.slow", run_id)
    assert body["alert"]["alert"] == "slow"
    [sent] = notices(server)
    assert sent["delivery"] == "delivered"
    assert sent["attempts"] == 1
    table = cli(server, "notices").stdout.splitlines()
    assert "sent" in table[1]
    # No second slow notice for the adopted run either.
    assert [n["event"] for n in notices(server)] == ["run.slow"]
    cli(server, "cancel", str(run_id))
