"""Missed slots of a schedule: recorded, caught up by its ``catchup`` policy, notified.

When the engine was down or late, or its timer restarted, the scheduler hands the slots
it missed to :func:`catch_up`; a suspension resumed with ``--catch-up`` has the slots it
held run by :func:`catch_up_resumed`. Both decide each run through the driver (its
suspension and overlap rules) and claim each slot in the store, so a restart or a second
engine never decides a slot twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobdeck.catalog.model import cadence_for
from jobdeck.store.records import Notice, Run, RunPlan, Suspension, Trigger
from jobdeck.workflow.decisions import CatchupDecision, MissCause, decide_catchup, missed_why
from jobdeck.workflow.missed import MissedSlots
from jobdeck.workflow.outbox import due_fields, with_notice
from jobdeck.workflow.outcome import iso

if TYPE_CHECKING:
    from jobdeck.workflow.driver import RunDriver


def catch_up(
    d: RunDriver,
    name: str,
    decision: CatchupDecision,
    *,
    trigger: Trigger,
    cause: MissCause,
    held: bool = False,
) -> None:
    """Missed slots: those catch-up does not run are recorded, never dropped; those it
    runs are fired oldest first. One notice tells the schedule's targets about every
    slot that did not run (also one fired but skipped: a run from before still ran);
    none when the schedule is suspended (that is on purpose). ``held``: the slots fell
    due while the schedule was suspended (a suspension ended since): they are
    recorded as suspended, not missed."""
    spec = d.schedule(name)
    if spec is None or not spec.enabled:
        return
    now = d.clock.now()
    held = held or d.suspended("schedule", name, now) is not None
    reason = "suspended" if held else "missed"
    missed = MissedSlots(name, cause, spec.catchup, spec.catchup_window)
    first: Run | None = None
    with d.store.transaction() as tx:
        if d.fence is not None:
            d.fence(tx, now)
        for slot in decision.missed:
            if not tx.runs.claim_fire(name, slot, decided_at=now, host=d.host):
                continue  # another engine (or an earlier life) decided it
            why = "suspended"
            if not held:
                why = missed_why(slot, now, spec.catchup, spec.catchup_window)
            detail = {"cause": cause, "why": why}
            run = d.runs.record(
                tx, "schedule", name, "catchup", "skipped", reason, slot, now, spec,
                detail=detail,
            )  # fmt: skip
            tx.runs.attach_fire(name, slot, run.id)
            missed.slots.append((slot, why))
            first = first or run
        if decision.missed_beyond:
            assert decision.last_beyond is not None
            missed.beyond = decision.missed_beyond
            missed.first_beyond, missed.last_beyond = (
                decision.first_beyond,
                decision.last_beyond,
            )
            missed.beyond_why = missed_why(
                decision.last_beyond, now, spec.catchup, spec.catchup_window
            )
            summary = {
                "cause": cause,
                "why": missed.beyond_why,
                "missed_slots": decision.missed_beyond,
                "first": iso(decision.first_beyond or decision.last_beyond),
                "last": iso(decision.last_beyond),
            }
            run = d.runs.record(
                tx, "schedule", name, "catchup", "skipped", reason, None, now, spec,
                detail=summary,
            )  # fmt: skip
            first = first or run
    for slot in decision.run:
        fired = d.fire(name, slot, trigger, catching_up=cause)
        if fired is None:
            continue
        missed.caught_up.append(slot)
        if fired.status == "skipped" and fired.reason != "suspended":
            missed.skipped(fired)
            first = first or fired
    if reason == "missed" and first is not None and missed.count and spec.notify:
        _send_missed(d, list(spec.notify), first, missed, now)


def catch_up_resumed(d: RunDriver, held: Suspension) -> list[Run]:
    """A suspension resumed with ``--catch-up``: the slots it held run now by the
    schedule's ``catchup`` policy (its window counted back from the resume), oldest
    first, queued behind each other. The first engine to take the request does it, in
    the transaction that takes it; a slot recorded skipped / suspended is claimed
    again, one that ran (or was caught up otherwise) is left alone."""
    spec, now = d.schedule(held.name), d.clock.now()
    started: list[Run] = []
    with d.store.transaction() as tx:
        if d.fence is not None:
            d.fence(tx, now)
        if not tx.suspensions.take_catch_up(held.id, at=now):
            return []  # another engine took it
        if spec is None or not spec.enabled or held.ended_at is None:
            return []  # removed or disabled since: nothing of it runs
        cadence = cadence_for(spec)
        chosen = decide_catchup(
            cadence, held.created_at, held.ended_at, spec.catchup, spec.catchup_window
        )
        for slot in chosen.run:
            if not tx.runs.reclaim_fire(held.name, slot, decided_at=now, host=d.host):
                continue
            detail = {"lateness_ms": round((now - slot).total_seconds() * 1000, 3)}
            detail.update(RunPlan(catchup_of="suspended").detail())
            run = d.decide(tx, held.name, spec, "catchup", slot, now, detail, catching_up=True)
            tx.runs.attach_fire(held.name, slot, run.id)
            started.append(run)
    for run in started:
        d.hand_over(run)
    return started


def _send_missed(
    d: RunDriver, targets: list[str], first: Run, missed: MissedSlots, now: datetime
) -> None:
    """One notice for the slots of one catch-up; it stands on the first run recorded
    for them (a real run that the link opens), carrying the whole ``missed`` detail."""
    notice = Run(
        first.id,
        missed.schedule,
        "schedule",
        first.trigger,
        "skipped",
        now,
        reason="missed",
        scheduled_for=first.scheduled_for,
        pool=first.pool,
        host=first.host,
        detail={"missed": missed.detail()},
    )
    with d.store.transaction() as tx:
        # Recorded with the other notices; the notify policy does not hold these back.
        recorded = tx.notices.record_notice(
            Notice(
                at=now,
                job=missed.schedule,
                kind="schedule",
                event="run.missed",
                stream="missed",
                sent=True,
                why=f"missed {missed.count} slot{'s' if missed.count != 1 else ''} "
                f"({missed.cause}); not counted by notify_policy",
                run_id=first.id,
                targets=targets,
                detail={"count": missed.count},
                **due_fields(notice, "", now),
            )
        )
    d.gate.call(d.dispatcher.outcomes.send, targets, with_notice(notice, recorded), "")
