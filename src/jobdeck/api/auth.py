"""Access control: open on loopback, a bearer token everywhere else.

Bound to a loopback address, the API and dashboard need no token (whoever can reach them
already has the machine). Bound to any other address, jobdeck refuses to start without
``JOBDECK_API_TOKEN``, and every request but ``/healthz`` (and the login form) needs
``Authorization: Bearer <token>`` or the session cookie that ``POST /login`` sets for a
browser. The cookie holds an HMAC of the token and its issue time, never the token, so
a leaked cookie expires and changing the token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from jobdeck.api.errors import error_response
from jobdeck.api.params import is_loopback_address

TOKEN_ENV = "JOBDECK_API_TOKEN"
SESSION_COOKIE = "jobdeck_session"
SESSION_SECONDS = 12 * 3600
# Reachable without a token: the health check, the form that asks for the token, and
# Slack's events, which carry Slack's signature instead (Bolt verifies it; the route
# exists only when a signing secret is configured).
# The icon too: a browser asks for it on the login page, before anyone signed in.
OPEN_PATHS = frozenset(
    {"/healthz", "/login", "/login.css", "/logout", "/slack/events", "/favicon.ico"}
)
# Monitors' pings carry a token of their own (see jobdeck.api.ping).
OPEN_PREFIXES = ("/ping/",)
# Answered with a 401 in JSON rather than a redirect to the login form.
MACHINE_PATHS = ("/api/", "/metrics", "/openapi.json")


class BindRefused(Exception):
    """Serving on this address would expose the API without a token."""


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    return is_loopback_address(host)


def check_bind(host: str, environ: Mapping[str, str]) -> str | None:
    """The token to require on ``host``: None on loopback; refused without one elsewhere."""
    if is_loopback(host):
        return None
    token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise BindRefused(
            f"refusing to serve on {host}: it is not a loopback address, so the API needs "
            f"a token. Set {TOKEN_ENV} (for example to the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`) and give it "
            "to the API's users, or serve on 127.0.0.1"
        )
    return token


def token_from(environ: Mapping[str, str]) -> str | None:
    token = environ.get(TOKEN_ENV, "").strip()
    return token or None


# -- the session cookie --------------------------------------------------------------


def _mac(token: str, issued: int) -> str:
    message = f"jobdeck session {issued}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def session_cookie(token: str, now: float) -> str:
    issued = int(now)
    return f"{issued}.{_mac(token, issued)}"


def session_valid(token: str, value: str, now: float) -> bool:
    issued_text, _, mac = value.partition(".")
    try:
        issued = int(issued_text)
    except ValueError:
        return False
    if not 0 <= now - issued <= SESSION_SECONDS:
        return False
    return hmac.compare_digest(mac.encode(), _mac(token, issued).encode())


def bearer_valid(token: str, header: str | None) -> bool:
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


# -- the middleware --------------------------------------------------------------------


class AccessControl:
    """Lets a request through when it carries the token or a valid session cookie."""

    def __init__(self, app: ASGIApp, *, token: str, now: Callable[[], float] = time.time) -> None:
        self.app = app
        self.token = token
        self.now = now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or scope["path"].startswith(OPEN_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cookie = request.cookies.get(SESSION_COOKIE)
        if bearer_valid(self.token, request.headers.get("authorization")) or (
            cookie is not None and session_valid(self.token, cookie, self.now())
        ):
            await self.app(scope, receive, send)
            return
        await self._refuse(request)(scope, receive, send)

    def _refuse(self, request: Request) -> Response:
        path = request.url.path
        wants_page = request.method in ("GET", "HEAD") and "text/html" in request.headers.get(
            "accept", ""
        )
        if wants_page and not path.startswith(MACHINE_PATHS):
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        given = "the token is wrong" if request.headers.get("authorization") else "none was sent"
        return error_response(
            401,
            "unauthorized",
            f"this server needs Authorization: Bearer ${TOKEN_ENV} ({given})",
            **{"WWW-Authenticate": 'Bearer realm="jobdeck"'},
        )


# -- the login form ----------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jobdeck: sign in</title>
<link rel="stylesheet" href="/login.css"></head>
<body><main>
<h1>jobdeck</h1>
{body}
</main></body></html>
"""


# Served at its own URL, not inline: the pages' Content-Security-Policy forbids inline style.
LOGIN_CSS = """\
body { font: 16px/1.5 system-ui, sans-serif; background: #f4f5f7; margin: 0; }
main { max-width: 26rem; margin: 12vh auto; background: #fff; padding: 2rem;
  border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
h1 { font-size: 1.3rem; margin-top: 0; }
input[type=password] { width: 100%; box-sizing: border-box; padding: .5rem; font: inherit; }
button { margin-top: 1rem; padding: .5rem 1.2rem; font: inherit; cursor: pointer; }
.error { color: #b00020; }
"""


def _safe_next(value: str | None) -> str:
    """Only a path on this server: never an open redirect to another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _form(next_path: str, error: str | None = None) -> str:
    problem = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return _PAGE.format(
        body=f"""<p>This server needs its API token (<code>{TOKEN_ENV}</code>).</p>
{problem}
<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(next_path)}">
<label for="token">Token</label>
<input type="password" id="token" name="token" autocomplete="current-password" autofocus>
<button type="submit">Sign in</button>
</form>"""
    )


async def login_css(_request: Request) -> Response:
    return Response(LOGIN_CSS, media_type="text/css")


async def login_form(request: Request) -> Response:
    token: str | None = request.app.state.token
    next_path = _safe_next(request.query_params.get("next"))
    if token is None:
        return RedirectResponse(next_path, status_code=303)
    return HTMLResponse(_form(next_path))


async def login(request: Request) -> Response:
    token: str | None = request.app.state.token
    form = await request.form()
    next_value = form.get("next")
    next_path = _safe_next(next_value if isinstance(next_value, str) else None)
    if token is None:
        return RedirectResponse(next_path, status_code=303)
    given = form.get("token")
    if not isinstance(given, str) or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        return HTMLResponse(_form(next_path, "That is not the token."), status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie(token, time.time()),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


ROUTES = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login.css", login_css, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
