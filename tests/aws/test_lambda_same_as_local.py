"""The Slack bot on Lambda answers as the bot of ``jobdeck serve``: the same requests,
from the same callers, against the same catalog, get the same help and refusals.

The local bot is served for real (the Slack integration harness: its store, its Bolt
app, a stand-in for Slack's Web API); the Lambda handler is called with Slack-signed
Function URL events, as Lambda re-invokes it for a lazy listener, with the catalog's
commands as the stack bundles them and its Slack calls going to the same stand-in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import anyio
import boto3
import pytest
from slack_sdk.signature import SignatureVerifier

from jobdeck.targets.aws import lambda_handler
from jobdeck.targets.aws.tools import bot_config
from tests.aws.conftest import REGION, create_state_table
from tests.integration.test_slack_harness import SIGNING_SECRET, Bot, bot_server

pytestmark = pytest.mark.anyio

CONTEXT = SimpleNamespace(
    function_name="slacktest-slack-bot",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:slacktest-slack-bot",
)
# (slash, text, user, channel): help for several callers, and what may not run.
REQUESTS = [
    ("/jobdeck", "help", "U_OPS", "C_ELSEWHERE"),  # through the user group S_OPS
    ("/jobdeck", "help", "U_BOSS", "C_ELSEWHERE"),  # by user
    ("/jobdeck", "help", "U_X", "C_OPS"),  # by channel
    ("/jobdeck", "", "U_NOBODY", "C_ELSEWHERE"),  # nothing allowed
    ("/jobdeck", "run secret", "U_NOBODY", "C_OPS"),  # forbidden
    ("/jobdeck", "run push title=x url=https://e.x", "U_OPS", "C_OPS"),  # not an editor
    ("/jobdeck", "run say note=x", "U_OPS", "C_OPS"),  # a required param is missing
    ("/jobdeck", "run say title=x colour=red", "U_BOSS", "C_OPS"),  # an unknown param
    ("/say", f"title={'x' * 201}", "U_BOSS", "C_OPS"),  # too long, by its own slash
    ("/jobdeck", "run nothing", "U_BOSS", "C_OPS"),  # no such command
    ("/jobdeck", "deploy", "U_BOSS", "C_OPS"),  # not a verb
    ("/jobdeck", 'run say title="unclosed', "U_BOSS", "C_OPS"),  # cannot be split
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def lambda_bot(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    secret = boto3.client(
        "secretsmanager", region_name=REGION, endpoint_url=moto_server
    ).create_secret(
        Name="jobdeck/slacktest/slack",
        SecretString=json.dumps(
            {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SIGNING_SECRET}
        ),
    )["ARN"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("SLACK_SECRET_ARN", secret)
    monkeypatch.setenv("JOBDECK_TABLE", create_state_table(moto_server, "slacktest"))
    try:
        yield lambda_handler
    finally:
        for cached in ("_secrets", "_app", "_slack_handler", "_state"):
            getattr(lambda_handler, cached).cache_clear()


def _event(body: str) -> dict[str, Any]:
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
            "x-slack-bolt-lazy-function-name": "run_lazy",
        },
        "body": body,
        "isBase64Encoded": False,
    }


async def _local_answer(bot: Bot, slash: str, text: str, user: str, channel: str) -> str:
    before = len(bot.ephemerals())
    answer = await bot.send.command(slash, text, user=user, channel=channel)
    assert answer.status_code == 200
    (reply,) = await bot.slack.wait_for(
        f"the local bot's answer to {slash} {text}", lambda _: bot.ephemerals()[before:]
    )
    return str(reply)


async def _lambda_answer(
    bot: Bot, module: ModuleType, slash: str, text: str, user: str, channel: str
) -> str:
    before = len(bot.ephemerals())
    body = bot.send.command_body(slash, text, user=user, channel=channel)
    done = await anyio.to_thread.run_sync(module.handler, _event(body), CONTEXT)
    assert done["statusCode"] == 200
    (reply,) = bot.ephemerals()[before:]
    return reply


async def test_help_and_refusals_are_the_local_bots(
    tmp_path: Path, lambda_bot: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_server(tmp_path) as bot:
        catalog = bot.served.app.catalog
        assert catalog is not None
        # What the stack bundles, through JSON as the asset carries it.
        config = json.loads(json.dumps(bot_config(catalog)))
        config.update(instance_id="i-0123456789abcdef0", log_group="/jobdeck/slacktest")
        monkeypatch.setattr(lambda_bot, "load_config", lambda: config)
        monkeypatch.setenv("SLACK_API_URL", bot.slack.api_url)
        for slash, text, user, channel in REQUESTS:
            local = await _local_answer(bot, slash, text, user, channel)
            on_lambda = await _lambda_answer(bot, lambda_bot, slash, text, user, channel)
            assert on_lambda == local, (slash, text, user, channel)
        assert bot.command_runs() == []
