"""What the pages of a worker, a queue, a command and a pool show, and the run list's
filters: read from the application's store, catalog and loops, as :mod:`views` does for
schedules and runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args

from jobdeck.api.dashboard.chart import depth_chart
from jobdeck.api.dashboard.views import definition, queue_depth
from jobdeck.app import Application
from jobdeck.queues.catalog import dead_letter_name, wire_name
from jobdeck.store.records import RunStatus, Trigger

RECENT = 30
RUNS_PAGE = 100
# The run list's time filter: runs created within this long before now.
WITHIN = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}


def worker_page(app: Application, name: str, now: datetime) -> dict[str, Any] | None:
    catalog = app.catalog
    if catalog is None or name not in catalog.workers:
        return None
    spec = catalog.workers[name]
    seen = app.supervisor.overview().get(name, {})
    runs = app.store.runs.runs(job=name, kind="worker", limit=RECENT)
    suspension = next(
        (
            s
            for s in app.store.suspensions.suspensions(now)
            if s.kind == "worker" and s.name == name
        ),
        None,
    )
    return {
        "name": name,
        "spec": spec,
        "definition": definition(spec),
        "desired": seen.get("desired", spec.desired_replicas),
        "running": seen.get("running", 0),
        "restarts": seen.get("restarts", 0),
        "last_exit": seen.get("last_exit"),
        "decision": seen.get("decision"),
        "replicas": [r for r in runs if r.status in ("pending", "running")],
        "exits": [r for r in runs if r.status not in ("pending", "running")],
        "suspension": suspension,
    }


def queue_page(app: Application, name: str, now: datetime) -> dict[str, Any] | None:
    catalog = app.catalog
    if catalog is None or name not in catalog.queues:
        return None
    spec = catalog.queues[name]
    wire = wire_name(name, spec.fifo)
    depth = queue_depth(app, now)
    history = app.queue_depth.of(wire)
    return {
        "name": name,
        "wire": wire,
        "dead_letter_queue": dead_letter_name(name, spec.fifo) if spec.max_receive_count else None,
        "spec": spec,
        "depth": depth.get(wire),
        "chart": depth_chart(history),
        "consumers": sorted(w for w, s in catalog.workers.items() if s.queue == name),
        "redrives": [
            e
            for e in app.store.audit.audit(limit=200)
            if e.action == "queue redrive" and e.target == f"queue {wire}"
        ][:5],
    }


def command_page(app: Application, name: str) -> dict[str, Any] | None:
    catalog = app.catalog
    if catalog is None or name not in catalog.commands:
        return None
    spec = catalog.commands[name]
    return {
        "name": name,
        "spec": spec,
        "params": spec.params,
        "allow": spec.allow,
        "open_to_all": not (spec.allow.channels or spec.allow.users or spec.allow.usergroups),
        "invocations": app.store.runs.runs(job=name, kind="command", limit=RECENT),
    }


def pool_page(app: Application, name: str) -> dict[str, Any] | None:
    catalog = app.catalog
    if catalog is None or name not in catalog.pools:
        return None
    spec = catalog.pools[name]
    usage = next((u for u in app.executor.pools.usage() if u.pool == name), None)
    members = [
        (kind, member, spec_.memory)
        for kind, section in (
            ("schedule", catalog.schedules),
            ("worker", catalog.workers),
            ("command", catalog.commands),
        )
        for member, spec_ in section.items()
        if spec_.pool == name
    ]
    running = [r for r in app.store.runs.active_runs() if r.pool == name and r.status == "running"]
    return {
        "name": name,
        "spec": spec,
        "used": usage.memory_used if usage else None,
        "limit": spec.memory,
        "members": members,
        "running": running,
    }


@dataclass(frozen=True)
class RunFilters:
    job: str | None = None
    status: str | None = None
    trigger: str | None = None
    within: str | None = None

    @classmethod
    def of(cls, query: dict[str, str]) -> RunFilters:
        """The filters a query asks for; unknown values are dropped, not errors."""

        def chosen(key: str, allowed: tuple[str, ...] | None = None) -> str | None:
            value = (query.get(key) or "").strip()
            if not value or (allowed is not None and value not in allowed):
                return None
            return value

        return cls(
            chosen("job"),
            chosen("status", get_args(RunStatus)),
            chosen("trigger", get_args(Trigger)),
            chosen("within", tuple(WITHIN)),
        )


def runs_page(app: Application, filters: RunFilters, now: datetime) -> dict[str, Any]:
    since = now - WITHIN[filters.within] if filters.within else None
    runs = app.store.runs.runs(
        job=filters.job,
        status=filters.status,
        trigger=filters.trigger,
        since=since,
        limit=RUNS_PAGE,
    )
    catalog = app.catalog
    jobs = sorted({*catalog.schedules, *catalog.workers, *catalog.commands} if catalog else set())
    return {
        "runs": runs,
        "filters": filters,
        "jobs": jobs,
        "statuses": get_args(RunStatus),
        "triggers": get_args(Trigger),
        "windows": tuple(WITHIN),
        "limit": RUNS_PAGE,
    }
