"""Next fire times against tables of fixed instants; no clock anywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jobdeck.cadence import (
    CronCadence,
    RateCadence,
    cron_error,
    expand_macro,
    fires_between,
    next_fires,
)


def at(text: str) -> datetime:
    """An instant from ``2024-03-10T06:45`` (UTC unless an offset is given)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cron(expression: str, zone: str, after: str, count: int) -> list[str]:
    fires = next_fires(CronCadence(expression, zone), at(after), count)
    assert all(fire.tzinfo is UTC for fire in fires)
    return [fire.strftime("%Y-%m-%dT%H:%M") for fire in fires]


PLAIN = [
    # expression, zone, after, expected fires in UTC
    ("*/10 * * * *", "UTC", "2024-01-01T00:00", ["2024-01-01T00:10", "2024-01-01T00:20"]),
    ("*/10 * * * *", "UTC", "2024-01-01T00:05:30", ["2024-01-01T00:10", "2024-01-01T00:20"]),
    ("* * * * *", "UTC", "2024-01-01T00:00:00.000001", ["2024-01-01T00:01"]),
    (
        "0 0 * JAN MON",
        "UTC",
        "2024-01-01T00:00",
        [
            "2024-01-08T00:00",
            "2024-01-15T00:00",
            "2024-01-22T00:00",
            "2024-01-29T00:00",
            "2025-01-06T00:00",
        ],
    ),
    (
        "0 9 * * MON-FRI",
        "UTC",
        "2024-03-01T09:00",
        ["2024-03-04T09:00", "2024-03-05T09:00", "2024-03-06T09:00"],
    ),
    (
        "30 8 1,15 * *",
        "UTC",
        "2024-02-10T00:00",
        ["2024-02-15T08:30", "2024-03-01T08:30", "2024-03-15T08:30"],
    ),
    (
        "0 */6 * * *",
        "UTC",
        "2024-05-05T05:59:59",
        ["2024-05-05T06:00", "2024-05-05T12:00", "2024-05-05T18:00", "2024-05-06T00:00"],
    ),
    (
        "15-45/15 3 * * *",
        "UTC",
        "2024-05-05T00:00",
        ["2024-05-05T03:15", "2024-05-05T03:30", "2024-05-05T03:45", "2024-05-06T03:15"],
    ),
    (
        "*/20 9-10 * * sat,sun",
        "UTC",
        "2024-06-01T00:00",
        [
            "2024-06-01T09:00",
            "2024-06-01T09:20",
            "2024-06-01T09:40",
            "2024-06-01T10:00",
            "2024-06-01T10:20",
            "2024-06-01T10:40",
            "2024-06-02T09:00",
        ],
    ),
    (
        "0 0 1 */3 *",
        "UTC",
        "2024-01-15T00:00",
        ["2024-04-01T00:00", "2024-07-01T00:00", "2024-10-01T00:00"],
    ),
    # Day-of-month and day-of-week both restricted: either matches (Vixie/Debian cron).
    (
        "0 0 13 * FRI",
        "UTC",
        "2024-09-01T00:00",
        ["2024-09-06T00:00", "2024-09-13T00:00", "2024-09-20T00:00", "2024-09-27T00:00"],
    ),
    ("0 12 * * 7", "UTC", "2024-05-01T00:00", ["2024-05-05T12:00", "2024-05-12T12:00"]),
    ("0 12 * * 0", "UTC", "2024-05-01T00:00", ["2024-05-05T12:00", "2024-05-12T12:00"]),
    ("0 0 29 2 *", "UTC", "2024-03-01T00:00", ["2028-02-29T00:00", "2032-02-29T00:00"]),
    ("@hourly", "UTC", "2024-05-05T10:30", ["2024-05-05T11:00", "2024-05-05T12:00"]),
    ("@daily", "UTC", "2024-05-05T10:30", ["2024-05-06T00:00", "2024-05-07T00:00"]),
    ("@midnight", "UTC", "2024-05-05T10:30", ["2024-05-06T00:00"]),
    ("@weekly", "UTC", "2024-05-01T00:00", ["2024-05-05T00:00", "2024-05-12T00:00"]),
    ("@monthly", "UTC", "2024-05-05T00:00", ["2024-06-01T00:00", "2024-07-01T00:00"]),
    ("@yearly", "UTC", "2024-05-05T00:00", ["2025-01-01T00:00", "2026-01-01T00:00"]),
    ("@annually", "UTC", "2024-05-05T00:00", ["2025-01-01T00:00"]),
    # Zones without DST: the wall clock is shifted, nothing else.
    ("0 9 * * *", "Asia/Tokyo", "2024-01-01T00:00", ["2024-01-02T00:00", "2024-01-03T00:00"]),
    ("0 9 * * *", "Asia/Kolkata", "2024-01-01T00:00", ["2024-01-01T03:30", "2024-01-02T03:30"]),
    ("0 0 1 1 *", "Asia/Tokyo", "2024-06-01T00:00", ["2024-12-31T15:00"]),
    # `after` given in another zone is the same instant.
    ("0 9 * * *", "Asia/Tokyo", "2024-01-01T09:00+09:00", ["2024-01-02T00:00"]),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), PLAIN)
