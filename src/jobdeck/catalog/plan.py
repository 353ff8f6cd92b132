"""Plan: what an apply would change, Terraform style. Pure: catalog x applied state -> plan.

Both sides are *effective* catalogs in their JSON form (``Catalog.model_dump(mode="json")``
after defaults are applied), so a change to ``defaults`` shows up on every item it
reaches, which is what the reviewer needs to see.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from jobdeck.catalog.model import SECTIONS, Command, Pool, Queue, Schedule, Worker
from jobdeck.catalog.moves import Moves, timing_moves

Action = Literal["add", "change", "remove"]
SYMBOLS: dict[Action, str] = {"add": "+", "change": "~", "remove": "-"}
_TOP_LEVEL = ("project", "timezone")


class Suspension(Protocol):
    """What a plan shows of an item's suspension (the store's record fits): the catalog
    reads it, and knows nothing of where it is kept."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def created_by(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def until(self) -> datetime | None: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def ended_by(self) -> str | None: ...
    @property
    def catch_up(self) -> bool: ...


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class Change:
    action: Action
    kind: str
    name: str
    diff: tuple[FieldChange, ...] = ()
    suspension: Suspension | None = None  # the item's active suspension, if any
    # A schedule whose timing changes: its fires moved. Not part of what an apply
    # compares with the plan shown (they follow the clock, not the applied state).
    moves: Moves | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "diff": {c.path: {"old": c.old, "new": c.new} for c in self.diff},
        }
        if self.moves is not None:
            shown["moves"] = self.moves.to_json()
        return shown


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    suspensions: tuple[Suspension, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.changes

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action == action)

    def summary(self) -> str:
        return (
            f"Plan: {self.count('add')} to add, {self.count('change')} to change, "
            f"{self.count('remove')} to remove."
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [change.to_json() for change in self.changes],
            "suspensions": [suspension_json(s) for s in self.suspensions],
        }


def make_plan(
    catalog: dict[str, Any],
    applied: dict[str, Any] | None,
    suspensions: Sequence[Suspension] = (),
    now: datetime | None = None,
) -> Plan:
    """Compare the ``catalog`` file with the ``applied`` revision (None: nothing applied).
    With ``now``, a schedule whose timing changes shows its next fires after ``now``
    before and after the change."""
    before = applied or {}
    suspended = {(s.kind, s.name): s for s in suspensions}
    changes: list[Change] = []
    top = [
        FieldChange(key, before.get(key), catalog.get(key))
        for key in _TOP_LEVEL
        if applied is not None and before.get(key) != catalog.get(key)
    ]
    if top:
        changes.append(Change("change", "project", str(catalog.get("project")), tuple(top)))
    for kind, section in SECTIONS.items():
        old_items: dict[str, Any] = before.get(section) or {}
        new_items: dict[str, Any] = catalog.get(section) or {}
        for name in sorted(old_items.keys() | new_items.keys()):
            old, new = old_items.get(name), new_items.get(name)
            status = suspended.get((kind, name))
            if old is None:
                diff = tuple(FieldChange(p, None, v) for p, v in _flatten(new) if _shown(v))
                changes.append(Change("add", kind, name, diff, status))
            elif new is None:
                diff = tuple(FieldChange(p, v, None) for p, v in _flatten(old) if _shown(v))
                changes.append(Change("remove", kind, name, diff, status))
            else:
                diff = _diff(_with_new_defaults(section, old, new), new)
                moves = timing_moves(old, new, now) if kind == "schedule" and now else None
                if diff:
                    changes.append(Change("change", kind, name, diff, status, moves))
    return Plan(tuple(changes), tuple(suspensions))


_ITEM_MODELS: dict[str, type[BaseModel]] = {
    "schedules": Schedule,
    "workers": Worker,
    "commands": Command,
    "queues": Queue,
    "pools": Pool,
}


def _with_new_defaults(section: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` as the current model reads it: a revision applied before a field existed
    has the field's default (a mapping such as ``notify_policy``, a flag, a number), so an
    upgrade alone shows no change."""
    model = _ITEM_MODELS.get(section)
    if model is None:
        return old
    filled = dict(old)
    for key in new.keys() - old.keys():
        field = model.model_fields.get(key)
        default = None if field is None else field.default
        if isinstance(default, BaseModel):
            filled[key] = default.model_dump(mode="json")
        elif isinstance(default, bool | int | str):
            filled[key] = default
    return filled


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        flat: list[tuple[str, Any]] = []
        for key in value:
            flat.extend(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return [(prefix, value)]


def _diff(old: dict[str, Any], new: dict[str, Any]) -> tuple[FieldChange, ...]:
    before, after = dict(_flatten(old)), dict(_flatten(new))
    return tuple(
        FieldChange(path, before.get(path), after.get(path))
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    )


def _shown(value: Any) -> bool:
    return value not in (None, "", [], {})


def suspension_json(s: Suspension) -> dict[str, Any]:
    return {
        "id": s.id,
        "kind": s.kind,
        "name": s.name,
        "reason": s.reason,
        "created_by": s.created_by,
        "created_at": _iso(s.created_at),
        "until": _iso(s.until),
        "ended_at": _iso(s.ended_at),
        "ended_by": s.ended_by,
        "catch_up": s.catch_up,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def render_plan(plan: Plan, *, against: str) -> str:
    """The human form of a plan, ending with the ``Plan: N to add, ...`` line."""
    lines = [f"Comparing the catalog with {against}.", ""]
    if plan.empty:
        lines.append("No changes. What runs already matches the catalog.")
    for change in plan.changes:
        lines.append(f"  {SYMBOLS[change.action]} {change.kind} {change.name}")
        for item in change.diff:
            if change.action == "change":
                lines.append(f"      {item.path}: {_value(item.old)} -> {_value(item.new)}")
            else:
                shown = item.new if change.action == "add" else item.old
                lines.append(f"      {item.path}: {_value(shown)}")
        if change.moves is not None:
            lines.extend(f"      {line}" for line in change.moves.lines())
        if change.suspension is not None:
            note = {
                "add": "it comes back suspended",
                "change": "it stays suspended",
                "remove": "the suspension stays recorded and applies again if it returns",
            }[change.action]
            lines.append(f"      ! suspended ({change.suspension.reason}): {note}")
    lines.append("")
    if plan.suspensions:
        lines.append("Active suspensions (no apply clears them; `jobdeck resume NAME` does):")
        for s in plan.suspensions:
            until = f", until {_iso(s.until)}" if s.until else ""
            lines.append(
                f"  ! {s.kind} {s.name}: {s.reason!r} by {s.created_by} "
                f"since {_iso(s.created_at)}{until}"
            )
        lines.append("")
    lines.append(plan.summary())
    return "\n".join(lines)


def _value(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)
