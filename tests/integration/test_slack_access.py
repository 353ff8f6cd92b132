"""Deny by default, suspension, and hostile params, through Slack and the API: refusals
are polite, ephemeral and audited, and run nothing; params reach the process as literal
argv elements, which the process itself records."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from jobdeck.control import Control
from tests.integration.test_slack_harness import Bot, FakeSlack, bot_server

pytestmark = pytest.mark.anyio

HOSTILE = [
    "$(touch /tmp/jobdeck-pwned)",
    "`id`",
    "a; rm -rf / ; echo",
    "\"double\" and 'single' quotes",
    "line one\nline two",
    "速報: 地震 🚨 — ünïcödé",
    "{title} %s --help",
    "&<>|*?~",
]


def exists(path: str) -> bool:
    return os.path.exists(path)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def refused(bot: Bot, command: str, text: str, *, user: str, channel: str) -> str:
    answer = await bot.send.command(command, text, user=user, channel=channel)
    assert answer.status_code == 200

    def replied(slack: FakeSlack) -> list[str]:
        return bot.ephemerals()

    (message,) = await bot.slack.wait_for("an ephemeral refusal", replied)
    return str(message)


async def test_an_unauthorized_channel_is_refused_and_audited(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        text = await refused(bot, "/jobdeck", "run failing", user="U_X", channel="C_ELSEWHERE")
        assert text.startswith("Sorry, I cannot run that: you are not allowed to run failing")
        (entry,) = bot.audit()
        assert (entry.actor, entry.via, entry.outcome) == ("U_X", "slack", "refused")
        assert entry.detail["decision"] == "forbidden"
        assert entry.detail["channel"] == "C_ELSEWHERE"
        assert bot.command_runs() == []
        assert bot.slack.of("chat.postMessage") == []


async def test_an_unauthorized_user_is_refused_and_audited(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        text = await refused(bot, "/jobdeck", "run secret", user="U_NOBODY", channel="C_OPS")
        assert "not allowed to run secret" in text
        assert [(e.actor, e.outcome) for e in bot.audit()] == [("U_NOBODY", "refused")]
        assert bot.command_runs() == []


async def test_a_user_outside_the_user_group_is_refused_and_audited(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        text = await refused(
            bot,
            "/jobdeck",
            "run push title=x url=https://x.example",
            user="U_OUTSIDER",
            channel="C_NEWS",
        )
        assert "not allowed to run push" in text
        lookups = bot.slack.of("usergroups.users.list")
        assert [c.args["usergroup"] for c in lookups] == ["S_EDITORS"]
        assert lookups[0].token == "xoxb-test-token"
        assert [(e.actor, e.outcome) for e in bot.audit()] == [("U_OUTSIDER", "refused")]
        assert bot.command_runs() == []
        assert bot.slack.of("chat.postMessage") == []  # no preview either


async def test_bad_params_are_refused_naming_the_param_and_rule(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        text = await refused(
            bot, "/say", f"title={'x' * 201} colour=red", user="U_X", channel="C_OPS"
        )
        assert "please fix these params" in text
        assert "`colour`: no such param" in text
        assert "`title`: longer than 200 characters (201) (max_length: 200)" in text
        (entry,) = bot.audit()
        assert (entry.outcome, entry.detail["decision"]) == ("refused", "invalid")
        assert bot.command_runs() == []


async def test_a_suspended_command_is_refused_with_the_reason(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        app = bot.served.app
        Control(app.store, app.clock, "chief", "cli").suspend("say", "wrong push yesterday")
        text = await refused(bot, "/say", "title=x", user="U_X", channel="C_OPS")
        assert "command say is suspended by chief: wrong push yesterday" in text
        refusals = [e for e in bot.audit() if e.action == "invoke"]
        assert [(e.outcome, e.detail["decision"]) for e in refusals] == [("refused", "suspended")]
        assert bot.command_runs() == []


async def test_hostile_params_from_slack_reach_the_process_literally(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        for index, payload in enumerate(HOSTILE):
            text = f"title={shlex.quote(payload)} note={shlex.quote(payload[::-1])}"
            answer = await bot.send.command("/say", text, user="U_X", channel="C_OPS")
            assert answer.status_code == 200

            def ended(slack: FakeSlack, count: int = index + 1) -> bool:
                results = [c for c in slack.of("chat.update") if " — exit code " in c.args["text"]]
                return len(results) == count

            await bot.slack.wait_for(f"the run with {payload!r}", ended)
        runs = sorted(bot.command_runs(), key=lambda run: run.id)
        assert len(runs) == len(HOSTILE)
        for run, payload in zip(runs, HOSTILE, strict=True):
            assert run.status == "succeeded", run
            assert bot.argv(run.id) == ["--title", payload, "--note", payload[::-1]]
        assert not exists("/tmp/jobdeck-pwned"), "a param was run by a shell"


async def test_hostile_params_from_the_api_reach_the_process_literally(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        for payload in HOSTILE:
            answer = await bot.served.client.post(
                "/api/v1/commands/say/invocations",
                json={"params": {"title": payload, "note": "n"}},
            )
            assert answer.status_code == 201, answer.text
            assert answer.json()["argv"][-4:] == ["--title", payload, "--note", "n"]

        def all_ended(_: FakeSlack) -> bool:
            runs = bot.command_runs()
            return len(runs) == len(HOSTILE) and not any(run.active for run in runs)

        await bot.slack.wait_for("every run to end", all_ended)
        runs = sorted(bot.command_runs(), key=lambda run: run.id)
        assert [run.status for run in runs] == ["succeeded"] * len(HOSTILE)
        recorded = [bot.argv(run.id) for run in runs]
        assert recorded == [["--title", payload, "--note", "n"] for payload in HOSTILE]


async def test_a_command_suspended_while_its_modal_is_open_is_refused(tmp_path: Path) -> None:
    async with bot_server(tmp_path) as bot:
        assert (await bot.send.command("/say", "", user="U_X", channel="C_OPS")).status_code == 200
        (opened,) = await bot.slack.wait_for("views.open", lambda s: s.of("views.open"))
        app = bot.served.app
        Control(app.store, app.clock, "chief", "cli").suspend("say", "quiet hours")
        submitted = bot.send.submission(opened.args["view"], {"title": "late"}, user="U_X")
        assert (await bot.send.post(bot.send.interaction_body(submitted))).status_code == 200

        def replied(slack: FakeSlack) -> list[dict[str, object]]:
            return [c.args for c in slack.of("response_url") if c.args["key"] == "cmd-0001"]

        (reply,) = await bot.slack.wait_for("the refusal on the response URL", replied)
        assert reply["response_type"] == "ephemeral"
        assert "suspended by chief: quiet hours" in str(reply["text"])
        assert bot.command_runs() == []
        await bot.send.command("/jobdeck", "help", user="U_X", channel="C_OPS")
        (shown,) = await bot.slack.wait_for(
            "help",
            lambda s: [c for c in s.of("response_url") if "Commands you may run" in c.args["text"]],
        )
        assert "*say* — Say something in the log — *suspended*: quiet hours" in shown.args["text"]
