"""What the server and its timer process say to each other: one JSON object a line.

Instants are whole microseconds since the Unix epoch, so that a slot crosses the pipe
exactly (a rate's slots are multiples of its interval, and slots are the store's keys).

* server to timer, a revision's cadences::

      {"now": US, "triggers": {"NAME": {"cron": "EXPR", "zone": "ZONE"} | {"rate": US}}}

  The timer takes them as :meth:`FireQueue.update` does at ``now``: a new or changed
  cadence counts from ``now``, an unchanged one keeps its next slot.

* timer to server, one schedule's due slots and the instant the timer decided them::

      {"name": "NAME", "slots": [US, ...], "first": US, "count": N, "decided": US}

The server closing the timer's input is the order to stop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jobdeck.cadence import Cadence, CronCadence, RateCadence
from jobdeck.schedule.firequeue import Due

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WireError(ValueError):
    """A line that is not what the other side sends."""


def micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def instant(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def encode_cadences(cadences: Mapping[str, Cadence], now: datetime) -> bytes:
    body: dict[str, dict[str, Any]] = {}
    for name, cadence in cadences.items():
        if isinstance(cadence, CronCadence):
            body[name] = {"cron": cadence.expression, "zone": cadence.zone}
        else:
            body[name] = {"rate": micros(_EPOCH + cadence.interval)}
    return _line({"now": micros(now), "triggers": body})


def decode_cadences(line: bytes) -> tuple[dict[str, Cadence], datetime]:
    message = _object(line)
    try:
        cadences: dict[str, Cadence] = {}
        for name, body in message["triggers"].items():
            if "cron" in body:
                cadences[name] = CronCadence(str(body["cron"]), str(body["zone"]))
            else:
                cadences[name] = RateCadence(timedelta(microseconds=int(body["rate"])))
        return cadences, instant(int(message["now"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WireError(f"not a set of triggers: {exc!r}") from exc


def encode_due(due: Due, decided: datetime) -> bytes:
    return _line(
        {
            "name": due.name,
            "slots": [micros(slot) for slot in due.slots],
            "first": micros(due.first),
            "count": due.count,
            "decided": micros(decided),
        }
    )


def decode_due(line: bytes) -> tuple[Due, datetime]:
    message = _object(line)
    try:
        slots = tuple(instant(int(us)) for us in message["slots"])
        if not slots:
            raise ValueError("no slots")
        first, count = instant(int(message["first"])), int(message["count"])
        return Due(str(message["name"]), slots, first, count), instant(int(message["decided"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not a due schedule: {exc!r}") from exc


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _object(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise WireError(f"not JSON: {line[:80]!r}") from exc
    if not isinstance(message, dict):
        raise WireError(f"not a JSON object: {line[:80]!r}")
    return message
