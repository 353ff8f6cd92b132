"""``jobdeck serve`` and ``jobdeck demo``: run the engine, the HTTP API and the endpoints."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from jobdeck.cli.context import EXIT_INVALID, EXIT_REFUSED, fail, settings
from jobdeck.instance import EngineBusy, EngineLock, lock_engine

if TYPE_CHECKING:
    from jobdeck.app import Application, Loop, Options
    from jobdeck.execute.pools import Mode

log = logging.getLogger("jobdeck")

# Seconds a thread may hold the interpreter's lock while another waits for it.
SWITCH_INTERVAL = 0.001

Host = Annotated[str, typer.Option(help="Address of the HTTP API and dashboard.")]
Port = Annotated[int, typer.Option(help="Port of the HTTP API and dashboard.")]
SqsPort = Annotated[int, typer.Option(help="Port of the SQS-compatible endpoint (0: off).")]
SqsHost = Annotated[str, typer.Option(help="Address of the SQS-compatible endpoint.")]
SqsVerify = Annotated[
    bool,
    typer.Option(help="Verify SigV4 signatures on loopback too (always beyond loopback)."),
]
TlsCert = Annotated[Path | None, typer.Option(help="Serve HTTPS with this certificate.")]
TlsKey = Annotated[Path | None, typer.Option(help="The certificate's private key.")]
Isolation = Annotated[str, typer.Option(help="auto (cgroups where permitted), cgroups, or rlimit.")]
PassEnv = Annotated[
    list[str] | None,
    typer.Option(
        "--pass-env",
        metavar="NAME",
        help="A variable (or pattern, e.g. 'PYTHON*') of this environment that runs get "
        "besides the basics (repeatable; also JOBDECK_PASS_ENV). Secrets never pass.",
    ),
]
AllowedHost = Annotated[
    list[str] | None,
    typer.Option(
        "--allowed-host",
        metavar="NAME",
        help="A name the HTTP server answers to besides loopback names, IP addresses and "
        "--host (repeatable; also JOBDECK_ALLOWED_HOSTS, comma separated).",
    ),
]
Lease = Annotated[
    str,
    typer.Option(
        help="The leader's lease when several engines share a PostgreSQL store (renewed "
        "at a third of it; a standby takes over within it and 5 s).",
    ),
]
Advertise = Annotated[
    str | None,
    typer.Option(
        help="The URL where the other engines of the cluster reach this one's HTTP API "
        "(they fetch the logs of its runs there); default: from --host and --port, with "
        "this machine's name for 0.0.0.0 or ::.",
    ),
]
LostAfter = Annotated[
    str | None,
    typer.Option(
        help="How long after its last heartbeat a silent node's runs are recorded lost "
        "(default: twice the lease).",
    ),
]


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(demo)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    sqs_port: int = 9324
    tls_cert: Path | None = None
    tls_key: Path | None = None
    sqs_host: str = "127.0.0.1"
    sqs_verify: bool = False
    allowed_hosts: tuple[str, ...] = ()


def serve(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Port = 8080,
    sqs_port: SqsPort = 9324,
    apply: Annotated[bool, typer.Option("--apply", help="Apply the catalog first.")] = False,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    isolation: Isolation = "auto",
    sqs_host: SqsHost = "127.0.0.1",
    sqs_verify: SqsVerify = False,
    allowed_host: AllowedHost = None,
    pass_env: PassEnv = None,
    lease: Lease = "10s",
    lost_after: LostAfter = None,
    advertise: Advertise = None,
) -> None:
    """Run the engine, the HTTP API, the dashboard, the SQS endpoint and the Slack bot."""
    from jobdeck.app import Options
    from jobdeck.cli import package_version

    config = settings(ctx)
    lease_length = _duration("--lease", lease)
    lost_deadline = _duration("--lost-after", lost_after) if lost_after else None
    advertised = _advertised(advertise, host, port, tls_cert)

    def first() -> None:
        if apply:
            _apply(config.catalog, config.state_dir, config.store_url)

    code = run_server(
        Options(
            state_dir=config.state_dir,
            store_url=config.store_url,
            public_url=_public_url(host, port, tls_cert),
            sqs_url=_public_url(sqs_host, sqs_port, tls_cert) if sqs_port else None,
            isolation=_mode(isolation),
            pass_env=tuple(pass_env or ()),
            lease=lease_length,
            lost_after=lost_deadline,
            version=package_version(),
            advertise_url=advertised,
        ),
        ServeOptions(
            host,
            port,
            sqs_port,
            tls_cert,
            tls_key,
            sqs_host,
            sqs_verify,
            tuple(allowed_host or ()),
        ),
        first,
    )
    raise typer.Exit(code)


def demo(
    host: Host = "127.0.0.1",
    port: Port = 8080,
    sqs_port: SqsPort = 9324,
    isolation: Isolation = "auto",
    keep: Annotated[bool, typer.Option(help="Keep the demo's state dir at exit.")] = False,
) -> None:
    """Serve the bundled newsroom example from a throw-away state dir."""
    from jobdeck.app import Options

    source = example_dir()
    workspace = Path(tempfile.mkdtemp(prefix="jobdeck-demo-"))
    shutil.copytree(source, workspace / "newsroom", ignore=shutil.ignore_patterns("__pycache__"))
    catalog = workspace / "newsroom" / "jobdeck.yaml"
    state_dir = workspace / "state"
    try:
        _apply(catalog, state_dir, None)
        url = _public_url(host, port, None)
        typer.echo(
            f"jobdeck demo: the newsroom example, state in {state_dir}\n"
            f"  dashboard:  {url}/\n"
            f"  try:        export JOBDECK_STATE_DIR={state_dir} JOBDECK_URL={url}\n"
            "              jobdeck status\n"
            "              jobdeck run ranking-aggregate --wait\n"
            "              jobdeck runs --limit 10\n"
            '              jobdeck suspend stale-cache-sweep --reason "demo" --until 10m\n'
            "              jobdeck -f "
            f"{catalog} plan\n"
            "  stop with Ctrl-C"
        )
        import importlib.util

        if importlib.util.find_spec("boto3") is None:
            typer.echo(
                "  note: the example's queue workers import boto3, which is not installed: "
                "install jobdeck[demo] (pip install -e '.[demo]'); until then they fail",
                err=True,
            )
        options = Options(
            state_dir=state_dir,
            public_url=url,
            sqs_url=_public_url(host, sqs_port, None) if sqs_port else None,
            isolation=_mode(isolation),
            environ={**os.environ, "JOBDECK_DEMO": "1", "PATH": _demo_path()},
            pass_env=("NEWSROOM_*",),  # the example's own settings
        )
        code = run_server(options, ServeOptions(host, port, sqs_port))
    finally:
        if not keep:
            discard_state(state_dir)
            shutil.rmtree(workspace, ignore_errors=True)
    raise typer.Exit(code)


def _duration(option: str, text: str) -> timedelta:
    from jobdeck.units import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        fail(f"{option}: {exc}", EXIT_INVALID)
    if value < timedelta(seconds=1):
        fail(f"{option}: {text} is too short (at least 1s)", EXIT_INVALID)
    return value


def _demo_path() -> str:
    """The example's programs run as ``python3``: let that be this installation's
    interpreter, which has what they import (httpx for the push tool)."""
    here = str(Path(sys.executable).parent)
    return os.pathsep.join([here, os.environ.get("PATH", "/usr/bin:/bin")])


def example_dir() -> Path:
    """The newsroom example: inside the installed package, or in a source checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "examples" / "newsroom", here.parents[1] / "examples" / "newsroom"):
        if (candidate / "jobdeck.yaml").is_file():
            return candidate
    fail("the bundled example is missing from this installation; reinstall jobdeck")


