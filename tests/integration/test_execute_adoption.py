"""Runs outlive whoever launched them; probe and cancel work from the run directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobdeck.execute import record
from jobdeck.execute.launch import cancel, probe, relaunch, result, shim_info
from jobdeck.execute.proc import is_alive
from jobdeck.execute.spec import RunSpec
from tests.integration.test_execute_harness import (
    ENV,
    PY,
    Harness,
    needs_cgroups,
    pool,
    wait_for,
)

pytestmark = needs_cgroups


def test_a_run_outlives_the_process_that_launched_it(harness: Harness, tmp_path: Path) -> None:
    pools = harness.pools(batch=pool(memory="128MiB"))
    run_dir = tmp_path / "survivor"
    gate = tmp_path / "go"
    spec = RunSpec(
        run_id="survivor",
        shell=f"while [ ! -e {gate} ]; do sleep 0.05; done; echo finished",
        env=ENV,
        workdir=str(tmp_path),
        timeout=60,
        isolation=pools.placement("batch", "survivor"),
    )
    # An "engine" that launches the run, reports, and then hangs until killed.
    engine = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from jobdeck.execute.launch import launch
        from jobdeck.execute.spec import RunSpec
        spec = RunSpec.from_json(json.loads(sys.stdin.read()))
        handle = launch(Path({str(run_dir)!r}), spec)
        print("launched", handle.info.child_pid, flush=True)
        time.sleep(300)
        """
    )
    harness.run_dirs.append(run_dir)
    proc = subprocess.Popen(
        [PY, "-c", engine], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(json.dumps(spec.to_json()))
    proc.stdin.close()
    assert proc.stdout.readline().startswith("launched ")
    proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    proc.stdout.close()
    assert probe(run_dir) == "running"
    gate.touch()
    found = harness.wait(run_dir)
    assert (found.status, found.exit_code) == ("succeeded", 0)
    assert (run_dir / "log").read_text() == "finished\n"
    assert probe(run_dir) == "finished"


def test_probe_reports_a_run_whose_shim_and_program_were_killed_as_vanished(
    harness: Harness,
) -> None:
    pools = harness.pools(batch=pool())
    handle = harness.start(pools, "batch", "doomed", argv=["sleep", "300"])
    info = handle.info
    assert info is not None
    assert info.child_pid is not None
    assert probe(handle.run_dir) == "running"
    os.kill(info.shim_pid, signal.SIGKILL)
    os.kill(info.child_pid, signal.SIGKILL)
    wait_for(lambda: probe(handle.run_dir) == "vanished", 10, "the run to vanish")
    wait_for(lambda: not is_alive(info.child_pid, info.child_start), 10, "the program's end")
    assert result(handle.run_dir) is None
    assert cancel(handle.run_dir, grace=1) is False  # nothing is left to stop
    _remove_group(pools.memory_group("batch") / "run-doomed")


def test_cancel_stops_a_program_whose_shim_is_gone(harness: Harness) -> None:
    pools = harness.pools(batch=pool())
    handle = harness.start(pools, "batch", "orphan", shell="sleep 300 & sleep 301")
    info = handle.info
    assert info is not None
    assert info.child_pid is not None
    os.kill(info.shim_pid, signal.SIGKILL)
    wait_for(lambda: probe(handle.run_dir) == "vanished", 10, "the run to vanish")
    assert is_alive(info.child_pid, info.child_start)
    assert cancel(handle.run_dir, grace=2) is True
    assert not is_alive(info.child_pid, info.child_start)
    _remove_group(pools.memory_group("batch") / "run-orphan")


def test_cancel_through_the_shim(harness: Harness) -> None:
    pools = harness.pools(batch=pool())
    program = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )
    handle = harness.start(
        pools, "batch", "unwanted", argv=[PY, "-c", program], kill_grace=60, timeout=120
    )
    log = handle.run_dir / "log"
    wait_for(lambda: log.read_text() == "ready\n", 10, "the program to ignore SIGTERM")
    assert cancel(handle.run_dir, grace=0.5) is True
    # The grace of the cancel, not the spec's 60s, applies.
    found = harness.wait(handle.run_dir, timeout=20)
    assert (found.status, found.reason, found.signal) == ("cancelled", "cancelled", 9)
    assert probe(handle.run_dir) == "finished"
    assert cancel(handle.run_dir, grace=1) is False


def test_a_run_directory_is_used_once(harness: Harness) -> None:
    pools = harness.pools(batch=pool())
    handle = harness.start(pools, "batch", "once", argv=["true"])
    harness.wait(handle.run_dir)
    with pytest.raises(FileExistsError):
        harness.start(pools, "batch", "once", argv=["true"])
    # The refused attempt had its group made; the engine gives it back.
    assert pools.release("batch", "once")
    info = shim_info(handle.run_dir)
    assert info is not None
    assert info.child_pid is not None


