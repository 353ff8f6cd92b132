"""Notifications over real HTTP to stand-ins for Slack and webhook receivers on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobdeck.notify import Notifier, NotifySettings, RetryPolicy, RunNotice, client_ssl_context

TOKEN = "xoxb-test-token"
START = datetime(2026, 3, 8, 1, 0, 0, tzinfo=UTC)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# (request, how many came before it) -> (status, headers, body)
Answer = tuple[int, dict[str, str], bytes]
Responder = Callable[[Request, int], Answer]


def ok_json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(data).encode(),
    )


class Receiver:
    """A real HTTP(S) server on 127.0.0.1 in a thread that records every request."""

    def __init__(self, respond: Responder, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = Request(self.path, dict(self.headers.items()), body)
                with receiver.lock:
                    index = len(receiver.requests)
                    receiver.requests.append(request)
                status, headers, data = respond(request, index)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(respond: Responder, tls: ssl.SSLContext | None = None) -> Receiver:
        started.append(Receiver(respond, tls))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


class FastSleep:
    """Records the delays asked for and waits none of them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def notice(**changes: Any) -> RunNotice:
    base = RunNotice(
        run_id=42,
        job="ranking-aggregate",
        kind="schedule",
        status="failed",
        reason="oom_killed",
        trigger="schedule",
        scheduled_for=START,
        started_at=START + timedelta(seconds=2),
        ended_at=START + timedelta(minutes=1, seconds=14),
        exit_code=-9,
        log_tail="\n".join(f"line {n}" for n in range(1, 51)),
        host="batch-1",
        link="https://jobdeck.example/runs/42",
    )
    return replace(base, **changes)


def slack_standin(request: Request, index: int) -> Answer:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        return ok_json({"ok": False, "error": "invalid_auth"})
    return ok_json({"ok": True, "channel": "C0ALERTS", "ts": f"1700000000.{index:06d}"})


def settings_for(**changes: Any) -> NotifySettings:
    fast = RetryPolicy(first_delay=0.01, max_delay=0.05)
    return replace(NotifySettings(retry=fast, deadline=10.0), **changes)


@pytest.mark.anyio
async def test_slack_message_carries_job_status_fields_and_log_tail(
    serve: Callable[..., Receiver],
) -> None:
    slack = serve(slack_standin)
    notifier = Notifier.from_env({"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": f"{slack.url}/api"})
    notifier.notify(["slack:#batch-alerts"], notice())
    await notifier.aclose()

    [request] = slack.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["Content-Type"].startswith("application/json")
    body = request.json()
    assert body["channel"] == "#batch-alerts"
    assert "ranking-aggregate" in body["text"]
    assert "oom_killed" in body["text"]
    header, fields, log, context = body["blocks"]
    assert header["type"] == "header"
    assert header["text"]["text"] == ":rotating_light: ranking-aggregate was killed: out of memory"
    shown = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in fields["fields"]}
    assert shown["*Reason*"] == "`oom_killed`"
    assert shown["*Attempt*"] == "1"
    assert shown["*Duration*"] == "1m12s"
    assert shown["*Exit code*"] == "-9"
    assert shown["*Run*"] == "<https://jobdeck.example/runs/42|42>"
    text = log["text"]["text"]
    assert text.startswith("```\n")
    assert text.endswith("line 50\n```")
    assert "line 31\n" in text
    assert "line 30\n" not in text  # only the last 20 lines travel
    assert "open in the dashboard" in context["elements"][0]["text"]


MISSED: dict[str, Any] = {
    "schedule": "ranking-aggregate",
    "cause": "engine_down",
    "count": 3,
    "first": "2026-03-08T01:00:00Z",
    "last": "2026-03-08T01:20:00Z",
    "slots": [{"at": f"2026-03-08T01:{m}0:00Z", "reason": "catchup_policy"} for m in range(3)],
    "slots_listed": 3,
    "reasons": {"catchup_policy": 3},
    "catchup": "none",
    "catchup_window": "1h",
    "caught_up": [],
}


