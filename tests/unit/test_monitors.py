"""Monitors: the catalog section (errors at FILE:LINE:COL), ping tokens, and the pure
decisions about slots, pings and timeouts, at fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobdeck.api.ping_tokens import ping_keys, token_for, token_valid
from jobdeck.cadence import CronCadence, RateCadence
from jobdeck.catalog.monitors import DEFAULT_GRACE, DEFAULT_TIMEOUT
from jobdeck.workflow.monitor_slots import (
    SLOT_LIMIT,
    due_slots,
    ping_outcome,
    slot_met,
    timed_out,
)
from tests.unit.test_catalog_errors import errors, loads

T0 = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
KEY = "k" * 32

# --- the catalog -----------------------------------------------------------------------


def test_a_monitor_takes_the_defaults_zone_and_notify() -> None:
    catalog = loads(
        """
        version: 1
        project: demo
        timezone: Asia/Tokyo
        defaults:
          notify: ["slack:#ops"]
          notify_policy: {after: 2}
        monitors:
          nightly-backup: {cron: "0 3 * * *", grace: 30m}
          often: {rate: 5m, notify: []}
        """
    ).catalog
    backup = catalog.monitors["nightly-backup"]
    assert backup.timezone == "Asia/Tokyo"
    assert backup.grace == timedelta(minutes=30)
    assert backup.timeout == DEFAULT_TIMEOUT
    assert backup.notify == ["slack:#ops"]
    assert backup.notify_policy.after == 2
    often = catalog.monitors["often"]
    assert often.grace == DEFAULT_GRACE
    assert often.timezone is None
    assert often.notify == []
    assert catalog.counts()["monitors"] == 2


def test_monitor_errors_point_at_the_key() -> None:
    assert errors(
        """
        version: 1
        project: demo
        schedules:
          backup: {rate: 1h, command: [x]}
        monitors:
          backup: {cron: "0 3 * * *"}
          b: {rate: 5m, timezone: UTC}
          c: {grace: 1h}
          d: {cron: "0 3 * * *", grace: 0s}
          e: {cron: "0 3 * * *", alerts: {not_started_by: 5m}}
          f: {cron: "0 3 * * *", timeout: 10m, alerts: {slow: 10m}}
          g: {cron: "0 3 * * *", pool: x}
        """
    ) == [
        "c.yaml:6:3: error: monitors.backup: the name is taken by schedules.backup; a "
        "monitor's runs are recorded under its name, so rename one of them",
        "c.yaml:7:17: error: monitors.b.timezone: has no effect on a rate, which counts "
        "elapsed time; remove it",
        "c.yaml:8:3: error: monitors.c: neither 'cron' nor 'rate' is given; add one of them",
        "c.yaml:9:26: error: monitors.d.grace: must be greater than zero; e.g. 15m",
        "c.yaml:10:26: error: monitors.e.alerts: alerts.not_started_by does not apply to a "
        "monitor: its 'grace' says when a slot's ping is late; remove it",
        "c.yaml:11:40: error: monitors.f.alerts: alerts.slow is not shorter than the "
        "timeout, so it could never notify; lower it below the timeout",
        "c.yaml:12:26: error: monitors.g: unknown key 'pool'; remove it or use one of: "
        "description, cron, rate, timezone, grace, timeout, notify, notify_policy, alerts, "
        "shell, env",
    ]


# --- tokens ----------------------------------------------------------------------------


def test_tokens_are_derived_per_monitor_and_checked_against_current_and_previous_keys() -> None:
    token = token_for(KEY, "backup")
    assert token == token_for(KEY, "backup")
    assert token != token_for(KEY, "backup2")
    assert token != token_for("o" * 32, "backup")
    assert len(token) == 32
    assert token.isascii()
    keys = ping_keys({"JOBDECK_PING_KEY": KEY})
    assert token_valid(keys, "backup", token)
    assert not token_valid(keys, "backup2", token)
    assert not token_valid(keys, "backup", token[:-1])
    assert not token_valid(keys, "backup", "é" * 32)
    rotated = ping_keys({"JOBDECK_PING_KEY": "n" * 32, "JOBDECK_PING_KEY_PREVIOUS": KEY})
    assert token_valid(rotated, "backup", token)
    assert token_valid(rotated, "backup", token_for("n" * 32, "backup"))


def test_without_a_key_or_with_a_short_one_no_token_is_valid() -> None:
    assert ping_keys({}) == []
    assert ping_keys({"JOBDECK_PING_KEY": "short"}) == []
    assert not token_valid([], "backup", token_for(KEY, "backup"))
    assert not token_valid([], "backup", "")


# --- slots -----------------------------------------------------------------------------


def test_a_slot_is_due_once_its_grace_has_passed() -> None:
    daily = CronCadence("0 3 * * *", "UTC")
    grace = timedelta(minutes=30)
    before = T0 - timedelta(hours=1)
    assert due_slots(daily, grace, before, T0 + timedelta(minutes=29)).slots == []
    assert due_slots(daily, grace, before, T0 + timedelta(minutes=30)).slots == [T0]
    # A slot already decided (``after``) is not due again.
    assert due_slots(daily, grace, T0, T0 + timedelta(hours=2)).slots == []


def test_after_a_long_absence_only_the_newest_slots_are_decided() -> None:
    minutely = RateCadence(timedelta(minutes=1))
    due = due_slots(minutely, timedelta(minutes=1), T0, T0 + timedelta(hours=3))
    assert len(due.slots) == SLOT_LIMIT
    assert due.dropped == 179 - SLOT_LIMIT
    assert due.slots[-1] == T0 + timedelta(minutes=179)


def test_a_ping_counts_from_a_minute_before_its_slot_to_grace_after_it() -> None:
    grace = timedelta(minutes=30)
    assert slot_met(T0, grace, [T0 + timedelta(minutes=30)])
    assert slot_met(T0, grace, [T0 - timedelta(minutes=1)])
    assert not slot_met(T0, grace, [T0 + timedelta(minutes=30, seconds=1)])
    assert not slot_met(T0, grace, [T0 - timedelta(minutes=1, seconds=1)])
    assert not slot_met(T0, grace, [])
    # A grace shorter than a minute bounds the early side too.
    short = timedelta(seconds=20)
    assert not slot_met(T0, short, [T0 - timedelta(seconds=21)])
    assert slot_met(T0, short, [T0 - timedelta(seconds=20)])


def test_a_start_times_out_at_its_timeout() -> None:
    assert not timed_out(T0, timedelta(hours=1), T0 + timedelta(minutes=59, seconds=59))
    assert timed_out(T0, timedelta(hours=1), T0 + timedelta(hours=1))


def test_what_an_end_ping_records() -> None:
    assert ping_outcome("success", None) == ping_outcome("success", None)
    assert (ping_outcome("success", None).status, ping_outcome("success", None).exit_code) == (
        "succeeded",
        None,
    )
    assert ping_outcome("success", 0).status == "succeeded"
    assert (ping_outcome("success", 3).status, ping_outcome("success", 3).exit_code) == (
        "failed",
        3,
    )
    assert ping_outcome("fail", None).status == "failed"
    assert ping_outcome("fail", 0).status == "failed"


# --- import crontab --monitor ------------------------------------------------------------


def test_only_jobs_that_can_be_wrapped_faithfully_are_watched() -> None:
    from jobdeck.catalog.crontab_monitor import monitor_crontab

    text = (
        "0 3 * * * /opt/backup.sh  # nightly\n"
        "30 2 * * * date +%s\n"
        "#0 1 * * * /opt/off.sh\n"
        "@reboot /opt/start.sh\n"
        "*/5 * * * * printf '100\\%'\n"
    )
    result = monitor_crontab(text, url_for=lambda name: f"http://h/ping/{name}/T", source="c")
    assert result.monitors == ["backup", "printf"]
    lines = result.crontab.split("\n")
    assert lines[0].startswith('0 3 * * * curl -fsS --connect-timeout 2 -m 5 -o /dev/null "')
    assert "( /opt/backup.sh );" in lines[0]
    assert lines[0].endswith("exit $jobdeck_rc")
    assert lines[1:4] == ["30 2 * * * date +%s", "#0 1 * * * /opt/off.sh", "@reboot /opt/start.sh"]
    assert "( printf '100\\%' );" in lines[4]  # cron's escape kept for cron
    assert "shell: \"printf '100%'\"" in result.yaml  # what sh runs
    assert any("c:2: not watched: an unescaped %" in w for w in result.warnings)
    loaded = loads(result.yaml).catalog
    assert loaded.monitors["backup"].description == "nightly"


def test_the_ping_windows_bound_pings_per_minute() -> None:
    from jobdeck.api.ping import Window

    now = [1000.0]
    window = Window(3, clock=lambda: now[0])
    for _ in range(3):
        assert not window.full("backup")
        window.add("backup")
    assert window.full("backup")
    assert not window.full("other")
    now[0] += 59.9
    assert window.full("backup")
    now[0] += 0.2  # a minute after the first three
    assert not window.full("backup")
