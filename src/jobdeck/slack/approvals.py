"""The bot's listeners for four-eyes approval: the Approve and Reject buttons of a
request, and the modal that asks a rejection's reason.

Whoever clicks is checked as for running a command, deny by default: one of the
command's ``approve.users``, or a member of one of its ``approve.usergroups``, and never
the requester (:class:`~jobdeck.commands.approvals.Approver`, which also audits). A
click that may not decide gets an ephemeral answer and changes nothing; a decision edits
the request's message (the run's progress then edits it again with the result).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from jobdeck.commands import Caller
from jobdeck.commands.approvals import ApprovalDenied, Approver
from jobdeck.slack import approval_blocks as shown
from jobdeck.slack.blocks import section
from jobdeck.store.records import Run
from jobdeck.workflow.refusals import ApprovalRefused

log = logging.getLogger("jobdeck.slack")

FirstDelivery = Callable[[str, Mapping[str, Any]], bool]


class ApprovalHandlers:
    def __init__(self, approver: Approver, first_delivery: FirstDelivery) -> None:
        self.approver = approver
        self.first_delivery = first_delivery

    def register(self, bolt: AsyncApp) -> None:
        bolt.action(shown.APPROVE_ACTION)(ack=self.ack, lazy=[self.approve_clicked])
        bolt.action(shown.REJECT_ACTION)(ack=self.ack, lazy=[self.reject_clicked])
        bolt.view(shown.REJECT_CALLBACK)(ack=self.check_reason, lazy=[self.reject_submitted])

    async def ack(self, ack: AsyncAck) -> None:
        await ack()

    async def check_reason(self, ack: AsyncAck, view: dict[str, Any]) -> None:
        """A rejection needs a reason: an empty one is shown under the input."""
        if not shown.submitted_reason(view.get("state", {})):
            errors = {shown.REASON_BLOCK: "Say why; it is recorded with the run."}
            await ack(response_action="errors", errors=errors)
            return
        await ack()

    async def approve_clicked(
        self, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        if not self.first_delivery("action", body):
            return
        run_id, caller, ts = _click(body)
        if run_id is None:
            return
        done = await self._decide(run_id, caller, approve=True, why=None, respond=respond)
        if done is not None:
            await self._edit(
                client, caller.channel, ts, shown.approved_text(done.job, done, caller.actor)
            )

    async def reject_clicked(
        self, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """Opens the reason modal; only an approver gets it (the others are told why)."""
        if not self.first_delivery("action", body):
            return
        run_id, caller, ts = _click(body)
        if run_id is None:
            return
        run = self.approver.store.runs.run(run_id)
        trigger = body.get("trigger_id")
        if run is None or not trigger:
            return
        denied = await self.approver.refusal(run, caller, approve=False)
        if denied is not None:
            await _ephemeral(respond, f"Sorry: {denied}")
            return
        meta = shown.RejectContext(run_id, caller.channel, ts)
        await client.views_open(trigger_id=str(trigger), view=shown.reject_modal(run.job, meta))

    async def reject_submitted(
        self, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if not self.first_delivery("view", body):
            return
        meta = shown.RejectContext.load(str(view.get("private_metadata", "")))
        reason = shown.submitted_reason(view.get("state", {}))
        if meta is None or not reason:
            return
        user = str((body.get("user") or {}).get("id", ""))
        caller = Caller("slack", user, meta.channel)

        async def tell(text: str) -> None:
            if meta.channel:
                await client.chat_postEphemeral(channel=meta.channel, user=user, text=text)

        done = await self._decide(meta.run_id, caller, approve=False, why=reason, tell=tell)
        if done is not None:
            text = shown.rejected_text(done.job, done, caller.actor, reason)
            await self._edit(client, meta.channel, meta.ts, text)

    async def _decide(
        self,
        run_id: int,
        caller: Caller,
        *,
        approve: bool,
        why: str | None,
        respond: AsyncRespond | None = None,
        tell: Callable[[str], Any] | None = None,
    ) -> Run | None:
        try:
            return await self.approver.decide(run_id, caller, approve=approve, why=why)
        except (ApprovalDenied, ApprovalRefused) as exc:
            text = f"Sorry: {exc}"
            if respond is not None:
                await _ephemeral(respond, text)
            elif tell is not None:
                await tell(text)
            return None

    async def _edit(
        self, client: AsyncWebClient, channel: str | None, ts: str | None, text: str
    ) -> None:
        if not channel or not ts:
            return
        try:
            await client.chat_update(channel=channel, ts=ts, text=text, blocks=[section(text)])
        except SlackApiError as exc:
            log.warning("cannot edit the approval message in %s: %s", channel, exc)


def _click(body: Mapping[str, Any]) -> tuple[int | None, Caller, str | None]:
    action = (body.get("actions") or [{}])[0]
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    user = str((body.get("user") or {}).get("id", ""))
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    return shown.run_of(str(action.get("value", ""))), Caller("slack", user, channel), ts


async def _ephemeral(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)