@pytest.mark.anyio
async def test_a_missed_notice_says_which_slots_and_why_to_slack_and_a_webhook(
    serve: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    slack = serve(slack_standin)
    hook = serve(lambda request, index: (204, {}, b""))
    missed = notice(
        status="skipped",
        reason="missed",
        trigger="catchup",
        started_at=None,
        ended_at=None,
        exit_code=None,
        log_tail="",
        link="https://jobdeck.example/schedules/ranking-aggregate",
        missed=MISSED,
    )
    notifier = Notifier.from_env({"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": f"{slack.url}/api"})
    notifier.notify(["slack:#batch-alerts", f"webhook:{hook.url}/hook"], missed)
    await notifier.aclose()

    body = slack.requests[0].json()
    header, fields, _ = body["blocks"]
    assert header["text"]["text"] == ":rotating_light: ranking-aggregate missed 3 slots"
    shown = {f["text"].split("\n")[0]: f["text"].split("\n", 1)[1] for f in fields["fields"]}
    assert shown["*Cause*"] == "`engine_down`"
    assert shown["*Missed*"] == "3 (catchup_policy 3)"
    assert shown["*Slots*"].splitlines() == [s["at"] for s in MISSED["slots"]]
    payload = hook.requests[0].json()
    assert payload["type"] == payload["event"] == "run.missed"
    assert payload["missed"] == MISSED
    assert payload["run"]["url"] == "https://jobdeck.example/schedules/ranking-aggregate"
    said = "ranking-aggregate: missed 3 slots (engine_down), 2026-03-08T01:00:00Z to "
    assert said + "2026-03-08T01:20:00Z, run 42" in caplog.text


@pytest.mark.anyio
async def test_slack_refusal_is_final_and_logged(
    serve: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    slack = serve(slack_standin)
    notifier = Notifier(settings_for(slack_token="xoxb-wrong", slack_api_url=slack.url))
    notifier.notify(["slack:#batch-alerts"], notice())
    await notifier.aclose()

    assert len(slack.requests) == 1
    assert "Slack error invalid_auth (not retried)" in caplog.text
    assert "xoxb-wrong" not in caplog.text


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["ok-false", "http-429"])
async def test_slack_rate_limit_waits_for_retry_after_then_posts(
    serve: Callable[..., Receiver], how: str
) -> None:
    def limited_once(request: Request, index: int) -> Answer:
        if index == 0:
            status = 200 if how == "ok-false" else 429
            return ok_json({"ok": False, "error": "ratelimited"}, status, {"Retry-After": "7"})
        return slack_standin(request, index)

    slack = serve(limited_once)
    sleep = FastSleep()
    notifier = Notifier(settings_for(slack_token=TOKEN, slack_api_url=slack.url), sleep=sleep)
    notifier.notify(["slack:C0ALERTS"], notice())
    await notifier.aclose()

    assert len(slack.requests) == 2
    assert sleep.delays == [7.0]
    assert slack.requests[0].body == slack.requests[1].body


@pytest.mark.anyio
async def test_without_a_token_slack_is_skipped_and_said_once(
    serve: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    hook = serve(lambda request, index: ok_json({}))
    notifier = Notifier.from_env({})
    for run_id in (1, 2):
        notifier.notify(["slack:#a", "slack:#b", f"webhook:{hook.url}/x"], notice(run_id=run_id))
    await notifier.aclose()

    warnings_said = [r for r in caplog.records if "SLACK_BOT_TOKEN" in r.getMessage()]
    assert len(warnings_said) == 1
    assert [r.json()["run"]["id"] for r in hook.requests] == [1, 2] or len(hook.requests) == 2


@pytest.mark.anyio
async def test_webhook_retries_503_with_backoff_and_delivers_once(
    serve: Callable[..., Receiver],
) -> None:
    def flaky(request: Request, index: int) -> Answer:
        return (503, {}, b"busy") if index < 2 else (202, {}, b"")

    hook = serve(flaky)
    sleep = FastSleep()
    settings = replace(settings_for(), retry=RetryPolicy(), webhook_secret="s3cret")
    notifier = Notifier(settings, sleep=sleep)
    notifier.notify([f"webhook:{hook.url}/hooks/jobdeck"], notice())
    await notifier.aclose()

    assert len(hook.requests) == 3
    assert sleep.delays == [1.0, 2.0]  # exponential from 1 s
    first, _, last = hook.requests
    assert first.body == last.body  # the same delivery, so the same id each time
    payload = last.json()
    assert payload["type"] == "run.failed"
    assert payload["version"] == 1
    assert len(payload["delivery_id"]) == 32
    assert payload["run"] == {
        "id": 42,
        "job": "ranking-aggregate",
        "kind": "schedule",
        "trigger": "schedule",
        "status": "failed",
        "reason": "oom_killed",
        "attempt": 1,
        "scheduled_for": "2026-03-08T01:00:00Z",
        "started_at": "2026-03-08T01:00:02Z",
        "ended_at": "2026-03-08T01:01:14Z",
        "duration_seconds": 72.0,
        "exit_code": -9,
        "pool": None,
        "host": "batch-1",
        "project": None,
        "url": "https://jobdeck.example/runs/42",
    }
    assert payload["log_tail"].splitlines() == [f"line {n}" for n in range(31, 51)]
    assert last.headers["X-Jobdeck-Event"] == "run.failed"
    signed = last.headers["X-Jobdeck-Timestamp"].encode() + b"." + last.body
    expected = hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert last.headers["X-Jobdeck-Signature"] == f"sha256={expected}"


@pytest.mark.anyio
async def test_webhook_400_is_not_retried(
    serve: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    hook = serve(lambda request, index: (400, {}, b"bad"))
    notifier = Notifier(settings_for())
    notifier.notify([f"webhook:{hook.url}/secret-path"], notice())
    await notifier.aclose()

    assert len(hook.requests) == 1
    assert "HTTP 400 (not retried)" in caplog.text
    assert "secret-path" not in caplog.text  # a webhook's path is often its password


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.anyio
async def test_unreachable_receiver_gives_up_within_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = RetryPolicy(attempts=50, first_delay=0.1, max_delay=0.4)
    notifier = Notifier(settings_for(retry=policy, deadline=1.0, connect_timeout=0.5))
    began = time.monotonic()
    notifier.notify([f"webhook:http://127.0.0.1:{free_port()}/x"], notice())
    assert time.monotonic() - began < 0.5
    await notifier.aclose(grace=30)

    assert time.monotonic() - began < 5  # the deadline (1 s), not the 50 attempts
    assert "ConnectError" in caplog.text
    assert "gave up" in caplog.text


@pytest.mark.anyio
async def test_notify_returns_at_once_while_the_receiver_is_slow(
    serve: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobdeck.notify")
    release = threading.Event()
    arrived = threading.Event()

    def slow(request: Request, index: int) -> Answer:
        arrived.set()
        release.wait(10)
        return 204, {}, b""

    hook = serve(slow)
    notifier = Notifier(settings_for())
    began = time.monotonic()
    notifier.notify([f"webhook:{hook.url}/x"], notice())
    assert time.monotonic() - began < 0.5
    assert notifier.in_flight == 1
    # the request is on the wire and the receiver holds it
    assert await asyncio.to_thread(arrived.wait, 10)
    assert notifier.in_flight == 1
    release.set()
    await notifier.aclose()

    assert notifier.in_flight == 0
    assert "delivered (attempt 1)" in caplog.text


@pytest.mark.anyio
async def test_a_receiver_that_never_answers_ends_at_the_deadline(
    serve: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    hook = serve(lambda request, index: (release.wait(10), (204, {}, b""))[1])
    notifier = Notifier(settings_for(deadline=0.5, read_timeout=30))
    began = time.monotonic()
    notifier.notify([f"webhook:{hook.url}/x"], notice())
    await notifier.aclose(grace=30)
    release.set()

    assert time.monotonic() - began < 5
    assert "within the 0s deadline" in caplog.text or "deadline" in caplog.text


@pytest.mark.anyio
async def test_aclose_drains_every_pending_delivery(serve: Callable[..., Receiver]) -> None:
    def unhurried(request: Request, index: int) -> Answer:
        time.sleep(0.1)
        return 200, {}, b""

    hook = serve(unhurried)
    notifier = Notifier(settings_for())
    for run_id in range(5):
        notifier.notify([f"webhook:{hook.url}/x"], notice(run_id=run_id))
    assert notifier.in_flight == 5
    await notifier.aclose()

    assert notifier.in_flight == 0
    assert sorted(r.json()["run"]["id"] for r in hook.requests) == [0, 1, 2, 3, 4]


@pytest.mark.anyio
async def test_aclose_abandons_what_outlives_its_grace(
    serve: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    hook = serve(lambda request, index: (release.wait(10), (204, {}, b""))[1])
    notifier = Notifier(settings_for(read_timeout=30))
    notifier.notify([f"webhook:{hook.url}/x"], notice())
    began = time.monotonic()
    await notifier.aclose(grace=0.2)
    release.set()

    assert time.monotonic() - began < 3
    assert notifier.in_flight == 0
    assert "abandoning 1 notification(s)" in caplog.text
    notifier.notify([f"webhook:{hook.url}/x"], notice())  # closed: logged, not raised
    assert "notifier is closed" in caplog.text


def test_notify_outside_an_event_loop_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    async def build() -> Notifier:
        return Notifier(settings_for())

    notifier = asyncio.run(build())
    notifier.notify(["webhook:http://127.0.0.1:9/x", "nonsense"], notice())
    assert "could not send notifications for run 42" in caplog.text
    asyncio.run(notifier.aclose())


def test_log_tail_is_capped_in_lines_and_bytes() -> None:
    huge = notice(log_tail="x" * 100_000 + "\nfinal line é")
    assert len(huge.log_tail.encode()) <= 2048 + len("…".encode())
    assert huge.log_tail.endswith("final line é")
    assert notice(log_tail="").log_tail == ""


# --- TLS -------------------------------------------------------------------------------


def test_client_context_refuses_before_tls_1_2_and_verifies() -> None:
    context = client_ssl_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # naming TLS 1.1 is deprecated
        weak = ssl.create_default_context()
        weak.minimum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ValueError, match="TLS"):
        Notifier(NotifySettings(), ssl_context=weak)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(cert: tuple[Path, Path], only_tls_1_1: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if only_tls_1_1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # OpenSSL 3 allows TLS 1.1 only at security level 0.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.load_cert_chain(*cert)
    return context


def old_client_handshake(port: int, cafile: Path) -> str | None:
    """A deliberately weak client, to prove the TLS 1.1 server really speaks TLS 1.1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.create_default_context(cafile=str(cafile))
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


@pytest.mark.anyio
async def test_a_tls_1_1_receiver_is_refused(
    serve: Callable[..., Receiver],
    certificate: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = serve(lambda request, index: (204, {}, b""), tls=server_context(certificate, True))
    modern = serve(lambda request, index: (204, {}, b""), tls=server_context(certificate, False))
    assert await asyncio.to_thread(old_client_handshake, old.port, certificate[0]) == "TLSv1.1"

    notifier = Notifier(settings_for(ca_file=str(certificate[0])))
    notifier.notify([f"webhook:{old.url}/x", f"webhook:{modern.url}/x"], notice())
    await notifier.aclose()

    assert old.requests == []
    assert "TLS handshake failed" in caplog.text
    assert "(not retried)" in caplog.text
    # The same certificate over TLS 1.2+ is accepted: the refusal was the protocol version.
    assert len(modern.requests) == 1
