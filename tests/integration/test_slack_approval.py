"""Four-eyes approval in Slack, against a running server: signed requests in, Slack's
Web API played at the wire. The request is posted with Approve / Reject for the
approvers; the requester and strangers are refused privately; a member of an approving
user group approves and the run starts; Reject asks for a reason in a modal."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobdeck.slack.approval_blocks import APPROVE_ACTION, REJECT_ACTION, REJECT_CALLBACK
from jobdeck.store.records import Run
from tests.integration.test_api_harness import serving
from tests.integration.test_slack_harness import (
    RECORDER,
    USERGROUPS,
    Bot,
    Call,
    SlackSender,
    fake_slack,
    slack_environ,
)

pytestmark = pytest.mark.anyio

CATALOG = """\
version: 1
project: slackapproval
commands:
  push:
    description: Send a breaking-news push
    command: ["python3", "{recorder}", "{{title}}"]
    params:
      title: {{type: string, required: true, max_length: 120}}
    timeout: 60s
    allow: {{usergroups: [S_EDITORS]}}
    approve: {{users: [U_CHIEF], usergroups: [S_OPS], expires: 10m}}
"""
DESK = "C_NEWS"
MESSAGE_TS = "1700000000.000001"


@contextlib.asynccontextmanager
async def approval_bot(tmp_path: Path) -> AsyncIterator[Bot]:
    recorder = tmp_path / "record_argv.py"
    recorder.write_text(RECORDER)
    async with contextlib.AsyncExitStack() as stack:
        slack = await stack.enter_async_context(fake_slack(USERGROUPS))
        served = await stack.enter_async_context(
            serving(tmp_path, CATALOG.format(recorder=recorder), environ=slack_environ(slack))
        )
        yield Bot(served, slack, SlackSender(served.client, slack), tmp_path)


async def requested(bot: Bot, title: str) -> tuple[Call, Run]:
    """U_EDITOR asks for a push; the posted request and its run."""
    before = len(bot.slack.of("chat.postMessage"))
    answer = await bot.send.command(
        "/jobdeck", f"run push title={title}", user="U_EDITOR", channel=DESK
    )
    assert answer.status_code == 200
    posted: Call = await bot.slack.wait_for(
        "the request posted",
        lambda s: (
            s.of("chat.postMessage")[before] if len(s.of("chat.postMessage")) > before else None
        ),
    )
    posted.args["ts"] = MESSAGE_TS
    (run,) = [r for r in bot.command_runs() if r.params.get("title") == title]
    return posted, run


async def click(bot: Bot, message: Call, action: str, user: str) -> None:
    body = bot.send.interaction_body(bot.send.click(message, action, user=user))
    assert (await bot.send.post(body)).status_code == 200


def blocks_of(message: Call) -> list[dict[str, object]]:
    shown = message.args["blocks"]
    return json.loads(shown) if isinstance(shown, str) else list(shown)


async def test_approval_buttons_refuse_the_requester_and_strangers_then_run(
    tmp_path: Path,
) -> None:
    async with approval_bot(tmp_path) as bot:
        message, run = await requested(bot, "Quake")
        message.args["blocks"] = blocks_of(message)
        text = json.dumps(message.args["blocks"])
        assert (run.status, run.reason) == ("pending", "approval")
        assert "<@U_CHIEF>" in text
        assert "<!subteam^S_OPS>" in text
        assert "<@U_EDITOR>" in text
        assert "python3" in text  # the exact argv
        buttons = [
            e for b in message.args["blocks"] if b["type"] == "actions" for e in b["elements"]
        ]
        assert [b["action_id"] for b in buttons] == [APPROVE_ACTION, REJECT_ACTION]

        await click(bot, message, APPROVE_ACTION, "U_EDITOR")  # the requester
        await click(bot, message, APPROVE_ACTION, "U_EDITOR2")  # allowed to run, no approver
        refusals = await bot.slack.wait_for(
            "two refusals", lambda s: len(bot.ephemerals()) >= 2 and bot.ephemerals()
        )
        assert any("own request" in r for r in refusals)
        assert any("not an approver" in r for r in refusals)
        current = bot.served.app.store.runs.run(run.id)
        assert current is not None
        assert current.reason == "approval"
        assert not (tmp_path / f"argv-{run.id}.json").exists()

        await click(bot, message, APPROVE_ACTION, "U_OPS")  # a member of S_OPS
        await bot.slack.wait_for(
            "the approved message",
            lambda s: [
                c for c in s.of("chat.update") if "approved by <@U_OPS>" in str(c.args["text"])
            ],
        )
        result = await bot.slack.result(DESK)
        assert f"run {run.id}" in result.args["text"]
        assert "approved by <@U_OPS>" in json.dumps(result.args["blocks"])
        assert bot.argv(run.id) == ["Quake"]
        audit = [
            (e.actor, e.action, e.outcome)
            for e in bot.served.app.store.audit.audit(20)
            if e.action == "approve"
        ]
        assert sorted(audit) == [
            ("U_EDITOR", "approve", "refused"),
            ("U_EDITOR2", "approve", "refused"),
            ("U_OPS", "approve", "ok"),
        ]


async def test_reject_asks_a_reason_and_cancels(tmp_path: Path) -> None:
    async with approval_bot(tmp_path) as bot:
        message, run = await requested(bot, "Wrong")
        message.args["blocks"] = blocks_of(message)
        await click(bot, message, REJECT_ACTION, "U_EDITOR2")  # no approver: no modal
        await bot.slack.wait_for("a refusal", lambda s: bot.ephemerals())
        assert bot.slack.of("views.open") == []

        await click(bot, message, REJECT_ACTION, "U_CHIEF")
        (opened,) = await bot.slack.wait_for("the reason modal", lambda s: s.of("views.open"))
        view = opened.args["view"]
        view = json.loads(view) if isinstance(view, str) else view
        assert view["callback_id"] == REJECT_CALLBACK

        empty = bot.send.submission(view, {"reason": "  "}, user="U_CHIEF")
        answer = await bot.send.post(bot.send.interaction_body(empty))
        assert answer.json()["response_action"] == "errors"
        current = bot.served.app.store.runs.run(run.id)
        assert current is not None
        assert current.status == "pending"

        good = bot.send.submission(view, {"reason": "wrong audience"}, user="U_CHIEF")
        assert (await bot.send.post(bot.send.interaction_body(good))).status_code == 200
        await bot.slack.wait_for(
            "the rejected message",
            lambda s: [
                c for c in s.of("chat.update") if "rejected by <@U_CHIEF>" in str(c.args["text"])
            ],
        )
        ended = bot.served.app.store.runs.run(run.id)
        assert ended is not None
        assert (ended.status, ended.reason) == ("cancelled", "rejected")
        # The run's own last edit keeps who and why (not a bare "cancelled").
        last = await bot.slack.wait_for(
            "the last edit",
            lambda s: len(s.of("chat.update")) >= 2 and s.of("chat.update")[-1],
        )
        assert "rejected by <@U_CHIEF>: wrong audience" in str(last.args["text"])
        assert ended.detail["cancel_reason"] == "wrong audience"
        assert not (tmp_path / f"argv-{run.id}.json").exists()
