"""The catalog model: frozen pydantic models of ``jobdeck.yaml`` (SPEC section 1).

A model validates one item on its own; references between items (pools, queues,
placeholders) and the ``defaults`` section are resolved by :mod:`jobdeck.catalog.load`,
which returns the *effective* catalog: every item with its defaults filled in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from jobdeck.cadence import Cadence, CronCadence, RateCadence, shortest_interval
from jobdeck.catalog.alerting import Alerts, NotifyPolicy
from jobdeck.catalog.aws import Aws
from jobdeck.catalog.command_parts import Allow, Approve, Param, placeholders
from jobdeck.catalog.concurrency import Concurrency
from jobdeck.catalog.monitors import Monitor
from jobdeck.catalog.spec import (
    Env,
    Spec,
    check_one_of,
    keys_schema,
    problem,
)
from jobdeck.catalog.types import (
    NAME_RE,
    PARAM_RE,
    Cron,
    Duration,
    Name,
    NotifyTarget,
    ParamName,
    ProjectName,
    Size,
    SlashCommand,
    Zone,
)
from jobdeck.units import format_duration

Kind = Literal["schedule", "worker", "command", "queue", "pool", "monitor"]
RUNNABLE_KINDS: tuple[Kind, ...] = ("schedule", "worker", "command")
Overlap = Literal["skip", "buffer_one", "cancel_other", "allow"]
Catchup = Literal["none", "latest", "all"]
Priority = Literal["critical", "high", "normal", "low"]
Capacity = Literal["spot", "on_demand"]

Argv = Annotated[list[str], Field(min_length=1)]


class Retry(Spec):
    launch: int = Field(3, ge=0, le=20, description="retries of launch errors")
    failure: int = Field(0, ge=0, le=20, description="retries of non-zero exits")
    lost: int = Field(
        0,
        ge=0,
        le=20,
        description="retries of runs recorded lost (their node went silent, or their "
        "engine restarted without them); never of a cancelled run",
    )
    backoff: Duration = Field(timedelta(seconds=10), description="first backoff; doubles")


class Pool(Spec):
    description: str = ""
    memory: Size | None = None
    cpus: float | None = Field(None, gt=0, le=1024)
    max_concurrency: int | None = Field(None, ge=1)
    priority: Priority = "normal"
    warm: bool = False


class Queue(Spec):
    description: str = ""
    visibility_timeout: Duration = timedelta(seconds=30)
    max_receive_count: int | None = Field(None, ge=1, le=1000)
    retention: Duration = timedelta(days=4)
    delay: Duration = timedelta(0)
    fifo: bool = False
    content_based_deduplication: bool = False

    @model_validator(mode="after")
    def _limits(self) -> Queue:
        if self.visibility_timeout > timedelta(hours=12):
            raise problem("longer than 12h, the most SQS allows; lower it", "visibility_timeout")
        if not timedelta(seconds=60) <= self.retention <= timedelta(days=14):
            raise problem("outside 60s..14d, the range SQS allows; pick a value in it", "retention")
        if self.delay > timedelta(minutes=15):
            raise problem("longer than 15m, the most SQS allows; lower it", "delay")
        if self.content_based_deduplication and not self.fifo:
            raise problem(
                "only FIFO queues deduplicate; set 'fifo: true' or remove this key",
                "content_based_deduplication",
            )
        return self


class Autoscale(Spec):
    min: int = Field(0, ge=0)
    max: int = Field(ge=1)
    backlog_per_replica: int = Field(100, ge=1)
    cooldown: Duration = timedelta(minutes=5)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.min > self.max:
            raise problem(
                f"{self.min} is greater than max ({self.max}); lower min or raise max", "min"
            )
        return self


class _Runnable(Spec):
    """Fields shared by schedules, workers and commands."""

    description: str = ""
    command: Argv | None = None
    env: Env = {}
    workdir: str = "."
    pool: Name | None = None
    memory: Size | None = None
    cpus: float | None = Field(None, gt=0, le=1024)
    enabled: bool = True
    notify: list[NotifyTarget] = []
    image: str | None = None


class _Process(_Runnable):
    shell: str | None = None


class Schedule(_Process):
    cron: Cron | None = None
    rate: Duration | None = None
    timezone: Zone | None = None
    timeout: Duration = timedelta(hours=1)
    kill_grace: Duration = timedelta(seconds=10)
    overlap: Overlap = "skip"
    retry: Retry = Retry()
    catchup: Catchup = "latest"
    catchup_window: Duration = timedelta(hours=1)
    jitter: Duration | None = Field(
        None,
        description="each timed slot starts after a delay in [0, jitter), the same for "
        "(schedule, slot) on every engine; shorter than the interval",
    )
    concurrency: Concurrency | None = Field(
        None, description="a key shared with other items: at most its limit of runs at once"
    )
    notify_policy: NotifyPolicy = NotifyPolicy()
    alerts: Alerts = Alerts()

    @model_validator(mode="after")
    def _trigger(self) -> Schedule:
        check_one_of("schedules", self)
        if self.rate is not None and self.rate < timedelta(seconds=1):
            raise problem("shorter than 1s, the shortest rate; raise it", "rate")
        if self.rate is not None and self.timezone is not None:
            raise problem(
                "has no effect on a rate, which counts elapsed time; remove it", "timezone"
            )
        if self.timeout <= timedelta(0):
            raise problem("must be greater than zero; e.g. 15m", "timeout")
        if "jitter" in self.model_fields_set and self.jitter is not None:
            message = jitter_problem(self)
            if message:
                raise problem(message, "jitter")
        _check_slow(self, self.alerts, self.timeout)
        return self


def jitter_problem(spec: Schedule) -> str | None:
    """Why the schedule's jitter is wrong: it must be smaller than the shortest time
    between two of its slots (else a slot could start after the next one)."""
    if spec.jitter is None:
        return None
    shortest = shortest_interval(cadence_for(spec))
    if shortest is not None and spec.jitter >= shortest:
        return (
            f"{format_duration(spec.jitter)} is not shorter than the schedule's interval "
            f"({format_duration(shortest)}, the shortest time between two slots); lower it"
        )
    return None


def _check_slow(spec: Spec, alerts: Alerts, timeout: timedelta) -> None:
    # Only against the item's own timeout: a default one is filled in later, and a slow
    # alert it outgrows simply never fires (the timeout's notice says what happened).
    if "timeout" not in spec.model_fields_set:
        return
    if isinstance(alerts.slow, timedelta) and alerts.slow >= timeout:
        raise problem(
            f"alerts.slow is {format_duration(alerts.slow)}, but the timeout stops a run "
            f"at {format_duration(timeout)}, so it could never notify; lower it below the "
            "timeout",
            "alerts",
        )


def cadence_for(spec: Schedule) -> Cadence:
    """When the schedule fires: its cron in its zone, or its rate."""
    if spec.cron is not None:
        return CronCadence(spec.cron, spec.timezone or "UTC")
    if spec.rate is not None:
        return RateCadence(spec.rate)
    raise ValueError("a schedule has either cron or rate")  # the model guarantees one


class Worker(_Process):
    queue: Name | None = None
    replicas: int | None = Field(None, ge=0, le=1000)
    autoscale: Autoscale | None = None
    singleton: bool = False
    stop_grace: Duration = timedelta(seconds=30)
    capacity: Capacity = "on_demand"

    @model_validator(mode="after")
    def _replicas(self) -> Worker:
        check_one_of("workers", self)
        if self.singleton and self.replicas is not None and self.replicas > 1:
            raise problem(
                f"is {self.replicas}, but a singleton worker runs at most one process; "
                "set replicas to 1 or singleton to false",
                "replicas",
            )
        if self.singleton and self.autoscale is not None and self.autoscale.max > 1:
            raise problem(
                f"max is {self.autoscale.max}, but a singleton worker runs at most one "
                "process; set max to 1 or singleton to false",
                "autoscale",
            )
        if self.autoscale is not None and self.queue is None:
            raise problem(
                "follows a queue's backlog, but the worker has no queue; set 'queue'",
                "autoscale",
            )
        return self

    @property
    def desired_replicas(self) -> int:
        """Replicas to run when not autoscaled (1 when neither is given)."""
        if self.autoscale is not None:
            return self.autoscale.min
        return 1 if self.replicas is None else self.replicas


class Command(_Runnable):
    command: Argv
    params: Annotated[dict[ParamName, Param], Field(json_schema_extra=keys_schema(PARAM_RE))] = {}
    timeout: Duration = timedelta(hours=1)
    kill_grace: Duration = timedelta(seconds=10)
    confirm: bool = False
    allow: Allow = Allow()
    approve: Approve | None = None
    slash: SlashCommand | None = None
    concurrency: Concurrency | None = Field(
        None, description="a key shared with other items: at most its limit of runs at once"
    )
    notify_policy: NotifyPolicy = NotifyPolicy()
    alerts: Alerts = Alerts()

    @model_validator(mode="after")
    def _alerts(self) -> Command:
        if self.alerts.not_started_by is not None:
            raise problem(
                "alerts.not_started_by needs a nominal time, which only schedules have; remove it",
                "alerts",
            )
        _check_slow(self, self.alerts, self.timeout)
        return self

    def placeholders(self) -> list[tuple[int, str]]:
        """(argv index, param name) for each ``{name}`` in the argv."""
        return [(i, name) for i, arg in enumerate(self.command) for name in placeholders(arg)]


class Defaults(Spec):
    """Values applied to every schedule, worker and command that does not set its own."""

    timeout: Duration | None = None
    kill_grace: Duration | None = None
    stop_grace: Duration | None = None
    notify: list[NotifyTarget] | None = None
    pool: Name | None = None
    env: Env | None = None
    workdir: str | None = None
    memory: Size | None = None
    cpus: float | None = Field(None, gt=0, le=1024)
    retry: Retry | None = None
    overlap: Overlap | None = None
    catchup: Catchup | None = None
    catchup_window: Duration | None = None
    jitter: Duration | None = None
    image: str | None = None
    capacity: Capacity | None = None
    notify_policy: NotifyPolicy | None = None


_NAMED = Field(json_schema_extra=keys_schema(NAME_RE))


class Catalog(Spec):
    version: Literal[1]
    project: ProjectName
    timezone: Zone = "UTC"
    defaults: Defaults = Defaults()
    pools: Annotated[dict[Name, Pool], _NAMED] = {}
    queues: Annotated[dict[Name, Queue], _NAMED] = {}
    schedules: Annotated[dict[Name, Schedule], _NAMED] = {}
    workers: Annotated[dict[Name, Worker], _NAMED] = {}
    commands: Annotated[dict[Name, Command], _NAMED] = {}
    monitors: Annotated[dict[Name, Monitor], _NAMED] = {}
    aws: Aws | None = None

    def items(self) -> list[tuple[Kind, str, Spec]]:
        """Every declared item as (kind, name, spec), in a stable order."""
        found: list[tuple[Kind, str, Spec]] = []
        for kind, section in SECTIONS.items():
            for name, spec in getattr(self, section).items():
                found.append((kind, name, spec))
        return found

    def find(self, name: str) -> list[tuple[Kind, Spec]]:
        return [(kind, spec) for kind, item, spec in self.items() if item == name]

    def counts(self) -> dict[str, int]:
        return {section: len(getattr(self, section)) for section in SECTIONS.values()}


SECTIONS: dict[Kind, str] = {
    "pool": "pools",
    "queue": "queues",
    "schedule": "schedules",
    "worker": "workers",
    "command": "commands",
    "monitor": "monitors",
}
