"""Four-eyes approval of command runs, on the engine's side.

A run of a command with ``approve`` is recorded ``pending`` with reason ``approval`` and
its :class:`~jobdeck.store.records.Approval` (who may approve, until when); it is not
handed to the dispatcher. Approved, it becomes ``pending`` with reason ``approved`` and
goes the way of every run (pool room, launch, outcome); rejected, it ends ``cancelled``
(reason ``rejected``) with who and why; unapproved at its ``expires_at``, it ends
``cancelled`` with reason ``approval_expired``. The waiting approval lives in the store,
so an engine that restarts finds it, expires it on time or lets it be approved.

Who may decide (an approver, never the requester) is the invocation path's business
(:mod:`jobdeck.commands.approvals`); this module applies a decision, in one
transaction with its audit entry, and checks the expiries against the injected clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from jobdeck.clock import Clock
from jobdeck.store import DataStore, Tx
from jobdeck.store.records import Approval, AuditEntry, Run, RunPlan
from jobdeck.workflow.refusals import ApprovalRefused

log = logging.getLogger(__name__)

AWAITING = "approval"  # the reason of a pending run that waits for approval
APPROVED = "approved"  # the reason of a pending run once approved
REJECTED = "rejected"
EXPIRED = "approval_expired"

Audit = Callable[[Tx, Run], None]


def awaiting(run: Run) -> bool:
    """Whether ``run`` waits for a second person's decision."""
    return run.status == "pending" and run.reason == AWAITING and run.plan.approval is not None


def due(run: Run, now: datetime) -> bool:
    """Whether the approval ``run`` waits for has expired at ``now``."""
    approval = run.plan.approval
    return awaiting(run) and approval is not None and now >= approval.expires_at


class Approvals:
    """Applies decisions and expiries to runs that wait for approval; an approved run
    is handed to the dispatcher by ``hand_over`` (the driver's, through its gate)."""

    def __init__(
        self, store: DataStore, clock: Clock, host: str, hand_over: Callable[[Run], None]
    ) -> None:
        self.store = store
        self.clock = clock
        self.host = host
        self.hand_over = hand_over
        # Where an approved run executes: this node, or the leader (in a cluster).
        self.placement: Callable[[], str] = lambda: host

    def decide(
        self,
        run_id: int,
        *,
        approve: bool,
        by: str,
        why: str | None = None,
        audit: Audit | None = None,
    ) -> Run:
        """Approve or reject run ``run_id`` for ``by``; ``audit`` records the decision in
        the same transaction. Raises :class:`ApprovalRefused` when the run does not wait
        for approval (an expiry that was due is recorded first)."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            run = tx.runs.run(run_id)
            if run is None:
                raise ApprovalRefused("unknown", f"no run with id {run_id}")
            if not awaiting(run):
                raise ApprovalRefused("not_awaiting", not_awaiting(run))
        if due(run, now):
            self.expire(run, now)
            raise ApprovalRefused(
                "expired", f"run {run_id} waited for approval too long; it was cancelled"
            )
        approval = run.plan.approval
        assert approval is not None
        decided = replace(
            approval,
            decision="approved" if approve else "rejected",
            decided_by=by,
            decided_at=now,
            reason=why,
        )
        detail = RunPlan(approval=decided).detail()
        with self.store.transaction() as tx:
            current = tx.runs.run(run_id)
            if current is None or not awaiting(current):  # decided meanwhile (a race)
                raise ApprovalRefused(
                    "not_awaiting", not_awaiting(current) if current else f"no run {run_id}"
                )
            held = tx.suspensions.active_suspension("command", run.job, now) if approve else None
            if held is not None:
                raise ApprovalRefused(
                    "suspended",
                    f"command {run.job} is suspended ({held.reason}); resume it, then approve",
                )
            if approve:
                # Approved through another engine than the one that recorded the request
                # (several engines on one store): the run moves to where runs execute
                # (this engine, or the leader, which then takes it) and starts there.
                target = self.placement()
                if current.host != target and tx.runs.take_run(run_id, target, at=now) is None:
                    raise ApprovalRefused("not_awaiting", f"run {run_id} was decided meanwhile")
                run = tx.runs.update_run(
                    run_id, at=now, event="approved", reason=APPROVED, detail=detail
                )
            else:
                run = tx.runs.update_run(
                    run_id,
                    at=now,
                    event="rejected",
                    status="cancelled",
                    reason=REJECTED,
                    ended_at=now,
                    detail={**detail, "cancelled_by": by, "cancel_reason": why},
                )
            if audit is not None:
                audit(tx, run)
        if approve:
            self.hand_over(run)
        return run

    def expire_due(self) -> list[int]:
        """Cancels every run of this host whose approval has expired by now (reason
        ``approval_expired``), each audited; the ids of those cancelled."""
        now = self.clock.now()
        expired = []
        for run in self.store.runs.active_runs(kind="command", host=self.host):
            if due(run, now) and self.expire(run, now):
                expired.append(run.id)
        return expired

    def expire(self, run: Run, now: datetime) -> bool:
        """Cancels ``run`` for its expired approval; False when it was decided meanwhile."""
        approval = run.plan.approval
        assert approval is not None
        ended = replace(approval, decision="expired", decided_at=now)
        with self.store.transaction() as tx:
            current = tx.runs.run(run.id)
            if current is None or not awaiting(current):
                return False
            tx.runs.update_run(
                run.id,
                at=now,
                event="approval_expired",
                status="cancelled",
                reason=EXPIRED,
                ended_at=now,
                detail=RunPlan(approval=ended).detail(),
            )
            tx.audit.record_audit(
                AuditEntry(
                    at=now,
                    actor="jobdeck",
                    via="engine",
                    action="approval_expired",
                    target=f"command {run.job}",
                    detail={
                        "run_id": run.id,
                        "requested_by": run.requested_by,
                        "expires_at": approval.expires_at.isoformat(),
                    },
                )
            )
        log.info("run %d of %s: nobody approved it in time; cancelled", run.id, run.job)
        return True


def approval_for(users: list[str], usergroups: list[str], expires_at: datetime) -> Approval:
    return Approval(tuple(users), tuple(usergroups), expires_at)


def not_awaiting(run: Run) -> str:
    """Why ``run`` cannot be approved or rejected (it does not wait for that)."""
    approval = run.plan.approval
    if approval is not None and approval.decision is not None:
        who = f" by {approval.decided_by}" if approval.decided_by else ""
        return f"run {run.id} was already {approval.decision}{who}"
    if approval is None:
        return f"run {run.id} does not need approval"
    return f"run {run.id} is {run.status}; it does not wait for approval"
