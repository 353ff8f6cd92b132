"""Messages for a name that is not what the verb needs: what it is instead, or the close one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

# The catalog's sections by the kind of thing they hold.
SECTIONS = {"schedule": "schedules", "worker": "workers", "command": "commands"}


def closest(name: str, known: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_schedule(name: str, catalog: Mapping[str, Any] | None, where: str) -> str:
    """``name`` is no schedule of ``catalog``: say what it is, or suggest the close one."""
    catalog = catalog or {}
    if name in (catalog.get("commands") or {}):
        return f"{name!r} is a command, not a schedule: run it with `jobdeck exec {name}`"
    if name in (catalog.get("workers") or {}):
        return f"{name!r} is a worker, not a schedule: workers run all the time"
    message = f"no schedule named {name!r} in {where}"
    near = closest(name, catalog.get("schedules") or {})
    return message + (f"; did you mean {near!r}?" if near else "")
