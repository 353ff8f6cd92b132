"""What the applied revision declares, with its live state: schedules, workers, queues,
commands, pools; and the records of the control plane: revisions and the audit log."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobdeck.api.errors import Json, not_found
from jobdeck.api.params import application, choice, integer, page, paged, path_id
from jobdeck.api.views import audit_json, iso, notice_json, revision_json, run_json
from jobdeck.app import Application
from jobdeck.cadence import jitter_delay, next_fires
from jobdeck.catalog.model import cadence_for
from jobdeck.cluster.view import read_nodes
from jobdeck.status import collect_status

UPCOMING = 5


def _status(app: Application) -> dict[str, Any]:
    now = app.clock.now()
    return collect_status(
        app.store.revisions.latest_revision(), app.store.suspensions.suspensions(now), now
    )


def _with_last_runs(app: Application, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = app.store.runs.last_runs([item["name"] for item in items])
    return [
        {**item, "last_run": run_json(last[item["name"]]) if item["name"] in last else None}
        for item in items
    ]


async def schedules(request: Request) -> Response:
    app = application(request)

    def read() -> list[dict[str, Any]]:
        return _with_last_runs(app, _status(app)["schedules"])

    return Json({"items": await run_in_threadpool(read)})


async def schedule(request: Request) -> Response:
    """One schedule: its effective definition, the next fires and the last run."""
    app = application(request)
    name = request.path_params["name"]
    count = integer(request, "upcoming", UPCOMING, low=1, high=100)

    def read() -> dict[str, Any] | None:
        status = _status(app)
        found = [s for s in status["schedules"] if s["name"] == name]
        if not found:
            return None
        revision = app.store.revisions.latest_revision()
        assert revision is not None  # a schedule was found in it
        spec = app.catalog.schedules.get(name) if app.catalog else None
        definition = revision.catalog["schedules"][name]
        upcoming: list[dict[str, Any]] = []
        if spec is not None and spec.enabled:
            zone = ZoneInfo(spec.timezone or "UTC")
            for fire in next_fires(cadence_for(spec), app.clock.now(), count):
                shown_fire: dict[str, Any] = {
                    "at": iso(fire),
                    "local": fire.astimezone(zone).isoformat(),
                }
                if spec.jitter:
                    delay = jitter_delay(name, fire, spec.jitter)
                    shown_fire["jitter_ms"] = round(delay.total_seconds() * 1000)
                    shown_fire["starts_at"] = iso(fire + delay)
                upcoming.append(shown_fire)
        return {
            **_with_last_runs(app, found)[0],
            "definition": definition,
            "upcoming": upcoming,
        }

    shown = await run_in_threadpool(read)
    if shown is None:
        raise not_found(f"no schedule named {name!r} in the applied revision")
    return Json(shown)


async def workers(request: Request) -> Response:
    """Declared workers with what the supervisor sees now: running replicas, restarts
    (exits it restarted, not deliberate stops), the last exit and the scaling decision."""
    app = application(request)

    def read() -> list[dict[str, Any]]:
        declared = _status(app)["workers"]
        seen = app.supervisor.overview()
        return [
            {
                **w,
                "running": seen.get(w["name"], {}).get("running", 0),
                "restarts": seen.get(w["name"], {}).get("restarts", 0),
            }
            for w in declared
        ]

    return Json({"items": await run_in_threadpool(read)})


async def commands(request: Request) -> Response:
    app = application(request)

    def read() -> list[dict[str, Any]]:
        status = _status(app)
        catalog = app.catalog
        items = []
        for item in status["commands"]:
            spec = catalog.commands.get(item["name"]) if catalog else None
            params = {k: v.model_dump(mode="json") for k, v in spec.params.items()} if spec else {}
            items.append({**item, "params": params})
        return _with_last_runs(app, items)

    return Json({"items": await run_in_threadpool(read)})


async def queues(request: Request) -> Response:
    """The queues the applied revision declares (their live depth is the queues' own)."""
    app = application(request)
    status = await run_in_threadpool(_status, app)
    return Json({"items": status["queues"]})


async def pools(request: Request) -> Response:
    app = application(request)

    def read() -> list[dict[str, Any]]:
        declared = {p["name"]: p for p in _status(app)["pools"]}
        usage = {u.pool: u for u in app.executor.pools.usage()}
        items = []
        for name in sorted(set(declared) | set(usage)):
            used = usage.get(name)
            items.append(
                {
                    **declared.get(name, {"name": name}),
                    "memory_used": used.memory_used if used else None,
                    "memory_limit": used.memory_limit if used else None,
                }
            )
        return items

    items = await run_in_threadpool(read)
    return Json({"isolation": app.executor.pools.isolation, "items": items})


async def revisions(request: Request) -> Response:
    app = application(request)
    limit = integer(request, "limit", 50, low=1, high=500)
    found = await run_in_threadpool(app.store.revisions.revisions, limit)
    return Json({"items": [revision_json(r) for r in found]})


async def revision(request: Request) -> Response:
    app = application(request)
    number = path_id(request, "number", "revision")
    found = await run_in_threadpool(app.store.revisions.revision, number)
    if found is None:
        raise not_found(f"no revision {number}")
    return Json(revision_json(found, full=True))


async def audit(request: Request) -> Response:
    app = application(request)
    limit, offset = page(request)
    entries = await run_in_threadpool(app.store.audit.audit, limit + 1, offset)
    return Json(paged(request, [audit_json(e) for e in entries], limit, offset))


async def notices(request: Request) -> Response:
    """Every notice decided, sent or held back by an alert policy, newest first."""
    app = application(request)
    limit, offset = page(request)
    job = request.query_params.get("job") or None
    kind = choice(request, "kind", ("schedule", "worker", "command", "monitor"))
    found = await run_in_threadpool(
        lambda: app.store.notices.notices(job=job, kind=kind, limit=limit + 1, offset=offset)
    )
    return Json(paged(request, [notice_json(n) for n in found], limit, offset))


async def monitors(request: Request) -> Response:
    app = application(request)

    def read() -> list[dict[str, Any]]:
        return _with_last_runs(app, _status(app)["monitors"])

    return Json({"items": await run_in_threadpool(read)})


async def nodes(request: Request) -> Response:
    """The engines of the store's cluster and which one leads (see docs/ha.md)."""
    app = application(request)

    def read() -> list[dict[str, Any]]:
        with app.store.reading() as tx:
            return read_nodes(tx.nodes, tx.runs, app.clock.now())

    return Json({"items": await run_in_threadpool(read)})


ROUTES = [
    Route("/schedules", schedules, methods=["GET"]),
    Route("/schedules/{name}", schedule, methods=["GET"]),
    Route("/workers", workers, methods=["GET"]),
    Route("/commands", commands, methods=["GET"]),
    Route("/queues", queues, methods=["GET"]),
    Route("/pools", pools, methods=["GET"]),
    Route("/monitors", monitors, methods=["GET"]),
    Route("/revisions", revisions, methods=["GET"]),
    Route("/revisions/{number:int}", revision, methods=["GET"]),
    Route("/audit", audit, methods=["GET"]),
    Route("/notices", notices, methods=["GET"]),
    Route("/nodes", nodes, methods=["GET"]),
]
