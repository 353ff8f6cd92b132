"""What a web page can make a browser send is refused: cross-origin writes, form and
text bodies, other sites' host names; every response carries the security headers; bad
ids, deep JSON and huge bodies are 4xx in the API's shape, never a 500."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobdeck.api.guard import MAX_BODY_BYTES, HostRule, allowed_hosts_from, host_name
from tests.integration.test_api_harness import Served, base_environ, serving

pytestmark = pytest.mark.anyio

WRITES: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/commands/push/invocations", {"params": {}}),
    ("/api/v1/schedules/hello/suspend", {}),
    ("/api/v1/schedules/hello/resume", {}),
    ("/api/v1/schedules/hello/runs", {}),
]


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    message: str = error["message"]
    return message


def counts(served: Served) -> tuple[int, int]:
    store = served.app.store
    return len(store.runs.runs(limit=1000)), len(store.audit.audit(limit=1000))


# -- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("LOCALHOST", "localhost"),
        ("jobs.example.org.", "jobs.example.org"),
        ("[::1", None),
        ("a:b", None),
        ("", None),
    ],
)
def test_host_names(header: str, name: str | None) -> None:
    assert host_name(header) == name


def test_the_names_a_server_answers_to() -> None:
    loopback = HostRule.for_bind("127.0.0.1")
    for good in ("127.0.0.1:80", "localhost:8080", "[::1]:1", "10.0.0.5", "app.localhost"):
        assert loopback.accepts(good), good
    for bad in ("evil.example", "localhost.evil.example", "127.0.0.1.evil.example", None):
        assert not loopback.accepts(bad), bad
    named = HostRule.for_bind("jobs.internal", allowed_hosts_from({}, ["Jobs.Example.ORG"]))
    assert named.accepts("jobs.internal:8080")
    assert named.accepts("jobs.example.org")
    env = allowed_hosts_from({"JOBDECK_ALLOWED_HOSTS": "a.example, b.example c.example"})
    assert env == ("a.example", "b.example", "c.example")


# -- a real server ---------------------------------------------------------------------------


async def test_cross_origin_writes_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        before = counts(served)
        for path, body in WRITES:
            for origin in ("http://evil.example", "null", "http://127.0.0.1:1", "garbage"):
                refused = await served.client.post(path, json=body, headers={"origin": origin})
                assert "cross-origin" in error_of(refused, 403, "forbidden"), path
            fetched = await served.client.post(
                path, json=body, headers={"sec-fetch-site": "cross-site"}
            )
            error_of(fetched, 403, "forbidden")
        assert counts(served) == before
        # The server's own origin, and a client that sends none (the CLI), are fine.
        own = served.url
        started = await served.client.post(
            "/api/v1/schedules/hello/runs", json={}, headers={"origin": own}
        )
        assert started.status_code == 201, started.text
        plain = await served.client.post("/api/v1/commands/push/invocations", json={"params": {}})
        assert plain.status_code == 201, plain.text


async def test_bodies_that_are_not_json_are_refused(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        before = counts(served)
        for path, _ in WRITES:
            text = await served.client.post(
                path, content=b"{}", headers={"content-type": "text/plain"}
            )
            error_of(text, 415, "unsupported_media_type")
            form = await served.client.post(path, data={"params": "x"})
            error_of(form, 415, "unsupported_media_type")
            untyped = await served.client.post(path, content=b"{}")
            error_of(untyped, 415, "unsupported_media_type")
        assert counts(served) == before
        # No body at all needs no type (a write without options).
        empty = await served.client.post("/api/v1/schedules/hello/runs")
        assert empty.status_code == 201, empty.text


async def test_other_host_names_are_refused(tmp_path: Path) -> None:
    environ = base_environ(JOBDECK_ALLOWED_HOSTS="jobs.example.org")
    async with serving(tmp_path, environ=environ) as served:
        for path in ("/api/v1/runs", "/api/v1/audit", "/", "/api/v1/runs/1/log"):
            rebound = await served.client.get(path, headers={"host": "rebind.evil.example"})
            assert "rebind.evil.example" in error_of(rebound, 421, "misdirected")
        port = served.url.rsplit(":", 1)[1]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "jobs.example.org"):
            answered = await served.client.get("/api/v1/runs", headers={"host": host})
            assert answered.status_code == 200, host
        # Health checks and Slack's signed events are not a browser's business.
        health = await served.client.get("/healthz", headers={"host": "lb.internal"})
        assert health.status_code == 200
        # An origin with a name the operator allowed is the server's own (behind a proxy).
        proxied = await served.client.post(
            "/api/v1/schedules/hello/suspend",
            json={"reason": "maintenance"},
            headers={"origin": "https://jobs.example.org"},
        )
        assert proxied.status_code == 201, proxied.text


async def test_every_response_carries_the_security_headers(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        for response in (
            await served.client.get("/"),
            await served.client.get("/api/v1/runs"),
            await served.client.get("/nowhere"),
            await served.client.post("/api/v1/schedules/hello/runs", headers={"origin": "null"}),
        ):
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "same-origin"
        page = (await served.client.get("/")).text
        assert "<style" not in page
        assert "style=" not in page
        assert "<script>" not in page


async def test_ids_and_pages_past_any_store_column_are_4xx(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        client = served.client
        for path in (
            "/api/v1/runs/9223372036854775808",
            "/api/v1/runs/99999999999999999999999/log",
            "/api/v1/revisions/9223372036854775808",
        ):
            error_of(await client.get(path), 404, "not_found")
        for path in (
            "/runs/9223372036854775808",
            "/runs/9223372036854775808/log",
            "/audit?page=99999999999999999999",
            "/audit?page=184467440737095516",
            "/revisions/99999999999999999999",
        ):
            assert (await client.get(path)).status_code in (200, 404), path
        for query in ("offset=99999999999999999999", "limit=99999999999999999999"):
            error_of(await client.get(f"/api/v1/runs?{query}"), 400, "bad_request")


async def test_deep_json_is_a_400(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        before = counts(served)
        for deep in (b"[" * 100_000, b'{"params": ' * 50_000):
            response = await served.client.post(
                "/api/v1/commands/push/invocations",
                content=deep,
                headers={"content-type": "application/json"},
            )
            error_of(response, 400, "bad_request")
        assert counts(served) == before


def _raw_request(port: int, head: bytes, chunks: int) -> tuple[bytes, int]:
    """Send ``head`` then up to ``chunks`` MiB of body until the server answers; the
    answer's first bytes and how many bytes of body went out."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        piece = b"x" * (1024 * 1024)
        deadline = time.monotonic() + 30
        for _ in range(chunks):
            try:
                answer = sock.recv(4096)
                if answer:
                    return _whole(sock, answer), sent
            except BlockingIOError:
                pass
            try:
                sent += sock.send(piece)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
            assert time.monotonic() < deadline
        sock.setblocking(True)
        try:
            return _whole(sock, sock.recv(4096)), sent
        except OSError:
            return b"", sent


