"""The Slack bot in HTTP mode, against a running server: signed requests in, Slack's Web
API and response URLs played at the wire by a local server that records every call."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from jobdeck.slack.blocks import CANCEL_ACTION, RUN_ACTION
from tests.integration.test_slack_harness import Bot, Call, FakeSlack, bot_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def acked(bot: Bot, command: str, text: str, *, user: str, channel: str) -> None:
    """Sends a slash command; Slack must get its answer well within 3 seconds."""
    began = time.monotonic()
    answer = await bot.send.command(command, text, user=user, channel=channel)
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - began < 3.0


async def reply(bot: Bot, index: int = 0) -> dict[str, Any]:
    def found(slack: FakeSlack) -> Call | None:
        calls = slack.of("response_url")
        return calls[index] if len(calls) > index else None

    call: Call = await bot.slack.wait_for("a reply on the response URL", found)
    return call.args


async def posted(bot: Bot, index: int = 0) -> Call:
    def found(slack: FakeSlack) -> Call | None:
        calls = slack.of("chat.postMessage")
        return calls[index] if len(calls) > index else None

    call: Call = await bot.slack.wait_for("a message posted", found)
    return call


async def test_help_lists_only_what_this_user_may_run_here(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        await acked(bot, "/jobdeck", "help", user="U_NOBODY", channel="C_OPS")
        shown = await reply(bot, 0)
        assert shown["response_type"] == "ephemeral"
        assert "*say*" in shown["text"]
        assert "*failing*" in shown["text"]
        assert "*push*" not in shown["text"]
        assert "*secret*" not in shown["text"]
        assert "/jobdeck run say title=TEXT [note=TEXT]" in shown["text"]
        assert "/say title=TEXT" in shown["text"]

        await acked(bot, "/jobdeck", "", user="U_BOSS", channel="C_ELSEWHERE")
        boss = (await reply(bot, 1))["text"]
        assert "*say*" in boss
        assert "*secret*" in boss
        assert "*push*" not in boss
        assert "*failing*" not in boss

        await acked(bot, "/jobdeck", "help", user="U_EDITOR", channel="C_ELSEWHERE")
        editor = (await reply(bot, 2))["text"]
        assert "*push*" in editor
        assert "one of all, ios, android" in editor
        assert bot.slack.of("usergroups.users.list"), "membership comes from Slack"
        assert bot.command_runs() == []


async def test_run_with_params_posts_one_message_edited_with_the_result(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        await acked(
            bot, "/jobdeck", 'run say title="Hello world" note=fine', user="U_X", channel="C_OPS"
        )
        started = await posted(bot)
        assert started.args["channel"] == "C_OPS"
        assert "*say* started by <@U_X>" in started.args["text"]
        result = await bot.slack.result("C_OPS")
        assert result.args["ts"] == "1700000000.000001"  # the same message, edited
        (run,) = bot.command_runs()
        assert f"run {run.id}" in result.args["text"]
        assert "succeeded — exit code 0" in result.args["text"]
        assert "recorded 4 arguments" in json.dumps(result.args["blocks"])
        assert bot.argv(run.id) == ["--title", "Hello world", "--note", "fine"]
        assert run.trigger == "chatops"
        assert run.requested_by == "U_X"
        assert run.params == {"title": "Hello world", "note": "fine"}
        for key in ("requested_at", "dispatched_at", "dispatch_ms"):
            assert key in run.detail, run.detail
        (entry,) = bot.audit()
        assert (entry.actor, entry.via, entry.outcome) == ("U_X", "slack", "ok")
        assert entry.target == "command say"
        assert entry.detail["channel"] == "C_OPS"
        assert entry.detail["run_id"] == run.id
        assert entry.detail["decision"] == "channel C_OPS"
        assert entry.detail["params"] == {"title": "Hello world", "note": "fine"}
        assert len(bot.slack.of("chat.postMessage")) == 1


async def test_a_failed_run_reports_its_exit_code(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        await acked(bot, "/jobdeck", "run failing", user="U_X", channel="C_OPS")
        result = await bot.slack.result("C_OPS")
        assert "failed — exit code 3" in result.args["text"]


async def test_the_commands_own_slash_command(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        await acked(bot, "/say", "title=Hi", user="U_OPS", channel="C_ANYWHERE")
        result = await bot.slack.result("C_ANYWHERE")
        (run,) = bot.command_runs()
        assert f"run {run.id}" in result.args["text"]
        assert bot.argv(run.id) == ["--title", "Hi", "--note", ""]
        assert bot.audit()[0].detail["decision"] == "usergroup S_OPS"


async def test_missing_params_open_a_modal_and_its_submission_runs(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        await acked(bot, "/say", "", user="U_X", channel="C_OPS")
        (opened,) = await bot.slack.wait_for("views.open", lambda s: s.of("views.open"))
        assert opened.args["trigger_id"] == "trigger.0001"
        view = opened.args["view"]
        inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
        assert inputs["title"]["element"]["type"] == "plain_text_input"
        assert inputs["title"]["element"]["max_length"] == 200
        assert inputs["title"]["optional"] is False
        assert inputs["note"]["optional"] is True
        assert bot.command_runs() == []

        bad = bot.send.submission(view, {"title": ""}, user="U_X")
        answer = await bot.send.post(bot.send.interaction_body(bad))
        assert answer.status_code == 200
        assert answer.json() == {
            "response_action": "errors",
            "errors": {"title": "required; give it as key=value"},
        }

        good = bot.send.submission(view, {"title": "From the modal"}, user="U_X")
        answer = await bot.send.post(bot.send.interaction_body(good))
        assert answer.status_code == 200
        assert answer.text == ""
        await bot.slack.result("C_OPS")
        (run,) = bot.command_runs()
        assert bot.argv(run.id) == ["--title", "From the modal", "--note", ""]


async def test_confirm_previews_then_runs_on_a_click_of_run(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        await acked(
            bot,
            "/jobdeck",
            "run push title='Quake M7' url=https://news.example/q",
            user="U_EDITOR",
            channel="C_NEWS",
        )
        preview = await posted(bot)
        text = json.dumps(preview.args["blocks"], ensure_ascii=False)
        assert "Send a breaking-news push" in text
        assert "'Quake M7' https://news.example/q all" in text  # the exact argv
        assert "<@U_EDITOR>" in text
        run_button = [
            e for b in preview.args["blocks"] if b["type"] == "actions" for e in b["elements"]
        ]
        assert [b["action_id"] for b in run_button] == [RUN_ACTION, CANCEL_ACTION]
        assert run_button[0]["style"] == "danger"
        assert bot.command_runs() == []

        preview.args["ts"] = "1700000000.000001"
        outsider = bot.send.click(preview, RUN_ACTION, user="U_NOBODY")
        assert (await bot.send.post(bot.send.interaction_body(outsider))).status_code == 200
        refusal = await reply(bot, 0)
        assert refusal["response_type"] == "ephemeral"
        assert "not allowed" in refusal["text"]
        assert bot.command_runs() == []

        click = bot.send.click(preview, RUN_ACTION, user="U_EDITOR2")
        assert (await bot.send.post(bot.send.interaction_body(click))).status_code == 200
        result = await bot.slack.result("C_NEWS", ts="1700000000.000001")
        (run,) = bot.command_runs()
        assert bot.argv(run.id) == ["Quake M7", "https://news.example/q", "all"]
        assert f"run {run.id}" in result.args["text"]
        outcomes = [(e.actor, e.outcome) for e in reversed(bot.audit())]
        assert outcomes == [("U_NOBODY", "refused"), ("U_EDITOR2", "ok")]


async def test_cancel_says_so_and_runs_nothing(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        await acked(
            bot,
            "/jobdeck",
            "run push title=T url=https://x.example",
            user="U_EDITOR",
            channel="C_N",
        )
        preview = await posted(bot)
        preview.args["ts"] = "1700000000.000001"
        cancel = bot.send.click(preview, CANCEL_ACTION, user="U_EDITOR")
        assert (await bot.send.post(bot.send.interaction_body(cancel))).status_code == 200

        def cancelled(slack: FakeSlack) -> list[Call]:
            return [c for c in slack.of("chat.update") if "cancelled" in str(c.args["text"])]

        (update,) = await bot.slack.wait_for("the preview says cancelled", cancelled)
        assert update.args["ts"] == "1700000000.000001"
        assert "cancelled by <@U_EDITOR>; nothing ran" in update.args["text"]
        late = bot.send.click(preview, RUN_ACTION, user="U_EDITOR")
        assert (await bot.send.post(bot.send.interaction_body(late))).status_code == 200
        assert "already started or cancelled" in (await reply(bot, 0))["text"]
        assert bot.command_runs() == []
        assert [(e.action, e.outcome) for e in bot.audit()] == [("cancel", "ok")]


async def test_a_double_click_starts_one_run(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        await acked(
            bot,
            "/jobdeck",
            "run push title=T url=https://x.example",
            user="U_EDITOR",
            channel="C_N",
        )
        preview = await posted(bot)
        preview.args["ts"] = "1700000000.000001"
        clicks = [bot.send.click(preview, RUN_ACTION, user="U_EDITOR") for _ in range(2)]
        answers = await asyncio.gather(
            *(bot.send.post(bot.send.interaction_body(click)) for click in clicks)
        )
        assert [a.status_code for a in answers] == [200, 200]
        await bot.slack.result("C_N")
        await reply(bot, 0)  # the second click is told it already ran
        assert len(bot.command_runs()) == 1


async def test_a_retried_request_starts_one_run(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        body = bot.send.command_body("/say", "title=once", user="U_X", channel="C_OPS")
        assert (await bot.send.post(body)).status_code == 200
        assert (await bot.send.post(body, retry=1)).status_code == 200
        assert (await bot.send.post(body, retry=2)).status_code == 200
        await bot.slack.result("C_OPS")
        assert len(bot.command_runs()) == 1
        assert len(bot.slack.of("chat.postMessage")) == 1
        assert len(bot.audit()) == 1


async def test_forged_and_stale_requests_get_401_and_run_nothing(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        body = bot.send.command_body("/say", "title=forged", user="U_BOSS", channel="C_OPS")
        forged = await bot.send.post(body, secret="not-the-signing-secret")
        assert forged.status_code == 401
        stale = await bot.send.post(body, timestamp=int(time.time()) - 600)
        assert stale.status_code == 401
        unsigned = await bot.served.client.post("/slack/events", content=body)
        assert unsigned.status_code == 401
        await asyncio.sleep(0)  # nothing was scheduled, so there is nothing to wait for
        assert bot.command_runs() == []
        assert bot.audit() == []
        assert [c.method for c in bot.slack.calls] == []


async def test_slack_needs_no_api_token_where_the_api_does(tmp_path: Path) -> None:
    token = "api-token-for-operators"
    async with bot_server(tmp_path, require_token=True, JOBDECK_API_TOKEN=token) as bot:
        denied = await bot.served.client.post("/api/v1/commands/say/invocations", json={})
        assert denied.status_code == 401
        await acked(bot, "/say", "title=signed", user="U_X", channel="C_OPS")
        await bot.slack.result("C_OPS")
        forged = await bot.send.post(
            bot.send.command_body("/say", "title=x", user="U_X", channel="C_OPS"), secret="x"
        )
        assert forged.status_code == 401
        assert len(bot.command_runs()) == 1
