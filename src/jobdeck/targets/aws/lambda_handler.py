"""The Slack bot on AWS Lambda: Bolt's Lambda adapter, lazy listeners, SSM SendCommand.

Deployed by the stack with ``commands.json`` beside this file (what the catalog's
commands allow and take) and only slack_bolt / slack_sdk besides the Lambda runtime's
boto3, so that a cold start stays short. Slack must be answered within 3 s: every
listener acks at once and does its work in a lazy listener, which Bolt runs in a second
invocation of this function.

The command parsing here (``/jobdeck run NAME key=value ...``, ``/jobdeck help``, a
command's own slash command) is deliberately small and is to be unified with the local
bot of ``jobdeck serve`` once that exists; SSM re-checks every value against the
document's allowed patterns before anything runs.

Requests that Slack re-sends (``X-Slack-Retry-Num``) are acknowledged and dropped: the
first delivery was already handled.

The same function relays failure notices from the SNS topic of the run workflows to the
targets named in each schedule's ``notify``: Slack channels through the bot, and
webhooks with the local engine's JSON body (version 1, signed with
``JOBDECK_WEBHOOK_SECRET`` when the secret holds one). Each target is tried once; one
that fails is logged and does not make SNS deliver the notice again to the others.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import shlex
import ssl
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from slack_bolt import Ack, App, BoltRequest, BoltResponse, Respond
from slack_bolt.adapter.aws_lambda import SlackRequestHandler
from slack_sdk import WebClient

LOG = logging.getLogger(__name__)
CONFIG_FILE = Path(__file__).with_name("commands.json")
TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut", "Cancelling"}
OUTPUT_TAIL = 2500


def handler(event: dict[str, Any], context: Any) -> Any:
    records = event.get("Records") or []
    if records and records[0].get("EventSource") == "aws:sns":
        return relay_notices(records, _slack_client(), _secrets().get("JOBDECK_WEBHOOK_SECRET"))
    return _slack_handler().handle(event, context)  # type: ignore[no-untyped-call]


def load_config(path: Path = CONFIG_FILE) -> dict[str, Any]:
    """The bundled commands, plus the stack's IDs from the function's environment."""
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    loaded["instance_id"] = os.environ["JOBDECK_TOOLS_INSTANCE_ID"]
    loaded["log_group"] = os.environ["JOBDECK_COMMAND_LOG_GROUP"]
    return loaded


def parse_request(text: str, slash: str, config: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(command name, params) from a slash command's text; ValueError says what is wrong.

    ``/jobdeck run NAME key=value ...`` or a command's own ``/slash key=value ...``;
    values may be quoted as in a shell (``title="Big news"``).
    """
    words = shlex.split(text)
    commands: dict[str, Any] = config["commands"]
    if slash != "/jobdeck":
        name = next((n for n, c in commands.items() if c.get("slash") == slash), None)
        if name is None:
            raise ValueError(f"{slash} is not a command of this catalog")
    else:
        if len(words) < 2 or words[0] != "run":
            raise ValueError("usage: /jobdeck run NAME key=value ...  (or /jobdeck help)")
        name, words = words[1], words[2:]
        if name not in commands:
            raise ValueError(f"no command {name!r}; /jobdeck help lists them")
    params: dict[str, str] = {}
    declared: dict[str, Any] = commands[name]["params"]
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"{word!r} is not key=value")
        if key not in declared:
            raise ValueError(f"{key}: unknown parameter (known: {', '.join(declared) or 'none'})")
        params[key] = value
    missing = [k for k, p in declared.items() if p.get("required") and k not in params]
    if missing:
        raise ValueError(f"missing required parameter(s): {', '.join(missing)}")
    return name, params


def allowed(command: dict[str, Any], user: str, channel: str, client: WebClient) -> bool:
    """Deny by default: the caller's channel, user or one of their user groups is listed."""
    allow = command["allow"]
    if channel in allow["channels"] or user in allow["users"]:
        return True
    for group in allow["usergroups"]:
        members = client.usergroups_users_list(usergroup=group).get("users") or []
        if user in members:
            return True
    return False


def send_command(
    ssm: Any, config: dict[str, Any], name: str, params: dict[str, str], who: str
) -> str:
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


def relay_notices(
    records: list[dict[str, Any]], client: WebClient, webhook_secret: str | None = None
) -> dict[str, int]:
    sent = failed = 0
    for record in records:
        sns = record["Sns"]
        notice = json.loads(sns["Message"])
        error = notice.get("error") or {}
        text = (
            f":red_circle: {notice.get('kind', 'job')} *{notice.get('job')}* failed "
            f"(slot {notice.get('scheduled_time')}): {error.get('Error', 'unknown error')}"
        )
        for target in notice.get("notify") or []:
            kind, _, where = target.partition(":")
            try:
                if kind == "slack":
                    client.chat_postMessage(channel=where, text=text)
                elif kind == "webhook":
                    body = webhook_body(notice, sns.get("MessageId", ""), sns.get("Timestamp"))
                    post_webhook(where, body, webhook_secret)
                else:
                    continue
                sent += 1
            except Exception:
                LOG.exception("notice to %s failed", target)
                failed += 1
    return {"sent": sent, "failed": failed}


