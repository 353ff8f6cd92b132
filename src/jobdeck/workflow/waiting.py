"""The runs that wait to start, with a pump's cost bounded by what can change.

Every event (a run requested, one ended) pumps: it looks for waiting runs that may start
now. With a backlog of thousands in a full pool, looking at every one of them on every
event made the engine's time per run grow with the backlog. So a run that waits only for
room in its pool (no backoff, no overlap rule), once told so, is *parked* on its pool: a
pump does not look at it again until the pool has room, and then only at as many of the
pool's oldest parked runs as there is room for. Parked runs of a pool are its oldest
plain runs, so no run that could start is passed over: the outcome of a pump is the same
as if it had looked at every waiting run, oldest first.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime

from jobdeck.store.records import Run


@dataclass
class Waiting:
    run: Run
    not_before: datetime | None = None
    exclusive: bool = False  # waits until no other run of its job is running
    shown: str | None = None  # the waiting reason last recorded

    @property
    def plain(self) -> bool:
        """It waits for nothing but room in its pool."""
        return self.not_before is None and not self.exclusive


class WaitingRuns(MutableMapping[int, Waiting]):
    """Waiting runs by id; each is either loose (looked at by every pump) or parked."""

    def __init__(self) -> None:
        self._all: dict[int, Waiting] = {}
        self._loose: set[int] = set()
        self._parked: set[int] = set()
        # Per pool, its parked ids as a heap. Ids no longer parked are dropped when they
        # come up (a run may be cancelled while it is parked).
        self._heaps: dict[str, list[int]] = {}

    def __getitem__(self, run_id: int) -> Waiting:
        return self._all[run_id]

    def __setitem__(self, run_id: int, wait: Waiting) -> None:
        self._all[run_id] = wait
        self._parked.discard(run_id)
        self._loose.add(run_id)

    def __delitem__(self, run_id: int) -> None:
        del self._all[run_id]
        self._loose.discard(run_id)
        self._parked.discard(run_id)

    def __iter__(self) -> Iterator[int]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def park(self, run_id: int, pool: str) -> None:
        """A plain run of a full pool, told so: pumps pass it by until the pool has room."""
        if run_id in self._loose and self._all[run_id].plain:
            self._loose.remove(run_id)
            self._parked.add(run_id)
            heapq.heappush(self._heaps.setdefault(pool, []), run_id)

    def unpark_all(self) -> None:
        """Every run is looked at by the next pump (a new revision may change any limit)."""
        self._loose |= self._parked
        self._parked.clear()
        self._heaps.clear()

    def candidates(self, room: Callable[[str], int | None]) -> list[int]:
        """The ids a pump looks at, oldest first: every loose run and, of each pool's
        parked runs, the oldest ``room(pool)`` (all of them when it is None)."""
        for pool in list(self._heaps):
            heap = self._heaps[pool]
            free = room(pool)
            while heap and (free is None or free > 0):
                run_id = heapq.heappop(heap)
                if run_id in self._parked:
                    self._parked.remove(run_id)
                    self._loose.add(run_id)
                    if free is not None:
                        free -= 1
            if not heap:
                del self._heaps[pool]
        return sorted(self._loose)
