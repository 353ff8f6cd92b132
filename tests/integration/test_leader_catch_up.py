"""A new leader's first timed fire waits for the catch-up of its tenure.

When a node takes the lead, its timer may decide a slot at once (it ran all along on the
standby) while the catch-up of the slots missed since the last leader is still to be
decided. Fired first, that slot would be the schedule's newest claimed one: the catch-up
counts from it and leaves the missed slots without any record (or, with a later fire,
skips the newest missed slot as overlapping with a fire that came after it). Driven by a
fake clock through the real run driver, on each store.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobdeck.clock import FakeClock
from jobdeck.schedule.leader import LeaderFiring
from jobdeck.schedule.scheduler import Scheduler
from tests.integration.test_workflow_harness import T0, Decks, until

pytestmark = pytest.mark.anyio

CATALOG = """
    version: 1
    project: leader
    schedules:
      tick:
        rate: 1h
        command: ["true"]
        catchup: latest
        catchup_window: 1d
    """


@pytest.fixture
def decks(tmp_path: Path, store_url: str | None) -> Iterator[Decks]:
    made = Decks(tmp_path, store_url)
    yield made
    made.cleanup()


async def test_the_timers_first_fire_waits_for_the_new_leaders_catch_up(decks: Decks) -> None:
    clock = FakeClock(T0)
    deck = decks(CATALOG, clock=clock)
    first = deck.driver.fire("tick", T0)  # the last slot the old leader claimed
    assert first is not None
    await deck.wait_ended(first.id)
    # Three hours later a standby takes the lead (tenure 2); its timer decides the slot
    # of the moment before the application has caught up.
    firing = LeaderFiring(deck.driver, lambda: True, lambda: 2)
    scheduler = Scheduler(firing, clock, deck.store.runs.last_fires)
    due = T0 + timedelta(hours=4)
    clock.set(due)
    timed = threading.Thread(target=firing.fire, args=("tick", due), kwargs={"decided_at": due})
    timed.start()
    await until(lambda: not timed.is_alive() or firing.held > 0, "the timed fire")
    scheduler.load(deck.catalog.schedules, catch_up=True)
    firing.caught_up(2)
    await asyncio.to_thread(timed.join)
    runs = {r.scheduled_for: r for r in deck.runs("tick") if r.scheduled_for is not None}
    missed = [T0 + timedelta(hours=h) for h in (1, 2, 3)]
    # Every slot has its record: the missed ones skipped as missed, the newest caught
    # up and run (the timed fire of the same slot found it claimed).
    assert sorted(runs) == [T0, *missed, due]
    for slot in missed:
        assert (runs[slot].status, runs[slot].reason) == ("skipped", "missed")
    latest = runs[due]
    assert (latest.trigger, latest.reason) == ("catchup", None), latest
    assert (await deck.wait_ended(latest.id)).status == "succeeded"


async def test_a_standby_fires_nothing_and_a_leader_that_caught_up_fires_at_once(
    decks: Decks,
) -> None:
    clock = FakeClock(T0)
    deck = decks(CATALOG, clock=clock)
    leading = False
    firing = LeaderFiring(deck.driver, lambda: leading, lambda: 3)
    assert firing.fire("tick", T0, decided_at=T0) is None
    leading = True
    firing.caught_up(3)
    fired = firing.fire("tick", T0 + timedelta(hours=1), decided_at=T0 + timedelta(hours=1))
    assert fired is not None
    assert fired.trigger == "schedule"
    await deck.wait_ended(fired.id)
