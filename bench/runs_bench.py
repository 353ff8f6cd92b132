"""Runs benchmark: sustained runs per second of a trivial program through the whole
workflow (API request, run record, pool, shim, log, result, every event), beside bare
spawns per second of the same program from a hot Python process at the same
concurrency.

The runs are requested by several client threads at once, so that the figure is the
engine's throughput and not one client's round trip. The engine's overhead per run is
how much longer the machine takes per run than per bare spawn:
``1 / runs_per_s - 1 / spawn_per_s``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from harness import JobdeckServer, file_create_us, wait_for
from sqlalchemy import func, select

from jobdeck.store import open_store
from jobdeck.store.records import ACTIVE_STATUSES
from jobdeck.store.tables import as_utc, runs

CONCURRENCY = 4
CLIENTS = 8  # threads requesting runs
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
        file_us = file_create_us(server.state_dir)
        for _ in range(20):  # warm-up: the warm launcher, the store, the code paths
            server.client.post("/api/v1/schedules/trivial/runs", json={})
        wait_for(lambda: _ended(server) >= 20, 120, "the warm-up runs")
        # The end is the last run's recorded end, not the moment a poll noticed it (200
        # runs take about a second: the poll's step would be a fifth of it).
        began = datetime.now(UTC)

        def request(_: int) -> None:
            response = server.client.post("/api/v1/schedules/trivial/runs", json={})
            response.raise_for_status()

        with ThreadPoolExecutor(CLIENTS) as clients:
            list(clients.map(request, range(count)))
        wait_for(lambda: _ended(server) >= 20 + count, 600, "every run to end")
        elapsed = (_last_end(server) - began).total_seconds()
        failed = _not_succeeded(server)
    runs_per_s = count / elapsed
    return {
        "runs": float(count),
        "runs_per_s": runs_per_s,
        "spawn_per_s": spawn_per_s,
        "overhead_ms_per_run": (1 / runs_per_s - 1 / spawn_per_s) * 1000,
        "not_succeeded": float(failed),
        "file_create_us": file_us,
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
    """How many runs have ended: one count, so that watching costs the machine little
    (the benchmark shares its two cores with the engine)."""
    time.sleep(0.2)
    with open_store(state_dir=server.state_dir) as store, store.reading() as tx:
        query = (
            select(func.count())
            .select_from(runs)
            .where(runs.c.job == "trivial", runs.c.status.not_in(ACTIVE_STATUSES))
        )
        return int(tx.connection.execute(query).scalar_one())


def _last_end(server: JobdeckServer) -> datetime:
    with open_store(state_dir=server.state_dir) as store, store.reading() as tx:
        query = select(func.max(runs.c.ended_at)).where(runs.c.job == "trivial")
        return as_utc(tx.connection.execute(query).scalar_one(), "ended_at")


def _not_succeeded(server: JobdeckServer) -> int:
    with open_store(state_dir=server.state_dir) as store:
        found = store.runs(job="trivial", limit=1_000_000)
    return sum(1 for r in found if r.status != "succeeded")


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
