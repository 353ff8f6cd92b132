"""The signature of a webhook notice, one function for the engine's notifier and the
notice relay on AWS Lambda (standard library only: the Lambda bundle carries it).

``X-Jobdeck-Signature: sha256=HMAC(secret, "<timestamp>." + body)``. The timestamp is
signed too, so a receiver can refuse a captured request replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime


def sign(secret: str, body: bytes, now: datetime) -> dict[str, str]:
    """The two headers that sign ``body`` at ``now`` with ``secret``."""
    timestamp = str(int(now.timestamp()))
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return {"X-Jobdeck-Timestamp": timestamp, "X-Jobdeck-Signature": f"sha256={digest.hexdigest()}"}
