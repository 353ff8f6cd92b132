"""Concurrency keys against a real `jobdeck serve` and the real command line: a schedule
and a command share a key with limit 1; the command waits `pending` / `concurrency`
while the schedule's run holds the key, shown with its holder, then runs. A `kill -9` of
the engine while the holder runs starts nothing twice and loses no waiter. On SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import Jobdeck
from tests.acceptance.server import Server, wait_for

# The schedule's program writes its run id, then holds until the test creates GO.
HOLD = (
    "import os, pathlib, time; d = pathlib.Path('DIR'); "
    "open(d / 'held.txt', 'a').write(os.environ['JOBDECK_RUN_ID'] + ';'); "
    "t = time.monotonic() + 120\n"
    "while not (d / 'GO').exists() and time.monotonic() < t: time.sleep(0.05)"
)
CATALOG = """\
version: 1
project: keys
schedules:
  nightly:
    rate: 2s
    command: ["python3", "-c", "HOLD"]
    concurrency: {key: db-maintenance}
commands:
  vacuum:
    command: ["python3", "-c", "import os; open('DIR/vacuum.txt', 'a').write('ran;')"]
    concurrency: {key: db-maintenance, limit: 1}
  hurry:
    command: ["python3", "-c", "open('DIR/hurry.txt', 'a').write('ran;')"]
    timeout: 2s
    concurrency: {key: db-maintenance}
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Server]:
    hold = HOLD.replace("\n", "\\n")  # one line of YAML
    text = CATALOG.replace("HOLD", hold).replace("DIR", str(workdir))
    (workdir / "jobdeck.yaml").write_text(text)
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    server = Server(workdir, store_url=url, args=("--apply", "--isolation", "rlimit"))
    try:
        yield server.start()
    finally:
        (workdir / "GO").touch()  # lets a holder left running end
        server.close()


def cli(jobdeck: Jobdeck, server: Server, *args: str) -> Any:
    env = {"JOBDECK_URL": server.url, "JOBDECK_USER": "alice"}
    if server.store_url:
        env["JOBDECK_STORE"] = server.store_url
    else:
        env["JOBDECK_STATE_DIR"] = str(server.state_dir)
    return jobdeck(*args, env=env)


def run_of(server: Server, run_id: int) -> dict[str, Any]:
    found: dict[str, Any] = server.get(f"/api/v1/runs/{run_id}")
    return found


def holder(server: Server) -> dict[str, Any]:
    """The schedule's first run, once it runs (and so holds the key)."""
    running = wait_for(
        lambda: server.get("/api/v1/runs?job=nightly&status=running")["items"],
        what="the schedule's run to hold the key",
    )
    found: dict[str, Any] = running[0]
    return found


def waiting_command(
    jobdeck: Jobdeck, server: Server, holding: dict[str, Any], place: int | None = 1
) -> dict[str, Any]:
    """The command ``vacuum`` asked for, once it waits for the key (at ``place`` in line,
    unless None: a waiter ahead may have timed out already)."""
    asked = cli(jobdeck, server, "exec", "vacuum", "--json")
    assert asked.code == 0, asked.err
    run = asked.json()
    shown: dict[str, Any] = wait_for(
        lambda: (r := run_of(server, run["id"]))["reason"] == "concurrency" and r,
        what="the command to wait for the key",
    )
    assert shown["status"] == "pending"
    key = shown["concurrency"]
    assert (key["key"], key["limit"], key["held"]) == ("db-maintenance", 1, False)
    if place is not None:
        assert key["position"] == place
    assert [h["run_id"] for h in key["holders"]] == [holding["id"]]
    assert key["holders"][0]["job"] == "nightly"
    return shown


