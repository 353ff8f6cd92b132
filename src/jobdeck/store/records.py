"""The records that the store keeps, as plain frozen dataclasses (no SQLAlchemy types)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

Via = Literal["cli", "api", "slack", "engine"]
Outcome = Literal["ok", "refused", "error"]


@dataclass(frozen=True)
class RevisionInfo:
    """An applied revision as listed: which one, from which file and commit, by whom."""

    number: int
    applied_at: datetime
    applied_by: str
    catalog_sha256: str
    git_describe: str | None
    source: str


@dataclass(frozen=True)
class Revision(RevisionInfo):
    """One applied catalog: its listing, the file's text and what runs."""

    text: str
    catalog: dict[str, Any]  # the effective catalog, as Catalog.model_dump(mode="json")


@dataclass(frozen=True)
class Suspension:
    """An emergency stop of one schedule, worker or command. Only ``resume`` or its own
    ``until`` ends it; no apply does."""

    id: int
    kind: str
    name: str
    reason: str
    created_by: str
    created_at: datetime
    until: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    # Resumed with --catch-up: the slots it held are caught up by the schedule's policy
    # (by the first engine to take it, at ``caught_up_at``).
    catch_up: bool = False
    caught_up_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.ended_at is None and (self.until is None or now < self.until)


@dataclass(frozen=True)
class AuditEntry:
    """Who did what, from where, and how it ended."""

    at: datetime
    actor: str
    via: Via
    action: str
    target: str | None = None
    outcome: Outcome = "ok"
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class Notice:
    """One notice the engine decided about: sent to the job's ``notify`` targets, or held
    back by its ``notify_policy`` (recorded all the same, with why).

    ``stream`` groups the notices that a policy counts together: ``failure`` (failures and
    the recovery that ends them) and ``duration`` (slow, fast, not started). ``streak`` is
    the number of consecutive failures the notice stands on (0 for a recovery).

    A notice to send is an outbox entry: ``delivery`` is ``due`` until its targets
    accepted it (then ``delivered``, at ``delivered_at``) or it is given up
    (``given_up``); ``None`` for a notice held back (or recorded before the outbox).
    ``message`` holds what to send again after a restart (the run as sent, its log
    tail); ``attempts`` counts failed tries, ``next_try_at`` is the earliest next one.
    """

    at: datetime
    job: str
    kind: str
    event: str
    stream: str
    sent: bool
    why: str
    run_id: int | None = None
    streak: int = 0
    targets: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    delivery: str | None = None
    attempts: int = 0
    next_try_at: datetime | None = None
    delivered_at: datetime | None = None
    message: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoticeCount:
    """How many notices of one event a job has, sent or held back."""

    kind: str
    job: str
    event: str
    sent: bool
    count: int


RunKind = Literal["schedule", "worker", "command", "monitor"]
Trigger = Literal["schedule", "manual", "chatops", "api", "retry", "catchup", "backfill", "ping"]
RunStatus = Literal[
    "pending", "running", "succeeded", "failed", "timed_out", "skipped", "cancelled", "lost"
]
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("pending", "running")
TERMINAL_STATUSES: tuple[RunStatus, ...] = (
    "succeeded",
    "failed",
    "timed_out",
    "skipped",
    "cancelled",
    "lost",
)


@dataclass(frozen=True)
class Retries:
    """Retries already spent on a fire, by kind (the ``retries`` of a run's detail)."""

    launch: int = 0
    failure: int = 0
    lost: int = 0  # of runs recorded lost (kept in the detail only once one was spent)


@dataclass(frozen=True)
class CancelRequest:
    """Who asked to cancel a run and why, kept with it until it ends."""

    cancelled_by: str | None
    cancel_reason: str | None

    def detail(self) -> dict[str, Any]:
        return {"cancelled_by": self.cancelled_by, "cancel_reason": self.cancel_reason}


ApprovalDecision = Literal["approved", "rejected", "expired"]


