"""`jobdeck backfill` and `jobdeck run --slot` from the real command line against a real
`jobdeck serve`, and a backfill that outlives a `kill -9` of the server: each slot runs
once, none is lost, none twice."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import Jobdeck
from tests.acceptance.server import Server, wait_for
from tests.acceptance.test_cli_runs import LiveServer, cli, serve_in_a_thread

CATALOG = """\
version: 1
project: backfilltest
timezone: Asia/Tokyo
schedules:
  nightly:
    cron: "0 3 * * *"
    command: ["python3", "-c", "import os; print(os.environ['JOBDECK_SCHEDULED_FOR'])"]
    timeout: 60s
"""

# Each run appends its slot to a file, then takes a while: a kill -9 of the server lands
# in the middle of the backfill.
TALLY = """\
version: 1
project: tally
schedules:
  tally:
    rate: 1h
    command:
      - python3
      - -c
      - |
        import os, time
        with open(os.environ["OUT"], "a") as out:
            out.write(os.environ["JOBDECK_SCHEDULED_FOR"] + "\\n")
        time.sleep(0.4)
    env: {{OUT: "{out}"}}
    overlap: skip
    timeout: 60s
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve_in_a_thread(tmp_path, CATALOG)


def test_backfill_dry_run_then_run_then_kept_and_run_slot(
    jobdeck: Jobdeck, server: LiveServer
) -> None:
    args = ("backfill", "nightly", "--from", "2026-11-01", "--to", "2026-11-03T23:59")
    preview = cli(jobdeck, server, *args, "--dry-run", "--json")
    assert preview.code == 0, preview.err
    shown = preview.json()
    assert [s["slot"] for s in shown["slots"]] == [
        "2026-10-31T18:00:00Z",
        "2026-11-01T18:00:00Z",
        "2026-11-02T18:00:00Z",
    ]
    assert [s["action"] for s in shown["slots"]] == ["run"] * 3

    done = cli(jobdeck, server, *args)
    assert done.code == 0, done.err
    assert "3 queued, 0 left alone" in done.err
    assert "SLOT (UTC)" in done.out
    assert done.out.count("2026-1") == 3  # one row per slot

    again = cli(jobdeck, server, *args, "--json")
    assert again.code == 0
    assert [s["action"] for s in again.json()["slots"]] == ["keep"] * 3

    listed = cli(jobdeck, server, "runs", "nightly", "--json")
    assert {(r["trigger"], r["scheduled_for"]) for r in listed.json()} == {
        ("backfill", slot["slot"]) for slot in shown["slots"]
    }

    rerun = cli(jobdeck, server, "run", "nightly", "--slot", "2026-11-02T03:00", "--wait")
    assert rerun.code == 0, rerun.err
    assert rerun.out.splitlines()[1] == "2026-11-01T18:00:00+00:00"

    audit = cli(jobdeck, server, "audit", "--json")
    actions = [e["action"] for e in audit.json()]
    assert actions.count("backfill") == 2


def test_bad_input_exits_2_and_refusals_exit_1(jobdeck: Jobdeck, server: LiveServer) -> None:
    backwards = cli(
        jobdeck, server, "backfill", "nightly", "--from", "2026-11-03", "--to", "2026-11-01"
    )
    assert backwards.code == 2
    assert "swap them" in backwards.err
    too_many = cli(
        jobdeck, server, "backfill", "nightly", "--from", "2020-01-01", "--to", "2026-01-01"
    )
    assert too_many.code == 2
    assert "more than 1,000 slots" in too_many.err
    unknown = cli(
        jobdeck, server, "backfill", "nightly-x", "--from", "2026-11-01", "--to", "2026-11-02"
    )
    assert unknown.code == 1
    assert "no schedule named 'nightly-x'" in unknown.err
    not_a_slot = cli(jobdeck, server, "run", "nightly", "--slot", "2026-11-02T04:00")
    assert not_a_slot.code == 2
    assert "is not a slot" in not_a_slot.err
    assert "Traceback" not in backwards.err + too_many.err + unknown.err + not_a_slot.err
    assert cli(jobdeck, server, "runs", "--json").json() == []


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobdeck", *args],
        cwd=server.workdir,
        env=server.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_backfill_survives_kill_9_of_the_server_each_slot_once(tmp_path: Path) -> None:
    out = tmp_path / "tally.txt"
    (tmp_path / "jobdeck.yaml").write_text(TALLY.format(out=out))
    server = Server(tmp_path, args=("--isolation", "rlimit"))
    try:
        assert _cli(server, "apply", "--yes").returncode == 0
        server.start()
        done = _cli(
            server, "backfill", "tally", "--from", "2026-11-01T00:00Z", "--to", "2026-11-01T11:00Z",
            "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        slots = [s["slot"] for s in json.loads(done.stdout)["slots"]]
        assert len(slots) == 12
        # Kill the server while the backfill is under way: some ran, one runs, some wait.
        wait_for(lambda: len(_lines(out)) >= 3, timeout=60, what="three backfilled runs")
        server.kill9()
        assert len(_lines(out)) < len(slots)  # killed in the middle of it
        server.start()

        def all_ended() -> list[dict[str, Any]] | None:
            runs = server.get("/api/v1/runs?trigger=backfill&limit=100")["items"]
            return runs if all(r["status"] not in ("pending", "running") for r in runs) else None

        runs = wait_for(all_ended, timeout=90, what="every backfilled run to end")
        assert len(runs) == 12
        assert {r["status"] for r in runs} == {"succeeded"}
        # Each slot ran exactly once: none lost, none twice.
        written = sorted(_lines(out))
        assert written == sorted(s.replace("Z", "+00:00") for s in slots)
    finally:
        server.close()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
