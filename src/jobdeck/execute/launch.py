"""The engine's side of a run: start a shim, read its result, adopt it, cancel it.

Everything here works from the run directory alone, so an engine that restarts (or a
second process) can take over runs that an earlier engine launched.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jobdeck.execute import cgroups, record
from jobdeck.execute.proc import boot_id, group_alive, is_alive, signal_group
from jobdeck.execute.record import Record
from jobdeck.execute.spec import (
    CANCEL_FILE,
    SHIM_LOG_FILE,
    RunResult,
    RunSpec,
    ShimInfo,
    write_json_atomic,
)

Probe = Literal["running", "finished", "vanished"]
POLL = 0.005


class LaunchTimeout(Exception):
    """The shim did not report the program started within the launch timeout."""


@dataclass(frozen=True)
class RunHandle:
    """A launched run. ``info`` is None only when the launch failed before the shim
    recorded itself; ``result`` is set when the run already ended (a launch error)."""

    run_dir: Path
    info: ShimInfo | None
    result: RunResult | None


def launch(
    run_dir: Path,
    spec: RunSpec,
    *,
    python: str = sys.executable,
    start_timeout: float = 30.0,
) -> RunHandle:
    """Write the run's record (its spec), start the shim detached, and return once the
    program runs.

    Returns with ``result`` set when the launch failed (``reason == "launch_error"``).
    Refuses a run directory that already has a spec: a run is started at most once.
    """
    record.create(run_dir, spec.to_json())
    return relaunch(run_dir, python=python, start_timeout=start_timeout)


def relaunch(
    run_dir: Path, *, python: str = sys.executable, start_timeout: float = 30.0
) -> RunHandle:
    """Start a shim for the spec already in ``run_dir`` and return once the program runs.

    Completes a launch that an engine began (it wrote the spec) and did not finish (it
    died before its shim took the run). Should the first shim come after all, only one
    of the two takes the run (:func:`jobdeck.execute.record.claim`); this returns the one
    that did.
    """
    # Imported here: the warm launcher imports this module, and every shim it forks
    # pays for what it holds (subprocess brings threading, whose handler runs after
    # every fork).
    import subprocess

    with open(run_dir / SHIM_LOG_FILE, "ab", opener=_private) as shim_log:
        # The shim forks and this direct child exits at once, so waiting here is brief
        # and leaves no zombie behind; the shim itself is adopted by init.
        starter = subprocess.run(
            [python, "-m", "jobdeck.execute.shim", str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=shim_log,
            stderr=shim_log,
            cwd="/",
            start_new_session=True,
            check=False,
        )
    if starter.returncode != 0:
        text = (run_dir / SHIM_LOG_FILE).read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the run shim did not start (exit {starter.returncode}): {text}")
    return wait_started(run_dir, start_timeout)


def wait_started(run_dir: Path, start_timeout: float = 30.0) -> RunHandle:
    """Wait until the shim reports the program started, or a result, or its death."""
    deadline = time.monotonic() + start_timeout
    while True:
        found = record.read(run_dir, spec=False)
        done, info = found.run_result(), found.shim_info()
        if done is not None:
            return RunHandle(run_dir, info, done)
        if info is not None and info.child_pid is not None:
            return RunHandle(run_dir, info, None)
        if info is not None and not is_alive(info.shim_pid, info.shim_start):
            done = result(run_dir)  # it may have written the result just before exiting
            return RunHandle(run_dir, info, done)
        if time.monotonic() >= deadline:
            raise LaunchTimeout(f"{run_dir}: the program did not start in {start_timeout}s")
        time.sleep(POLL)


def shim_info(run_dir: Path) -> ShimInfo | None:
    """Who supervises the run, with the program once it started (None before the shim
    recorded itself)."""
    return record.read(run_dir, spec=False).shim_info()


def result(run_dir: Path) -> RunResult | None:
    """The run's result, or None while it has none."""
    return record.read(run_dir, spec=False).run_result()


def probe(run_dir: Path, info: ShimInfo | None = None) -> Probe:
    """The state of a run found in the store after an engine (re)start.

    ``finished``: it has a result. ``running``: its shim (this boot, same start time)
    is alive and will write one. ``vanished``: no result and no shim to write one —
    the machine rebooted, or the shim was killed; the run is lost. A program that
    outlived its shim may still run: :func:`cancel` stops it. ``info`` is the shim's
    record when the caller has read it already.
    """
    found = record.read(run_dir, spec=False)
    if found.result is not None:
        return "finished"
    info = info or found.shim_info()
    if info is None or info.boot_id != boot_id():
        return "vanished"
    if is_alive(info.shim_pid, info.shim_start):
        return "running"
    return "finished" if result(run_dir) is not None else "vanished"


def cancel(run_dir: Path, grace: float) -> bool:
    """Ask the run to stop: SIGTERM to its processes, SIGKILL after ``grace`` seconds.

    With a live shim this only signals it and returns; the shim stops the program and
    writes the result (``cancelled``). Without one (the run vanished) it stops what is
    left of the program itself, which takes up to ``grace``. False when nothing ran.
    """
    found = record.read(run_dir)
    info = found.shim_info()
    if info is None or info.boot_id != boot_id() or found.result is not None:
        return False
    if is_alive(info.shim_pid, info.shim_start):
        write_json_atomic(run_dir / CANCEL_FILE, {"grace": grace}, durable=False)
        try:
            os.kill(info.shim_pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True
    return _stop_orphans(found, info, grace)


def _stop_orphans(found: Record, info: ShimInfo, grace: float) -> bool:
    run_group = None
    if found.spec is not None:
        group = RunSpec.from_json(found.spec).isolation.run_cgroup
        run_group = Path(group) if group else None
    # A pgid is trusted while its leader is the very process the shim started, or when
    # no process has that pid: the kernel does not reuse a pid that still names a group.
    pgid = info.pgid
    if pgid is not None and not is_alive(info.child_pid, info.child_start):
        pgid = None if Path(f"/proc/{pgid}").exists() else pgid

    def anything_left() -> bool:
        in_group = pgid is not None and group_alive(pgid)
        return in_group or bool(run_group and cgroups.procs(run_group))

    if not anything_left():
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if pgid is not None:
            signal_group(pgid, sig)
        if run_group is not None:
            cgroups.kill_all(run_group, sig)
        deadline = time.monotonic() + wait
        while anything_left() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not anything_left():
            break
    return True


def _private(path: str, flags: int) -> int:
    """Files of the state dir are the engine's user's alone."""
    return os.open(path, flags, 0o600)
