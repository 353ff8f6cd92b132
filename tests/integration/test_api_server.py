"""serve_http inside the caller's event loop: no signal handlers of its own, a clear
error for a port in use, a graceful stop on cancellation."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import httpx
import pytest

from jobdeck.api.server import serve_http
from jobdeck.app import Application, Options
from tests.integration.test_api_harness import DEADLINE, base_environ, free_port, serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def handlers() -> tuple[object, object]:
    return signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)


async def test_serving_leaves_the_signal_handlers_to_the_caller(tmp_path: Path) -> None:
    before = handlers()
    async with serving(tmp_path) as served:
        assert (await served.client.get("/healthz")).status_code == 200
        assert handlers() == before
    assert handlers() == before


async def test_a_port_in_use_is_an_error_not_an_exit(tmp_path: Path) -> None:
    app = Application(
        Options(state_dir=tmp_path / "state", isolation="rlimit", environ=base_environ())
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
                await serve_http(app, "127.0.0.1", port)
        finally:
            app.store.close()


async def test_cancelling_stops_listening_and_started_says_when_it_listens(
    tmp_path: Path,
) -> None:
    app = Application(
        Options(state_dir=tmp_path / "state", isolation="rlimit", environ=base_environ())
    )
    port = free_port()
    started = asyncio.Event()
    try:
        task = asyncio.create_task(serve_http(app, "127.0.0.1", port, started=started))
        await asyncio.wait_for(started.wait(), DEADLINE)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, DEADLINE)
            with pytest.raises(httpx.ConnectError):
                await client.get("/healthz")
    finally:
        app.store.close()
