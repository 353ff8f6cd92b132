"""What a notification says about a run, and the webhook's JSON shape of it.

The webhook payload is a contract with receivers we do not control, so its shape is
versioned and only ever grows: fields are added, never renamed or dropped.

    {
      "type": "run.failed",              # run.failed | run.timed_out | run.lost | run.missed
                                         # | run.<status> for any other status
      "event": "run.failed",             # the same as "type" (an alias older docs named)
      "version": 1,
      "delivery_id": "4f0c...",          # the same on every retry of one delivery: dedupe on it
      "occurred_at": "2026-03-08T01:00:12Z",
      "run": {
        "id": 42, "job": "ranking-aggregate", "kind": "schedule", "trigger": "schedule",
        "status": "failed", "reason": "oom_killed", "attempt": 1,
        "scheduled_for": "...Z", "started_at": "...Z", "ended_at": "...Z",
        "duration_seconds": 12.5, "exit_code": -9, "pool": "batch", "host": "batch-1",
        "project": "newsroom", "url": "https://jobdeck.example/runs/42"
      },
      "log_tail": "last lines of the run's output",
      "missed": null,                    # run.missed: the slots that did not run, below
      "policy": {"why": "failure 3 in a row, reaching notify_policy.after",
                 "consecutive_failures": 3}  # null when no alert policy decided it
    }

A duration alert (``alerts`` in the catalog) has ``type`` ``run.slow`` (sent while the run
still runs), ``run.fast`` (a success quicker than the threshold) or ``run.not_started``
(a slot's run not started in time), and says what crossed what, and why the threshold is
what it is::

      "alert": {"alert": "slow", "value_seconds": 6000.0, "value": "1h40m",
                "threshold_seconds": 5400.0, "threshold": "1h30m", "source": "auto",
                "how": "auto: 2 x the median (45m) of the last 20 successful runs",
                "why": "still running after 1h40m, over the threshold of 1h30m (...)"}

``type`` is also ``run.recovered`` when a ``notify_policy`` with ``recovery: true``
reports that an item succeeded again after a notified failure (``run.status`` is
``succeeded``, ``policy.consecutive_failures`` is 0).

A ``run.missed`` notice is one per catch-up of a schedule, however many slots it
missed; its ``run`` is the first run recorded for them (``skipped`` / ``missed``) and
``missed`` says what happened::

      "missed": {
        "schedule": "ranking-aggregate",
        "cause": "engine_down",          # engine_down | engine_late | timer_restart
        "count": 7, "first": "...Z", "last": "...Z",
        "slots": [{"at": "...Z", "reason": "outside_window"}],   # the newest 20
        "slots_listed": 1,
        "reasons": {"outside_window": 7},  # outside_window | catchup_policy |
                                           # catchup_limit | overlap
        "catchup": "all", "catchup_window": "1h",
        "caught_up": ["...Z"]            # the slots catch-up did run
      }

Times are ISO 8601 in UTC with a ``Z``; absent values are ``null``, never missing keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobdeck.store.records import Run
from jobdeck.units import format_duration

WEBHOOK_VERSION = 1
LOG_TAIL_LINES = 20
# Slack caps a section's text at 3000 characters; 2 KiB of log keeps the whole message
# well inside that and still shows the traceback that matters.
LOG_TAIL_BYTES = 2048


def tail_lines(text: str, lines: int = LOG_TAIL_LINES, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last ``lines`` lines of ``text``, cut further from the front to ``max_bytes``
    of UTF-8 so that one enormous line cannot blow up a message."""
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:]) if lines > 0 else ""
    data = kept.encode("utf-8")
    if len(data) <= max_bytes:
        return kept
    # Cutting bytes may split a character; "ignore" drops the broken head of it.
    return "…" + data[len(data) - max_bytes :].decode("utf-8", errors="ignore")


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``. A naive time is taken as UTC, which is what the
    store writes; converting it as local time would shift it by the host's offset."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RunNotice:
    """One run that someone should hear about: failed, timed out, OOM-killed, lost, or a
    slot that was missed. Built by the engine from a :class:`Run` and its log."""

    run_id: int
    job: str
    kind: str
    status: str
    reason: str | None = None
    attempt: int = 1
    trigger: str | None = None
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    log_tail: str = ""
    pool: str | None = None
    host: str | None = None
    project: str | None = None
    link: str | None = None
    missed: Mapping[str, Any] | None = None  # run.missed: what was missed, and why
    # Set when an alert policy decided this notice: its event (run.recovered, ...) and why.
    event: str | None = None
    why: str | None = None
    streak: int | None = None
    # A duration alert (run.slow, run.fast, run.not_started): threshold, value, source.
    alert: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # Enforced here rather than trusted from callers: a notice is sent to chat and to
        # third parties, and a whole log must never leave by accident.
        object.__setattr__(self, "log_tail", tail_lines(self.log_tail))

    @classmethod
    def from_run(
        cls,
        run: Run,
        *,
        log_tail: str = "",
        link: str | None = None,
        project: str | None = None,
    ) -> RunNotice:
        return cls(
            run_id=run.id,
            job=run.job,
            kind=run.kind,
            status=run.status,
            reason=run.reason,
            attempt=run.attempt,
            trigger=run.trigger,
            scheduled_for=run.scheduled_for,
            started_at=run.started_at,
            ended_at=run.ended_at,
            exit_code=run.exit_code,
            log_tail=log_tail,
            pool=run.pool,
            host=run.host,
            project=project,
            link=link,
            missed=run.detail.get("missed") if run.reason == "missed" else None,
            **_decided(run.detail.get("notice")),
            alert=run.detail.get("alert") if isinstance(run.detail.get("alert"), Mapping) else None,
        )

    @property
    def event_type(self) -> str:
        if self.event is not None:
            return self.event
        if self.status == "skipped" and self.reason == "missed":
            return "run.missed"
        return f"run.{self.status}"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None or self.ended_at is None:
            return None
        start, end = (
            t if t.tzinfo else t.replace(tzinfo=UTC) for t in (self.started_at, self.ended_at)
        )
        # A stepped wall clock can put the end before the start; never report less than 0.
        return max(end - start, timedelta(0))

    @property
    def duration_seconds(self) -> float | None:
        duration = self.duration
        return None if duration is None else round(duration.total_seconds(), 3)

    @property
    def summary(self) -> str:
        """One line for logs, chat fallbacks and subjects: ``job: failed (oom_killed)``."""
        if self.event_type == "run.missed":
            return f"{self.job}: {self.missed_text}"
        if self.alert is not None and self.why:
            return f"{self.job}: {self.why}"
        if self.event_type == "run.recovered":
            return f"{self.job}: recovered ({self.why})" if self.why else f"{self.job}: recovered"
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.job}: {self.status}{why}"

    @property
    def missed_count(self) -> int:
        return int((self.missed or {}).get("count") or 1)

    @property
    def missed_text(self) -> str:
        """``missed 3 slots (engine_down), 2026-03-08T01:00:00Z to 2026-03-08T01:20:00Z``."""
        missed = self.missed or {}
        count = self.missed_count
        cause = f" ({missed['cause']})" if missed.get("cause") else ""
        first, last = missed.get("first"), missed.get("last")
        if count == 1:
            when = f", {first}" if first else ""
            return f"missed 1 slot{cause}{when}"
        when = f", {first} to {last}" if first and last else ""
        return f"missed {count} slots{cause}{when}"


