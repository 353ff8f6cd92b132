"""Dispatch benchmark: a command request over the HTTP API until its process has started,
for a command in a `warm` pool, while the batch pool is saturated by CPU- and
memory-hungry runs; beside it the physical floor, the same program spawned directly by
a hot Python process under the same load.

The latency of one invocation is ``process_started_at - requested_at`` from the run's
record: the moment the API received the request until the moment the program was
spawned, as the run shim reports it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

from harness import JobdeckServer, median, percentile, wait_for

from jobdeck.store import open_store

HOG = (
    "import time\n"
    "hoard = [bytearray(64 * 1024 * 1024) for _ in range(3)]\n"
    "end = time.monotonic() + 600\n"
    "while time.monotonic() < end:\n"
    "    sum(range(100000))\n"
)
CATALOG = f"""\
version: 1
project: bench
pools:
  batch: {{memory: 1GiB, cpus: 1.5, max_concurrency: 4, priority: low}}
  tools: {{memory: 256MiB, cpus: 0.5, priority: critical, warm: true}}
schedules:
  hog:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", {json.dumps(HOG)}]
    pool: batch
    overlap: allow
    timeout: 15m
    kill_grace: 1s
commands:
  ping:
    description: The program whose start is timed
    command: ["/bin/true"]
    pool: tools
    timeout: 1m
"""


def run(quick: bool) -> dict[str, float]:
    count = 60 if quick else 300
    with JobdeckServer(CATALOG) as server:
        hogs = [server.client.post("/api/v1/schedules/hog/runs", json={}) for _ in range(4)]
        for response in hogs:
            response.raise_for_status()
        wait_for(lambda: _running(server, "hog") >= 4, 60, "the batch pool to fill")
        time.sleep(2)  # let the hogs reach their working set
        for _ in range(10):  # warm-up
            _invoke(server)
        wait_for(lambda: _ended(server, "ping") >= 10, 60, "the warm-up invocations")
        ids = []
        for _ in range(count):
            ids.append(_invoke(server))
            time.sleep(0.02)
        wait_for(lambda: _ended(server, "ping") >= 10 + count, 120, "every invocation")
        latencies = _latencies(server, ids)
        floor = _spawn_floor(count)
    return {
        "p50_ms": median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=0.0),
        "spawn_p50_ms": median(floor),
        "spawn_p99_ms": percentile(floor, 0.99),
        "invocations": float(len(latencies)),
    }


def _invoke(server: JobdeckServer) -> int:
    response = server.client.post("/api/v1/commands/ping/invocations", json={"params": {}})
    response.raise_for_status()
    run_id: int = response.json()["id"]
    return run_id


def _latencies(server: JobdeckServer, ids: list[int]) -> list[float]:
    values = []
    with open_store(state_dir=server.state_dir) as store:
        for run_id in ids:
            run = store.runs.run(run_id)
            assert run is not None
            assert run.status == "succeeded", run
            asked = datetime.fromisoformat(run.detail["requested_at"])
            started = datetime.fromisoformat(run.detail["process_started_at"])
            values.append((started - asked).total_seconds() * 1000)
    return values


def _spawn_floor(count: int) -> list[float]:
    values = []
    for _ in range(count):
        began = time.perf_counter()
        child = subprocess.Popen(["/bin/true"])
        values.append((time.perf_counter() - began) * 1000)
        child.wait()
        time.sleep(0.02)
    return values


def _running(server: JobdeckServer, job: str) -> int:
    with open_store(state_dir=server.state_dir) as store:
        return sum(1 for r in store.runs.runs(job=job, limit=1000) if r.status == "running")


def _ended(server: JobdeckServer, job: str) -> int:
    with open_store(state_dir=server.state_dir) as store:
        runs = store.runs.runs(job=job, limit=1_000_000)
    return sum(1 for r in runs if r.status not in ("pending", "running"))


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
