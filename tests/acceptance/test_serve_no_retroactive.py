"""No retroactive fires with a real `jobdeck serve`: a schedule changed, or resumed, while
the server was down fires nothing that fell due before the change, on SQLite and
PostgreSQL; `jobdeck plan` shows what the change moves."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.server import Server, wait_for
from tests.acceptance.test_serve import cli, write_catalog

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    made = Server(tmp_path, store_url=url, args=("--isolation", "rlimit"))
    yield made
    made.close()


def catalog(cadence: str) -> str:
    return (
        "version: 1\nproject: retro\nschedules:\n  tick:\n"
        f"    {cadence}\n"
        '    command: ["true"]\n    catchup: all\n    catchup_window: 1h\n'
    )


def at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def runs(server: Server) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = server.get("/api/v1/runs?job=tick&limit=500")["items"]
    return found


def test_a_rate_changed_while_the_server_was_down_fires_nothing_from_before(
    server: Server,
) -> None:
    write_catalog(server.workdir, catalog("rate: 1s"))
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    wait_for(lambda: runs(server), what="a first fire")
    assert server.stop(signal.SIGTERM) == 0
    time.sleep(2.5)  # slots of the old rate fall due while no engine runs
    write_catalog(server.workdir, catalog("rate: 2s"))
    shown = cli(server, "plan", "--json")
    assert shown.returncode == 0, shown.stderr
    (change,) = json.loads(shown.stdout)["changes"]
    assert len(change["moves"]["before"]["fires"]) == 3
    assert len(change["moves"]["after"]["fires"]) == 3
    text = cli(server, "plan").stdout
    assert "next fires before (in UTC, and UTC):" in text
    assert "next fires after (in UTC, and UTC):" in text
    applied = cli(server, "apply", "--yes", "--json")
    assert applied.returncode == 0, applied.stderr
    applied_at = at(json.loads(applied.stdout)["applied"]["applied_at"])
    time.sleep(2.5)  # slots of the new rate fall due after the change: caught up
    server.start()

    def caught_up() -> list[dict[str, Any]] | None:
        late = [r for r in runs(server) if r["trigger"] == "catchup"]
        return late or None

    late = wait_for(caught_up, timeout=30, what="the catch-up of the slots after the change")
    # Only slots after the change are caught up or recorded missed; the old rate's
    # slots while the server was down, and the new rate's before the apply, are not.
    assert all(at(r["scheduled_for"]) > applied_at for r in late), (applied_at, late)
    assert len(late) >= 1
    assert server.stop(signal.SIGTERM) == 0


def test_a_suspension_resumed_while_the_server_was_down_fires_none_of_its_slots(
    server: Server,
) -> None:
    write_catalog(server.workdir, catalog("rate: 1s"))
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    wait_for(lambda: runs(server), what="a first fire")
    assert cli(server, "suspend", "tick", "--reason", "bad upstream").returncode == 0
    assert server.stop(signal.SIGTERM) == 0
    time.sleep(2.5)  # suspended slots fall due while no engine runs
    resume = cli(server, "resume", "tick", "--json")
    assert resume.returncode == 0, resume.stderr
    record = json.loads(resume.stdout)
    ended = at(record["ended_at"])  # when it took effect, in the store
    held_from = at(record["created_at"])
    time.sleep(2.5)
    server.start()

    def settled() -> list[dict[str, Any]] | None:
        late = [r for r in runs(server) if r["trigger"] == "catchup"]
        after = [r for r in late if at(r["scheduled_for"]) > ended]
        return late if after else None

    late = wait_for(settled, timeout=30, what="the catch-up after the resume")
    before = [r for r in late if held_from <= at(r["scheduled_for"]) <= ended]
    assert before  # the suspended slots are recorded ...
    assert all((r["status"], r["reason"]) == ("skipped", "suspended") for r in before), before
    # (a slot due before the suspension that a loaded engine had not fired yet when it
    # stopped was missed, not held: it is recorded so)
    earlier = [r for r in late if at(r["scheduled_for"]) < held_from]
    assert all((r["status"], r["reason"]) == ("skipped", "missed") for r in earlier), earlier
    # ... and none ran; those after the resume are caught up by the policy.
    after = [r for r in late if at(r["scheduled_for"]) > ended]
    assert after
    assert all(r["reason"] != "suspended" for r in after), after
    assert server.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("catch_up", [True, False])
def test_resume_runs_the_held_slots_only_when_asked_with_catch_up(
    server: Server, catch_up: bool
) -> None:
    # overlap: allow, so that the caught-up slot runs even when it meets the slot that
    # fell due at the same moment (with the default, one of the two is skipped: right,
    # and not what this test is about).
    text = catalog("rate: 1s").replace("catchup: all", "catchup: latest\n    overlap: allow")
    write_catalog(server.workdir, text)
    assert cli(server, "apply", "--yes").returncode == 0
    server.start()
    wait_for(lambda: runs(server), what="a first fire")
    assert cli(server, "suspend", "tick", "--reason", "upstream late").returncode == 0

    def held() -> list[dict[str, Any]] | None:
        found = [r for r in runs(server) if r["reason"] == "suspended"]
        return found if len(found) >= 3 else None

    wait_for(held, timeout=30, what="slots recorded as suspended")
    args = ("resume", "tick", "--json", *(["--catch-up"] if catch_up else []))
    resumed = cli(server, *args)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads(resumed.stdout)
    assert record["catch_up"] is catch_up
    start, end = at(record["created_at"]), at(record["ended_at"])

    def in_suspension(r: dict[str, Any]) -> bool:
        return start < at(r["scheduled_for"]) <= end

    def caught_up() -> list[dict[str, Any]] | None:
        found = [r for r in runs(server) if r["trigger"] == "catchup" and in_suspension(r)]
        return found or None

    if catch_up:
        (run,) = wait_for(caught_up, timeout=30, what="the held slot caught up")
        # catchup: latest runs the newest slot the suspension held, once.
        newest = max(r["scheduled_for"] for r in runs(server) if in_suspension(r))
        assert run["scheduled_for"] == newest
        done = wait_for(
            lambda: (lambda r: r if r["status"] not in ("pending", "running") else None)(
                server.get(f"/api/v1/runs/{run['id']}")
            ),
            what="the caught-up run",
        )
        assert done["status"] == "succeeded"
    else:
        # Well past the engine's pick-up interval, none of the held slots runs.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert caught_up() is None
            time.sleep(0.5)
    ran = [r for r in runs(server) if in_suspension(r) and r["status"] != "skipped"]
    assert len(ran) == (1 if catch_up else 0)
    audit = cli(server, "audit", "--json")
    assert audit.returncode == 0
    (entry,) = [e for e in json.loads(audit.stdout) if e["action"] == "resume"]
    assert entry["detail"].get("catch_up", False) is catch_up
    assert server.stop(signal.SIGTERM) == 0