def _decided(notice: object) -> dict[str, Any]:
    """The fields of a notice that an alert policy decided (from the run's detail)."""
    if not isinstance(notice, Mapping):
        return {}
    streak = notice.get("streak")
    return {
        "event": str(notice["event"]) if notice.get("event") else None,
        "why": str(notice["why"]) if notice.get("why") else None,
        "streak": streak if isinstance(streak, int) else None,
    }


def display_duration(duration: timedelta | None) -> str:
    """The catalog's spelling (``1h2m3s``), to the second: milliseconds are noise there."""
    if duration is None:
        return "-"
    if duration >= timedelta(seconds=1):
        duration = timedelta(seconds=round(duration.total_seconds()))
    return format_duration(duration)


def webhook_payload(
    notice: RunNotice, *, delivery_id: str, occurred_at: datetime
) -> dict[str, Any]:
    """The webhook's JSON body; see the module docstring for the contract."""
    return {
        "type": notice.event_type,
        "event": notice.event_type,
        "version": WEBHOOK_VERSION,
        "delivery_id": delivery_id,
        "occurred_at": iso_utc(occurred_at),
        "run": {
            "id": notice.run_id,
            "job": notice.job,
            "kind": notice.kind,
            "trigger": notice.trigger,
            "status": notice.status,
            "reason": notice.reason,
            "attempt": notice.attempt,
            "scheduled_for": iso_utc(notice.scheduled_for),
            "started_at": iso_utc(notice.started_at),
            "ended_at": iso_utc(notice.ended_at),
            "duration_seconds": notice.duration_seconds,
            "exit_code": notice.exit_code,
            "pool": notice.pool,
            "host": notice.host,
            "project": notice.project,
            "url": notice.link,
        },
        "log_tail": notice.log_tail,
        "missed": dict(notice.missed) if notice.missed is not None else None,
        "policy": (
            None
            if notice.why is None or notice.alert is not None
            else {"why": notice.why, "consecutive_failures": notice.streak}
        ),
        "alert": dict(notice.alert) if notice.alert is not None else None,
    }
