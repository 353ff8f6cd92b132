"""What a run directory holds, as typed values, and how small files are written.

The engine and the run shim talk only through files in the run's directory, so that a
run outlives the engine that started it:

``run.jsonl``    the run's record (:mod:`jobdeck.execute.record`): the spec written by
                 the engine (:class:`RunSpec`), then by the shim who supervises the run
                 and the program's start (:class:`ShimInfo`), then the result
                 (:class:`RunResult`);
``cancel.json``  written by the engine to ask for a cancel with a given grace;
``log``          the program's stdout and stderr, combined and capped;
``shim.log``     the output of a shim started the cold way (a warm launcher's shims
                 write to the launcher's log).

Run directories of earlier versions hold the record as four files (``spec.json``,
``shim.json``, ``started.json``, ``result.json``); they are still read.

This module is imported by the shim, which starts a fresh interpreter per run: it must
stay free of heavy imports (no pydantic, no catalog).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jobdeck.execute.sysfiles import read_bytes

SPEC_FILE = "spec.json"
SHIM_FILE = "shim.json"
STARTED_FILE = "started.json"
CANCEL_FILE = "cancel.json"
RESULT_FILE = "result.json"
LOG_FILE = "log"
SHIM_LOG_FILE = "shim.log"

SCHEMA_VERSION = 1
DEFAULT_LOG_CAP = 16 * 1024 * 1024

Status = Literal["succeeded", "failed", "timed_out", "cancelled"]
Reason = Literal["exit_code", "oom_killed", "timeout", "launch_error", "cancelled", "shim_error"]


@dataclass(frozen=True)
class Isolation:
    """Where the run's processes live and which limits bind them.

    With cgroups, the shim writes its own pid into each ``join`` directory's
    ``cgroup.procs`` before it spawns the program, so that the program is born inside.
    Without cgroups (``cgroup_version`` is None), ``memory_limit`` becomes the program's
    RLIMIT_AS.
    """

    cgroup_version: int | None = None
    join: tuple[str, ...] = ()
    run_cgroup: str | None = None  # the run's memory cgroup: OOM count, peak, kill
    pool_cgroup: str | None = None  # the pool's memory cgroup: OOM kills at the pool limit
    leave_to: tuple[str, ...] = ()  # where the shim moves itself before removing ``remove``
    remove: tuple[str, ...] = ()  # the run's own cgroups, removed when the run is over
    memory_limit: int | None = None  # bytes; RLIMIT_AS in the fallback mode
    oom_score_adj: int = 0


# The kernel's limit on one argument or environment string, with its NUL (Linux).
MAX_ARG_STRLEN = 32 * 4096


@dataclass(frozen=True)
class RunSpec:
    """What to run and how; exactly one of ``argv`` and ``shell``.

    ``env`` is the program's complete environment (the shim adds ``JOBDECK_RUN_ID``).
    ``timeout`` is in seconds (None: no limit); ``kill_grace`` is the time between
    SIGTERM and SIGKILL, for a timeout, a cancel, and for processes left behind by a
    program that has exited.
    """

    run_id: str
    argv: tuple[str, ...] | None = None
    shell: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = "."
    timeout: float | None = None
    kill_grace: float = 10.0
    isolation: Isolation = field(default_factory=Isolation)
    log_cap: int = DEFAULT_LOG_CAP
    # A node's fence file (see fence_until): the program is killed once the time in it
    # has passed, so that it never outlives its node's lease as the cluster's leader.
    fence: str | None = None

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.shell is None):
            raise ValueError("give exactly one of argv and shell")
        if self.argv is not None and not self.argv:
            raise ValueError("argv must not be empty")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.kill_grace < 0:
            raise ValueError("kill_grace must not be negative")
        if self.log_cap < 2:
            raise ValueError("log_cap is too small")

    def exec_problem(self) -> str | None:
        """Why the kernel (or Python before it) would refuse to start this program with
        this environment, or None: a run that cannot start is a launch error, found
        before its shim exists, not a shim that dies (``lost``)."""
        argv = self.command()
        if any("\0" in arg for arg in argv) or "\0" in self.workdir:
            return "the command line holds a NUL byte, which no program can be given"
        entries = []
        for name, value in self.env.items():
            if "\0" in name or "\0" in value or "=" in name or not name:
                return f"the environment variable {name[:40]!r} cannot be passed to a program"
            entries.append(f"{name}={value}")
        longest = max(len(s.encode("utf-8", "surrogateescape")) for s in [*argv, *entries])
        if longest >= MAX_ARG_STRLEN:
            return (
                f"an argument or environment variable is {longest} bytes; the kernel takes "
                f"at most {MAX_ARG_STRLEN - 1}"
            )
        size = sum(len(s.encode("utf-8", "surrogateescape")) + 1 for s in [*argv, *entries])
        limit = os.sysconf("SC_ARG_MAX")
        if size > limit:
            return f"the command line and environment are {size} bytes, over the kernel's {limit}"
        return None

    def command(self) -> list[str]:
        if self.shell is not None:
            return ["/bin/sh", "-c", self.shell]
        assert self.argv is not None
        return list(self.argv)

    def to_json(self) -> dict[str, Any]:
        # Shallow copies, not dataclasses.asdict: its deep copy cost the engine a few
        # per cent of its time per run, for values that are serialized at once.
        return {
            **self.__dict__,
            "env": dict(self.env),
            "isolation": dict(self.isolation.__dict__),
            "schema": SCHEMA_VERSION,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSpec:
        iso = data.get("isolation") or {}
        isolation = Isolation(
            cgroup_version=iso.get("cgroup_version"),
            join=tuple(iso.get("join", ())),
            run_cgroup=iso.get("run_cgroup"),
            pool_cgroup=iso.get("pool_cgroup"),
            leave_to=tuple(iso.get("leave_to", ())),
            remove=tuple(iso.get("remove", ())),
            memory_limit=iso.get("memory_limit"),
            oom_score_adj=int(iso.get("oom_score_adj", 0)),
        )
        argv = data.get("argv")
        return cls(
            run_id=str(data["run_id"]),
            argv=tuple(argv) if argv is not None else None,
            shell=data.get("shell"),
            env=dict(data.get("env", {})),
            workdir=str(data.get("workdir", ".")),
            timeout=data.get("timeout"),
            kill_grace=float(data.get("kill_grace", 10.0)),
            isolation=isolation,
            log_cap=int(data.get("log_cap", DEFAULT_LOG_CAP)),
            fence=data.get("fence"),
        )


@dataclass(frozen=True)
class ShimInfo:
    """Identity of the shim and the program, proof against pid reuse and reboots.

    ``*_start`` are field 22 of ``/proc/PID/stat`` (clock ticks since boot): a pid
    whose start time differs is another process. ``pgid`` is the program's process
    group (the program leads its own session, so it equals ``child_pid``).
    """

    shim_pid: int
    shim_start: int
    boot_id: str
    child_pid: int | None = None
    child_start: int | None = None
    pgid: int | None = None
    started_at: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShimInfo:
        return cls(
            shim_pid=int(data["shim_pid"]),
            shim_start=int(data["shim_start"]),
            boot_id=str(data["boot_id"]),
            child_pid=data.get("child_pid"),
            child_start=data.get("child_start"),
            pgid=data.get("pgid"),
            started_at=data.get("started_at"),
        )


@dataclass(frozen=True)
class RunResult:
    """How a run ended. ``reason`` is None for a success.

    ``exit_code`` is set when the program exited, ``signal`` when a signal ended it.
    ``error`` explains a launch error (missing executable, permission denied, bad
    workdir, pool unavailable): those are safe to retry, the program never ran.
    ``peak_memory`` is in bytes (the run cgroup's peak: the program's, and the shim's
    while it started the program; or the program's peak RSS in the fallback mode).
    """

    run_id: str
    status: Status
    reason: Reason | None
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    peak_memory: int | None = None
    log_dropped_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "schema": SCHEMA_VERSION}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunResult:
        return cls(
            run_id=str(data["run_id"]),
            status=data["status"],
            reason=data.get("reason"),
            exit_code=data.get("exit_code"),
            signal=data.get("signal"),
            error=data.get("error"),
            started_at=data.get("started_at"),
            ended_at=data.get("ended_at"),
            peak_memory=data.get("peak_memory"),
            log_dropped_bytes=int(data.get("log_dropped_bytes", 0)),
        )


def write_json_atomic(path: Path, data: Mapping[str, Any], *, durable: bool = True) -> None:
    """Write ``data`` so that a reader sees either nothing or the whole file.

    Temp file in the same directory, fsync, rename, then fsync the directory so the
    rename itself survives a crash. ``durable=False`` skips both fsyncs, for files
    whose only readers are processes of this boot (the rename is still atomic for
    them): a power loss ends every run anyway, and fsync costs milliseconds on the
    path that starts a run.
    """
    # Unique per call, not per process: two threads may write the same file at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # One line, not indented: only the compact form has the C encoder, and these
        # files are written on every run's path.
        os.write(fd, json.dumps(data, sort_keys=True).encode() + b"\n")
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_fence(
    path: Path, until: float, *, handover_until: float = 0.0, handover: Sequence[str] = ()
) -> None:
    """Tells the run shims that read ``path`` to stop their programs at ``until``
    (seconds since the epoch) unless it is moved on before. The runs ``handover`` (a
    draining node's replicas that stay until the new leader's run) stop at
    ``handover_until`` instead, when it is later."""
    data: dict[str, Any] = {"until": until}
    if handover:
        data["handover"] = {"until": handover_until, "runs": sorted(handover)}
    write_json_atomic(path, data, durable=False)


def fence_until(path: Path, run_id: str | None = None) -> float:
    """The time in a fence file for the run ``run_id``; 0 (stop now) when it is missing
    or unreadable."""
    try:
        data = read_json(path)
        if data is None:
            return 0.0
        until = float(data["until"])
        handover = data.get("handover")
        if run_id is not None and isinstance(handover, dict) and run_id in handover["runs"]:
            return max(until, float(handover["until"]))
        return until
    except (OSError, ValueError, TypeError, KeyError):
        return 0.0


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or None when it does not exist (yet)."""
    try:
        data = json.loads(read_bytes(path))
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data
