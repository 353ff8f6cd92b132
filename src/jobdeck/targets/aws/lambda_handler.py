"""The Slack bot on AWS Lambda: Bolt's Lambda adapter, lazy listeners, SSM SendCommand.

Deployed by the stack with ``commands.json`` beside this file (what the catalog's
commands allow and take) and only slack_bolt / slack_sdk besides the Lambda runtime's
boto3, so that a cold start stays short. Slack must be answered within 3 s: every
listener acks at once and does its work in a lazy listener, which Bolt runs in a second
invocation of this function.

What a request means, whether it may run and what Slack is shown are the same pure
functions as for the bot of ``jobdeck serve``: :mod:`jobdeck.slack.requests` reads the
text, :mod:`jobdeck.commands.decide` finds the command, authorizes the caller (user
groups looked up with ``usergroups.users.list``), checks the params and renders the
argv, and :mod:`jobdeck.slack.blocks` builds the help, refusals, the Run / Cancel preview
and the progress message. Only the transport differs: SSM SendCommand on the tools
host instead of the local run driver. SSM re-checks every value against the document's
allowed patterns before anything runs.

Every request is handled at most once, as by ``jobdeck serve``: its ``trigger_id`` is
claimed in the project's DynamoDB table with a conditional write before anything runs,
so a request that Slack re-sends (``X-Slack-Retry-Num``) or a second delivery finds it
taken; a preview's Run and Cancel share one key (the preview's nonce), so a double click
or a race of the two sends one SendCommand at most. Every attempt is written to the
table's audit log (who, channel, command, params, decision, outcome), and a command
suspended with ``jobdeck suspend NAME --target aws`` is refused as locally.

The same function relays failure notices (:mod:`.notices`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from slack_bolt import Ack, App, BoltRequest, BoltResponse, Respond
from slack_bolt.adapter.aws_lambda import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from jobdeck.catalog.params import InvalidParams
from jobdeck.commands.authorize import Caller, authorize, needs_usergroups
from jobdeck.commands.decide import Prepared, Refused, decide
from jobdeck.commands.spec import CommandSpec, LightCommand
from jobdeck.slack import blocks
from jobdeck.slack.requests import BASE_SLASH, read_click, read_slash
from jobdeck.targets.aws.alert_events import missed_notice, notice_of
from jobdeck.targets.aws.cloud_state import CloudState
from jobdeck.targets.aws.notices import deliver, relay_notices

LOG = logging.getLogger(__name__)
CONFIG_FILE = Path(__file__).with_name("commands.json")
TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut", "Cancelling"}
# SSM's statuses of an invocation, as the run statuses the local bot shows.
STATUSES = {
    "Pending": "pending",
    "InProgress": "running",
    "Delayed": "pending",
    "Success": "succeeded",
    "Failed": "failed",
    "TimedOut": "timed_out",
    "Cancelled": "cancelled",
    "Cancelling": "cancelled",
}
OUTPUT_TAIL = 2500


def handler(event: dict[str, Any], context: Any) -> Any:
    records = event.get("Records") or []
    if records and records[0].get("EventSource") == "aws:sns":
        return relay_notices(records, _slack_client(), _secrets().get("JOBDECK_WEBHOOK_SECRET"))
    if records and records[0].get("eventSource") == "aws:sqs":
        return relay_missed(records, load_config(), _slack_client(), _secrets())
    if event.get("source") in ("aws.states", "aws.ecs", "aws.ssm"):
        return relay_event(event, load_config(), _slack_client(), _secrets())
    return _slack_handler().handle(event, context)  # type: ignore[no-untyped-call]


def relay_event(
    event: dict[str, Any], config: dict[str, Any], client: WebClient, found: dict[str, str]
) -> dict[str, int]:
    """An EventBridge event of the stack's alert rules, to the job's notify targets."""
    region = os.environ.get("AWS_REGION", "us-east-1")
    notice = notice_of(event, config, region)
    if notice is None:
        return {"sent": 0, "failed": 0}
    sent, failed = deliver(
        notice,
        client,
        found.get("JOBDECK_WEBHOOK_SECRET"),
        str(event.get("id", "")),
        event.get("time"),
    )
    return {"sent": sent, "failed": failed}


def relay_missed(
    records: list[dict[str, Any]], config: dict[str, Any], client: WebClient, found: dict[str, str]
) -> dict[str, int]:
    """Slots from the missed-slots queue (Scheduler's dead letters)."""
    sent = failed = 0
    for record in records:
        attributes = record.get("messageAttributes") or {}
        code = (attributes.get("ERROR_CODE") or {}).get("stringValue")
        notice = missed_notice(record["body"], code, config)
        done = deliver(
            notice, client, found.get("JOBDECK_WEBHOOK_SECRET"), record.get("messageId", ""), None
        )
        sent, failed = sent + done[0], failed + done[1]
    return {"sent": sent, "failed": failed}


def load_config(path: Path = CONFIG_FILE) -> dict[str, Any]:
    """The bundled commands, plus the stack's IDs from the function's environment."""
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    loaded["instance_id"] = os.environ.get("JOBDECK_TOOLS_INSTANCE_ID", "")
    loaded["log_group"] = os.environ.get("JOBDECK_COMMAND_LOG_GROUP", "")
    return loaded


def commands_of(config: dict[str, Any]) -> dict[str, LightCommand]:
    return {name: LightCommand.load(c) for name, c in config["commands"].items()}


def member_of(command: CommandSpec, caller: Caller, client: WebClient) -> set[str]:
    """The user groups of ``command``'s allow list that the caller belongs to; a group
    whose lookup fails counts as not containing them (deny by default)."""
    if not needs_usergroups(command.allow, caller):
        return set()
    found: set[str] = set()
    for group in command.allow.usergroups:
        try:
            members = client.usergroups_users_list(usergroup=group).get("users") or []
        except SlackApiError as exc:
            LOG.warning("cannot list the members of user group %s: %s", group, exc)
            continue
        if caller.actor in members:
            found.add(group)
    return found


def help_for(commands: dict[str, LightCommand], caller: Caller, client: WebClient) -> str:
    """The local bot's help: the enabled commands this caller may run here."""
    allowed = {
        name: command
        for name, command in commands.items()
        if command.enabled
        and authorize(command.allow, caller, member_of(command, caller, client)).allowed
    }
    return blocks.help_text(allowed, BASE_SLASH)


def check(
    commands: dict[str, LightCommand],
    name: str,
    given: dict[str, str],
    caller: Caller,
    client: WebClient,
    state: CloudState,
) -> Prepared:
    """:func:`decide` as locally, with the suspensions of the table; a refusal is
    written to the audit log."""
    command = commands.get(name)
    groups = member_of(command, caller, client) if command is not None else set()
    now = datetime.now(UTC)
    try:
        return decide(commands, name, given, caller, groups, state.suspensions(), now)
    except Refused as refused:
        audit(state, caller, name, given, f"refused: {refused.kind}", refused.message)
        raise


def audit(
    state: CloudState,
    caller: Caller,
    name: str,
    given: dict[str, str],
    outcome: str,
    why: str | None = None,
) -> None:
    state.record(
        datetime.now(UTC),
        actor=caller.actor,
        via="slack",
        action="invoke",
        target=f"command/{name}",
        outcome=outcome,
        detail={"channel": caller.channel, "params": json.dumps(given), "why": why},
    )


def first_delivery(state: CloudState, kind: str, key: str) -> bool:
    """Claims ``key`` in the table; False when it was claimed before (a re-sent request,
    a second click)."""
    if state.claim(f"slack:{kind}:{key}", datetime.now(UTC)):
        return True
    LOG.info("Slack %s %s was already handled; ignoring it", kind, key)
    return False


def send_command(
    ssm: Any, config: dict[str, Any], name: str, params: dict[str, str], who: str
) -> str:
    """``params``: the given values, as checked; the document fills in the others."""
    command = config["commands"][name]
    sent = ssm.send_command(
        DocumentName=command["document"],
        InstanceIds=[config["instance_id"]],
        Parameters={key: [value] for key, value in params.items()},
        TimeoutSeconds=60,  # to start; the document bounds the run itself
        Comment=f"jobdeck {name} by {who}"[:100],
        CloudWatchOutputConfig={
            "CloudWatchOutputEnabled": True,
            "CloudWatchLogGroupName": config["log_group"],
        },
    )
    command_id: str = sent["Command"]["CommandId"]
    return command_id


def wait_for(ssm: Any, command_id: str, instance_id: str, deadline: float) -> dict[str, Any]:
    """Poll the invocation until it ends or ``deadline`` (a time.monotonic() value)."""
    while True:
        try:
            found: dict[str, Any] = ssm.get_command_invocation(
                CommandId=command_id, InstanceId=instance_id
            )
        except ssm.exceptions.InvocationDoesNotExist:
            found = {"Status": "Pending"}
        if found["Status"] in TERMINAL or time.monotonic() >= deadline:
            return found
        time.sleep(2)


@functools.lru_cache(maxsize=1)
def _state() -> CloudState:
    return CloudState(boto3.client("dynamodb"), os.environ["JOBDECK_TABLE"])


@functools.lru_cache(maxsize=1)
def _secrets() -> dict[str, str]:
    """The bot token and signing secret, read once per cold start."""
    found = boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["SLACK_SECRET_ARN"])
    values: dict[str, str] = json.loads(found["SecretString"])
    return values


