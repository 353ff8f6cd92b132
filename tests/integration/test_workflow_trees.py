"""A run's whole process tree is stopped, in every isolation mode, for timeouts,
cancels and cancel_other alike: also what left the process group (``setsid``) and what
forked itself away from its parent (a double-forked daemon)."""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobdeck.execute.pools import Mode
from jobdeck.execute.proc import is_alive
from jobdeck.store.records import Run
from tests.integration.test_execute_harness import needs_cgroups
from tests.integration.test_workflow_harness import PY, T0, Deck, Decks, until

pytestmark = pytest.mark.anyio

DAEMON = textwrap.dedent(
    """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            aside = sys.argv[1] + ".tmp"
            with open(aside, "w") as out:
                out.write(str(os.getpid()))
            os.rename(aside, sys.argv[1])
            time.sleep(1003)
        os._exit(0)
    time.sleep(600)
    """
)

# Each shape leaves one process that escapes the program's process group; it writes
# its pid to PIDS/RUN_ID (via a file renamed into place: read whole or not at all).
SHAPES = {
    "setsid-sleep": "setsid sleep 1001 & echo $! > @P@.tmp && mv @P@.tmp @P@; sleep 600",
    "setsid-sh-wait": (
        "setsid sh -c 'sleep 1002 & echo $! > @P@.tmp && mv @P@.tmp @P@; wait' & sleep 600"
    ),
    "double-fork": f"exec {PY} @DAEMON@ @P@",
}

MODES = [
    pytest.param("rlimit", id="rlimit"),
    pytest.param("cgroups", id="cgroups", marks=needs_cgroups),
]


def deck_for(decks: Decks, tmp_path: Path, mode: Mode, shape: str, extra: str = "") -> Deck:
    daemon = tmp_path / "daemon.py"
    daemon.write_text(DAEMON)
    pids = tmp_path / "pids"
    pids.mkdir(exist_ok=True)
    script = tmp_path / "tree.sh"
    script.write_text(
        SHAPES[shape].replace("@DAEMON@", str(daemon)).replace("@P@", f"{pids}/$JOBDECK_RUN_ID")
    )
    # In a file: the catalog's text of these tests may not name the run's variable.
    shell = f"exec sh {script}"
    return decks(
        f"""
        version: 1
        project: trees
        schedules:
          tree:
            rate: 1h
            shell: {shell!r}
            kill_grace: 1s
            {extra}
        """,
        mode=mode,
    )


ESCAPED: list[int] = []


@pytest.fixture(autouse=True)
def no_escapee_outlives_the_test() -> Iterator[None]:
    """A test that fails must not leave its escaped process running for the next ones."""
    yield
    while ESCAPED:
        pid = ESCAPED.pop()
        if is_alive(pid, None):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def escaped_pid(tmp_path: Path, run: Run) -> int:
    path = tmp_path / "pids" / str(run.id)
    await until(path.exists, f"run {run.id}'s escaped process")
    pid = int(path.read_text())
    ESCAPED.append(pid)
    assert is_alive(pid, None)
    return pid


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_a_timeout_stops_what_escaped_the_group(
    decks: Decks, tmp_path: Path, mode: Mode, shape: str
) -> None:
    deck = deck_for(decks, tmp_path, mode, shape, "timeout: 1500ms")
    run = deck.driver.fire("tree", T0)
    assert run is not None
    escaped = await escaped_pid(tmp_path, run)
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("timed_out", "timeout")
    await until(lambda: not is_alive(escaped, None), f"process {escaped} to be stopped", 10)
    await deck.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_a_cancel_stops_what_escaped_the_group(
    decks: Decks, tmp_path: Path, mode: Mode, shape: str
) -> None:
    deck = deck_for(decks, tmp_path, mode, shape)
    run = deck.driver.fire("tree", T0)
    assert run is not None
    escaped = await escaped_pid(tmp_path, run)
    await until(lambda: deck.run(run.id).status == "running", "the run to be running")
    deck.driver.cancel(run.id, by="tester", why="tree test")
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("cancelled", "cancelled")
    assert (ended.detail["cancelled_by"], ended.detail["cancel_reason"]) == ("tester", "tree test")
    await until(lambda: not is_alive(escaped, None), f"process {escaped} to be stopped", 10)
    await deck.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_cancel_other_stops_what_escaped_the_group(
    decks: Decks, tmp_path: Path, mode: Mode, shape: str
) -> None:
    deck = deck_for(decks, tmp_path, mode, shape, "overlap: cancel_other")
    first = deck.driver.fire("tree", T0)
    assert first is not None
    escaped = await escaped_pid(tmp_path, first)
    second = deck.driver.fire("tree", T0 + timedelta(hours=1))
    assert second is not None
    ended = await deck.wait_ended(first.id)
    assert (ended.status, ended.reason) == ("cancelled", "overlap")
    await until(lambda: not is_alive(escaped, None), f"process {escaped} to be stopped", 10)
    # The newer run started in its place; stop it and what it left too.
    also = await escaped_pid(tmp_path, second)
    deck.driver.cancel(second.id, by="tester")
    assert (await deck.wait_ended(second.id)).status == "cancelled"
    await until(lambda: not is_alive(also, None), f"process {also} to be stopped", 10)
    await deck.close()


STUBBORN = textwrap.dedent(
    """
    import os, signal, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            aside = sys.argv[1] + ".tmp"
            with open(aside, "w") as out:
                out.write(str(os.getpid()))
            os.rename(aside, sys.argv[1])
            time.sleep(1004)
        os._exit(0)
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.01)
    sys.exit(int(sys.argv[2]))
    """
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("code", [0, 3])
async def test_a_daemon_left_behind_that_ignores_sigterm_is_killed_after_the_grace(
    decks: Decks, tmp_path: Path, mode: Mode, code: int
) -> None:
    """The program exits at once, leaving a double-forked daemon that ignores SIGTERM:
    the shim, its subreaper, kills it after kill_grace and the run ends as the program
    did, without hanging on the daemon."""
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(STUBBORN)
    pids = tmp_path / "pids"
    pids.mkdir()
    deck = decks(
        f"""
        version: 1
        project: trees
        schedules:
          left:
            rate: 1h
            command: [{PY!r}, {str(stubborn)!r}, {str(pids / "daemon")!r}, "{code}"]
            kill_grace: 1s
            timeout: 1m
        """,
        mode=mode,
    )
    run = deck.driver.fire("left", T0)
    assert run is not None
    path = pids / "daemon"
    await until(path.exists, "the daemon's pid")
    daemon = int(path.read_text())
    ESCAPED.append(daemon)
    ended = await deck.wait_ended(run.id, within=20)
    assert (ended.status, ended.exit_code) == (("succeeded", 0) if code == 0 else ("failed", 3))
    assert not is_alive(daemon, None)
    await deck.close()
