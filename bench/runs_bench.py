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

import http.client
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from harness import JobdeckServer, cpu_seconds, file_create_us, wait_for
from sqlalchemy import func, select

from jobdeck.store import open_store
from jobdeck.store.records import ACTIVE_STATUSES
from jobdeck.store.tables import as_utc, runs

CONCURRENCY = 4
CLIENTS = 8  # threads requesting runs
JSON_HEADERS = {"Content-Type": "application/json"}
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
        server_cpu = cpu_seconds(server.pid)
        client_cpu = time.process_time()
        with Requests(server.port, CLIENTS) as requests:
            requests.post_all("/api/v1/schedules/trivial/runs", count)
        client_cpu = time.process_time() - client_cpu
        wait_for(lambda: _ended(server) >= 20 + count, 600, "every run to end")
        server_cpu = cpu_seconds(server.pid) - server_cpu
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
        "server_cpu_ms_per_run": server_cpu / count * 1000,
        "client_cpu_ms_per_run": client_cpu / count * 1000,
    }


class Requests:
    """POSTs from several threads, each on a kept-alive connection of its own.

    The load shares the machine's two cores with the engine: what the client spends per
    request is taken from the engine's figure. The standard library's client spends a
    fraction of a general-purpose one's (httpx took about 0.8 ms of CPU per run, a
    tenth of the machine's time per run), and the benchmark reports what it spent.
    """

    def __init__(self, port: int, threads: int) -> None:
        self.port = port
        self.threads = threads
        self.local = threading.local()
        self.connections: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def __enter__(self) -> Requests:
        return self

    def __exit__(self, *_exc: object) -> None:
        for connection in self.connections:
            connection.close()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self.local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.local.connection = connection
            with self.lock:
                self.connections.append(connection)
        return connection

    def post(self, path: str) -> None:
        connection = self._connection()
        connection.request("POST", path, body=b"{}", headers=JSON_HEADERS)
        response = connection.getresponse()
        body = response.read()
        if response.status != 201:
            raise RuntimeError(f"POST {path}: {response.status} {body[:300]!r}")

    def post_all(self, path: str, count: int) -> None:
        with ThreadPoolExecutor(self.threads) as clients:
            list(clients.map(lambda _: self.post(path), range(count)))


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
        found = store.runs.runs(job="trivial", limit=1_000_000)
    return sum(1 for r in found if r.status != "succeeded")


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
