"""Runs benchmark: sustained runs per second of a trivial program through the whole
workflow (API request, run record, pool, shim, log, result, every event), beside bare
spawns per second of the same program from a hot Python process at the same
concurrency. The difference per run is the engine's overhead."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from harness import JobdeckServer, wait_for

from jobdeck.store import open_store

CONCURRENCY = 4
CATALOG = f"""\
version: 1
project: bench
pools:
  tick: {{memory: 1GiB, priority: high, warm: true, max_concurrency: {CONCURRENCY}}}
schedules:
  trivial:
    cron: "0 0 1 1 *"
    command: ["/bin/true"]
    pool: tick
    overlap: allow
    timeout: 1m
"""


def run(quick: bool) -> dict[str, float]:
    count = 200 if quick else 1000
    spawn_per_s = _bare_spawns(count)
    with JobdeckServer(CATALOG) as server:
        for _ in range(20):  # warm-up: the warm launcher, the store, the code paths
            server.client.post("/api/v1/schedules/trivial/runs", json={})
        wait_for(lambda: _ended(server) >= 20, 120, "the warm-up runs")
        began = time.monotonic()
        for _ in range(count):
            response = server.client.post("/api/v1/schedules/trivial/runs", json={})
            response.raise_for_status()
        wait_for(lambda: _ended(server) >= 20 + count, 600, "every run to end")
        elapsed = time.monotonic() - began
        failed = _not_succeeded(server)
    runs_per_s = count / elapsed
    return {
        "runs": float(count),
        "runs_per_s": runs_per_s,
        "spawn_per_s": spawn_per_s,
        "overhead_ms_per_run": (1 / runs_per_s - 1 / spawn_per_s) * 1000 * CONCURRENCY,
        "not_succeeded": float(failed),
    }


def _bare_spawns(count: int) -> float:
    def spawn(_: int) -> None:
        subprocess.run(["/bin/true"], check=True)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(spawn, range(20)))
        began = time.monotonic()
        list(pool.map(spawn, range(count)))
    return count / (time.monotonic() - began)


def _ended(server: JobdeckServer) -> int:
    with open_store(state_dir=server.state_dir) as store:
        runs = store.runs(job="trivial", limit=1_000_000)
    return sum(1 for r in runs if r.status not in ("pending", "running"))


def _not_succeeded(server: JobdeckServer) -> int:
    with open_store(state_dir=server.state_dir) as store:
        runs = store.runs(job="trivial", limit=1_000_000)
    return sum(1 for r in runs if r.status != "succeeded")


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
