"""The engine's asynchronous side of running a process: catalog item -> RunSpec -> shim.

Launching waits for the shim to report the program started; completion is watched with
a pidfd on the shim, which wakes the event loop the moment the shim exits, also for a
shim started by an earlier engine. Runs of a ``warm: true`` pool get their shim forked
by the pool's resident launcher (:mod:`jobdeck.execute.warm`) instead of a fresh
interpreter, and the engine talks to it from the event loop itself; a cold launch
(a fresh interpreter, polled for its start) runs in a worker thread. When the launcher
cannot be reached before the request, the run starts the cold way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jobdeck.catalog.model import Catalog, Command, Pool, Schedule, Worker
from jobdeck.execute import RunResult, RunSpec, ShimInfo, cancel, launch, probe, record, result
from jobdeck.execute.cgroups import CgroupError
from jobdeck.execute.launch import (
    LaunchTimeout,
    RunHandle,
    relaunch,
    shim_info,
    wait_started,
)
from jobdeck.execute.pools import Mode, PoolManager
from jobdeck.execute.proc import is_alive
from jobdeck.execute.warm_client import LauncherUnreachable, WarmLauncher, WarmLaunchError

log = logging.getLogger(__name__)

DEFAULT_POOL = "default"
# The engine's own secrets never reach a run's environment.
PRIVATE_ENV = ("JOBDECK_API_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")

Item = Schedule | Command | Worker
# A Unix socket's path must fit in 108 bytes.
SOCKET_PATH_MAX = 100
# After a failed request to a launcher: how long a shim it may have forked gets to show.
WARM_SETTLE = 2.0


@dataclass(frozen=True)
class Applied:
    """The revision the engine runs, and where relative workdirs resolve."""

    revision: int
    catalog: Catalog
    base_dir: Path


@dataclass(frozen=True)
class Launched:
    """The program runs (``result`` None) or could not start (``result`` set)."""

    run_dir: Path
    result: RunResult | None
    pid: int | None = None
    started_at: str | None = None  # when the shim started the program (ISO, its clock)
    launch: str = "cold"  # "warm": forked by the pool's resident launcher
    shim: ShimInfo | None = None  # the shim's record, as it was when the program started


class Executor:
    def __init__(
        self,
        state_dir: Path,
        instance: str,
        pools: Mapping[str, Pool],
        *,
        base_env: Mapping[str, str],
        mode: Mode = "auto",
    ) -> None:
        self.state_dir = state_dir
        self.runs_dir = state_dir / "runs"
        self.instance = instance
        self.mode = mode
        self.base_env = {k: v for k, v in base_env.items() if k not in PRIVATE_ENV}
        self._watches: dict[int, int] = {}
        self._launchers: dict[str, WarmLauncher] = {}
        self.pools = self._manager(pools)
        self._sync_launchers()

    def _manager(self, pools: Mapping[str, Pool]) -> PoolManager:
        declared = dict(pools)
        declared.setdefault(DEFAULT_POOL, Pool())
        return PoolManager(self.instance, declared, mode=self.mode)

    def update_pools(self, pools: Mapping[str, Pool]) -> None:
        """Apply a new revision's pools (limits of existing pools change in place)."""
        self.pools = self._manager(pools)
        self._sync_launchers()

    # -- warm pools -------------------------------------------------------------------

    def _socket_path(self, pool: str) -> Path | None:
        for base in (self.state_dir / "warm", Path(tempfile.gettempdir()) / self.instance):
            path = base / f"{pool}.sock"
            if len(str(path.resolve())) <= SOCKET_PATH_MAX:
                return path.resolve()
        return None

    def _sync_launchers(self) -> None:
        """One launcher per warm pool; the launchers of pools no longer warm stop.

        A launcher starts at the pool's first run (and is found again after an engine
        restart by its socket): starting it here would block the event loop.
        """
        declared = self.pools.pools
        for name in list(self._launchers):
            if name not in declared or not declared[name].warm:
                self._launchers.pop(name).stop()
        for name, pool in declared.items():
            if pool.warm and name not in self._launchers:
                path = self._socket_path(name)
                if path is None:
                    log.warning("pool %s: no short enough socket path; runs start cold", name)
                    continue
                self._launchers[name] = WarmLauncher(path)

    def stop_launchers(self) -> list[int]:
        """Stop every warm launcher (runs go on); returns their pids, to wait for."""
        pids = []
        for launcher in self._launchers.values():
            pid = launcher._pid()
            launcher.stop()
            if pid is not None:
                pids.append(pid)
        return pids

    async def _launch(self, pool: str, run_dir: Path, spec: RunSpec) -> tuple[RunHandle, str]:
        launcher = self._launchers.get(pool)
        if launcher is not None:
            try:
                return await _launch_warm(launcher, run_dir, spec), "warm"
            except LauncherUnreachable as exc:
                log.warning("pool %s: %s; run %s starts cold", pool, exc, spec.run_id)
        return await asyncio.to_thread(launch, run_dir, spec), "cold"

    def run_dir(self, run_id: int) -> Path:
        return self.runs_dir / str(run_id)

    async def start(
        self,
        run_id: int,
        item: Item,
        *,
        pool: str | None,
        argv: list[str] | None,
        workdir: Path,
        env: Mapping[str, str],
        fence: Path | None = None,
    ) -> Launched:
        """Starts a run's shim. ``fence``: a fence file (see
        :func:`jobdeck.execute.spec.write_fence`) past whose time the shim stops the run."""
        run_dir = self.run_dir(run_id)
        pool_name = pool or DEFAULT_POOL
        try:
            isolation = self.pools.placement(pool_name, str(run_id), item.memory)
        except (OSError, KeyError, ValueError, CgroupError) as exc:
            return Launched(run_dir, _launch_error(run_id, f"pool {pool_name} unavailable: {exc}"))
        shell = None if isinstance(item, Command) else item.shell
        timeout = None if isinstance(item, Worker) else item.timeout.total_seconds()
        grace = item.stop_grace if isinstance(item, Worker) else item.kill_grace
        spec = RunSpec(
            run_id=str(run_id),
            argv=tuple(argv) if argv is not None else None,
            shell=shell if argv is None else None,
            env={**self.base_env, **env},
            workdir=str(workdir),
            timeout=timeout,
            kill_grace=grace.total_seconds(),
            isolation=isolation,
            fence=str(fence) if fence is not None else None,
        )
        refused = spec.exec_problem()
        if refused is not None:
            self.pools.release(pool_name, str(run_id))
            return Launched(run_dir, _launch_error(run_id, refused))
        try:
            handle, how = await self._launch(pool_name, run_dir, spec)
        except LaunchTimeout as exc:
            # The shim may still start the program later: it must not run unrecorded.
            await asyncio.to_thread(cancel, run_dir, 0.0)
            return Launched(run_dir, _launch_error(run_id, str(exc)))
        except (OSError, RuntimeError) as exc:
            self.pools.release(pool_name, str(run_id))
            return Launched(run_dir, _launch_error(run_id, str(exc)))
        info = handle.info
        pid = info.child_pid if info else None
        return Launched(run_dir, handle.result, pid, info.started_at if info else None, how, info)

    def unclaimed(self, run_id: int) -> bool:
        """True when the run's spec was written but no shim took the run (the engine that
        launched it died in between): :meth:`resume` completes the launch."""
        return record.unclaimed(self.run_dir(run_id))

    async def resume(self, run_id: int, *, memory: int | None, pool: str | None) -> Launched:
        """Complete the launch of a run whose spec an earlier engine wrote (see
        :meth:`unclaimed`): its program starts once, from that spec."""
        run_dir = self.run_dir(run_id)
        pool_name = pool or DEFAULT_POOL
        try:
            # Its cgroup again, as that engine made it (a restart may have reaped it).
            self.pools.placement(pool_name, str(run_id), memory)
            handle = await asyncio.to_thread(relaunch, run_dir)
        except LaunchTimeout as exc:
            await asyncio.to_thread(cancel, run_dir, 0.0)
            return Launched(run_dir, _launch_error(run_id, str(exc)))
        except (OSError, KeyError, ValueError, CgroupError, RuntimeError) as exc:
            self.pools.release(pool_name, str(run_id))
            return Launched(run_dir, _launch_error(run_id, str(exc)))
        info = handle.info
        pid = info.child_pid if info else None
        started = info.started_at if info else None
        return Launched(run_dir, handle.result, pid, started, "resumed", info)

    def watch(
        self,
        run_id: int,
        on_exit: Callable[[int, RunResult | None], None],
        shim: ShimInfo | None = None,
    ) -> None:
        """Call ``on_exit(run_id, result)`` in the event loop when the run's shim exits.

        The result is None when the shim died without writing one (the run is lost).
        ``shim`` is the shim's record when the caller has it (it just launched the run).
        """
        loop = asyncio.get_running_loop()
        run_dir = self.run_dir(run_id)
        info = shim or shim_info(run_dir)
        fd: int | None = None
        if info is not None:
            with contextlib.suppress(ProcessLookupError):
                fd = os.pidfd_open(info.shim_pid)
        if fd is None or probe(run_dir, info) != "running":
            if fd is not None:
                os.close(fd)
            loop.call_soon(on_exit, run_id, result(run_dir))
            return

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._watches.pop(run_id, None)
            on_exit(run_id, result(run_dir))

        self._watches[run_id] = fd
        loop.add_reader(fd, exited)

    def finished(self, run_id: int, shim: ShimInfo | None) -> RunResult | None:
        """The run's result when its shim has exited already, having written one; None
        while the shim runs (or when it died without a result: :meth:`watch` tells)."""
        if shim is None or is_alive(shim.shim_pid, shim.shim_start):
            return None
        return result(self.run_dir(run_id))

    def launched(self, run_id: int) -> bool:
        """True once a shim was started for the run (it may have ended since)."""
        return record.exists(self.run_dir(run_id))

    def probe(self, run_id: int) -> str:
        return probe(self.run_dir(run_id))

    def result(self, run_id: int) -> RunResult | None:
        return result(self.run_dir(run_id))

    async def cancel(self, run_id: int, grace: float) -> bool:
        return await asyncio.to_thread(cancel, self.run_dir(run_id), grace)

    def release(self, pool: str | None, run_id: int) -> None:
        if not self.pools.release(pool or DEFAULT_POOL, str(run_id)):
            log.info("run %s: its cgroup is busy; it will be reaped later", run_id)

    def close(self) -> None:
        """Stop watching (runs go on; a restarted engine adopts them)."""
        loop = asyncio.get_running_loop()
        for fd in self._watches.values():
            loop.remove_reader(fd)
            os.close(fd)
        self._watches.clear()

    def log_tail(self, run_id: int, lines: int = 20, max_bytes: int = 4000) -> str:
        path = self.run_dir(run_id) / "log"
        try:
            with path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - max_bytes))
                data = handle.read()
        except OSError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


async def _launch_warm(launcher: WarmLauncher, run_dir: Path, spec: RunSpec) -> RunHandle:
    try:
        return await launcher.launch_async(run_dir, spec)
    except WarmLaunchError as exc:
        # The request may have reached the launcher before it failed: a shim that
        # recorded itself runs the program, and the run is that one. Without one, the
        # run is a launch error (never a second, cold start of the same spec).
        try:
            return await asyncio.to_thread(wait_started, run_dir, WARM_SETTLE)
        except LaunchTimeout:
            raise RuntimeError(f"pool launcher unavailable: {exc}") from exc


def _launch_error(run_id: int, message: str) -> RunResult:
    return RunResult(run_id=str(run_id), status="failed", reason="launch_error", error=message)