def _remove_group(group: Path) -> None:
    """A killed shim cannot remove its run group: that is what reaping is for."""
    wait_for(lambda: not group.exists() or not (group / "cgroup.procs").read_text(), 10, "empty")
    if group.exists():
        group.rmdir()


def test_a_run_leaves_one_record_and_its_log_and_each_part_once(harness: Harness) -> None:
    """The engine's spec, the shim's identity, the program's start and the result are
    lines of one record, in that order (every new file costs an inode, which on ext4
    without a journal is slow after deletions); readers see the shim and the program
    as one."""
    pools = harness.pools(batch=pool())
    handle = harness.start(pools, "batch", "once", shell="echo hi")
    assert harness.wait(handle.run_dir).status == "succeeded"
    lines = [json.loads(line) for line in (handle.run_dir / "run.jsonl").read_text().splitlines()]
    assert [next(iter(line)) for line in lines] == ["spec", "shim", "started", "result"]
    own, started = lines[1]["shim"], lines[2]["started"]
    assert own["child_pid"] is None
    info = shim_info(handle.run_dir)
    assert info is not None
    assert (info.shim_pid, info.child_pid, info.pgid) == (
        own["shim_pid"],
        started["child_pid"],
        started["child_pid"],
    )
    assert info.started_at == started["started_at"]
    # Started the cold way, the shim's own output has a file too.
    assert sorted(p.name for p in handle.run_dir.iterdir()) == ["log", "run.jsonl", "shim.log"]


def test_a_run_directory_of_an_earlier_version_is_still_read(tmp_path: Path) -> None:
    """Earlier versions wrote a file per part, and before ``started.json`` the shim
    rewrote ``shim.json`` with the program in it: an engine upgraded while such a run
    goes on must still adopt it."""
    record = {
        "shim_pid": 4321,
        "shim_start": 99,
        "boot_id": "b",
        "child_pid": 4322,
        "child_start": 100,
        "pgid": 4322,
        "started_at": "2026-03-29T00:00:00.000Z",
    }
    (tmp_path / "shim.json").write_text(json.dumps(record))
    info = shim_info(tmp_path)
    assert info is not None
    assert (info.child_pid, info.child_start, info.pgid) == (4322, 100, 4322)


def test_an_earlier_versions_four_files_are_read_as_one_record(tmp_path: Path) -> None:
    """A run that an earlier version launched and that ended while no engine ran: its
    spec, shim, start and result files are found, and the run is finished."""
    spec = RunSpec(run_id="old", argv=("/bin/true",), env=ENV, workdir=str(tmp_path))
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_json()))
    shim = {"shim_pid": 4321, "shim_start": 99, "boot_id": "b", "child_pid": None}
    (tmp_path / "shim.json").write_text(json.dumps(shim))
    started = {"child_pid": 4322, "child_start": 100, "pgid": 4322, "started_at": "x"}
    (tmp_path / "started.json").write_text(json.dumps(started))
    ended = {"run_id": "old", "status": "failed", "reason": "exit_code", "exit_code": 3}
    (tmp_path / "result.json").write_text(json.dumps(ended))
    info = shim_info(tmp_path)
    assert info is not None
    assert (info.shim_pid, info.child_pid, info.started_at) == (4321, 4322, "x")
    done = result(tmp_path)
    assert done is not None
    assert (done.status, done.exit_code) == ("failed", 3)
    assert probe(tmp_path) == "finished"
    assert RunSpec.from_json(record.read(tmp_path).spec or {}) == spec
    with pytest.raises(FileExistsError):
        record.create(tmp_path, spec.to_json())


def test_a_launch_begun_and_not_finished_is_completed_once(
    harness: Harness, tmp_path: Path
) -> None:
    """An engine wrote a run's spec and died before its shim took the run: the next
    engine starts a shim for that spec. Two shims started for it at once (the first one
    coming late after all) run the program once."""
    pools = harness.pools(batch=pool())
    run_dir = tmp_path / "half-launched"
    ran = tmp_path / "ran.txt"
    spec = RunSpec(
        run_id="half-launched",
        argv=(PY, "-c", f"open({str(ran)!r}, 'a').write('ran;')"),
        env=ENV,
        workdir=str(tmp_path),
        timeout=60,
        isolation=pools.placement("batch", "half-launched"),
    )
    harness.run_dirs.append(run_dir)
    record.create(run_dir, spec.to_json())
    assert record.unclaimed(run_dir)
    with ThreadPoolExecutor(2) as both:
        handles = list(both.map(lambda _: relaunch(run_dir), range(2)))
    assert {h.info.shim_pid for h in handles if h.info} == {handles[0].info.shim_pid}  # type: ignore[union-attr]
    found = harness.wait(run_dir)
    assert (found.status, found.exit_code) == ("succeeded", 0)
    late = subprocess.run(
        [PY, "-m", "jobdeck.execute.shim", str(run_dir), "--foreground"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert late.returncode == 0
    assert "taken by another shim" in late.stderr
    assert ran.read_text() == "ran;"
    assert not record.unclaimed(run_dir)
