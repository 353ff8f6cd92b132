"""A fenced run (a worker of a cluster's leader) stops once its node's fence passes,
even when no engine is there to tell it: the run shim reads the fence file itself."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from jobdeck.execute.launch import launch, result
from jobdeck.execute.proc import is_alive
from jobdeck.execute.spec import RunSpec, fence_until, write_fence
from tests.integration.test_execute_harness import wait_for

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
PROGRAM = "import time\nprint('up', flush=True)\ntime.sleep(300)\n"


def spec(run_id: str, fence: Path | None, workdir: Path) -> RunSpec:
    return RunSpec(
        run_id=run_id,
        argv=(sys.executable, "-c", PROGRAM),
        env=ENV,
        workdir=str(workdir),
        kill_grace=30,
        fence=str(fence) if fence is not None else None,
    )


def test_a_run_stops_at_its_fence_unless_it_is_moved_on(tmp_path: Path) -> None:
    fence = tmp_path / "fence.json"
    write_fence(fence, time.time() + 1.5)
    begun = time.monotonic()
    handle = launch(tmp_path / "run", spec("fenced", fence, tmp_path))
    assert handle.info is not None
    assert handle.info.child_pid is not None
    # Moved on while the node renews: the run goes on past the first deadline.
    for _ in range(4):
        time.sleep(0.5)
        write_fence(fence, time.time() + 1.5)
    assert result(tmp_path / "run") is None
    assert is_alive(handle.info.child_pid, handle.info.child_start)
    # Not renewed any more (the engine died or lost the lease): stopped within a poll
    # of the deadline, by SIGKILL if need be (its grace of 30 s is not waited for).
    stopped_from = time.monotonic()
    wait_for(lambda: result(tmp_path / "run") is not None, 10, "the fenced run's end")
    found = result(tmp_path / "run")
    assert found is not None
    assert (found.status, found.reason) == ("cancelled", "cancelled")
    assert time.monotonic() - stopped_from < 1.5 + 2.0
    assert time.monotonic() - begun > 2.0
    assert not is_alive(handle.info.child_pid, handle.info.child_start)


def test_a_missing_fence_file_stops_a_fenced_run_and_an_unfenced_run_ignores_it(
    tmp_path: Path,
) -> None:
    assert fence_until(tmp_path / "nothing.json") == 0.0
    handle = launch(tmp_path / "lost", spec("lost", tmp_path / "nothing.json", tmp_path))
    wait_for(lambda: result(tmp_path / "lost") is not None, 10, "the fenced run's end")
    free = launch(tmp_path / "free", spec("free", None, tmp_path))
    assert free.info is not None
    time.sleep(0.6)
    assert result(tmp_path / "free") is None
    os.kill(free.info.shim_pid, 15)  # a cancel: the shim stops its program
    wait_for(lambda: result(tmp_path / "free") is not None, 40, "the free run's end")
    assert handle.info is not None


def test_a_handed_over_run_outlives_its_nodes_fence_until_the_handover_ends(
    tmp_path: Path,
) -> None:
    # A draining node resigned (its fence is 0): a replica named in the handover keeps
    # running until the handover's end; another one stops at once.
    fence = tmp_path / "fence.json"
    write_fence(fence, 0.0, handover_until=time.time() + 2.0, handover=["kept"])
    assert fence_until(fence, "other") == 0.0
    assert fence_until(fence, "kept") > time.time()
    assert fence_until(fence) == 0.0
    kept = launch(tmp_path / "kept", spec("kept", fence, tmp_path))
    other = launch(tmp_path / "other", spec("other", fence, tmp_path))
    assert kept.info is not None
    assert kept.info.child_pid is not None
    wait_for(lambda: result(tmp_path / "other") is not None, 10, "the other run's end")
    time.sleep(0.5)
    assert result(tmp_path / "kept") is None
    assert is_alive(kept.info.child_pid, kept.info.child_start)
    # The handover's end is a fence too: bounded even when nobody stops the run.
    wait_for(lambda: result(tmp_path / "kept") is not None, 10, "the handed over run's end")
    found = result(tmp_path / "kept")
    assert found is not None
    assert (found.status, found.reason) == ("cancelled", "cancelled")
    assert other.info is not None
