"""What the applied revision declares and what is suspended, as one status document.

Pure: the applied revision, the active suspensions, the queues' depths and ``now`` in,
a JSON-ready dict out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jobdeck.cadence import next_fires
from jobdeck.catalog.model import Catalog, cadence_for
from jobdeck.catalog.monitors import Monitor, monitor_cadence
from jobdeck.catalog.plan import suspension_json
from jobdeck.queues.catalog import dead_letter_name, wire_name
from jobdeck.store.key_records import KeyRun, KeyUse
from jobdeck.store.queue_records import QueueCounts
from jobdeck.store.records import Revision, Run, Suspension


@dataclass(frozen=True)
class Activity:
    """What the store and the host know of what runs: the newest run of each job, the
    running runs of each pool, and each pool's memory in use (None: unknown)."""

    last_runs: Mapping[str, Run] = field(default_factory=dict)
    running_by_pool: Mapping[str, int] = field(default_factory=dict)
    memory_used: Mapping[str, int | None] = field(default_factory=dict)
    key_uses: Sequence[KeyUse] = ()  # the concurrency keys held or waited for


def collect_status(
    revision: Revision | None,
    suspensions: list[Suspension],
    now: datetime,
    queue_counts: Mapping[str, QueueCounts] | None = None,
    worker_live: Mapping[str, Mapping[str, Any]] | None = None,
    activity: Activity | None = None,
) -> dict[str, Any]:
    """``queue_counts`` (by wire name, as :meth:`Tx.queue_counts` gives them) adds each
    catalog queue's visible, in-flight and dead-lettered messages; without it they are
    None (unknown). ``worker_live`` (as :meth:`Tx.worker_overview` or the supervisor's
    ``overview()`` give it) adds each worker's running replicas, restarts, last exit and
    autoscale decision, and the desired count the supervisor works to. ``activity`` adds
    each schedule's last run and each pool's running runs and memory in use.

    Times are to the second. A suspended schedule has no next fire (its slots are
    skipped while the suspension lasts): its ``suspension`` says why and until when."""
    seen = activity or Activity()
    if revision is None:
        return {
            "revision": None,
            "schedules": [],
            "workers": [],
            "commands": [],
            "queues": [],
            "pools": [],
            "monitors": [],
            "concurrency_keys": [],
        }
    catalog = Catalog.model_validate(revision.catalog)
    suspended = {(s.kind, s.name): suspension_json(s) for s in suspensions if s.active(now)}
    schedules = []
    for name, spec in catalog.schedules.items():
        suspension = suspended.get(("schedule", name))
        fires = spec.enabled and suspension is None
        fire = next_fires(cadence_for(spec), now, 1)[0] if fires else None
        zone = ZoneInfo(spec.timezone or "UTC")
        schedules.append(
            {
                "name": name,
                "trigger": spec.cron
                if spec.cron is not None
                else f"rate {spec.model_dump(mode='json')['rate']}",
                "timezone": spec.timezone,
                "enabled": spec.enabled,
                "next_fire": _second(fire),
                "next_fire_local": fire.astimezone(zone).replace(microsecond=0).isoformat()
                if fire
                else None,
                "pool": spec.pool,
                "suspension": suspension,
                "last_run": _last_run(seen.last_runs.get(name)),
            }
        )
    workers = [
        {
            "name": name,
            "desired": spec.desired_replicas,
            "autoscale": spec.autoscale.model_dump(mode="json") if spec.autoscale else None,
            "singleton": spec.singleton,
            "queue": spec.queue,
            "enabled": spec.enabled,
            "suspension": suspended.get(("worker", name)),
            **_worker_live(None if worker_live is None else worker_live.get(name)),
        }
        for name, spec in catalog.workers.items()
    ]
    for worker in workers:
        if worker["supervised_desired"] is not None:
            worker["desired"] = worker["supervised_desired"]
        del worker["supervised_desired"]
    commands = [
        {
            "name": name,
            "pool": spec.pool,
            "enabled": spec.enabled,
            "suspension": suspended.get(("command", name)),
        }
        for name, spec in catalog.commands.items()
    ]
    queues = [
        {
            "name": name,
            **spec.model_dump(mode="json", exclude={"description"}),
            **_queue_depth(
                wire_name(name, spec.fifo), dead_letter_name(name, spec.fifo), queue_counts
            ),
        }
        for name, spec in catalog.queues.items()
    ]
    pools = [
        {
            "name": name,
            **spec.model_dump(mode="json", exclude={"description"}),
            "memory_limit": spec.memory,
            "memory_used": seen.memory_used.get(name),
            "running": seen.running_by_pool.get(name, 0),
        }
        for name, spec in catalog.pools.items()
    ]
    monitors = [
        {
            **_monitor(name, spec, now, seen.last_runs.get(name)),
            "suspension": suspended.get(("monitor", name)),
        }
        for name, spec in catalog.monitors.items()
    ]
    return {
        "revision": {
            "number": revision.number,
            "applied_at": _second(revision.applied_at),
            "applied_by": revision.applied_by,
            "git_describe": revision.git_describe,
        },
        "schedules": schedules,
        "workers": workers,
        "commands": commands,
        "queues": queues,
        "pools": pools,
        "concurrency_keys": keys_status(catalog, seen.key_uses),
        "monitors": monitors,
    }


