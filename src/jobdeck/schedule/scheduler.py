"""The scheduler loop: sleep until the next due slot, fire it, repeat; wake on apply.

No loop that wakes every second: the loop sleeps exactly until the earliest slot of any
schedule (a :class:`~jobdeck.schedule.firequeue.FireQueue`), or until :meth:`wake` is
called because a new revision was applied. Firing goes through a narrow interface (the
run driver in the engine), which claims each (schedule, nominal time) slot in the store
so that a restart or a second engine can never start the same slot twice.

The loop has threads of its own. On the event loop's thread a due slot would wait
behind whatever callback runs there (a run's launch, its outcome, an API request), and
at tens of fires per second those waits were the lateness. The timer thread
("jobdeck-scheduler") only sleeps, pops the due slots and stamps each with the instant
it was decided; a second thread ("jobdeck-scheduler-fire") hands them, in order, to the
run driver, which claims each slot in the store with that instant. So a slot never waits
for the store's writer lock or for the previous slot's bookkeeping to be decided; it
waits only for the interpreter's lock. The run driver is safe to call from any thread
(the API's worker threads call it too), and hands the run to the event loop once
recorded. A slot decided but not yet claimed when the loop stops is claimed before
:meth:`Scheduler.run` returns; after a crash, catch-up finds it unclaimed.

:meth:`Scheduler.tick` does one round at the clock's ``now``; tests drive it with a fake
clock, the engine with :meth:`Scheduler.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from jobdeck.catalog.model import Schedule
from jobdeck.clock import Clock
from jobdeck.schedule.firequeue import Due, FireQueue
from jobdeck.schedule.timing import Trigger
from jobdeck.schedule.trigger import trigger_for
from jobdeck.store.records import Trigger as RunTrigger
from jobdeck.workflow.decisions import decide_catchup

log = logging.getLogger(__name__)

# The timer thread's niceness: it wakes for a few microseconds of work, on time.
TIMER_NICE = -10

# Slots the timer decided, with the instant it did, on their way to the run driver (None:
# no more).
_Decided = queue.SimpleQueue[tuple[Due, datetime] | None]


class Firing(Protocol):
    """What the scheduler needs of the run workflow."""

    def fire(
        self,
        name: str,
        nominal: datetime,
        trigger: RunTrigger = "schedule",
        decided_at: datetime | None = None,
    ) -> object:
        """Start (or skip, by the overlap policy) the run of one slot, claiming the slot
        as decided at ``decided_at`` (default: now)."""
        ...

    def record_missed(self, name: str, slots: list[datetime], summary: dict[str, Any]) -> None:
        """Record slots that are not run (as skipped / missed or suspended)."""
        ...


class Scheduler:
    def __init__(
        self,
        firing: Firing,
        clock: Clock,
        last_fires: Callable[[], Mapping[str, datetime]],
    ) -> None:
        self.firing = firing
        self.clock = clock
        self.last_fires = last_fires  # each schedule's newest claimed slot
        self.queue = FireQueue()
        self.specs: dict[str, Schedule] = {}
        self._triggers: dict[str, Trigger] = {}
        # The queue and the schedules are loaded by the event loop's thread and fired by
        # the scheduler's: one at a time.
        self._lock = threading.RLock()
        self._wake = threading.Event()

    def load(self, schedules: Mapping[str, Schedule], *, catch_up: bool) -> None:
        """Take a revision's schedules. With ``catch_up`` (when the engine starts), slots
        missed since each schedule's last claimed fire are run or recorded by its
        ``catchup`` policy before the queue resumes from ``now``."""
        with self._lock:
            now = self.clock.now()
            self.specs = {n: s for n, s in schedules.items() if s.enabled}
            self._triggers = {n: trigger_for(s) for n, s in self.specs.items()}
            if catch_up:
                last = self.last_fires()
                for name in sorted(self.specs):
                    self._catch_up(name, last.get(name), now)
            self.queue.update(self._triggers, now)
        self.wake()

    def wake(self) -> None:
        """Look at the queue again now (a new revision was loaded); any thread."""
        self._wake.set()

    def next_due(self) -> datetime | None:
        with self._lock:
            return self.queue.next_due()

    def tick(self) -> datetime | None:
        """Fire every slot due at the clock's ``now``; return the next due instant."""
        with self._lock:
            now = self.clock.now()
            for due in self.queue.pop_due(now):
                self._fire(due, now)
            return self.queue.next_due()

    async def run(self) -> None:
        """Run the loop in its threads until cancelled; a failure of either is raised
        here. Cancelling waits until every slot already decided has been fired."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()
        decided: _Decided = queue.SimpleQueue()

        def guarded(work: Callable[[], None]) -> Callable[[], None]:
            def target() -> None:
                try:
                    work()
                except BaseException as exc:
                    loop.call_soon_threadsafe(_settle, ended, exc)

            return target

        timer = threading.Thread(
            target=guarded(lambda: self._time(stop, decided)), name="jobdeck-scheduler", daemon=True
        )
        firer = threading.Thread(
            target=guarded(lambda: self._fire_decided(decided)),
            name="jobdeck-scheduler-fire",
            daemon=True,
        )
        firer.start()
        timer.start()
        try:
            await asyncio.shield(ended)
        finally:
            stop.set()
            self.wake()
            await asyncio.to_thread(timer.join)
            decided.put(None)  # after the last slot the timer decided
            await asyncio.to_thread(firer.join)

    def _time(self, stop: threading.Event, decided: _Decided) -> None:
        """The timer: sleep until the next due slot, pop what is due, stamp it, pass it on."""
        # Ahead of the server's other threads for a CPU when it wakes (root only; a
        # server that may not is merely less punctual on a busy host).
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), TIMER_NICE)
        while not stop.is_set():
            self._wake.clear()
            with self._lock:
                now = self.clock.now()
                for due in self.queue.pop_due(now):
                    decided.put((due, now))
                upcoming = self.queue.next_due()
            delay = None
            if upcoming is not None:
                delay = max(0.0, (upcoming - self.clock.now()).total_seconds())
            self._wake.wait(delay)

    def _fire_decided(self, decided: _Decided) -> None:
        while (item := decided.get()) is not None:
            self._fire(*item)

    def _fire(self, due: Due, now: datetime) -> None:
        if len(due.slots) == 1 and not due.truncated:
            self.firing.fire(due.name, due.slots[0], decided_at=now)
            return
        # The loop itself woke more than one slot late (the host was suspended or
        # overloaded): treat it as downtime, by the schedule's catch-up policy.
        before = due.first - timedelta(microseconds=1)
        log.warning("schedule %s: %d slots overdue at once", due.name, due.count)
        self._catch_up(due.name, before, now, trigger="schedule")

    def _catch_up(
        self, name: str, last: datetime | None, now: datetime, trigger: RunTrigger = "catchup"
    ) -> None:
        with self._lock:  # a revision may be loading meanwhile: read one or the other
            spec, trigger_of = self.specs.get(name), self._triggers.get(name)
        if spec is None or trigger_of is None:
            return  # removed or disabled by the revision loaded since it was due
        decision = decide_catchup(trigger_of, last, now, spec.catchup, spec.catchup_window)
        summary: dict[str, Any] = {}
        if decision.missed_beyond:
            summary = {
                "missed_slots": decision.missed_beyond,
                "first": decision.first_beyond.isoformat() if decision.first_beyond else None,
                "last": decision.last_beyond.isoformat() if decision.last_beyond else None,
            }
        if decision.missed or summary:
            self.firing.record_missed(name, list(decision.missed), summary)
        for slot in decision.run:
            self.firing.fire(name, slot, trigger)


def _settle(future: asyncio.Future[None], failure: BaseException) -> None:
    if not future.done():
        future.set_exception(failure)
