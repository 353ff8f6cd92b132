"""What one delivery attempt came to, and which answers are worth another try."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Attempt:
    """The result of one request: delivered, worth retrying (maybe after a delay the
    server asked for), or final."""

    delivered: bool
    retryable: bool = False
    retry_after: float | None = None
    detail: str = ""


DELIVERED = Attempt(delivered=True)


def final(detail: str) -> Attempt:
    return Attempt(delivered=False, retryable=False, detail=detail)


def retry(detail: str, after: float | None = None) -> Attempt:
    return Attempt(delivered=False, retryable=True, retry_after=after, detail=detail)


def http_attempt(status: int, retry_after: float | None) -> Attempt:
    """A webhook's answer: 2xx delivered; 429 and 5xx are the receiver's temporary
    trouble; any other 4xx (and a redirect, which is not followed so that an alert can
    never be bounced to plain http) would fail the same way again."""
    if 200 <= status < 300:
        return DELIVERED
    if status == 429:
        return retry("HTTP 429 Too Many Requests", retry_after)
    if status >= 500:
        return retry(f"HTTP {status}", retry_after)
    return final(f"HTTP {status}")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)
