"""Durations and sizes: the catalog's spellings, both ways."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobdeck.units import format_duration, format_size, parse_duration, parse_size

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("90m", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        ("  45s  ", timedelta(seconds=45)),
        ("1500ms", timedelta(seconds=1, milliseconds=500)),
        ("007s", timedelta(seconds=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "write a duration"),
        ("30", "write a duration"),
        ("1.5h", "write a duration"),
        ("1 h", "write a duration"),
        ("1H", "write a duration"),
        ("-5s", "write a duration"),
        ("1w", "write a duration"),
        ("1h30", "write a duration"),
        ("s", "write a duration"),
        ("30m1h", "from the largest to the smallest"),
        ("1m1m", "from the largest to the smallest"),
        ("1ms1s", "from the largest to the smallest"),
        ("٣s", "write a duration"),
        ("9" * 20 + "d", "too long"),
    ],
)
def test_parse_duration_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(hours=48), "2d"),
        (timedelta(seconds=1, milliseconds=1), "1s1ms"),
        (timedelta(microseconds=1499), "1ms"),
        (timedelta(microseconds=1500), "2ms"),
        (timedelta(days=999_999_999), "999999999d"),
    ],
)
def test_format_duration(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512MiB", 512 * MiB),
        ("2GiB", 2 * GiB),
        ("1TiB", TiB),
        ("64KiB", 64 * KiB),
        ("256Mi", 256 * MiB),
        ("1Gi", GiB),
        ("8Ki", 8 * KiB),
        ("1G", 10**9),
        ("500M", 500 * 10**6),
        ("4K", 4000),
        ("1GB", 10**9),
        ("4096B", 4096),
        ("1.5GiB", 1536 * MiB),
        ("0.5KiB", 512),
        ("512 MiB", 512 * MiB),
        (" 1GiB ", GiB),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("512", "without a unit is ambiguous"),
        ("1.5", "without a unit is ambiguous"),
        ("", "write a size"),
        ("MiB", "write a size"),
        ("12XB", "write a size"),
        ("512mib", "write a size"),
        ("-1MiB", "write a size"),
        ("1e3MiB", "write a size"),
        ("0MiB", "greater than zero"),
        ("0.0GiB", "greater than zero"),
        ("1.5B", "not a whole number of bytes"),
        ("0.1KiB", "not a whole number of bytes"),
        ("٣MiB", "write a size"),
    ],
)
def test_parse_size_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_size(text)


def test_parse_size_is_exact_for_long_numbers() -> None:
    # A float would round this; the parser must not.
    assert parse_size("9007199254740993B") == 9007199254740993
    with pytest.raises(ValueError, match="not a whole number of bytes"):
        parse_size("1.0000000000000000001GiB")


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (512 * MiB, "512MiB"),
        (2 * GiB, "2GiB"),
        (TiB, "1TiB"),
        (1536 * MiB, "1536MiB"),
        (KiB, "1KiB"),
        (10**9, "1G"),
        (1000, "1K"),
        (1500, "1500B"),
        (1, "1B"),
    ],
)
def test_format_size(size: int, expected: str) -> None:
    assert format_size(size) == expected


def test_format_size_rejects_zero() -> None:
    with pytest.raises(ValueError, match="greater than zero"):
        format_size(0)


durations = st.integers(min_value=0, max_value=10**12).map(lambda ms: timedelta(milliseconds=ms))


@settings(max_examples=300, deadline=None)
@given(durations)
def test_duration_round_trip(value: timedelta) -> None:
    text = format_duration(value)
    assert parse_duration(text) == value
    assert format_duration(parse_duration(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=2**62))
def test_size_round_trip(size: int) -> None:
    text = format_size(size)
    assert parse_size(text) == size
    assert format_size(parse_size(text)) == text


_UNIT_TEXT = st.sampled_from(["ms", "s", "m", "h", "d", "KiB", "Mi", "G", "B", ".", " ", "-"])
_MESSY = st.lists(
    st.one_of(st.text(max_size=5), st.integers(0, 10**30).map(str), _UNIT_TEXT), max_size=6
).map("".join)


@settings(max_examples=400, deadline=None)
@given(_MESSY)
def test_parse_duration_only_raises_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert value >= timedelta(0)


@settings(max_examples=400, deadline=None)
@given(_MESSY)
def test_parse_size_only_raises_value_error(text: str) -> None:
    try:
        value = parse_size(text)
    except ValueError:
        return
    assert value > 0
