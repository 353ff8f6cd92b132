"""Why the run driver refuses a request, as types: callers tell refusals apart by their
``why``, never by their text (which is for people)."""

from __future__ import annotations

from typing import Literal

from jobdeck.store.records import Suspension

RunRefusedWhy = Literal["unknown", "disabled", "suspended"]
CancelRefusedWhy = Literal["ended", "worker"]


class RunRefused(Exception):
    """A run that cannot start: unknown, disabled or suspended schedule or command;
    ``suspension`` is the one that holds it when it is suspended."""

    def __init__(
        self, why: RunRefusedWhy, message: str, suspension: Suspension | None = None
    ) -> None:
        super().__init__(message)
        self.why: RunRefusedWhy = why
        self.suspension = suspension


class CancelRefused(Exception):
    """A run that cannot be cancelled (it ended already, or it is a worker process);
    nothing was changed."""

    def __init__(self, why: CancelRefusedWhy, message: str) -> None:
        super().__init__(message)
        self.why: CancelRefusedWhy = why


ApprovalRefusedWhy = Literal["unknown", "not_awaiting", "expired", "suspended"]


class ApprovalRefused(Exception):
    """An approve or reject that cannot be applied: no such run, a run that does not
    (or no longer) wait for approval, one whose approval expired, or one another engine
    holds, or whose command is suspended (approve); nothing was changed but an expiry
    that was due."""

    def __init__(self, why: ApprovalRefusedWhy, message: str) -> None:
        super().__init__(message)
        self.why: ApprovalRefusedWhy = why
