"""Who may approve or reject a command run that waits for a second person (four-eyes).

Deny by default, as for running a command: the decider must be named in the command's
``approve.users`` or belong to one of its ``approve.usergroups`` (Slack user groups,
looked up as for ``allow``), and can never be the one who asked for the run, whichever
way they come (Slack, the terminal, the API: being an operator is not enough here).
Every decision and every refusal is audited with who, when and why; the engine applies
the decision (:mod:`jobdeck.workflow.approvals`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from jobdeck.clock import Clock
from jobdeck.commands.authorize import Caller, Decision
from jobdeck.commands.usergroups import UserGroups
from jobdeck.store import DataStore, Tx
from jobdeck.store.records import Approval, AuditEntry, Outcome, Run
from jobdeck.workflow.approvals import Approvals, awaiting, not_awaiting
from jobdeck.workflow.refusals import ApprovalRefused


class ApprovalDenied(Exception):
    """The caller may not decide on this run: they asked for it, or are no approver."""

    def __init__(self, message: str, *, own: bool) -> None:
        super().__init__(message)
        self.own = own


def may_decide(
    approval: Approval, requested_by: str | None, caller: Caller, member_of: Collection[str] = ()
) -> Decision:
    """Whether ``caller`` may approve or reject a run asked for by ``requested_by``;
    ``member_of``: the approval's user groups the caller belongs to."""
    if requested_by is not None and caller.actor == requested_by:
        return Decision(False, "the requester cannot approve or reject their own request")
    if caller.actor in approval.users:
        return Decision(True, f"user {caller.actor}")
    for group in approval.usergroups:
        if group in member_of:
            return Decision(True, f"usergroup {group}")
    return Decision(False, "not an approver (approve: users, usergroups)")


@dataclass
class Approver:
    """Checks who decides, then has the engine apply the decision, audited."""

    store: DataStore
    clock: Clock
    approvals: Approvals
    usergroups: UserGroups | None = None

    async def decide(
        self, run_id: int, caller: Caller, *, approve: bool, why: str | None = None
    ) -> Run:
        """Approve (or reject) run ``run_id`` for ``caller``. Raises
        :class:`ApprovalRefused` when the run does not wait for approval and
        :class:`ApprovalDenied` when the caller may not decide; both audited."""
        action = "approve" if approve else "reject"
        run = self.store.runs.run(run_id)
        if run is None:
            raise ApprovalRefused("unknown", f"no run with id {run_id}")
        decision = await self.check(run, caller, approve=approve, why=why)
        at = self.clock.now()
        shown = {"rule": decision.rule, "reason": why, "requested_by": run.requested_by}

        def audited(tx: Tx, done: Run) -> None:
            tx.audit.record_audit(_entry(at, caller, done, action, "ok", shown))

        try:
            return self.approvals.decide(
                run_id, approve=approve, by=caller.actor, why=why, audit=audited
            )
        except ApprovalRefused as refused:
            self._audit(caller, run, action, "refused", {"why": str(refused), "reason": why})
            raise

    async def check(
        self, run: Run, caller: Caller, *, approve: bool, why: str | None = None
    ) -> Decision:
        """Whether ``caller`` may decide on ``run`` now; raises (audited)
        :class:`ApprovalRefused` or :class:`ApprovalDenied` when not."""
        action = "approve" if approve else "reject"
        approval = run.plan.approval
        if approval is None or not awaiting(run):
            message = not_awaiting(run)
            self._audit(caller, run, action, "refused", {"why": message, "reason": why})
            raise ApprovalRefused("not_awaiting", message)
        member_of: set[str] = set()
        if (
            self.usergroups is not None
            and approval.usergroups
            and caller.via == "slack"
            and caller.actor not in approval.users
            and caller.actor != run.requested_by
        ):
            member_of = await self.usergroups.groups_of(caller.actor, approval.usergroups)
        decision = may_decide(approval, run.requested_by, caller, member_of)
        if not decision.allowed:
            self._audit(caller, run, action, "refused", {"why": decision.rule, "reason": why})
            raise ApprovalDenied(
                f"{caller.actor} may not {action} run {run.id} of {run.job}: {decision.rule}",
                own=caller.actor == run.requested_by,
            )
        return decision

    async def refusal(self, run: Run, caller: Caller, *, approve: bool) -> str | None:
        """:meth:`check` as a message (None when the caller may decide)."""
        try:
            await self.check(run, caller, approve=approve)
        except (ApprovalRefused, ApprovalDenied) as exc:
            return str(exc)
        return None

    def _audit(
        self, caller: Caller, run: Run, action: str, outcome: Outcome, detail: dict[str, Any]
    ) -> None:
        entry = _entry(self.clock.now(), caller, run, action, outcome, detail)
        with self.store.transaction() as tx:
            tx.audit.record_audit(entry)


def _entry(
    at: Any, caller: Caller, run: Run, action: str, outcome: Outcome, detail: dict[str, Any]
) -> AuditEntry:
    shown = {"run_id": run.id, "channel": caller.channel, **detail}
    return AuditEntry(
        at=at,
        actor=caller.actor,
        via=caller.via,
        action=action,
        target=f"command {run.job}",
        outcome=outcome,
        detail={k: v for k, v in shown.items() if v is not None},
    )
