"""The scheduler's timer process and the thread that fires what it decides, on the real
clock: the shortest rate, generous bounds.

Each test waits for what it expects (fires recorded, the timer gone) with a deadline
instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobdeck.cadence import Cadence, CronCadence, RateCadence
from jobdeck.catalog.load import load_catalog_text
from jobdeck.clock import SystemClock
from jobdeck.schedule.firequeue import Due
from jobdeck.schedule.scheduler import FIRE_THREAD, Scheduler, TimerFailed
from jobdeck.schedule.wire import (
    WireError,
    decode_cadences,
    decode_due,
    encode_cadences,
    encode_due,
)
from jobdeck.store.records import Trigger as RunTrigger
from jobdeck.workflow.decisions import CatchupDecision, MissCause

CATALOG = """\
version: 1
project: t
schedules:
  quick:
    rate: 1s
    command: ["/bin/true"]
"""


class Firing:
    """Records each fire with its trigger, the thread that made it and the instant it was
    decided; ``takes`` seconds per fire stand for a slow store."""

    def __init__(self, fail: bool = False, takes: float = 0.0) -> None:
        self.fail = fail
        self.takes = takes
        self.fires: list[tuple[str, datetime, str, datetime | None]] = []
        self.triggers: list[RunTrigger] = []
        self.fired_at: list[datetime] = []
        self.missed: list[datetime] = []
        self.lock = threading.Lock()

    def fire(
        self,
        name: str,
        nominal: datetime,
        trigger: RunTrigger = "schedule",
        decided_at: datetime | None = None,
    ) -> object:
        if self.fail:
            raise RuntimeError("the store is gone")
        if trigger == "schedule":
            assert decided_at is not None, "the loop passes the instant it decided the slot"
        time.sleep(self.takes)
        with self.lock:
            self.fires.append((name, nominal, threading.current_thread().name, decided_at))
            self.triggers.append(trigger)
            self.fired_at.append(SystemClock().now())
        return None

    def catch_up(
        self,
        name: str,
        decision: CatchupDecision,
        *,
        trigger: RunTrigger,
        cause: MissCause,
        held: bool = False,
    ) -> None:
        assert not decision.missed_beyond
        with self.lock:
            self.missed.extend(decision.missed)
        for slot in decision.run:
            self.fire(name, slot, trigger)

    def last_fires(self) -> dict[str, datetime]:
        """Each schedule's newest slot, as the store's claims tell it."""
        with self.lock:
            slots = [(name, nominal) for name, nominal, _, _ in self.fires]
        newest: dict[str, datetime] = {}
        for name, nominal in slots + [("quick", m) for m in self.missed]:
            newest[name] = max(nominal, newest.get(name, nominal))
        return newest

    def slots(self) -> list[datetime]:
        return [nominal for _, nominal, _, _ in self.fires]

    def scheduled(self) -> list[tuple[datetime, datetime]]:
        """(nominal, decided) of the fires the timer decided."""
        return [(n, d) for _, n, _, d in self.fires if d is not None]


def schedules() -> Any:
    return load_catalog_text(CATALOG, "jobdeck.yaml").catalog.schedules


def scheduler_for(firing: Firing, **options: Any) -> Scheduler:
    return Scheduler(firing, SystemClock(), firing.last_fires, **options)


def running(firing: Firing) -> tuple[Scheduler, asyncio.Task[None]]:
    """A scheduler with the catalog's schedules, its loop running (in the running loop)."""
    scheduler = scheduler_for(firing)
    scheduler.load(schedules(), catch_up=False)
    return scheduler, asyncio.create_task(scheduler.run())


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def fire_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == FIRE_THREAD]


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def one_second_apart(slots: list[datetime]) -> bool:
    return all((b - a).total_seconds() == 1.0 for a, b in itertools.pairwise(slots))


