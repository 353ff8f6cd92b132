"""The records that the store keeps, as plain frozen dataclasses (no SQLAlchemy types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Via = Literal["cli", "api", "slack", "engine"]
Outcome = Literal["ok", "refused", "error"]


@dataclass(frozen=True)
class RevisionInfo:
    """An applied revision as listed: which one, from which file and commit, by whom."""

    number: int
    applied_at: datetime
    applied_by: str
    catalog_sha256: str
    git_describe: str | None
    source: str


@dataclass(frozen=True)
class Revision(RevisionInfo):
    """One applied catalog: its listing, the file's text and what runs."""

    text: str
    catalog: dict[str, Any]  # the effective catalog, as Catalog.model_dump(mode="json")


@dataclass(frozen=True)
class Suspension:
    """An emergency stop of one schedule, worker or command. Only ``resume`` or its own
    ``until`` ends it; no apply does."""

    id: int
    kind: str
    name: str
    reason: str
    created_by: str
    created_at: datetime
    until: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None

    def active(self, now: datetime) -> bool:
        return self.ended_at is None and (self.until is None or now < self.until)


@dataclass(frozen=True)
class AuditEntry:
    """Who did what, from where, and how it ended."""

    at: datetime
    actor: str
    via: Via
    action: str
    target: str | None = None
    outcome: Outcome = "ok"
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


RunKind = Literal["schedule", "worker", "command"]
Trigger = Literal["schedule", "manual", "chatops", "api", "retry", "catchup"]
RunStatus = Literal[
    "pending", "running", "succeeded", "failed", "timed_out", "skipped", "cancelled", "lost"
]
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("pending", "running")
TERMINAL_STATUSES: tuple[RunStatus, ...] = (
    "succeeded",
    "failed",
    "timed_out",
    "skipped",
    "cancelled",
    "lost",
)


@dataclass(frozen=True)
class Run:
    """One attempt at running a schedule, worker process or command.

    Retries are new runs linked by ``retry_of``; ``attempt`` counts from 1. ``detail``
    holds what varies by kind: lateness, dispatch timings, launch errors, peak memory,
    the run directory.
    """

    id: int
    job: str
    kind: RunKind
    trigger: Trigger
    status: RunStatus
    created_at: datetime
    reason: str | None = None
    attempt: int = 1
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    pool: str | None = None
    revision: int | None = None
    retry_of: int | None = None
    requested_by: str | None = None
    host: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class RunStep:
    """A change of a run and the event that records it: the fields given are set
    (``detail`` merged into the run's, key by key), the others left as they are."""

    event: str
    status: RunStatus | None = None
    reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunEvent:
    """One step in a run's history, like a workflow execution's event."""

    run_id: int
    at: datetime
    type: str
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
