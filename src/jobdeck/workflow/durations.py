"""Duration alerts' decisions (pure): the thresholds of ``alerts: {slow, fast}``, fixed
or learned from an item's recent successful runs, and whether a run crossed one.

``auto``, exactly (docs/operations.md says the same to users):

- the sample: the durations (start to end) of the item's newest successful runs, at
  most ``AUTO_SAMPLES`` of them; the run being judged is never part of its own sample;
- fewer than ``AUTO_MINIMUM`` successful runs: no threshold, no alert;
- ``slow``: twice the median, and at least the median plus ``SLOW_MARGIN``;
- ``fast``: a quarter of the median; none when the median is under ``FAST_FLOOR`` (a
  quick job's noise is not news). The median, not the shortest run, so that one earlier
  suspicious success does not hide the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median

from jobdeck.catalog.alerting import Alerts
from jobdeck.units import format_duration

AUTO_SAMPLES = 20
AUTO_MINIMUM = 5
SLOW_MARGIN = timedelta(minutes=1)
FAST_FLOOR = timedelta(minutes=1)


@dataclass(frozen=True)
class Threshold:
    """A threshold and where it came from, as a notice shows it."""

    value: timedelta
    source: str  # "catalog" or "auto"
    how: str  # in words: "alerts.slow: 2h" or "2 x the median (25m) of the last 12 ..."

    def detail(self) -> dict[str, object]:
        return {
            "threshold_seconds": round(self.value.total_seconds(), 3),
            "threshold": show(self.value),
            "source": self.source,
            "how": self.how,
        }


def show(duration: timedelta) -> str:
    """A duration as the catalog spells it, to the second (milliseconds under 1s)."""
    if duration >= timedelta(seconds=1):
        duration = timedelta(seconds=round(duration.total_seconds()))
    return format_duration(duration)


def _median(sample: list[timedelta]) -> timedelta:
    return timedelta(seconds=median(d.total_seconds() for d in sample))


def _runs(count: int) -> str:
    return f"the last {count} successful run{'s' if count != 1 else ''}"


def slow_threshold(alerts: Alerts, sample: list[timedelta]) -> Threshold | None:
    """The ``slow`` threshold of an item whose newest successful runs took ``sample``."""
    if alerts.slow is None:
        return None
    if isinstance(alerts.slow, timedelta):
        return Threshold(alerts.slow, "catalog", f"alerts.slow: {show(alerts.slow)}")
    sample = sample[:AUTO_SAMPLES]
    if len(sample) < AUTO_MINIMUM:
        return None
    middle = _median(sample)
    if middle * 2 >= middle + SLOW_MARGIN:
        how = f"auto: 2 x the median ({show(middle)}) of {_runs(len(sample))}"
        return Threshold(middle * 2, "auto", how)
    how = f"auto: the median ({show(middle)}) of {_runs(len(sample))} + {show(SLOW_MARGIN)}"
    return Threshold(middle + SLOW_MARGIN, "auto", how)


def fast_threshold(alerts: Alerts, sample: list[timedelta]) -> Threshold | None:
    """The ``fast`` threshold of an item whose newest successful runs took ``sample``."""
    if alerts.fast is None:
        return None
    if isinstance(alerts.fast, timedelta):
        return Threshold(alerts.fast, "catalog", f"alerts.fast: {show(alerts.fast)}")
    sample = sample[:AUTO_SAMPLES]
    if len(sample) < AUTO_MINIMUM:
        return None
    middle = _median(sample)
    if middle < FAST_FLOOR:
        return None
    how = f"auto: a quarter of the median ({show(middle)}) of {_runs(len(sample))}"
    return Threshold(middle / 4, "auto", how)


@dataclass(frozen=True)
class DurationAlert:
    """A run whose duration crossed a threshold: what to notify."""

    event: str  # run.slow | run.fast | run.not_started
    value: timedelta
    threshold: Threshold

    @property
    def why(self) -> str:
        words = {
            "run.slow": "still running after",
            "run.fast": "succeeded in",
            "run.not_started": "not started",
        }[self.event]
        limit = {"run.slow": "over", "run.fast": "under", "run.not_started": "over"}[self.event]
        after = " after its nominal time" if self.event == "run.not_started" else ""
        return (
            f"{words} {show(self.value)}{after}, {limit} the threshold of "
            f"{show(self.threshold.value)} ({self.threshold.how})"
        )

    def detail(self) -> dict[str, object]:
        return {
            "alert": self.event.removeprefix("run."),
            "value_seconds": round(self.value.total_seconds(), 3),
            "value": show(self.value),
            **self.threshold.detail(),
            "why": self.why,
        }


def decide_slow(
    threshold: Threshold | None, started_at: datetime, now: datetime, timeout: timedelta
) -> DurationAlert | None:
    """A running run's slow alert at ``now``: None before the threshold, and when the
    threshold is at or past the timeout (whose own notice will tell)."""
    if threshold is None or threshold.value >= timeout:
        return None
    running = now - started_at
    if running < threshold.value:
        return None
    return DurationAlert("run.slow", running, threshold)


def decide_fast(threshold: Threshold | None, duration: timedelta) -> DurationAlert | None:
    """A successful run's fast alert: only when it took less than the threshold."""
    if threshold is None or duration >= threshold.value:
        return None
    return DurationAlert("run.fast", duration, threshold)


def decide_not_started(
    limit: timedelta | None, nominal: datetime, now: datetime
) -> DurationAlert | None:
    """A slot whose run has not started by ``now``: late by ``limit`` or more."""
    if limit is None:
        return None
    late = now - nominal
    if late < limit:
        return None
    how = f"alerts.not_started_by: {show(limit)}"
    return DurationAlert("run.not_started", late, Threshold(limit, "catalog", how))
