"""The catalog's alert policy: ``notify_policy`` on schedules, commands and ``defaults``.

A policy decides which of an item's notices reach its ``notify`` targets; the engine
records the ones it holds back all the same (``jobdeck notices``).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from jobdeck.catalog.types import Duration


class NotifyPolicy(BaseModel):
    """When failures are notified: after N consecutive failures, once more on recovery,
    and again at most once per ``renotify`` while the failures go on."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    after: int = Field(1, ge=1, le=1000, description="consecutive failures before the first notice")
    recovery: bool = Field(
        False, description="one notice when the item succeeds again after a notified failure"
    )
    renotify: Duration | None = Field(
        None,
        description="while it keeps failing, at most one notice per this long; "
        "unset: every failure from the N-th on",
    )

    @model_validator(mode="after")
    def _renotify(self) -> NotifyPolicy:
        if self.renotify is not None and self.renotify <= timedelta(0):
            raise PydanticCustomError(
                "catalog",
                "{message}",
                {"message": "must be greater than zero; e.g. 1h", "at": "renotify"},
            )
        return self
