"""Concurrency keys in the dispatcher: a run whose item names ``concurrency: {key,
limit}`` starts only once it holds the key.

The claim is the store's (:meth:`~jobdeck.store.ports.Runs.claim_concurrency`), in its
own transaction just before the launch, so that engines sharing a store share the key:
at most ``limit`` active runs hold it, and the others wait in the order of their ids
(oldest request first, across the items naming the key), ``pending`` with reason
``concurrency``. A run asks for the key only once nothing else holds it back (backoff or
jitter, its item's overlap rule, room in its pool): overlap is per item and decided
first; the key is across items. Every end of a run releases its key (the store counts
only active runs). A waiter whose item's ``timeout`` passes while it waits for the key
ends ``timed_out`` with reason ``concurrency``, and its place goes to the next.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jobdeck.catalog.concurrency import Concurrency
from jobdeck.store import Store
from jobdeck.workflow.state import Spec
from jobdeck.workflow.waiting import Waiting

# How often an engine asks again for a key that it waits for: a key released by another
# engine is seen this late at most (one released here is seen at once).
POLL = timedelta(seconds=1)
REASON = "concurrency"


def waits_for(key: str) -> str:
    """What a run that waits for ``key`` shows in its ``waiting`` event."""
    return f"concurrency key {key}"


class KeyClaims:
    """The claims of one pump: a key refused to a run is not asked for again, in the same
    pump, by a newer run that already waits for it (it would be refused too)."""

    def __init__(self, store: Store, now: datetime) -> None:
        self.store = store
        self.now = now
        self.refused: set[str] = set()

    def holds(self, wait: Waiting, spec: Spec) -> bool:
        """True when the run may start as far as keys go (it names none, or holds its)."""
        rule: Concurrency | None = spec.concurrency
        if rule is None:
            return True
        if rule.key in self.refused and wait.shown == waits_for(rule.key):
            return False
        with self.store.transaction() as tx:
            held = tx.runs.claim_concurrency(wait.run.id, rule.key, rule.limit, at=self.now)
            if held:
                tx.runs.add_event(
                    wait.run.id,
                    at=self.now,
                    type="concurrency",
                    detail={"key": rule.key, "limit": rule.limit},
                )
        if not held:
            self.refused.add(rule.key)
        return held


def waited_too_long(wait: Waiting, spec: Spec, now: datetime) -> bool:
    """A run waiting for a key past its item's timeout (counted from its request)."""
    return now - wait.run.created_at >= spec.timeout
