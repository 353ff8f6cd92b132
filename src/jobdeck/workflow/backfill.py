"""Backfill: one run per slot of a schedule in a range of the past, with the slot's time.

``jobdeck backfill NAME --from ISO --to ISO`` (and ``POST /api/v1/schedules/{name}/
backfill``) records, in one transaction, a run of trigger ``backfill`` for each slot of
the schedule's cadence in ``[from, to]``, oldest first, with ``scheduled_for`` (and so
``JOBDECK_SCHEDULED_FOR``) its slot. The runs queue behind each other, as a catch-up's
do: none is skipped or cancelled for another of its backfill, while the runs from before
meet the schedule's own overlap policy.

"A slot that already has a run" is a slot claimed in the store (the claim that makes a
timed fire unique, see :meth:`jobdeck.store.ports.Runs.claim_fire`): a backfill claims
every free slot it runs, so that neither a timed fire, a catch-up nor a second backfill
(on this engine or another) runs it again; a claimed slot is left alone unless
``rerun``, which records a new run of it all the same.

The slots are computed here, purely, from the schedule and ``now``; the driver records
the runs (:meth:`RunDriver.decide_slot`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from jobdeck.cadence import is_slot, next_fires, slots_in
from jobdeck.catalog.model import Schedule, cadence_for
from jobdeck.store import Tx
from jobdeck.store.records import Run, RunPlan
from jobdeck.workflow.driver import RunDriver
from jobdeck.workflow.refusals import RunRefused

# One backfill is one transaction and one request: a cap keeps the store's write lock,
# the answer and the queue of waiting runs short whatever range is asked for. A longer
# range is several calls (each resumes where the last ended: claimed slots are kept).
MAX_SLOTS = 1000
CAP_WHY = (
    f"a backfill records at most {MAX_SLOTS:,} runs, in one transaction, so that it holds "
    "the store's write lock and the queue of waiting runs for a bounded time; split the "
    "range into several calls (slots already backfilled are left alone)"
)

Action = Literal["run", "rerun", "keep"]


def iso(moment: datetime) -> str:
    """An instant in UTC as people and the API write it: ``2026-12-01T09:00:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class SlotError(ValueError):
    """A range or a slot that cannot be run (the message says why and what to do)."""


@dataclass
class SlotPlan:
    """One slot of a backfill: what was (or would be) done, and its run."""

    slot: datetime
    action: Action
    existing_run: int | None = None  # the run that claimed it before
    claimed: bool = False  # someone claimed it before
    run: Run | None = None

    def json(self, run_json: Callable[[Run], dict[str, Any]]) -> dict[str, Any]:
        """Times as datetimes: the caller's encoder spells them."""
        return {
            "slot": self.slot,
            "action": self.action,
            "existing_run": self.existing_run,
            "run": None if self.run is None else run_json(self.run),
        }


@dataclass
class Backfill:
    """What a backfill did (or, ``dry_run``, would do)."""

    schedule: str
    start: datetime
    end: datetime
    rerun: bool
    dry_run: bool
    slots: list[SlotPlan] = field(default_factory=list)

    @property
    def runs(self) -> list[Run]:
        return [s.run for s in self.slots if s.run is not None]

    @property
    def kept(self) -> int:
        return sum(1 for s in self.slots if s.action == "keep")

    def audit_detail(self) -> dict[str, Any]:
        return {
            "from": iso(self.start),
            "to": iso(self.end),
            "rerun": self.rerun,
            "slots": len(self.slots),
            "runs": [r.id for r in self.runs],
            "kept": self.kept,
        }

    def json(self, run_json: Callable[[Run], dict[str, Any]]) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "from": self.start,
            "to": self.end,
            "dry_run": self.dry_run,
            "rerun": self.rerun,
            "to_run": sum(1 for s in self.slots if s.action != "keep"),
            "kept": self.kept,
            "slots": [s.json(run_json) for s in self.slots],
        }


