"""A monitor's decisions (pure: functions of their inputs and ``now``).

- A ping counts for a slot when it arrives from :data:`EARLY` (or ``grace``, if shorter)
  before the slot until ``grace`` after it (a start ping, or an end ping with no start).
- A slot is decided once ``grace`` has passed after it: met, or ``missed``.
- A run started by a start ping that has not ended ``timeout`` after its start is
  ``timed_out``.
- After a long absence (the engine down), only the newest :data:`SLOT_LIMIT` slots are
  decided; older ones are left undecided (counted in the log).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from jobdeck.cadence import Cadence, fires_between

EARLY = timedelta(minutes=1)
SLOT_LIMIT = 100

Action = Literal["start", "success", "fail"]


def window(slot: datetime, grace: timedelta) -> tuple[datetime, datetime]:
    """The pings that count for ``slot``: created in ``[start, end]``."""
    return slot - min(EARLY, grace), slot + grace


@dataclass(frozen=True)
class DueSlots:
    slots: list[datetime]  # to decide now, oldest first
    dropped: int  # older slots left undecided (beyond SLOT_LIMIT)


def due_slots(cadence: Cadence, grace: timedelta, after: datetime, now: datetime) -> DueSlots:
    """The slots after ``after`` whose grace has passed by ``now``."""
    found = list(fires_between(cadence, after, now - grace))
    dropped = max(0, len(found) - SLOT_LIMIT)
    return DueSlots(found[dropped:], dropped)


def slot_met(slot: datetime, grace: timedelta, pings: Sequence[datetime]) -> bool:
    """Whether one of the pings (their runs' creation times) counts for ``slot``."""
    start, end = window(slot, grace)
    return any(start <= at <= end for at in pings)


def timed_out(started_at: datetime, timeout: timedelta, now: datetime) -> bool:
    return now - started_at >= timeout


@dataclass(frozen=True)
class PingOutcome:
    """What an end ping records: the status and the exit code."""

    status: Literal["succeeded", "failed"]
    exit_code: int | None


def ping_outcome(action: Action, exit_code: int | None) -> PingOutcome:
    """``fail``, or a non-zero ``?exit=N``, is a failure; anything else a success."""
    if action == "fail":
        return PingOutcome("failed", exit_code)
    if exit_code is not None and exit_code != 0:
        return PingOutcome("failed", exit_code)
    return PingOutcome("succeeded", exit_code)
