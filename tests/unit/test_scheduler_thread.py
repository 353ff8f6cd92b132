"""The scheduler's loop in its own thread, on the real clock: the shortest rate, generous
bounds.

Each test waits for what it expects (fires recorded, the thread gone) with a deadline
instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from jobdeck.catalog.load import load_catalog_text
from jobdeck.clock import SystemClock
from jobdeck.schedule.scheduler import Scheduler
from jobdeck.store.records import Trigger

CATALOG = """\
version: 1
project: t
schedules:
  quick:
    rate: 1s
    command: ["/bin/true"]
"""
TIMER, FIRER = "jobdeck-scheduler", "jobdeck-scheduler-fire"


class Firing:
    """Records each fire with the thread that made it and the instant it was decided;
    ``takes`` seconds per fire stand for a slow store."""

    def __init__(self, fail: bool = False, takes: float = 0.0) -> None:
        self.fail = fail
        self.takes = takes
        self.fires: list[tuple[str, datetime, str, datetime]] = []
        self.fired_at: list[datetime] = []
        self.lock = threading.Lock()

    def fire(
        self,
        name: str,
        nominal: datetime,
        trigger: Trigger = "schedule",
        decided_at: datetime | None = None,
    ) -> object:
        if self.fail:
            raise RuntimeError("the store is gone")
        assert decided_at is not None, "the loop passes the instant it decided the slot"
        time.sleep(self.takes)
        with self.lock:
            self.fires.append((name, nominal, threading.current_thread().name, decided_at))
            self.fired_at.append(SystemClock().now())
        return None

    def record_missed(self, name: str, slots: list[datetime], summary: dict[str, Any]) -> None:
        raise AssertionError("nothing is missed in these tests")


def schedules() -> Any:
    return load_catalog_text(CATALOG, "jobdeck.yaml").catalog.schedules


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def scheduler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in (TIMER, FIRER)]


def test_slots_fire_from_the_schedulers_own_threads_in_order() -> None:
    firing = Firing()

    async def scenario() -> None:
        scheduler = Scheduler(firing, SystemClock(), dict)
        scheduler.load(schedules(), catch_up=False)
        task = asyncio.create_task(scheduler.run())
        await until(lambda: len(firing.fires) >= 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert not scheduler_threads(), "cancelling run() ends its thread"
    slots = [nominal for _, nominal, _, _ in firing.fires]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(slots)] == [1.0] * (
        len(slots) - 1
    )
    assert {thread for _, _, thread, _ in firing.fires} == {FIRER}
    # Never early; late only by the machine's scheduling (a generous bound).
    assert all(
        0 <= (decided - nominal).total_seconds() < 2 for _, nominal, _, decided in firing.fires
    )


def test_a_revision_loaded_while_it_sleeps_wakes_it() -> None:
    firing = Firing()

    async def scenario() -> None:
        scheduler = Scheduler(firing, SystemClock(), dict)
        task = asyncio.create_task(scheduler.run())  # nothing to fire: it sleeps for good
        await until(lambda: bool(scheduler_threads()))
        scheduler.load(schedules(), catch_up=False)
        await until(lambda: len(firing.fires) >= 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert firing.fires[0][0] == "quick"
    assert not scheduler_threads()


def test_a_failing_fire_ends_run_with_the_error() -> None:
    async def scenario() -> None:
        scheduler = Scheduler(Firing(fail=True), SystemClock(), dict)
        scheduler.load(schedules(), catch_up=False)
        await asyncio.wait_for(scheduler.run(), 10)

    with pytest.raises(RuntimeError, match="the store is gone"):
        asyncio.run(scenario())
    assert not scheduler_threads()


def test_a_slow_fire_does_not_make_the_next_slot_late() -> None:
    """The timer decides each slot when it is due, even while the slot before it is
    still being recorded: lateness is the timer's, the store's time comes after."""
    firing = Firing(takes=1.5)  # slower than the schedule's 1 s rate

    async def scenario() -> None:
        scheduler = Scheduler(firing, SystemClock(), dict)
        scheduler.load(schedules(), catch_up=False)
        task = asyncio.create_task(scheduler.run())
        await until(lambda: len(firing.fires) >= 3, limit=20)
        firing.takes = 0.0  # the slots still queued need not take as long to drain
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    slots = [nominal for _, nominal, _, _ in firing.fires]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(slots)] == [1.0] * (
        len(slots) - 1
    ), "no slot skipped or merged while the firing lagged"
    third_decided = firing.fires[2][3]
    assert 0 <= (third_decided - slots[2]).total_seconds() < 0.5
    assert (firing.fired_at[2] - third_decided).total_seconds() > 0.5, "it did lag"


def test_stopping_fires_every_slot_already_decided() -> None:
    firing = Firing(takes=2.0)  # slots pile up behind the one firing
    stopped: list[datetime] = []

    async def scenario() -> None:
        scheduler = Scheduler(firing, SystemClock(), dict)
        scheduler.load(schedules(), catch_up=False)
        task = asyncio.create_task(scheduler.run())
        await until(lambda: len(firing.fires) >= 1, limit=20)
        await asyncio.sleep(2.5)  # two slots decided behind the one firing
        stopped.append(SystemClock().now())
        firing.takes = 0.0  # the queued slots fire quickly; the one in progress goes on
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert not scheduler_threads()
    slots = [nominal for _, nominal, _, _ in firing.fires]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(slots)] == [1.0] * (
        len(slots) - 1
    )
    # Every slot due well before the stop was decided, so it was fired before run() ended
    # (without the drain the last fired would be the one in progress, 2.5 s before).
    assert (stopped[0] - slots[-1]).total_seconds() < 1.5
    assert len(slots) >= 5
