"""Where the bot meets the server: its HTTP route and its Socket Mode loop.

Bolt is imported only when the environment configures the bot, so a server without
Slack carries none of it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from jobdeck.slack.settings import SlackSettings

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from jobdeck.app import Application, Loop
    from jobdeck.slack.bot import SlackBot

log = logging.getLogger("jobdeck.slack")


def build_slack(app: Application, environ: Mapping[str, str]) -> SlackBot | None:
    """The bot the environment asks for, or None when Slack is not configured."""
    settings = SlackSettings.from_env(environ)
    if settings is None:
        return None
    from jobdeck.slack.bot import SlackBot

    bot = SlackBot(app, settings)
    modes = [m for m, on in (("HTTP", bot.http_mode), ("Socket Mode", bot.socket_mode)) if on]
    log.info("Slack bot on (%s)", " and ".join(modes))
    return bot


def slack_routes(app: Application) -> list[BaseRoute]:
    """The HTTP mode route for the API's router (empty when HTTP mode is off)."""
    bot = build_slack(app, _http_only(app.options.environ))
    return bot.routes() if bot else []


def socket_mode_loops(app: Application) -> dict[str, Loop]:
    """The Socket Mode loop for the server (empty when Socket Mode is off)."""
    environ = {k: v for k, v in app.options.environ.items() if k != "SLACK_SIGNING_SECRET"}
    bot = build_slack(app, environ)
    return bot.loops() if bot else {}


def _http_only(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k != "SLACK_APP_TOKEN"}
