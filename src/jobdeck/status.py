"""What the applied revision declares and what is suspended, as one status document.

Pure: the applied revision, the active suspensions, the queues' depths and ``now`` in,
a JSON-ready dict out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jobdeck.catalog.model import Catalog
from jobdeck.catalog.plan import suspension_json
from jobdeck.queues.catalog import dead_letter_name, wire_name
from jobdeck.schedule.timing import next_fires
from jobdeck.schedule.trigger import trigger_for
from jobdeck.store.queue_records import QueueCounts
from jobdeck.store.records import Revision, Suspension


def collect_status(
    revision: Revision | None,
    suspensions: list[Suspension],
    now: datetime,
    queue_counts: Mapping[str, QueueCounts] | None = None,
    worker_live: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``queue_counts`` (by wire name, as :meth:`Tx.queue_counts` gives them) adds each
    catalog queue's visible, in-flight and dead-lettered messages; without it they are
    None (unknown). ``worker_live`` (as :meth:`Tx.worker_overview` or the supervisor's
    ``overview()`` give it) adds each worker's running replicas, restarts, last exit and
    autoscale decision, and the desired count the supervisor works to."""
    if revision is None:
        return {
            "revision": None,
            "schedules": [],
            "workers": [],
            "commands": [],
            "queues": [],
            "pools": [],
        }
    catalog = Catalog.model_validate(revision.catalog)
    suspended = {(s.kind, s.name): suspension_json(s) for s in suspensions if s.active(now)}
    schedules = []
    for name, spec in catalog.schedules.items():
        fire = next_fires(trigger_for(spec), now, 1)[0] if spec.enabled else None
        zone = ZoneInfo(spec.timezone or "UTC")
        schedules.append(
            {
                "name": name,
                "trigger": spec.cron
                if spec.cron is not None
                else f"rate {spec.model_dump(mode='json')['rate']}",
                "timezone": spec.timezone,
                "enabled": spec.enabled,
                "next_fire": fire,
                "next_fire_local": fire.astimezone(zone).isoformat() if fire else None,
                "pool": spec.pool,
                "suspension": suspended.get(("schedule", name)),
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
        {"name": name, **spec.model_dump(mode="json", exclude={"description"})}
        for name, spec in catalog.pools.items()
    ]
    return {
        "revision": {
            "number": revision.number,
            "applied_at": revision.applied_at,
            "applied_by": revision.applied_by,
            "git_describe": revision.git_describe,
        },
        "schedules": schedules,
        "workers": workers,
        "commands": commands,
        "queues": queues,
        "pools": pools,
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
