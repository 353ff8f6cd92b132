"""No retroactive fires: a change of a schedule's timing (cron, rate, timezone, enabled)
or the end of a suspension never makes catch-up fire the slots that fell due before it,
nor count them as missed; and `plan` shows what a change of timing moves.

The scheduler is driven with a fake clock over each implementation of the store (memory,
SQLite, PostgreSQL): the engine starts (``load(..., catch_up=True)``) after a revision
changed the schedule, or a suspension ended, while it was down.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

from jobdeck.catalog.load import load_catalog_text
from jobdeck.catalog.model import Catalog
from jobdeck.catalog.plan import make_plan, render_plan
from jobdeck.clock import FakeClock
from jobdeck.schedule.scheduler import Scheduler
from jobdeck.schedule.since import Since, catch_up_since
from jobdeck.store.ports import DataStore
from jobdeck.store.records import Trigger
from jobdeck.workflow.decisions import CatchupDecision, MissCause

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def catalog(cadence: str, *, enabled: bool = True, catchup: str = "all") -> Catalog:
    text = f"""\
        version: 1
        project: t
        schedules:
          mail:
            {cadence}
            command: ["true"]
            enabled: {str(enabled).lower()}
            catchup: {catchup}
            catchup_window: 1d
        """
    return load_catalog_text(textwrap.dedent(text)).catalog


class Firing:
    """Records what the scheduler asks of the run workflow."""

    def __init__(self) -> None:
        self.fired: list[tuple[datetime, Trigger]] = []
        self.caught: list[tuple[CatchupDecision, MissCause, bool]] = []

    def fire(
        self,
        name: str,
        nominal: datetime,
        trigger: Trigger = "schedule",
        decided_at: datetime | None = None,
    ) -> object:
        self.fired.append((nominal, trigger))
        return None

    def catch_up(
        self,
        name: str,
        decision: CatchupDecision,
        *,
        trigger: Trigger,
        cause: MissCause,
        held: bool = False,
    ) -> None:
        self.caught.append((decision, cause, held))

    def ran(self) -> list[datetime]:
        return [slot for decision, _, _ in self.caught for slot in decision.run]

    def recorded(self, *, held: bool) -> list[datetime]:
        return [slot for d, _, h in self.caught if h == held for slot in d.missed]


def apply(store: DataStore, spec: Catalog, at: datetime) -> None:
    with store.transaction() as tx:
        tx.revisions.add_revision(
            applied_at=at,
            applied_by="t",
            catalog_sha256="x",
            git_describe=None,
            source="jobdeck.yaml",
            text="",
            catalog=spec.model_dump(mode="json"),
        )


def claim(store: DataStore, slot: datetime) -> None:
    with store.transaction() as tx:
        tx.runs.claim_fire("mail", slot, decided_at=slot, host="h")


def start_engine(store: DataStore, spec: Catalog, now: datetime) -> Firing:
    firing = Firing()
    scheduler = Scheduler(
        firing,
        FakeClock(now),
        store.runs.last_fires,
        since=lambda last, at: catch_up_since(store, last, last.keys(), at),
    )
    scheduler.load(spec.schedules, catch_up=True)
    return firing


def test_a_cron_changed_while_the_engine_was_down_fires_nothing_from_before_the_change(
    any_store: DataStore,
) -> None:
    store = any_store
    hourly = catalog('cron: "0 * * * *"')
    apply(store, hourly, T0 - timedelta(days=1))
    claim(store, T0)  # the engine fired 00:00, then went down
    # 02:30: a new cron (every minute) is applied; the engine starts at 02:40.
    change = T0 + timedelta(hours=2, minutes=30)
    every_minute = catalog('cron: "* * * * *"')
    apply(store, every_minute, change)
    firing = start_engine(store, every_minute, change + timedelta(minutes=10))
    ran = firing.ran()
    assert ran  # the slots after the change are caught up by the policy ...
    assert min(ran) > change
    # ... and neither the old cadence's 01:00 and 02:00 nor the new one's minutes before
    # the change are fired or recorded as missed.
    assert all(slot > change for slot in firing.recorded(held=False))
    assert firing.recorded(held=True) == []


def test_enabling_a_schedule_fires_nothing_from_while_it_was_disabled(any_store: DataStore) -> None:
    store = any_store
    on = catalog("rate: 1m")
    apply(store, on, T0 - timedelta(hours=1))
    claim(store, T0)
    apply(store, catalog("rate: 1m", enabled=False), T0 + timedelta(minutes=1))
    enabled_at = T0 + timedelta(hours=5)
    apply(store, on, enabled_at)
    firing = start_engine(store, on, enabled_at)  # the engine starts as it is enabled
    assert firing.ran() == []
    assert firing.recorded(held=False) == []


def test_an_unchanged_schedule_still_catches_up_what_the_engine_missed(
    any_store: DataStore,
) -> None:
    store = any_store
    hourly = catalog('cron: "0 * * * *"')
    apply(store, hourly, T0 - timedelta(days=1))
    claim(store, T0)
    # An apply that changes something else does not move the floor.
    apply(store, catalog('cron: "0 * * * *"', catchup="all"), T0 + timedelta(minutes=5))
    firing = start_engine(store, hourly, T0 + timedelta(hours=3, minutes=1))
    assert firing.ran() == [T0 + timedelta(hours=h) for h in (1, 2, 3)]


def test_slots_of_a_suspension_that_ended_while_the_engine_was_down_are_recorded_not_fired(
    any_store: DataStore,
) -> None:
    store = any_store
    hourly = catalog('cron: "0 * * * *"')
    apply(store, hourly, T0 - timedelta(days=1))
    claim(store, T0)
    with store.transaction() as tx:
        held = tx.suspensions.add_suspension(
            kind="schedule",
            name="mail",
            reason="bad data",
            created_by="a",
            created_at=T0 + timedelta(minutes=10),
            until=None,
        )
    resumed = T0 + timedelta(hours=4, minutes=30)
    with store.transaction() as tx:
        tx.suspensions.end_suspension(held.id, ended_by="a", ended_at=resumed)
    firing = start_engine(store, hourly, T0 + timedelta(hours=6, minutes=1))
    # 01:00 .. 04:00 fell due while it was suspended: recorded as such, not run.
    assert firing.recorded(held=True) == [T0 + timedelta(hours=h) for h in (1, 2, 3, 4)]
    assert firing.recorded(held=False) == []
    # 05:00 and 06:00 fell due after the resume, while the engine was down: caught up.
    assert firing.ran() == [T0 + timedelta(hours=5), T0 + timedelta(hours=6)]


def test_a_suspension_whose_until_passed_counts_as_ended_then(any_store: DataStore) -> None:
    store = any_store
    apply(store, catalog("rate: 1h"), T0 - timedelta(days=1))
    claim(store, T0)
    with store.transaction() as tx:
        tx.suspensions.add_suspension(
            kind="schedule",
            name="mail",
            reason="x",
            created_by="a",
            created_at=T0 + timedelta(minutes=1),
            until=T0 + timedelta(hours=2, minutes=30),
        )
    found = catch_up_since(store, {"mail": T0}, ["mail"], T0 + timedelta(hours=5))
    assert found == {
        "mail": Since(None, T0 + timedelta(minutes=1), T0 + timedelta(hours=2, minutes=30))
    }


def test_changes_and_resumes_from_before_the_newest_fire_do_not_count(any_store: DataStore) -> None:
    store = any_store
    apply(store, catalog("rate: 1h"), T0 - timedelta(days=2))
    apply(store, catalog("rate: 2h"), T0 - timedelta(days=1))
    claim(store, T0)
    assert catch_up_since(store, {"mail": T0}, ["mail"], T0 + timedelta(hours=5)) == {}
    found = catch_up_since(store, {"mail": T0 - timedelta(days=3)}, ["mail"], T0)
    assert found["mail"].changed_at == T0 - timedelta(days=1)


def doc(spec: Catalog) -> dict[str, Any]:
    return spec.model_dump(mode="json")


def test_plan_shows_the_next_three_fires_before_and_after_a_change_of_timing() -> None:
    now = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
    old = load_catalog_text(
        'version: 1\nproject: t\nschedules:\n  mail:\n    cron: "0 3 * * *"\n    command: ["x"]\n'
    ).catalog
    new = load_catalog_text(
        'version: 1\nproject: t\nschedules:\n  mail:\n    cron: "0 3 * * *"\n'
        '    timezone: Asia/Tokyo\n    command: ["x"]\n'
    ).catalog
    plan = make_plan(doc(new), doc(old), (), now)
    (change,) = plan.changes
    assert change.moves is not None
    shown = change.to_json()["moves"]
    assert shown["before"]["timezone"] == "UTC"
    assert [f["utc"] for f in shown["before"]["fires"]] == [
        "2026-03-03T03:00:00Z",
        "2026-03-04T03:00:00Z",
        "2026-03-05T03:00:00Z",
    ]
    assert shown["after"]["timezone"] == "Asia/Tokyo"
    assert [f["local"] for f in shown["after"]["fires"]] == [
        "2026-03-03T03:00:00+09:00",
        "2026-03-04T03:00:00+09:00",
        "2026-03-05T03:00:00+09:00",
    ]
    assert shown["after"]["fires"][0]["utc"] == "2026-03-02T18:00:00Z"
    text = render_plan(plan, against="revision 1")
    assert "next fires before (in UTC, and UTC):" in text
    assert "2026-03-03 03:00:00 JST  (2026-03-02T18:00:00Z)" in text


def test_plan_shows_no_fires_after_disabling_and_nothing_for_other_changes() -> None:
    now = T0
    on = catalog("rate: 1h")
    plan = make_plan(doc(catalog("rate: 1h", enabled=False)), doc(on), (), now)
    (change,) = plan.changes
    assert change.moves is not None
    assert change.moves.after.fires == ()
    assert "(none: disabled)" in render_plan(plan, against="revision 1")
    assert len(change.moves.before.fires) == 3
    other = make_plan(doc(catalog("rate: 1h", catchup="none")), doc(on), (), now)
    (change,) = other.changes
    assert change.moves is None
    assert "moves" not in change.to_json()


def test_slots_before_a_suspension_began_while_the_engine_was_down_are_missed_not_run(
    any_store: DataStore,
) -> None:
    store = any_store
    hourly = catalog('cron: "0 * * * *"')
    apply(store, hourly, T0 - timedelta(days=1))
    claim(store, T0)  # the engine fired 00:00, then went down
    with store.transaction() as tx:
        held = tx.suspensions.add_suspension(
            kind="schedule",
            name="mail",
            reason="bad data",
            created_by="a",
            created_at=T0 + timedelta(hours=2, minutes=30),
            until=None,
        )
        tx.suspensions.end_suspension(
            held.id, ended_by="a", ended_at=T0 + timedelta(hours=4, minutes=30)
        )
    firing = start_engine(store, hourly, T0 + timedelta(hours=5, minutes=1))
    # 01:00 and 02:00: the engine was down, the schedule was not suspended: missed.
    assert firing.recorded(held=False) == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert firing.recorded(held=True) == [T0 + timedelta(hours=3), T0 + timedelta(hours=4)]
    assert firing.ran() == [T0 + timedelta(hours=5)]
