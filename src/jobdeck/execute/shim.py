"""The run shim: a small parent that supervises one run, independent of the engine.

``python -m jobdeck.execute.shim RUN_DIR`` forks, the parent exits at once (so the
engine has no child to reap and the shim is nobody's child but init's) and the shim,
in its own session, runs the spec in ``RUN_DIR/run.jsonl`` (the run's record, see
:mod:`jobdeck.execute.record`), to which it appends who it is, then the program's start:

1. joins the run's cgroups and sets the run's ``oom_score_adj`` on itself, moves to its
   working directory, then spawns the program with ``posix_spawn`` (vfork and exec, no
   Python in between: :mod:`jobdeck.execute.spawn`), which inherits all three;
   in the fallback mode it applies RLIMIT_AS to the program right after the spawn;
2. steps out of the run's memory group at once (into ``leave_to``), so that what it
   writes itself (the log, the result) is not charged to the run: a removed memory
   group that still has file pages charged lives on, hidden, in the kernel; and lowers
   its own ``oom_score_adj`` to -1000 so that at the limit the kernel kills the
   program, never its supervisor;
3. copies the program's combined stdout/stderr into the capped ``log``;
4. enforces the timeout itself (SIGTERM to the process group, the run's cgroup and
   every process below the shim, SIGKILL after ``kill_grace``): the shim is the child
   subreaper of the run (``PR_SET_CHILD_SUBREAPER``), so what the program starts stays
   below it even when it leaves the group (``setsid``) or its parent dies (a
   double-forked daemon), in every isolation mode; and treats its own SIGTERM, SIGINT or SIGHUP as a
   cancel (same sequence, with the grace from ``cancel.json`` when present; the result
   is ``cancelled``/``cancelled``);
5. when the program exits, stops what it left behind in its group or cgroup (SIGTERM,
   SIGKILL after ``kill_grace``): a run is over when its main process is;
6. appends the result to the record, flushed to disk, and removes the run's group.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from jobdeck.execute import cgroups, record
from jobdeck.execute.logcap import CappedLog
from jobdeck.execute.proc import (
    become_subreaper,
    boot_id,
    descendants,
    group_alive,
    has_children,
    set_oom_score_adj,
    signal_group,
    signal_pids,
    start_time,
)
from jobdeck.execute.spawn import Program, spawn
from jobdeck.execute.spec import (
    CANCEL_FILE,
    LOG_FILE,
    Reason,
    RunResult,
    RunSpec,
    ShimInfo,
    fence_until,
    read_json,
)

# After the program and everything it left have gone, output still in flight is read
# for at most this long: a process that escaped both the group and the cgroup (possible
# in the fallback mode) must not keep the run open by holding the pipe.
DRAIN_SECONDS = 1.0
# How often the shim of a fenced run (a worker of a cluster's leader) reads its fence.
FENCE_POLL = 0.2
READ_SIZE = 65536


class LaunchError(Exception):
    """The program could not be started; it never ran, so retrying is safe."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Shim:
    def __init__(
        self,
        run_dir: Path,
        on_started: Callable[[], None] | None = None,
        spec: RunSpec | None = None,
    ) -> None:
        """``on_started`` is called once the program runs and the record says so, or
        once a launch error is recorded: whoever waits for the start can look then.
        ``spec``: the run's, read by whoever forked this shim (else read here)."""
        self.run_dir = run_dir
        self.on_started = on_started
        self.spec = spec or self.load_spec(run_dir)
        self._record = -1  # the record's descriptor while the shim appends to it
        self.iso = self.spec.isolation
        self.pid = os.getpid()
        self.info = ShimInfo(self.pid, start_time(self.pid) or 0, boot_id())
        self.cancel_requested = False
        self.stop_reason: Reason | None = None
        self.kill_at: float | None = None
        self.killed_by_us = False
        self.child: Program | None = None
        self.started_at: str | None = None
        self._left = False  # out of the run's memory group again
        self.wake_fds: tuple[int, int] | None = None  # the signal wake-up pipe

    @staticmethod
    def load_spec(run_dir: Path) -> RunSpec:
        """The run's spec from its record; FileNotFoundError when it holds none."""
        data = record.read(run_dir).spec
        if data is None:
            raise FileNotFoundError(f"{run_dir / record.RECORD_FILE} holds no run spec")
        return RunSpec.from_json(data)

    # -- signals --------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        self.cancel_requested = True

    def _install_signals(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.wake_fds = (wake_r, wake_w)
        return wake_r

    # -- launch ---------------------------------------------------------------------

    def _launch(self, log_w: int) -> Program:
        for group in self.iso.join:
            try:
                cgroups.join(Path(group), self.pid)
            except cgroups.CgroupError as exc:
                raise LaunchError(f"pool unavailable: {exc}") from exc
        problem = set_oom_score_adj(self.iso.oom_score_adj)
        if problem:
            print(f"jobdeck shim of run {self.spec.run_id}: {problem}", file=sys.stderr)
        workdir = self.spec.workdir
        if not os.path.isdir(workdir):
            what = "does not exist" if not os.path.exists(workdir) else "is not a directory"
            raise LaunchError(f"bad workdir {workdir!r}: {what}")
        argv = self.spec.command()
        env = dict(self.spec.env)
        env["JOBDECK_RUN_ID"] = self.spec.run_id
        try:
            # The shim's own directory is the program's: posix_spawn has no cwd.
            os.chdir(workdir)
        except OSError as exc:
            raise LaunchError(f"bad workdir {workdir!r}: {exc.strerror or exc}") from exc
        try:
            child = spawn(argv, env, log_w)
        except OSError as exc:
            raise LaunchError(
                f"cannot execute {argv[0]!r}: {exc.strerror or exc} (errno {exc.errno})"
            ) from exc
        if self.iso.cgroup_version is None and self.iso.memory_limit is not None:
            limit = self.iso.memory_limit
            try:
                # Right after the spawn, not before: a preexec_fn would forbid vfork, and
                # lowering the shim's own limit could starve the shim itself.
                resource.prlimit(child.pid, resource.RLIMIT_AS, (limit, limit))
            except OSError as exc:
                child.kill()
                child.wait()
                raise LaunchError(f"cannot set RLIMIT_AS {limit}: {exc}") from exc
        self._leave_run_groups()
        set_oom_score_adj(-1000)
        return child

    def _leave_run_groups(self) -> None:
        """Move the shim out of the run's memory group (the program stays inside)."""
        if self._left:
            return
        self._left = True
        for group in self.iso.leave_to:
            with contextlib.suppress(cgroups.CgroupError):
                cgroups.join(Path(group), self.pid)

    # -- stopping -------------------------------------------------------------------

    def _signal_all(self, sig: int) -> None:
        assert self.child is not None
        signal_group(self.child.pid, sig)
        if self.iso.run_cgroup:
            cgroups.kill_all(Path(self.iso.run_cgroup), sig, spare=self.pid)
        # And every process below the shim, wherever it went: a process that left the
        # group (setsid) and, without cgroups, the run's cgroup too, is still below the
        # shim, which adopts the orphans (a double-forked daemon) as their subreaper.
        signal_pids([pid for pid, zombie in descendants(self.pid) if not zombie], sig)

    def _leftovers(self) -> bool:
        assert self.child is not None
        # First: an ended orphan the shim adopted is a zombie until the shim reaps it,
        # and a zombie still counts in its process group.
        adopted = self._adopted_alive()
        if group_alive(self.child.pid):
            return True
        run = self.iso.run_cgroup
        if run and [p for p in cgroups.procs(Path(run)) if p != self.pid]:
            return True
        return adopted

    def _adopted_alive(self) -> bool:
        """Whether a process below the shim lives on (the program's own exit aside);
        reaps the orphans the shim adopted that have ended meanwhile."""
        assert self.child is not None
        if not has_children():
            # The program reaped and nothing adopted: as the subreaper, the shim is the
            # parent of every orphan below it, so nothing is below it any more. This
            # spares the scan of every process on the host at the end of most runs.
            return False
        alive = False
        for pid, zombie in descendants(self.pid):
            if pid == self.child.pid:
                continue  # the program: waited for by its own handle, never here
            if not zombie:
                alive = True
            else:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)  # an adopted orphan that has ended
        return alive

    def _begin_stop(self, reason: Reason | None, grace: float) -> None:
        """SIGTERM now, SIGKILL at ``grace``; ``reason`` None: only cleaning up."""
        if reason is not None and self.stop_reason is None:
            self.stop_reason = reason
        if self.kill_at is None:
            self._signal_all(signal.SIGTERM)
            self.kill_at = time.monotonic() + grace

    def _cancel_grace(self) -> float:
        with contextlib.suppress(ValueError, TypeError, OSError):
            data = read_json(self.run_dir / CANCEL_FILE)
            if data is not None and data.get("grace") is not None:
                return max(0.0, float(data["grace"]))
        return self.spec.kill_grace

    # -- the loop -------------------------------------------------------------------

    def _supervise(self, log: CappedLog, log_r: int, wake_r: int) -> int:
        child = self.child
        assert child is not None
        sel = selectors.DefaultSelector()
        sel.register(log_r, selectors.EVENT_READ, "log")
        sel.register(wake_r, selectors.EVENT_READ, "signal")
        pidfd = -1
        with contextlib.suppress(OSError, AttributeError):
            pidfd = os.pidfd_open(child.pid)
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        timeout = self.spec.timeout
        deadline = time.monotonic() + timeout if timeout is not None else None
        returncode: int | None = None
        drain_until: float | None = None
        log_open = True
        fence = Path(self.spec.fence) if self.spec.fence else None
        fence_at: float | None = time.monotonic() if fence is not None else None
        while True:
            now = time.monotonic()
            if fence is not None and fence_at is not None and now >= fence_at:
                fence_at = now + FENCE_POLL
                if returncode is None and time.time() >= fence_until(fence, self.spec.run_id):
                    # Its node no longer leads (or cannot say so): stop it at once,
                    # before another node may start its replacement.
                    fence_at = None
                    self._begin_stop("cancelled", 0.0)
                    self.kill_at = now
            if returncode is None:
                returncode = child.poll()
                if returncode is not None and self._leftovers():
                    self._begin_stop(None, self.spec.kill_grace)
            if self.cancel_requested and self.stop_reason is None and returncode is None:
                self._begin_stop("cancelled", self._cancel_grace())
            if deadline is not None and now >= deadline and returncode is None:
                self._begin_stop("timeout", self.spec.kill_grace)
            if self.kill_at is not None and now >= self.kill_at:
                self.killed_by_us = True
                self._signal_all(signal.SIGKILL)
                self.kill_at = now + 1.0  # repeat while anything is left
            if returncode is not None and drain_until is None and not self._leftovers():
                drain_until = now + DRAIN_SECONDS
                self.kill_at = None
            if drain_until is not None and (not log_open or now >= drain_until):
                break
            waits = [1.0 if pidfd >= 0 and returncode is None else 0.05]
            ends = (deadline, self.kill_at, drain_until, fence_at)
            waits += [t - now for t in ends if t is not None]
            for key, _ in sel.select(max(0.0, min(waits))):
                if key.data == "log":
                    data = os.read(log_r, READ_SIZE)
                    if data:
                        log.write(data)
                    else:
                        log_open = False
                        sel.unregister(log_r)
                elif key.data == "signal":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                else:
                    sel.unregister(pidfd)
        sel.close()
        if pidfd >= 0:
            os.close(pidfd)
        assert returncode is not None  # the loop only ends after the program's exit
        return returncode

    # -- the whole run --------------------------------------------------------------

    def run(self) -> int:
        self._record = record.open_for_append(self.run_dir)
        try:
            if not record.claim(self._record, self.run_dir, _info_json(self.info)):
                # Another shim runs it (an engine completed a launch that its predecessor
                # began, and the first shim came after all): a run starts once.
                print(
                    f"jobdeck shim of run {self.spec.run_id}: taken by another shim",
                    file=sys.stderr,
                )
                return 0
            return self._run()
        finally:
            os.close(self._record)
            self._record = -1

    def _run(self) -> int:
        # Before the program starts: what it leaves behind, whichever way it forks
        # away, is re-parented to the shim, which stops it with the rest of the run.
        problem = become_subreaper()
        if problem:
            print(f"jobdeck shim of run {self.spec.run_id}: {problem}", file=sys.stderr)
        wake_r = self._install_signals()
        log = CappedLog(self.run_dir / LOG_FILE, self.spec.log_cap)
        run_group = Path(self.iso.run_cgroup) if self.iso.run_cgroup else None
        pool_group = Path(self.iso.pool_cgroup) if self.iso.pool_cgroup else None
        version = self.iso.cgroup_version or 0
        pool_ooms = cgroups.oom_kills(version, pool_group) if pool_group else 0
        log_r, log_w = os.pipe()
        try:
            self.child = self._launch(log_w)
        except LaunchError as exc:
            os.close(log_w)
            os.close(log_r)
            log.close()
            return self._finish(
                RunResult(self.spec.run_id, "failed", "launch_error", error=str(exc)),
            )
        os.close(log_w)
        self.started_at = now_iso()
        pid = self.child.pid
        started = {
            "child_pid": pid,
            "child_start": start_time(pid),
            "pgid": pid,
            "started_at": self.started_at,
        }
        record.write_line(self._record, "started", started)
        self._announce()
        try:
            returncode = self._supervise(log, log_r, wake_r)
        except BaseException as exc:
            self._signal_all(signal.SIGKILL)
            log.close()
            result = RunResult(
                self.spec.run_id,
                "failed",
                "shim_error",
                error=f"the run's supervisor failed: {exc!r}",
                started_at=self.started_at,
                ended_at=now_iso(),
            )
            return self._finish(result)
        os.close(log_r)
        log.close()
        oom = False
        if run_group is not None:
            oom = cgroups.oom_kills(version, run_group) > 0
        if not oom and pool_group is not None and returncode == -signal.SIGKILL:
            oom = not self.killed_by_us and cgroups.oom_kills(version, pool_group) > pool_ooms
        result = self._outcome(returncode, oom, log.dropped)
        return self._finish(result)

    def _announce(self) -> None:
        announce, self.on_started = self.on_started, None
        if announce is not None:
            # Nobody may wait any more: the engine finds the files anyway.
            with contextlib.suppress(OSError):
                announce()

    def _outcome(self, returncode: int, oom: bool, dropped: int) -> RunResult:
        exit_code = returncode if returncode >= 0 else None
        sig = -returncode if returncode < 0 else None
        if self.stop_reason == "timeout":
            status, reason = "timed_out", "timeout"
        elif self.stop_reason == "cancelled":
            status, reason = "cancelled", "cancelled"
        elif oom and returncode != 0:
            status, reason = "failed", "oom_killed"
        elif returncode == 0:
            status, reason = "succeeded", None
        else:
            status, reason = "failed", "exit_code"
        peak = None
        if self.iso.run_cgroup and self.iso.cgroup_version:
            peak = cgroups.peak_memory(self.iso.cgroup_version, Path(self.iso.run_cgroup))
        else:
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        return RunResult(
            self.spec.run_id,
            status,  # type: ignore[arg-type]
            reason,  # type: ignore[arg-type]
            exit_code=exit_code,
            signal=sig,
            started_at=self.started_at,
            ended_at=now_iso(),
            peak_memory=peak,
            log_dropped_bytes=dropped,
        )

    def _finish(self, result: RunResult) -> int:
        if result.ended_at is None:
            result = RunResult(**{**result.__dict__, "ended_at": now_iso()})
        record.write_line(self._record, "result", result.to_json())
        record.flush(self._record, self.run_dir)
        self._announce()  # a launch error is the answer to whoever waits for the start
        # The run's group can only be removed once nothing, the shim included, is in it
        # (a launch that failed after joining it never left it).
        self._leave_run_groups()
        for group in self.iso.remove:
            cgroups.remove(Path(group))
        return 0


def _info_json(info: ShimInfo) -> dict[str, object]:
    return dict(info.__dict__)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):
        print("usage: python -m jobdeck.execute.shim RUN_DIR [--foreground]", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    if "--foreground" not in args[1:]:
        # Detach: the launcher reaps this parent at once, the shim lives on under init.
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
    return Shim(run_dir).run()


if __name__ == "__main__":
    sys.exit(main())
