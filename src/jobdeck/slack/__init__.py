"""The Slack bot (Bolt): adapters from Slack's requests to the commands' invocation path.

Importing this package does not import Bolt; :mod:`jobdeck.slack.bot` does, and only a
configured bot loads it.
"""

from jobdeck.slack.mount import build_slack, slack_routes, socket_mode_loops
from jobdeck.slack.settings import SlackConfigError, SlackSettings

__all__ = [
    "SlackConfigError",
    "SlackSettings",
    "build_slack",
    "slack_routes",
    "socket_mode_loops",
]