def webhook_body(notice: dict[str, Any], delivery_id: str, occurred_at: str | None) -> bytes:
    """The local engine's webhook JSON (version 1) for a failed run on AWS; what AWS does
    not know (run id, exit code, times of the task, log tail) is null."""
    error = (notice.get("error") or {}).get("Error", "")
    cause = (notice.get("error") or {}).get("Cause") or ""
    reason: str | None
    if error == "States.Timeout":
        status, reason = "timed_out", "timeout"
    elif any(f in cause for f in ("ResourceInitializationError", "CannotPullContainerError")):
        status, reason = "failed", "launch_error"
    else:
        status, reason = "failed", "exit_code" if error == "States.TaskFailed" else None
    payload: dict[str, Any] = {
        "type": f"run.{status}",
        "version": 1,
        "delivery_id": delivery_id,
        "occurred_at": occurred_at,
        "run": {
            "id": None,
            "job": notice.get("job"),
            "kind": notice.get("kind", "schedule"),
            "trigger": "schedule",
            "status": status,
            "reason": reason,
            "attempt": None,
            "scheduled_for": notice.get("scheduled_time"),
            "started_at": None,
            "ended_at": None,
            "duration_seconds": None,
            "exit_code": None,
            "pool": notice.get("pool"),
            "host": None,
            "project": notice.get("project"),
            "url": notice.get("execution"),
        },
        "log_tail": None,
    }
    return json.dumps(payload).encode()


def post_webhook(url: str, body: bytes, secret: str | None, timeout: float = 10) -> None:
    """POST ``body`` like the local notifier: JSON, signed when there is a secret
    (``X-Jobdeck-Signature: sha256=HMAC(secret, "<timestamp>." + body)``), TLS 1.2+."""
    headers = {"Content-Type": "application/json", "User-Agent": "jobdeck-aws"}
    if secret:
        timestamp = str(int(time.time()))
        digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        headers["X-Jobdeck-Timestamp"] = timestamp
        headers["X-Jobdeck-Signature"] = f"sha256={digest.hexdigest()}"
    tls = ssl.create_default_context()
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout, context=tls) as response:
        response.read()


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

    def skip_slack_retries(request: BoltRequest, next: Callable[[], None]) -> BoltResponse | None:
        """Slack re-sends a request that it thinks went unanswered (a cold start can pass
        its 3 s); the first one was handled, so a re-sent one is answered and dropped."""
        if request.headers.get("x-slack-retry-num"):
            return BoltResponse(status=200, body="")
        next()
        return None

    app.middleware(skip_slack_retries)

    def ack_now(ack: Ack) -> None:
        ack()

    def execute(name: str, params: dict[str, str], user: str, respond: Respond) -> None:
        command = config["commands"][name]
        respond(f"Running `{name}` on the tools host...")
        command_id = send_command(ssm, config, name, params, user)
        deadline = time.monotonic() + min(command["timeout_seconds"] + 30, 840)
        result = wait_for(ssm, command_id, config["instance_id"], deadline)
        tail = (result.get("StandardOutputContent") or "")[-OUTPUT_TAIL:]
        respond(f"`{name}`: {result['Status']}\n```{tail or '(no output)'}```")

    def run_lazy(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        slash, text = body["command"], body.get("text", "")
        user, channel = body["user_id"], body["channel_id"]
        if slash == "/jobdeck" and text.strip() in ("", "help"):
            mine = [
                f"• `{n}` {c['description']}"
                for n, c in config["commands"].items()
                if allowed(c, user, channel, client)
            ]
            respond("\n".join(mine) or "You may not run any command here.")
            return
        try:
            name, params = parse_request(text, slash, config)
        except ValueError as exc:
            respond(f"error: {exc}")
            return
        command = config["commands"][name]
        if not allowed(command, user, channel, client):
            respond(f"You may not run `{name}` here.")
            return
        if command["confirm"]:
            respond(blocks=confirm_blocks(name, command, params), text=f"Run `{name}`?")
            return
        execute(name, params, user, respond)

    def run_confirmed(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        request = json.loads(body["actions"][0]["value"])
        name, params = request["command"], request["params"]
        user, channel = body["user"]["id"], body["channel"]["id"]
        # Checked again: whoever clicks must be allowed too.
        if name not in config["commands"] or not allowed(
            config["commands"][name], user, channel, client
        ):
            respond(f"You may not run `{name}` here.")
            return
        execute(name, params, user, respond)

    def cancelled(respond: Respond) -> None:
        respond("Cancelled; nothing was run.")

    for slash in ["/jobdeck", *config["slashes"]]:
        app.command(slash)(ack=ack_now, lazy=[run_lazy])
    app.action("jobdeck_run")(ack=ack_now, lazy=[run_confirmed])
    app.action("jobdeck_cancel")(ack=ack_now, lazy=[cancelled])
    return app


def confirm_blocks(name: str, command: dict[str, Any], params: dict[str, str]) -> list[Any]:
    """The preview of a ``confirm: true`` command, with Run / Cancel buttons."""
    shown = " ".join(f"{key}={shlex.quote(value)}" for key, value in params.items())
    value = json.dumps({"command": name, "params": params})
    return [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*{name}*: {command['description']}\n`{shown or '(no parameters)'}`",
            },
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "jobdeck_run",
                    "text": {"type": "plain_text", "text": "Run"},
                    "style": "danger",
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": "jobdeck_cancel",
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "value": value,
                },
            ],
        },
    ]
