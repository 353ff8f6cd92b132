"""``POST /api/v1/runs/{id}/approve|reject``: the second person's decision on a command
run that waits for approval (four-eyes).

Unlike running a command, deciding is not an operator's privilege: the caller (the name
the CLI sends on loopback, else ``api@<address>``) must be one of the command's
``approve.users`` and not the requester. 200 with the run; 403 for the requester or a
non-approver; 409 when the run does not (or no longer) wait for approval; 404 for an
unknown run. Every answer is audited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from jobdeck.api.errors import ApiError, Json, bad_request, json_fields, not_found
from jobdeck.api.params import actor, path_id
from jobdeck.api.views import run_json
from jobdeck.commands import Caller
from jobdeck.commands.approvals import ApprovalDenied
from jobdeck.store.records import Via
from jobdeck.workflow.refusals import ApprovalRefused

if TYPE_CHECKING:
    from jobdeck.app import Application

VIAS: tuple[Via, ...] = ("api", "cli")


def approval_routes(app: Application) -> list[BaseRoute]:
    approver = app.approver()

    def handler(approve: bool) -> Callable[[Request], Awaitable[Response]]:
        async def decide(request: Request) -> Response:
            run_id = path_id(request, "run_id", "run")
            body = await json_fields(request, "reason", "via")
            reason = body.get("reason")
            if reason is not None and not isinstance(reason, str):
                raise bad_request('reason must be a string: send {"reason": "why"}')
            via = body.get("via", "api")
            if via not in VIAS:
                raise bad_request(f"via must be one of {', '.join(VIAS)}")
            why = (reason.strip() or None) if reason is not None else None
            if not approve and why is None:
                raise bad_request('a rejection needs a reason: send {"reason": "why"}')
            caller = Caller(via, actor(request))
            try:
                run = await approver.decide(run_id, caller, approve=approve, why=why)
            except ApprovalDenied as denied:
                raise ApiError(403, "forbidden", str(denied)) from None
            except ApprovalRefused as refused:
                if refused.why == "unknown":
                    raise not_found(str(refused)) from None
                raise ApiError(409, "conflict", str(refused)) from None
            return Json(run_json(run))

        return decide

    return [
        Route("/runs/{run_id:int}/approve", handler(True), methods=["POST"]),
        Route("/runs/{run_id:int}/reject", handler(False), methods=["POST"]),
    ]
