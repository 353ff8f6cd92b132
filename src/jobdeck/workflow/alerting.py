"""The alert policy's decisions: which notices reach the ``notify`` targets, which are
held back, and why (pure: functions of their inputs and ``now``).

A failure (``failed``, ``timed_out``, ``lost``) extends the item's failure streak; a
success ends it with a ``run.recovered`` notice. Both are recorded whatever the policy
decides, so the previous notice of the stream is all the state a decision needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jobdeck.catalog.alerting import NotifyPolicy
from jobdeck.store.records import Notice
from jobdeck.units import format_duration
from jobdeck.workflow.outcome import NOTIFY_STATUSES, iso

FAILURE_STREAM = "failure"
RECOVERED = "run.recovered"
MISSED = "missed"  # a monitor's slot with no ping: a failure to the policy


@dataclass(frozen=True)
class NoticeDecision:
    """What to record (and maybe send) about one ended run."""

    event: str
    send: bool
    why: str
    streak: int
    last_sent_at: datetime | None  # the last notice sent in this streak, this one included
    failing_since: datetime | None

    def detail(self) -> dict[str, str | None]:
        return {
            "last_sent_at": None if self.last_sent_at is None else iso(self.last_sent_at),
            "failing_since": None if self.failing_since is None else iso(self.failing_since),
        }


def _instant(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def open_streak(previous: Notice | None) -> Notice | None:
    """The previous notice of the stream if it leaves a failure streak open."""
    if previous is None or previous.event == RECOVERED or previous.streak < 1:
        return None
    return previous


def _ago(delta: timedelta) -> str:
    return format_duration(timedelta(seconds=max(0, round(delta.total_seconds()))))


def decide_notice(
    policy: NotifyPolicy, previous: Notice | None, status: str, now: datetime
) -> NoticeDecision | None:
    """The notice about a run that ended ``status`` at ``now``; ``previous``: the newest
    notice of the item's failure stream. None when there is nothing to say (a success
    with no failure streak open, a skipped or cancelled run)."""
    streak = open_streak(previous)
    if status in NOTIFY_STATUSES or status == MISSED:
        return _failure(policy, streak, status, now)
    if status != "succeeded" or streak is None:
        return None
    last_sent = _instant(streak.detail.get("last_sent_at"))
    since = _instant(streak.detail.get("failing_since"))
    failures = f"{streak.streak} consecutive failure{'s' if streak.streak != 1 else ''}"
    if not policy.recovery:
        send, why = False, f"recovered after {failures}; recovery notices are off"
    elif last_sent is None:
        send, why = False, f"recovered after {failures}, none of which was notified"
    else:
        send, why = True, f"recovered after {failures}"
    return NoticeDecision(RECOVERED, send, why, 0, last_sent, since)


def _failure(
    policy: NotifyPolicy, streak: Notice | None, status: str, now: datetime
) -> NoticeDecision:
    count = 1 if streak is None else streak.streak + 1
    last_sent = None if streak is None else _instant(streak.detail.get("last_sent_at"))
    since = now if streak is None else (_instant(streak.detail.get("failing_since")) or now)
    event = f"run.{status}"
    nth = f"failure {count} in a row"
    if count < policy.after:
        why = f"{nth}; notify_policy.after is {policy.after}"
        return NoticeDecision(event, False, why, count, last_sent, since)
    if last_sent is None:
        why = nth if policy.after == 1 else f"{nth}, reaching notify_policy.after"
        return NoticeDecision(event, True, why, count, now, since)
    if policy.renotify is not None and now - last_sent < policy.renotify:
        why = (
            f"{nth}; last notice sent {_ago(now - last_sent)} ago, "
            f"notify_policy.renotify is {format_duration(policy.renotify)}"
        )
        return NoticeDecision(event, False, why, count, last_sent, since)
    if policy.renotify is not None:
        why = f"{nth}; still failing {_ago(now - last_sent)} after the last notice"
    else:
        why = nth
    return NoticeDecision(event, True, why, count, now, since)
