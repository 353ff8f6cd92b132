"""The Slack bot (Bolt): adapters from Slack's requests to the commands' invocation path."""

from jobdeck.slack.bot import (
    SlackBot,
    SlackConfigError,
    SlackSettings,
    build_slack,
    slack_routes,
    socket_mode_loops,
)

__all__ = [
    "SlackBot",
    "SlackConfigError",
    "SlackSettings",
    "build_slack",
    "slack_routes",
    "socket_mode_loops",
]
