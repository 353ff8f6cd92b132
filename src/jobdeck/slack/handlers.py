"""The bot's listeners: ``/jobdeck help|run``, each command's own slash command, the
params modal, the Run / Cancel buttons of a preview, and the one progress message.

Each listener is split in two, as Bolt's lazy listeners are: ``ack`` answers Slack at
once (for a modal, with the params' errors, which is quick and pure), and the work runs
after the answer. Every request is handled once: its ``trigger_id`` is claimed in the
store first, so a retry from Slack (``X-Slack-Retry-Num``) finds it taken; a preview's
Run and Cancel share one key, so a double click or a race of the two runs nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from jobdeck.catalog.model import Command
from jobdeck.catalog.params import validate
from jobdeck.commands import Caller, InvalidParams, Invoker, Refused, authorize
from jobdeck.slack import approval_blocks, blocks
from jobdeck.slack.requests import BASE_SLASH, read_click, read_slash
from jobdeck.store.records import Run
from jobdeck.workflow.approvals import awaiting

if TYPE_CHECKING:
    from jobdeck.app import Application

log = logging.getLogger("jobdeck.slack")

FOLLOW_SECONDS = 0.25
REQUESTED_AT = "jobdeck_requested_at"
Tell = Callable[[str], Awaitable[None]]


class Handlers:
    def __init__(self, invoker: Invoker, app: Application, *, tail: Callable[[int], str]) -> None:
        self.invoker = invoker
        self.app = app
        self.tail = tail

    def register(self, bolt: AsyncApp) -> None:
        bolt.middleware(self.stamp)
        bolt.command(re.compile(r"^/"))(ack=self.ack, lazy=[self.slash_command])
        bolt.action(blocks.RUN_ACTION)(ack=self.ack, lazy=[self.run_clicked])
        bolt.action(blocks.CANCEL_ACTION)(ack=self.ack, lazy=[self.cancel_clicked])
        bolt.view(blocks.MODAL_CALLBACK)(ack=self.check_modal, lazy=[self.modal_submitted])

    # -- acknowledgements (within Slack's 3 seconds) -----------------------------------

    async def stamp(self, context: AsyncBoltContext, next: Callable[[], Awaitable[None]]) -> None:
        """When the request arrived, for the run's dispatch latency."""
        context.setdefault(REQUESTED_AT, self.app.clock.now().isoformat())
        await next()

    async def ack(self, ack: AsyncAck) -> None:
        await ack()

    async def check_modal(self, ack: AsyncAck, view: dict[str, Any]) -> None:
        """Bad params are shown under their inputs, and the modal stays open."""
        meta = blocks.ModalContext.load(view.get("private_metadata", ""))
        command = self._command(meta.command)
        if command is None:
            await ack()
            return
        try:
            validate(meta.command, command, blocks.submitted_values(view.get("state", {})))
        except InvalidParams as exc:
            errors = blocks.modal_errors(exc.problems, list(command.params))
            await ack(response_action="errors", errors=errors)
            return
        await ack()

    # -- slash commands ---------------------------------------------------------------

    async def slash_command(
        self,
        body: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        if not self._first_delivery("command", body):
            return
        caller = Caller("slack", str(body.get("user_id", "")), body.get("channel_id"))

        async def tell(text: str) -> None:
            await respond(text=text, response_type="ephemeral")

        slash, text = str(body.get("command", "")), str(body.get("text", ""))
        try:
            asked = read_slash(slash, text, self._command_of_slash(slash))
        except InvalidParams as exc:
            refused = Refused("invalid", str(exc), exc.problems)
            audited = slash if slash == BASE_SLASH and exc.command == "jobdeck" else exc.command
            self.invoker.audit_refusal(audited, {"text": text}, caller, refused)
            await tell(blocks.refusal_text(refused.message, refused.problems))
            return
        if asked.kind == "help":
            await tell(await self.help_for(caller))
            return
        if asked.kind == "reply":
            await tell(asked.text)
            return
        name, given = asked.name, asked.given
        await self.request(
            name,
            given,
            caller,
            client=client,
            tell=tell,
            requested_at=_requested_at(context),
            trigger_id=str(body.get("trigger_id", "")),
            response_url=body.get("response_url"),
        )

    async def help_for(self, caller: Caller) -> str:
        catalog = self.invoker.catalog()
        allowed: dict[str, Command] = {}
        for name, command in (catalog.commands if catalog else {}).items():
            member_of = await self.invoker.member_of(name, caller)
            if command.enabled and authorize(command.allow, caller, member_of).allowed:
                allowed[name] = command
        held = {
            s.name: s.reason
            for s in self.app.store.suspensions.suspensions(self.app.clock.now())
            if s.kind == "command"
        }
        return blocks.help_text(allowed, BASE_SLASH, suspended=held)

    async def request(
        self,
        name: str,
        given: Mapping[str, object],
        caller: Caller,
        *,
        client: AsyncWebClient,
        tell: Tell,
        requested_at: datetime | None,
        trigger_id: str | None = None,
        response_url: str | None = None,
    ) -> None:
        """A request to run ``name``: a modal when params are missing, a preview when
        the command asks to confirm, else the run."""
        command = self._command(name)
        missing = command is not None and any(
            p.required and p.default is None for p in command.params.values()
        )
        if command is not None and not given and missing and trigger_id:
            if await self._refuses(name, {}, caller, tell, also_invalid=False):
                return
            meta = blocks.ModalContext(name, caller.channel, response_url)
            await client.views_open(
                trigger_id=trigger_id, view=blocks.params_modal(name, command, meta)
            )
            return
        if command is not None and command.confirm:
            await self.preview(name, command, given, caller, client=client, tell=tell)
            return
        await self.start(name, given, caller, client=client, tell=tell, requested_at=requested_at)

    # -- confirmation -----------------------------------------------------------------

    async def preview(
        self,
        name: str,
        command: Command,
        given: Mapping[str, object],
        caller: Caller,
        *,
        client: AsyncWebClient,
        tell: Tell,
    ) -> None:
        try:
            prepared = await self.invoker.check(name, given, caller)
        except Refused as refused:
            self.invoker.audit_refusal(name, given, caller, refused)
            await tell(blocks.refusal_text(refused.message, refused.problems))
            return
        value = blocks.PreviewValue(
            secrets.token_urlsafe(12), name, {k: str(v) for k, v in given.items()}, caller.actor
        )
        try:
            shown = blocks.preview_blocks(name, command, prepared.argv, caller.actor, value)
        except ValueError as exc:
            await tell(blocks.refusal_text(str(exc)))
            return
        await client.chat_postMessage(
            channel=caller.channel or caller.actor,
            text=blocks.preview_text(name, prepared.argv, caller.actor),
            blocks=shown,
        )

    async def run_clicked(
        self,
        body: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        if not self._first_delivery("action", body):
            return
        value, caller, message_ts = read_click(body)
        tell = _ephemeral(respond)
        try:
            done = await self.invoker.invoke(
                value.command,
                value.params,
                caller,
                requested_at=_requested_at(context),
                key=f"slack:preview:{value.nonce}",
            )
        except Refused as refused:
            await tell(blocks.refusal_text(refused.message, refused.problems))
            return
        if done.duplicate:
            await tell(f"{value.command} was already started or cancelled from this preview.")
            return
        assert done.run is not None
        await self.progress(value.command, done.run, caller, client=client, ts=message_ts)

    async def cancel_clicked(
        self, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        if not self._first_delivery("action", body):
            return
        value, caller, message_ts = read_click(body)
        tell = _ephemeral(respond)
        # The one who asked may always take it back; anyone else must be allowed to run it.
        if caller.actor != value.requested_by:
            member_of = await self.invoker.member_of(value.command, caller)
            command = self._command(value.command)
            if command is None or not authorize(command.allow, caller, member_of).allowed:
                self.invoker.record(
                    caller,
                    value.command,
                    "cancel",
                    "refused",
                    {"channel": caller.channel, "why": "not allowed to run it"},
                )
                await tell(f"Sorry, only people allowed to run {value.command} may cancel it.")
                return
        with self.app.store.transaction() as tx:
            first = tx.keys.claim_key(f"slack:preview:{value.nonce}", at=self.app.clock.now())
        if not first:
            await tell(f"{value.command} was already started or cancelled from this preview.")
            return
        self.invoker.record(
            caller,
            value.command,
            "cancel",
            "ok",
            {"channel": caller.channel, "params": value.params, "asked_by": value.requested_by},
        )
        if caller.channel and message_ts:
            text = blocks.cancelled_text(value.command, caller.actor)
            await client.chat_update(
                channel=caller.channel, ts=message_ts, text=text, blocks=[blocks.section(text)]
            )

    # -- the params modal ---------------------------------------------------------------

    async def modal_submitted(
        self,
        body: dict[str, Any],
        view: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        if not self._first_delivery("view", body):
            return
        meta = blocks.ModalContext.load(view.get("private_metadata", ""))
        command = self._command(meta.command)
        given = blocks.submitted_values(view.get("state", {}))
        user = str((body.get("user") or {}).get("id", ""))
        caller = Caller("slack", user, meta.channel)

        async def tell(text: str) -> None:
            # The slash command's response URL reaches the user even in a channel the
            # bot is not in; without one, an ephemeral message from the bot.
            if meta.response_url:
                reply = AsyncRespond(response_url=meta.response_url, ssl=client.ssl)
                await reply(text=text, response_type="ephemeral", replace_original=False)
            elif meta.channel:
                await client.chat_postEphemeral(channel=meta.channel, user=user, text=text)

        if command is None:
            await tell(f"{meta.command} is no longer in the applied catalog; nothing ran.")
            return
        try:
            validate(meta.command, command, given)
        except InvalidParams:
            return  # shown under the inputs by check_modal; the modal is still open
        if command.confirm:
            await self.preview(meta.command, command, given, caller, client=client, tell=tell)
            return
        await self.start(
            meta.command,
            given,
            caller,
            client=client,
            tell=tell,
            requested_at=_requested_at(context),
        )

    # -- running and progress ---------------------------------------------------------

    async def start(
        self,
        name: str,
        given: Mapping[str, object],
        caller: Caller,
        *,
        client: AsyncWebClient,
        tell: Tell,
        requested_at: datetime | None,
    ) -> None:
        try:
            done = await self.invoker.invoke(name, given, caller, requested_at=requested_at)
        except Refused as refused:
            await tell(blocks.refusal_text(refused.message, refused.problems))
            return
        assert done.run is not None
        await self.progress(name, done.run, caller, client=client, ts=None, tell=tell)

    async def progress(
        self,
        name: str,
        run: Run,
        caller: Caller,
        *,
        client: AsyncWebClient,
        ts: str | None,
        tell: Tell | None = None,
    ) -> None:
        """One message: posted (or the preview, edited) when the run starts, then
        edited with the result."""
        channel = caller.channel or caller.actor
        text = blocks.started_text(name, run, caller.actor)
        first = [blocks.section(text)]
        if awaiting(run):  # four-eyes: the request, with Approve / Reject for the approvers
            text = approval_blocks.asking_text(name, run, caller.actor)
            first = approval_blocks.asking_blocks(name, run, caller.actor, self._command(name))
        try:
            if ts is None:
                posted = await client.chat_postMessage(channel=channel, text=text, blocks=first)
                ts, channel = str(posted["ts"]), str(posted.get("channel") or channel)
            else:
                await client.chat_update(channel=channel, ts=ts, text=text, blocks=first)
        except SlackApiError as exc:
            log.warning("cannot post the progress of run %d in %s: %s", run.id, channel, exc)
            ts = None
        ended = await self.wait_for_end(run)
        result = blocks.result_text(name, ended, caller.actor)
        shown = blocks.result_blocks(name, ended, caller.actor, self.tail(ended.id))
        decided = approval_blocks.decided_result(name, ended, shown)
        if decided is not None:
            result, shown = decided[0] or result, decided[1]
        if ts is not None:
            await client.chat_update(channel=channel, ts=ts, text=result, blocks=shown)
        elif tell is not None:
            await tell(result)

    async def wait_for_end(self, run: Run) -> Run:
        command = self._command(run.job)
        limit = 3600.0
        if command is not None:
            limit = (command.timeout + command.kill_grace).total_seconds() + 300
            if command.approve is not None:
                limit += command.approve.expires.total_seconds()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        current = run
        while current.active and loop.time() < deadline:
            await asyncio.sleep(FOLLOW_SECONDS)
            current = self.app.store.runs.run(run.id) or current
        return current

    # -- helpers ----------------------------------------------------------------------

    def _command(self, name: str) -> Command | None:
        catalog = self.invoker.catalog()
        return catalog.commands.get(name) if catalog else None

    def _command_of_slash(self, slash: str) -> str | None:
        catalog = self.invoker.catalog()
        for name, command in (catalog.commands if catalog else {}).items():
            if command.slash == slash:
                return name
        return None

    async def _refuses(
        self,
        name: str,
        given: Mapping[str, object],
        caller: Caller,
        tell: Tell,
        *,
        also_invalid: bool,
    ) -> bool:
        try:
            await self.invoker.check(name, given, caller)
        except Refused as refused:
            if refused.kind == "invalid" and not also_invalid:
                return False
            self.invoker.audit_refusal(name, given, caller, refused)
            await tell(blocks.refusal_text(refused.message, refused.problems))
            return True
        return False

    def first_delivery(self, kind: str, body: Mapping[str, Any]) -> bool:
        """:meth:`_first_delivery`, for the approval listeners (one store of keys)."""
        return self._first_delivery(kind, body)

    def _first_delivery(self, kind: str, body: Mapping[str, Any]) -> bool:
        """Claims the request in the store; False for a retry of one already handled."""
        trigger = body.get("trigger_id")
        if not trigger:
            trigger = hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()
        with self.app.store.transaction() as tx:
            first = tx.keys.claim_key(f"slack:{kind}:{trigger}", at=self.app.clock.now())
        if not first:
            log.info("Slack %s %s was already handled; ignoring the retry", kind, trigger)
        return first


def _ephemeral(respond: AsyncRespond) -> Tell:
    async def tell(text: str) -> None:
        await respond(text=text, response_type="ephemeral", replace_original=False)

    return tell


def _requested_at(context: Mapping[str, Any]) -> datetime | None:
    stamped = context.get(REQUESTED_AT)
    return datetime.fromisoformat(stamped) if isinstance(stamped, str) else None