def test_plain_cron(expression: str, zone: str, after: str, expected: list[str]) -> None:
    assert cron(expression, zone, after, len(expected)) == expected


NY, LONDON, SYDNEY = "America/New_York", "Europe/London", "Australia/Sydney"

DST = [
    # -- spring forward: a missing wall-clock slot fires once, at the transition --------
    # New York, 2024-03-10: 02:00 EST -> 03:00 EDT (07:00Z).
    ("30 2 * * *", NY, "2024-03-09T12:00", ["2024-03-10T07:00", "2024-03-11T06:30"]),
    ("0 2 * * *", NY, "2024-03-09T12:00", ["2024-03-10T07:00", "2024-03-11T06:00"]),
    ("59 2 * * *", NY, "2024-03-09T12:00", ["2024-03-10T07:00", "2024-03-11T06:59"]),
    # The transition instant itself is not after itself.
    ("15 2 * * *", NY, "2024-03-10T07:00", ["2024-03-11T06:15"]),
    # Two missing slots collapse into the one fire at the transition.
    (
        "0,30 2 * * *",
        NY,
        "2024-03-09T12:00",
        ["2024-03-10T07:00", "2024-03-11T06:00", "2024-03-11T06:30"],
    ),
    # London, 2024-03-31: 01:00 GMT -> 02:00 BST (01:00Z).
    ("30 1 * * *", LONDON, "2024-03-30T12:00", ["2024-03-31T01:00", "2024-04-01T00:30"]),
    ("0 1 * * *", LONDON, "2024-03-30T12:00", ["2024-03-31T01:00", "2024-04-01T00:00"]),
    # Sydney (southern hemisphere), 2024-10-06: 02:00 AEST -> 03:00 AEDT (16:00Z on the 5th).
    ("30 2 * * *", SYDNEY, "2024-10-05T00:00", ["2024-10-05T16:00", "2024-10-06T15:30"]),
    # -- fall back: a repeated slot fires once, at its first occurrence --------------------
    # New York, 2024-11-03: 02:00 EDT -> 01:00 EST; 01:xx happens at 05:xxZ and 06:xxZ.
    ("30 1 * * *", NY, "2024-11-02T12:00", ["2024-11-03T05:30", "2024-11-04T06:30"]),
    ("0 1 * * *", NY, "2024-11-02T12:00", ["2024-11-03T05:00", "2024-11-04T06:00"]),
    (
        "0,30 1 * * *",
        NY,
        "2024-11-03T05:00",
        ["2024-11-03T05:30", "2024-11-04T06:00", "2024-11-04T06:30"],
    ),
    # After the first occurrence, within the repeated hour: nothing more that day.
    ("30 1 * * *", NY, "2024-11-03T05:31", ["2024-11-04T06:30"]),
    ("30 1 * * *", NY, "2024-11-03T06:00", ["2024-11-04T06:30"]),
    ("30 1 * * *", NY, "2024-11-03T06:29", ["2024-11-04T06:30"]),
    # London, 2024-10-27: 02:00 BST -> 01:00 GMT; 01:30 happens at 00:30Z and 01:30Z.
    ("30 1 * * *", LONDON, "2024-10-26T12:00", ["2024-10-27T00:30", "2024-10-28T01:30"]),
    ("30 1 * * *", LONDON, "2024-10-27T01:00", ["2024-10-28T01:30"]),
    # Sydney, 2024-04-07: 03:00 AEDT -> 02:00 AEST; 02:30 happens at 15:30Z and 16:30Z.
    ("30 2 * * *", SYDNEY, "2024-04-06T00:00", ["2024-04-06T15:30", "2024-04-07T16:30"]),
    # -- steps through minutes and hours keep elapsed time ---------------------------------
    (
        "*/15 * * * *",
        NY,
        "2024-03-10T06:30",
        ["2024-03-10T06:45", "2024-03-10T07:00", "2024-03-10T07:15"],
    ),
    (
        "*/15 * * * *",
        NY,
        "2024-11-03T05:30",
        [
            "2024-11-03T05:45",
            "2024-11-03T06:00",
            "2024-11-03T06:15",
            "2024-11-03T06:30",
            "2024-11-03T06:45",
            "2024-11-03T07:00",
        ],
    ),
    # Started inside the second pass of the repeated hour.
    ("*/15 * * * *", NY, "2024-11-03T06:10", ["2024-11-03T06:15", "2024-11-03T06:30"]),
    (
        "0 * * * *",
        NY,
        "2024-11-03T04:30",
        ["2024-11-03T05:00", "2024-11-03T06:00", "2024-11-03T07:00"],
    ),
    (
        "30 * * * *",
        NY,
        "2024-03-10T05:00",
        ["2024-03-10T05:30", "2024-03-10T06:30", "2024-03-10T07:30"],
    ),
    (
        "*/30 * * * *",
        LONDON,
        "2024-03-31T00:00",
        ["2024-03-31T00:30", "2024-03-31T01:00", "2024-03-31T01:30"],
    ),
    (
        "*/30 * * * *",
        LONDON,
        "2024-10-27T00:00",
        ["2024-10-27T00:30", "2024-10-27T01:00", "2024-10-27T01:30", "2024-10-27T02:00"],
    ),
    (
        "*/30 * * * *",
        SYDNEY,
        "2024-10-05T15:00",
        ["2024-10-05T15:30", "2024-10-05T16:00", "2024-10-05T16:30"],
    ),
    (
        "*/15 1 * * *",
        NY,
        "2024-11-03T05:40",
        ["2024-11-03T05:45", "2024-11-03T06:00", "2024-11-03T06:15"],
    ),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), DST)
