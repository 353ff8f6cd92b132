"""Catalog cron/rate -> EventBridge Scheduler expressions: a table of conversions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobdeck.targets.aws.cron import UnsupportedOnAws, aws_cron, aws_rate

CONVERSIONS = [
    # plain fields; day-of-month restricted -> day-of-week is '?'
    ("30 3 * * *", "cron(30 3 * * ? *)"),
    ("0 0 1 * *", "cron(0 0 1 * ? *)"),
    ("0 9 1,15 * *", "cron(0 9 1,15 * ? *)"),
    ("0 0 L * *", "cron(0 0 L * ? *)"),
    ("0 0 LW * *", "cron(0 0 LW * ? *)"),
    # steps become start/step; other steps become lists
    ("*/10 * * * *", "cron(0/10 * * * ? *)"),
    ("5/20 * * * *", "cron(5/20 * * * ? *)"),
    ("5-20/5 * * * *", "cron(5,10,15,20 * * * ? *)"),
    ("15 */3 * * *", "cron(15 0/3 * * ? *)"),
    ("0 9 */2 * *", "cron(0 9 1/2 * ? *)"),
    ("0 0 1 */3 *", "cron(0 0 1 1/3 ? *)"),
    # ranges and lists; runs of three or more become ranges
    ("0 8-18 * * *", "cron(0 8-18 * * ? *)"),
    ("0 1,2,3,7 * * *", "cron(0 1-3,7 * * ? *)"),
    ("0 1,2 * * *", "cron(0 1,2 * * ? *)"),
    # month names
    ("0 0 1 JAN-MAR *", "cron(0 0 1 1-3 ? *)"),
    ("0 0 1 jan,jul *", "cron(0 0 1 1,7 ? *)"),
    # day-of-week: names, Sunday as 0 or 7, ranges, steps (AWS takes no '/' there)
    ("0 9 * * 1-5", "cron(0 9 ? * MON-FRI *)"),
    ("0 9 * * MON-FRI", "cron(0 9 ? * MON-FRI *)"),
    ("0 9 * * 0", "cron(0 9 ? * SUN *)"),
    ("0 9 * * 7", "cron(0 9 ? * SUN *)"),
    ("0 9 * * sun", "cron(0 9 ? * SUN *)"),
    ("0 9 * * 6,0", "cron(0 9 ? * SUN,SAT *)"),
    ("0 9 * * 5-7", "cron(0 9 ? * SUN,FRI,SAT *)"),
    ("0 9 * * */2", "cron(0 9 ? * SUN,TUE,THU,SAT *)"),
    ("0 9 * * 1-5/2", "cron(0 9 ? * MON,WED,FRI *)"),
    ("0 9 * * 0-6", "cron(0 9 * * ? *)"),
    ("0 9 * * 5L", "cron(0 9 ? * 6L *)"),
    ("0 9 * * 1#2", "cron(0 9 ? * 2#2 *)"),
    ("0 9 * * 0#1", "cron(0 9 ? * 1#1 *)"),
    # Debian cron ORs two restricted day fields: a full one means every day
    ("0 9 15 * 0-7", "cron(0 9 * * ? *)"),
    ("0 9 1-31 * MON", "cron(0 9 * * ? *)"),
    # a '*'-led day field ANDs (Debian); a full one drops out
    ("0 9 */1 * MON", "cron(0 9 ? * MON *)"),
    # macros
    ("@hourly", "cron(0 * * * ? *)"),
    ("@daily", "cron(0 0 * * ? *)"),
    ("@midnight", "cron(0 0 * * ? *)"),
    ("@weekly", "cron(0 0 ? * SUN *)"),
    ("@monthly", "cron(0 0 1 * ? *)"),
    ("@yearly", "cron(0 0 1 1 ? *)"),
    ("@annually", "cron(0 0 1 1 ? *)"),
]


@pytest.mark.parametrize(("cron", "expected"), CONVERSIONS)
def test_cron_conversion(cron: str, expected: str) -> None:
    assert aws_cron(cron) == expected


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 9 1 * MON", "restricts both day-of-month (1) and day-of-week (MON)"),
        ("0 9 */2 * MON", "restricts both"),
        ("0 9 L,15 * *", "L or LW alone"),
        ("0 9 * * 1#2,3", "'#' or 'L' weekday with other days"),
    ],
)
def test_cron_without_aws_equivalent(cron: str, says: str) -> None:
    with pytest.raises(UnsupportedOnAws, match="split it") as caught:
        aws_cron(cron)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        (timedelta(minutes=1), "rate(1 minute)"),
        (timedelta(minutes=15), "rate(15 minutes)"),
        (timedelta(minutes=90), "rate(90 minutes)"),
        (timedelta(hours=1), "rate(1 hour)"),
        (timedelta(hours=6), "rate(6 hours)"),
        (timedelta(days=1), "rate(1 day)"),
        (timedelta(days=2), "rate(2 days)"),
    ],
)
def test_rate_conversion(interval: timedelta, expected: str) -> None:
    assert aws_rate(interval) == expected


@pytest.mark.parametrize(
    ("interval", "says"),
    [
        (timedelta(seconds=45), "shorter than 1m"),
        (timedelta(seconds=1), "shorter than 1m"),
        (timedelta(seconds=90), "not a whole number of minutes"),
        (timedelta(minutes=1, milliseconds=500), "not a whole number of minutes"),
    ],
)
def test_rate_without_aws_equivalent(interval: timedelta, says: str) -> None:
    with pytest.raises(UnsupportedOnAws, match=says):
        aws_rate(interval)
