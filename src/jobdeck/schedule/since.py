"""Where a schedule's catch-up may start: never before its timing took effect.

Catch-up (after the engine was down, or its timer restarted) looks at the slots after a
schedule's newest claimed fire. A slot that fell due before a change of the schedule's
``cron``, ``rate``, ``timezone`` or ``enabled`` took effect (the revision's apply) never
existed for the schedule as it is now, and a slot that fell due while it was suspended
was stopped on purpose: neither is fired late, and neither is "missed" (the suspended
ones are recorded ``skipped`` / ``suspended``, as when an engine ran through the
suspension). Kubernetes fires such slots (kubernetes#63371: an edited CronJob ran
retroactively; one user sent 1,000 emails); jobdeck does not.

:func:`catch_up_since` reads what it needs from the store (the revisions applied and
the suspensions ended since the oldest of the schedules' newest fires); the decision
itself is :func:`~jobdeck.catalog.moves.timing_key` compared revision to revision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobdeck.catalog.moves import timing_key
from jobdeck.store.ports import DataStore

# How many revisions back a schedule's last change is looked for. More revisions than
# this applied while an engine was down is not something that happens; should it, the
# oldest one read counts as a change (nothing older is fired late: the safe side).
REVISIONS_LOOKED_AT = 500


@dataclass(frozen=True)
class Since:
    """What bounds one schedule's catch-up from below (each None when nothing does)."""

    changed_at: datetime | None = None  # its timing took effect then
    held_from: datetime | None = None  # a suspension held it from then ...
    resumed_at: datetime | None = None  # ... until then

    @property
    def floor(self) -> datetime | None:
        """No slot at or before this instant is fired late, nor recorded as missed."""
        moments = [m for m in (self.changed_at, self.resumed_at) if m is not None]
        return max(moments) if moments else None


def catch_up_since(
    store: DataStore, last: Mapping[str, datetime], names: Iterable[str], now: datetime
) -> dict[str, Since]:
    """For each of ``names`` whose newest claimed fire is in ``last``: since when its
    timing holds, and the suspension that ended after that fire (if any)."""
    wanted = [name for name in names if name in last]
    if not wanted:
        return {}
    oldest = min(last[name] for name in wanted)
    changed = _changes_since(store, oldest, wanted)
    resumed = _resumes_since(store, last, wanted, now)
    found: dict[str, Since] = {}
    for name in wanted:
        at = changed.get(name)
        changed_at = at if at is not None and at > last[name] else None
        held_from, resumed_at = resumed.get(name, (None, None))
        if changed_at or resumed_at:
            found[name] = Since(changed_at, held_from, resumed_at)
    return found


def _changes_since(store: DataStore, oldest: datetime, names: list[str]) -> dict[str, datetime]:
    """When each schedule's timing last changed, among the revisions applied after
    ``oldest`` (and the one before them, to compare with)."""
    listed = store.revisions.revisions(limit=REVISIONS_LOOKED_AT)  # newest first
    changed: dict[str, datetime] = {}
    newer: dict[str, Any] | None = None
    newer_at: datetime | None = None
    for index, info in enumerate(listed):
        revision = store.revisions.revision(info.number)
        catalog = revision.catalog if revision is not None else {}
        schedules: Mapping[str, Any] = catalog.get("schedules") or {}
        if newer is not None and newer_at is not None:
            for name in names:
                if name in changed:
                    continue
                if timing_key(schedules.get(name)) != timing_key(newer.get(name)):
                    changed[name] = newer_at
        newer, newer_at = dict(schedules), info.applied_at
        if info.applied_at <= oldest:
            break
        if index == len(listed) - 1 and len(listed) == REVISIONS_LOOKED_AT:
            for name in names:
                changed.setdefault(name, info.applied_at)
    return changed


def _resumes_since(
    store: DataStore, last: Mapping[str, datetime], names: list[str], now: datetime
) -> dict[str, tuple[datetime, datetime]]:
    """Each schedule's newest suspension that ended (resumed, or its ``until`` passed)
    after its newest claimed fire: (held from, ended)."""
    found: dict[str, tuple[datetime, datetime]] = {}
    wanted = set(names)
    for held in store.suspensions.suspensions(now, include_ended=True):
        if held.kind != "schedule" or held.name not in wanted or held.active(now):
            continue
        ended = held.ended_at or held.until
        if ended is None or ended <= last[held.name]:
            continue
        if held.until is not None and held.until < ended:
            ended = held.until
        known = found.get(held.name)
        if known is None or ended > known[1]:
            start = known[0] if known is not None else held.created_at
            found[held.name] = (min(start, held.created_at), ended)
    return found
