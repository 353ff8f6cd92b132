"""Concurrency keys: ``concurrency: {key: NAME, limit: N}`` on schedules and commands.

At most ``limit`` runs hold a key at once, across every item that names it and on every
engine of one store. The model validates one item's field; :func:`key_problems` checks
the catalog as a whole: every item naming one key must give it the same limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from jobdeck.catalog.spec import Spec
from jobdeck.catalog.types import Name

# Sections whose items may name a key (workers are resident: they would hold it forever).
KEY_SECTIONS = ("schedules", "commands")

Point = tuple[int, int]


class Concurrency(Spec):
    """A key shared by the runs of several items: at most ``limit`` of them run at once."""

    key: Name = Field(description="the key's name; every item naming it shares it")
    limit: int = Field(
        1, ge=1, le=10_000, description="how many runs may hold the key at once (default 1)"
    )


def key_problems(
    data: dict[str, Any], where: Callable[[tuple[str, ...]], Point]
) -> list[tuple[Point, str]]:
    """Items that name one key with different limits: each one after the first that set
    the key's limit (in the file's order), reported at its limit (or its key)."""
    found: list[tuple[Point, str, str, int]] = []  # (where, item, key, limit)
    for section in KEY_SECTIONS:
        items = data.get(section)
        if not isinstance(items, dict):
            continue
        for name, spec in items.items():
            field = spec.get("concurrency") if isinstance(spec, dict) else None
            if not isinstance(field, dict):
                continue
            key, limit = field.get("key"), field.get("limit", 1)
            if not isinstance(key, str) or not isinstance(limit, int) or isinstance(limit, bool):
                continue  # the model reports it
            loc = (section, name, "concurrency", "limit" if "limit" in field else "key")
            found.append((where(loc), f"{section}.{name}", key, limit))
    first: dict[str, tuple[str, int, Point]] = {}
    problems: list[tuple[Point, str]] = []
    for point, item, key, limit in sorted(found):
        if key not in first:
            first[key] = (item, limit, point)
            continue
        by, set_to, at = first[key]
        if limit != set_to:
            problems.append(
                (
                    point,
                    f"{item}.concurrency: key '{key}' has limit {limit} here, but {by} "
                    f"(line {at[0]}) set it to {set_to} first; give every item naming "
                    "the key the same limit",
                )
            )
    return problems
