"""Failure notifications: Slack messages and webhooks about runs that ended badly.

The engine builds a :class:`RunNotice` and hands it to :meth:`Notifier.notify` with the
job's notify targets; delivery happens in the background, retried and time-bounded.
"""

from jobdeck.notify.notice import RunNotice, tail_lines, webhook_payload
from jobdeck.notify.notifier import Notifier
from jobdeck.notify.settings import NotifySettings, RetryPolicy, client_ssl_context

__all__ = [
    "Notifier",
    "NotifySettings",
    "RetryPolicy",
    "RunNotice",
    "client_ssl_context",
    "tail_lines",
    "webhook_payload",
]
