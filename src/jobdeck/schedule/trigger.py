"""The trigger of a catalog schedule."""

from __future__ import annotations

from jobdeck.catalog.model import Schedule
from jobdeck.schedule.timing import CronTrigger, RateTrigger, Trigger


def trigger_for(spec: Schedule) -> Trigger:
    if spec.cron is not None:
        return CronTrigger(spec.cron, spec.timezone or "UTC")
    if spec.rate is not None:
        return RateTrigger(spec.rate)
    raise ValueError("a schedule has either cron or rate")  # the model guarantees one
