"""The Slack bot Lambda, as deployed: the handler file and commands.json of the synthesized
asset, called with Function URL events signed like Slack's, against moto (Secrets
Manager, SSM) and a stand-in for Slack's Web API on 127.0.0.1.

The first invocation of a slash command only acks and re-invokes the function (Bolt's
lazy listener runner calls Lambda's Invoke); these tests send that second invocation
themselves, as Lambda would, and check what it does.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode

import boto3
import pytest
from slack_sdk.signature import SignatureVerifier

from jobdeck.commands.authorize import Caller, authorize
from jobdeck.commands.decide import Refused, decide
from jobdeck.slack import blocks
from jobdeck.slack.requests import read_slash
from jobdeck.targets.aws.ssm import command_document
from tests.aws.conftest import REGION, Assembly, create_state_table

SIGNING_SECRET = "test-signing-secret"
WEBHOOK_SECRET = "test-webhook-secret"
EDITORS = {"S0EDITORS": ["U0EDITOR"]}


@dataclass
class FakeSlack:
    """Slack's Web API and response URLs: records each call, answers ``ok``."""

    url: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    raw: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def called(self, path: str) -> list[dict[str, Any]]:
        return [body for called, body in self.calls if called == path]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    calls: list[tuple[str, dict[str, Any]]] = []
    raws: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            raws.append((self.path, dict(self.headers.items()), data))
            raw = data.decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                body: dict[str, Any] = json.loads(raw or "{}")
            else:
                body = {k: v[0] for k, v in parse_qs(raw).items()}
            calls.append((self.path, body))
            answer: dict[str, Any] = {"ok": True}
            if self.path == "/api/auth.test":
                answer.update(user_id="UBOT", team_id="T1", bot_id="B1")
            if self.path == "/api/chat.postMessage":
                answer.update(ts=f"1.{len(calls)}", channel=body.get("channel"))
            if self.path == "/api/usergroups.users.list":
                answer["users"] = EDITORS.get(body.get("usergroup", ""), [])
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-slack")
    thread.start()
    try:
        yield FakeSlack(f"http://127.0.0.1:{server.server_address[1]}", calls, raws)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Bot:
    module: ModuleType
    ssm: Any
    instance: str


@pytest.fixture
def bot(
    newsroom: Assembly, moto_server: str, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Bot]:
    def client(service: str) -> Any:
        make: Any = boto3.client
        return make(service, region_name=REGION, endpoint_url=moto_server)

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    secret = client("secretsmanager").create_secret(
        Name="jobdeck/newsroom/slack",
        SecretString=json.dumps(
            {
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "JOBDECK_WEBHOOK_SECRET": WEBHOOK_SECRET,
            }
        ),
    )["ARN"]
    push = newsroom.loaded.catalog.commands["breaking-push"]
    ssm = client("ssm")
    ssm.create_document(
        Name="newsroom-command-breaking-push",
        Content=json.dumps(command_document("breaking-push", push)),
        DocumentType="Command",
        DocumentFormat="JSON",
    )
    instance = client("ec2").run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    for key, value in {
        "SLACK_SECRET_ARN": secret,
        "SLACK_API_URL": f"{slack.url}/api/",
        "JOBDECK_TOOLS_INSTANCE_ID": instance,
        "JOBDECK_COMMAND_LOG_GROUP": "/jobdeck/newsroom/commands",
        "JOBDECK_TABLE": create_state_table(moto_server, "newsroom", newsroom),
    }.items():
        monkeypatch.setenv(key, value)
    module = _bundled_handler(newsroom)
    try:
        yield Bot(module, ssm, instance)
    finally:
        for cached in ("_secrets", "_app", "_slack_handler", "_state"):
            getattr(module, cached).cache_clear()


