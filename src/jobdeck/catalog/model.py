"""The catalog model: frozen pydantic models of ``jobdeck.yaml`` (SPEC section 1).

A model validates one item on its own; references between items (pools, queues,
placeholders) and the ``defaults`` section are resolved by :mod:`jobdeck.catalog.load`,
which returns the *effective* catalog: every item with its defaults filled in.
"""

from __future__ import annotations

import re
import weakref
from datetime import timedelta
from string import Formatter
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from jobdeck.cadence import Cadence, CronCadence, RateCadence, shortest_interval
from jobdeck.catalog.alerting import Alerts, NotifyPolicy
from jobdeck.catalog.params import ParamValue, coerce
from jobdeck.catalog.types import (
    ENV_RE,
    NAME_RE,
    PARAM_RE,
    Cron,
    Duration,
    EnvName,
    EnvValue,
    Name,
    NotifyTarget,
    ParamName,
    ProjectName,
    Size,
    SlashCommand,
    Zone,
)
from jobdeck.units import format_duration

Kind = Literal["schedule", "worker", "command", "queue", "pool"]
RUNNABLE_KINDS: tuple[Kind, ...] = ("schedule", "worker", "command")
Overlap = Literal["skip", "buffer_one", "cancel_other", "allow"]
Catchup = Literal["none", "latest", "all"]
Priority = Literal["critical", "high", "normal", "low"]
Capacity = Literal["spot", "on_demand"]
ParamType = Literal["string", "int", "float", "bool", "url", "choice"]

Argv = Annotated[list[str], Field(min_length=1)]


def _keys(pattern: re.Pattern[str]) -> JsonDict:
    """JSON Schema for the keys of a mapping: pydantic publishes a key pattern only as
    ``patternProperties``, which still lets other keys through."""
    return {"propertyNames": {"pattern": f"^{pattern.pattern}$"}}


Env = Annotated[dict[EnvName, EnvValue], Field(json_schema_extra=_keys(ENV_RE))]


def problem(message: str, at: str | None = None) -> PydanticCustomError:
    """A validation error; ``at`` names the key it is about, inside the item.

    The loader reports it at that key, as ``<item path>.<at>: <message>``, so the message
    says what is wrong and how to fix it without repeating the key's name.
    """
    return PydanticCustomError("catalog", "{message}", {"message": message, "at": at})


# Pairs of keys of which an item takes one: (first, second, one of them is required).
ONE_OF: dict[str, list[tuple[str, str, bool]]] = {
    "schedules": [("cron", "rate", True), ("command", "shell", True)],
    "workers": [("command", "shell", True), ("replicas", "autoscale", False)],
}


def one_of_problems(section: str, present: set[str]) -> list[tuple[str | None, str]]:
    """(key to point at, message) for each ONE_OF rule that ``present`` keys break.

    Used both by the models and, on the raw YAML, by the loader, so that these rules are
    reported even when other fields of the same item are invalid.
    """
    found: list[tuple[str | None, str]] = []
    for first, second, required in ONE_OF.get(section, []):
        if first in present and second in present:
            found.append((second, f"cannot be combined with '{first}'; keep one of the two"))
        elif required and first not in present and second not in present:
            found.append((None, f"neither '{first}' nor '{second}' is given; add one of them"))
    return found


def _check_one_of(section: str, spec: BaseModel) -> None:
    present = {name for name in type(spec).model_fields if getattr(spec, name) is not None}
    for at, message in one_of_problems(section, present):
        raise problem(message, at)


# Models that were given the same fields share one set of their names. Pydantic keeps a
# set per instance, about 2 KB each; a catalog read back from the store gives every field,
# so at 10,000 schedules that was 25 MB of identical sets. A shared set stays a ``set``
# (``model_copy`` copies it before it adds to it), and no code of ours changes it.
_FIELDS_SETS: weakref.WeakValueDictionary[frozenset[str], set[str]] = weakref.WeakValueDictionary()

_M = TypeVar("_M", bound=BaseModel)


def share_fields_set(model: _M) -> _M:
    """``model`` with its set of given fields swapped for the one shared by every model
    given the same fields (for copies, which skip the validators)."""
    given = model.__pydantic_fields_set__
    key = frozenset(given)
    shared = _FIELDS_SETS.get(key)
    if shared is None:
        shared = _FIELDS_SETS.setdefault(key, set(given))
    object.__setattr__(model, "__pydantic_fields_set__", shared)
    return model


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="after")
    def _share_fields_set(self) -> Spec:
        return share_fields_set(self)


class Retry(Spec):
    launch: int = Field(3, ge=0, le=20, description="retries of launch errors")
    failure: int = Field(0, ge=0, le=20, description="retries of non-zero exits")
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


class Allow(Spec):
    channels: list[str] = []
    users: list[str] = []
    usergroups: list[str] = []


# An approval that nobody gives within this long is no longer a fresh decision.
APPROVAL_MAX = timedelta(days=7)


