"""A suspended monitor on a real `jobdeck serve`, suspended and resumed by the CLI: its
slots with no ping are recorded suspended and told to nobody, its pings are still
recorded, and the resume tells nothing about the time suspended (a webhook received by
a real local HTTP server)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.server import Server, wait_for
from tests.acceptance.test_serve import cli, make_server, servers, write_catalog
from tests.acceptance.test_serve_monitors import KEY, Hook, hook, urls

__all__ = ["hook", "servers"]


def monitor_runs(server: Server) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = server.get("/api/v1/runs?job=tick&kind=monitor&limit=100")[
        "items"
    ]
    return found


def test_a_suspended_monitor_is_quiet_and_its_resume_tells_nothing_retroactively(
    tmp_path: Path, servers: list[Server], hook: str
) -> None:
    write_catalog(
        tmp_path,
        "version: 1\nproject: watch\nmonitors:\n"
        f'  tick: {{cron: "* * * * *", grace: 1s, notify: ["webhook:{hook}"]}}\n',
    )
    server = make_server(tmp_path, servers, env={"JOBDECK_PING_KEY": KEY})
    assert cli(server, "apply", "--yes").returncode == 0
    held = cli(server, "suspend", "tick", "--reason", "moving the box", "--json")
    assert held.returncode == 0, held.stderr
    assert json.loads(held.stdout)["kind"] == "monitor"
    server.start()
    status = json.loads(cli(server, "status", "--json").stdout)
    [shown] = status["monitors"]
    assert shown["suspension"]["reason"] == "moving the box"

    # A minute's slot goes by with no ping: recorded suspended, not missed, not told.
    wait_for(
        lambda: any(r["reason"] == "suspended" for r in monitor_runs(server)),
        timeout=90,
        what="a slot recorded suspended",
    )
    # A ping still counts while suspended: its run is recorded, not notified.
    ping = urls(server)["tick"]
    failed = httpx.post(f"{ping}/fail?exit=4", content=b"disk full\n", timeout=10)
    assert failed.status_code == 200, failed.text
    run = server.get(f"/api/v1/runs/{failed.json()['run_id']}")
    assert (run["status"], run["exit_code"]) == ("failed", 4)

    resumed = cli(server, "resume", "tick", "--json")
    assert resumed.returncode == 0, resumed.stderr
    resumed_at = datetime.fromisoformat(json.loads(resumed.stdout)["ended_at"])
    assert Hook.seen == []

    # The next slot with no ping after the resume is missed, and told: only it.
    wait_for(lambda: Hook.seen, timeout=90, what="a missed slot told after the resume")
    runs = monitor_runs(server)
    missed = [r for r in runs if r["reason"] == "missed"]
    assert missed
    for r in missed:
        assert datetime.fromisoformat(r["scheduled_for"]) > resumed_at
    for r in runs:
        if r["reason"] == "suspended":
            assert datetime.fromisoformat(r["scheduled_for"]) <= resumed_at
    assert {body["event"] for body in Hook.seen} == {"run.missed"}
    assert cli(server, "suspend", "nope", "--reason", "x").returncode != 0
