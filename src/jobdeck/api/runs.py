"""Runs: the history with filters and pages, one run with its events and attempts, its
log (followable by byte offset), and starting a run of a schedule now."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobdeck.api.backfill import slot_instant
from jobdeck.api.errors import ApiError, Json, bad_request, json_fields, not_found
from jobdeck.api.params import (
    actor,
    application,
    choice,
    integer,
    moment,
    page,
    paged,
    path_id,
)
from jobdeck.api.remote_log import Elsewhere, elsewhere, fetch, forwarded
from jobdeck.api.views import run_concurrency, run_detail_json, run_json
from jobdeck.catalog.names import unknown_schedule
from jobdeck.store import Store, Tx
from jobdeck.store.records import AuditEntry, Run, RunKind, RunStatus, Trigger, Via
from jobdeck.workflow.backfill import SlotError, check_slot
from jobdeck.workflow.driver import CancelRefused, RunRefused

# A log is sent in pieces of at most this many bytes; a reader asks again from the
# offset it got back until it reaches the size.
LOG_CHUNK = 1 << 20
MAX_ATTEMPTS = 100

# The headers of a log response: enough to follow a run without a second request.
STATUS_HEADER = "X-Jobdeck-Run-Status"
OFFSET_HEADER = "X-Jobdeck-Log-Offset"
SIZE_HEADER = "X-Jobdeck-Log-Size"

MANUAL_TRIGGERS = ("manual", "api")
# Which way a run or cancel request came, for its audit entry (the CLI says so; the
# dashboard is "api").
REQUEST_VIAS: tuple[Via, ...] = ("api", "cli")


async def list_runs(request: Request) -> Response:
    """Runs, newest first, filtered by job, kind, status, trigger and creation time."""
    app = application(request)
    limit, offset = page(request)
    filters: dict[str, Any] = {
        "job": request.query_params.get("job") or None,
        "kind": choice(request, "kind", get_args(RunKind)),
        "status": choice(request, "status", get_args(RunStatus)),
        "trigger": choice(request, "trigger", get_args(Trigger)),
        "since": moment(request, "since"),
        "until": moment(request, "until"),
    }
    found = await run_in_threadpool(
        lambda: app.store.runs.runs(**filters, limit=limit + 1, offset=offset)
    )
    return Json(paged(request, [run_json(r) for r in found], limit, offset))


def attempts_of(store: Store, run: Run) -> list[Run]:
    """Every attempt of the same fire or request, first to last: the earlier ones by
    ``retry_of``, the later ones that name this run (or its successors) as theirs."""
    earlier: list[Run] = []
    current = run
    while current.retry_of is not None and len(earlier) < MAX_ATTEMPTS:
        previous = store.runs.run(current.retry_of)
        if previous is None:
            break
        earlier.append(previous)
        current = previous
    later: list[Run] = []
    candidates = store.runs.runs(
        job=run.job, trigger="retry", since=run.created_at, limit=MAX_ATTEMPTS * 10
    )
    last = run.id
    for candidate in sorted(candidates, key=lambda r: r.id):
        if candidate.retry_of == last:
            later.append(candidate)
            last = candidate.id
    return [*reversed(earlier), run, *later]


def _run_id(request: Request) -> int:
    return path_id(request, "run_id", "run")


async def get_run(request: Request) -> Response:
    app = application(request)
    run_id = _run_id(request)

    def read() -> dict[str, Any] | None:
        run = app.store.runs.run(run_id)
        if run is None:
            return None
        shown = run_detail_json(
            run,
            app.store.runs.events(run_id),
            attempts_of(app.store, run),
            app.store.notices.notices(run_id=run_id, limit=100),
        )
        key = run_concurrency(app.store.runs, run)
        if key is not None:
            shown["concurrency"] = key
        return shown

    shown = await run_in_threadpool(read)
    if shown is None:
        raise not_found(f"no run with id {run_id}")
    return Json(shown)


def read_log(path: Path, offset: int, limit: int = LOG_CHUNK) -> tuple[bytes, int, int]:
    """Bytes from ``offset``, the offset after them and the file's size.

    A log that was cut back under its size cap can be shorter than a reader's offset:
    the reader then continues from the new end.
    """
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if offset > size:
                return b"", size, size
            file.seek(offset)
            data = file.read(limit)
    except FileNotFoundError:
        return b"", 0, 0
    return data, offset + len(data), size


async def run_log(request: Request) -> Response:
    """The run's combined output from ``?offset=`` on; headers carry the run's status,
    the offset to ask from next, and the log's size. A follower stops once the status
    is no longer pending or running and its offset has reached the size."""
    app = application(request)
    run_id = _run_id(request)
    offset = integer(request, "offset", 0, low=0, high=2**62)
    run = await run_in_threadpool(app.store.runs.run, run_id)
    if run is None:
        raise not_found(f"no run with id {run_id}")
    path = app.log_path(run_id)
    if not forwarded(request.headers):
        where = await run_in_threadpool(elsewhere, app.store, run, app.host, path.parent.exists())
        if where is not None:
            return await _forward_log(where, run, offset, request)
    # The status is read before the bytes: when it says the run ended, the bytes read
    # after it are all there will be.
    data, following, size = await run_in_threadpool(read_log, path, offset)
    return Response(
        data,
        media_type="text/plain; charset=utf-8",
        headers={
            STATUS_HEADER: run.status,
            OFFSET_HEADER: str(following),
            SIZE_HEADER: str(size),
            "Cache-Control": "no-store",
        },
    )


async def _forward_log(where: Elsewhere, run: Run, offset: int, request: Request) -> Response:
    """The log of a run that another node executed, as that node answers for it."""
    if where.url is None:
        raise ApiError(
            502,
            "log_elsewhere",
            f"run {run.id} ran on node {where.node}, which advertises no URL "
            "(start it with `jobdeck serve --advertise URL`); read its log there",
        )
    try:
        answer = await fetch(
            where, f"/api/v1/runs/{run.id}/log", {"offset": str(offset)}, request.headers
        )
    except httpx.HTTPError as exc:
        raise ApiError(
            502,
            "log_elsewhere",
            f"run {run.id} ran on node {where.node}, which does not answer at {where.url} "
            f"({exc or type(exc).__name__})",
        ) from None
    kept = (STATUS_HEADER, OFFSET_HEADER, SIZE_HEADER, "content-type", "cache-control")
    headers = {k: v for k, v in answer.headers.items() if k.lower() in {h.lower() for h in kept}}
    return Response(answer.content, status_code=answer.status_code, headers=headers)


async def start_run(request: Request) -> Response:
    """Start a run of a schedule now, through the same policies as a timed fire."""
    app = application(request)
    name = request.path_params["name"]
    body = await json_fields(request, "ignore_overlap", "trigger", "via", "slot")
    ignore_overlap = body.get("ignore_overlap", False)
    if not isinstance(ignore_overlap, bool):
        raise bad_request("ignore_overlap must be true or false")
    via = body.get("via", "api")
    if via not in REQUEST_VIAS:
        raise bad_request(f"via must be one of {', '.join(REQUEST_VIAS)}")
    trigger = body.get("trigger", "manual")
    if trigger not in MANUAL_TRIGGERS:
        raise bad_request(f"trigger must be one of {', '.join(MANUAL_TRIGGERS)}")
    if app.driver.schedule(name) is None:
        applied = await run_in_threadpool(app.store.revisions.latest_revision)
        catalog = None if applied is None else applied.catalog
        raise not_found(unknown_schedule(name, catalog, "the applied revision"))
    spec = app.driver.schedule(name)
    slot = None
    if body.get("slot") is not None:
        assert spec is not None
        slot = slot_instant(body["slot"], spec, "slot")
        try:
            check_slot(spec, slot, app.clock.now())
        except SlotError as exc:
            raise bad_request(str(exc)) from None
    who = actor(request)

    def audited(tx: Tx, run: Run) -> None:
        detail: dict[str, Any] = {
            "run_id": run.id,
            "status": run.status,
            "ignore_overlap": ignore_overlap,
        }
        if slot is not None:
            detail["slot"] = slot.isoformat()
        tx.audit.record_audit(run_entry(app.clock.now(), who, name, "ok", detail, via=via))

    # In the event loop's thread, as a command's invocation is: the driver records the
    # run and its audit entry in one short transaction and queues the run in the same
    # thread. A worker thread instead cost each request two hand-offs between threads
    # and a wait for the store's write lock, more than the transaction itself.
    try:
        run = app.driver.run_now(
            name,
            trigger=trigger,
            requested_by=who,
            ignore_overlap=ignore_overlap,
            slot=slot,
            audit=audited,
        )
    except RunRefused as exc:
        record_refused(app.store, app.clock.now(), who, name, str(exc), via=via)
        raise ApiError(409, "refused", str(exc)) from None
    return Json(run_json(run), status_code=201, headers={"Location": f"/api/v1/runs/{run.id}"})


async def cancel_run(request: Request) -> Response:
    """Cancel a run that has not ended: a pending one never starts, a running one is
    stopped (SIGTERM to its whole tree, SIGKILL after its kill_grace). 202 while it is
    being stopped, 200 when it is cancelled already; 409 when it had ended."""
    app = application(request)
    run_id = _run_id(request)
    body = await json_fields(request, "reason", "via")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise bad_request('reason must be a string: send {"reason": "why"}')
    via = body.get("via", "api")
    if via not in REQUEST_VIAS:
        raise bad_request(f"via must be one of {', '.join(REQUEST_VIAS)}")
    why = reason.strip() or None if reason is not None else None
    run = await run_in_threadpool(app.store.runs.run, run_id)
    if run is None:
        raise not_found(f"no run with id {run_id}")
    return Json(*cancel_as(app, run, actor(request), why, via))


def cancel_as(
    app: Any, run: Run, who: str, why: str | None, via: Via = "api"
) -> tuple[dict[str, Any], int]:
    """Cancel ``run`` for ``who`` (in the event loop's thread), audited either way as
    coming ``via`` the API or the CLI; the run's JSON and the HTTP status. Raises a 409
    :class:`ApiError` when refused."""
    at = app.clock.now()

    def audited(tx: Tx, found: Run) -> None:
        tx.audit.record_audit(cancel_entry(at, who, run, "ok", why, via=via))

    try:
        done = app.driver.cancel(run.id, by=who, why=why, audit=audited)
    except CancelRefused as exc:
        with app.store.transaction() as tx:
            tx.audit.record_audit(cancel_entry(at, who, run, "refused", why, str(exc), via=via))
        raise ApiError(409, "conflict", str(exc)) from None
    except KeyError:
        raise not_found(f"no run with id {run.id}") from None
    return run_json(done), 200 if done.status == "cancelled" else 202


def cancel_entry(
    at: Any,
    who: str,
    run: Run,
    outcome: str,
    why: str | None,
    refused: str | None = None,
    *,
    via: Via = "api",
) -> AuditEntry:
    detail: dict[str, Any] = {"run_id": run.id, "reason": why}
    if refused:
        detail["why"] = refused
    return AuditEntry(
        at=at,
        actor=who,
        via=via,
        action="cancel",
        target=f"{run.kind} {run.job}",
        outcome="ok" if outcome == "ok" else "refused",
        detail=detail,
    )


def run_entry(
    at: Any, who: str, name: str, outcome: str, detail: dict[str, Any], *, via: Via = "api"
) -> AuditEntry:
    """The audit entry of a request to run schedule ``name`` (the API's, the CLI's or the
    dashboard's)."""
    return AuditEntry(
        at=at,
        actor=who,
        via=via,
        action="run",
        target=f"schedule {name}",
        outcome="ok" if outcome == "ok" else "refused",
        detail=detail,
    )


def record_refused(
    store: Store, at: Any, who: str, name: str, why: str, *, via: Via = "api"
) -> None:
    """A refused request, recorded on its own (the refusal rolled the run back)."""
    with store.transaction() as tx:
        tx.audit.record_audit(run_entry(at, who, name, "refused", {"why": why}, via=via))


ROUTES = [
    Route("/runs", list_runs, methods=["GET"]),
    Route("/runs/{run_id:int}", get_run, methods=["GET"]),
    Route("/runs/{run_id:int}/log", run_log, methods=["GET"]),
    Route("/runs/{run_id:int}/cancel", cancel_run, methods=["POST"]),
    Route("/schedules/{name}/runs", start_run, methods=["POST"]),
]