def _bundled_handler(assembly: Assembly) -> ModuleType:
    """The handler file of the synthesized asset (beside its commands.json)."""
    code = assembly.one("AWS::Lambda::Function", FunctionName="newsroom-slack-bot")["Code"]
    folder = assembly.outdir / f"asset.{code['S3Key'].removesuffix('.zip')}"
    path = folder / "jobdeck/targets/aws/lambda_handler.py"
    spec = importlib.util.spec_from_file_location("bundled_lambda_handler", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONTEXT = SimpleNamespace(
    function_name="newsroom-slack-bot",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:newsroom-slack-bot",
)


def _lazy_event(body: str, lazy_function: str, **headers: str) -> dict[str, Any]:
    """A Function URL event signed like Slack's, re-sent by Bolt for a lazy listener."""
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
    return {
        "version": "2.0",
        "requestContext": {"http": {"method": "POST"}},
        "headers": {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": timestamp,
            "x-slack-signature": signature,
            "x-slack-bolt-lazy-only": "1",
            "x-slack-bolt-lazy-function-name": lazy_function,
            **headers,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _slash(slack: FakeSlack, command: str, text: str, user: str, channel: str) -> str:
    return urlencode(
        {
            "command": command,
            "text": text,
            "user_id": user,
            "channel_id": channel,
            "team_id": "T1",
            "response_url": f"{slack.url}/respond/1",
            "trigger_id": "1.2.3",
        }
    )


def _local_refusal(newsroom: Assembly, text: str, user: str, channel: str) -> str:
    """What the bot of ``jobdeck serve`` answers, from the same pure pieces and catalog."""
    commands = newsroom.loaded.catalog.commands
    caller = Caller("slack", user, channel)
    asked = read_slash("/jobdeck", text, None)
    if asked.kind == "reply":
        return asked.text
    groups = {g for g, members in EDITORS.items() if user in members}
    with pytest.raises(Refused) as refused:
        decide(commands, asked.name, asked.given, caller, groups, [], datetime.now(UTC))
    return blocks.refusal_text(refused.value.message, refused.value.problems)


def test_a_confirmed_command_runs_through_ssm(
    bot: Bot, slack: FakeSlack, newsroom: Assembly
) -> None:
    text = 'title="Big news" url=https://news.example/1'
    body = _slash(slack, "/breaking", text, "U9", "C0EDITORIAL")
    assert bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)["statusCode"] == 200
    (preview,) = slack.called("/api/chat.postMessage")
    shown = preview["blocks"]
    buttons = shown[-1]["elements"]
    assert [b["action_id"] for b in buttons] == [blocks.RUN_ACTION, blocks.CANCEL_ACTION]
    # The local bot's preview, for the same command, params and caller.
    push = newsroom.loaded.catalog.commands["breaking-push"]
    given = {"title": "Big news", "url": "https://news.example/1"}
    local = decide(
        {"breaking-push": push},
        "breaking-push",
        given,
        Caller("slack", "U9", "C0EDITORIAL"),
        set(),
        [],
        datetime.now(UTC),
    )
    value = blocks.PreviewValue.load(buttons[0]["value"])
    assert value.params == given
    assert shown == blocks.preview_blocks("breaking-push", push, local.argv, "U9", value)
    assert bot.ssm.list_commands()["Commands"] == []  # nothing runs before "Run"

    click = {
        "type": "block_actions",
        "user": {"id": "U0EDITOR"},
        "channel": {"id": "C0OTHER"},  # allowed through the user group, not the channel
        "container": {"channel_id": "C0OTHER", "message_ts": "1.5"},
        "team": {"id": "T1"},
        "response_url": f"{slack.url}/respond/2",
        "trigger_id": "1.2.4",
        "actions": [
            {"action_id": blocks.RUN_ACTION, "block_id": "b", "value": buttons[0]["value"]}
        ],
    }
    event = _lazy_event(urlencode({"payload": json.dumps(click)}), "run_clicked")
    assert bot.module.handler(event, CONTEXT)["statusCode"] == 200
    (sent,) = bot.ssm.list_commands()["Commands"]
    assert sent["DocumentName"] == "newsroom-command-breaking-push"
    assert sent["InstanceIds"] == [bot.instance]
    assert sent["Parameters"] == {"title": ["Big news"], "url": ["https://news.example/1"]}
    assert sent["Comment"] == "jobdeck breaking-push by U0EDITOR"
    label = f"SSM command {sent['CommandId']}"
    updates = slack.called("/api/chat.update")
    assert [(u["channel"], u["ts"]) for u in updates] == [("C0OTHER", "1.5")] * 2
    assert updates[0]["text"] == blocks.started_line("breaking-push", label, "pending", "U0EDITOR")
    assert updates[-1]["text"].startswith(":white_check_mark: *breaking-push* succeeded")
    assert f"{label}, asked by <@U0EDITOR>" in updates[-1]["text"]
    assert [c["usergroup"] for c in slack.called("/api/usergroups.users.list")] == ["S0EDITORS"]


def test_a_request_slack_resends_runs_nothing(bot: Bot, slack: FakeSlack) -> None:
    body = _slash(slack, "/jobdeck", "help", "U9", "C0EDITORIAL")
    event = _lazy_event(body, "run_lazy", **{"x-slack-retry-num": "1"})
    assert bot.module.handler(event, CONTEXT)["statusCode"] == 200
    assert slack.called("/respond/1") == []
    bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)
    assert len(slack.called("/respond/1")) == 1


def test_deny_by_default(bot: Bot, slack: FakeSlack, newsroom: Assembly) -> None:
    text = "run breaking-push title=x url=https://e.x"
    body = _slash(slack, "/jobdeck", text, "U9", "C0OTHER")
    bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)
    (answer,) = slack.called("/respond/1")
    assert answer["text"] == _local_refusal(newsroom, text, "U9", "C0OTHER")
    assert answer["text"].startswith("Sorry, I cannot run that: you are not allowed to run")
    assert answer["response_type"] == "ephemeral"
    assert bot.ssm.list_commands()["Commands"] == []


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("run breaking-push url=https://e.x", "• `title`: required"),
        ("run breaking-push title=x colour=red", "• `colour`: no such param"),
        ("run nothing", "Sorry, I cannot run that: no command named 'nothing'"),
        ("deploy", "Usage: `/jobdeck help`"),
    ],
)
def test_replies_to_what_cannot_run_as_the_local_bot(
    bot: Bot, slack: FakeSlack, newsroom: Assembly, text: str, reply: str
) -> None:
    body = _slash(slack, "/jobdeck", text, "U9", "C0EDITORIAL")
    bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)
    (answer,) = slack.called("/respond/1")
    assert answer["text"] == _local_refusal(newsroom, text, "U9", "C0EDITORIAL")
    assert reply in answer["text"]
    assert bot.ssm.list_commands()["Commands"] == []


