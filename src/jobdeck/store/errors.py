"""What the store raises when a unit of work cannot be done as asked."""

from __future__ import annotations


class StoreError(Exception):
    """A unit of work could not be done as asked."""


class NotFound(StoreError, LookupError):
    """The record asked for does not exist."""


class RevisionConflict(StoreError):
    """Another apply committed the same revision number first."""


class RunAlreadyEnded(StoreError):
    """The run has reached a final status, which nothing changes again.

    Whoever gets this lost a race to record the run's outcome (a second completion, a
    late adoption); the first outcome stands. The transaction is still usable.
    """


class QueueGone(StoreError):
    """A message was written to a queue that no longer exists (deleted by another
    process meanwhile). The transaction is unusable and must be abandoned."""


class Fenced(StoreError):
    """A write that only the leader may make carried a fencing token that is no longer
    the leader's (a newer leader took over, or the lease ran out): nothing was written
    and the unit of work must be abandoned."""

    def __init__(self, node: str, token: int, current: object) -> None:
        super().__init__(f"node {node} (token {token}) is no longer the leader: {current}")
        self.node = node
        self.token = token
