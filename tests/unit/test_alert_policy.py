"""The alert policy: the catalog's ``notify_policy`` and the pure decisions it drives,
against fixed times."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.catalog.alerting import NotifyPolicy
from jobdeck.catalog.load import CatalogError, load_catalog_text
from jobdeck.catalog.model import Catalog
from jobdeck.catalog.plan import make_plan
from jobdeck.store.records import Notice
from jobdeck.workflow.alerting import FAILURE_STREAM, NoticeDecision, decide_notice

T0 = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def recorded(decision: NoticeDecision, at: datetime) -> Notice:
    """The notice the engine records for ``decision`` (what the next decision reads)."""
    return Notice(
        at=at,
        job="backup",
        kind="schedule",
        event=decision.event,
        stream=FAILURE_STREAM,
        sent=decision.send,
        why=decision.why,
        streak=decision.streak,
        detail=decision.detail(),
    )


def play(policy: NotifyPolicy, statuses: list[tuple[timedelta, str]]) -> list[tuple[str, bool]]:
    """Feed ended runs through the policy as the engine does; (event, sent) of each notice."""
    previous: Notice | None = None
    said: list[tuple[str, bool]] = []
    for offset, status in statuses:
        decision = decide_notice(policy, previous, status, T0 + offset)
        if decision is None:
            said.append(("-", False))
            continue
        previous = recorded(decision, T0 + offset)
        said.append((decision.event, decision.send))
    return said


def test_the_default_policy_sends_every_failure_and_holds_back_the_recovery() -> None:
    runs = [(0 * MIN, "failed"), (1 * MIN, "timed_out"), (2 * MIN, "succeeded")]
    assert play(NotifyPolicy(), runs) == [
        ("run.failed", True),
        ("run.timed_out", True),
        ("run.recovered", False),
    ]


def test_after_waits_for_n_consecutive_failures_and_a_success_starts_over() -> None:
    policy = NotifyPolicy(after=3)
    runs = [
        (0 * MIN, "failed"),
        (1 * MIN, "lost"),
        (2 * MIN, "succeeded"),  # the streak ends unnotified
        (3 * MIN, "failed"),
        (4 * MIN, "failed"),
        (5 * MIN, "failed"),
        (6 * MIN, "failed"),
    ]
    assert play(policy, runs) == [
        ("run.failed", False),
        ("run.lost", False),
        ("run.recovered", False),
        ("run.failed", False),
        ("run.failed", False),
        ("run.failed", True),
        ("run.failed", True),  # no renotify: every failure from the third on
    ]


def test_renotify_sends_at_most_once_per_period_while_failing() -> None:
    policy = NotifyPolicy(renotify=timedelta(hours=1))
    runs = [(n * 10 * MIN, "failed") for n in range(14)]  # every 10 minutes for 2h10m
    sent = [n * 10 for n, (_, was_sent) in enumerate(play(policy, runs)) if was_sent]
    assert sent == [0, 60, 120]


def test_skipped_and_cancelled_runs_neither_extend_nor_end_a_streak() -> None:
    policy = NotifyPolicy(after=2)
    runs = [(0 * MIN, "failed"), (1 * MIN, "skipped"), (2 * MIN, "cancelled"), (3 * MIN, "failed")]
    assert play(policy, runs) == [
        ("run.failed", False),
        ("-", False),
        ("-", False),
        ("run.failed", True),
    ]


def test_a_success_with_no_streak_says_nothing() -> None:
    assert decide_notice(NotifyPolicy(recovery=True), None, "succeeded", T0) is None


def test_recovery_is_sent_only_after_a_notified_streak() -> None:
    policy = NotifyPolicy(after=3, recovery=True)
    quiet = play(policy, [(0 * MIN, "failed"), (1 * MIN, "succeeded")])
    assert quiet == [("run.failed", False), ("run.recovered", False)]
    loud = play(policy, [(n * MIN, "failed") for n in range(3)] + [(3 * MIN, "succeeded")])
    assert loud[-1] == ("run.recovered", True)


def test_each_decision_says_why_with_the_numbers() -> None:
    policy = NotifyPolicy(after=2, renotify=timedelta(hours=1))
    first = decide_notice(policy, None, "failed", T0)
    assert first is not None
    assert (first.send, first.why, first.streak) == (
        False,
        "failure 1 in a row; notify_policy.after is 2",
        1,
    )
    second = decide_notice(policy, recorded(first, T0), "failed", T0 + 5 * MIN)
    assert second is not None
    assert (second.send, second.why) == (True, "failure 2 in a row, reaching notify_policy.after")
    assert second.last_sent_at == T0 + 5 * MIN
    assert second.failing_since == T0
    third = decide_notice(policy, recorded(second, T0 + 5 * MIN), "failed", T0 + 30 * MIN)
    assert third is not None
    assert third.why == (
        "failure 3 in a row; last notice sent 25m ago, notify_policy.renotify is 1h"
    )
    assert third.last_sent_at == T0 + 5 * MIN  # held back: the last sent stays


# -- the catalog --------------------------------------------------------------------


def load(text: str) -> Catalog:
    return load_catalog_text(textwrap.dedent(text).lstrip("\n"), "c.yaml").catalog


def errors(text: str) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load(text)
    return [str(d) for d in info.value.diagnostics]


BASE = """
    version: 1
    project: demo
    defaults:
      notify_policy: {after: 3, renotify: 1h}
    schedules:
      backup:
        rate: 1h
        command: ["true"]
      own:
        rate: 1h
        command: ["true"]
        notify_policy: {recovery: true}
    commands:
      push:
        command: ["true"]
