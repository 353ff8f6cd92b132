from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

from jobdeck.catalog.load import load_catalog_text
from jobdeck.catalog.plan import make_plan, render_plan
from jobdeck.store.records import Suspension

BASE = """\
version: 1
project: newsroom
timezone: Asia/Tokyo
defaults: {timeout: 1h}
pools:
  batch: {memory: 2GiB}
schedules:
  ranking:
    cron: "*/10 * * * *"
    command: ["rank"]
    pool: batch
  cleanup:
    cron: "0 3 * * *"
    command: ["clean"]
workers:
  indexer:
    command: ["index"]
    replicas: 2
"""


def doc(text: str) -> dict[str, Any]:
    return load_catalog_text(textwrap.dedent(text)).catalog.model_dump(mode="json")


def test_first_plan_adds_everything() -> None:
    plan = make_plan(doc(BASE), None)
    assert [(c.action, c.kind, c.name) for c in plan.changes] == [
        ("add", "pool", "batch"),
        ("add", "schedule", "cleanup"),
        ("add", "schedule", "ranking"),
        ("add", "worker", "indexer"),
    ]
    assert plan.summary() == "Plan: 4 to add, 0 to change, 0 to remove."
    ranking = plan.changes[2]
    assert {f.path: f.new for f in ranking.diff}["cron"] == "*/10 * * * *"


def test_same_catalog_plans_nothing() -> None:
    plan = make_plan(doc(BASE), doc(BASE))
    assert plan.empty
    assert plan.summary() == "Plan: 0 to add, 0 to change, 0 to remove."
    assert "No changes." in render_plan(plan, against="revision 1")


def test_add_change_remove_with_field_diffs() -> None:
    new = BASE.replace('"*/10 * * * *"', '"*/5 * * * *"').replace("replicas: 2", "replicas: 3")
    new = new.replace('  cleanup:\n    cron: "0 3 * * *"\n    command: ["clean"]\n', "")
    new += "commands:\n  push:\n    command: [push]\n"
    plan = make_plan(doc(new), doc(BASE))
    summary = [(c.action, c.kind, c.name) for c in plan.changes]
    assert summary == [
        ("remove", "schedule", "cleanup"),
        ("change", "schedule", "ranking"),
        ("change", "worker", "indexer"),
        ("add", "command", "push"),
    ]
    ranking = plan.changes[1]
    assert [(f.path, f.old, f.new) for f in ranking.diff] == [
        ("cron", "*/10 * * * *", "*/5 * * * *")
    ]
    text = render_plan(plan, against="revision 1")
    assert '  ~ schedule ranking\n      cron: "*/10 * * * *" -> "*/5 * * * *"' in text
    assert "  - schedule cleanup" in text
    assert "  + command push" in text
    assert text.endswith("Plan: 1 to add, 2 to change, 1 to remove.")
    as_json = plan.to_json()
    assert as_json["changes"][1] == {
        "action": "change",
        "kind": "schedule",
        "name": "ranking",
        "diff": {"cron": {"old": "*/10 * * * *", "new": "*/5 * * * *"}},
    }
    assert as_json["suspensions"] == []


def test_a_default_change_reaches_every_item_it_applies_to() -> None:
    plan = make_plan(doc(BASE.replace("timeout: 1h", "timeout: 2h")), doc(BASE))
    changed = {(c.kind, c.name): c.diff for c in plan.changes}
    assert set(changed) == {("schedule", "ranking"), ("schedule", "cleanup")}
    assert [(f.path, f.old, f.new) for f in changed[("schedule", "ranking")]] == [
        ("timeout", "1h", "2h")
    ]


def test_zone_change_shows_on_project_and_schedules() -> None:
    plan = make_plan(doc(BASE.replace("Asia/Tokyo", "UTC")), doc(BASE))
    assert plan.changes[0].kind == "project"
    assert [(f.path, f.old, f.new) for f in plan.changes[0].diff] == [
        ("timezone", "Asia/Tokyo", "UTC")
    ]
    assert ("change", "schedule", "ranking") in [(c.action, c.kind, c.name) for c in plan.changes]


def test_nested_fields_diff_by_dotted_path() -> None:
    new = BASE.replace(
        "    pool: batch\n", '    pool: batch\n    retry: {launch: 5}\n    env: {A: "1"}\n', 1
    )
    plan = make_plan(doc(new), doc(BASE))
    (ranking,) = plan.changes
    assert [(f.path, f.old, f.new) for f in ranking.diff] == [
        ("env", {}, None),
        ("env.A", None, "1"),
        ("retry.launch", 3, 5),
    ]


def test_suspensions_are_listed_and_removed_items_say_so() -> None:
    when = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    held = Suspension(1, "schedule", "cleanup", "buggy batch, INC-42", "alice", when)
    new = BASE.replace('  cleanup:\n    cron: "0 3 * * *"\n    command: ["clean"]\n', "")
    plan = make_plan(doc(new), doc(BASE), [held])
    (removal,) = plan.changes
    assert removal.suspension == held
    text = render_plan(plan, against="revision 1")
    assert "! suspended (buggy batch, INC-42): the suspension stays recorded" in text
    assert "Active suspensions" in text
    assert "! schedule cleanup: 'buggy batch, INC-42' by alice since 2026-11-28T10:00:00Z" in text
    assert plan.to_json()["suspensions"][0]["reason"] == "buggy batch, INC-42"
