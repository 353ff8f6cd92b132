"""Suspend and resume a schedule, worker or command: the emergency stop, audited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobdeck.api.errors import ApiError, Json, bad_request, json_body, json_fields, not_found
from jobdeck.api.params import actor, application
from jobdeck.app import Application
from jobdeck.catalog.plan import suspension_json
from jobdeck.control import ControlError
from jobdeck.units import parse_duration, parse_instant

# The URL's plural segment and the kind it names.
KINDS = {
    "schedules": "schedule",
    "workers": "worker",
    "commands": "command",
    "monitors": "monitor",
}


def parse_until(value: Any, now: datetime) -> datetime | None:
    """``until`` of a suspension: a duration from now (``2h``) or an ISO 8601 time."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_request('until must be a duration such as "2h" or an ISO 8601 time')
    try:
        return now + parse_duration(value)
    except ValueError:
        pass
    # Only a time can lie in the past; a duration always counts from now.
    try:
        moment = parse_instant(value)
    except ValueError:
        raise bad_request(
            f'until {value!r}: give a duration such as "2h" or an ISO 8601 time'
        ) from None
    if moment <= now:
        raise bad_request(f"until {value!r} is not in the future")
    return moment


def _known(app: Application, kind: str, name: str) -> bool:
    revision = app.store.revisions.latest_revision()
    if revision is None:
        return False
    return name in (revision.catalog.get(f"{kind}s") or {})


async def suspend(request: Request, kind: str) -> Response:
    app = application(request)
    name = request.path_params["name"]
    body = await json_fields(request, "reason", "until")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise bad_request('a suspension needs a reason: send {"reason": "why"}')
    until = parse_until(body.get("until"), app.clock.now())
    who = actor(request)

    def act() -> dict[str, Any]:
        if not _known(app, kind, name):
            raise not_found(f"no {kind} named {name!r} in the applied revision")
        try:
            done = app.control(who, "api").suspend(name, reason, until=until, kind=kind)
        except ControlError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return suspension_json(done)

    return Json(await run_in_threadpool(act), status_code=201)


async def resume(request: Request, kind: str) -> Response:
    app = application(request)
    name = request.path_params["name"]
    body = await json_body(request)  # may be empty; a malformed body is still an error
    catch_up = body.get("catch_up", False)
    if not isinstance(catch_up, bool):
        raise bad_request("catch_up must be true or false")
    if catch_up and kind != "schedule":
        raise bad_request(f"catch_up applies to schedules, not to a {kind}")
    who = actor(request)

    def act() -> dict[str, Any]:
        held = [
            s
            for s in app.store.suspensions.suspensions(app.clock.now())
            if s.kind == kind and s.name == name
        ]
        if not held:
            if _known(app, kind, name):
                raise ApiError(409, "not_suspended", f"{kind} {name} is not suspended")
            raise not_found(f"no {kind} named {name!r} is applied or suspended")
        try:
            done = app.control(who, "api").resume(name, kind=kind, catch_up=catch_up)
        except ControlError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return suspension_json(done)

    return Json(await run_in_threadpool(act))


Action = Callable[[Request, str], Awaitable[Response]]


def _for_kind(action: Action, kind: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await action(request, kind)

    endpoint.__name__ = f"{action.__name__}_{kind}"
    return endpoint


ROUTES = [
    Route(f"/{plural}/{{name}}/{action.__name__}", _for_kind(action, kind), methods=["POST"])
    for plural, kind in KINDS.items()
    for action in (suspend, resume)
]