"""


def test_defaults_apply_to_schedules_and_commands_that_set_no_policy() -> None:
    catalog = load(BASE)
    expected = NotifyPolicy(after=3, renotify=timedelta(hours=1))
    assert catalog.schedules["backup"].notify_policy == expected
    assert catalog.commands["push"].notify_policy == expected
    # An item's own policy replaces the default whole, as every other default does.
    assert catalog.schedules["own"].notify_policy == NotifyPolicy(recovery=True)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            "{after: 0}",
            "c.yaml:5:28: error: schedules.backup.notify_policy.after: "
            "must be at least 1, found 0; raise it",
        ),
        (
            "{renotify: soon}",
            "c.yaml:5:31: error: schedules.backup.notify_policy.renotify: invalid duration 'soon'",
        ),
        (
            "{renotify: 0s}",
            "c.yaml:5:21: error: schedules.backup.notify_policy.renotify: "
            "must be greater than zero; e.g. 1h",
        ),
        (
            "{after: 2, every: 1h}",
            "c.yaml:5:31: error: schedules.backup.notify_policy: unknown key 'every'; "
            "did you mean 'recovery'?",
        ),
        (
            "{recovery: yes please}",
            "c.yaml:5:31: error: schedules.backup.notify_policy.recovery: expected true or false",
        ),
    ],
)
def test_a_bad_policy_is_reported_where_it_is(policy: str, expected: str) -> None:
    found = errors(
        f"""
        version: 1
        project: demo
        schedules:
          backup:
            notify_policy: {policy}
            rate: 1h
            command: ["true"]
        """
    )
    assert len(found) == 1
    assert found[0].startswith(expected), found


def test_the_schema_publishes_the_policy() -> None:
    schema = Catalog.model_json_schema()
    policy = schema["$defs"]["NotifyPolicy"]
    assert set(policy["properties"]) == {"after", "recovery", "renotify"}
    assert policy["additionalProperties"] is False
    alerts = schema["$defs"]["Alerts"]
    assert set(alerts["properties"]) == {"slow", "fast", "not_started_by"}
    slow = next(s for s in alerts["properties"]["slow"]["anyOf"] if s.get("type") == "string")
    assert re.fullmatch(slow["pattern"], "auto")
    assert re.fullmatch(slow["pattern"], "1h30m")
    assert not re.fullmatch(slow["pattern"], "soon")
    schedule = schema["$defs"]["Schedule"]["properties"]
    assert {"alerts", "notify_policy"} <= set(schedule)
    assert "notify_policy" in schema["$defs"]["Defaults"]["properties"]


def test_a_revision_applied_before_the_policy_existed_plans_no_change() -> None:
    catalog = load(BASE).model_dump(mode="json")
    before = load(BASE).model_dump(mode="json")
    for section in ("schedules", "commands"):
        for item in before[section].values():
            del item["notify_policy"]
            del item["alerts"]
    # backup and push get the default's policy, so they change; own keeps the built-in.
    plan = make_plan(catalog, before)
    changed = {(c.kind, c.name): [f.path for f in c.diff] for c in plan.changes}
    assert changed == {
        ("schedule", "backup"): ["notify_policy.after", "notify_policy.renotify"],
        ("command", "push"): ["notify_policy.after", "notify_policy.renotify"],
        ("schedule", "own"): ["notify_policy.recovery"],
    }
    plain = load(BASE.replace("notify_policy: {after: 3, renotify: 1h}", "timeout: 1h"))
    old = plain.model_dump(mode="json")
    for section in ("schedules", "commands"):
        for item in old[section].values():
            del item["notify_policy"]
            del item["alerts"]
    old["schedules"]["own"]["notify_policy"] = {"after": 1, "recovery": True, "renotify": None}
    assert make_plan(plain.model_dump(mode="json"), old).changes == ()
