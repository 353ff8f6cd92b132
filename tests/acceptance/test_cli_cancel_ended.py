"""`jobdeck cancel` and `suspend --cancel-running` when a run ends by itself meanwhile.

A real server (an Application with its HTTP API, in a thread of the test process), real
runs and real processes; the CLI in child processes.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobdeck.execute import record
from tests.acceptance.conftest import Jobdeck, Result
from tests.acceptance.server import wait_for
from tests.acceptance.test_cli_runs import LiveServer, cli, serve_in_a_thread

# Each run waits. Cancelled (SIGTERM), it writes the file `stop` and lingers a second;
# a run whose id is listed in `by-itself` ends with 0 as soon as `stop` exists.
CATALOG = """\
version: 1
project: cancelrace
schedules:
  gated:
    cron: "0 0 1 1 *"
    overlap: allow
    command:
      - python3
      - -c
      - |
        import os, signal, sys, time
        here = os.environ["HERE"]
        me = os.environ["JOBDECK_RUN_ID"]
        def stop(*_):
            open(os.path.join(here, "stop"), "w").close()
            time.sleep(1)
            sys.exit(143)
        signal.signal(signal.SIGTERM, stop)
        while True:
            mine = os.path.join(here, "by-itself")
            if os.path.exists(os.path.join(here, "stop")) and os.path.exists(mine):
                if me in open(mine).read().split():
                    sys.exit(0)
            if os.path.exists(os.path.join(here, "gate")):
                sys.exit(0)
            time.sleep(0.05)
    env: {HERE: "@HERE@"}
    timeout: 60s
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve_in_a_thread(tmp_path, CATALOG.replace("@HERE@", str(tmp_path)))


def _run(jobdeck: Jobdeck, live: LiveServer) -> int:
    started = cli(jobdeck, live, "run", "gated")
    assert started.code == 0, started.err
    run_id = int(started.out.split()[0])
    wait_for(lambda: _get(live, run_id)["status"] == "running", what=f"run {run_id} running")
    return run_id


def _get(live: LiveServer, run_id: int) -> dict[str, object]:
    found: dict[str, object] = httpx.get(f"{live.url}/api/v1/runs/{run_id}").json()
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_cancel_of_a_run_that_ends_by_itself_meanwhile_says_so_and_exits_1(
    jobdeck: Jobdeck, server: LiveServer, tmp_path: Path
) -> None:
    run_id = _run(jobdeck, server)
    run_dir = Path(str(_get(server, run_id)["detail"]["run_dir"]))  # type: ignore[index]
    info = record.read(run_dir).shim_info()
    assert info is not None
    assert info.child_pid is not None
    # The run's shim is frozen: the cancel is accepted (202) but cannot reach the
    # program, which then ends by itself (exit 0) before the shim wakes up.
    os.kill(info.shim_pid, signal.SIGSTOP)
    done: list[Result] = []
    try:
        asking = threading.Thread(
            target=lambda: done.append(cli(jobdeck, server, "cancel", str(run_id)))
        )
        asking.start()
        wait_for(
            lambda: any(e["type"] == "cancelling" for e in _get(server, run_id)["events"]),  # type: ignore[attr-defined]
            what="the engine signalled the run's shim",
        )
        (tmp_path / "gate").touch()
        wait_for(lambda: _gone(info.child_pid or 0), what="the program ended by itself")
    finally:
        os.kill(info.shim_pid, signal.SIGCONT)
    asking.join(timeout=60)
    (result,) = done
    assert _get(server, run_id)["status"] == "succeeded"
    assert result.code == 1, result.err
    assert f"run {run_id} ended by itself (succeeded)" in result.err


def test_suspend_cancel_running_goes_on_past_a_run_that_ended_meanwhile(
    jobdeck: Jobdeck, server: LiveServer, tmp_path: Path
) -> None:
    first, second, third = (_run(jobdeck, server) for _ in range(3))
    # The first one's cancel makes the second end by itself (exit 0) before the CLI
    # gets to it: the server refuses that one (409, ended); the third is still cancelled.
    (tmp_path / "by-itself").write_text(f"{second}\n")
    done = cli(
        jobdeck, server, "suspend", "gated", "--reason", "bad data", "--cancel-running", "--json"
    )
    assert done.code == 0, done.err
    shown = done.json()["cancelled_runs"]
    assert [(r["id"], r["status"]) for r in shown] == [
        (first, "cancelled"),
        (second, "succeeded"),
        (third, "cancelled"),
    ]
    assert "refused" not in shown[0]
    assert "refused" not in shown[2]
    assert "already ended" in shown[1]["refused"] or "by itself" in shown[1]["refused"]

    text = cli(jobdeck, server, "resume", "gated")
    assert text.code == 0, text.err
