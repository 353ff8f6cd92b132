"""The run workflow's decisions, as pure functions of their inputs and ``now``.

overlap: what a new fire does while runs of the same schedule are active;
retry:   whether an ended attempt is tried again, and after how long;
catch-up: which slots missed while the engine was down are run, and which recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from jobdeck.cadence import Cadence, fires_between
from jobdeck.catalog.model import Catchup, Overlap, Retry

# How many missed slots catch-up records one by one before it sums up the rest.
MISSED_RECORD_LIMIT = 1000
CATCHUP_ALL_LIMIT = 10

OverlapAction = Literal["start", "skip", "buffer", "cancel_and_start"]
# Why slots were not fired on time: the engine was not running, it woke more than a slot
# late (a suspended host), or its timer process died and was started again.
MissCause = Literal["engine_down", "engine_late", "timer_restart"]
# Why catch-up did not run a missed slot.
MissedWhy = Literal["outside_window", "catchup_policy", "catchup_limit"]


@dataclass(frozen=True)
class ActiveRun:
    """What the overlap decision needs to know of an active run."""

    id: int
    waiting: bool  # pending: buffered, waiting for a pool slot, or for a retry


@dataclass(frozen=True)
class OverlapDecision:
    action: OverlapAction
    cancel: tuple[int, ...] = ()  # runs to stop first (cancel_other)


def decide_overlap(policy: Overlap, active: Sequence[ActiveRun]) -> OverlapDecision:
    """What a new fire of a schedule does, given its runs that have not ended."""
    if not active or policy == "allow":
        return OverlapDecision("start")
    if policy == "skip":
        return OverlapDecision("skip")
    if policy == "buffer_one":
        # One run may wait behind the running one; a second waiter would pile up.
        if any(run.waiting for run in active):
            return OverlapDecision("skip")
        return OverlapDecision("buffer")
    return OverlapDecision("cancel_and_start", tuple(run.id for run in active))


@dataclass(frozen=True)
class RetryState:
    """Retries already spent on this fire, by kind."""

    launch: int = 0
    failure: int = 0
    lost: int = 0


@dataclass(frozen=True)
class RetryDecision:
    delay: timedelta
    state: RetryState  # the spent counts including this retry


def decide_retry(
    reason: str | None, status: str, spent: RetryState, policy: Retry
) -> RetryDecision | None:
    """Launch errors are retried ``policy.launch`` times, application failures (a non-zero
    exit, an OOM kill) ``policy.failure`` times, runs recorded lost (whatever the reason:
    their node went silent, their engine restarted without them, their supervisor
    vanished) ``policy.lost`` times, each with exponential backoff from
    ``policy.backoff``; timeouts, cancellations and successes never are."""
    if status == "failed" and reason == "launch_error":
        if spent.launch >= policy.launch:
            return None
        return RetryDecision(
            _backoff(policy.backoff, spent.launch), replace(spent, launch=spent.launch + 1)
        )
    if status == "failed" and reason in ("exit_code", "oom_killed"):
        if spent.failure >= policy.failure:
            return None
        return RetryDecision(
            _backoff(policy.backoff, spent.failure), replace(spent, failure=spent.failure + 1)
        )
    if status == "lost":
        if spent.lost >= policy.lost:
            return None
        return RetryDecision(
            _backoff(policy.backoff, spent.lost), replace(spent, lost=spent.lost + 1)
        )
    return None


def _backoff(base: timedelta, spent: int) -> timedelta:
    delay: timedelta = min(base * (2**spent), timedelta(hours=1))
    return delay


@dataclass(frozen=True)
class CatchupDecision:
    run: tuple[datetime, ...] = ()  # slots to run now, oldest first
    missed: tuple[datetime, ...] = ()  # slots to record as skipped / missed, oldest first
    missed_beyond: int = 0  # further missed slots, summed up (oldest ones)
    first_beyond: datetime | None = None
    last_beyond: datetime | None = None


def decide_catchup(
    trigger: Cadence, last_fire: datetime | None, now: datetime, policy: Catchup, window: timedelta
) -> CatchupDecision:
    """Slots in ``(last_fire, now]`` were missed while no engine ran. ``latest`` runs the
    newest one if it is within ``window`` of ``now``; ``all`` runs up to 10 of the newest
    ones within the window; ``none`` runs none. Every other missed slot is recorded."""
    if last_fire is None:
        return CatchupDecision()
    slots: list[datetime] = []
    beyond = 0
    first_beyond: datetime | None = None
    last_beyond: datetime | None = None
    for slot in fires_between(trigger, last_fire, now):
        slots.append(slot)
        if len(slots) > MISSED_RECORD_LIMIT + CATCHUP_ALL_LIMIT:
            dropped = slots.pop(0)
            beyond += 1
            first_beyond = first_beyond or dropped
            last_beyond = dropped
    recent = [slot for slot in slots if now - slot <= window]
    if policy == "latest":
        chosen = recent[-1:]
    elif policy == "all":
        chosen = recent[-CATCHUP_ALL_LIMIT:]
    else:
        chosen = []
    missed = [slot for slot in slots if slot not in chosen]
    if len(missed) > MISSED_RECORD_LIMIT:
        extra = len(missed) - MISSED_RECORD_LIMIT
        first_beyond = first_beyond or missed[0]
        last_beyond = missed[extra - 1]
        beyond += extra
        missed = missed[extra:]
    return CatchupDecision(tuple(chosen), tuple(missed), beyond, first_beyond, last_beyond)


def missed_why(slot: datetime, now: datetime, policy: Catchup, window: timedelta) -> MissedWhy:
    """Why catch-up (``decide_catchup``) did not run the missed ``slot``."""
    if now - slot > window:
        return "outside_window"
    return "catchup_limit" if policy == "all" else "catchup_policy"