def discard_state(state_dir: Path) -> None:
    """Before a throw-away state dir goes: stop its runs (they outlive the server by
    design), its warm launchers and its pools' cgroups."""
    from jobdeck.execute.launch import cancel, result
    from jobdeck.execute.pools import PoolManager
    from jobdeck.execute.warm_client import WarmLauncher
    from jobdeck.instance import instance_name

    runs = [d for d in (state_dir / "runs").glob("*") if d.is_dir()]
    stopping = [d for d in runs if cancel(d, 2.0)]
    deadline = time.monotonic() + 15
    while stopping and time.monotonic() < deadline:
        stopping = [d for d in stopping if result(d) is None]
        time.sleep(0.05)
    instance = instance_name(state_dir, None)
    # Where the executor puts a warm pool's socket (see Executor._socket_path).
    for folder in (state_dir / "warm", Path(tempfile.gettempdir()) / instance):
        for socket_path in folder.glob("*.sock"):
            WarmLauncher(socket_path).stop()
    PoolManager(instance, {}, mode="auto").teardown()


def run_server(
    options: Options, serve_options: ServeOptions, first: Callable[[], None] | None = None
) -> int:
    """Run until SIGTERM or SIGINT (exit 0) or until a loop fails (exit 1).

    The ports are taken first: a busy one is reported in one line before anything else
    (``first``, such as ``--apply``, runs once they are taken), before any run is adopted
    or any worker started."""
    import asyncio
    import dataclasses

    from jobdeck.api.auth import BindRefused, check_bind
    from jobdeck.app import ServerFailed
    from jobdeck.queues.sigv4 import SqsBindRefused, sqs_credentials

    try:
        check_bind(serve_options.host, options.environ)
        if serve_options.sqs_port:
            sqs_credentials(serve_options.sqs_host, serve_options.sqs_verify, options.environ)
    except (BindRefused, SqsBindRefused) as exc:
        typer.echo(f"error: {exc}", err=True)
        return EXIT_REFUSED
    try:
        engine_lock = _lock_engine(options)
    except (EngineBusy, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        return EXIT_REFUSED
    try:
        sockets = _listen(serve_options)
    except OSError as exc:
        engine_lock.release()
        typer.echo(f"error: {exc}", err=True)
        return EXIT_REFUSED
    try:
        if first is not None:
            first()
    except BaseException:
        sockets.close()
        engine_lock.release()
        raise
    _configure_logging()
    if sockets.sqs is not None:
        # The workers use this server's SQS endpoint: they stop before it does.
        options = dataclasses.replace(options, stop_workers_at_exit=True)
    # A thread that wakes (the scheduler's fire thread, with a slot to claim) waits for
    # the interpreter's lock until the running thread lets go of it: at most this many
    # seconds, instead of the default 5 ms.
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        asyncio.run(_serve(options, serve_options, sockets))
    except ServerFailed as exc:
        log.error("jobdeck stopped: %s", exc)
        return 1
    except ValueError as exc:  # a configuration the environment got wrong (e.g. Slack's)
        log.error("jobdeck could not start: %s", exc)
        return EXIT_INVALID
    except OSError as exc:
        log.error("jobdeck could not start: %s", exc)
        return 1
    finally:
        sockets.close()
        engine_lock.release()
    return 0


def _lock_engine(options: Options) -> EngineLock:
    from jobdeck.store.engine import sqlite_file

    state_dir = options.state_dir.expanduser().resolve()
    return lock_engine(state_dir, sqlite_file(options.store_url, state_dir))


@dataclass
class Sockets:
    http: socket.socket
    sqs: socket.socket | None

    def close(self) -> None:
        self.http.close()
        if self.sqs is not None:
            self.sqs.close()


def _listen(serve_options: ServeOptions) -> Sockets:
    """Both ports bound, or an OSError that says which one and what to do."""
    from jobdeck.api.server import bind_socket

    host = serve_options.host
    try:
        http = bind_socket(host, serve_options.port)
    except OSError as exc:
        raise OSError(
            f"{exc} (the API and dashboard): is another jobdeck serve running? "
            "stop it, or choose another --port"
        ) from None
    if not serve_options.sqs_port:
        return Sockets(http, None)
    try:
        sqs = bind_socket(serve_options.sqs_host, serve_options.sqs_port)
    except OSError as exc:
        http.close()
        raise OSError(
            f"{exc} (the SQS endpoint): choose another --sqs-port, or 0 to serve none"
        ) from None
    return Sockets(http, sqs)


def describe(application: Application, serve_options: ServeOptions) -> list[str]:
    """What ``serve`` has on and off, said once at start."""
    from jobdeck.slack import SlackSettings

    options = application.options
    scheme = "https" if serve_options.tls_cert else "http"
    lines = [
        f"API and dashboard: {scheme}://{serve_options.host}:{serve_options.port} "
        + (f"(TLS on: {serve_options.tls_cert})" if serve_options.tls_cert else "(TLS off)"),
        "SQS endpoint: "
        + (f"on at {options.sqs_url}" if options.sqs_url else "off (--sqs-port 0)"),
    ]
    try:
        slack = SlackSettings.from_env(options.environ)
    except ValueError:
        slack = None  # the loops report the misconfiguration and stop
    if slack is not None:
        how = "Socket Mode" if slack.app_token else "HTTP events at /slack/events"
        lines.append(f"Slack bot: on ({how})")
    elif options.environ.get("SLACK_BOT_TOKEN", "").strip():
        lines.append(
            "Slack bot: off (SLACK_BOT_TOKEN only sends notices; set SLACK_APP_TOKEN "
            "or SLACK_SIGNING_SECRET for the bot)"
        )
    else:
        lines.append("Slack bot: off (SLACK_BOT_TOKEN is not set)")
    pools = application.executor.pools
    lines.append(f"isolation: {pools.isolation} (asked: {options.isolation})")
    lines.append(f"store: {application.store.url}")
    return lines


async def _serve(options: Options, serve_options: ServeOptions, sockets: Sockets) -> None:
    import asyncio
    import signal

    from jobdeck.api.server import serve_http
    from jobdeck.app import Application
    from jobdeck.clock import SystemClock

    application = Application(options, clock=SystemClock())
    for line in describe(application, serve_options):
        log.info("%s", line)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, application.stop)
    try:
        await application.start()
        started = asyncio.Event()

        async def http() -> None:
            await serve_http(
                application,
                serve_options.host,
                serve_options.port,
                tls_cert=serve_options.tls_cert,
                tls_key=serve_options.tls_key,
                started=started,
                sock=sockets.http,
                allowed_hosts=serve_options.allowed_hosts,
            )

        application.extra_loops["http"] = http
        for name, extra in _optional_loops(application, serve_options, sockets).items():
            application.extra_loops[name] = extra
        await application.run()
        log.info("jobdeck stopped; running runs go on and are adopted at the next start")
    finally:
        await application.aclose()


