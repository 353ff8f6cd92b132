"""Two real `jobdeck serve` on one PostgreSQL store: a run cancelled through the node that
does not run it; a leader stopped cleanly hands leadership over at once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.cluster import Cluster
from tests.acceptance.server import Server, wait_for

pytestmark = pytest.mark.postgres

# Waits; on SIGTERM writes `<run id>.term` and exits 143.
HOLD = """\
import os, signal, sys, time
here, me = sys.argv[1], os.environ["JOBDECK_RUN_ID"]
def term(*_):
    open(os.path.join(here, me + ".term"), "w").close()
    sys.exit(143)
signal.signal(signal.SIGTERM, term)
open(os.path.join(here, me + ".started"), "w").close()
while True:
    time.sleep(0.05)
"""


def catalog(workdir: Path) -> str:
    py = sys.executable
    return f"""\
version: 1
project: cancels
pools:
  one: {{max_concurrency: 1}}
schedules:
  hold:
    cron: "0 0 1 1 *"
    overlap: allow
    pool: one
    command: ["{py}", "{workdir}/hold.py", "{workdir}"]
    kill_grace: 5s
"""


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[Cluster]:
    (tmp_path / "hold.py").write_text(HOLD)
    (tmp_path / "jobdeck.yaml").write_text(catalog(tmp_path))
    made = Cluster(tmp_path, pg_url, 2, ())
    applied = made.cli("apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    yield made
    made.close()


def cli_via(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, pointed at ``server``'s API."""
    return subprocess.run(
        [sys.executable, "-m", "jobdeck", *args],
        cwd=server.workdir,
        env={**server.environment(), "JOBDECK_STATE_DIR": str(server.workdir / "cli")},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def run_on(server: Server) -> int:
    started = cli_via(server, "run", "hold")
    assert started.returncode == 0, started.stderr
    return int(started.stdout.split()[0])


def record(server: Server, run_id: int) -> dict[str, Any]:
    found: dict[str, Any] = server.get(f"/api/v1/runs/{run_id}")
    return found


def test_a_run_is_cancelled_through_the_other_node(cluster: Cluster) -> None:
    owner, other = cluster.servers
    owner.start()
    other.start()
    here = cluster.workdir
    running = run_on(owner)
    wait_for(lambda: record(owner, running)["status"] == "running", what="the run running")
    # A second run of the owner waits for room in its pool (max_concurrency 1).
    queued = run_on(owner)
    wait_for(
        lambda: any(e["type"] == "waiting" for e in record(owner, queued)["events"]),
        what="the second run waiting for room",
    )

    # The pending one, through the other node: cancelled at once, in the store.
    pending = cli_via(other, "cancel", str(queued), "--reason", "not needed", "--json")
    assert pending.returncode == 0, pending.stderr
    shown = json.loads(pending.stdout)
    assert (shown["status"], shown["reason"]) == ("cancelled", "cancelled")
    assert shown["detail"]["cancelled_by"] == "alice"
    assert shown["detail"]["cancel_reason"] == "not needed"

    # The running one, through the other node: its program gets SIGTERM, from its own
    # node, within about a second of the request.
    asked = time.monotonic()
    done = cli_via(other, "cancel", str(running), "--reason", "stuck", "--json")
    took = time.monotonic() - asked
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert (final["status"], final["reason"]) == ("cancelled", "cancelled")
    assert final["detail"]["cancelled_by"] == "alice"
    assert final["detail"]["cancel_reason"] == "stuck"
    assert (here / f"{running}.term").exists(), "the program got no SIGTERM"
    assert took < 10, took
    # Asked on one node, acted upon by the other within about a second (its poll).
    at = {e["type"]: datetime.fromisoformat(e["at"]) for e in record(owner, running)["events"]}
    assert (at["cancelling"] - at["cancel_requested"]).total_seconds() < 3.0, at

    # The pool's room is free again, and the cancelled pending run never started.
    time.sleep(1.5)  # the owner's next looks: nothing may start it late
    assert not (here / f"{queued}.started").exists()
    assert record(owner, queued)["status"] == "cancelled"
    events = [e["type"] for e in record(owner, queued)["events"]]
    assert "started" not in events, events

    audit = json.loads(cli_via(other, "audit", "--json").stdout)
    cancels = [a for a in audit if a["action"] == "cancel"]
    assert [(a["outcome"], a["detail"]["run_id"]) for a in cancels] == [
        ("ok", running),
        ("ok", queued),
    ]


def test_a_leader_stopped_cleanly_hands_over_at_once(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "hold.py").write_text(HOLD)
    (tmp_path / "jobdeck.yaml").write_text(catalog(tmp_path))
    lease = 10.0
    cluster = Cluster(tmp_path, pg_url, 2, ("--lease", f"{lease:g}s"))
    try:
        applied = cluster.cli("apply", "--yes")
        assert applied.returncode == 0, applied.stderr
        first, second = cluster.servers
        first.start()
        wait_for(lambda: cluster.leader()[0] is first, timeout=10, what="the first node leads")
        second.start()
        running = run_on(first)
        wait_for(lambda: record(first, running)["status"] == "running", what="a run running")
        _, token = cluster.leader()
        assert first.stop() == 0  # SIGTERM
        stopped = time.monotonic()

        def took_over() -> bool:
            leader, now_token = cluster.leader()
            return leader is second and now_token > token

        wait_for(took_over, timeout=lease / 3 + 2, interval=0.05, what="the standby leads")
        assert time.monotonic() - stopped < lease / 3 + 2
        assert "handed leadership over" in first.output()
        # Its run goes on while it is away, and is adopted when it comes back.
        assert record(second, running)["status"] == "running"
        first.start()
        wait_for(
            lambda: any(e["type"] == "adopted" for e in record(first, running)["events"]),
            what="the run adopted",
        )
        assert httpx.post(
            f"{first.url}/api/v1/runs/{running}/cancel", json={"reason": "end"}
        ).status_code in (200, 202)
    finally:
        cluster.close()
