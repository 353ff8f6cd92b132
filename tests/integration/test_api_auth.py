"""Access control and TLS: the bind rule, bearer tokens, the login cookie, TLS 1.2 minimum.

A "public" server in these tests listens on 127.0.0.1 with ``require_token=True``: the
rules of a non-loopback address, without exposing anything beyond this machine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import warnings
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jobdeck.api.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    BindRefused,
    check_bind,
    session_cookie,
    session_valid,
)
from jobdeck.api.server import serve_http, tls_context
from jobdeck.app import Application, Options
from tests.integration.test_api_harness import base_environ, free_port, serving

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token-for-tests-0123456789"


# -- the bind rule -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert check_bind(host, {}) is None
    assert check_bind(host, {"JOBDECK_API_TOKEN": TOKEN}) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "jobs.example.org", ""])
def test_any_other_address_refuses_to_start_without_a_token(host: str) -> None:
    with pytest.raises(BindRefused, match="JOBDECK_API_TOKEN") as refused:
        check_bind(host, {"JOBDECK_API_TOKEN": "  "})
    assert "127.0.0.1" in str(refused.value)  # says how else to do it
    assert check_bind(host, {"JOBDECK_API_TOKEN": TOKEN}) == TOKEN


async def test_serve_http_refuses_a_public_address_before_listening(tmp_path: Path) -> None:
    app = Application(Options(state_dir=tmp_path / "state", isolation="rlimit", environ={}))
    try:
        with pytest.raises(BindRefused):
            # A documentation address: never bound, the refusal comes first.
            await serve_http(app, "192.0.2.10", free_port())
        with pytest.raises(BindRefused):
            await serve_http(app, "127.0.0.1", free_port(), require_token=True)
    finally:
        app.store.close()


def test_session_cookies_expire_and_name_no_token() -> None:
    value = session_cookie(TOKEN, 1_000_000)
    assert TOKEN not in value
    assert session_valid(TOKEN, value, 1_000_000 + 60)
    assert not session_valid(TOKEN, value, 1_000_000 + SESSION_SECONDS + 1)
    assert not session_valid("another-token", value, 1_000_000 + 60)
    assert not session_valid(TOKEN, value.replace(".", ".0", 1), 1_000_000 + 60)
    assert not session_valid(TOKEN, "garbage", 1_000_000)


# -- a server that needs the token -------------------------------------------------------


async def test_every_request_but_healthz_needs_the_token(tmp_path: Path) -> None:
    environ = base_environ(JOBDECK_API_TOKEN=TOKEN)
    async with serving(tmp_path, environ=environ, require_token=True) as served:
        client = served.client
        assert (await client.get("/healthz")).status_code == 200
        # Slack signs its events instead: they pass (no Slack configured here, so 404).
        assert (await client.post("/slack/events")).status_code == 404
        for path in ("/api/v1/schedules", "/api/v1/runs", "/metrics", "/openapi.json"):
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["code"] == "unauthorized"
            assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = await client.get("/api/v1/runs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "wrong" in wrong.json()["error"]["message"]
        posted = await client.post("/api/v1/schedules/hello/runs", json={})
        assert posted.status_code == 401
        assert (await client.get("/api/v1/runs")).status_code == 401
        assert served.app.store.runs.runs(kind="schedule") == []  # nothing ran

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/api/v1/schedules", headers=bearer)).status_code == 200
        assert (await client.get("/metrics", headers=bearer)).status_code == 200


async def test_a_browser_signs_in_once_with_a_cookie(tmp_path: Path) -> None:
    environ = base_environ(JOBDECK_API_TOKEN=TOKEN)
    async with serving(tmp_path, environ=environ, require_token=True) as served:
        client = served.client
        page = {"Accept": "text/html,application/xhtml+xml"}
        sent = await client.get("/schedules/hello", headers=page)
        assert sent.status_code == 303
        assert sent.headers["location"] == "/login?next=%2Fschedules%2Fhello"
        form = await client.get("/login?next=/schedules/hello")
        assert form.status_code == 200
        assert 'name="token"' in form.text

        bad = await client.post("/login", data={"token": "guess", "next": "/"})
        assert bad.status_code == 401
        assert SESSION_COOKIE not in bad.cookies

        good = await client.post("/login", data={"token": TOKEN, "next": "/schedules/hello"})
        assert good.status_code == 303
        assert good.headers["location"] == "/schedules/hello"
        cookie_header = good.headers["set-cookie"]
        assert "HttpOnly" in cookie_header
        assert "SameSite=strict" in cookie_header or "SameSite=Strict" in cookie_header
        assert "Secure" not in cookie_header  # plain HTTP here; see the TLS test
        assert TOKEN not in cookie_header

        # httpx keeps the cookie: the API and the pages now answer.
        assert (await client.get("/api/v1/schedules")).status_code == 200
        assert (await client.get("/", headers=page)).status_code == 200

        # Never an open redirect to another site.
        elsewhere = await client.post("/login", data={"token": TOKEN, "next": "//evil.test/"})
        assert elsewhere.headers["location"] == "/"

        client.cookies.set(SESSION_COOKIE, "1.deadbeef")
        assert (await client.get("/api/v1/schedules")).status_code == 401


async def test_on_loopback_no_token_is_needed_and_callers_may_name_themselves(
    tmp_path: Path,
) -> None:
    environ = base_environ(JOBDECK_API_TOKEN=TOKEN)
    async with serving(tmp_path, environ=environ) as served:
        client = served.client
        assert (await client.get("/api/v1/schedules")).status_code == 200
        started = await client.post(
            "/api/v1/schedules/hello/runs", json={}, headers={"X-Jobdeck-User": "dora@desk"}
        )
        assert started.json()["requested_by"] == "dora@desk"
        # The login form has nothing to ask for.
        assert (await client.get("/login")).status_code == 303


# -- TLS -----------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_the_server_context_has_tls12_as_its_minimum(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    assert tls_context(cert, key).minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(OSError, match="cannot load the TLS certificate"):
        tls_context(tmp_path / "missing.pem", key)


def tls11_client(cert: Path) -> ssl.SSLContext:
    """A client that speaks nothing newer than TLS 1.1 (old ciphers allowed)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cert)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the point of this client
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def blocking_handshake(port: int, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        version = tls.version()
        assert version is not None
        return version


async def handshake(port: int, context: ssl.SSLContext) -> str:
    """The TLS version negotiated with 127.0.0.1:port (a plain blocking client, in a
    thread, so that the server's alert is read as it is sent)."""
    return await asyncio.to_thread(blocking_handshake, port, context)


async def test_the_tls11_client_can_speak_tls11_to_a_server_that_allows_it(
    tmp_path: Path,
) -> None:
    """The control for the next test: the refusal there is the server's minimum, not a
    client that cannot speak TLS 1.1 at all."""
    cert, key = self_signed(tmp_path)
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    permissive.load_cert_chain(cert, key)

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=permissive)
    try:
        port = server.sockets[0].getsockname()[1]
        assert await handshake(port, tls11_client(cert)) == "TLSv1.1"
    finally:
        server.close()
        await server.wait_closed()


async def test_https_needs_tls12_or_newer(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    environ = base_environ(JOBDECK_API_TOKEN=TOKEN)
    async with serving(
        tmp_path, environ=environ, require_token=True, tls=(cert, key), verify=trusted
    ) as served:
        port = int(served.url.rsplit(":", 1)[1])
        # The server's asyncio transport closes without flushing its alert: the client
        # sees an EOF in the handshake (or a reset), never a connection.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(port, tls11_client(cert))
        modern = ssl.create_default_context(cafile=str(cert))
        modern.maximum_version = ssl.TLSVersion.TLSv1_2
        assert await handshake(port, modern) == "TLSv1.2"

        assert (await served.client.get("/healthz")).status_code == 200
        signed_in = await served.client.post("/login", data={"token": TOKEN, "next": "/"})
        assert signed_in.status_code == 303
        assert "Secure" in signed_in.headers["set-cookie"]
        assert (await served.client.get("/api/v1/runs")).status_code == 200
    async with httpx.AsyncClient(verify=trusted) as after:
        with pytest.raises(httpx.ConnectError):
            await after.get(served.url + "/healthz")  # stopped with the application
