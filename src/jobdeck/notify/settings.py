"""How notifications are sent: credentials, endpoints, TLS, timeouts and retries.

Everything comes in through :meth:`NotifySettings.from_env` once, at start, so that a
bad value stops the server with a message instead of failing silently at 3 a.m. when
the first alert is due.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

DEFAULT_SLACK_API_URL = "https://slack.com/api"
LOOPBACK_NAMES = {"localhost"}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``first_delay``, doubling, at most ``max_delay`` between
    ``attempts`` tries in all. A server's Retry-After is honoured up to
    ``max_retry_after``, so a hostile or broken one cannot park a delivery forever."""

    attempts: int = 5
    first_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")
        if self.first_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("retry delays cannot be negative")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return float(min(self.first_delay * self.multiplier ** (retry - 1), self.max_delay))


@dataclass(frozen=True)
class NotifySettings:
    """Explicit configuration of a :class:`~jobdeck.notify.Notifier`.

    ``deadline`` bounds one notice from the moment it is handed over to its last attempt
    at its last target; ``connect_timeout`` and ``read_timeout`` bound each request.
    """

    slack_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    webhook_secret: str | None = None
    ca_file: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 120.0
    max_in_flight: int = 1000  # beyond this a flood of failures is logged, not queued
    user_agent: str = "jobdeck"

    def __post_init__(self) -> None:
        check_endpoint(self.slack_api_url, "SLACK_API_URL")
        if self.deadline <= 0 or self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("notification timeouts and deadline must be positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> NotifySettings:
        """Read ``SLACK_BOT_TOKEN``, ``SLACK_API_URL``, ``JOBDECK_WEBHOOK_SECRET`` and
        ``SSL_CERT_FILE`` (a CA bundle to trust instead of the bundled one, for
        private certificate authorities). Empty values count as unset; change the rest
        with :func:`dataclasses.replace`."""
        return cls(
            slack_token=environ.get("SLACK_BOT_TOKEN") or None,
            slack_api_url=(environ.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL).rstrip("/"),
            webhook_secret=environ.get("JOBDECK_WEBHOOK_SECRET") or None,
            ca_file=environ.get("SSL_CERT_FILE") or None,
        )


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str, what: str) -> None:
    """Refuse any endpoint that would carry alerts or tokens in clear text off the host."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise ValueError(f"{what} {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            f"{what} {url!r} uses plain http; use https:// (http is accepted only for localhost)"
        )


@dataclass(frozen=True)
class Target:
    """A parsed notify target: a Slack channel, or a webhook URL."""

    kind: Literal["slack", "webhook"]
    address: str  # the channel ("#batch-alerts" or an id) or the URL

    @property
    def display(self) -> str:
        """For logs: a webhook URL's path and query often hold its secret, so only the
        scheme and host are shown."""
        if self.kind == "slack":
            return f"slack:{self.address}"
        parts = urlsplit(self.address)
        return f"webhook:{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


def parse_target(text: str) -> Target:
    """``slack:#channel`` or ``webhook:URL``. The catalog validates these already; this
    check is repeated because notices may also come from places that skip the catalog."""
    kind, _, rest = text.partition(":")
    if kind == "slack" and rest.strip():
        return Target("slack", rest.strip())
    if kind == "webhook":
        check_endpoint(rest, "webhook")
        return Target("webhook", rest)
    raise ValueError(f"unknown notify target {text!r}; write 'slack:#channel' or 'webhook:URL'")


def client_ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Verification on, hostnames checked, and nothing older than TLS 1.2: a hard
    requirement for every connection jobdeck makes.

    Without ``ca_file`` the bundle shipped with httpx (certifi) is trusted, as httpx
    itself would; the system store differs between hosts and is missing in slim images.
    """
    if ca_file is None:
        import certifi

        ca_file = certifi.where()
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context