def _optional_loops(
    application: Application, serve_options: ServeOptions, sockets: Sockets
) -> dict[str, Loop]:
    """The endpoints that run beside the HTTP API when configured."""
    import uvicorn

    from jobdeck.api.server import embedded_config, serve_config, tls_context
    from jobdeck.queues.endpoint import create_sqs_app, endpoint_of
    from jobdeck.queues.sigv4 import sqs_credentials
    from jobdeck.slack import socket_mode_loops

    loops: dict[str, Loop] = {}
    sqs_url = application.options.sqs_url
    if serve_options.sqs_port and sqs_url:
        credentials = sqs_credentials(
            serve_options.sqs_host, serve_options.sqs_verify, application.options.environ
        )
        endpoint = create_sqs_app(
            application.store, application.clock, base_url=sqs_url, credentials=credentials
        )

        def watch(server: uvicorn.Server) -> None:
            # Waiting long polls answer as soon as the server is stopping.
            endpoint_of(endpoint).stopping = lambda: server.should_exit

        async def sqs() -> None:
            host, port = serve_options.sqs_host, serve_options.sqs_port
            config = embedded_config(endpoint, lifespan="on")
            if serve_options.tls_cert is not None:
                config.ssl = tls_context(serve_options.tls_cert, serve_options.tls_key)
            log.info(
                "serving the SQS-compatible endpoint on %s://%s:%d (%s)",
                "https" if serve_options.tls_cert else "http",
                f"[{host}]" if ":" in host else host,
                port,
                "SigV4 signatures verified" if credentials else "any SigV4 signature accepted",
            )
            await serve_config(config, host, port, None, watch, sock=sockets.sqs)

        loops["sqs"] = sqs
    loops.update(socket_mode_loops(application))
    return loops


