"""The dashboard's buttons: run now, suspend, resume, cancel a run.

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
from jobdeck.store import Tx
from jobdeck.store.records import Run
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
        tx.record_audit(run_entry(now, actor, name, "ok", detail))

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
