"""Which schedule fires next: a heap of due instants. Pure; ``now`` is a parameter.

The queue knows nothing of runs or the store. The scheduler asks it for the slots that
are due at ``now`` and for the instant it should wake up next; an apply replaces the
cadences and keeps the place of every schedule whose cadence did not change.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from jobdeck.cadence import Cadence, fires_between

# A loop that wakes very late (a suspended laptop, a frozen VM) hands over at most this
# many overdue slots of one schedule, and how many there were in all.
MAX_OVERDUE = 100


@dataclass(frozen=True)
class Due:
    """One schedule's slots that are due: the newest ``MAX_OVERDUE`` of them in ``slots``
    (oldest first, never empty), ``first`` the oldest of all, ``count`` how many."""

    name: str
    slots: tuple[datetime, ...]
    first: datetime
    count: int

    @property
    def truncated(self) -> bool:
        return self.count > len(self.slots)


class FireQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._entries: dict[str, tuple[Cadence, datetime | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def update(self, cadences: Mapping[str, Cadence], now: datetime) -> None:
        """Replace the cadences. A new or changed cadence counts from ``now`` (its first
        slot is the first one after ``now``); an unchanged one keeps its next slot."""
        for name in [n for n in self._entries if n not in cadences]:
            del self._entries[name]
        for name, cadence in cadences.items():
            current = self._entries.get(name)
            if current is not None and current[0] == cadence:
                continue
            self._set(name, cadence, _first_after(cadence, now))
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._compact()

    def next_due(self) -> datetime | None:
        """The earliest slot of any schedule, or None when nothing will ever fire."""
        while self._heap:
            due, name = self._heap[0]
            if self._valid(due, name):
                return due
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: datetime) -> list[Due]:
        """Every schedule whose next slot is at or before ``now``, with all of its slots up
        to ``now``; each moves on to its first slot after ``now``."""
        found: list[Due] = []
        while True:
            due = self.next_due()
            if due is None or due > now:
                return found
            _, name = heapq.heappop(self._heap)
            cadence = self._entries[name][0]
            newest: deque[datetime] = deque([due], maxlen=MAX_OVERDUE)
            count = 1
            for slot in fires_between(cadence, due, now):
                newest.append(slot)
                count += 1
            self._set(name, cadence, _first_after(cadence, newest[-1]))
            found.append(Due(name, tuple(newest), due, count))

    def next_of(self, name: str) -> datetime | None:
        entry = self._entries.get(name)
        return entry[1] if entry else None

    def _set(self, name: str, cadence: Cadence, due: datetime | None) -> None:
        self._entries[name] = (cadence, due)
        if due is not None:
            heapq.heappush(self._heap, (due, name))

    def _valid(self, due: datetime, name: str) -> bool:
        entry = self._entries.get(name)
        return entry is not None and entry[1] == due

    def _compact(self) -> None:
        self._heap = [(d, n) for d, n in self._heap if self._valid(d, n)]
        heapq.heapify(self._heap)


def _first_after(cadence: Cadence, moment: datetime) -> datetime | None:
    return next(iter(cadence.fires_after(moment)), None)
