"""``POST /api/v1/commands/{name}/invocations``: a command run through the one
invocation path (the same checks, authorization and audit as chat).

Callers of the API are operators, like the terminal's: the catalog's ``allow`` governs
chat, and the API's own access control (loopback, or the bearer token) governs the API.
So the answers are 201 with the run, 400 for bad params (every problem, each naming its
param and rule), 403 for a disabled command, 409 for a suspended one, 404 for an unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from jobdeck.api.errors import Json, bad_request, json_fields
from jobdeck.api.params import actor
from jobdeck.api.views import run_json
from jobdeck.commands import Caller, Refused
from jobdeck.store.records import Via

if TYPE_CHECKING:
    from jobdeck.app import Application

# Which way a refusal answers. "forbidden" does not come from the API (operators pass
# authorization) but is mapped for completeness.
STATUS = {"unknown": 404, "invalid": 400, "forbidden": 403, "disabled": 403, "suspended": 409}
CODES = {
    "unknown": "not_found",
    "invalid": "invalid_params",
    "forbidden": "forbidden",
    "disabled": "disabled",
    "suspended": "suspended",
}
VIAS: tuple[Via, ...] = ("api", "cli")


def invocation_routes(app: Application) -> list[BaseRoute]:
    invoker = app.invoker()

    async def invoke(request: Request) -> Response:
        requested_at = app.clock.now()
        name = request.path_params["name"]
        body = await json_fields(request, "params", "via")
        params = body.get("params", {})
        if not isinstance(params, dict):
            raise bad_request('params must be an object of names and values, e.g. {"title": "x"}')
        via = body.get("via", "api")
        if via not in VIAS:
            raise bad_request(f"via must be one of {', '.join(VIAS)}")
        caller = Caller(via, actor(request))
        # The driver works in the event loop's thread (it arms timers there), so the
        # invocation is not moved to the thread pool.
        try:
            done = await invoker.invoke(name, params, caller, requested_at=requested_at)
        except Refused as refused:
            return refusal(refused)
        assert done.run is not None
        payload: dict[str, Any] = {
            **run_json(done.run),
            "argv": done.prepared.argv,
            "params": done.prepared.values,
            "audit_id": done.audit_id,
        }
        location = f"/api/v1/runs/{done.run.id}"
        return Json(payload, status_code=201, headers={"Location": location})

    return [Route("/commands/{name}/invocations", invoke, methods=["POST"])]


def refusal(refused: Refused) -> Response:
    error: dict[str, Any] = {"code": CODES[refused.kind], "message": refused.message}
    if refused.problems:
        error["problems"] = [
            {"param": p.param, "rule": p.rule, "message": p.message} for p in refused.problems
        ]
    if refused.audit_id is not None:
        error["audit_id"] = refused.audit_id
    return Json({"error": error}, status_code=STATUS[refused.kind])
