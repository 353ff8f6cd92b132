"""What a browser must not be able to do to the server, whatever page it is on.

On loopback the API needs no token, so anything a web page can make a browser send is a
request of the machine's own user. :class:`RequestGuard` stands in front of every route:

- **Host**: a request must name the server by a name it answers to (a loopback name, an
  IP address, the ``--host`` it is bound to, or a name the operator allows). A page of
  another site whose name was rebound to 127.0.0.1 sends its own name and is refused,
  so it cannot read runs, logs or the audit log.
- **Origin**: a write (any method but GET, HEAD and OPTIONS) that a browser sends from
  another origin, or from an opaque one (``Origin: null``), is refused. Clients that are
  not browsers send no ``Origin`` and are not affected.
- **Content type**: a body sent to ``/api/`` must be ``application/json``; the
  types a page can send cross-site without asking first (forms, ``text/plain``) are
  refused with a 415.
- **Size**: a body over :data:`MAX_BODY_BYTES` is refused with a 413 as soon as it is
  known to be too large (from ``Content-Length``, or once that many bytes arrived),
  never read whole.
- **Headers**: every response forbids framing, sniffing, inline script and referrers.

Refusals use the API's error shape. Slack's events (signed by Slack) and health checks
are exempt from the Host and Origin rules, not from the size limit.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_HOSTS_ENV = "JOBDECK_ALLOWED_HOSTS"
MAX_BODY_BYTES = 1024 * 1024
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reached by other machines that do not name the server as a browser would; what they
# can do is authenticated otherwise (Slack's signature) or harmless (the health check).
EXEMPT_PATHS = frozenset({"/healthz", "/slack/events"})
# Monitor pings carry their own token in the path and answer nothing worth reading.
EXEMPT_PREFIXES = ("/ping/",)
JSON_PREFIX = "/api/"

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def allowed_hosts_from(environ: Mapping[str, str], given: Iterable[str] = ()) -> tuple[str, ...]:
    """The names of ``--allowed-host`` and of ``JOBDECK_ALLOWED_HOSTS`` (comma or space
    separated), lower-cased, without ports."""
    names = [*given, *environ.get(ALLOWED_HOSTS_ENV, "").replace(",", " ").split()]
    return tuple(dict.fromkeys(n.strip().lower().rstrip(".") for n in names if n.strip()))


def host_name(value: str) -> str | None:
    """The name in a ``Host`` header without its port; None when it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        return inside
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostRule:
    """The names the server answers to.

    An IP address is always accepted: a page can only make a browser send one in ``Host``
    by loading that very address, which is then its own origin. Names are what a
    rebinding attack controls, so only known ones are.
    """

    names: frozenset[str]

    @classmethod
    def for_bind(cls, bind_host: str, allowed: Iterable[str] = ()) -> HostRule:
        names = set(LOOPBACK_NAMES)
        bound = bind_host.strip("[]").lower()
        if bound and not is_ip_address(bound):
            names.add(bound)
        if bound in ("0.0.0.0", "::", ""):
            # Bound to every address: the machine's own name is one it answers to.
            names.add(socket.gethostname().lower())
        names.update(allowed)
        return cls(frozenset(names))

    def accepts(self, host_header: str | None) -> bool:
        if host_header is None:
            return False
        name = host_name(host_header)
        if name is None:
            return False
        return is_ip_address(name) or name in self.names or name.endswith(".localhost")


def _refusal(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": {"code": code, "message": message}}).encode()


class RequestGuard:
    """The ASGI application in front of the server's routes (see the module's text)."""

    def __init__(self, app: ASGIApp, *, hosts: HostRule, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.hosts = hosts
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refused = self._check(scope, headers)
        if refused is not None:
            await self._send_refusal(send, *refused)
            return
        body_receive = receive
        if scope["method"] not in SAFE_METHODS or headers.get("content-length"):
            buffered = await self._read_body(receive)
            if buffered is None:
                await self._send_refusal(send, *self._too_large())
                return
            body_receive = _replay(buffered, receive)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, body_receive, with_headers)

    def _check(self, scope: Scope, headers: Headers) -> tuple[int, bytes] | None:
        path: str = scope["path"]
        method: str = scope["method"]
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                return _refusal(400, "bad_request", f"Content-Length {length!r} is not a number")
            if int(length) > self.max_body:
                return self._too_large()
        if path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            return None
        host = headers.get("host")
        if not self.hosts.accepts(host):
            return _refusal(
                421,
                "misdirected",
                f"this server does not answer to the name {host!r}: use its address, or "
                f"add the name with --allowed-host or {ALLOWED_HOSTS_ENV}",
            )
        if method in SAFE_METHODS:
            return None
        if not self._same_origin(headers):
            return _refusal(
                403,
                "forbidden",
                f"cross-origin request refused: Origin {headers.get('origin')!r} is not this "
                "server's own",
            )
        if path.startswith(JSON_PREFIX) and _has_body(headers):
            kind = headers.get("content-type", "").partition(";")[0].strip().lower()
            if kind != "application/json" and not kind.endswith("+json"):
                return _refusal(
                    415,
                    "unsupported_media_type",
                    f"the body must be JSON with Content-Type: application/json "
                    f"(it was {kind or 'not given'!r})",
                )
        return None

    def _same_origin(self, headers: Headers) -> bool:
        """No Origin (not a browser, or a same-origin navigation of an old one) passes;
        otherwise its host and port must be the Host the request was sent to, or a name
        the operator allowed (a proxy in front may rewrite Host)."""
        if headers.get("sec-fetch-site", "") == "cross-site":
            return False
        origin = headers.get("origin")
        if origin is None:
            return True
        parts = urlsplit(origin.strip())
        if origin.strip().lower() == "null" or not parts.hostname:
            return False
        if parts.netloc.lower() == headers.get("host", "").lower():
            return True
        allowed = self.hosts.names - LOOPBACK_NAMES
        return parts.hostname.lower().rstrip(".") in allowed

    def _too_large(self) -> tuple[int, bytes]:
        return _refusal(
            413, "too_large", f"the request body is over the limit of {self.max_body} bytes"
        )

    async def _read_body(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None as soon as more than the limit arrived."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                return messages

    async def _send_refusal(self, send: Send, status: int, body: bytes) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *SECURITY_HEADERS,
        ]
        if status == 413:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return "transfer-encoding" in headers


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