def _whole(sock: socket.socket, answer: bytes) -> bytes:
    """The answer with its whole body: its head and body may come in separate reads."""
    sock.setblocking(True)
    sock.settimeout(10)
    while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
        try:
            more = sock.recv(4096)
        except OSError:
            break
        if not more:
            break
        answer += more
    return answer


def _length(answer: bytes) -> int:
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


async def test_large_bodies_are_refused_before_they_are_read(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        port = int(served.url.rsplit(":", 1)[1])
        declared = (
            b"POST /api/v1/commands/push/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 209715200\r\n\r\n"
        )
        answer, sent = await asyncio.to_thread(_raw_request, port, declared, 200)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
        assert sent < 50 * 1024 * 1024  # told at once, not after 200 MB
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["code"] == "too_large"
        chunked = (
            b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"

        def streamed() -> tuple[bytes, int]:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(chunked)
                sent = 0
                try:
                    for _ in range(200):
                        sock.sendall(chunk)
                        sent += len(chunk)
                except OSError:
                    pass
                try:
                    return sock.recv(4096), sent
                except OSError:
                    return b"", sent

        answer, sent = await asyncio.to_thread(streamed)
        # Refused after about the limit: the answer, or the connection closed under it.
        assert sent < 50 * 1024 * 1024
        assert answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer[:100]
        under = await served.client.post(
            "/api/v1/commands/push/invocations",
            content=json.dumps({"params": {}, "via": "x" * (MAX_BODY_BYTES // 2)}).encode(),
            headers={"content-type": "application/json"},
        )
        assert under.status_code != 413
        assert (await served.client.get("/healthz")).status_code == 200
