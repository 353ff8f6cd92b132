"""Runs through the real shim: results, logs, launch errors, timeouts, log cap."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from jobdeck.execute import record
from jobdeck.execute.proc import boot_id, is_alive
from tests.integration.test_execute_harness import (
    PY,
    Harness,
    needs_cgroups,
    pool,
    wait_for,
)

pytestmark = needs_cgroups


def test_a_run_succeeds_with_its_log_and_result(harness: Harness, tmp_path: Path) -> None:
    pools = harness.pools(batch=pool(memory="256MiB", cpus=1.0, priority="normal"))
    handle = harness.start(
        pools,
        "batch",
        "ok",
        shell='echo "out $JOBDECK_RUN_ID $GREETING"; echo err >&2; pwd; cat /proc/self/cgroup',
        env={"PATH": os.environ["PATH"], "GREETING": "hello"},
    )
    assert handle.info is not None
    assert handle.info.child_pid is not None
    assert handle.info.pgid == handle.info.child_pid
    assert handle.info.boot_id == boot_id()
    found = harness.wait(handle.run_dir)
    assert (found.status, found.reason, found.exit_code, found.signal) == (
        "succeeded",
        None,
        0,
        None,
    )
    assert found.started_at is not None
    assert found.ended_at is not None
    assert datetime.fromisoformat(found.ended_at) >= datetime.fromisoformat(found.started_at)
    assert found.peak_memory is not None
    assert found.peak_memory > 0
    log = (handle.run_dir / "log").read_text()
    assert "out ok hello\n" in log
    assert "err\n" in log
    assert f"{tmp_path}\n" in log
    # The program was born inside its run's cgroup.
    assert "/jobdeck/" in log
    assert "/batch/run-ok" in log
    # The schema on disk is what the engine and other tools read.
    data = record.read(handle.run_dir).result
    assert data is not None
    assert data["schema"] == 1
    assert data["status"] == "succeeded"


def test_a_failing_exit_code(harness: Harness) -> None:
    pools = harness.pools(batch=pool())
    handle = harness.start(pools, "batch", "fails", argv=[PY, "-c", "raise SystemExit(7)"])
    found = harness.wait(handle.run_dir)
    assert (found.status, found.reason, found.exit_code, found.error) == (
        "failed",
        "exit_code",
        7,
        None,
    )


@pytest.mark.parametrize(
    ("argv", "workdir", "expect"),
    [
        (["/no/such/program"], None, "cannot execute '/no/such/program'"),
        (["./not-executable.sh"], None, "Permission denied"),
        (["true"], "/no/such/dir", "bad workdir '/no/such/dir': does not exist"),
    ],
    ids=["missing-executable", "not-executable", "bad-workdir"],
)
def test_a_launch_error_is_not_a_failure(
    harness: Harness, tmp_path: Path, argv: list[str], workdir: str | None, expect: str
) -> None:
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho never\n")
    script.chmod(0o644)
    pools = harness.pools(batch=pool())
    handle = harness.start(pools, "batch", "nolaunch", argv=argv, workdir=workdir)
    # launch() itself already knows: the engine can retry at once.
    assert handle.result is not None
    found = harness.wait(handle.run_dir)
    assert (found.status, found.reason, found.exit_code) == ("failed", "launch_error", None)
    assert found.error is not None
    assert expect in found.error


def test_a_timeout_kills_the_whole_tree(harness: Harness, tmp_path: Path) -> None:
    pools = harness.pools(batch=pool())
    # A background sleeper in the same group, and one that left it with setsid: the
    # first dies by process group, the second by cgroup.
    script = (
        f"sleep 300 & echo $! > {tmp_path}/bg.pid; "
        f"setsid sleep 301 & echo $! > {tmp_path}/escaped.pid; "
        "echo started; sleep 302"
    )
    handle = harness.start(pools, "batch", "slow", shell=script, timeout=1, kill_grace=5)
    pids = [tmp_path / "bg.pid", tmp_path / "escaped.pid"]
    wait_for(lambda: all(p.exists() and p.read_text().strip() for p in pids), 10, "pid files")
    sleepers = [int(p.read_text()) for p in pids]
    assert all(is_alive(pid, None) for pid in sleepers)
    found = harness.wait(handle.run_dir, timeout=20)
    assert (found.status, found.reason) == ("timed_out", "timeout")
    assert found.signal == 15  # sh dies of the SIGTERM it got at the timeout
    wait_for(lambda: not any(is_alive(p, None) for p in sleepers), 10, "the sleepers to die")


def test_sigterm_ignored_means_sigkill_after_the_grace(harness: Harness) -> None:
    pools = harness.pools(batch=pool())
    program = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )
    begun = time.monotonic()
    handle = harness.start(
        pools, "batch", "stubborn", argv=[PY, "-c", program], timeout=1, kill_grace=1.5
    )
    found = harness.wait(handle.run_dir, timeout=30)
    took = time.monotonic() - begun
    assert (found.status, found.reason, found.signal) == ("timed_out", "timeout", 9)
    assert found.started_at is not None
    assert found.ended_at is not None
    ran = (
        datetime.fromisoformat(found.ended_at) - datetime.fromisoformat(found.started_at)
    ).total_seconds()
    # timeout (1s) + grace (1.5s); generous upper bounds for a loaded machine.
    assert 2.4 <= ran < 15, ran
    assert took < 20
    assert "ready" in (handle.run_dir / "log").read_text()


def test_the_log_cap_keeps_head_and_tail(harness: Harness) -> None:
    pools = harness.pools(batch=pool())
    program = (
        "import sys\n"
        "sys.stdout.write('HEAD-START\\n')\n"
        "for i in range(20000):\n"
        "    sys.stdout.write(f'line {i:05d}\\n')\n"
        "sys.stdout.write('TAIL-END\\n')\n"
    )
    handle = harness.start(pools, "batch", "chatty", argv=[PY, "-c", program], log_cap=4096)
    found = harness.wait(handle.run_dir)
    assert found.status == "succeeded"
    log = (handle.run_dir / "log").read_text()
    assert log.startswith("HEAD-START\nline 00000\n")
    assert log.endswith("line 19999\nTAIL-END\n")
    assert "line 10000\n" not in log
    assert f"[jobdeck: {found.log_dropped_bytes} bytes of output dropped here" in log
    total = 11 + 20000 * 11 + 9
    assert found.log_dropped_bytes == total - 4096
    assert len(log) < 4096 + 200


def test_output_under_the_cap_is_kept_whole(harness: Harness) -> None:
    pools = harness.pools(batch=pool())
    handle = harness.start(
        pools, "batch", "quiet", shell="for i in 1 2 3; do echo line $i; done", log_cap=4096
    )
    found = harness.wait(handle.run_dir)
    assert found.log_dropped_bytes == 0
    assert (handle.run_dir / "log").read_text() == "line 1\nline 2\nline 3\n"
