"""The pure parts of backfill and jitter: slots of a range, a slot's own delay, the
shortest interval of a cadence, and the catalog's errors at ``FILE:LINE:COL``."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobdeck.cadence import (
    CronCadence,
    RateCadence,
    is_slot,
    jitter_delay,
    shortest_interval,
    slots_in,
)
from jobdeck.catalog.load import CatalogError, LoadedCatalog, load_catalog_text
from jobdeck.catalog.model import Schedule
from jobdeck.workflow.backfill import MAX_SLOTS, SlotError, backfill_slots, check_slot

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def load(text: str) -> LoadedCatalog:
    return load_catalog_text(textwrap.dedent(text).lstrip("\n"), "c.yaml")


def errors(text: str) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load(text)
    return [str(d) for d in info.value.diagnostics]


def schedule(**fields: str) -> Schedule:
    extra = "".join(f"    {k}: {v}\n" for k, v in fields.items())
    head = 'version: 1\nproject: demo\nschedules:\n  job:\n    command: ["true"]\n'
    return load(head + extra).catalog.schedules["job"]


# --- slots ------------------------------------------------------------------------------


def test_slots_in_includes_both_ends_and_tells_when_there_are_more() -> None:
    every = RateCadence(timedelta(minutes=10))
    assert slots_in(every, T0, T0 + timedelta(minutes=30), 10) == [
        T0 + timedelta(minutes=m) for m in (0, 10, 20, 30)
    ]
    assert slots_in(every, T0 + timedelta(seconds=1), T0 + timedelta(minutes=10), 10) == [
        T0 + timedelta(minutes=10)
    ]
    assert len(slots_in(every, T0, T0 + timedelta(days=1), 3)) == 4  # limit + 1


def test_a_slot_is_one_of_the_cadence_instants_in_its_zone() -> None:
    tokyo = CronCadence("0 3 * * *", "Asia/Tokyo")
    assert is_slot(tokyo, datetime(2026, 3, 1, 18, 0, tzinfo=UTC))
    assert not is_slot(tokyo, datetime(2026, 3, 1, 18, 0, 1, tzinfo=UTC))
    assert not is_slot(tokyo, datetime(2026, 3, 1, 3, 0, tzinfo=UTC))


def test_backfill_slots_refuses_backwards_future_and_more_than_the_cap() -> None:
    spec = schedule(rate="1m")
    assert len(backfill_slots(spec, T0, T0 + timedelta(minutes=MAX_SLOTS - 1), NOW)) == 1000
    with pytest.raises(
        SlotError, match=r"more than 1,000 slots \(slot 1,001 is 2026-03-03T01:40:00Z\)"
    ):
        backfill_slots(spec, T0, T0 + timedelta(minutes=MAX_SLOTS), NOW)
    with pytest.raises(SlotError, match="swap them"):
        backfill_slots(spec, T0, T0 - timedelta(minutes=1), NOW)
    with pytest.raises(SlotError, match="is in the future"):
        backfill_slots(spec, T0, NOW + timedelta(seconds=1), NOW)
    assert backfill_slots(spec, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), NOW) == []


def test_check_slot_names_the_next_slot_and_refuses_the_future() -> None:
    spec = schedule(cron='"*/15 * * * *"')
    check_slot(spec, T0 + timedelta(minutes=45), NOW)
    with pytest.raises(SlotError, match="the next slot after it is 2026-03-02T09:15:00Z"):
        check_slot(spec, T0 + timedelta(minutes=7), NOW)
    with pytest.raises(SlotError, match="in the future"):
        check_slot(spec, NOW + timedelta(minutes=15), NOW)


# --- jitter -----------------------------------------------------------------------------


def test_jitter_is_deterministic_below_the_bound_and_spreads() -> None:
    jitter = timedelta(seconds=30)
    slots = [T0 + timedelta(minutes=m) for m in range(2000)]
    delays = [jitter_delay("feed", s, jitter) for s in slots]
    assert delays == [jitter_delay("feed", s, jitter) for s in slots]  # every engine agrees
    assert all(timedelta(0) <= d < jitter for d in delays)
    # Spread: each tenth of the range gets about a tenth of the slots.
    tenths = [0] * 10
    for delay in delays:
        tenths[int(delay / jitter * 10)] += 1
    assert min(tenths) > 140
    assert max(tenths) < 260
    # Another schedule's same slot gets its own delay; the zone of the instant is irrelevant.
    assert [jitter_delay("rank", s, jitter) for s in slots[:20]] != delays[:20]
    tokyo = slots[0].astimezone(ZoneInfo("Asia/Tokyo"))
    assert jitter_delay("feed", tokyo, jitter) == delays[0]
    assert jitter_delay("feed", T0, timedelta(0)) == timedelta(0)


def test_shortest_interval_of_rates_and_crons_across_daylight_saving() -> None:
    assert shortest_interval(RateCadence(timedelta(seconds=45))) == timedelta(seconds=45)
    assert shortest_interval(CronCadence("*/10 * * * *")) == timedelta(minutes=10)
    assert shortest_interval(CronCadence("0,50 * * * *")) == timedelta(minutes=10)
    assert shortest_interval(CronCadence("0 9 * * 1-5")) == timedelta(days=1)
    # A daily slot in Paris is 23 hours after the one before on the spring-forward day.
    assert shortest_interval(CronCadence("30 3 * * *", "Europe/Paris")) == timedelta(hours=23)


# --- the catalog ------------------------------------------------------------------------


def test_jitter_must_be_shorter_than_the_interval_reported_where_it_is_written() -> None:
    assert errors(
        """
        version: 1
        project: demo
        schedules:
          tick:
            rate: 30s
            jitter: 30s
            command: ["true"]
          daily:
            cron: "30 3 * * *"
            timezone: Europe/Paris
            jitter: 23h30m
            command: ["true"]
        """
    ) == [
        "c.yaml:6:5: error: schedules.tick.jitter: 30s is not shorter than the schedule's "
        "interval (30s, the shortest time between two slots); lower it",
        "c.yaml:11:5: error: schedules.daily.jitter: 23h30m is not shorter than the "
        "schedule's interval (23h, the shortest time between two slots); lower it",
    ]


def test_a_default_jitter_is_checked_for_every_schedule_that_takes_it() -> None:
    assert errors(
        """
        version: 1
        project: demo
        defaults:
          jitter: 2m
        schedules:
          often:
            rate: 1m
            command: ["true"]
          own:
            rate: 1m
            jitter: 10s
            command: ["true"]
          hourly:
            cron: "@hourly"
            command: ["true"]
        """
    ) == [
        "c.yaml:4:11: error: defaults.jitter: schedule 'often': 2m is not shorter than the "
        "schedule's interval (1m, the shortest time between two slots); lower it; or give "
        "it its own jitter"
    ]


def test_jitter_is_applied_from_defaults_and_published_in_the_schema() -> None:
    loaded = load(
        """
        version: 1
        project: demo
        defaults:
          jitter: 20s
        schedules:
          a: {rate: 1m, command: ["true"]}
          b: {rate: 1m, command: ["true"], jitter: 5s}
        """
    )
    schedules = loaded.catalog.schedules
    assert schedules["a"].jitter == timedelta(seconds=20)
    assert schedules["b"].jitter == timedelta(seconds=5)
    with pytest.raises(
        CatalogError, match=r"c.yaml:5:13: error: schedules.a.jitter: invalid duration"
    ):
        load(
            """
            version: 1
            project: demo
            schedules:
              a:
                jitter: soon
                rate: 1m
                command: ["true"]
            """
        )
