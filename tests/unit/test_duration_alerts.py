"""Duration alerts' decisions: fixed and learned thresholds, and when a run crosses one,
against fixed times."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.catalog.alerting import Alerts
from jobdeck.catalog.load import CatalogError, load_catalog_text
from jobdeck.notify import RunNotice, webhook_payload
from jobdeck.notify.slack import chat_message
from jobdeck.store.records import Run
from jobdeck.workflow.durations import (
    AUTO_MINIMUM,
    decide_fast,
    decide_not_started,
    decide_slow,
    fast_threshold,
    slow_threshold,
)

T0 = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
AUTO = Alerts(slow="auto", fast="auto")


def minutes(*values: float) -> list[timedelta]:
    return [timedelta(minutes=v) for v in values]


def test_auto_needs_enough_successful_runs_before_it_alerts_at_all() -> None:
    few = minutes(50, 50, 50, 50)
    assert len(few) == AUTO_MINIMUM - 1
    assert slow_threshold(AUTO, few) is None
    assert fast_threshold(AUTO, few) is None
    assert slow_threshold(AUTO, [*few, 50 * MIN]) is not None


def test_auto_slow_is_twice_the_median() -> None:
    found = slow_threshold(AUTO, minutes(48, 50, 52, 50, 49, 51))
    assert found is not None
    assert (found.value, found.source) == (100 * MIN, "auto")
    assert found.how == "auto: 2 x the median (50m) of the last 6 successful runs"


def test_auto_slow_of_a_quick_job_is_the_median_plus_a_minute() -> None:
    found = slow_threshold(AUTO, [timedelta(seconds=10)] * 5)
    assert found is not None
    assert found.value == timedelta(seconds=70)
    assert found.how == "auto: the median (10s) of the last 5 successful runs + 1m"


def test_auto_uses_only_the_newest_twenty_runs() -> None:
    newest, older = minutes(*[10] * 20), minutes(*[100] * 30)
    found = slow_threshold(AUTO, newest + older)
    assert found is not None
    assert found.value == 20 * MIN


def test_auto_fast_is_a_quarter_of_the_median() -> None:
    steady = fast_threshold(AUTO, minutes(50, 50, 50, 50, 50))
    assert steady is not None
    assert steady.value == timedelta(minutes=12.5)
    assert steady.how == "auto: a quarter of the median (50m) of the last 5 successful runs"
    # An earlier suspicious success in the sample does not hide the next one.
    with_quick_one = fast_threshold(AUTO, minutes(50, 50, 50, 50, 0.25))
    assert with_quick_one is not None
    assert with_quick_one.value == timedelta(minutes=12.5)


def test_auto_fast_stays_quiet_for_jobs_under_a_minute() -> None:
    assert fast_threshold(AUTO, [timedelta(seconds=40)] * 10) is None


def test_fixed_thresholds_say_they_come_from_the_catalog() -> None:
    fixed = Alerts(slow=timedelta(hours=2), fast=timedelta(seconds=30))
    slow, fast = slow_threshold(fixed, []), fast_threshold(fixed, [])
    assert slow is not None
    assert fast is not None
    assert (slow.value, slow.source, slow.how) == (2 * 60 * MIN, "catalog", "alerts.slow: 2h")
    assert (fast.value, fast.how) == (timedelta(seconds=30), "alerts.fast: 30s")
    assert slow_threshold(Alerts(), minutes(*[5] * 10)) is None


def test_slow_fires_at_the_threshold_not_before_and_never_at_the_timeout() -> None:
    threshold = slow_threshold(Alerts(slow=30 * MIN), [])
    hour = 60 * MIN
    assert decide_slow(threshold, T0, T0 + 29 * MIN, hour) is None
    alert = decide_slow(threshold, T0, T0 + 31 * MIN, hour)
    assert alert is not None
    assert alert.event == "run.slow"
    assert alert.why == ("still running after 31m, over the threshold of 30m (alerts.slow: 30m)")
    assert alert.detail() == {
        "alert": "slow",
        "value_seconds": 1860.0,
        "value": "31m",
        "threshold_seconds": 1800.0,
        "threshold": "30m",
        "source": "catalog",
        "how": "alerts.slow: 30m",
        "why": alert.why,
    }
    # A threshold the timeout reaches first would never notify in time: the timeout tells.
    assert decide_slow(threshold, T0, T0 + 31 * MIN, 30 * MIN) is None


def test_fast_fires_only_under_the_threshold() -> None:
    threshold = fast_threshold(AUTO, minutes(50, 50, 50, 50, 50))
    assert decide_fast(threshold, timedelta(seconds=15)) is not None
    assert decide_fast(threshold, 13 * MIN) is None
    assert decide_fast(None, timedelta(seconds=1)) is None
    alert = decide_fast(threshold, timedelta(seconds=15))
    assert alert is not None
    assert alert.why == (
        "succeeded in 15s, under the threshold of 12m30s "
        "(auto: a quarter of the median (50m) of the last 5 successful runs)"
    )


def test_not_started_by_counts_from_the_nominal_time() -> None:
    assert decide_not_started(5 * MIN, T0, T0 + 4 * MIN) is None
    late = decide_not_started(5 * MIN, T0, T0 + 7 * MIN)
    assert late is not None
    assert late.why == (
        "not started 7m after its nominal time, over the threshold of 5m "
        "(alerts.not_started_by: 5m)"
    )
    assert decide_not_started(None, T0, T0 + 60 * MIN) is None


# -- the catalog --------------------------------------------------------------------


def errors(body: str, section: str = "schedules") -> list[str]:
    text = textwrap.dedent(
        f"""
        version: 1
        project: demo
        {section}:
          backup:
            command: ["true"]
        """
    ).lstrip("\n")
    if section == "schedules":
        text += "    rate: 1h\n"
    text += textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"
    with pytest.raises(CatalogError) as info:
        load_catalog_text(text, "c.yaml")
    return [str(d) for d in info.value.diagnostics]


@pytest.mark.parametrize(
    ("body", "section", "expected"),
    [
        (
            "alerts: {slow: soon}",
            "schedules",
            "c.yaml:7:20: error: schedules.backup.alerts.slow: invalid threshold 'soon': "
            "write auto or a duration such as 30s, 15m, 2h",
        ),
        (
            "alerts: {fast: 0s}",
            "schedules",
            "c.yaml:7:14: error: schedules.backup.alerts.fast: must be greater than zero",
        ),
        (
            "alerts: {slow: 10m, fast: 20m}",
            "schedules",
            "c.yaml:7:25: error: schedules.backup.alerts.fast: must be shorter than slow",
        ),
        (
            "timeout: 30m\nalerts: {slow: 30m}",
            "schedules",
            "c.yaml:8:5: error: schedules.backup.alerts: alerts.slow is 30m, but the timeout "
            "stops a run at 30m, so it could never notify",
        ),
        (
            "alerts: {not_started_by: 5m}",
            "commands",
            "c.yaml:6:5: error: commands.backup.alerts: alerts.not_started_by needs a nominal "
            "time, which only schedules have",
        ),
        (
            "alerts: {slowly: auto}",
            "schedules",
            "c.yaml:7:14: error: schedules.backup.alerts: unknown key 'slowly'",
        ),
    ],
)
def test_bad_alerts_are_reported_where_they_are(body: str, section: str, expected: str) -> None:
    found = errors(body, section)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_alerts_load_auto_and_durations() -> None:
    text = textwrap.dedent(
        """
        version: 1
        project: demo
        schedules:
          backup:
            rate: 1d
            command: ["true"]
            alerts: {slow: auto, fast: 10m, not_started_by: 5m}
        """
    )
    spec = load_catalog_text(text, "c.yaml").catalog.schedules["backup"]
    assert spec.alerts == Alerts(slow="auto", fast=10 * MIN, not_started_by=5 * MIN)
    assert spec.model_dump(mode="json")["alerts"] == {
        "slow": "auto",
        "fast": "10m",
        "not_started_by": "5m",
    }


# -- what the notice says -------------------------------------------------------------


def test_slack_and_webhook_say_the_threshold_the_value_and_where_it_came_from() -> None:
    threshold = slow_threshold(AUTO, minutes(45, 45, 44, 46, 45))
    alert = decide_slow(threshold, T0, T0 + timedelta(minutes=100), timedelta(hours=2))
    assert alert is not None
    run = Run(
        7,
        "nightly-backup",
        "schedule",
        "schedule",
        "running",
        T0,
        started_at=T0,
        detail={"notice": {"event": alert.event, "why": alert.why}, "alert": alert.detail()},
    )
    notice = RunNotice.from_run(run, project="newsroom")
    assert notice.event_type == "run.slow"
    assert notice.summary == (
        "nightly-backup: still running after 1h40m, over the threshold of 1h30m "
        "(auto: 2 x the median (45m) of the last 5 successful runs)"
    )
    body = webhook_payload(notice, delivery_id="d", occurred_at=T0)
    assert body["type"] == "run.slow"
    assert body["policy"] is None
    assert body["alert"]["value"] == "1h40m"
    assert body["alert"]["threshold"] == "1h30m"
    assert body["alert"]["source"] == "auto"
    message = chat_message("#ops", notice)
    assert message["blocks"][0]["text"]["text"] == ":hourglass: nightly-backup is running slow"
    fields = " ".join(f["text"] for f in message["blocks"][1]["fields"])
    assert "*Value*\n1h40m" in fields
    assert "*Threshold*\n1h30m (auto)" in fields
    assert "2 x the median (45m) of the last 5 successful runs" in fields


def test_a_recovery_notice_reads_as_one() -> None:
    why = "recovered after 3 consecutive failures"
    run = Run(
        9,
        "nightly-backup",
        "schedule",
        "schedule",
        "succeeded",
        T0,
        detail={"notice": {"event": "run.recovered", "why": why, "streak": 0}},
    )
    notice = RunNotice.from_run(run)
    body = webhook_payload(notice, delivery_id="d", occurred_at=T0)
    assert (body["type"], body["policy"], body["alert"]) == (
        "run.recovered",
        {"why": why, "consecutive_failures": 0},
        None,
    )
    message = chat_message("#ops", notice)
    assert message["blocks"][0]["text"]["text"] == ":white_check_mark: nightly-backup recovered"
    assert notice.summary == f"nightly-backup: recovered ({why})"