def test_daylight_saving(expression: str, zone: str, after: str, expected: list[str]) -> None:
    assert cron(expression, zone, after, len(expected)) == expected


def test_fire_times_read_back_in_the_zone() -> None:
    fires = next_fires(CronCadence("30 2 * * *", NY), at("2024-03-09T12:00"), 2)
    local = [fire.astimezone(ZoneInfo(NY)).strftime("%m-%d %H:%M %Z") for fire in fires]
    assert local == ["03-10 03:00 EDT", "03-11 02:30 EDT"]


RATES = [
    # interval, after, expected fires; multiples of the interval from 1970-01-01T00:00Z.
    (timedelta(seconds=45), "2024-01-01T00:00:00", ["00:00:45", "00:01:30", "00:02:15"]),
    (timedelta(seconds=45), "2024-01-01T00:00:10", ["00:00:45", "00:01:30"]),
    (timedelta(seconds=45), "2024-01-01T00:00:44.999999", ["00:00:45"]),
    # 2024-01-01T00:00Z is 1704067200 s: 360 s past a multiple of 7 min, 2 h past one of 5 h.
    (timedelta(minutes=7), "2024-01-01T00:00:00", ["00:01:00", "00:08:00", "00:15:00"]),
    (timedelta(hours=5), "2024-01-01T00:00:00", ["03:00:00", "08:00:00"]),
    (timedelta(milliseconds=1500), "2024-01-01T00:00:00", ["00:00:01.500000", "00:00:03"]),
]


@pytest.mark.parametrize(("interval", "after", "expected"), RATES)
def test_rate_is_aligned_to_the_epoch(interval: timedelta, after: str, expected: list[str]) -> None:
    fires = next_fires(RateCadence(interval), at(after), len(expected))
    assert [fire.time().isoformat() for fire in fires] == expected
    for fire in fires:
        assert (fire - datetime(1970, 1, 1, tzinfo=UTC)) % interval == timedelta(0)


@pytest.mark.parametrize(
    ("zone", "day"),
    [(NY, "2024-03-10"), (NY, "2024-11-03"), (LONDON, "2024-10-27"), (SYDNEY, "2024-04-06")],
)
def test_rate_keeps_elapsed_time_through_transitions(zone: str, day: str) -> None:
    after = at(f"{day}T00:00").astimezone(ZoneInfo(zone))
    fires = next_fires(RateCadence(timedelta(minutes=20)), after, 30)
    gaps = {later - earlier for earlier, later in pairwise(fires)}
    assert gaps == {timedelta(minutes=20)}


