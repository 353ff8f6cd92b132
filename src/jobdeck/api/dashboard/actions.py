"""The dashboard's buttons: run now, suspend, resume, cancel a run, redrive a queue's
dead letters, run a command.

They go through the same paths as the HTTP API (the run driver and the control plane)
and are audited the same way, as ``via: api`` by whoever the request belongs to.
"""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request

from jobdeck.api.errors import ApiError
from jobdeck.api.params import actor
from jobdeck.api.runs import cancel_as, record_refused, run_entry
from jobdeck.app import Application
from jobdeck.control import ControlError
from jobdeck.queues.admin import Redrive
from jobdeck.store import Tx
from jobdeck.store.records import AuditEntry, Run
from jobdeck.units import parse_until as until_moment
from jobdeck.workflow.driver import RunRefused


class ActionRefused(Exception):
    """The action was not done; the message says why (shown on the page)."""


def actor_of(request: Request) -> str:
    """Who clicked, named as the JSON API names its callers (a session of the login
    form carries the token's authority, not a person's name)."""
    return actor(request)


def run_now(app: Application, name: str, actor: str) -> Run:
    now = app.clock.now()

    def audited(tx: Tx, run: Run) -> None:
        detail = {"run_id": run.id, "status": run.status, "ignore_overlap": False}
        tx.audit.record_audit(run_entry(now, actor, name, "ok", detail))

    try:
        # The run and its audit entry in one transaction.
        return app.driver.run_now(name, trigger="manual", requested_by=actor, audit=audited)
    except RunRefused as exc:
        record_refused(app.store, now, actor, name, str(exc))
        raise ActionRefused(str(exc)) from None


def cancel(app: Application, run: Run, actor: str, why: str | None) -> None:
    """Cancel the run, as ``POST /api/v1/runs/{id}/cancel`` does (audited the same)."""
    try:
        cancel_as(app, run, actor, why)
    except ApiError as exc:
        raise ActionRefused(exc.message) from None


def suspend(app: Application, name: str, actor: str, reason: str, until_text: str) -> None:
    now = app.clock.now()
    until = parse_until(until_text, now)
    try:
        app.control(actor, "api").suspend(name, reason, until=until, kind="schedule")
    except ControlError as exc:
        raise ActionRefused(str(exc)) from None


def resume(app: Application, name: str, actor: str) -> None:
    try:
        app.control(actor, "api").resume(name, kind="schedule")
    except ControlError as exc:
        raise ActionRefused(str(exc)) from None


def parse_until(text: str, now: datetime) -> datetime | None:
    """``2h`` (from now) or an ISO time; empty means until someone resumes."""
    value = text.strip()
    if not value:
        return None
    try:
        return until_moment(value, now)
    except ValueError:
        raise ActionRefused(
            f"until {value!r}: give a duration such as 2h or 30m, an ISO time such as "
            "2026-12-01T18:00Z, or leave it empty to suspend until resumed"
        ) from None


def redrive(app: Application, name: str, actor: str) -> Redrive:
    """The queue's dead letters back to where they came from, audited as the CLI's is."""
    from jobdeck.queues import admin

    now = app.clock.now()
    catalog = app.catalog
    if catalog is None or name not in catalog.queues:
        raise ActionRefused(f"there is no queue named {name!r} in the applied revision")
    with app.store.transaction() as tx:
        try:
            wire = admin.resolve(tx, name, catalog)
            done = admin.redrive(tx, wire, int(now.timestamp() * 1000))
        except admin.QueueAdminError as exc:
            raise ActionRefused(str(exc)) from None
        tx.audit.record_audit(
            AuditEntry(
                at=now,
                actor=actor,
                via="api",
                action="queue redrive",
                target=f"queue {wire}",
                detail={"moved": done.moved, "stranded": done.stranded},
            )
        )
    return done


async def invoke(app: Application, name: str, params: dict[str, str], actor: str) -> Run:
    """A command run from its page, through the same checks and audit as the API's."""
    from jobdeck.commands.authorize import Caller
    from jobdeck.commands.decide import Refused

    given = {key: value for key, value in params.items() if value != ""}
    try:
        done = await app.invoker().invoke(
            name, given, Caller("api", actor), requested_at=app.clock.now()
        )
    except Refused as refused:
        problems = "; ".join(f"{p.param}: {p.message}" for p in refused.problems or [])
        raise ActionRefused(refused.message + (f" ({problems})" if problems else "")) from None
    assert done.run is not None
    return done.run
