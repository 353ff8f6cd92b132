"""What each dashboard page shows, read from the application's store, catalog and loops.

Each function returns the template's context: plain records and a few computed numbers.
They only read; the actions live in :mod:`jobdeck.api.dashboard.actions`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jobdeck.api.dashboard.chart import duration_chart
from jobdeck.api.remote_log import elsewhere
from jobdeck.api.runs import attempts_of
from jobdeck.api.views import run_concurrency
from jobdeck.app import Application
from jobdeck.cadence import jitter_delay, next_fires
from jobdeck.catalog.model import Catalog, Schedule, cadence_for
from jobdeck.catalog.spec import Spec
from jobdeck.cluster.view import read_nodes
from jobdeck.queues.admin import stats as queue_stats
from jobdeck.queues.catalog import wire_name
from jobdeck.status import keys_status
from jobdeck.store.records import Suspension
from jobdeck.workflow.approvals import awaiting

FAILED_STATUSES = ("failed", "timed_out", "lost")
RECENT_FAILURES = 10
HISTORY = 30
UPCOMING = 5
# The run page shows at most this much of a log at first (the end of it); the rest is
# for `jobdeck logs`. The live view then asks for what is appended, in pieces.
LOG_FIRST_BYTES = 256 * 1024
LOG_PIECE_BYTES = 64 * 1024


@dataclass(frozen=True)
class LogPiece:
    text: str
    start: int  # where ``text`` begins in the file
    end: int  # the offset to ask from next time
    missing: bool = False


def zone_of(spec: Schedule, catalog: Catalog) -> str:
    return spec.timezone or catalog.timezone or "UTC"


def overview(app: Application, now: datetime) -> dict[str, Any]:
    catalog = app.catalog
    store = app.store
    suspended = _active_suspensions(store.suspensions.suspensions(now), now)
    failures = sorted(
        (run for status in FAILED_STATUSES for run in store.runs.runs(status=status, limit=10)),
        key=lambda run: (run.created_at, run.id),
        reverse=True,
    )[:RECENT_FAILURES]
    context: dict[str, Any] = {
        "catalog": catalog,
        "revision": app.applied.revision if app.applied else None,
        "failures": failures,
        "approvals": [r for r in store.runs.active_runs(kind="command") if awaiting(r)],
        "keys": [],
        "schedules": [],
        "workers": [],
        "commands": [],
        "queues": [],
        "pools": [],
        "monitors": [],
        "nodes": read_nodes(store.nodes, store.runs, now),
    }
    if catalog is None:
        return context
    last_pings = store.runs.last_runs(list(catalog.monitors))
    context["monitors"] = [
        {"name": name, "spec": spec, "last": last_pings.get(name)}
        for name, spec in catalog.monitors.items()
    ]
    context["keys"] = keys_status(catalog, store.runs.concurrency_keys())
    last = store.runs.last_runs(list(catalog.schedules))
    context["schedules"] = [
        {
            "name": name,
            "spec": spec,
            "zone": zone_of(spec, catalog),
            "next": next_fire(app, name, spec, now),
            "last": last.get(name),
            "suspension": suspended.get(("schedule", name)),
        }
        for name, spec in catalog.schedules.items()
    ]
    active = store.runs.active_runs()
    # What the supervisor sees now, as the JSON API and /metrics report it.
    seen = app.supervisor.overview()
    workers = []
    for name, spec in catalog.workers.items():
        state = seen.get(name, {})
        workers.append(
            {
                "name": name,
                "spec": spec,
                "desired": state.get("desired", spec.desired_replicas),
                "running": state.get("running", 0),
                "restarts": state.get("restarts", 0),
                "suspension": suspended.get(("worker", name)),
            }
        )
    context["workers"] = workers
    last_commands = store.runs.last_runs(list(catalog.commands))
    context["commands"] = [
        {
            "name": name,
            "spec": spec,
            "last": last_commands.get(name),
            "suspension": suspended.get(("command", name)),
        }
        for name, spec in catalog.commands.items()
    ]
    consumers: dict[str, list[str]] = {}
    for name, worker in catalog.workers.items():
        if worker.queue:
            consumers.setdefault(worker.queue, []).append(name)
    depth = queue_depth(app, now)
    context["queues"] = [
        {
            "name": name,
            "spec": spec,
            "consumers": consumers.get(name, []),
            "depth": depth.get(wire_name(name, spec.fifo)),
        }
        for name, spec in catalog.queues.items()
    ]
    busy: dict[str, int] = {}
    for run in active:
        if run.status == "running":
            busy[run.pool or "default"] = busy.get(run.pool or "default", 0) + 1
    context["pools"] = [
        {
            "name": usage.pool,
            "used": usage.memory_used,
            "limit": usage.memory_limit,
            "running": busy.get(usage.pool, 0),
            "spec": catalog.pools.get(usage.pool),
        }
        for usage in app.executor.pools.usage()
    ]
    return context


def queue_depth(app: Application, now: datetime) -> dict[str, dict[str, Any]]:
    """Visible, in-flight and dead-lettered messages of each queue the store keeps, by
    wire name; a declared queue missing here has not been applied with its queues."""
    now_ms = int(now.timestamp() * 1000)
    with app.store.reading() as tx:
        return {row["name"]: row for row in queue_stats(tx, now_ms)}


def next_fire(app: Application, name: str, spec: Schedule, now: datetime) -> datetime | None:
    """The schedule's next slot after ``now``, by the trigger the engine has loaded;
    by the catalog's when the engine has not loaded it (not started yet)."""
    if not spec.enabled:
        return None
    loaded = app.scheduler.next_of(name, now)
    if loaded is not None:
        return loaded
    fires = next_fires(cadence_for(spec), now, 1)
    return fires[0] if fires else None


