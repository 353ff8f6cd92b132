"""Catalog cron and rate -> EventBridge Scheduler expressions. Pure.

AWS's cron has six fields (minutes hours day-of-month month day-of-week year) and
differs from the catalog's (Debian cron) in ways that change meaning when copied as text:

* exactly one of day-of-month and day-of-week must be ``?``; Debian cron ORs the two
  fields when both are restricted, which AWS cannot express;
* day-of-week counts 1-7 from Sunday (Debian: 0-7, 0 and 7 are Sunday) and takes no
  step (``/``);
* ``/`` elsewhere means ``start/step``.

So every field is parsed into the set of values it stands for (by cronsim, the parser
the local engine uses) and written back in AWS's form: ``*``, ``start/step`` when the set
is exactly such a step, else a list of values and ranges. Day-of-week is written with
names (``MON-FRI``), which need no renumbering to read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

from jobdeck.cadence import expand_macro

DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_ALL_DAYS = set(range(1, 32))
_ALL_WEEKDAYS = set(range(7))


class UnsupportedOnAws(ValueError):
    """The expression has no AWS equivalent; the message says why and what to do."""


def aws_cron(expression: str) -> str:
    """``*/10 * * * 1-5`` -> ``cron(0/10 * ? * MON-FRI *)``."""
    text = expand_macro(expression)
    try:
        parsed = CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError) as exc:  # the catalog has already checked it
        raise UnsupportedOnAws(f"invalid cron expression {expression!r}: {exc}") from None
    fields = text.split()
    weekdays = {day % 7 if isinstance(day, int) else day for day in parsed.weekdays}
    dom_all = parsed.days == _ALL_DAYS
    dow_all = weekdays >= _ALL_WEEKDAYS
    if dom_all and dow_all:
        dom, dow = "*", "?"
    elif not parsed.day_and:
        # Debian cron ORs two restricted day fields: a full one matches every day.
        if not (dom_all or dow_all):
            raise _both_days(expression, fields)
        dom, dow = "*", "?"
    elif dow_all:
        dom, dow = _days_of_month(parsed.days, expression), "?"
    elif dom_all:
        dom, dow = "?", _days_of_week(weekdays, expression)
    else:
        raise _both_days(expression, fields)
    minutes = _numbers(parsed.minutes, 0, 59)
    hours = _numbers(parsed.hours, 0, 23)
    months = _numbers(parsed.months, 1, 12)
    return f"cron({minutes} {hours} {dom} {months} {dow} *)"


def aws_rate(interval: timedelta) -> str:
    """``15m`` -> ``rate(15 minutes)``; AWS rates are whole minutes, hours or days."""
    seconds = int(interval.total_seconds())
    if interval < timedelta(minutes=1):
        raise UnsupportedOnAws(
            "shorter than 1m, the shortest rate EventBridge Scheduler runs; raise it to 1m "
            "or more, or run it as a worker that loops"
        )
    if seconds % 60 or interval.microseconds:
        raise UnsupportedOnAws(
            "not a whole number of minutes, which AWS rates must be; round it, e.g. to "
            f"{max(1, seconds // 60)}m"
        )
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"rate({count} {unit}{'' if count == 1 else 's'})"
    raise AssertionError("unreachable: every whole minute divides by 60")  # pragma: no cover


def _both_days(expression: str, fields: list[str]) -> UnsupportedOnAws:
    return UnsupportedOnAws(
        f"cron {expression!r} restricts both day-of-month ({fields[2]}) and day-of-week "
        f"({fields[4]}); AWS cron takes only one of them; split it into two schedules, "
        "one per field"
    )


def _numbers(values: set[int], low: int, high: int) -> str:
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    step = _step(ordered, high)
    if step is not None:
        return f"{ordered[0]}/{step}"
    return ",".join(_runs(ordered, str))


def _step(ordered: list[int], high: int) -> int | None:
    """The step when ``ordered`` is exactly ``start, start+step, ...`` up to ``high``."""
    if len(ordered) < 3:
        return None
    step = ordered[1] - ordered[0]
    expected = list(range(ordered[0], high + 1, step))
    return step if ordered == expected else None


def _days_of_month(days: set[int], expression: str) -> str:
    if days == {CronSim.LAST}:
        return "L"
    if days == {CronSim.LAST_WEEKDAY}:
        return "LW"
    if CronSim.LAST in days or CronSim.LAST_WEEKDAY in days:
        raise UnsupportedOnAws(
            f"cron {expression!r} lists L or LW with other days; AWS takes L or LW alone; "
            "split it into two schedules"
        )
    return _numbers(days, 1, 31)


def _days_of_week(weekdays: set[int | tuple[int, int]], expression: str) -> str:
    special = [day for day in weekdays if isinstance(day, tuple)]
    if special:
        if len(weekdays) > 1:
            raise UnsupportedOnAws(
                f"cron {expression!r} lists a '#' or 'L' weekday with other days; AWS takes "
                "it alone; split it into several schedules"
            )
        day, nth = special[0]
        # AWS numbers weekdays 1-7 from Sunday in these forms (names are not documented).
        return f"{day + 1}L" if nth == CronSim.LAST else f"{day + 1}#{nth}"
    plain = sorted(day for day in weekdays if isinstance(day, int))
    return ",".join(_runs(plain, lambda day: DAY_NAMES[day]))


def _runs(ordered: list[int], name: Callable[[int], str]) -> list[str]:
    """Consecutive values as ``a-b`` ranges (three or more), the rest one by one."""
    parts: list[str] = []
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - start >= 2:
            parts.append(f"{name(ordered[start])}-{name(ordered[end])}")
        else:
            parts.extend(name(value) for value in ordered[start : end + 1])
        start = end + 1
    return parts
