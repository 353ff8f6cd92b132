"""Plan, apply, suspend and resume against every store: in memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.catalog.load import LoadedCatalog, load_catalog_text
from jobdeck.clock import FakeClock
from jobdeck.control import Control, ControlError
from jobdeck.store import DataStore, Tx
from jobdeck.store.records import Revision

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

CATALOG = """\
version: 1
project: newsroom
schedules:
  ranking:
    cron: "*/10 * * * *"
    command: ["rank"]
  buggy-batch:
    cron: "0 * * * *"
    command: ["buggy"]
workers:
  indexer:
    command: ["index"]
commands:
  push:
    command: ["push"]
"""


def catalog(text: str = CATALOG) -> LoadedCatalog:
    return load_catalog_text(text, "jobdeck.yaml")


@pytest.fixture
def store(any_store: DataStore) -> DataStore:
    """Control needs nothing of a store beyond its Protocols: the memory store too."""
    return any_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def control(store: DataStore, clock: FakeClock, actor: str = "alice@ops") -> Control:
    return Control(store, clock, actor, "cli")


def test_apply_records_a_revision_with_who_when_and_hash(
    store: DataStore, clock: FakeClock
) -> None:
    loaded = catalog()
    revision = control(store, clock).apply(loaded, git="v1.2-3-gabc123-dirty")
    assert revision is not None
    assert revision.number == 1
    assert revision.applied_at == T0
    assert revision.applied_by == "alice@ops"
    assert revision.catalog_sha256 == loaded.digest
    assert revision.git_describe == "v1.2-3-gabc123-dirty"
    assert revision.text == CATALOG
    assert store.revisions.latest_revision() == revision
    (entry,) = store.audit.audit()
    assert (entry.action, entry.target, entry.actor, entry.outcome) == (
        "apply",
        "revision 1",
        "alice@ops",
        "ok",
    )
    assert entry.detail["add"] == 4


def test_applying_the_same_catalog_again_changes_nothing(
    store: DataStore, clock: FakeClock
) -> None:
    ctl = control(store, clock)
    ctl.apply(catalog())
    assert ctl.plan(catalog()).empty
    assert ctl.apply(catalog()) is None
    assert [r.number for r in store.revisions.revisions()] == [1]


def test_apply_is_atomic_a_failure_mid_apply_keeps_the_previous_revision(
    store: DataStore, clock: FakeClock
) -> None:
    ctl = control(store, clock)
    first = ctl.apply(catalog())
    changed = catalog(CATALOG.replace("*/10", "*/5"))

    def breaks_midway(tx: Tx, revision: Revision) -> None:
        assert tx.revisions.latest_revision() == revision  # written, not yet committed
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ctl.apply(changed, steps=[breaks_midway])
    assert store.revisions.latest_revision() == first
    assert [e.action for e in store.audit.audit()] == ["apply"]
    assert not ctl.plan(changed).empty


def test_apply_refuses_when_the_state_moved_since_the_plan(
    store: DataStore, clock: FakeClock
) -> None:
    alice, bob = control(store, clock, "alice"), control(store, clock, "bob")
    shown = alice.plan(catalog())
    bob.apply(catalog(CATALOG.replace("*/10", "*/5")))
    with pytest.raises(ControlError, match="changed since the plan"):
        alice.apply(catalog(), expected=shown)
    assert [r.applied_by for r in store.revisions.revisions()] == ["bob"]


def test_the_crontab_accident_cannot_happen(store: DataStore, clock: FakeClock) -> None:
    """Developer A stops a buggy batch; developer B deploys a schedule change from Git.
    The batch must stay stopped, the plan must show it, and the audit must tell both."""
    dev_a, dev_b = control(store, clock, "dev-a"), control(store, clock, "dev-b")
    dev_a.apply(catalog())
    clock.advance(timedelta(minutes=5))
    dev_a.suspend("buggy-batch", "corrupts the ranking table, INC-1042")

    clock.advance(timedelta(hours=2))
    git_version = catalog(CATALOG.replace('cron: "0 * * * *"', 'cron: "30 * * * *"'))
    plan = dev_b.plan(git_version)
    (change,) = plan.changes
    assert (change.action, change.kind, change.name) == ("change", "schedule", "buggy-batch")
    assert change.suspension is not None
    assert [s.name for s in plan.suspensions] == ["buggy-batch"]
    revision = dev_b.apply(git_version, expected=plan)
    assert revision is not None

    (still,) = store.suspensions.suspensions(clock.now())
    assert (still.kind, still.name, still.created_by) == ("schedule", "buggy-batch", "dev-a")
    assert still.reason == "corrupts the ranking table, INC-1042"
    audit = [(e.actor, e.action, e.target) for e in reversed(store.audit.audit())]
    assert audit == [
        ("dev-a", "apply", "revision 1"),
        ("dev-a", "suspend", "schedule buggy-batch"),
        ("dev-b", "apply", "revision 2"),
    ]


def test_removing_a_suspended_item_keeps_the_suspension(store: DataStore, clock: FakeClock) -> None:
    ctl = control(store, clock)
    ctl.apply(catalog())
    ctl.suspend("buggy-batch", "broken")
    without = catalog(
        CATALOG.replace('  buggy-batch:\n    cron: "0 * * * *"\n    command: ["buggy"]\n', "")
    )
    plan = ctl.plan(without)
    (removal,) = plan.changes
    assert removal.action == "remove"
    assert removal.suspension is not None
    ctl.apply(without)
    ctl.apply(catalog())  # it comes back: still suspended
    assert [s.name for s in store.suspensions.suspensions(clock.now())] == ["buggy-batch"]


def test_suspension_expires_at_until(store: DataStore, clock: FakeClock) -> None:
    ctl = control(store, clock)
    ctl.apply(catalog())
    held = ctl.suspend("ranking", "reindexing", until=T0 + timedelta(hours=2))
    assert held.until == T0 + timedelta(hours=2)
    clock.advance(timedelta(hours=1, minutes=59))
    assert [s.name for s in store.suspensions.suspensions(clock.now())] == ["ranking"]
    clock.advance(timedelta(minutes=1))
    assert store.suspensions.suspensions(clock.now()) == []
    assert ctl.plan(catalog()).suspensions == ()
    # an expired suspension does not block a new one
    ctl.suspend("ranking", "again")


def test_suspend_rules(store: DataStore, clock: FakeClock) -> None:
    ctl = control(store, clock)
    with pytest.raises(ControlError, match="nothing is applied yet"):
        ctl.suspend("ranking", "x")
    ctl.apply(catalog())
    with pytest.raises(ControlError, match="no schedule, worker, command or monitor named 'nope'"):
        ctl.suspend("nope", "x")
    with pytest.raises(ControlError, match="needs a reason"):
        ctl.suspend("ranking", "  ")
    with pytest.raises(ControlError, match="not in the future"):
        ctl.suspend("ranking", "x", until=T0)
    ctl.suspend("indexer", "noisy")
    with pytest.raises(ControlError, match="already suspended by alice@ops"):
        ctl.suspend("indexer", "again")
    assert [(s.kind, s.name) for s in store.suspensions.suspensions(clock.now())] == [
        ("worker", "indexer")
    ]


def test_same_name_in_two_kinds_needs_a_kind(store: DataStore, clock: FakeClock) -> None:
    ctl = control(store, clock)
    ctl.apply(catalog(CATALOG + "  ranking:\n    command: [rank-tool]\n"))
    with pytest.raises(ControlError, match="names a schedule and a command; say which"):
        ctl.suspend("ranking", "x")
    held = ctl.suspend("ranking", "x", kind="command")
    assert held.kind == "command"


def test_resume_ends_a_suspension_and_audits_it(store: DataStore, clock: FakeClock) -> None:
    ctl = control(store, clock)
    ctl.apply(catalog())
    ctl.suspend("push", "push provider outage")
    clock.advance(timedelta(minutes=30))
    ended = control(store, clock, "bob").resume("push")
    assert (ended.ended_by, ended.ended_at) == ("bob", T0 + timedelta(minutes=30))
    assert store.suspensions.suspensions(clock.now()) == []
    history = store.suspensions.suspensions(clock.now(), include_ended=True)
    assert [s.ended_by for s in history] == ["bob"]
    assert store.audit.audit()[0].action == "resume"
    with pytest.raises(ControlError, match="is not suspended"):
        ctl.resume("push")