def test_a_command_waits_for_the_schedule_holding_the_key_then_runs(
    jobdeck: Jobdeck, served: Server, workdir: Path
) -> None:
    holding = holder(served)
    run = waiting_command(jobdeck, served, holding)

    status = cli(jobdeck, served, "status", "--json")
    assert status.code == 0, status.err
    [key] = status.json()["concurrency_keys"]
    assert [h["run_id"] for h in key["holders"]] == [holding["id"]]
    assert [w["run_id"] for w in key["waiters"]] == [run["id"]]
    assert {(i["kind"], i["name"]) for i in key["items"]} == {
        ("schedule", "nightly"),
        ("command", "vacuum"),
        ("command", "hurry"),
    }
    table = cli(jobdeck, served, "status").out
    assert "Concurrency keys" in table
    assert f"#{holding['id']} nightly" in table
    assert f"#{run['id']} vacuum" in table
    assert not (workdir / "vacuum.txt").exists()

    # The dashboard: the key's holders and waiters on the overview, the place and the
    # holder on the waiting run's page.
    overview = httpx.get(f"{served.url}/", timeout=10).text
    card = overview[overview.index('id="concurrency-keys"') :]
    assert f'<a href="runs/{holding["id"]}">#{holding["id"]}</a> nightly' in card
    assert f'<a href="runs/{run["id"]}">#{run["id"]}</a> vacuum' in card
    page = httpx.get(f"{served.url}/runs/{run['id']}", timeout=10).text
    assert "number 1 in line (limit 1)" in page
    assert f'<a href="runs/{holding["id"]}">#{holding["id"]}</a> schedule nightly' in page

    (workdir / "GO").touch()
    done = wait_for(
        lambda: (r := run_of(served, run["id"]))["status"] not in ("pending", "running") and r,
        what="the command to run once the key is free",
    )
    assert done["status"] == "succeeded"
    assert done["reason"] is None
    first = run_of(served, holding["id"])
    assert first["status"] == "succeeded"
    assert done["started_at"] >= first["ended_at"]


def test_kill_9_while_a_holder_runs_starts_nothing_twice_and_loses_no_waiter(
    jobdeck: Jobdeck, served: Server, workdir: Path
) -> None:
    holding = holder(served)
    run = waiting_command(jobdeck, served, holding)

    served.kill9()
    served.start()
    # The holder still runs (its shim outlived the engine) and still holds the key;
    # the waiter waits again, behind it.
    again = wait_for(
        lambda: (r := run_of(served, holding["id"]))["events"][-1]["type"] != "waiting" and r,
        what="the holder to be adopted",
    )
    assert again["status"] == "running"
    assert "adopted" in [e["type"] for e in again["events"]]
    waiter = run_of(served, run["id"])
    assert (waiter["status"], waiter["reason"]) == ("pending", "concurrency")
    assert [h["run_id"] for h in waiter["concurrency"]["holders"]] == [holding["id"]]

    (workdir / "GO").touch()
    done = wait_for(
        lambda: (r := run_of(served, run["id"]))["status"] not in ("pending", "running") and r,
        what="the waiter to run after the restart",
    )
    assert done["status"] == "succeeded"
    assert (workdir / "vacuum.txt").read_text() == "ran;"
    held = [int(i) for i in (workdir / "held.txt").read_text().split(";") if i]
    assert len(held) == len(set(held)), f"a run started twice: {held}"
    assert held[0] == holding["id"]
    assert run_of(served, holding["id"])["status"] == "succeeded"


def test_a_waiter_past_its_timeout_ends_timed_out_and_gives_its_place(
    jobdeck: Jobdeck, served: Server, workdir: Path
) -> None:
    holding = holder(served)
    hurry = cli(jobdeck, served, "exec", "hurry", "--json").json()
    vacuum = waiting_command(jobdeck, served, holding, place=None)
    ended = wait_for(
        lambda: (r := run_of(served, hurry["id"]))["status"] != "pending" and r,
        what="the waiter to time out",
    )
    assert (ended["status"], ended["reason"]) == ("timed_out", "concurrency")
    assert ended["started_at"] is None
    assert "concurrency" not in ended or ended["concurrency"]["holders"] == []
    assert run_of(served, vacuum["id"])["concurrency"]["position"] == 1
    (workdir / "GO").touch()
    done = wait_for(
        lambda: (r := run_of(served, vacuum["id"]))["status"] == "succeeded" and r,
        what="the next waiter to run",
    )
    assert done["reason"] is None
    assert not (workdir / "hurry.txt").exists()
