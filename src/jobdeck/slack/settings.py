"""The Slack bot's settings, read from the environment.

Kept apart from the bot so that a server without Slack never imports Bolt (about 15 MB
of resident memory for nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jobdeck.notify.settings import check_endpoint

DEFAULT_API_URL = "https://slack.com/api/"


class SlackConfigError(ValueError):
    """The Slack settings in the environment do not make a working bot."""


@dataclass(frozen=True)
class SlackSettings:
    bot_token: str
    signing_secret: str | None = None
    app_token: str | None = None
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SlackSettings | None:
        """None when the bot is not configured (a bot token alone only sends notices)."""
        token = environ.get("SLACK_BOT_TOKEN", "").strip()
        secret = environ.get("SLACK_SIGNING_SECRET", "").strip() or None
        app_token = environ.get("SLACK_APP_TOKEN", "").strip() or None
        if secret is None and app_token is None:
            return None
        if not token:
            set_ = "SLACK_SIGNING_SECRET" if secret else "SLACK_APP_TOKEN"
            raise SlackConfigError(
                f"{set_} is set but SLACK_BOT_TOKEN is not: the bot needs its xoxb- token "
                "to answer; set it, or unset the other to run without the bot"
            )
        if app_token is not None and not app_token.startswith("xapp-"):
            raise SlackConfigError(
                "SLACK_APP_TOKEN must be an app-level token (xapp-...) with the "
                "connections:write scope, for Socket Mode"
            )
        api_url = environ.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
        try:
            # Parsed, not compared by prefix: "http://localhost@evil.example/" names the
            # host evil.example, and the bot token would travel there in clear.
            check_endpoint(api_url, "SLACK_API_URL")
        except ValueError as exc:
            raise SlackConfigError(f"{exc} (plain http only on loopback)") from None
        return cls(token, secret, app_token, api_url.rstrip("/") + "/")
