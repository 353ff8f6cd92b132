"""What the store tells of concurrency keys: who holds each key and who waits for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class KeyRun:
    """A run that holds a key (``since`` it got it) or waits for it (``since`` it asked)."""

    run_id: int
    kind: str
    job: str
    since: datetime


@dataclass(frozen=True)
class KeyUse:
    """One key: its limit (as its newest claim gave it), its holders and its waiters,
    oldest first (the waiters in the order they get the key)."""

    key: str
    limit: int
    holders: tuple[KeyRun, ...]
    waiters: tuple[KeyRun, ...]