def test_slots_are_decided_by_the_timer_process_and_fired_in_order() -> None:
    firing = Firing()
    timers: list[int] = []

    async def scenario() -> None:
        scheduler, task = running(firing)
        await until(lambda: scheduler.timer_pid is not None)
        timers.append(scheduler.timer_pid or 0)
        await until(lambda: len(firing.fires) >= 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert scheduler.timer_pid is None

    asyncio.run(scenario())
    assert timers[0] != os.getpid()
    assert gone(timers[0]), "cancelling run() ends the timer and reaps it"
    assert not fire_threads(), "...and its thread"
    assert one_second_apart(firing.slots())
    assert {thread for _, _, thread, _ in firing.fires} == {FIRE_THREAD}
    # Never early; late only by the machine's scheduling (a generous bound).
    assert all(
        0 <= (decided - nominal).total_seconds() < 2 for nominal, decided in firing.scheduled()
    )


def test_a_revision_loaded_while_it_sleeps_reaches_the_timer() -> None:
    firing = Firing()

    async def scenario() -> None:
        scheduler = scheduler_for(firing)
        task = asyncio.create_task(scheduler.run())  # nothing to fire: it sleeps for good
        await until(lambda: scheduler.timer_pid is not None)
        scheduler.load(schedules(), catch_up=False)
        await until(lambda: len(firing.fires) >= 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert firing.fires[0][0] == "quick"
    assert not fire_threads()


def test_a_failing_fire_ends_run_with_the_error_and_the_timer() -> None:
    timers: list[int] = []

    async def scenario() -> None:
        scheduler, task = running(Firing(fail=True))
        await until(lambda: scheduler.timer_pid is not None)
        timers.append(scheduler.timer_pid or 0)
        await asyncio.wait_for(task, 10)

    with pytest.raises(RuntimeError, match="the store is gone"):
        asyncio.run(scenario())
    assert gone(timers[0])
    assert not fire_threads()


def test_a_slow_fire_does_not_make_the_next_slot_late() -> None:
    """The timer decides each slot when it is due, even while the slot before it is
    still being recorded: lateness is the timer's, the store's time comes after."""
    firing = Firing(takes=1.5)  # slower than the schedule's 1 s rate

    async def scenario() -> None:
        _, task = running(firing)
        await until(lambda: len(firing.fires) >= 3, limit=20)
        firing.takes = 0.0  # the slots still queued need not take as long to drain
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    slots = firing.slots()
    assert one_second_apart(slots), "no slot skipped or merged while the firing lagged"
    third_decided = firing.fires[2][3]
    assert third_decided is not None
    assert 0 <= (third_decided - slots[2]).total_seconds() < 0.5
    assert (firing.fired_at[2] - third_decided).total_seconds() > 0.5, "it did lag"


def test_a_busy_interpreter_does_not_make_the_decision_late() -> None:
    """While the server's interpreter is held by one long computation (a regular
    expression holds it from start to end), no thread of the server can run; the slots
    that fall due meanwhile are still decided on time, and fired once it is free."""
    firing = Firing()
    held: list[float] = []

    def hold() -> None:
        held.append(time.time())
        _busy(_hog_size())
        held.append(time.time())

    async def scenario() -> None:
        _, task = running(firing)
        await until(lambda: len(firing.fires) >= 1)
        hog = threading.Thread(target=hold)
        hog.start()
        await asyncio.to_thread(hog.join)
        await until(lambda: firing.slots()[-1].timestamp() > held[1])
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    began, ended = held
    assert ended - began > 1.5, "the computation held the interpreter over a slot"
    inside = [(n, d) for n, d in firing.scheduled() if began + 0.1 < n.timestamp() < ended - 0.3]
    assert inside, "a slot fell due while the interpreter was held"
    for nominal, decided in inside:
        assert (decided - nominal).total_seconds() < 0.3, "decided on time"
    slots = firing.slots()
    assert one_second_apart(slots)
    first = slots.index(inside[0][0])
    assert firing.fired_at[first].timestamp() >= ended - 0.05, "fired once the lock was free"


def test_stopping_fires_every_slot_already_decided() -> None:
    firing = Firing(takes=2.0)  # slots pile up behind the one firing
    stopped: list[datetime] = []

    async def scenario() -> None:
        _, task = running(firing)
        await until(lambda: len(firing.fires) >= 1, limit=20)
        await asyncio.sleep(2.5)  # two slots decided behind the one firing
        stopped.append(SystemClock().now())
        firing.takes = 0.0  # the queued slots fire quickly; the one in progress goes on
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert not fire_threads()
    slots = firing.slots()
    assert one_second_apart(slots)
    # Every slot due well before the stop was decided, so it was fired before run() ended
    # (without the drain the last fired would be the one in progress, 2.5 s before).
    assert (stopped[0] - slots[-1]).total_seconds() < 1.5
    assert len(slots) >= 5


def test_a_timer_that_dies_is_started_again_and_no_slot_is_lost() -> None:
    """A timer frozen over a slot and then killed took that slot with it: the scheduler
    starts another one and catches the slot up (the schedule's policy is ``latest``),
    and no slot is fired twice."""
    firing = Firing()
    timers: list[int] = []

    async def scenario() -> None:
        scheduler, task = running(firing)
        await until(lambda: len(firing.fires) >= 3)  # it has lived long enough
        first = scheduler.timer_pid or 0
        timers.append(first)
        os.kill(first, signal.SIGSTOP)
        await asyncio.sleep(1.5)  # a slot falls due that it cannot decide
        os.kill(first, signal.SIGKILL)
        await until(lambda: scheduler.timer_pid not in (None, first))
        timers.append(scheduler.timer_pid or 0)
        count = len(firing.fires)
        await until(lambda: len(firing.fires) >= count + 2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert all(gone(pid) for pid in timers)
    assert "catchup" in firing.triggers, "the slot the frozen timer held was caught up"
    every = sorted(firing.slots() + firing.missed)
    assert len(every) == len(set(every)), "no slot twice"
    assert one_second_apart(every), "no slot lost"


def test_a_timer_that_cannot_start_ends_run_with_a_clear_error() -> None:
    async def scenario() -> None:
        scheduler = scheduler_for(Firing(), python="/bin/false")
        scheduler.load(schedules(), catch_up=False)
        await asyncio.wait_for(scheduler.run(), 10)

    with pytest.raises(TimerFailed, match=r"/bin/false -m jobdeck.schedule.timer\) exited"):
        asyncio.run(scenario())
    assert not fire_threads()


def test_the_wire_carries_triggers_and_slots_exactly() -> None:
    now = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC)
    triggers: dict[str, Cadence] = {
        "paris": CronCadence("30 2 * * *", "Europe/Paris"),
        "odd": RateCadence(timedelta(milliseconds=120_011)),
        "micro": RateCadence(timedelta(microseconds=1_000_001)),
    }
    assert decode_cadences(encode_cadences(triggers, now)) == (triggers, now)
    slots = (now + timedelta(microseconds=1), now + timedelta(seconds=1))
    due = Due("odd", slots, now - timedelta(days=400), 7)
    assert decode_due(encode_due(due, now)) == (due, now)
    for line in (b"{", b"[]", b'{"name": "x", "slots": [], "first": 0, "count": 0}'):
        with pytest.raises(WireError):
            decode_due(line)
    with pytest.raises(WireError):
        decode_cadences(b'{"now": 0, "triggers": {"x": {"rate": "soon"}}}')


def _busy(size: int) -> None:
    re.match(r"(a+)+$", "a" * size + "b")


def _hog_size() -> int:
    """A size for which :func:`_busy` holds the interpreter for about two seconds or more
    (each step of one doubles the time)."""
    size = 16
    while True:
        began = time.perf_counter()
        _busy(size)
        if time.perf_counter() - began > 0.15:
            return size + 4
        size += 1


SERVER = """\
import asyncio, sys
from jobdeck.catalog.load import load_catalog_text
from jobdeck.clock import SystemClock
from jobdeck.schedule.scheduler import Scheduler

class Firing:
    def fire(self, *args, **kwargs): return None
    def catch_up(self, *args, **kwargs): return None

scheduler = Scheduler(Firing(), SystemClock(), dict)
scheduler.load(load_catalog_text(sys.argv[1], "jobdeck.yaml").catalog.schedules, catch_up=False)
scheduler.start()
print(scheduler.timer_pid, flush=True)
asyncio.run(asyncio.sleep(60))
"""


def test_the_timer_ends_when_the_server_is_killed() -> None:
    """A server killed outright (SIGKILL: nothing of it runs again) leaves no timer
    behind: the timer's input ends with the server."""
    with subprocess.Popen(
        [sys.executable, "-c", SERVER, CATALOG], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            timer = int(server.stdout.readline())
            assert _running(timer)
            server.kill()
            server.wait(10)
            deadline = time.monotonic() + 10
            while _running(timer):
                assert time.monotonic() < deadline, "the timer outlived the server"
                time.sleep(0.01)
        finally:
            server.kill()


def _running(pid: int) -> bool:
    """The process exists and has not exited (an exited one may wait to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(") ", 1)[1].split()[0] not in ("Z", "X")
