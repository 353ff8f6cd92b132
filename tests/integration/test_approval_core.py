"""The engine's side of four-eyes approval (workflow/approvals.py) and who may decide
(commands/approvals.py), against the fake clock, on the in-memory store, SQLite and
PostgreSQL: decisions, refusals, expiry, and that each is recorded once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.clock import FakeClock
from jobdeck.commands import Caller
from jobdeck.commands.approvals import ApprovalDenied, Approver, may_decide
from jobdeck.store import DataStore
from jobdeck.store.records import Approval, Run, RunPlan
from jobdeck.workflow.approvals import Approvals, awaiting, due
from jobdeck.workflow.refusals import ApprovalRefused

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOST = "engine-a"


def request(
    store: DataStore, *, by: str = "alice", expires: timedelta = timedelta(minutes=15)
) -> Run:
    asked = Approval(("bob", "U_CHIEF"), ("S_DESK",), T0 + expires)
    with store.transaction() as tx:
        return tx.runs.create_run(
            job="push",
            kind="command",
            trigger="api",
            status="pending",
            created_at=T0,
            reason="approval",
            requested_by=by,
            host=HOST,
            detail={**RunPlan(argv=("true",), approval=asked).detail()},
        )


class Engine:
    def __init__(self, store: DataStore) -> None:
        self.clock = FakeClock(T0)
        self.handed: list[int] = []
        self.approvals = Approvals(store, self.clock, HOST, lambda run: self.handed.append(run.id))
        self.approver = Approver(store, self.clock, self.approvals)


def test_may_decide_is_deny_by_default_and_never_the_requester() -> None:
    approval = Approval(("bob", "alice"), ("S_DESK",), T0)
    cli = Caller("cli", "bob")
    assert may_decide(approval, "alice", cli).allowed
    assert may_decide(approval, "alice", cli).rule == "user bob"
    own = may_decide(approval, "alice", Caller("cli", "alice"))  # listed, but asked for it
    assert not own.allowed
    assert "own request" in own.rule
    assert not may_decide(approval, "alice", Caller("api", "mallory")).allowed
    member = may_decide(approval, "alice", Caller("slack", "U_X", "C1"), {"S_DESK"})
    assert member.allowed
    assert member.rule == "usergroup S_DESK"
    assert not may_decide(approval, "alice", Caller("slack", "U_X", "C1"), set()).allowed


async def test_approve_hands_the_run_over_once_and_audits_who_and_when(
    any_store: DataStore,
) -> None:
    engine = Engine(any_store)
    run = request(any_store)
    assert awaiting(run)
    assert not due(run, T0)
    engine.clock.advance(timedelta(minutes=3))
    done = await engine.approver.decide(run.id, Caller("cli", "bob"), approve=True, why="checked")
    assert (done.status, done.reason) == ("pending", "approved")
    assert done.plan.approval is not None
    assert done.plan.approval.decision == "approved"
    assert done.plan.approval.decided_by == "bob"
    assert done.plan.approval.decided_at == T0 + timedelta(minutes=3)
    assert engine.handed == [run.id]
    with pytest.raises(ApprovalRefused) as twice:
        await engine.approver.decide(run.id, Caller("cli", "U_CHIEF"), approve=True)
    assert twice.value.why == "not_awaiting"
    assert "already approved by bob" in str(twice.value)
    assert engine.handed == [run.id]
    entries = [(e.actor, e.action, e.outcome, e.at) for e in any_store.audit.audit(10)]
    assert entries[-1] == ("bob", "approve", "ok", T0 + timedelta(minutes=3))
    assert entries[0][:3] == ("U_CHIEF", "approve", "refused")
    assert [e.type for e in any_store.runs.events(run.id)] == ["created", "approved"]


async def test_the_requester_and_strangers_are_refused_and_nothing_changes(
    any_store: DataStore,
) -> None:
    engine = Engine(any_store)
    run = request(any_store, by="bob")  # bob is an approver, but asked for it himself
    with pytest.raises(ApprovalDenied) as own:
        await engine.approver.decide(run.id, Caller("cli", "bob"), approve=True)
    assert own.value.own
    with pytest.raises(ApprovalDenied) as stranger:
        await engine.approver.decide(run.id, Caller("api", "mallory"), approve=False, why="x")
    assert not stranger.value.own
    current = any_store.runs.run(run.id)
    assert current is not None
    assert awaiting(current)
    assert engine.handed == []
    assert [(e.actor, e.outcome) for e in any_store.audit.audit(10)] == [
        ("mallory", "refused"),
        ("bob", "refused"),
    ]


async def test_reject_cancels_with_who_and_why(any_store: DataStore) -> None:
    engine = Engine(any_store)
    run = request(any_store)
    done = await engine.approver.decide(
        run.id, Caller("slack", "U_CHIEF", "C1"), approve=False, why="wrong audience"
    )
    assert (done.status, done.reason, done.ended_at) == ("cancelled", "rejected", T0)
    assert done.detail["cancelled_by"] == "U_CHIEF"
    assert done.detail["cancel_reason"] == "wrong audience"
    assert engine.handed == []


async def test_expiry_by_the_injected_clock_once(any_store: DataStore) -> None:
    engine = Engine(any_store)
    run = request(any_store, expires=timedelta(minutes=15))
    other = request(any_store, expires=timedelta(hours=1))
    engine.clock.advance(timedelta(minutes=15) - timedelta(microseconds=1))
    assert engine.approvals.expire_due() == []
    engine.clock.advance(timedelta(microseconds=1))
    assert engine.approvals.expire_due() == [run.id]
    assert engine.approvals.expire_due() == []  # once
    ended = any_store.runs.run(run.id)
    assert ended is not None
    assert (ended.status, ended.reason) == ("cancelled", "approval_expired")
    assert ended.plan.approval is not None
    assert ended.plan.approval.decision == "expired"
    still = any_store.runs.run(other.id)
    assert still is not None
    assert awaiting(still)
    (entry,) = [e for e in any_store.audit.audit(10) if e.action == "approval_expired"]
    assert (entry.actor, entry.via, entry.detail["run_id"]) == ("jobdeck", "engine", run.id)


async def test_a_decision_after_the_expiry_is_refused_and_expires_it(any_store: DataStore) -> None:
    engine = Engine(any_store)
    run = request(any_store, expires=timedelta(minutes=1))
    engine.clock.advance(timedelta(minutes=2))  # the engine's check has not run yet
    with pytest.raises(ApprovalRefused) as late:
        await engine.approver.decide(run.id, Caller("cli", "bob"), approve=True)
    assert late.value.why == "expired"
    ended = any_store.runs.run(run.id)
    assert ended is not None
    assert ended.reason == "approval_expired"
    assert engine.handed == []


async def test_an_unknown_run_and_a_run_without_approval(any_store: DataStore) -> None:
    engine = Engine(any_store)
    with pytest.raises(ApprovalRefused) as unknown:
        await engine.approver.decide(999, Caller("cli", "bob"), approve=True)
    assert unknown.value.why == "unknown"
    with any_store.transaction() as tx:
        plain = tx.runs.create_run(
            job="push", kind="command", trigger="api", status="pending", created_at=T0, host=HOST
        )
    with pytest.raises(ApprovalRefused) as plain_refused:
        await engine.approver.decide(plain.id, Caller("cli", "bob"), approve=True)
    assert plain_refused.value.why == "not_awaiting"
    assert "does not need approval" in str(plain_refused.value)


async def test_approving_a_suspended_command_is_refused_and_it_keeps_waiting(
    any_store: DataStore,
) -> None:
    engine = Engine(any_store)
    run = request(any_store)
    with any_store.transaction() as tx:
        tx.suspensions.add_suspension(
            kind="command",
            name="push",
            reason="incident",
            created_by="ops",
            created_at=T0,
            until=None,
        )
    with pytest.raises(ApprovalRefused) as held:
        await engine.approver.decide(run.id, Caller("cli", "bob"), approve=True)
    assert held.value.why == "suspended"
    current = any_store.runs.run(run.id)
    assert current is not None
    assert awaiting(current)
    assert engine.handed == []
    # Rejecting it is still possible: nothing would run.
    done = await engine.approver.decide(run.id, Caller("cli", "bob"), approve=False, why="x")
    assert done.status == "cancelled"


def test_the_approval_reads_back_from_the_runs_detail() -> None:
    asked = Approval(("bob",), ("S_DESK",), T0, "rejected", "bob", T0, "no")
    plan = RunPlan(argv=("true",), approval=asked)
    assert RunPlan.of(plan.detail()) == plan
    assert RunPlan.of({"approval": {"users": ["x"]}}).approval is None  # no expiry: none


async def test_an_approval_through_another_engine_moves_the_run_there_once(
    any_store: DataStore,
) -> None:
    """Several engines on one store: the request was recorded by engine-a; bob approves
    through engine-b, which takes the run and starts it; carol, a moment later through
    engine-a, is refused and nothing is started twice."""
    run = request(any_store)
    here = Engine(any_store)  # engine-a, which recorded it
    other = Engine(any_store)
    other.approvals = Approvals(
        any_store, other.clock, "engine-b", lambda run: other.handed.append(run.id)
    )
    other.approver = Approver(any_store, other.clock, other.approvals)

    done = await other.approver.decide(run.id, Caller("api", "bob"), approve=True)

    assert (done.status, done.reason, done.host) == ("pending", "approved", "engine-b")
    assert other.handed == [run.id]
    stored = any_store.runs.run(run.id)
    assert stored is not None
    assert stored.host == "engine-b"
    events = any_store.runs.events(run.id)
    assert [e.type for e in events] == ["created", "taken", "approved"]
    assert events[1].detail == {"from": HOST, "to": "engine-b"}
    with pytest.raises(ApprovalRefused) as late:
        await here.approver.decide(run.id, Caller("cli", "U_CHIEF"), approve=True)
    assert late.value.why == "not_awaiting"
    assert here.handed == []
    # engine-a no longer expires it: it is engine-b's now.
    here.clock.advance(timedelta(hours=1))
    assert here.approvals.expire_due() == []