@dataclass(frozen=True)
class Approval:
    """A command run that waits for a second person (four-eyes): who may approve it,
    until when, and once decided, the decision with who, when and why."""

    users: tuple[str, ...]
    usergroups: tuple[str, ...]
    expires_at: datetime
    decision: ApprovalDecision | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None

    @classmethod
    def of(cls, detail: Mapping[str, Any]) -> Approval | None:
        expires_at = _instant(detail.get("expires_at"))
        if expires_at is None:
            return None
        return cls(
            users=tuple(str(u) for u in detail.get("users", ())),
            usergroups=tuple(str(g) for g in detail.get("usergroups", ())),
            expires_at=expires_at,
            decision=detail.get("decision"),
            decided_by=detail.get("decided_by"),
            decided_at=_instant(detail.get("decided_at")),
            reason=detail.get("reason"),
        )

    def detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "users": list(self.users),
            "usergroups": list(self.usergroups),
            "expires_at": _iso(self.expires_at),
        }
        if self.decision is not None:
            out["decision"] = self.decision
            out["decided_by"] = self.decided_by
            out["decided_at"] = None if self.decided_at is None else _iso(self.decided_at)
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class RunPlan:
    """The control data of a run: what the engine decides by, typed.

    It lives in the run's ``detail`` (one JSON column, beside the facts shown to people:
    lateness, timings, why), under the keys it always had; :meth:`of` reads it from a
    detail (also one written by an earlier release), :meth:`detail` gives its keys, in
    this order, for the fields set.
    """

    requested_at: datetime | None = None  # when the request arrived (dispatch latency)
    not_before: datetime | None = None  # a retry's backoff: it starts no earlier
    catchup_of: str | None = None  # a missed slot caught up: why it was missed
    buffered: bool = False  # waits for the job's running run (overlap: buffer)
    cancels: tuple[int, ...] = ()  # the runs it replaces (overlap: cancel_other)
    exclusive: bool = False  # starts only when no other run of its job runs
    argv: tuple[str, ...] | None = None  # a command's rendered arguments
    retries: Retries | None = None  # retries spent by the fire before this attempt
    cancel_requested: CancelRequest | None = None  # asked to stop, not stopped yet
    spec_hash: str | None = None  # a worker process: the spec it runs
    singleton: bool | None = None  # a worker process: it holds its worker's lease
    stop_reason: str | None = None  # a worker process being stopped: why
    approval: Approval | None = None  # a command run that needs a second person's yes

    @classmethod
    def of(cls, detail: Mapping[str, Any]) -> RunPlan:
        if not detail:
            return _NO_PLAN
        retries = detail.get("retries")
        asked = detail.get("cancel_requested")
        argv = detail.get("argv")
        singleton = detail.get("singleton")
        approval = detail.get("approval")
        return cls(
            requested_at=_instant(detail.get("requested_at")),
            not_before=_instant(detail.get("not_before")),
            catchup_of=detail.get("catchup_of"),
            buffered=bool(detail.get("buffered")),
            cancels=tuple(int(victim) for victim in detail.get("cancels", ())),
            exclusive=bool(detail.get("exclusive")),
            argv=None if argv is None else tuple(str(arg) for arg in argv),
            retries=None if retries is None else Retries(**retries),
            cancel_requested=None
            if not asked
            else CancelRequest(asked.get("cancelled_by"), asked.get("cancel_reason")),
            spec_hash=detail.get("spec_hash"),
            singleton=None if singleton is None else bool(singleton),
            stop_reason=detail.get("stop_reason"),
            approval=Approval.of(approval) if isinstance(approval, Mapping) else None,
        )

    def detail(self) -> dict[str, Any]:
        """The detail keys of the fields set, as the run's JSON column holds them."""
        out: dict[str, Any] = {}
        if self.requested_at is not None:
            out["requested_at"] = _iso(self.requested_at)
        if self.not_before is not None:
            out["not_before"] = _iso(self.not_before)
        if self.catchup_of is not None:
            out["catchup_of"] = self.catchup_of
        if self.buffered:
            out["buffered"] = True
        if self.cancels:
            out["cancels"] = list(self.cancels)
        if self.exclusive:
            out["exclusive"] = True
        if self.argv is not None:
            out["argv"] = list(self.argv)
        if self.retries is not None:
            out["retries"] = {"launch": self.retries.launch, "failure": self.retries.failure}
            if self.retries.lost:
                out["retries"]["lost"] = self.retries.lost
        if self.cancel_requested is not None:
            out["cancel_requested"] = self.cancel_requested.detail()
        if self.spec_hash is not None:
            out["spec_hash"] = self.spec_hash
        if self.singleton is not None:
            out["singleton"] = self.singleton
        if self.stop_reason is not None:
            out["stop_reason"] = self.stop_reason
        if self.approval is not None:
            out["approval"] = self.approval.detail()
        return out


_NO_PLAN = RunPlan()


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()


def _instant(text: object) -> datetime | None:
    """An ISO 8601 instant (``Z`` or an offset) in UTC; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Run:
    """One attempt at running a schedule, worker process or command.

    Retries are new runs linked by ``retry_of``; ``attempt`` counts from 1. ``detail``
    holds what varies by kind: lateness, dispatch timings, launch errors, peak memory,
    the run directory, and the run's :class:`RunPlan` (read it as :attr:`plan`).
    """

    id: int
    job: str
    kind: RunKind
    trigger: Trigger
    status: RunStatus
    created_at: datetime
    reason: str | None = None
    attempt: int = 1
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    pool: str | None = None
    revision: int | None = None
    retry_of: int | None = None
    requested_by: str | None = None
    host: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @cached_property
    def plan(self) -> RunPlan:
        """The control data held in ``detail``, typed (read once per record)."""
        return RunPlan.of(self.detail)


@dataclass(frozen=True)
class RunStep:
    """A change of a run and the event that records it: the fields given are set
    (``detail`` merged into the run's, key by key), the others left as they are."""

    event: str
    status: RunStatus | None = None
    reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunEvent:
    """One step in a run's history, like a workflow execution's event."""

    run_id: int
    at: datetime
    type: str
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
