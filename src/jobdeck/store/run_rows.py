"""The records of the runs' aggregate listings: counts by job and status, and the rows
of runs created or ended since a reader last looked (for metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True)
class RunCount:
    kind: str
    job: str
    status: str
    count: int


@dataclass(frozen=True)
class RunRow:
    id: int
    job: str
    kind: str
    trigger: str
    status: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    detail: dict[str, Any]


Moment = Literal["created_at", "ended_at"]