class Approve(Spec):
    """Four-eyes approval: who may approve a run of the command, and for how long a
    request waits. Slack user ids (or, from the terminal and the API, the names those
    callers act as) in ``users``; Slack user group ids in ``usergroups``."""

    users: list[str] = Field([], description="who may approve (Slack user ids or names)")
    usergroups: list[str] = Field([], description="Slack user groups whose members may approve")
    expires: Duration = Field(
        timedelta(minutes=15), description="an unapproved request is cancelled after this"
    )

    @model_validator(mode="after")
    def _someone(self) -> Approve:
        if not self.users and not self.usergroups:
            raise problem(
                "names no approver: list at least one of users or usergroups "
                "(the requester can never approve their own request)"
            )
        if self.expires <= timedelta(0):
            raise problem("must be longer than 0s", "expires")
        if self.expires > APPROVAL_MAX:
            raise problem("longer than 7d; an approval must be asked for again", "expires")
        return self


class Param(Spec):
    type: ParamType = "string"
    description: str = ""
    required: bool = False
    default: ParamValue | None = None
    max_length: int | None = Field(None, ge=1)
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None

    @model_validator(mode="after")
    def _rules(self) -> Param:
        if self.type == "choice" and not self.choices:
            raise problem(
                "a choice param needs a non-empty 'choices' list; add e.g. 'choices: [a, b]'",
                "choices" if self.choices is not None else "type",
            )
        if self.choices is not None and self.type != "choice":
            raise problem(
                f"only choice params take choices, this one is {self.type}; "
                "remove it or set 'type: choice'",
                "choices",
            )
        for at in ("max_length", "pattern"):
            if getattr(self, at) is not None and self.type not in ("string", "url"):
                raise problem(
                    f"only string and url params take it, this one is {self.type}; remove it",
                    at,
                )
        for at in ("min", "max"):
            if getattr(self, at) is not None and self.type not in ("int", "float"):
                raise problem(
                    f"only int and float params take it, this one is {self.type}; remove it", at
                )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise problem(
                f"{_number(self.min)} is greater than max ({_number(self.max)}); "
                "lower min or raise max",
                "min",
            )
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise problem(
                    f"invalid regular expression ({exc}); fix it (Python re syntax)", "pattern"
                ) from None
        if self.required and self.default is not None:
            raise problem(
                "a required param cannot have a default; remove one of the two", "default"
            )
        if self.default is not None:
            try:
                coerce(self, self.default)
            except ValueError as exc:
                raise problem(
                    f"the default breaks the param's own rules ({exc}); change it", "default"
                ) from None
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
    notify_policy: NotifyPolicy = NotifyPolicy()
    alerts: Alerts = Alerts()

    @model_validator(mode="after")
    def _trigger(self) -> Schedule:
        _check_one_of("schedules", self)
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
        _check_one_of("workers", self)
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
    params: Annotated[dict[ParamName, Param], Field(json_schema_extra=_keys(PARAM_RE))] = {}
    timeout: Duration = timedelta(hours=1)
    kill_grace: Duration = timedelta(seconds=10)
    confirm: bool = False
    allow: Allow = Allow()
    approve: Approve | None = None
    slash: SlashCommand | None = None
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


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def placeholders(arg: str) -> list[str]:
    """The ``{name}`` fields of one argv element (``{{`` and ``}}`` are literal braces)."""
    return [field for _, field, _, _ in Formatter().parse(arg) if field is not None]


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


_NAMED = Field(json_schema_extra=_keys(NAME_RE))

VpcId = Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
SubnetId = Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]
SecurityGroupId = Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]


class Aws(Spec):
    """Where the AWS target lands (read only by ``jobdeck deploy aws``): an existing
    network, and the rules a platform team sets for its accounts."""

    vpc_id: VpcId | None = Field(None, description="an existing VPC; else the stack makes one")
    subnets: list[SubnetId] = Field([], description="subnets of vpc_id for tasks and the host")
    security_groups: list[SecurityGroupId] = Field(
        [], description="security groups of tasks and the tools host; else one with no inbound"
    )
    assign_public_ip: bool = Field(
        True, description="false for private subnets that reach AWS through NAT or endpoints"
    )
    permissions_boundary: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+$",
        description="an IAM policy ARN set as the boundary of every role the stack makes",
    )
    tools_instance_type: str = Field("t3.small", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    tags: dict[str, str] = Field({}, description="tags of every resource")

    @model_validator(mode="after")
    def _network(self) -> Aws:
        if self.vpc_id is None and (self.subnets or self.security_groups):
            raise problem("subnets and security groups belong to a VPC; add 'vpc_id'", "vpc_id")
        if self.vpc_id is not None and not self.subnets:
            raise problem(
                "an existing VPC needs the subnets to use (two or more, in different "
                "availability zones); list them",
                "subnets",
            )
        if self.vpc_id is None and not self.assign_public_ip:
            raise problem(
                "the VPC the stack makes has public subnets only; without a public IP "
                "tasks cannot reach ECR; set 'vpc_id' and 'subnets' of a network with NAT "
                "or VPC endpoints",
                "assign_public_ip",
            )
        return self


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
}
