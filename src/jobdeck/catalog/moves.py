"""What a change of a schedule's timing moves: its next fires before and after. Pure.

A reviewer reading ``cron: "0 3 * * *" -> "0 3 * * 1"`` in a plan should not have to do
cron arithmetic (nor time-zone arithmetic for ``timezone``) to see what the change does:
the plan shows the schedule's next three fires as it is applied now and as the file
would have it, each in the schedule's zone and in UTC. The new timing takes effect when
the revision is applied: no slot before that is fired late (see
:mod:`jobdeck.schedule.since`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jobdeck.cadence import Cadence, CronCadence, RateCadence, next_fires
from jobdeck.units import parse_duration

# How many fires a plan shows on each side of a change.
SHOWN_FIRES = 3


def timing_key(schedule: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """What decides when a schedule (in its JSON form) fires; None: not there."""
    if schedule is None:
        return None
    return (
        bool(schedule.get("enabled", True)),
        schedule.get("cron"),
        schedule.get("rate"),
        schedule.get("timezone"),
    )


@dataclass(frozen=True)
class Fires:
    """One side of a change: the zone and the next fires (none when disabled)."""

    zone: str
    enabled: bool
    fires: tuple[datetime, ...]

    def to_json(self) -> dict[str, Any]:
        tz = ZoneInfo(self.zone)
        return {
            "timezone": self.zone,
            "enabled": self.enabled,
            "fires": [{"local": f.astimezone(tz).isoformat(), "utc": _utc(f)} for f in self.fires],
        }

    def lines(self) -> list[str]:
        if not self.enabled:
            return ["(none: disabled)"]
        if not self.fires:
            return ["(none: it never fires again)"]
        tz = ZoneInfo(self.zone)
        return [
            f"{f.astimezone(tz).strftime('%Y-%m-%d %H:%M:%S %Z')}  ({_utc(f)})" for f in self.fires
        ]


@dataclass(frozen=True)
class Moves:
    """A schedule's next fires before and after a change of its timing."""

    before: Fires
    after: Fires

    def to_json(self) -> dict[str, Any]:
        return {"before": self.before.to_json(), "after": self.after.to_json()}

    def lines(self) -> list[str]:
        shown = [f"next fires before (in {self.before.zone}, and UTC):"]
        shown += [f"  {line}" for line in self.before.lines()]
        shown.append(f"next fires after (in {self.after.zone}, and UTC):")
        shown += [f"  {line}" for line in self.after.lines()]
        return shown


def timing_moves(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, now: datetime
) -> Moves | None:
    """The moves of a schedule present on both sides whose timing differs; else None."""
    if old is None or new is None or timing_key(old) == timing_key(new):
        return None
    return Moves(_fires(old, now), _fires(new, now))


def _fires(schedule: Mapping[str, Any], now: datetime) -> Fires:
    zone = str(schedule.get("timezone") or "UTC")
    enabled = bool(schedule.get("enabled", True))
    cadence = _cadence(schedule)
    fires = next_fires(cadence, now, SHOWN_FIRES) if enabled and cadence is not None else []
    return Fires(zone, enabled, tuple(fires))


def _cadence(schedule: Mapping[str, Any]) -> Cadence | None:
    if schedule.get("cron"):
        return CronCadence(str(schedule["cron"]), str(schedule.get("timezone") or "UTC"))
    if schedule.get("rate"):
        return RateCadence(parse_duration(str(schedule["rate"])))
    return None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
