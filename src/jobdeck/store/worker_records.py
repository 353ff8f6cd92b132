"""The records of workers in the store: singleton leases, the supervisor's state, its
events (plain frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class WorkerLease:
    """Who may run a singleton worker's one process: the run, on which engine, until when
    (renewed by that engine while it lives)."""

    worker: str
    holder_run: int
    holder_host: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class WorkerState:
    """The supervisor's latest word on a worker: replicas it wants, processes it
    restarted, how the last one ended, and its latest scaling decision."""

    worker: str
    desired: int
    restarts: int
    updated_at: datetime
    last_exit: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None


@dataclass(frozen=True)
class WorkerEvent:
    worker: str
    at: datetime
    type: str
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


def overview(states: dict[str, WorkerState], running: dict[str, int]) -> dict[str, dict[str, Any]]:
    """What `jobdeck status` shows of each worker the supervisor looked after:
    desired and running replicas, restarts, the last exit, the scaling decision."""
    shown = {
        name: {
            "desired": state.desired,
            "running": running.get(name, 0),
            "restarts": state.restarts,
            "last_exit": state.last_exit,
            "decision": state.decision,
        }
        for name, state in states.items()
    }
    for name, count in running.items():
        shown.setdefault(
            name,
            {
                "desired": None,
                "running": count,
                "restarts": 0,
                "last_exit": None,
                "decision": None,
            },
        )
    return shown
