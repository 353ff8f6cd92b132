"""Shared helpers for the execute tests: real shims, real cgroups, strict clean-up."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import pytest

from jobdeck.catalog.model import Pool
from jobdeck.execute import cgroups
from jobdeck.execute.launch import RunHandle, launch, result, shim_info
from jobdeck.execute.pools import Mode, PoolManager
from jobdeck.execute.proc import is_alive
from jobdeck.execute.spec import RunResult, RunSpec

PY = sys.executable
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

HIERARCHY, HIERARCHY_WHY = cgroups.detect()
needs_cgroups = pytest.mark.skipif(
    os.geteuid() != 0 or HIERARCHY is None,
    reason=f"needs root and a cgroup memory hierarchy (uid {os.geteuid()}, {HIERARCHY_WHY})",
)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def _gone(pid: int, started: int | None) -> bool:
    return not is_alive(pid, started)


def pool(**fields: object) -> Pool:
    return Pool.model_validate(fields)


class Harness:
    """Starts runs in a test's own directory and instance; checks nothing is left."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.instance = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.managers: list[PoolManager] = []
        self.run_dirs: list[Path] = []

    def pools(self, mode: Mode = "auto", **pools: Pool) -> PoolManager:
        manager = PoolManager(self.instance, pools, mode=mode)
        self.managers.append(manager)
        return manager

    def start(
        self,
        manager: PoolManager,
        pool_name: str,
        run_id: str,
        *,
        argv: list[str] | None = None,
        shell: str | None = None,
        memory: int | None = None,
        timeout: float | None = 60,
        kill_grace: float = 5,
        log_cap: int = 1024 * 1024,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunHandle:
        run_dir = self.tmp_path / run_id
        spec = RunSpec(
            run_id=run_id,
            argv=tuple(argv) if argv is not None else None,
            shell=shell,
            env=dict(env if env is not None else ENV),
            workdir=workdir or str(self.tmp_path),
            timeout=timeout,
            kill_grace=kill_grace,
            isolation=manager.placement(pool_name, run_id, memory),
            log_cap=log_cap,
        )
        self.run_dirs.append(run_dir)
        return launch(run_dir, spec)

    def wait(self, run_dir: Path, timeout: float = 60) -> RunResult:
        wait_for(lambda: result(run_dir) is not None, timeout, f"the result of {run_dir.name}")
        found = result(run_dir)
        assert found is not None
        return found

    def cleanup(self) -> None:
        """Kill what is left (so one failure does not leak), then assert nothing was."""
        leaks: list[str] = []
        for run_dir in self.run_dirs:
            info = shim_info(run_dir)
            if info is None:
                continue
            pids = [(info.shim_pid, info.shim_start), (info.child_pid, info.child_start)]
            for pid, started in pids:
                if pid is None:
                    continue
                try:
                    wait_for(partial(_gone, pid, started), 15, f"pid {pid}")
                except AssertionError:
                    leaks.append(f"{run_dir.name}: pid {pid} still alive")
                    os.kill(pid, signal.SIGKILL)
        for manager in self.managers:
            if manager.hierarchy is None:
                continue
            for group in manager.instance_groups():
                for sub in sorted(group.rglob("*"), reverse=True):
                    if sub.is_dir() and cgroups.procs(sub):
                        leaks.append(f"processes left in {sub}")
                        cgroups.kill_all(sub)
            # Shims remove their run groups on exit: none may be left to reap.
            base = manager.hierarchy.memory / "jobdeck" / self.instance
            leftover = [p.name for p in base.glob("*/run-*")]
            if leftover:
                leaks.append(f"run cgroups left: {leftover}")
            if not manager.teardown():
                leaks.append(f"cannot remove {manager.instance_groups()}")
            for group in manager.instance_groups():
                if group.exists():
                    leaks.append(f"{group} still exists")
        assert not leaks, leaks
