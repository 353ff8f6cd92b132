"""Four-eyes approval against a real `jobdeck serve` and the real command line: the
request survives a `kill -9` of the engine, is approved after the restart, and one left
alone expires as `cancelled` / `approval_expired` even when it fell due while no engine
ran. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobdeck.store import open_store
from tests.acceptance.conftest import Jobdeck
from tests.acceptance.server import Server, wait_for

CATALOG = """\
version: 1
project: approvals
commands:
  push:
    command: ["python3", "-c", "import sys; print('pushed', sys.argv[1])", "{title}"]
    params:
      title: {type: string, required: true}
    approve: {users: [bob, carol], expires: 1h}
  quick:
    command: ["python3", "-c", "print('quick')"]
    approve: {users: [bob], expires: 3s}
  count:
    command: ["python3", "-c", "open('RAN_FILE', 'a').write('ran;')"]
    approve: {users: [bob], expires: 1h}
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Server]:
    (workdir / "jobdeck.yaml").write_text(CATALOG.replace("RAN_FILE", str(workdir / "ran.txt")))
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    server = Server(workdir, store_url=url, args=("--apply", "--isolation", "rlimit"))
    try:
        yield server.start()
    finally:
        server.close()


def cli(jobdeck: Jobdeck, server: Server, user: str, *args: str) -> Any:
    env = {"JOBDECK_URL": server.url, "JOBDECK_USER": user}
    if server.store_url:
        env["JOBDECK_STORE"] = server.store_url
    else:
        env["JOBDECK_STATE_DIR"] = str(server.state_dir)
    return jobdeck(*args, env=env)


def run_of(server: Server, run_id: int) -> dict[str, Any]:
    found: dict[str, Any] = server.get(f"/api/v1/runs/{run_id}")
    return found


def test_a_request_survives_kill_9_and_is_approved_after_the_restart(
    jobdeck: Jobdeck, served: Server
) -> None:
    asked = cli(jobdeck, served, "alice", "exec", "push", "title=Quake", "--json")
    assert asked.code == 0, asked.err
    run = asked.json()
    assert (run["status"], run["reason"]) == ("pending", "approval")
    assert run["approval"]["users"] == ["bob", "carol"]
    assert (
        "needs approval by bob, carol"
        in cli(jobdeck, served, "alice", "exec", "push", "title=Again").err
    )

    served.kill9()
    served.start()
    assert run_of(served, run["id"])["status"] == "pending"  # still waiting, not started

    own = cli(jobdeck, served, "alice", "approve", str(run["id"]))
    assert own.code == 1
    assert "cannot approve or reject their own request" in own.err
    stranger = cli(jobdeck, served, "mallory", "approve", str(run["id"]))
    assert stranger.code == 1
    assert "not an approver" in stranger.err

    approved = cli(jobdeck, served, "bob", "approve", str(run["id"]), "--json")
    assert approved.code == 0, approved.err
    assert approved.json()["approval"]["decided_by"] == "bob"
    done = wait_for(
        lambda: (r := run_of(served, run["id"]))["status"] not in ("pending", "running") and r,
        what="the approved run to end",
    )
    assert done["status"] == "succeeded", done
    again = cli(jobdeck, served, "carol", "approve", str(run["id"]))
    assert again.code == 1
    assert "already approved by bob" in again.err

    audit = cli(jobdeck, served, "alice", "audit", "--json").json()
    decisions = [(e["actor"], e["action"], e["outcome"]) for e in audit if e["action"] == "approve"]
    assert decisions == [
        ("carol", "approve", "refused"),
        ("bob", "approve", "ok"),
        ("mallory", "approve", "refused"),
        ("alice", "approve", "refused"),
    ]


def test_reject_ends_it_cancelled_with_who_and_why(jobdeck: Jobdeck, served: Server) -> None:
    run = cli(jobdeck, served, "alice", "exec", "push", "title=Oops", "--json").json()
    no_reason = cli(jobdeck, served, "carol", "reject", str(run["id"]))
    assert no_reason.code == 2  # --reason is required
    rejected = cli(jobdeck, served, "carol", "reject", str(run["id"]), "--reason", "wrong title")
    assert rejected.code == 0, rejected.err
    shown = run_of(served, run["id"])
    assert (shown["status"], shown["reason"]) == ("cancelled", "rejected")
    assert shown["detail"]["cancelled_by"] == "carol"
    assert shown["detail"]["cancel_reason"] == "wrong title"
    assert shown["started_at"] is None