def test_fires_between_is_half_open() -> None:
    trigger = CronCadence("0 * * * *")
    assert list(fires_between(trigger, at("2024-01-01T00:00"), at("2024-01-01T03:00"))) == [
        at("2024-01-01T01:00"),
        at("2024-01-01T02:00"),
        at("2024-01-01T03:00"),
    ]
    assert list(fires_between(trigger, at("2024-01-01T00:00"), at("2024-01-01T00:59"))) == []


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fires(CronCadence("* * * * *"), datetime(2024, 1, 1), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fires(RateCadence(timedelta(seconds=1)), datetime(2024, 1, 1), 1)


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(seconds=-1)])
def test_rate_must_be_positive(interval: timedelta) -> None:
    with pytest.raises(ValueError, match="positive"):
        next_fires(RateCadence(interval), at("2024-01-01T00:00"), 1)


def test_fixed_offset_after() -> None:
    after = datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert next_fires(CronCadence("0 * * * *"), after, 1) == [at("2024-01-01T01:00")]


@pytest.mark.parametrize(
    ("text", "expanded"),
    [("@daily", "0 0 * * *"), ("@HOURLY", "0 * * * *"), (" 5 4 * * * ", "5 4 * * *")],
)
def test_expand_macro(text: str, expanded: str) -> None:
    assert expand_macro(text) == expanded


@pytest.mark.parametrize(
    "expression",
    ["* * * *", "61 * * * *", "0 0 30 2 *", "@reboot", "@every", "0 0 * * 8", "a b c d e"],
)
def test_cron_error_names_a_problem(expression: str) -> None:
    assert cron_error(expression)


@pytest.mark.parametrize(
    "expression", ["*/5 * * * *", "0 0 * JAN-MAR MON,WED", "@weekly", "0 0 L * *", "0 0 29 2 *"]
)
def test_cron_error_accepts(expression: str) -> None:
    assert cron_error(expression) is None


# --- properties --------------------------------------------------------------------------

ZONES = [
    "UTC",
    NY,
    LONDON,
    SYDNEY,
    "Asia/Tokyo",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # transitions at midnight
    "Europe/Dublin",  # negative DST in the tz database
    "Pacific/Chatham",
]


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        number.map(str),
        st.integers(1, max(1, (high - low) // 2)).map(lambda step: f"*/{step}"),
        st.tuples(number, number).map(lambda pair: f"{min(pair)}-{max(pair)}"),
        st.lists(number, min_size=2, max_size=3, unique=True).map(
            lambda values: ",".join(map(str, sorted(values)))
        ),
        st.tuples(number, st.integers(1, 7)).map(lambda pair: f"{pair[0]}-{high}/{pair[1]}"),
    )


expressions = st.one_of(
    st.tuples(
        _field(0, 59),
        _field(0, 23),
        _field(1, 28) | st.just("*"),
        _field(1, 12) | st.sampled_from(["JAN", "MAR-NOV", "*"]),
        _field(0, 6) | st.sampled_from(["MON-FRI", "SUN", "*"]),
    ).map(" ".join),
    st.sampled_from(["@hourly", "@daily", "@weekly", "@monthly", "@yearly"]),
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(expressions, st.sampled_from(ZONES), instants)
def test_cron_fires_strictly_increase_after_after(
    expression: str, zone: str, after: datetime
) -> None:
    assume(cron_error(expression) is None)
    fires = next_fires(CronCadence(expression, zone), after, 6)
    assert len(fires) == 6
    assert fires[0] > after
    assert all(earlier < later for earlier, later in pairwise(fires))
    # Each result is also the first fire after the one before it: no slot is skipped.
    for earlier, later in pairwise(fires):
        assert next_fires(CronCadence(expression, zone), earlier, 1) == [later]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 10 * 86_400_000).map(lambda ms: timedelta(milliseconds=ms)),
    instants,
)
def test_rate_fires_strictly_increase_after_after(interval: timedelta, after: datetime) -> None:
    fires = next_fires(RateCadence(interval), after, 4)
    assert after < fires[0] <= after + interval
    assert all(later - earlier == interval for earlier, later in pairwise(fires))