def backfill_slots(spec: Schedule, start: datetime, end: datetime, now: datetime) -> list[datetime]:
    """The slots of ``spec`` in ``[start, end]``, oldest first; :class:`SlotError` for a
    range that is backwards, reaches into the future, or holds more than ``MAX_SLOTS``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise SlotError("from and to need a UTC offset or Z, e.g. 2026-12-01T00:00:00Z")
    if start > end:
        raise SlotError(f"from ({iso(start)}) is after to ({iso(end)}); swap them")
    if end > now:
        raise SlotError(
            f"to ({iso(end)}) is in the future (now is {iso(now)}): a backfill runs past "
            "slots only; the scheduler fires the others"
        )
    slots = slots_in(cadence_for(spec), start, end, MAX_SLOTS)
    if len(slots) > MAX_SLOTS:
        raise SlotError(
            f"{iso(start)} .. {iso(end)} holds more than {MAX_SLOTS:,} slots "
            f"(slot {MAX_SLOTS + 1:,} is {iso(slots[-1])}): {CAP_WHY}"
        )
    return slots


def check_slot(spec: Schedule, slot: datetime, now: datetime) -> None:
    """A slot to re-run must be one of the schedule's instants, and past."""
    if slot.tzinfo is None:
        raise SlotError("slot needs a UTC offset or Z, e.g. 2026-12-01T09:00:00Z")
    if slot > now:
        raise SlotError(
            f"slot {iso(slot)} is in the future (now is {iso(now)}): "
            "the scheduler fires it; run it now without --slot"
        )
    cadence = cadence_for(spec)
    if not is_slot(cadence, slot):
        following = next_fires(cadence, slot, 1)
        hint = f"; the next slot after it is {iso(following[0])}" if following else ""
        raise SlotError(f"{iso(slot)} is not a slot of the schedule's cadence{hint}")


def backfill(
    driver: RunDriver,
    name: str,
    start: datetime,
    end: datetime,
    *,
    rerun: bool = False,
    dry_run: bool = False,
    requested_by: str | None = None,
    audit: Callable[[Tx, Backfill], None] | None = None,
) -> Backfill:
    """Backfill ``name`` over ``[start, end]`` (see the module). Raises
    :class:`RunRefused` (unknown, disabled, suspended) or :class:`SlotError`, having
    changed nothing; ``audit`` records the request in the same transaction."""
    spec = driver.schedule(name)
    if spec is None:
        raise RunRefused("unknown", f"no schedule named {name!r} in the applied revision")
    if not spec.enabled:
        raise RunRefused("disabled", f"schedule {name} is disabled (enabled: false in the catalog)")
    now = driver.clock.now()
    slots = backfill_slots(spec, start, end, now)
    done = Backfill(name, start, end, rerun, dry_run)
    if dry_run:
        claimed = driver.store.runs.claimed_fires(name, start, end) if slots else {}
        for slot in slots:
            taken = slot in claimed
            action: Action = "keep" if taken and not rerun else ("rerun" if taken else "run")
            done.slots.append(SlotPlan(slot, action, claimed.get(slot), taken))
        return done
    with driver.store.transaction() as tx:
        held = tx.suspensions.active_suspension("schedule", name, now)
        if held is not None:
            raise RunRefused("suspended", f"schedule {name} is suspended: {held.reason}", held)
        claimed = tx.runs.claimed_fires(name, start, end) if slots else {}
        before = tx.runs.active_runs(job=name, kind="schedule")
        for slot in slots:
            won = tx.runs.claim_fire(name, slot, decided_at=now, host=driver.host)
            if not won and not rerun:
                done.slots.append(SlotPlan(slot, "keep", claimed.get(slot), True))
                continue
            detail = RunPlan(requested_at=now).detail()
            run = driver.decide_slot(
                tx, name, spec, "backfill", slot, now, detail, requested_by, before
            )
            if won:
                tx.runs.attach_fire(name, slot, run.id)
            action = "run" if won else "rerun"
            done.slots.append(SlotPlan(slot, action, claimed.get(slot), not won, run))
        if audit is not None:
            audit(tx, done)
    driver.hand_over_all(done.runs)
    return done
