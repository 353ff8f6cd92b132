"""What every benchmark needs: a real `jobdeck serve` in a throw-away state dir, free
ports, percentiles, and the CPU time and memory of a process from /proc."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from jobdeck.cli.serve_cmds import discard_state
from jobdeck.execute import record

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its reaped children."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(") ", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as statm:
        resident = int(statm.read().split()[1])
    return resident * PAGE_SIZE / (1024 * 1024)


def private_mb(pid: int) -> float:
    """A process's private memory (resident, not shared with any other process): what it
    adds to the machine beside processes that map the same files."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0])
    return (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


def children(pid: int) -> list[int]:
    """The pids of a process's children."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return []
    return [part.decode() for part in raw.split(b"\0") if part]


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


_LEFT: list[Path] = []
SLOW_FILE_US = 100.0  # a new file costs 15 to 30 us on this kind of machine


def file_create_us(folder: Path, count: int = 200) -> float:
    """What a new empty file costs in ``folder``, in microseconds (the mean of ``count``).

    Every run creates a handful of files. On ext4 without a journal, right after many
    deletions, each costs up to half a millisecond more (see :func:`remove_later`): the
    runs benchmark reports this beside its figure, and the harness warns.
    """
    probe = Path(tempfile.mkdtemp(prefix="files-", dir=folder))
    began = time.perf_counter()
    for i in range(count):
        os.close(os.open(probe / str(i), os.O_WRONLY | os.O_CREAT, 0o644))
    cost = (time.perf_counter() - began) / count * 1e6
    remove_later(probe)
    if cost > SLOW_FILE_US:
        print(
            f"warning: a new file costs {cost:.0f} us in {folder} (ext4 without a journal "
            "after many deletions?); wait five minutes after deleting many files, or the "
            "runs figures include it (docs/benchmarks.md)",
            file=sys.stderr,
            flush=True,
        )
    return cost


def remove_later(path: Path) -> None:
    """Delete ``path`` when the benchmarks are over, not between them.

    ext4 without a journal does not reuse an inode for one to five minutes after it was
    freed, and every new file passes those inodes one by one before it gets one: the
    tens of thousands of files of one benchmark's runs, deleted at its end, made every
    file of the next benchmark's runs cost up to half a millisecond more.
    """
    if not _LEFT:
        atexit.register(_remove_left)
    _LEFT.append(path)


def _remove_left() -> None:
    for path in _LEFT:
        shutil.rmtree(path, ignore_errors=True)
    _LEFT.clear()


class JobdeckServer:
    """`jobdeck serve` for one catalog, applied first, in its own temporary folder."""

    def __init__(self, catalog: str, *, sqs: bool = False, isolation: str = "auto") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jobdeck-bench-"))
        (self.dir / "jobdeck.yaml").write_text(catalog)
        self.state_dir = self.dir / "state"
        self.port = free_port()
        self.sqs_port = free_port() if sqs else 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.isolation = isolation
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def env(self) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
        environ.update({"JOBDECK_STATE_DIR": str(self.state_dir), "JOBDECK_USER": "bench"})
        return environ

    def jobdeck(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobdeck", *args],
            cwd=self.dir,
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )

    def __enter__(self) -> JobdeckServer:
        self.jobdeck("apply", "--yes")
        log = open(self.dir / "server.log", "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobdeck",
                "serve",
                "--port",
                str(self.port),
                "--sqs-port",
                str(self.sqs_port),
                "--isolation",
                self.isolation,
            ],
            cwd=self.dir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self._healthy, 120, f"{self.url}/healthz")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"jobdeck serve exited:\n{self.log()[-3000:]}")
        try:
            return self.client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return (self.dir / "server.log").read_text(errors="replace")

    def __exit__(self, *_exc: object) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.cancel_runs()
        # Warm launchers and pool cgroups outlive a server by design: not a benchmark's.
        discard_state(self.state_dir)
        remove_later(self.dir)

    def cancel_runs(self) -> None:
        """Runs outlive the server by design; a benchmark must not leave any behind. A run
        shim takes SIGTERM as a cancel: it stops its program's whole tree, then exits."""
        shims = []
        for path in (self.state_dir / "runs").glob(f"*/{record.RECORD_FILE}"):
            try:
                info = record.read(path.parent).shim_info()
                if info is None:
                    continue
                pid = info.shim_pid
                os.kill(pid, signal.SIGTERM)
                shims.append(pid)
            except (OSError, ValueError, KeyError):
                continue
        deadline = time.monotonic() + 30
        while shims and time.monotonic() < deadline:
            shims = [pid for pid in shims if _alive(pid)]
            time.sleep(0.05)
        for pid in shims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
