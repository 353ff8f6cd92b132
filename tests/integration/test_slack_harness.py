"""Slack at the wire, for the bot's tests: a local HTTP server that plays Slack's Web
API and response URLs (recording every call), and requests signed exactly as Slack
signs them (v0: HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from jobdeck.store.records import AuditEntry, Run
from tests.integration.test_api_harness import Served, free_port, serving

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token"
DEADLINE = 30.0


@dataclass
class Call:
    method: str  # a Web API method ("chat.update"), or "response_url"
    args: dict[str, Any]
    token: str | None = None


@dataclass
class FakeSlack:
    """Answers like Slack's Web API; records each call in order."""

    usergroups: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    socket_url: str | None = None  # what apps.connections.open hands out (Socket Mode)
    _ts: int = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/response/{key}", self._response, methods=["POST"]),
            ]
        )

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, key: str) -> str:
        return f"{self.url}/response/{key}"

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        args: dict[str, Any] = dict(request.query_params)
        raw = await request.body()
        if raw:
            if request.headers.get("content-type", "").startswith("application/json"):
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw.decode()))
        token = request.headers.get("authorization", "").removeprefix("Bearer ") or None
        self.calls.append(Call(method, args, token))
        return JSONResponse(self._answer(method, args))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open" and self.socket_url:
            return {"ok": True, "url": self.socket_url}
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1"}
        if method == "chat.postMessage":
            self._ts += 1
            return {"ok": True, "channel": args.get("channel"), "ts": f"1700000000.{self._ts:06d}"}
        if method == "chat.update":
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": "1700000000.999999"}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V0001", **dict(args.get("view") or {})}}
        if method == "usergroups.users.list":
            group = str(args.get("usergroup"))
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.usergroups[group]}
        return {"ok": False, "error": "unknown_method"}

    async def _response(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        self.calls.append(Call("response_url", {"key": request.path_params["key"], **body}))
        return PlainTextResponse("ok")

    def of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def wait_for(
        self, what: str, condition: Callable[[FakeSlack], Any], within: float = DEADLINE
    ) -> Any:
        deadline = time.monotonic() + within
        while True:
            found = condition(self)
            if found:
                return found
            if time.monotonic() > deadline:
                shown = "\n".join(f"  {c.method} {c.args}" for c in self.calls)
                raise AssertionError(f"timed out waiting for {what}; calls:\n{shown}")
            await asyncio.sleep(0.05)

    async def result(self, channel: str, ts: str | None = None) -> Call:
        """The chat.update that carries a run's result in ``channel``."""

        def ended(slack: FakeSlack) -> Call | None:
            for call in slack.of("chat.update"):
                if call.args.get("channel") != channel or (ts and call.args.get("ts") != ts):
                    continue
                if " — exit code " in str(call.args.get("text")):
                    return call
            return None

        found: Call = await self.wait_for(f"a result in {channel}", ended)
        return found


@contextlib.asynccontextmanager
async def fake_slack(usergroups: dict[str, list[str]] | None = None) -> AsyncIterator[FakeSlack]:
    slack = FakeSlack(usergroups=dict(usergroups or {}))
    port = free_port()
    config = uvicorn.Config(
        slack.app(), host="127.0.0.1", port=port, log_config=None, lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    slack.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + DEADLINE
    while not server.started:
        assert not task.done(), "the fake Slack server did not start"
        assert time.monotonic() < deadline, "the fake Slack server did not start in time"
        await asyncio.sleep(0.02)
    try:
        yield slack
    finally:
        server.should_exit = True
        await task


def slack_environ(slack: FakeSlack, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        **extra,
    }


def signature(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackSender:
    """Sends what Slack would send to the bot's request URL, signed."""

    def __init__(self, client: httpx.AsyncClient, slack: FakeSlack) -> None:
        self.client = client
        self.slack = slack
        self.count = 0

    def _next(self) -> str:
        self.count += 1
        return f"{self.count:04d}"

    async def post(
        self,
        body: str,
        *,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        retry: int | None = None,
    ) -> httpx.Response:
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature(body, ts, secret),
        }
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return await self.client.post("/slack/events", content=body, headers=headers)

    def command_body(
        self, command: str, text: str, *, user: str, channel: str, trigger: str | None = None
    ) -> str:
        key = trigger or self._next()
        return urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": "T1",
                "team_domain": "newsroom",
                "channel_id": channel,
                "channel_name": "editorial",
                "user_id": user,
                "user_name": user.lower(),
                "command": command,
                "text": text,
                "api_app_id": "A1",
                "is_enterprise_install": "false",
                "response_url": self.slack.response_url(f"cmd-{key}"),
                "trigger_id": f"trigger.{key}",
            }
        )

    async def command(self, command: str, text: str, *, user: str, channel: str) -> httpx.Response:
        return await self.post(self.command_body(command, text, user=user, channel=channel))

    def interaction_body(self, payload: dict[str, Any]) -> str:
        return urlencode({"payload": json.dumps(payload)})

    def click(self, preview: Call, action_id: str, *, user: str) -> dict[str, Any]:
        """The block_actions payload Slack sends when ``user`` clicks a preview's button."""
        key = self._next()
        buttons = [
            element
            for block in preview.args["blocks"]
            if block["type"] == "actions"
            for element in block["elements"]
        ]
        button = next(b for b in buttons if b["action_id"] == action_id)
        channel = preview.args["channel"]
        ts = preview.args["ts"]
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": f"trigger.{key}",
            "team": {"id": "T1", "domain": "newsroom"},
            "channel": {"id": channel, "name": "editorial"},
            "message": {"type": "message", "ts": ts, "text": preview.args["text"]},
            "response_url": self.slack.response_url(f"click-{key}"),
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": "jobdeck_confirm",
                    "text": button["text"],
                    "value": button["value"],
                    "style": button.get("style"),
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    def submission(
        self, view: dict[str, Any], values: dict[str, Any], *, user: str
    ) -> dict[str, Any]:
        """The view_submission payload for the modal ``view`` filled with ``values``
        (a str for text inputs; ("select", value) for a select)."""
        key = self._next()
        state: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, tuple):
                option = {"text": {"type": "plain_text", "text": value[1]}, "value": value[1]}
                state[name] = {"value": {"type": "static_select", "selected_option": option}}
            else:
                state[name] = {"value": {"type": "plain_text_input", "value": value}}
        return {
            "type": "view_submission",
            "team": {"id": "T1", "domain": "newsroom"},
            "user": {"id": user, "username": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy-verification-token",
            "trigger_id": f"trigger.{key}",
            "view": {
                "id": "V0001",
                "team_id": "T1",
                "type": "modal",
                "callback_id": view["callback_id"],
                "private_metadata": view["private_metadata"],
                "blocks": view["blocks"],
                "state": {"values": state},
                "hash": f"hash.{key}",
            },
        }


RECORDER = """\
import json, os, sys
# The process itself records what it received: its argv, element by element.
folder = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(folder, "argv-%s.json" % os.environ["JOBDECK_RUN_ID"])
with open(out, "w", encoding="utf-8") as f:
    json.dump(sys.argv[1:], f, ensure_ascii=False)
print("recorded", len(sys.argv) - 1, "arguments")
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
"""

CATALOG = """\
version: 1
project: slacktest
commands:
  say:
    description: Say something in the log
    command: ["python3", "{recorder}", "--title", "{{title}}", "--note", "{{note}}"]
    params:
      title: {{type: string, required: true, max_length: 200}}
      note: {{type: string, max_length: 200}}
    timeout: 60s
    allow: {{channels: [C_OPS], users: [U_BOSS], usergroups: [S_OPS]}}
    slash: /say
  push:
    description: Send a breaking-news push
    command: ["python3", "{recorder}", "{{title}}", "{{url}}", "{{audience}}"]
    params:
      title: {{type: string, required: true, max_length: 120}}
      url: {{type: url, required: true}}
      audience: {{type: choice, choices: [all, ios, android], default: all}}
    confirm: true
    timeout: 60s
    allow: {{usergroups: [S_EDITORS]}}
  secret:
    command: ["python3", "{recorder}"]
    allow: {{users: [U_BOSS]}}
  failing:
    command: ["python3", "{recorder}"]
    env: {{EXIT_CODE: "3"}}
    allow: {{channels: [C_OPS]}}
"""

USERGROUPS = {"S_EDITORS": ["U_EDITOR", "U_EDITOR2"], "S_OPS": ["U_OPS"]}


@dataclass
class Bot:
    served: Served
    slack: FakeSlack
    send: SlackSender
    folder: Path

    def argv(self, run_id: int) -> list[str]:
        found: list[str] = json.loads((self.folder / f"argv-{run_id}.json").read_text("utf-8"))
        return found

    def command_runs(self) -> list[Run]:
        return self.served.app.store.runs.runs(kind="command")

    def audit(self) -> list[AuditEntry]:
        return [
            e for e in self.served.app.store.audit.audit(200) if e.action in ("invoke", "cancel")
        ]

    def ephemerals(self) -> list[str]:
        return [
            str(call.args.get("text"))
            for call in self.slack.calls
            if call.method == "chat.postEphemeral"
            or (call.method == "response_url" and call.args.get("response_type") == "ephemeral")
        ]


@contextlib.asynccontextmanager
async def bot_server(
    tmp_path: Path, *, require_token: bool | None = None, **environ: str
) -> AsyncIterator[Bot]:
    recorder = tmp_path / "record_argv.py"
    recorder.write_text(RECORDER)
    catalog = CATALOG.format(recorder=recorder)
    async with contextlib.AsyncExitStack() as stack:
        slack = await stack.enter_async_context(fake_slack(USERGROUPS))
        environment = slack_environ(slack, **environ)
        served = await stack.enter_async_context(
            serving(tmp_path, catalog, environ=environment, require_token=require_token)
        )
        yield Bot(served, slack, SlackSender(served.client, slack), tmp_path)
