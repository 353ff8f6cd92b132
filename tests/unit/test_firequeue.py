"""The fire queue and the scheduler's decisions, against fixed datetimes (no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobdeck.cadence import CronCadence, RateCadence
from jobdeck.catalog.load import load_catalog_text
from jobdeck.clock import FakeClock
from jobdeck.schedule.firequeue import MAX_OVERDUE, FireQueue
from jobdeck.schedule.scheduler import Scheduler
from jobdeck.store.records import Trigger
from jobdeck.workflow.decisions import CatchupDecision, MissCause

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_next_due_is_the_earliest_slot_of_any_schedule() -> None:
    queue = FireQueue()
    queue.update({"ten": CronCadence("*/10 * * * *"), "hourly": CronCadence("0 * * * *")}, at(0.5))
    assert queue.next_due() == at(10)
    assert queue.next_of("hourly") == at(60)
    assert queue.pop_due(at(9.99)) == []


def test_pop_due_returns_each_due_schedule_once_and_moves_it_on() -> None:
    queue = FireQueue()
    queue.update({"ten": CronCadence("*/10 * * * *"), "five": CronCadence("*/5 * * * *")}, T0)
    due = queue.pop_due(at(10))
    assert sorted((d.name, d.slots) for d in due) == [
        ("five", (at(5), at(10))),
        ("ten", (at(10),)),
    ]
    assert queue.next_due() == at(15)
    assert queue.next_of("ten") == at(20)


def test_an_unchanged_trigger_keeps_its_place_across_an_update() -> None:
    queue = FireQueue()
    queue.update({"ten": CronCadence("*/10 * * * *")}, T0)
    queue.update(
        {"ten": CronCadence("*/10 * * * *"), "new": RateCadence(timedelta(minutes=7))}, at(9)
    )
    assert queue.next_of("ten") == at(10)
    # a rate counts from the epoch: the first multiple of 7 minutes after 12:09
    assert queue.next_of("new") is not None
    assert queue.next_of("new") > at(9)  # type: ignore[operator]


def test_a_changed_trigger_counts_from_now_and_a_removed_one_never_fires() -> None:
    queue = FireQueue()
    queue.update({"a": CronCadence("*/10 * * * *"), "b": CronCadence("*/10 * * * *")}, T0)
    queue.update({"a": CronCadence("*/30 * * * *")}, at(1))
    assert "b" not in queue
    assert queue.next_of("a") == at(30)
    assert [d.name for d in queue.pop_due(at(60))] == ["a"]


def test_a_very_late_wake_is_bounded() -> None:
    queue = FireQueue()
    queue.update({"fast": RateCadence(timedelta(seconds=1))}, T0)
    (due,) = queue.pop_due(at(60))
    assert due.truncated
    assert len(due.slots) == MAX_OVERDUE
    assert due.slots[-1] == at(60)
    assert due.first == T0 + timedelta(seconds=1)
    assert due.count == 3600
    assert queue.next_of("fast") == at(60) + timedelta(seconds=1)


def test_many_schedules_fire_in_order_of_their_slots() -> None:
    queue = FireQueue()
    triggers = {f"s{i}": RateCadence(timedelta(seconds=10 + i)) for i in range(200)}
    queue.update(triggers, T0)
    seen: list[datetime] = []
    now = T0
    for _ in range(500):
        nxt = queue.next_due()
        assert nxt is not None
        now = nxt
        for due in queue.pop_due(now):
            assert due.slots == (now,)
            seen.append(due.slots[0])
    assert seen == sorted(seen)


def test_an_update_compacts_stale_heap_entries() -> None:
    queue = FireQueue()
    for round_ in range(50):
        queue.update({"a": RateCadence(timedelta(seconds=60 + round_))}, T0)
    assert len(queue._heap) < 70


class Recorder:
    def __init__(self) -> None:
        self.fired: list[tuple[str, datetime, Trigger]] = []
        self.missed: list[tuple[str, list[datetime], dict[str, Any]]] = []
        self.causes: list[MissCause] = []

    def fire(
        self,
        name: str,
        nominal: datetime,
        trigger: Trigger = "schedule",
        decided_at: datetime | None = None,
    ) -> object:
        self.fired.append((name, nominal, trigger))
        return None

    def catch_up(
        self,
        name: str,
        decision: CatchupDecision,
        *,
        trigger: Trigger,
        cause: MissCause,
        held: bool = False,
    ) -> None:
        self.causes.append(cause)
        summary = {"missed_slots": decision.missed_beyond} if decision.missed_beyond else {}
        self.missed.append((name, list(decision.missed), summary))
        for slot in decision.run:
            self.fire(name, slot, trigger)


CATALOG = """\
version: 1
project: t
timezone: Asia/Tokyo
schedules:
  every-ten:
    cron: "*/10 * * * *"
    command: ["true"]
    catchup: {catchup}
    catchup_window: 1h
  off:
    cron: "* * * * *"
    command: ["true"]
    enabled: false
