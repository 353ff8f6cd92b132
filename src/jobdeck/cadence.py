"""When a schedule fires, its cadence: cron and rate maths in time zones. Pure; ``after``
is a parameter. A leaf: the catalog checks expressions with it, the scheduler and the
run workflow compute fires with it.

Cron follows Debian's cron (through cronsim), which is also the catalog's contract:

* a wall-clock slot that does not exist (spring forward) fires once, at the transition;
* a slot that occurs twice (fall back) fires once, at its first occurrence;
* expressions that step through the hours or minutes (``*/15 * * * *``) keep elapsed
  time through a transition.

A ``rate`` schedule fires on multiples of its interval counted from the Unix epoch, so
that every engine computes the same nominal instants, which makes them usable as
unique fire keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CRON_HINT = (
    "write five fields (minute hour day-of-month month day-of-week), e.g. '*/10 * * * *', "
    "or one of @hourly @daily @weekly @monthly @yearly"
)


def expand_macro(expression: str) -> str:
    """``@daily`` -> ``0 0 * * *``; anything else is returned stripped."""
    text = expression.strip()
    return MACROS.get(text.lower(), text)


_FIELDS = (
    ("minute", "use 0-59, a range, a list or a step such as */15"),
    ("hour", "use 0-23, a range, a list or a step such as */2"),
    ("day-of-month", "use 1-31, a range, a list or a step"),
    ("month", "use 1-12 or JAN-DEC, a range, a list or a step"),
    ("day-of-week", "use 0-7 (0 and 7 are Sunday) or SUN-SAT, a range, a list or a step"),
)


def cron_error(expression: str) -> str | None:
    """Why ``expression`` is not a valid cron expression, or None when it is.

    The message says what is wrong and how to fix it, without the expression's location.
    """
    text = expand_macro(expression)
    if text.startswith("@"):
        if text.lower() == "@reboot":
            return (
                "@reboot is not supported: jobdeck fires schedules by time only; "
                "start the job with the service that starts the host, or give a time"
            )
        return f"unknown cron macro {text!r}; {CRON_HINT}"
    fields = text.split()
    if len(fields) != 5:
        return f"invalid cron expression {expression!r}: it has {len(fields)} fields; {CRON_HINT}"
    for index, field in enumerate(fields):
        # Check each field alone, so that the message can name the one that is wrong.
        probe = ["*"] * 5
        probe[index] = field
        try:
            CronSim(" ".join(probe), datetime(2000, 1, 1, tzinfo=UTC))
        except (CronSimError, ValueError):
            name, rule = _FIELDS[index]
            return f"invalid cron expression {expression!r}: bad {name} field {field!r}; {rule}"
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError):
        # Every field is valid alone, so the day-of-month and month never meet.
        return (
            f"invalid cron expression {expression!r}: it never fires, because no month "
            f"it names has day {fields[2]}; check the day-of-month and month fields"
        )
    return None


@dataclass(frozen=True, slots=True)
class CronCadence:
    expression: str
    zone: str = "UTC"

    def fires_after(self, after: datetime) -> Iterator[datetime]:
        """Fire instants strictly after ``after``, in UTC, increasing."""
        tz = ZoneInfo(self.zone)
        local = _aware(after).astimezone(tz)
        bound = local.astimezone(UTC)
        for fire in CronSim(expand_macro(self.expression), local):
            instant = fire.astimezone(UTC)
            # cronsim steps through wall-clock times and forgets the fold for fixed-time
            # expressions: started in the second pass of a repeated hour, it yields that
            # hour's first pass again (already past), and a skipped slot moved to the
            # transition can coincide with the next slot. Keep instants strictly increasing.
            if instant <= bound:
                continue
            bound = instant
            yield instant


@dataclass(frozen=True, slots=True)
class RateCadence:
    interval: timedelta

    def fires_after(self, after: datetime) -> Iterator[datetime]:
        if self.interval <= timedelta(0):
            raise ValueError("a rate must be positive")
        step_us = _micros(self.interval)
        elapsed_us = _micros(_aware(after) - _EPOCH)
        index = elapsed_us // step_us + 1
        while True:
            yield _EPOCH + timedelta(microseconds=index * step_us)
            index += 1


Cadence = CronCadence | RateCadence


def next_fires(cadence: Cadence, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire instants strictly after ``after``, in UTC."""
    return list(islice(cadence.fires_after(after), count))


def fires_between(cadence: Cadence, after: datetime, until: datetime) -> Iterator[datetime]:
    """Fire instants in ``(after, until]``."""
    for fire in cadence.fires_after(after):
        if fire > until:
            return
        yield fire


def slots_in(cadence: Cadence, start: datetime, end: datetime, limit: int) -> list[datetime]:
    """The fire instants in ``[start, end]`` (both included), oldest first; at most
    ``limit + 1`` of them, so that a caller can tell that there are more than ``limit``."""
    first = _aware(start) - timedelta(microseconds=1)
    return list(islice(fires_between(cadence, first, _aware(end)), limit + 1))


def is_slot(cadence: Cadence, moment: datetime) -> bool:
    """Whether ``moment`` is one of the cadence's fire instants."""
    found = next_fires(cadence, _aware(moment) - timedelta(microseconds=1), 1)
    return bool(found) and found[0] == moment


# The shortest gap between fires is looked for over this span and at most this many fires:
# four years cover leap days and daylight saving in any zone; a cron that fires more often
# than every few hours has gaps that repeat daily, well inside the count.
_GAP_SPAN = timedelta(days=4 * 366)
_GAP_FIRES = 5000
_GAP_FROM = datetime(2024, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=256)
def shortest_interval(cadence: Cadence) -> timedelta | None:
    """The shortest time between two consecutive fires (a rate's interval; for a cron,
    looked for over four years of fires); None when it fires at most once."""
    if isinstance(cadence, RateCadence):
        return cadence.interval
    shortest: timedelta | None = None
    previous: datetime | None = None
    for fire in islice(fires_between(cadence, _GAP_FROM, _GAP_FROM + _GAP_SPAN), _GAP_FIRES):
        if previous is not None:
            gap = fire - previous
            shortest = gap if shortest is None else min(shortest, gap)
        previous = fire
    return shortest


def jitter_delay(schedule: str, slot: datetime, jitter: timedelta) -> timedelta:
    """The delay of ``schedule``'s ``slot`` in ``[0, jitter)``, at millisecond precision.

    Deterministic: a hash of the schedule's name and the slot's instant, never a random
    draw, so that every engine, and the same engine after a restart, starts the slot at
    the same moment; slots of one schedule, and schedules of one slot, spread evenly.
    """
    span_ms = _micros(jitter) // 1000
    if span_ms <= 0:
        return timedelta(0)
    key = f"{schedule}\x00{_aware(slot).astimezone(UTC).isoformat()}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return timedelta(milliseconds=draw % span_ms)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("timing needs timezone-aware datetimes")
    return moment


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
