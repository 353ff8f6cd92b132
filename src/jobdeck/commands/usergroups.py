"""Membership of chat user groups, looked up on demand and cached for a short time.

A lookup is the chat service's (``usergroups.users.list``), passed in as ``fetch``;
the cache only remembers answers, for ``ttl``, on the injected clock, so that a change
of membership takes effect within the TTL without a lookup per request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobdeck.clock import Clock

log = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(minutes=2)

Fetch = Callable[[str], Awaitable[Collection[str]]]


@dataclass(frozen=True)
class _Entry:
    fetched_at: datetime
    members: frozenset[str]


class UserGroups:
    def __init__(self, fetch: Fetch, clock: Clock, ttl: timedelta = DEFAULT_TTL) -> None:
        self.fetch = fetch
        self.clock = clock
        self.ttl = ttl
        self._cache: dict[str, _Entry] = {}

    async def members(self, group: str) -> frozenset[str]:
        now = self.clock.now()
        entry = self._cache.get(group)
        if entry is not None and fresh(entry.fetched_at, now, self.ttl):
            return entry.members
        members = frozenset(await self.fetch(group))
        self._cache[group] = _Entry(now, members)
        return members

    async def groups_of(self, user: str, groups: Collection[str]) -> set[str]:
        """The groups among ``groups`` that ``user`` belongs to. A group whose lookup
        fails counts as not containing the user (deny by default), and is not cached."""
        found: set[str] = set()
        for group in groups:
            try:
                members = await self.members(group)
            except Exception as exc:  # any failure of the lookup must deny, not crash
                log.warning("cannot list the members of user group %s: %s", group, exc)
                continue
            if user in members:
                found.add(group)
        return found


def fresh(fetched_at: datetime, now: datetime, ttl: timedelta) -> bool:
    return now - fetched_at < ttl
