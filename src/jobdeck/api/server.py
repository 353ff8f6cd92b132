"""Serving the HTTP side with uvicorn inside the engine's own event loop.

uvicorn normally owns the process: it installs signal handlers, runs the ASGI lifespan
and calls ``sys.exit`` when it cannot bind. Here it is one supervised task of
``jobdeck serve``: the engine handles SIGTERM and decides when to stop, so the server
installs no signal handlers, runs no lifespan, binds its socket up front (a port in use
is an ``OSError`` for the caller, not an exit), and stops when its task is cancelled,
closing its connections gracefully first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import uvicorn
from starlette.applications import Starlette

from jobdeck.api.auth import check_bind, token_from
from jobdeck.api.guard import HostRule, allowed_hosts_from
from jobdeck.api.metrics import Source
from jobdeck.api.service import create_api

if TYPE_CHECKING:
    from jobdeck.app import Application

log = logging.getLogger("jobdeck.api")

# How long open connections get to finish when the server stops.
GRACEFUL_SECONDS = 5.0


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host and reports when it listens."""

    def __init__(self, config: uvicorn.Config, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self.started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The engine owns SIGTERM and SIGINT; uvicorn must not replace its handlers.
        yield

    def install_signal_handlers(self) -> None:
        # The same for uvicorn releases that install handlers through this method.
        return

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started_event is not None and self.started:
            self.started_event.set()


def tls_context(cert: Path, key: Path | None) -> ssl.SSLContext:
    """A server context that refuses anything older than TLS 1.2."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"cannot load the TLS certificate {cert} / key {key}: {exc}") from exc
    return context


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it, a keep-alive client waits out
        # its delayed ACK (40 ms) on every response that is written in two parts.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


def embedded_config(asgi: Starlette, *, lifespan: Literal["on", "off"] = "off") -> uvicorn.Config:
    """uvicorn as one task of ``jobdeck serve``: no logging set-up of its own, no access log,
    no websockets, no ``Server`` header, a bounded graceful close; loaded, ready to bind."""
    config = uvicorn.Config(
        asgi,
        lifespan=lifespan,
        log_config=None,
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
        server_header=False,
    )
    config.load()
    return config


def make_config(
    app: Application,
    host: str,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    require_token: bool | None = None,
    metric_sources: Iterable[Source] = (),
    allowed_hosts: Iterable[str] = (),
) -> uvicorn.Config:
    """The uvicorn configuration for ``app`` on ``host``.

    The token rule follows the address (see :func:`check_bind`); ``require_token=True``
    applies the rule of a public address on any address (what tests do on loopback).
    ``allowed_hosts`` are names the server answers to besides its own (``--allowed-host``,
    with those of ``JOBDECK_ALLOWED_HOSTS``).
    """
    environ = app.options.environ
    if require_token:
        token = token_from(environ) or check_bind("0.0.0.0", environ)
    else:
        token = check_bind(host, environ)
    if tls_key is not None and tls_cert is None:
        raise OSError("--tls-key needs --tls-cert")
    hosts = HostRule.for_bind(host, allowed_hosts_from(environ, allowed_hosts))
    config = embedded_config(
        create_api(app, token=token, metric_sources=metric_sources, hosts=hosts)
    )
    if tls_cert is not None:
        # Loaded by hand: uvicorn's own context accepts whatever the OpenSSL defaults allow.
        config.ssl = tls_context(tls_cert, tls_key)
    return config


async def serve_http(
    app: Application,
    host: str,
    port: int,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    started: asyncio.Event | None = None,
    require_token: bool | None = None,
    metric_sources: Iterable[Source] = (),
    sock: socket.socket | None = None,
    allowed_hosts: Iterable[str] = (),
) -> None:
    """Serve until cancelled; ``started`` is set once the socket accepts connections;
    ``sock``, when given, is the socket already bound to ``host:port``."""
    config = make_config(
        app,
        host,
        tls_cert=tls_cert,
        tls_key=tls_key,
        require_token=require_token,
        metric_sources=metric_sources,
        allowed_hosts=allowed_hosts,
    )
    scheme = "https" if tls_cert else "http"
    log.info("serving the API and dashboard on %s://%s:%d", scheme, host, port)
    await serve_config(config, host, port, started, sock=sock)


async def serve_asgi(
    asgi: Starlette,
    host: str,
    port: int,
    *,
    lifespan: Literal["on", "off"] = "off",
    started: asyncio.Event | None = None,
    on_server: Callable[[uvicorn.Server], None] | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve another ASGI application (the SQS endpoint) the same embedded way;
    ``on_server`` sees the server before it starts (to learn when it is stopping)."""
    config = embedded_config(asgi, lifespan=lifespan)
    await serve_config(config, host, port, started, on_server, sock=sock)


async def serve_config(
    config: uvicorn.Config,
    host: str,
    port: int,
    started: asyncio.Event | None,
    on_server: Callable[[uvicorn.Server], None] | None = None,
    *,
    sock: socket.socket | None = None,
) -> None:
    if sock is None:
        sock = bind_socket(host, port)
    server = EmbeddedServer(config, started)
    if on_server is not None:
        on_server(server)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        server.should_exit = True
        await serving
        raise
    finally:
        sock.close()
