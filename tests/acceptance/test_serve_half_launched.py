"""A `kill -9` of the engine in the middle of a launch: the engine has written the run's
spec and asked its warm launcher for a shim, which has not started yet. The next engine
completes the launch from that spec, and the program runs exactly once, whether the
first shim never comes (its launcher killed too) or comes after all (its launcher
resumed while the new engine starts). On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobdeck.execute import record
from tests.acceptance.server import Server, wait_for

CATALOG = """\
version: 1
project: half-launched
pools:
  tools: {memory: 256MiB, warm: true}
commands:
  warmup:
    pool: tools
    command: ["python3", "-c", "print('warm')"]
  count:
    pool: tools
    command: ["python3", "-c", "open('RAN_FILE', 'a').write('ran;')"]
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


def launcher_of(server: Server) -> int:
    """The pid of the server's warm launcher (its socket lies in the server's state dir)."""
    mine = str(server.state_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"jobdeck.execute.warm" in argv and any(mine in arg for arg in argv):
            return int(entry.name)
    raise AssertionError("no warm launcher of this server")


def invoke(server: Server, command: str) -> dict[str, Any]:
    answer = server.post(f"/api/v1/commands/{command}/invocations", {"params": {}, "via": "cli"})
    assert answer.status_code in (200, 201, 202), answer.text
    found: dict[str, Any] = answer.json()
    return found


def ended(server: Server, run_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run: dict[str, Any] = server.get(f"/api/v1/runs/{run_id}")
        return run if run["status"] not in ("pending", "running") else None

    found: dict[str, Any] = wait_for(done, timeout=60, what=f"run {run_id} to end")
    return found


@pytest.mark.parametrize("first_shim", ["never", "late"])
def test_a_kill_9_in_the_middle_of_a_launch_runs_the_program_once(
    served: Server, workdir: Path, first_shim: str
) -> None:
    warm = invoke(served, "warmup")
    assert ended(served, warm["id"])["status"] == "succeeded"
    launcher = launcher_of(served)
    os.kill(launcher, signal.SIGSTOP)  # it takes the request, and forks no shim
    try:
        answers: list[httpx.Response] = []
        # The API answers once the run is recorded; the launch goes on in the engine.
        asking = threading.Thread(
            target=lambda: answers.append(
                served.post("/api/v1/commands/count/invocations", {"params": {}, "via": "cli"})
            )
        )
        asking.start()
        asking.join(30)
        assert answers, "the API did not answer"
        assert answers[0].status_code in (200, 201, 202), answers[0].text
        run_id = answers[0].json()["id"]
        run_dir = served.state_dir / "runs" / str(run_id)
        wait_for(lambda: record.unclaimed(run_dir), timeout=30, what="the spec, unclaimed")
        served.kill9()  # between the spec and its shim
        if first_shim == "never":
            os.kill(launcher, signal.SIGKILL)
        else:
            os.kill(launcher, signal.SIGCONT)  # the first shim comes, racing the restart
        served.start()
    finally:
        if first_shim == "never":
            with_pid_gone(launcher)
        else:
            os.kill(launcher, signal.SIGCONT)
    done = ended(served, run_id)
    assert done["status"] == "succeeded", done
    assert (workdir / "ran.txt").read_text() == "ran;"  # once: neither lost nor twice


def with_pid_gone(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
