"""Pings of monitors: ``GET|POST /ping/{monitor}/{token}[/start|/success|/fail]``.

Each ping is recorded as a run of kind ``monitor`` (see :mod:`jobdeck.workflow.monitors`);
``?exit=N`` gives the exit code, and a body of up to 10 KiB is kept as the run's log. The
token is the monitor's own (:mod:`jobdeck.api.ping_tokens`), not the API's: these routes
are open to hosts that have no API token. An unknown monitor, a wrong token, or a server
without a ping key all get the same 404, so that nobody learns which monitors exist;
each client address that sends wrong tokens, and each monitor, are limited in how often
they may ping.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from jobdeck.api.errors import Json, error_response
from jobdeck.api.params import application
from jobdeck.api.ping_tokens import KEY_HINT, ping_keys, token_valid
from jobdeck.workflow.monitor_slots import Action
from jobdeck.workflow.monitors import MAX_BODY

if TYPE_CHECKING:
    from jobdeck.app import Application

log = logging.getLogger("jobdeck.api")

PINGS_PER_MINUTE = 60  # per monitor
REFUSALS_PER_MINUTE = 20  # wrong tokens per client address, then 429 for the minute
ACTIONS: dict[str, Action] = {"start": "start", "success": "success", "fail": "fail"}
_NOT_FOUND = "no such monitor, or the token is wrong"


class Window:
    """At most ``limit`` events per key in any minute (a sliding window)."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def full(self, key: str) -> bool:
        events = self._events.get(key)
        if events is None:
            return False
        now = self.clock()
        while events and events[0] <= now - 60:
            events.popleft()
        if not events:
            del self._events[key]
            return False
        return len(events) >= self.limit

    def add(self, key: str) -> None:
        if len(self._events) > 10_000:  # many addresses: forget the quiet ones
            for quiet in [k for k, v in self._events.items() if len(v) < self.limit]:
                del self._events[quiet]
        self._events.setdefault(key, deque()).append(self.clock())


def _too_many(what: str) -> Response:
    return error_response(
        429,
        "too_many_requests",
        f"too many {what} in the last minute; wait and retry",
        **{"Retry-After": "60"},
    )


def _exit_code(request: Request) -> int | str | None:
    text = request.query_params.get("exit")
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        return f"?exit={text!r} is not a whole number; give the job's exit status, e.g. ?exit=0"
    if not -(2**31) <= value < 2**31:
        return f"?exit={text!r} is out of range; give the job's exit status, e.g. ?exit=0"
    return value


async def _body(request: Request) -> bytes:
    """The body, kept to MAX_BODY bytes and one more (to tell that it was longer); the
    rest is read and dropped."""
    kept = bytearray()
    async for chunk in request.stream():
        if len(kept) <= MAX_BODY:
            kept += chunk[: MAX_BODY + 1 - len(kept)]
    return bytes(kept)


async def ping(request: Request) -> Response:
    app: Application = application(request)
    state = request.app.state
    name = request.path_params["monitor"]
    token = request.path_params["token"]
    action = ACTIONS.get(request.path_params.get("action", "success"))
    client = request.client.host if request.client else "unknown"
    refusals: Window = state.ping_refusals
    if refusals.full(client):
        return _too_many("refused pings from this address")
    keys = ping_keys(app.options.environ)
    if not keys and not state.ping_key_warned:
        state.ping_key_warned = True
        log.warning("a ping was refused: the server has no ping key; %s", KEY_HINT)
    if action is None or not token_valid(keys, name, token):
        refusals.add(client)
        return error_response(404, "not_found", _NOT_FOUND)
    code = _exit_code(request)
    if isinstance(code, str):
        return error_response(400, "bad_request", code)
    pings: Window = state.ping_counts
    if pings.full(name):
        return _too_many("pings of this monitor")
    pings.add(name)
    body = await _body(request)
    watch = app.driver.monitors
    run = await run_in_threadpool(watch.ping, name, action, code, body, app.clock.now())
    if run is None:  # a valid token of a monitor that is not (or no longer) applied
        refusals.add(client)
        return error_response(404, "not_found", _NOT_FOUND)
    return Json({"ok": True, "run_id": run.id, "status": run.status})


ROUTES: list[BaseRoute] = [
    Route("/ping/{monitor}/{token}", ping, methods=["GET", "POST"]),
    Route("/ping/{monitor}/{token}/{action}", ping, methods=["GET", "POST"]),
]


def install(state: State) -> None:
    """The ping routes' state on the ASGI application's ``state``."""
    state.ping_refusals = Window(REFUSALS_PER_MINUTE)
    state.ping_counts = Window(PINGS_PER_MINUTE)
    state.ping_key_warned = False
