"""The catalog's ``monitors:``: jobs that jobdeck does not run but watches.

A monitor expects pings (``/ping/{monitor}/{token}/...``) at the slots of its ``cron``
or ``rate``: a slot with no ping by ``grace`` after it is recorded ``skipped`` with
reason ``missed``, a start without an end within ``timeout`` ``timed_out``; both are
notified as a schedule's runs are, under the same ``notify_policy`` and ``alerts``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from pydantic import Field, model_validator

from jobdeck.cadence import Cadence, CronCadence, RateCadence
from jobdeck.catalog.alerting import Alerts, NotifyPolicy
from jobdeck.catalog.spec import Env, Spec, check_one_of, one_of_problems, problem
from jobdeck.catalog.types import Cron, Duration, NotifyTarget, Zone

DEFAULT_GRACE = timedelta(minutes=5)
DEFAULT_TIMEOUT = timedelta(hours=1)


class Monitor(Spec):
    description: str = ""
    cron: Cron | None = None
    rate: Duration | None = None
    timezone: Zone | None = None
    grace: Duration = Field(
        DEFAULT_GRACE,
        description="how long after a slot its ping may arrive (before or after it) before "
        "the slot is recorded missed",
    )
    timeout: Duration = Field(
        DEFAULT_TIMEOUT, description="a start ping with no end ping within this is timed_out"
    )
    notify: list[NotifyTarget] = []
    notify_policy: NotifyPolicy = NotifyPolicy()
    alerts: Alerts = Alerts()
    shell: str | None = Field(
        None,
        description="the command line the watched job runs (written by `jobdeck import "
        "crontab --monitor`); `jobdeck migrate` makes it the schedule's shell",
    )
    env: Env = Field(
        {}, description="the environment the watched job runs with; `jobdeck migrate` keeps it"
    )

    @model_validator(mode="after")
    def _trigger(self) -> Monitor:
        check_one_of("monitors", self)
        if self.rate is not None and self.rate < timedelta(minutes=1):
            raise problem("shorter than 1m, the shortest rate of a monitor; raise it", "rate")
        if self.rate is not None and self.timezone is not None:
            raise problem(
                "has no effect on a rate, which counts elapsed time; remove it", "timezone"
            )
        for name in ("grace", "timeout"):
            if getattr(self, name) <= timedelta(0):
                raise problem("must be greater than zero; e.g. 15m", name)
        if self.alerts.not_started_by is not None:
            raise problem(
                "alerts.not_started_by does not apply to a monitor: its 'grace' says when "
                "a slot's ping is late; remove it",
                "alerts",
            )
        if isinstance(self.alerts.slow, timedelta) and self.alerts.slow >= self.timeout:
            raise problem(
                "alerts.slow is not shorter than the timeout, so it could never notify; "
                "lower it below the timeout",
                "alerts",
            )
        return self


def monitor_cadence(spec: Monitor) -> Cadence:
    """When the monitor expects its pings: its cron in its zone, or its rate."""
    if spec.cron is not None:
        return CronCadence(spec.cron, spec.timezone or "UTC")
    if spec.rate is not None:
        return RateCadence(spec.rate)
    raise ValueError("a monitor has either cron or rate")  # the model guarantees one


def monitor_problems(
    data: dict[str, Any], sections: Iterable[str]
) -> list[tuple[tuple[str, ...], str]]:
    """(key to point at, message) for the raw catalog's monitors: their one-of rules
    (reported with the model's other errors), and names taken by another item (a
    monitor's runs are recorded under its name)."""
    found: list[tuple[tuple[str, ...], str]] = []
    monitors = data.get("monitors")
    for name, spec in (monitors if isinstance(monitors, dict) else {}).items():
        if isinstance(spec, dict):
            present = {key for key, value in spec.items() if value is not None}
            for at, message in one_of_problems("monitors", present):
                found.append((("monitors", name, at) if at else ("monitors", name), message))
        for section in sections:
            items = data.get(section)
            if section != "monitors" and isinstance(items, dict) and name in items:
                found.append(
                    (
                        ("monitors", name),
                        f"the name is taken by {section}.{name}; a monitor's runs are "
                        "recorded under its name, so rename one of them",
                    )
                )
    return found
