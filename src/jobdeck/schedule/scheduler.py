"""The scheduler loop: sleep until the next due slot, fire it, repeat; wake on apply.

No loop that wakes every second: the timer sleeps exactly until the earliest slot of any
schedule (a :class:`~jobdeck.schedule.firequeue.FireQueue`), and a revision applied
meanwhile reaches it at once. Firing goes through a narrow interface (the run driver in
the engine), which claims each (schedule, nominal time) slot in the store so that a
restart or a second engine can never start the same slot twice.

The timer is a process of its own (:mod:`jobdeck.schedule.timer`): a thread of this
process would wait for the interpreter's lock on waking, behind the launches, outcomes
and requests that the server's other threads run, and at tens of fires a second those
waits were the lateness. The timer decides each slot on time and stamps it with the
instant it did; the "jobdeck-scheduler-fire" thread here reads the slots, in order,
and hands each to the run driver, which claims it with that instant. The run driver is
safe to call from any thread (the API's worker threads call it too), and hands the run
to the event loop once recorded.

Cancelling :meth:`Scheduler.run` closes the timer's input; every slot it decided before
is claimed before ``run`` returns. A timer that dies is started again, after a catch-up
(by each schedule's policy) of the slots it may have taken with it; after a crash of the
server, catch-up finds the slots that were decided but not claimed.

:meth:`Scheduler.tick` does one round of the timer's work in this process at the clock's
``now``: tests drive it with a fake clock, the engine uses :meth:`Scheduler.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import IO, Protocol

from jobdeck.cadence import Cadence, next_fires
from jobdeck.catalog.model import Schedule, cadence_for
from jobdeck.clock import Clock
from jobdeck.schedule.firequeue import Due, FireQueue
from jobdeck.schedule.since import Since
from jobdeck.schedule.wire import decode_due, encode_cadences
from jobdeck.store.records import Trigger as RunTrigger
from jobdeck.workflow.decisions import CatchupDecision, MissCause, decide_catchup

log = logging.getLogger(__name__)

FIRE_THREAD = "jobdeck-scheduler-fire"
# A timer that ends sooner than this after it started is not started again: it would
# only end again (it cannot start, or cannot read what it is sent).
TIMER_MIN_LIFE = 2.0


class TimerFailed(RuntimeError):
    """The timer process could not be kept running."""


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

    def catch_up(
        self,
        name: str,
        decision: CatchupDecision,
        *,
        trigger: RunTrigger,
        cause: MissCause,
        held: bool = False,
    ) -> None:
        """Run the slots ``decision`` chose (oldest first) and record the others (as
        skipped / missed or suspended), telling the schedule's notify targets. ``held``:
        the slots fell due while the schedule was suspended (recorded as suspended)."""
        ...


# Since when each schedule's catch-up may count slots, given each one's newest claimed
# fire and now (see :mod:`jobdeck.schedule.since`).
SinceOf = Callable[[Mapping[str, datetime], datetime], Mapping[str, Since]]


class Scheduler:
    def __init__(
        self,
        firing: Firing,
        clock: Clock,
        last_fires: Callable[[], Mapping[str, datetime]],
        *,
        since: SinceOf | None = None,
        python: str = sys.executable,
    ) -> None:
        self.firing = firing
        self.clock = clock
        self.last_fires = last_fires  # each schedule's newest claimed slot
        self.since = since  # when each schedule's timing took effect, its resumes
        self.python = python
        self._queue: FireQueue | None = None  # tick()'s, made by its first call
        self.specs: dict[str, Schedule] = {}
        self._cadences: dict[str, Cadence] = {}
        # When each cadence was loaded as new or changed: it has no slot before that.
        self._since: dict[str, datetime] = {}
        self._loaded_at: datetime | None = None
        # The revision is loaded by the event loop's thread and fired by the scheduler's,
        # one at a time; the timer process is started, told and stopped under it too.
        self._lock = threading.RLock()
        self._timer: subprocess.Popen[bytes] | None = None
        self._spawned = 0.0  # when it was started (monotonic)
        self._stopping = False  # no timer is to be started (again)
        self._following = False  # run() reads the timer

    def load(self, schedules: Mapping[str, Schedule], *, catch_up: bool) -> None:
        """Take a revision's schedules. With ``catch_up`` (when the engine starts), slots
        missed since each schedule's last claimed fire are run or recorded by its
        ``catchup`` policy before the queue resumes from ``now``."""
        with self._lock:
            now = self.clock.now()
            self.specs = {n: s for n, s in schedules.items() if s.enabled}
            cadences = {n: cadence_for(s) for n, s in self.specs.items()}
            since: dict[str, datetime] = {}
            for name, cadence in cadences.items():
                kept = self._since.get(name)
                unchanged = self._cadences.get(name) == cadence
                since[name] = kept if kept is not None and unchanged else now
            self._since, self._cadences = since, cadences
            if catch_up:
                last = self.last_fires()
                bounds = self._bounds(last, now)
                for name in sorted(self.specs):
                    after = self._held(name, last.get(name), bounds.get(name), "engine_down")
                    self._catch_up(name, after, now, cause="engine_down")
            if self._queue is not None:
                self._queue.update(self._cadences, now)
            self._loaded_at = now
            self._tell_timer()

    def next_of(self, name: str, now: datetime) -> datetime | None:
        """The schedule's next slot after ``now``; None when it is not loaded (unknown or
        disabled) or will never fire again."""
        with self._lock:
            cadence = self._cadences.get(name)
        if cadence is None:
            return None
        fires = next_fires(cadence, now, 1)
        return fires[0] if fires else None

    @property
    def queue(self) -> FireQueue:
        """The queue :meth:`tick` fires from, in this process; the engine's timer keeps
        its own, so a server that only runs never holds this one."""
        with self._lock:
            if self._queue is None:
                self._queue = FireQueue()
                if self._loaded_at is not None:
                    self._queue.update(self._cadences, self._loaded_at)
            return self._queue

    def tick(self) -> datetime | None:
        """Fire every slot due at the clock's ``now``; return the next due instant."""
        with self._lock:
            now = self.clock.now()
            for due in self.queue.pop_due(now):
                self._fire(due, now)
            return self.queue.next_due()

    @property
    def timer_pid(self) -> int | None:
        """The timer process's pid while it runs."""
        timer = self._timer
        return timer.pid if timer is not None else None

    def start(self) -> None:
        """Start the timer process unless it runs. The engine starts it before it loads
        its first revision, so that it listens by then; :meth:`run` does if not."""
        with self._lock:
            if self._timer is not None or self._stopping:
                return
            self._timer = subprocess.Popen(
                [self.python, "-m", "jobdeck.schedule.timer"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
            self._spawned = time.monotonic()
            self._tell_timer()

    def close(self) -> None:
        """Stop a timer that :meth:`run` does not follow (it stops its own). What the
        timer decided and nothing claimed is left to the next start's catch-up."""
        with self._lock:
            self._stopping = True
            timer = self._timer
            if timer is None or self._following:
                return
        self._end_timer(timer)

    async def run(self) -> None:
        """Run the timer process and fire what it decides until cancelled; a failure is
        raised here. Cancelling waits until every slot already decided has been fired."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def target() -> None:
            try:
                self._follow()
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, ended, exc)

        with self._lock:
            self._stopping, self._following = False, True
        firer = threading.Thread(target=target, name=FIRE_THREAD, daemon=True)
        firer.start()
        try:
            await asyncio.shield(ended)
        finally:
            with self._lock:
                self._stopping = True
                if self._timer is not None:
                    self._close_input(self._timer)
            await asyncio.to_thread(firer.join)
            self._following = False

    def _follow(self) -> None:
        """Keep a timer running and fire what it decides, until stopped."""
        self.start()
        while (timer := self._timer) is not None:
            try:
                assert timer.stdout is not None
                for line in timer.stdout:
                    self._fire(*decode_due(line))
            except BaseException:
                self._end_timer(timer)
                raise
            status = self._end_timer(timer)
            with self._lock:
                if self._stopping:
                    return
            if time.monotonic() - self._spawned < TIMER_MIN_LIFE:
                raise TimerFailed(
                    f"the scheduler's timer ({self.python} -m jobdeck.schedule.timer) exited "
                    f"with status {status} as it started; its error is in the server's log"
                )
            log.error("the scheduler's timer exited with status %s; starting it again", status)
            self._recover()
            self.start()

    def _tell_timer(self) -> None:
        """Send the loaded cadences to the running timer (under the lock)."""
        timer = self._timer
        if timer is None or self._loaded_at is None or timer.stdin is None:
            return
        # A timer that has ended (or is being stopped) is not told: the follower starts
        # the next one, which is sent these cadences.
        with contextlib.suppress(BrokenPipeError, ValueError):
            _write(timer.stdin, encode_cadences(self._cadences, self._loaded_at))

    @staticmethod
    def _close_input(timer: subprocess.Popen[bytes]) -> None:
        """The timer's order to stop (under the lock)."""
        if timer.stdin is not None and not timer.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # it had not read everything
                timer.stdin.close()

    def _end_timer(self, timer: subprocess.Popen[bytes]) -> int:
        """Close both ends of a timer's pipes (so that it cannot block on either), reap
        it and return its exit status."""
        with self._lock:
            self._close_input(timer)
        if timer.stdout is not None:
            timer.stdout.close()
        status = timer.wait()
        with self._lock:
            if self._timer is timer:
                self._timer = None
        return status

    def _recover(self) -> None:
        """After a timer ended: catch up, by each schedule's policy, the slots it may have
        taken with it (those after the schedule's newest claimed slot, and after it was
        loaded), then count every schedule from now."""
        with self._lock:
            now = self.clock.now()
            last = self.last_fires()
            bounds = self._bounds(last, now)
            for name in sorted(self.specs):
                since, claimed = self._since.get(name), last.get(name)
                if since is None:
                    continue
                after = max(since, claimed) if claimed else since
                start = self._held(name, after, bounds.get(name), "timer_restart")
                self._catch_up(name, start, now, cause="timer_restart")
            self._since = dict.fromkeys(self._cadences, now)
            self._loaded_at = now

    def _bounds(self, last: Mapping[str, datetime], now: datetime) -> Mapping[str, Since]:
        if self.since is None:
            return {}
        return self.since({n: at for n, at in last.items() if n in self.specs}, now)

    def _held(
        self, name: str, last: datetime | None, bound: Since | None, cause: MissCause
    ) -> datetime | None:
        """Where catch-up starts for a schedule whose newest claimed slot is ``last``:
        never before its timing took effect, nor before a suspension that ended since;
        the slots that fell due while it was suspended are recorded as such."""
        floor = bound.floor if bound is not None else None
        if last is None or bound is None or floor is None or floor <= last:
            return last
        resumed, held_from = bound.resumed_at, bound.held_from
        lower = max(last, bound.changed_at or last)
        with self._lock:
            spec, cadence = self.specs.get(name), self._cadences.get(name)
        if resumed is None or held_from is None or resumed <= lower:
            return floor
        if spec is None or cadence is None:
            return floor
        # Every slot is recorded, none run ("none" does that): those before the
        # suspension as missed (the engine was down), those it held as suspended.
        window = spec.catchup_window
        if held_from > lower:
            missed = decide_catchup(cadence, lower, held_from, "none", window)
            if missed.missed or missed.missed_beyond:
                self.firing.catch_up(name, missed, trigger="catchup", cause=cause)
        held = decide_catchup(cadence, max(lower, held_from), resumed, "none", window)
        if held.missed or held.missed_beyond:
            self.firing.catch_up(name, held, trigger="catchup", cause=cause, held=True)
        return floor

    def _fire(self, due: Due, now: datetime) -> None:
        if len(due.slots) == 1 and not due.truncated:
            self.firing.fire(due.name, due.slots[0], decided_at=now)
            return
        # The loop itself woke more than one slot late (the host was suspended or
        # overloaded): treat it as downtime, by the schedule's catch-up policy.
        before = due.first - timedelta(microseconds=1)
        log.warning("schedule %s: %d slots overdue at once", due.name, due.count)
        self._catch_up(due.name, before, now, trigger="schedule", cause="engine_late")

    def _catch_up(
        self,
        name: str,
        last: datetime | None,
        now: datetime,
        *,
        cause: MissCause,
        trigger: RunTrigger = "catchup",
    ) -> None:
        with self._lock:  # a revision may be loading meanwhile: read one or the other
            spec, cadence = self.specs.get(name), self._cadences.get(name)
        if spec is None or cadence is None:
            return  # removed or disabled by the revision loaded since it was due
        decision = decide_catchup(cadence, last, now, spec.catchup, spec.catchup_window)
        if decision.run or decision.missed or decision.missed_beyond:
            self.firing.catch_up(name, decision, trigger=trigger, cause=cause)


def _settle(future: asyncio.Future[None], failure: BaseException) -> None:
    if not future.done():
        future.set_exception(failure)


def _write(pipe: IO[bytes], data: bytes) -> None:
    pipe.write(data)
    pipe.flush()
