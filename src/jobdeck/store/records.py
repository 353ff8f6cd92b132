"""The records that the store keeps, as plain frozen dataclasses (no SQLAlchemy types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Via = Literal["cli", "api", "slack", "engine"]
Outcome = Literal["ok", "refused", "error"]


@dataclass(frozen=True)
class Revision:
    """One applied catalog: what runs, from which file and commit, applied by whom."""

    number: int
    applied_at: datetime
    applied_by: str
    catalog_sha256: str
    git_describe: str | None
    source: str
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