@pytest.mark.parametrize(
    ("user", "channel"), [("U9", "C0EDITORIAL"), ("U0EDITOR", "C0X"), ("U9", "C0X")]
)
def test_help_is_the_local_bots(
    bot: Bot, slack: FakeSlack, newsroom: Assembly, user: str, channel: str
) -> None:
    body = _slash(slack, "/jobdeck", "help", user, channel)
    bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)
    (answer,) = slack.called("/respond/1")
    caller = Caller("slack", user, channel)
    groups = {g for g, members in EDITORS.items() if user in members}
    mine = {
        name: command
        for name, command in newsroom.loaded.catalog.commands.items()
        if command.enabled and authorize(command.allow, caller, groups).allowed
    }
    assert answer["text"] == blocks.help_text(mine, "/jobdeck")
    assert ("breaking-push" in answer["text"]) == ((user, channel) != ("U9", "C0X"))


def test_failure_notices_are_relayed_to_slack_and_webhooks(bot: Bot, slack: FakeSlack) -> None:
    notice = {
        "project": "newsroom",
        "kind": "schedule",
        "job": "ranking-aggregate",
        "pool": "batch",
        "scheduled_time": "2026-03-08T01:00:00Z",
        "execution": "arn:aws:states:us-east-1:123456789012:execution:newsroom-x:2026",
        "error": {"Error": "States.Timeout", "Cause": ""},
        "notify": [
            "slack:#batch-alerts",
            f"webhook:{slack.url}/hook",
            "webhook:http://127.0.0.1:9/refused",  # fails: the others are still sent
        ],
    }
    record = {
        "EventSource": "aws:sns",
        "Sns": {
            "MessageId": "m-1",
            "Timestamp": "2026-03-08T01:15:02.000Z",
            "Message": json.dumps(notice),
        },
    }
    assert bot.module.handler({"Records": [record]}, CONTEXT) == {"sent": 2, "failed": 1}
    (posted,) = slack.called("/api/chat.postMessage")
    assert posted["channel"] == "#batch-alerts"
    assert (
        "*ranking-aggregate* failed (slot 2026-03-08T01:00:00Z): States.Timeout" in posted["text"]
    )
    ((_, headers, body),) = [r for r in slack.raw if r[0] == "/hook"]
    digest = hmac.new(
        WEBHOOK_SECRET.encode(),
        headers["X-Jobdeck-Timestamp"].encode() + b"." + body,
        hashlib.sha256,
    ).hexdigest()
    assert headers["X-Jobdeck-Signature"] == f"sha256={digest}"
    payload = json.loads(body)
    assert payload["type"] == "run.timed_out"
    assert payload["version"] == 1
    assert payload["delivery_id"] == "m-1"
    assert payload["run"]["job"] == "ranking-aggregate"
    assert payload["run"]["reason"] == "timeout"
    assert payload["run"]["scheduled_for"] == "2026-03-08T01:00:00Z"
    assert payload["run"]["project"] == "newsroom"
    assert payload["run"]["exit_code"] is None
    assert set(payload) == {"type", "version", "delivery_id", "occurred_at", "run", "log_tail"}


