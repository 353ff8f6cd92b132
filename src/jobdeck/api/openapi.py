"""The OpenAPI 3.1 document of the HTTP API, kept by hand next to the routes.

A test checks it against the OpenAPI schema and checks that every route the service
registers is described here, and nothing else, so the two cannot drift apart.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from jobdeck.api.openapi_schemas import KINDS, STATUSES, TRIGGERS, ref, schemas

JSON = "application/json"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _request_body(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref("Error")}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


_NAME = _path("name", {"type": "string"}, "The name of the item in the catalog.")
_RUN_ID = _path("run_id", {"type": "integer", "minimum": 1}, "A run's id.")
_PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size."),
    _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "Items to skip."),
]


def _listing(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": ref(item)}},
    }


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "limit", "offset", "next"],
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next": {
                "type": ["string", "null"],
                "description": "The next page, with the same filters; null on the last.",
            },
        },
    }


def _decision(summary: str, done: str) -> dict[str, Any]:
    """An approve or reject route of a run."""
    return {
        "post": {
            "summary": summary,
            "parameters": [_RUN_ID],
            "requestBody": _request_body(ref("ApprovalRequest"), required=False),
            "responses": {
                "200": _json(ref("Run"), done),
                "400": _error("A bad body (a rejection without a reason)."),
                "403": _error("The caller asked for the run, or is not one of its approvers."),
                "404": _error("No such run."),
                "409": _error("The run does not wait for approval (any more); nothing changed."),
            },
        }
    }


def _get(
    summary: str,
    ok: dict[str, Any],
    *,
    parameters: list[Any] | None = None,
    not_found: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok, "400": _error("A parameter is invalid.")}
    if not_found:
        responses["404"] = _error("Not found.")
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _suspend_paths(plural: str, kind: str) -> dict[str, Any]:
    return {
        f"/api/v1/{plural}/{{name}}/suspend": {
            "post": {
                "summary": f"Suspend a {kind}: an emergency stop that no apply clears.",
                "parameters": [_NAME],
                "requestBody": _request_body(ref("SuspendRequest"), required=True),
                "responses": {
                    "201": _json(ref("Suspension"), "Suspended."),
                    "400": _error("No reason, or a bad until."),
                    "404": _error(f"No such {kind}."),
                    "409": _error("Already suspended."),
                },
            }
        },
        f"/api/v1/{plural}/{{name}}/resume": {
            "post": {
                "summary": f"End the suspension of a {kind}.",
                "parameters": [_NAME],
                "requestBody": _request_body(ref("ResumeRequest"), required=False),
                "responses": {
                    "200": _json(ref("Suspension"), "The suspension, now ended."),
                    "400": _error("A bad catch_up."),
                    "404": _error(f"No such {kind}."),
                    "409": _error("Not suspended."),
                },
            }
        },
    }


def _version() -> str:
    try:
        return version("jobdeck")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0"


def openapi_document() -> dict[str, Any]:
    runs_filters = [
        _query("job", {"type": "string"}, "Only runs of this job."),
        _query("kind", {"enum": KINDS}, "Only runs of this kind."),
        _query("status", {"enum": STATUSES}, "Only runs in this status."),
        _query("trigger", {"enum": TRIGGERS}, "Only runs started this way."),
        _query("since", {"type": "string", "format": "date-time"}, "Created at or after."),
        _query("until", {"type": "string", "format": "date-time"}, "Created before."),
        *_PAGE,
    ]
    paths: dict[str, Any] = {
        "/healthz": _get(
            "Whether the server is up (never needs a token).", _json({"type": "object"}, "Up.")
        ),
        "/metrics": _get(
            "Prometheus metrics.",
            {
                "description": "The text exposition format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
        ),
        "/openapi.json": _get("This document.", _json({"type": "object"}, "OpenAPI 3.1.")),
        "/api/v1/schedules": _get(
            "Applied schedules with next fire, suspension, last run.",
            _json(_listing("Schedule"), "Schedules."),
        ),
        "/api/v1/schedules/{name}": _get(
            "One schedule: definition, upcoming fires, last run.",
            _json(ref("ScheduleDetail"), "The schedule."),
            parameters=[
                _NAME,
                _query(
                    "upcoming", {"type": "integer", "minimum": 1, "maximum": 100}, "Fires to list."
                ),
            ],
            not_found=True,
        ),
        "/api/v1/schedules/{name}/runs": {
            "post": {
                "summary": "Start a run now (trigger manual), through the schedule's policies.",
                "parameters": [_NAME],
                "requestBody": _request_body(ref("RunRequest"), required=False),
                "responses": {
                    "201": _json(
                        ref("Run"), "The run (pending, or skipped by its overlap policy)."
                    ),
                    "400": _error("A bad body."),
                    "404": _error("No such schedule."),
                    "409": _error("Refused: the schedule is suspended or disabled."),
                },
            }
        },
        "/api/v1/schedules/{name}/backfill": {
            "post": {
                "summary": "One run per past slot in [from, to] (trigger backfill), oldest "
                "first, queued behind each other; slots with a run are kept unless rerun; "
                "at most 1,000 slots. Audited.",
                "parameters": [_NAME],
                "requestBody": _request_body(ref("BackfillRequest"), required=True),
                "responses": {
                    "200": _json(ref("Backfill"), "A dry run, or nothing to run: the slots."),
                    "201": _json(ref("Backfill"), "The slots and the runs recorded."),
                    "400": _error("A bad body or range (backwards, future, over 1,000 slots)."),
                    "404": _error("No such schedule."),
                    "409": _error("Refused: the schedule is suspended or disabled."),
                },
            }
        },
        "/api/v1/commands/{name}/invocations": {
            "post": {
                "summary": "Invoke a command with params, as chat would: validated and audited.",
                "parameters": [_NAME],
                "requestBody": _request_body(ref("InvocationRequest"), required=False),
                "responses": {
                    "201": _json(ref("Run"), "The command's run, with argv and params."),
                    "400": _error("Bad params: every problem, each naming its param and rule."),
                    "403": _error("The command is disabled."),
                    "404": _error("No such command."),
                    "409": _error("The command is suspended."),
                },
            }
        },
        "/api/v1/workers": _get(
            "Applied workers: desired, running, restarts.", _json(_listing("Worker"), "Workers.")
        ),
        "/api/v1/nodes": _get(
            "The engines of the store's cluster: role, heartbeat, runs, replicas.",
            _json(_listing("Node"), "Nodes."),
        ),
        "/api/v1/commands": _get(
            "Applied commands and their parameters.", _json(_listing("Command"), "Commands.")
        ),
        "/api/v1/queues": _get("Declared queues.", _json(_listing("Queue"), "Queues.")),
        "/api/v1/monitors": _get(
            "Applied monitors: their slots, grace, next slot and newest run (a ping or a "
            "missed slot). Their ping URLs are not listed: `jobdeck monitors` derives them.",
            _json(_listing("Monitor"), "Monitors."),
        ),
        "/api/v1/pools": _get(
            "Pools with memory used and limit.", _json(_listing("Pool"), "Pools.")
        ),
        "/api/v1/runs": _get(
            "Run history, newest first.",
            _json(_page("Run"), "A page of runs."),
            parameters=runs_filters,
        ),
        "/api/v1/runs/{run_id}": _get(
            "One run with its events and linked attempts.",
            _json(ref("RunDetail"), "The run."),
            parameters=[_RUN_ID],
            not_found=True,
        ),
        "/api/v1/runs/{run_id}/cancel": {
            "post": {
                "summary": "Cancel a run that has not ended: a pending run never starts; a "
                "running one gets SIGTERM for its whole process tree, SIGKILL after its "
                "kill_grace. Audited.",
                "parameters": [_RUN_ID],
                "requestBody": _request_body(ref("CancelRequest"), required=False),
                "responses": {
                    "200": _json(ref("Run"), "The run, cancelled (it was pending)."),
                    "202": _json(ref("Run"), "The run, being stopped (it was running)."),
                    "400": _error("A bad body."),
                    "404": _error("No such run."),
                    "409": _error("Refused: the run has already ended; nothing changed."),
                },
            }
        },
        "/api/v1/runs/{run_id}/approve": _decision(
            "Approve a command run that waits for approval (four-eyes): it then starts as "
            "any run does (pool room). Only one of the command's approvers, never the "
            "requester. Audited.",
            "The run, approved (pending, reason approved, or already running).",
        ),
        "/api/v1/runs/{run_id}/reject": _decision(
            "Reject a command run that waits for approval: it ends cancelled (reason "
            "rejected) with who and why, and never starts. Only one of the command's "
            "approvers, never the requester. Audited.",
            "The run, cancelled.",
        ),
        "/api/v1/runs/{run_id}/log": _get(
            "A run's combined output from a byte offset. Follow it by asking again from "
            "X-Jobdeck-Log-Offset until X-Jobdeck-Run-Status is neither pending nor running "
            "and the offset reaches X-Jobdeck-Log-Size.",
            {
                "description": "The bytes from the offset (at most 1 MiB).",
                "headers": {
                    "X-Jobdeck-Run-Status": {"schema": {"enum": STATUSES}},
                    "X-Jobdeck-Log-Offset": {"schema": {"type": "integer"}},
                    "X-Jobdeck-Log-Size": {"schema": {"type": "integer"}},
                },
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            parameters=[
                _RUN_ID,
                _query("offset", {"type": "integer", "minimum": 0}, "Byte offset."),
            ],
            not_found=True,
        ),
        "/api/v1/audit": _get(
            "Who did what, newest first.",
            _json(_page("AuditEntry"), "A page of entries."),
            parameters=_PAGE,
        ),
        "/api/v1/notices": _get(
            "Every notice decided, sent or held back by an alert policy, newest first.",
            _json(_page("Notice"), "A page of notices."),
            parameters=[
                _query("job", {"type": "string"}, "Only notices about this job."),
                _query("kind", {"enum": KINDS}, "Only notices about this kind of job."),
                *_PAGE,
            ],
        ),
        "/api/v1/revisions": _get(
            "Applied revisions, newest first.",
            _json(_listing("Revision"), "Revisions."),
            parameters=[_PAGE[0]],
        ),
        "/api/v1/revisions/{number}": _get(
            "One revision with its file's text.",
            _json(ref("Revision"), "The revision."),
            parameters=[_path("number", {"type": "integer"}, "The revision number.")],
            not_found=True,
        ),
    }
    for plural, kind in (
        ("schedules", "schedule"),
        ("workers", "worker"),
        ("commands", "command"),
        ("monitors", "monitor"),
    ):
        paths.update(_suspend_paths(plural, kind))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobdeck",
            "version": _version(),
            "description": "The HTTP API of a jobdeck server. Errors are "
            '{"error": {"code", "message"}}. On a non-loopback address every request but '
            "/healthz needs Authorization: Bearer $JOBDECK_API_TOKEN.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"token": []}],
    }