def _apply(catalog: Path, state_dir: Path, store_url: str | None) -> None:
    from jobdeck.catalog.load import CatalogError, load_catalog
    from jobdeck.clock import SystemClock
    from jobdeck.control import Control, ControlError, current_actor, git_describe
    from jobdeck.store import open_store

    try:
        loaded = load_catalog(catalog)
    except CatalogError as exc:
        for diagnostic in exc.diagnostics:
            typer.echo(str(diagnostic), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    with open_store(store_url, state_dir=state_dir) as store:
        control = Control(store, SystemClock(), current_actor(), "cli")
        try:
            revision = control.apply(loaded, git=git_describe(catalog))
        except ControlError as exc:
            fail(str(exc))
    if revision is not None:
        typer.echo(f"Applied revision {revision.number} ({loaded.digest[:12]}).")


def _public_url(host: str, port: int, tls_cert: Path | None) -> str:
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"{scheme}://{shown}:{port}"


def _advertised(given: str | None, host: str, port: int, tls_cert: Path | None) -> str:
    """The URL this engine advertises to the others: ``--advertise``, checked, or one
    made from the bind address (a wildcard one names this machine)."""
    if given is None:
        if host in ("0.0.0.0", "::"):
            return _public_url(socket.getfqdn(), port, tls_cert)
        return _public_url(host, port, tls_cert)
    parsed = urlsplit(given)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        fail(f"--advertise must be an http(s) URL such as http://web-1:8080, not {given!r}")
    if parsed.query or parsed.fragment:
        fail(f"--advertise takes no query or fragment: {given!r}")
    return given.rstrip("/")


def _mode(isolation: str) -> Mode:
    if isolation not in ("auto", "cgroups", "rlimit"):
        fail(f"--isolation must be auto, cgroups or rlimit, not {isolation!r}", EXIT_INVALID)
    return isolation  # type: ignore[return-value]


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
