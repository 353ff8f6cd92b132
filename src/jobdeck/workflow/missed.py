"""What a missed-slot notice says: a pure summary of one catch-up's slots that did not run.

One catch-up (the engine started again, woke late, or restarted its timer) sends at most
one notice per schedule, however many slots it missed: the schedule, why the slots were
not fired on time (``cause``), each missed slot with why catch-up did not run it (or,
past :data:`LISTED_SLOTS`, the count with the first and the last), and the slots that
catch-up did run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jobdeck.store.records import Run
from jobdeck.units import format_duration
from jobdeck.workflow.outcome import iso as iso_offset


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as every time in a notice."""
    return iso_offset(moment).replace("+00:00", "Z")


# A notice lists this many missed slots one by one; beyond, the count, first and last.
LISTED_SLOTS = 20


@dataclass
class MissedSlots:
    """The slots of one catch-up of one schedule that did not run, as recorded."""

    schedule: str
    cause: str  # engine_down | engine_late | timer_restart
    catchup: str
    window: timedelta
    slots: list[tuple[datetime, str]] = field(default_factory=list)  # (slot, why not run)
    beyond: int = 0  # further missed slots, summed up in one record
    first_beyond: datetime | None = None
    last_beyond: datetime | None = None
    beyond_why: str = "outside_window"
    caught_up: list[datetime] = field(default_factory=list)  # slots that catch-up ran

    def skipped(self, run: Run) -> None:
        """A slot that catch-up fired but that was skipped (a run from before still ran)."""
        assert run.scheduled_for is not None
        self.caught_up.remove(run.scheduled_for)
        self.slots.append((run.scheduled_for, run.reason or "skipped"))

    @property
    def count(self) -> int:
        return len(self.slots) + self.beyond

    def detail(self) -> dict[str, Any]:
        """The ``missed`` object of the notice (the webhook's ``missed``, Slack's fields)."""
        listed = sorted(self.slots)
        firsts = [moment for moment in (self.first_beyond, *(s for s, _ in listed)) if moment]
        lasts = [moment for moment in (*(s for s, _ in listed), self.last_beyond) if moment]
        reasons = Counter(why for _, why in listed)
        if self.beyond:
            reasons[self.beyond_why] += self.beyond
        return {
            "schedule": self.schedule,
            "cause": self.cause,
            "count": self.count,
            "first": iso(min(firsts)) if firsts else None,
            "last": iso(max(lasts)) if lasts else None,
            "slots": [{"at": iso(slot), "reason": why} for slot, why in listed[-LISTED_SLOTS:]],
            "slots_listed": min(len(listed), LISTED_SLOTS),
            "reasons": dict(sorted(reasons.items())),
            "catchup": self.catchup,
            "catchup_window": format_duration(self.window),
            "caught_up": [iso(slot) for slot in sorted(self.caught_up)],
        }