def test_the_asset_carries_no_other_module(newsroom: Assembly) -> None:
    code = newsroom.one("AWS::Lambda::Function", FunctionName="newsroom-slack-bot")["Code"]
    folder = newsroom.outdir / f"asset.{code['S3Key'].removesuffix('.zip')}"
    top = sorted(p.name for p in Path(folder).iterdir())
    assert top == ["jobdeck", "slack_bolt", "slack_sdk"]


def _preview_click(bot: Bot, slack: FakeSlack) -> dict[str, Any]:
    """A Run click on the preview of a /breaking request (by U0EDITOR)."""
    text = 'title="Big news" url=https://news.example/1'
    body = _slash(slack, "/breaking", text, "U9", "C0EDITORIAL")
    bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)
    (preview,) = slack.called("/api/chat.postMessage")
    run = preview["blocks"][-1]["elements"][0]
    click = {
        "type": "block_actions",
        "user": {"id": "U0EDITOR"},
        "channel": {"id": "C0EDITORIAL"},
        "container": {"channel_id": "C0EDITORIAL", "message_ts": "1.5"},
        "team": {"id": "T1"},
        "response_url": f"{slack.url}/respond/2",
        "trigger_id": "1.2.4",
        "actions": [{"action_id": blocks.RUN_ACTION, "block_id": "b", "value": run["value"]}],
    }
    return _lazy_event(urlencode({"payload": json.dumps(click)}), "run_clicked")


def _audit(moto_server: str) -> list[dict[str, Any]]:
    from jobdeck.targets.aws.cloud_state import CloudState, table_name

    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)
    return CloudState(client, table_name("newsroom")).audit(50)[::-1]