def test_an_approval_that_fell_due_while_no_engine_ran_expires_at_the_next_start(
    jobdeck: Jobdeck, served: Server
) -> None:
    run = cli(jobdeck, served, "alice", "exec", "quick", "--json").json()
    expires = datetime.fromisoformat(run["approval"]["expires_at"])
    served.kill9()
    wait_for(lambda: datetime.now(UTC) > expires, timeout=10, what="the expiry to pass")
    served.start()
    ended = wait_for(
        lambda: (r := run_of(served, run["id"]))["status"] == "cancelled" and r,
        what="the expired request to be cancelled",
    )
    assert ended["reason"] == "approval_expired"
    assert ended["started_at"] is None
    late = cli(jobdeck, served, "bob", "approve", str(run["id"]))
    assert late.code == 1
    audit = cli(jobdeck, served, "alice", "audit", "--json").json()
    assert any(
        e["action"] == "approval_expired" and e["detail"]["run_id"] == run["id"] for e in audit
    )


def test_kill_9_right_after_an_approval_runs_the_command_exactly_once(
    jobdeck: Jobdeck, served: Server, workdir: Path
) -> None:
    run = cli(jobdeck, served, "alice", "exec", "count", "--json").json()
    answer = served.post(f"/api/v1/runs/{run['id']}/approve", {"via": "cli"})
    assert answer.status_code == 403  # no user header from this client: api@127.0.0.1
    approved = httpx.post(
        f"{served.url}/api/v1/runs/{run['id']}/approve",
        json={},
        headers={"X-Jobdeck-User": "bob"},
        timeout=10,
    )
    assert approved.status_code == 200, approved.text
    served.kill9()  # at once: recorded approved, maybe not started yet
    served.start()
    done = wait_for(
        lambda: (r := run_of(served, run["id"]))["status"] not in ("pending", "running") and r,
        what="the approved run to end after the restart",
    )
    assert done["status"] == "succeeded", done
    assert (workdir / "ran.txt").read_text() == "ran;"  # once: not lost, not twice


@pytest.mark.postgres
def test_an_approval_through_another_engine_runs_it_on_the_leader_once(
    jobdeck: Jobdeck, workdir: Path, pg_url: str
) -> None:
    """Two real engines on one PostgreSQL store: alice asks through one, bob approves
    through the other; the run executes on the leader (taken from the engine that
    recorded it, through the placement marker when the approving engine does not lead),
    once; bob, approving through the first a moment later, is told it was already
    approved."""
    (workdir / "jobdeck.yaml").write_text(CATALOG.replace("RAN_FILE", str(workdir / "ran.txt")))
    first = Server(
        workdir,
        state_dir=workdir / "a",
        store_url=pg_url,
        args=("--apply", "--isolation", "rlimit"),
    )
    second = Server(
        workdir, state_dir=workdir / "b", store_url=pg_url, args=("--isolation", "rlimit")
    )
    try:
        first.start()
        second.start()
        asked = cli(jobdeck, first, "alice", "exec", "count", "--json")
        assert asked.code == 0, asked.err
        run = asked.json()
        assert (run["status"], run["reason"]) == ("pending", "approval")

        approved = cli(jobdeck, second, "bob", "approve", str(run["id"]), "--json")
        assert approved.code == 0, approved.err
        done = wait_for(
            lambda: (r := run_of(second, run["id"]))["status"] not in ("pending", "running") and r,
            what="the approved run to end",
        )
        assert done["status"] == "succeeded", done
        late = cli(jobdeck, first, "bob", "approve", str(run["id"]))
        assert late.code == 1
        assert "already approved by bob" in late.err
        assert (workdir / "ran.txt").read_text() == "ran;"  # once, on the leader
        taken = [e for e in done["events"] if e["type"] == "taken"]
        assert all(e["detail"]["from"] != e["detail"]["to"] for e in taken)
        assert taken[-1]["detail"]["to"] == done["host"] != "leader"
        with open_store(pg_url) as store:
            lease = store.nodes.leader()
        assert lease is not None
        assert done["host"] == lease.holder
    finally:
        second.close()
        first.close()