"""


def scheduler_for(
    catchup: str, last: datetime | None, clock: FakeClock
) -> tuple[Scheduler, Recorder]:
    recorder = Recorder()
    scheduler = Scheduler(recorder, clock, lambda: {} if last is None else {"every-ten": last})
    catalog = load_catalog_text(CATALOG.format(catchup=catchup), "jobdeck.yaml").catalog
    scheduler.load(catalog.schedules, catch_up=True)
    return scheduler, recorder


def test_tick_fires_due_slots_at_the_fake_clock() -> None:
    clock = FakeClock(at(0.5))
    scheduler, recorder = scheduler_for("none", None, clock)
    assert scheduler.tick() == at(10)
    assert recorder.fired == []
    clock.set(at(10))
    assert scheduler.tick() == at(20)
    assert recorder.fired == [("every-ten", at(10), "schedule")]
    assert "off" not in scheduler.queue  # a disabled schedule is never queued


@pytest.mark.parametrize(
    ("policy", "runs", "missed"),
    [
        ("latest", [at(30)], [at(-20), at(-10), at(0), at(10), at(20)]),
        ("all", [at(-20), at(-10), at(0), at(10), at(20), at(30)], []),
        ("none", [], [at(-20), at(-10), at(0), at(10), at(20), at(30)]),
    ],
)
def test_catch_up_on_start_follows_the_policy(
    policy: str, runs: list[datetime], missed: list[datetime]
) -> None:
    # the engine was down from 11:35 to 12:35; the window (1h) reaches back to 11:35
    clock = FakeClock(at(35))
    _, recorder = scheduler_for(policy, at(-25), clock)
    assert [slot for _, slot, _ in recorder.fired] == runs
    assert all(trigger == "catchup" for _, _, trigger in recorder.fired)
    assert recorder.causes == ["engine_down"]
    recorded = [slot for _, slots, _ in recorder.missed for slot in slots]
    assert recorded == missed


def test_slots_outside_the_window_are_recorded_not_run() -> None:
    clock = FakeClock(at(35))
    _, recorder = scheduler_for("all", at(-125), clock)
    ran = [slot for _, slot, _ in recorder.fired]
    assert ran == [at(-20), at(-10), at(0), at(10), at(20), at(30)]
    recorded = [slot for _, slots, _ in recorder.missed for slot in slots]
    assert recorded[0] == at(-120)
    assert len(recorded) == 10  # 10:00 ... 11:30


def test_a_late_wake_within_the_loop_is_treated_as_downtime() -> None:
    clock = FakeClock(at(0.5))
    scheduler, recorder = scheduler_for("latest", None, clock)
    clock.set(at(40))  # the host slept through 12:10, 12:20, 12:30 and 12:40
    scheduler.tick()
    assert [slot for _, slot, _ in recorder.fired] == [at(40)]
    assert recorder.causes == ["engine_late"]
    assert [slot for _, slots, _ in recorder.missed for slot in slots] == [
        at(10),
        at(20),
        at(30),
    ]


def test_cron_slots_follow_the_zone_of_the_schedule() -> None:
    queue = FireQueue()
    # 09:00 in Tokyo is 00:00 UTC
    queue.update({"morning": CronCadence("0 9 * * *", "Asia/Tokyo")}, T0)
    assert queue.next_due() == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