def test_two_identical_clicks_send_one_command(
    bot: Bot, slack: FakeSlack, moto_server: str
) -> None:
    event = _preview_click(bot, slack)
    errors: list[BaseException] = []

    def click() -> None:
        try:
            bot.module.handler(event, CONTEXT)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    # The double click: both deliveries at once, as two Lambda invocations would run.
    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(bot.ssm.list_commands()["Commands"]) == 1
    # A third, later delivery of the same click runs nothing either.
    bot.module.handler(event, CONTEXT)
    assert len(bot.ssm.list_commands()["Commands"]) == 1
    outcomes = [(e["actor"], e["outcome"]) for e in _audit(moto_server)]
    assert outcomes[0] == ("U9", "preview")
    assert sorted(outcomes[1:]) == sorted(
        [("U0EDITOR", "started"), ("U0EDITOR", "succeeded")] + [("U0EDITOR", "duplicate")] * 2
    )
    started = next(e for e in _audit(moto_server) if e["outcome"] == "started")
    assert started["target"] == "command/breaking-push"
    assert started["via"] == "slack"
    assert started["detail"]["channel"] == "C0EDITORIAL"
    assert json.loads(started["detail"]["params"]) == {
        "title": "Big news",
        "url": "https://news.example/1",
    }


def test_a_slash_command_delivered_twice_answers_once(bot: Bot, slack: FakeSlack) -> None:
    body = _slash(slack, "/jobdeck", "help", "U9", "C0EDITORIAL")
    bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)
    bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)  # same trigger_id
    assert len(slack.called("/respond/1")) == 1


def test_a_command_suspended_in_aws_is_refused(
    bot: Bot, slack: FakeSlack, moto_server: str
) -> None:
    from jobdeck.targets.aws.cloud_state import CloudState, CloudSuspension, table_name

    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)
    state = CloudState(client, table_name("newsroom"))
    now = datetime.now(UTC)
    state.suspend(CloudSuspension("command", "breaking-push", "CMS outage", "ana@ops", now, None))
    text = "run breaking-push title=x url=https://e.x"
    body = _slash(slack, "/jobdeck", text, "U9", "C0EDITORIAL")
    bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)
    (answer,) = slack.called("/respond/1")
    assert "command breaking-push is suspended by ana@ops: CMS outage" in answer["text"]
    assert bot.ssm.list_commands()["Commands"] == []
    (entry,) = _audit(moto_server)
    assert entry["outcome"] == "refused: suspended"
    # Ended (an `until` in the past): runs again, without anything else running.
    state.suspend(
        CloudSuspension(
            "command", "breaking-push", "CMS outage", "ana@ops", now, now - timedelta(seconds=1)
        )
    )
    body = _slash(slack, "/jobdeck", text, "U9", "C0EDITORIAL").replace("1.2.3", "1.2.9")
    bot.module.handler(_lazy_event(body, "run_lazy"), CONTEXT)
    assert len(slack.called("/api/chat.postMessage")) == 1  # the preview


def test_aws_events_reach_the_notify_targets(bot: Bot, slack: FakeSlack) -> None:
    """An ECS task of a worker that crashed: the bot posts it where the catalog says."""
    event = {
        "id": "e-1",
        "source": "aws.states",
        "time": "2026-03-09T12:00:00Z",
        "detail": {
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:"
            "newsroom-ranking-aggregate",
            "status": "TIMED_OUT",
            "input": json.dumps({"scheduled_time": "2026-03-09T11:45:00Z"}),
        },
    }
    assert bot.module.handler(event, CONTEXT) == {"sent": 1, "failed": 0}
    (posted,) = slack.called("/api/chat.postMessage")
    assert posted["channel"] == "#batch-alerts"
    assert "*ranking-aggregate* lost (slot 2026-03-09T11:45:00Z)" in posted["text"]
    assert "console.aws.amazon.com/cloudwatch" in posted["text"]
    missed = {
        "Records": [
            {
                "eventSource": "aws:sqs",
                "messageId": "m-1",
                "body": json.dumps(
                    {"schedule": "ranking-aggregate", "scheduled_time": "2026-03-09T12:00:00Z"}
                ),
                "messageAttributes": {"ERROR_CODE": {"stringValue": "AWS.SFN.Throttling"}},
            }
        ]
    }
    assert bot.module.handler(missed, CONTEXT) == {"sent": 1, "failed": 0}
    assert "missed" in slack.called("/api/chat.postMessage")[-1]["text"]
