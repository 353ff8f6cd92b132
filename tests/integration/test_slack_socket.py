"""The Slack bot in Socket Mode: it asks Slack's Web API for a WebSocket URL, connects
out, acknowledges each envelope on the socket, and answers through the Web API. Slack's
side (the Web API and the socket) is played by local servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from jobdeck.app import Application, Options
from jobdeck.catalog.load import load_catalog_text
from jobdeck.control import Control
from jobdeck.slack import build_slack
from tests.integration.test_api_harness import free_port, stop_runs
from tests.integration.test_slack_harness import (
    BOT_TOKEN,
    CATALOG,
    RECORDER,
    USERGROUPS,
    fake_slack,
)

pytestmark = pytest.mark.anyio

APP_TOKEN = "xapp-1-A1-test"


class SocketPeer:
    """Slack's end of the Socket Mode WebSocket: says hello, sends envelopes, and
    collects the acknowledgements."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.acks: list[dict[str, Any]] = []
        self.connected = asyncio.Event()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}}
        )
        self.connected.set()

        async def send() -> None:
            while True:
                await socket.send_json(await self.outbox.get())

        sender = asyncio.create_task(send())
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self.acks.append(json.loads(message.data))
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return socket


@contextlib.asynccontextmanager
async def socket_peer() -> AsyncIterator[tuple[SocketPeer, str]]:
    peer = SocketPeer()
    app = web.Application()
    app.router.add_get("/socket", peer.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield peer, f"ws://127.0.0.1:{port}/socket"
    finally:
        await runner.cleanup()


async def test_socket_mode_runs_a_slash_command(tmp_path: Path) -> None:
    recorder = tmp_path / "record_argv.py"
    recorder.write_text(RECORDER)
    async with fake_slack(USERGROUPS) as slack, socket_peer() as (peer, ws_url):
        slack.socket_url = ws_url
        environ = {
            "PATH": "/usr/bin:/bin",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_URL": slack.api_url,
        }
        app = Application(
            Options(state_dir=tmp_path / "state", isolation="rlimit", environ=environ)
        )
        loaded = load_catalog_text(
            CATALOG.format(recorder=recorder), str(tmp_path / "jobdeck.yaml")
        )
        Control(app.store, app.clock, "tester", "cli").apply(loaded)
        bot = build_slack(app, environ)
        assert bot is not None
        assert bot.routes() == []  # no signing secret: no unverified HTTP endpoint
        await app.start()
        running = asyncio.create_task(app.run(bot.loops()))
        try:
            await asyncio.wait_for(peer.connected.wait(), 30)
            (opened,) = slack.of("apps.connections.open")
            assert opened.token == APP_TOKEN
            await peer.outbox.put(
                {
                    "envelope_id": "env-1",
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                    "payload": {
                        "team_id": "T1",
                        "channel_id": "C_OPS",
                        "user_id": "U_X",
                        "command": "/say",
                        "text": "title='over the socket'",
                        "response_url": slack.response_url("socket-1"),
                        "trigger_id": "trigger.socket.1",
                        "api_app_id": "A1",
                    },
                }
            )
            result = await slack.result("C_OPS")
            assert "succeeded — exit code 0" in result.args["text"]
            assert [ack["envelope_id"] for ack in peer.acks] == ["env-1"]
            (run,) = app.store.runs.runs(kind="command")
            argv = json.loads((tmp_path / f"argv-{run.id}.json").read_text())
            assert argv == ["--title", "over the socket", "--note", ""]
            assert app.store.audit.audit(1)[0].via == "slack"
            assert all(call.token == BOT_TOKEN for call in slack.of("chat.postMessage"))
        finally:
            await stop_runs(app)
            app.stop()
            with contextlib.suppress(Exception):
                await running
            await bot.aclose()
            await app.aclose()


def test_settings_from_the_environment() -> None:
    from jobdeck.slack import SlackConfigError, SlackSettings

    assert SlackSettings.from_env({}) is None
    assert SlackSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1"}) is None  # notices only
    with pytest.raises(SlackConfigError, match="SLACK_BOT_TOKEN is not"):
        SlackSettings.from_env({"SLACK_SIGNING_SECRET": "s"})
    with pytest.raises(SlackConfigError, match="app-level token"):
        SlackSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"})
    with pytest.raises(SlackConfigError, match="https://"):
        SlackSettings.from_env(
            {"SLACK_BOT_TOKEN": "x", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": "http://e.x"}
        )
    settings = SlackSettings.from_env(
        {"SLACK_BOT_TOKEN": "x", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": "https://p.x/api"}
    )
    assert settings is not None
    assert settings.api_url == "https://p.x/api/"