def schedule_page(app: Application, name: str, now: datetime) -> dict[str, Any] | None:
    catalog = app.catalog
    if catalog is None or name not in catalog.schedules:
        return None
    spec = catalog.schedules[name]
    store = app.store
    # A schedule migrated from a monitor keeps the monitor's runs as its history.
    history = [
        run
        for run in store.runs.runs(job=name, limit=HISTORY * 2)
        if run.kind in ("schedule", "monitor")
    ][:HISTORY]
    mine = [
        s for s in store.suspensions.suspensions(now, include_ended=True) if s.kind == "schedule"
    ]
    mine = [s for s in mine if s.name == name]
    active = next((s for s in mine if s.active(now)), None)
    upcoming = next_fires(cadence_for(spec), now, UPCOMING) if spec.enabled else []
    return {
        "name": name,
        "spec": spec,
        "zone": zone_of(spec, catalog),
        "definition": definition(spec),
        "upcoming": upcoming,
        # With jitter, the delay of each upcoming slot (the same on every engine).
        "delays": [jitter_delay(name, f, spec.jitter) for f in upcoming] if spec.jitter else [],
        "history": history,
        "chart": duration_chart(history, now),
        "suspension": active,
        "past_suspensions": [s for s in mine if s is not active][:5],
        "revision": app.applied.revision if app.applied else None,
    }


def definition(spec: Spec) -> list[tuple[str, str]]:
    """The fields as the catalog would write them, set ones first."""
    document = spec.model_dump(mode="json", exclude_none=True)
    rows = []
    for key in sorted(document, key=lambda k: (k not in spec.model_fields_set, k)):
        value = document[key]
        if value in ({}, [], ""):
            continue
        rows.append((key, _yamlish(value)))
    return rows


def _yamlish(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_yamlish(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_yamlish(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run_page(app: Application, run_id: int) -> dict[str, Any] | None:
    store = app.store
    run = store.runs.run(run_id)
    if run is None:
        return None
    # The same attempts as the API's answer for the run.
    attempts = attempts_of(store, run)
    path = app.log_path(run_id)
    piece = read_log(path, None)
    # Run by another node of the cluster: the page reads the log through this one's log
    # piece (forwarded to that node), from the start.
    where = elsewhere(store, run, app.host, path.parent.exists())
    return {
        "log_node": where.node if where is not None and where.url else None,
        "run": run,
        "events": store.runs.events(run_id),
        "notices": list(reversed(store.notices.notices(run_id=run_id, limit=100))),
        "attempts": attempts,
        "log": piece,
        "schedule_known": app.catalog is not None and run.job in app.catalog.schedules,
        "concurrency": run_concurrency(store.runs, run),
    }


def read_log(path: Path, offset: int | None) -> LogPiece:
    """From ``offset`` on (a piece at most), or the end of the log when ``offset`` is None."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if offset is None:
                start = max(0, size - LOG_FIRST_BYTES)
                limit = LOG_FIRST_BYTES
            else:
                # A log that shrank was replaced; start again from its beginning.
                start = offset if 0 <= offset <= size else 0
                limit = LOG_PIECE_BYTES
            handle.seek(start)
            data = handle.read(limit)
    except FileNotFoundError:
        return LogPiece("", 0, 0, missing=True)
    # Never cut a UTF-8 sequence in two: keep an incomplete tail for the next piece.
    text, used = _decode_whole(data)
    return LogPiece(text, start, start + used)


def _decode_whole(data: bytes) -> tuple[str, int]:
    for cut in range(4):
        end = len(data) - cut
        try:
            return data[:end].decode("utf-8"), end
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), len(data)


def _active_suspensions(
    suspensions: list[Suspension], now: datetime
) -> dict[tuple[str, str], Suspension]:
    return {(s.kind, s.name): s for s in suspensions if s.active(now)}


def audit_page(app: Application, page: int, per_page: int = 50) -> dict[str, Any]:
    entries = app.store.audit.audit(limit=per_page + 1, offset=page * per_page)
    return {
        "entries": entries[:per_page],
        "page": page,
        "more": len(entries) > per_page,
    }


def revisions_page(app: Application) -> dict[str, Any]:
    return {
        "revisions": app.store.revisions.revisions(limit=100),
        "running": app.applied.revision if app.applied else None,
    }
