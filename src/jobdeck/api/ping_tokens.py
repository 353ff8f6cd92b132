"""Monitors' ping tokens: derived, never stored.

A monitor's token is ``HMAC-SHA256(JOBDECK_PING_KEY, "jobdeck-ping:" + name)`` (its
first 24 bytes, URL-safe base64): the catalog holds no secret, nothing is written to
disk, and every process that has the key (the server checking a ping, ``jobdeck
monitors`` printing the URLs) derives the same token. Without the key, every ping is
refused (deny by default). Rotation: set the new key as ``JOBDECK_PING_KEY`` and the old
one as ``JOBDECK_PING_KEY_PREVIOUS``, restart the server, update the crontab lines with
the URLs that ``jobdeck monitors`` prints, then drop the previous key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

PING_KEY_ENV = "JOBDECK_PING_KEY"
PREVIOUS_KEY_ENV = "JOBDECK_PING_KEY_PREVIOUS"
MIN_KEY_LENGTH = 16
KEY_HINT = (
    f"set {PING_KEY_ENV} (at least {MIN_KEY_LENGTH} characters) in the environment of "
    "`jobdeck serve` and of `jobdeck monitors`, e.g. to the output of "
    "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
)


def ping_keys(environ: Mapping[str, str]) -> list[str]:
    """The keys pings are checked against: the current one, then the previous one (during
    a rotation); none when the current key is unset or too short."""
    current = environ.get(PING_KEY_ENV, "").strip()
    if len(current) < MIN_KEY_LENGTH:
        return []
    previous = environ.get(PREVIOUS_KEY_ENV, "").strip()
    return [current, *([previous] if len(previous) >= MIN_KEY_LENGTH else [])]


def token_for(key: str, monitor: str) -> str:
    digest = hmac.new(key.encode(), f"jobdeck-ping:{monitor}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def token_valid(keys: list[str], monitor: str, given: str) -> bool:
    """Whether ``given`` is the monitor's token under one of ``keys`` (constant time)."""
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(token_for(key, monitor).encode(), given.encode())
    return ok
