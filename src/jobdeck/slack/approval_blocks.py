"""What the bot shows for four-eyes approval, as pure functions: the request with its
Approve / Reject buttons, the reason modal of a rejection, and the decided message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobdeck.catalog.params import shell_quote
from jobdeck.slack.blocks import Block, context, mrkdwn_escape, section

if TYPE_CHECKING:
    from jobdeck.commands.spec import CommandSpec
    from jobdeck.store.records import Approval, Run

APPROVE_ACTION = "jobdeck_approve"
REJECT_ACTION = "jobdeck_reject"
REJECT_CALLBACK = "jobdeck_reject_reason"
REASON_BLOCK = "reason"
REASON_ACTION = "value"
REASON_MAX = 500


def approvers(approval: Approval) -> str:
    """``<@U1>, <!subteam^S1>``: who may approve, as Slack mentions them."""
    shown = [f"<@{user}>" for user in approval.users]
    shown += [f"<!subteam^{group}>" for group in approval.usergroups]
    return ", ".join(shown)


def _when(approval: Approval) -> str:
    """The expiry in each reader's own time zone (with the UTC text as fallback)."""
    at = approval.expires_at
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at.isoformat()}>"


def asking_text(name: str, run: Run, requested_by: str) -> str:
    approval = run.plan.approval
    assert approval is not None
    return (
        f":raised_hand: *{name}* (run {run.id}) asked by <@{requested_by}> needs approval by "
        f"{approvers(approval)} before {_when(approval)}"
    )


def asking_blocks(
    name: str, run: Run, requested_by: str, command: CommandSpec | None
) -> list[Block]:
    """The request for approval with its two buttons (each carries only the run id)."""
    value = json.dumps({"r": run.id})
    shown = [section(asking_text(name, run, requested_by))]
    if command is not None and command.description:
        shown.append(context(mrkdwn_escape(command.description)))
    if run.plan.argv:
        shown.append(
            section(
                "It will run exactly:\n```"
                + mrkdwn_escape(shell_quote(list(run.plan.argv)))
                + "```"
            )
        )
    shown.append(
        {
            "type": "actions",
            "block_id": "jobdeck_approval",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION,
                    "text": {"type": "plain_text", "text": "Approve"},
                    "style": "primary",
                    "value": value,
                    "confirm": {
                        "title": {"type": "plain_text", "text": f"Approve {name}?"[:100]},
                        "text": {"type": "plain_text", "text": "It starts at once."},
                        "confirm": {"type": "plain_text", "text": "Approve"},
                        "deny": {"type": "plain_text", "text": "Back"},
                    },
                },
                {
                    "type": "button",
                    "action_id": REJECT_ACTION,
                    "text": {"type": "plain_text", "text": "Reject"},
                    "style": "danger",
                    "value": value,
                },
            ],
        }
    )
    return shown


def run_of(value: str) -> int | None:
    """The run id a button carries; None for anything else."""
    try:
        found = json.loads(value).get("r")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, int) else None


@dataclass(frozen=True)
class RejectContext:
    """What the reason modal carries: the run and the message to edit."""

    run_id: int
    channel: str | None
    ts: str | None

    def dump(self) -> str:
        return json.dumps({"r": self.run_id, "c": self.channel, "t": self.ts})

    @classmethod
    def load(cls, text: str) -> RejectContext | None:
        try:
            data = json.loads(text)
            return cls(int(data["r"]), data.get("c"), data.get("t"))
        except (ValueError, KeyError, TypeError):
            return None


def reject_modal(name: str, meta: RejectContext) -> dict[str, object]:
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": meta.dump(),
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Back"},
        "blocks": [
            section(f"Reject run {meta.run_id} of *{name}*? It will never start."),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why (recorded with the run)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_ACTION,
                    "multiline": True,
                    "max_length": REASON_MAX,
                },
            },
        ],
    }


def submitted_reason(state: dict[str, object]) -> str:
    values = state.get("values") if isinstance(state, dict) else None
    block = (values or {}).get(REASON_BLOCK) if isinstance(values, dict) else None
    field = (block or {}).get(REASON_ACTION) if isinstance(block, dict) else None
    text = (field or {}).get("value") if isinstance(field, dict) else None
    return text.strip() if isinstance(text, str) else ""


def approved_text(name: str, run: Run, by: str) -> str:
    return f":white_check_mark: *{name}* (run {run.id}) approved by <@{by}>; it starts now"


def rejected_text(name: str, run: Run, by: str, reason: str) -> str:
    return (
        f":no_entry_sign: *{name}* (run {run.id}) rejected by <@{by}>: "
        f"{mrkdwn_escape(reason)}; nothing ran"
    )


def decided_result(name: str, run: Run, result: list[Block]) -> tuple[str, list[Block]] | None:
    """The last edit of a request's message, when its approval decided how it ended: a
    rejection or an expiry (nothing ran) replaces the result; an approval is added to it."""
    approval = run.plan.approval
    if approval is None or approval.decision is None:
        return None
    if approval.decision == "rejected":
        text = rejected_text(name, run, approval.decided_by or "?", approval.reason or "")
        return text, [section(text)]
    if approval.decision == "expired":
        text = (
            f":hourglass: *{name}* (run {run.id}) was not approved before "
            f"{_when(approval)}; nothing ran"
        )
        return text, [section(text)]
    if approval.decided_by:
        return "", [*result, context(f"approved by <@{approval.decided_by}>")]
    return None
