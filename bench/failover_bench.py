"""Failover of a cluster of real ``jobdeck serve`` on one PostgreSQL store, and the
store load of the nodes' heartbeats.

    python bench/failover_bench.py --store postgresql://.../empty_db [--kills 20]
                                   [--lease 2s] [--nodes 3]

Three engines (separate state dirs) share the store, with a ``rate: 2s`` schedule. The
leader is killed with SIGKILL ``--kills`` times; each time, the time from the kill until
another node holds a live lease with a newer fencing token is one failover (the store
is polled every 10 ms), then the killed engine starts again as a standby. Then the
heartbeats alone: one :class:`jobdeck.cluster.leadership.Leadership` step (heartbeat and
renewal, one transaction) timed 500 times, and the database's commits per second with
the engines idle. Prints one JSON object:

    {"failover_s": {"p50", "p99", "max", "n"}, "lease_s", "nodes",
     "beat_ms": {"p50", "p99"}, "beats_per_s", "idle_commits_per_s"}
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from jobdeck.cluster.leadership import Leadership, Timing
from jobdeck.instance import instance_name
from jobdeck.store import open_store
from jobdeck.units import parse_duration

CATALOG = """\
version: 1
project: failoverbench
schedules:
  tick:
    rate: 2s
    command: ["true"]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Engine:
    def __init__(self, root: Path, index: int, store: str, lease: str) -> None:
        self.state_dir = root / f"node{index}"
        self.node = instance_name(self.state_dir, store)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
        self.env.update({"JOBDECK_STATE_DIR": str(self.state_dir), "JOBDECK_STORE": store})
        self.root, self.lease = root, lease
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobdeck", "serve", "--port", str(port), "--sqs-port", "0",
             "--isolation", "rlimit", "--lease", self.lease],
            cwd=self.root, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("an engine did not start")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True, help="a PostgreSQL URL (an empty database)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--lease", default="2s")
    parser.add_argument("--nodes", type=int, default=3)
    options = parser.parse_args()
    lease = parse_duration(options.lease).total_seconds()
    with tempfile.TemporaryDirectory() as folder, open_store(options.store) as store:
        root = Path(folder)
        (root / "jobdeck.yaml").write_text(CATALOG)
        engines = [Engine(root, i, options.store, options.lease) for i in range(options.nodes)]
        subprocess.run(
            [sys.executable, "-m", "jobdeck", "apply", "--yes"],
            cwd=root, env=engines[0].env, check=True, capture_output=True,
        )  # fmt: skip

        def leader() -> tuple[Engine | None, int]:
            lease_row = store.nodes.leader()
            if lease_row is None or lease_row.expires_at <= datetime.now(UTC):
                return None, 0
            for engine in engines:
                if lease_row.holder.endswith(":" + engine.node) and engine.process:
                    return engine, lease_row.token
            return None, lease_row.token

        failovers: list[float] = []
        try:
            for engine in engines:
                engine.start()
            while leader()[0] is None:
                time.sleep(0.05)
            for _ in range(options.kills):
                old, token = leader()
                while old is None:
                    time.sleep(0.05)
                    old, token = leader()
                old.kill()
                killed = time.monotonic()
                while True:
                    now_leader, now_token = leader()
                    if now_leader is not None and now_token > token:
                        break
                    time.sleep(0.01)
                failovers.append(time.monotonic() - killed)
                old.start()
            # The heartbeats' load with the engines idle: the database's commits.
            commits = _commits(store)
            begun = time.monotonic()
            time.sleep(10)
            idle_commits = (_commits(store) - commits) / (time.monotonic() - begun)
        finally:
            for engine in engines:
                engine.stop()
        beats = _beats(store, lease)
    print(
        json.dumps(
            {
                "failover_s": {
                    "p50": round(statistics.median(failovers), 3),
                    "p99": round(percentile(failovers, 0.99), 3),
                    "max": round(max(failovers), 3),
                    "n": len(failovers),
                },
                "lease_s": lease,
                "nodes": options.nodes,
                "beat_ms": {
                    "p50": round(statistics.median(beats), 2),
                    "p99": round(percentile(beats, 0.99), 2),
                },
                "beats_per_s": round(options.nodes * 3 / lease, 2),
                "idle_commits_per_s": round(idle_commits, 1),
            }
        )
    )


def _commits(store: object) -> int:
    import sqlalchemy

    engine = store.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        query = sqlalchemy.text(
            "select xact_commit from pg_stat_database where datname = current_database()"
        )
        value = connection.execute(query).scalar_one()
        connection.execute(sqlalchemy.text("select pg_stat_clear_snapshot()"))
    return int(value)


def _beats(store: object, lease: float) -> list[float]:
    """One node's step (heartbeat and renewal in one transaction), timed."""
    from datetime import timedelta

    leadership = Leadership(
        store,  # type: ignore[arg-type]
        "bench:beats",
        version="bench",
        timing=Timing(timedelta(seconds=lease)),
    )
    leadership.register(datetime.now(UTC))
    timings: list[float] = []
    for _ in range(500):
        begun = time.perf_counter()
        leadership.step(datetime.now(UTC))
        timings.append((time.perf_counter() - begun) * 1000)
    with store.transaction() as tx:  # type: ignore[attr-defined]
        tx.nodes.forget_node("bench:beats")
    return timings


if __name__ == "__main__":
    main()
