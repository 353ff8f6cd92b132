"""The catalog's alerting: ``notify_policy`` (schedules, commands, ``defaults``) and
``alerts`` (schedules, commands).

A policy decides which of an item's failure notices reach its ``notify`` targets; the
engine records the ones it holds back all the same (``jobdeck notices``). Alerts notice
runs whose duration is unusual, against a fixed threshold or one learned (``auto``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jobdeck.catalog.types import Duration
from jobdeck.units import format_duration, parse_duration


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


def _threshold(value: object) -> timedelta | str:
    if value == "auto" or isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"invalid threshold {value!r}: write auto or a duration such as 45m")
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(
            f"invalid threshold {value!r}: write auto or a duration such as 30s, 15m, 2h"
        ) from None


def _show_threshold(value: timedelta | str) -> str:
    return value if isinstance(value, str) else format_duration(value)


Threshold = Annotated[
    timedelta | Literal["auto"],
    BeforeValidator(_threshold),
    PlainSerializer(_show_threshold, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(auto|([0-9]+(ms|s|m|h|d))+)$",
            "description": "auto (learned from the item's recent successful runs) or a "
            "duration: 30s, 15m, 2h",
        }
    ),
]


class Alerts(BaseModel):
    """Duration alerts: a run still running past ``slow``, a success quicker than
    ``fast``, a slot whose run has not started ``not_started_by`` after its time."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    slow: Threshold | None = Field(
        None, description="notify once while a run is still running past this"
    )
    fast: Threshold | None = Field(None, description="notify when a run succeeds quicker")
    not_started_by: Duration | None = Field(
        None, description="notify when a slot's run has not started this long after its time"
    )

    @model_validator(mode="after")
    def _positive(self) -> Alerts:
        for name in ("slow", "fast", "not_started_by"):
            value = getattr(self, name)
            if isinstance(value, timedelta) and value <= timedelta(0):
                raise PydanticCustomError(
                    "catalog",
                    "{message}",
                    {"message": "must be greater than zero; e.g. 15m", "at": name},
                )
        if (
            isinstance(self.slow, timedelta)
            and isinstance(self.fast, timedelta)
            and self.fast >= self.slow
        ):
            raise PydanticCustomError(
                "catalog",
                "{message}",
                {"message": "must be shorter than slow; lower it", "at": "fast"},
            )
        return self
