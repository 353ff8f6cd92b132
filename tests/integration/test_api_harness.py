"""A real jobdeck Application with its HTTP API on a free 127.0.0.1 port, for API tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from jobdeck.api.metrics import Source
from jobdeck.api.server import serve_http
from jobdeck.app import Application, Options
from jobdeck.catalog.load import load_catalog_text
from jobdeck.control import Control
from jobdeck.store.records import TERMINAL_STATUSES

CATALOG = """\
version: 1
project: apitest
schedules:
  hello:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "print('hello'); print('world')"]
    timeout: 60s
  fails:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "import sys; print('bad'); sys.exit(3)"]
    timeout: 60s
  slow:
    cron: "0 0 1 1 *"
    command: ["python3", "-c", "import time; print('started', flush=True); time.sleep(60)"]
    overlap: skip
    timeout: 60s
    kill_grace: 1s
workers:
  indexer:
    command: ["true"]
    replicas: 2
    enabled: false  # declared, never started: the API tests count schedule runs
commands:
  push:
    command: ["true"]
queues:
  inbox: {}
pools:
  small: {memory: 256MiB, max_concurrency: 2}
"""

DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Served:
    app: Application
    url: str
    client: httpx.AsyncClient


def base_environ(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path,
    catalog: str = CATALOG,
    *,
    environ: Mapping[str, str] | None = None,
    require_token: bool | None = None,
    tls: tuple[Path, Path] | None = None,
    verify: Any = True,
    metric_sources: Iterable[Source] = (),
    store_url: str | None = None,
) -> AsyncIterator[Served]:
    """Apply ``catalog``, start the engine and serve it; stop every run at the end."""
    app = Application(
        Options(
            state_dir=tmp_path / "state",
            store_url=store_url,
            isolation="rlimit",
            environ=environ or base_environ(),
        )
    )
    loaded = load_catalog_text(catalog, str(tmp_path / "jobdeck.yaml"))
    Control(app.store, app.clock, "tester@test", "cli").apply(loaded)
    await app.start()
    port = free_port()
    started = asyncio.Event()

    async def http() -> None:
        await serve_http(
            app,
            "127.0.0.1",
            port,
            tls_cert=tls[0] if tls else None,
            tls_key=tls[1] if tls else None,
            started=started,
            require_token=require_token,
            metric_sources=metric_sources,
        )

    running = asyncio.create_task(app.run({"http": http}))
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait([running, waiting], timeout=DEADLINE, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if running.done():
        running.result()  # raises why the server stopped
    assert started.is_set(), "the HTTP server did not start"
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, verify=verify, timeout=DEADLINE) as client:
            yield Served(app, url, client)
    finally:
        await stop_runs(app)
        app.stop()
        await running
        # Warm launchers outlive the engine by design; a test's must not outlive the test.
        app.executor.stop_launchers()
        await app.aclose()


async def stop_runs(app: Application) -> None:
    """Cancel what still runs and wait until the engine recorded its end."""
    for run in app.store.runs.active_runs():
        await app.executor.cancel(run.id, 1.0)
    deadline = time.monotonic() + DEADLINE
    while app.store.runs.active_runs(kind="schedule"):
        assert time.monotonic() < deadline, "runs still active at the end"
        await asyncio.sleep(0.05)


async def wait_for_end(client: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while True:
        response = await client.get(f"/api/v1/runs/{run_id}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        if body["status"] in TERMINAL_STATUSES:
            return body
        assert time.monotonic() < deadline, f"run {run_id} is still {body['status']}"
        await asyncio.sleep(0.05)


async def wait_for_status(client: httpx.AsyncClient, run_id: int, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while True:
        body: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()
        if body["status"] == status:
            return body
        assert time.monotonic() < deadline, f"run {run_id} is {body['status']}, not {status}"
        await asyncio.sleep(0.05)
