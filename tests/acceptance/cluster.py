"""Several real `jobdeck serve` on one PostgreSQL store, for the cluster's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from jobdeck.instance import instance_name
from jobdeck.store import open_store
from tests.acceptance.server import Server

LEASE = 2.0  # seconds: short, so that failovers are quick

SOLO = """\
import fcntl, os, sys, time
here = sys.argv[1]
lock = open(os.path.join(here, "solo.lock"), "a")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    with open(os.path.join(here, "conflicts"), "a") as out:
        out.write(f"{os.getpid()} could not lock\\n")
    fcntl.flock(lock, fcntl.LOCK_EX)
with open(os.path.join(here, "solo.pids"), "a") as out:
    out.write(f"{os.getpid()}\\n")
while True:
    time.sleep(1)
"""

PAIR = """\
import os, sys, time
here = sys.argv[1]
with open(os.path.join(here, "pair.pids"), "a") as out:
    out.write(f"{os.getpid()}\\n")
while True:
    time.sleep(1)
"""

TICK = """\
import os, sys
with open(os.path.join(sys.argv[1], "ticks"), "a") as out:
    out.write(os.environ.get("JOBDECK_SCHEDULED_FOR", "?") + "\\n")
"""


def write_programs(workdir: Path) -> None:
    for name, text in (("solo.py", SOLO), ("pair.py", PAIR), ("tick.py", TICK)):
        (workdir / name).write_text(text)


def catalog(workdir: Path) -> str:
    py = sys.executable
    return f"""\
version: 1
project: ha
schedules:
  tick:
    rate: 2s
    command: ["{py}", "{workdir}/tick.py", "{workdir}"]
    catchup: latest
workers:
  solo:
    command: ["{py}", "{workdir}/solo.py", "{workdir}"]
    singleton: true
    stop_grace: 1s
  pair:
    command: ["{py}", "{workdir}/pair.py", "{workdir}"]
    replicas: 2
    stop_grace: 1s
"""


def alive(pid: int, program: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return program.encode() in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z"


def living(workdir: Path, name: str) -> list[int]:
    path = workdir / f"{name}.pids"
    if not path.exists():
        return []
    pids = {int(line) for line in path.read_text().split()}
    return sorted(pid for pid in pids if alive(pid, f"{name}.py"))


class Cluster:
    def __init__(self, workdir: Path, store_url: str, size: int, args: tuple[str, ...]) -> None:
        self.workdir = workdir
        self.store_url = store_url
        self.servers = [
            Server(
                workdir,
                state_dir=workdir / f"node{i}",
                store_url=store_url,
                args=("--isolation", "rlimit", "--lease", f"{LEASE:g}s", *args),
            )
            for i in range(size)
        ]

    def node_id(self, server: Server) -> str:
        return instance_name(server.state_dir, self.store_url)

    def leader(self) -> tuple[Server | None, int]:
        """The server whose node holds a live lease, and the lease's token."""
        from datetime import UTC, datetime

        with open_store(self.store_url) as store:
            lease = store.nodes.leader()
        if lease is None or lease.expires_at <= datetime.now(UTC):
            return None, 0
        for server in self.servers:
            if lease.holder.endswith(":" + self.node_id(server)) and server.process:
                return server, lease.token
        return None, lease.token

    def runs(self, job: str) -> list[dict[str, Any]]:
        with open_store(self.store_url) as store:
            found = store.runs.runs(job=job, limit=5000)
        return [
            {
                "id": r.id,
                "status": r.status,
                "reason": r.reason,
                "scheduled_for": r.scheduled_for,
                "host": r.host,
                "created_at": r.created_at,
            }
            for r in found
        ]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        server = self.servers[0]
        return subprocess.run(
            [sys.executable, "-m", "jobdeck", *args],
            cwd=self.workdir,
            env={**server.environment(), "JOBDECK_STATE_DIR": str(self.workdir / "cli")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for name in ("solo", "pair"):
            for pid in living(self.workdir, name):
                os.kill(pid, 9)
