"""Backfill a schedule over a range of past slots, and the slot of a re-run: the API's
side of :mod:`jobdeck.workflow.backfill`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobdeck.api.errors import ApiError, Json, bad_request, json_fields, not_found
from jobdeck.api.params import actor, application
from jobdeck.api.views import run_json
from jobdeck.catalog.model import Schedule
from jobdeck.catalog.names import unknown_schedule
from jobdeck.store import Tx
from jobdeck.store.records import AuditEntry, Via
from jobdeck.units import parse_instant
from jobdeck.workflow.backfill import Backfill, SlotError, backfill
from jobdeck.workflow.refusals import RunRefused

REQUEST_VIAS: tuple[Via, ...] = ("api", "cli")


def slot_instant(value: Any, spec: Schedule, field: str) -> datetime:
    """An ISO 8601 time of the request (``field``); without an offset it is read in the
    schedule's zone, as ``jobdeck next --from`` reads it."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{field} must be an ISO 8601 time such as 2026-12-01T09:00:00Z")
    try:
        return parse_instant(value.strip(), ZoneInfo(spec.timezone or "UTC"))
    except ValueError:
        raise bad_request(
            f"{field} {value!r} is not an ISO 8601 time such as 2026-12-01T09:00:00Z"
        ) from None


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false")
    return value


def backfill_entry(
    at: datetime, who: str, name: str, detail: dict[str, Any], *, via: Via, ok: bool
) -> AuditEntry:
    return AuditEntry(
        at=at,
        actor=who,
        via=via,
        action="backfill",
        target=f"schedule {name}",
        outcome="ok" if ok else "refused",
        detail=detail,
    )


async def backfill_schedule(request: Request) -> Response:
    """One run per slot of the schedule in ``[from, to]`` (trigger ``backfill``), oldest
    first; ``dry_run`` lists the slots and changes nothing."""
    app = application(request)
    name = request.path_params["name"]
    body = await json_fields(request, "from", "to", "dry_run", "rerun", "via")
    dry_run, rerun = _flag(body, "dry_run"), _flag(body, "rerun")
    via = body.get("via", "api")
    if via not in REQUEST_VIAS:
        raise bad_request(f"via must be one of {', '.join(REQUEST_VIAS)}")
    spec = app.driver.schedule(name)
    if spec is None:
        applied = await run_in_threadpool(app.store.revisions.latest_revision)
        catalog = None if applied is None else applied.catalog
        raise not_found(unknown_schedule(name, catalog, "the applied revision"))
    start = slot_instant(body.get("from"), spec, "from")
    end = slot_instant(body.get("to"), spec, "to")
    who = actor(request)

    def audited(tx: Tx, done: Backfill) -> None:
        entry = backfill_entry(app.clock.now(), who, name, done.audit_detail(), via=via, ok=True)
        tx.audit.record_audit(entry)

    def act() -> Backfill:
        try:
            return backfill(
                app.driver,
                name,
                start,
                end,
                rerun=rerun,
                dry_run=dry_run,
                requested_by=who,
                audit=audited,
            )
        except SlotError as exc:
            raise bad_request(str(exc)) from None
        except RunRefused as exc:
            detail = {"why": str(exc), "from": start.isoformat(), "to": end.isoformat()}
            with app.store.transaction() as tx:
                tx.audit.record_audit(
                    backfill_entry(app.clock.now(), who, name, detail, via=via, ok=False)
                )
            raise ApiError(409, "refused", str(exc)) from None

    done = await run_in_threadpool(act)
    status = 200 if dry_run or not done.runs else 201
    return Json(done.json(run_json), status_code=status)


ROUTES = [Route("/schedules/{name}/backfill", backfill_schedule, methods=["POST"])]