def _slack_client() -> WebClient:
    """``SLACK_API_URL`` overrides Slack's Web API base URL, as for ``jobdeck serve``."""
    base_url = os.environ.get("SLACK_API_URL") or WebClient.BASE_URL
    return WebClient(token=_secrets()["SLACK_BOT_TOKEN"], base_url=base_url)


@functools.lru_cache(maxsize=1)
def _slack_handler() -> SlackRequestHandler:
    return SlackRequestHandler(app=_app())


@functools.lru_cache(maxsize=1)
def _app() -> App:
    """One Bolt app per cold start (Lambda reuses the process between invocations)."""
    config = load_config()
    app = App(
        client=_slack_client(),
        signing_secret=_secrets()["SLACK_SIGNING_SECRET"],
        process_before_response=True,  # required on Lambda: nothing may run after return
    )
    ssm = boto3.client("ssm")
    state = _state()

    def skip_slack_retries(request: BoltRequest, next: Callable[[], None]) -> BoltResponse | None:
        """Slack re-sends a request that it thinks went unanswered (a cold start can pass
        its 3 s); the first one was handled, so a re-sent one is answered and dropped."""
        if request.headers.get("x-slack-retry-num"):
            return BoltResponse(status=200, body="")
        next()
        return None

    app.middleware(skip_slack_retries)

    commands = commands_of(config)

    def ack_now(ack: Ack) -> None:
        ack()

    def run_lazy(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        caller = Caller("slack", str(body.get("user_id", "")), body.get("channel_id"))
        trigger = str(body.get("trigger_id") or "")
        if trigger and not first_delivery(state, "command", trigger):
            return

        def tell(text: str) -> None:
            respond(text=text, response_type="ephemeral")

        slash, text = str(body.get("command", "")), str(body.get("text", ""))
        own = next((n for n, c in commands.items() if c.slash == slash), None)
        try:
            asked = read_slash(slash, text, own)
        except InvalidParams as exc:
            tell(blocks.refusal_text(str(exc), exc.problems))
            return
        if asked.kind == "help":
            tell(help_for(commands, caller, client))
            return
        if asked.kind == "reply":
            tell(asked.text)
            return
        try:
            prepared = check(commands, asked.name, asked.given, caller, client, state)
        except Refused as refused:
            tell(blocks.refusal_text(refused.message, refused.problems))
            return
        if prepared.command.confirm:
            preview(prepared, asked.given, caller, client, tell)
            audit(state, caller, prepared.name, asked.given, "preview")
            return
        execute(prepared, asked.given, caller, client, ts=None)

    def preview(
        prepared: Prepared,
        given: dict[str, str],
        caller: Caller,
        client: WebClient,
        tell: Callable[[str], None],
    ) -> None:
        name = prepared.name
        value = blocks.PreviewValue(secrets.token_urlsafe(12), name, given, caller.actor)
        try:
            shown = blocks.preview_blocks(
                name, prepared.command, prepared.argv, caller.actor, value
            )
        except ValueError as exc:
            tell(blocks.refusal_text(str(exc)))
            return
        client.chat_postMessage(
            channel=caller.channel or caller.actor,
            text=blocks.preview_text(name, prepared.argv, caller.actor),
            blocks=shown,
        )

    def execute(
        prepared: Prepared,
        given: dict[str, str],
        caller: Caller,
        client: WebClient,
        *,
        ts: str | None,
    ) -> None:
        """SendCommand, then one message: posted (or the preview, edited) with the
        start, then edited with the result, as the local bot does."""
        name, channel = prepared.name, caller.channel or caller.actor
        checked = {key: _text(prepared.values[key]) for key in given}
        command_id = send_command(ssm, config, name, checked, caller.actor)
        audit(state, caller, name, given, "started", f"SSM command {command_id}")
        label = f"SSM command {command_id}"
        text = blocks.started_line(name, label, "pending", caller.actor)
        try:
            if ts is None:
                posted = client.chat_postMessage(
                    channel=channel, text=text, blocks=[blocks.section(text)]
                )
                ts, channel = str(posted["ts"]), str(posted.get("channel") or channel)
            else:
                client.chat_update(channel=channel, ts=ts, text=text, blocks=[blocks.section(text)])
        except SlackApiError as exc:
            LOG.warning("cannot post the progress of %s in %s: %s", command_id, channel, exc)
            ts = None
        timeout = config["commands"][name]["timeout_seconds"]
        deadline = time.monotonic() + min(timeout + 30, 840)
        found = wait_for(ssm, command_id, config["instance_id"], deadline)
        status = STATUSES.get(found["Status"], "lost")
        exit_code = found.get("ResponseCode")
        line = blocks.result_line(
            name,
            status,
            exit_code if isinstance(exit_code, int) and exit_code >= 0 else None,
            None,
            label,
            caller.actor,
            found.get("StatusDetails"),
        )
        audit(state, caller, name, given, status, f"SSM command {command_id}")
        tail = (found.get("StandardOutputContent") or "")[-OUTPUT_TAIL:]
        shown = blocks.line_and_tail(line, tail)
        if ts is not None:
            client.chat_update(channel=channel, ts=ts, text=line, blocks=shown)
        else:
            client.chat_postMessage(channel=channel, text=line, blocks=shown)

    def run_clicked(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        value, caller, message_ts = read_click(body)
        if not first_delivery(state, "preview", value.nonce):
            audit(state, caller, value.command, value.params, "duplicate", "clicked again")
            return
        try:
            # Checked again: whoever clicks must be allowed too.
            prepared = check(commands, value.command, value.params, caller, client, state)
        except Refused as refused:
            respond(
                text=blocks.refusal_text(refused.message, refused.problems),
                response_type="ephemeral",
                replace_original=False,
            )
            return
        execute(prepared, value.params, caller, client, ts=message_ts)

    def cancel_clicked(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        value, caller, message_ts = read_click(body)
        command = commands.get(value.command)
        # The one who asked may always take it back; anyone else must be allowed to run it.
        if caller.actor != value.requested_by and (
            command is None
            or not authorize(command.allow, caller, member_of(command, caller, client)).allowed
        ):
            respond(
                text=f"Sorry, only people allowed to run {value.command} may cancel it.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        if not first_delivery(state, "preview", value.nonce):
            return
        audit(state, caller, value.command, value.params, "cancelled")
        if caller.channel and message_ts:
            text = blocks.cancelled_text(value.command, caller.actor)
            client.chat_update(
                channel=caller.channel, ts=message_ts, text=text, blocks=[blocks.section(text)]
            )

    for slash in [BASE_SLASH, *config["slashes"]]:
        app.command(slash)(ack=ack_now, lazy=[run_lazy])
    app.action(blocks.RUN_ACTION)(ack=ack_now, lazy=[run_clicked])
    app.action(blocks.CANCEL_ACTION)(ack=ack_now, lazy=[cancel_clicked])
    return app


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