def _monitor(name: str, spec: Monitor, now: datetime, last: Run | None) -> dict[str, Any]:
    """A monitor: when it expects pings, the next slot, its newest run (a ping or a
    missed slot)."""
    slot = next_fires(monitor_cadence(spec), now, 1)[0]
    zone = ZoneInfo(spec.timezone or "UTC")
    shown = spec.model_dump(mode="json")
    return {
        "name": name,
        "trigger": spec.cron if spec.cron is not None else f"rate {shown['rate']}",
        "timezone": spec.timezone,
        "grace": shown["grace"],
        "timeout": shown["timeout"],
        "next_slot": _second(slot),
        "next_slot_local": slot.astimezone(zone).replace(microsecond=0).isoformat(),
        "last_run": _last_run(last),
    }


def keys_status(catalog: Catalog, uses: Sequence[KeyUse]) -> list[dict[str, Any]]:
    """Each concurrency key the catalog names or a run holds or waits for: its limit,
    the items naming it, its holders and its waiters (in the order they get it)."""
    keys: dict[str, dict[str, Any]] = {}
    for kind, section in (("schedule", catalog.schedules), ("command", catalog.commands)):
        for name, spec in section.items():
            if spec.concurrency is not None:
                entry = keys.setdefault(
                    spec.concurrency.key,
                    {"key": spec.concurrency.key, "limit": spec.concurrency.limit, "items": []},
                )
                entry["items"].append({"kind": kind, "name": name})
    for use in uses:
        entry = keys.setdefault(use.key, {"key": use.key, "limit": use.limit, "items": []})
        entry["holders"] = [_key_run(r) for r in use.holders]
        entry["waiters"] = [_key_run(r) for r in use.waiters]
    for entry in keys.values():
        entry.setdefault("holders", [])
        entry.setdefault("waiters", [])
    return [keys[key] for key in sorted(keys)]


def _key_run(run: KeyRun) -> dict[str, Any]:
    return {"run_id": run.run_id, "kind": run.kind, "job": run.job, "since": _second(run.since)}


def _second(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(microsecond=0)


def _last_run(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "status": run.status,
        "reason": run.reason,
        "at": _second(run.ended_at or run.started_at or run.created_at),
        "trigger": run.trigger,
    }


def _worker_live(live: Mapping[str, Any] | None) -> dict[str, Any]:
    if live is None:
        return {
            "supervised_desired": None,
            "running": None,
            "restarts": None,
            "last_exit": None,
            "autoscale_decision": None,
        }
    return {
        "supervised_desired": live.get("desired"),
        "running": live.get("running"),
        "restarts": live.get("restarts"),
        "last_exit": live.get("last_exit"),
        "autoscale_decision": live.get("decision"),
    }


def _queue_depth(
    wire: str, dead_letter: str, counts: Mapping[str, QueueCounts] | None
) -> dict[str, Any]:
    own = None if counts is None else counts.get(wire)
    dead = None if counts is None else counts.get(dead_letter)
    return {
        "wire_name": wire,
        "dead_letter_queue": dead_letter,
        "visible": None if own is None else own.visible,
        "in_flight": None if own is None else own.in_flight,
        "delayed": None if own is None else own.delayed,
        "dead_lettered": None if dead is None else dead.visible + dead.in_flight + dead.delayed,
    }
