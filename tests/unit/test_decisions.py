"""The run workflow's pure decisions (overlap, retry, catch-up) and what the driver
records of an outcome, at fixed instants and without a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.cadence import CronCadence, RateCadence
from jobdeck.catalog.model import Retry
from jobdeck.execute import RunResult
from jobdeck.execute.outcome import outcome_of, parse_iso
from jobdeck.workflow.decisions import (
    CATCHUP_ALL_LIMIT,
    MISSED_RECORD_LIMIT,
    ActiveRun,
    RetryState,
    decide_catchup,
    decide_overlap,
    decide_retry,
)
from jobdeck.workflow.outcome import start_timings

T0 = datetime(2026, 3, 8, 10, 0, tzinfo=UTC)
RUNNING = ActiveRun(1, waiting=False)
WAITING = ActiveRun(2, waiting=True)


def retry(**fields: object) -> Retry:
    return Retry.model_validate(fields)


# -- overlap --------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["skip", "buffer_one", "cancel_other", "allow"])
def test_a_fire_with_nothing_active_starts_under_every_policy(policy: str) -> None:
    decision = decide_overlap(policy, [])  # type: ignore[arg-type]
    assert (decision.action, decision.cancel) == ("start", ())


def test_skip_skips_while_a_run_is_active_running_or_waiting() -> None:
    assert decide_overlap("skip", [RUNNING]).action == "skip"
    assert decide_overlap("skip", [WAITING]).action == "skip"


def test_buffer_one_buffers_one_run_and_skips_a_second_waiter() -> None:
    assert decide_overlap("buffer_one", [RUNNING]).action == "buffer"
    assert decide_overlap("buffer_one", [RUNNING, WAITING]).action == "skip"
    assert decide_overlap("buffer_one", [WAITING]).action == "skip"


def test_cancel_other_cancels_every_active_run_then_starts() -> None:
    decision = decide_overlap("cancel_other", [RUNNING, WAITING])
    assert (decision.action, decision.cancel) == ("cancel_and_start", (1, 2))


def test_allow_starts_beside_active_runs() -> None:
    decision = decide_overlap("allow", [RUNNING, WAITING])
    assert (decision.action, decision.cancel) == ("start", ())


# -- retry ----------------------------------------------------------------------------


def test_launch_errors_are_retried_with_doubling_backoff_up_to_the_limit() -> None:
    policy = retry(launch=3, backoff="10s")
    spent = RetryState()
    delays = []
    for _ in range(3):
        decision = decide_retry("launch_error", "failed", spent, policy)
        assert decision is not None
        delays.append(decision.delay)
        spent = decision.state
    assert delays == [timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=40)]
    assert spent == RetryState(launch=3, failure=0)
    assert decide_retry("launch_error", "failed", spent, policy) is None


def test_the_backoff_is_capped_at_an_hour() -> None:
    policy = retry(launch=20, backoff="10m")
    decision = decide_retry("launch_error", "failed", RetryState(launch=5), policy)
    assert decision is not None
    assert decision.delay == timedelta(hours=1)  # 10m * 32 would be 5h20m


def test_application_failures_are_not_retried_by_default() -> None:
    assert decide_retry("exit_code", "failed", RetryState(), Retry()) is None
    assert decide_retry("oom_killed", "failed", RetryState(), Retry()) is None


def test_application_failures_are_retried_when_asked_counting_apart_from_launches() -> None:
    policy = retry(launch=1, failure=2, backoff="1s")
    first = decide_retry("exit_code", "failed", RetryState(launch=1), policy)
    assert first is not None
    assert (first.delay, first.state) == (timedelta(seconds=1), RetryState(1, 1))
    second = decide_retry("oom_killed", "failed", first.state, policy)
    assert second is not None
    assert (second.delay, second.state) == (timedelta(seconds=2), RetryState(1, 2))
    assert decide_retry("exit_code", "failed", second.state, policy) is None


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("timeout", "timed_out"),
        ("cancelled", "cancelled"),
        ("overlap", "cancelled"),
        (None, "succeeded"),
        ("engine_restart", "lost"),
        ("shim_error", "failed"),
    ],
)
def test_timeouts_cancellations_successes_and_losses_are_never_retried(
    reason: str | None, status: str
) -> None:
    generous = retry(launch=20, failure=20)  # retry.lost is 0 by default
    assert decide_retry(reason, status, RetryState(), generous) is None


@pytest.mark.parametrize("reason", ["node_lost", "engine_restart", "vanished"])
def test_lost_runs_are_retried_up_to_retry_lost_counting_apart(reason: str) -> None:
    policy = retry(launch=1, failure=1, lost=2, backoff="1s")
    first = decide_retry(reason, "lost", RetryState(launch=1, failure=1), policy)
    assert first is not None
    assert (first.delay, first.state) == (timedelta(seconds=1), RetryState(1, 1, 1))
    second = decide_retry(reason, "lost", first.state, policy)
    assert second is not None
    assert (second.delay, second.state) == (timedelta(seconds=2), RetryState(1, 1, 2))
    assert decide_retry(reason, "lost", second.state, policy) is None
    # A failure after lost attempts still has its own count.
    assert decide_retry("exit_code", "failed", RetryState(0, 0, 2), policy) is not None


def test_no_retry_is_left_when_launch_retries_are_zero() -> None:
    assert decide_retry("launch_error", "failed", RetryState(), retry(launch=0)) is None


# -- catch-up -------------------------------------------------------------------------

EVERY_10_MIN = CronCadence("*/10 * * * *")


def test_no_catchup_without_a_previous_fire() -> None:
    decision = decide_catchup(EVERY_10_MIN, None, T0, "all", timedelta(hours=1))
    assert (decision.run, decision.missed) == ((), ())


def test_latest_runs_the_newest_missed_slot_and_records_the_others() -> None:
    # Down from 10:00 to 10:45: slots 10:10 .. 10:40 were missed.
    decision = decide_catchup(
        EVERY_10_MIN, T0, T0 + timedelta(minutes=45), "latest", timedelta(hours=1)
    )
    assert decision.run == (T0 + timedelta(minutes=40),)
    assert decision.missed == tuple(T0 + timedelta(minutes=m) for m in (10, 20, 30))
    assert decision.missed_beyond == 0


def test_latest_runs_nothing_when_the_newest_slot_is_outside_the_window() -> None:
    decision = decide_catchup(
        EVERY_10_MIN, T0, T0 + timedelta(minutes=45), "latest", timedelta(minutes=4)
    )
    assert decision.run == ()
    assert decision.missed == tuple(T0 + timedelta(minutes=m) for m in (10, 20, 30, 40))


def test_all_runs_the_slots_within_the_window_oldest_first() -> None:
    decision = decide_catchup(
        EVERY_10_MIN, T0, T0 + timedelta(minutes=45), "all", timedelta(minutes=25)
    )
    assert decision.run == (
        T0 + timedelta(minutes=20),
        T0 + timedelta(minutes=30),
        T0 + timedelta(minutes=40),
    )
    assert decision.missed == (T0 + timedelta(minutes=10),)


def test_all_runs_at_most_ten_slots_the_newest_ones() -> None:
    every_minute = RateCadence(timedelta(minutes=1))
    decision = decide_catchup(
        every_minute, T0, T0 + timedelta(minutes=15), "all", timedelta(hours=1)
    )
    assert len(decision.run) == CATCHUP_ALL_LIMIT == 10
    assert decision.run[0] == T0 + timedelta(minutes=6)
    assert decision.run[-1] == T0 + timedelta(minutes=15)
    assert decision.missed == tuple(T0 + timedelta(minutes=m) for m in range(1, 6))


def test_none_runs_nothing_and_records_every_missed_slot() -> None:
    decision = decide_catchup(
        EVERY_10_MIN, T0, T0 + timedelta(minutes=45), "none", timedelta(hours=1)
    )
    assert decision.run == ()
    assert len(decision.missed) == 4


def test_a_slot_exactly_at_the_edge_of_the_window_is_still_within_it() -> None:
    decision = decide_catchup(
        EVERY_10_MIN, T0, T0 + timedelta(minutes=50), "latest", timedelta(minutes=0)
    )
    assert decision.run == (T0 + timedelta(minutes=50),)


def test_a_long_downtime_is_recorded_slot_by_slot_up_to_a_limit_then_summed_up() -> None:
    every_second = RateCadence(timedelta(seconds=1))
    down = MISSED_RECORD_LIMIT + 500
    now = T0 + timedelta(seconds=down)
    decision = decide_catchup(every_second, T0, now, "latest", timedelta(hours=1))
    assert decision.run == (now,)
    assert len(decision.missed) == MISSED_RECORD_LIMIT
    assert decision.missed[-1] == now - timedelta(seconds=1)
    assert decision.missed_beyond == down - 1 - MISSED_RECORD_LIMIT
    assert decision.first_beyond == T0 + timedelta(seconds=1)
    assert decision.last_beyond == T0 + timedelta(seconds=decision.missed_beyond)
    # Every missed slot is accounted for exactly once.
    assert len(decision.run) + len(decision.missed) + decision.missed_beyond == down


def test_catchup_honours_the_schedules_zone() -> None:
    tokyo_nine = CronCadence("0 9 * * *", "Asia/Tokyo")  # 00:00 UTC
    last = datetime(2026, 3, 7, 0, 0, tzinfo=UTC)
    now = datetime(2026, 3, 9, 0, 30, tzinfo=UTC)
    decision = decide_catchup(tokyo_nine, last, now, "latest", timedelta(hours=1))
    assert decision.run == (datetime(2026, 3, 9, 0, 0, tzinfo=UTC),)
    assert decision.missed == (datetime(2026, 3, 8, 0, 0, tzinfo=UTC),)


# -- outcomes and timings (what the driver records) -----------------------------------


def test_a_result_becomes_status_reason_and_detail() -> None:
    result = RunResult(
        "7",
        "failed",
        "oom_killed",
        signal=9,
        started_at="2026-03-08T10:00:00.000Z",
        ended_at="2026-03-08T10:00:01.250Z",
        peak_memory=64 * 1024 * 1024,
    )
    status, reason, fields = outcome_of(result)
    assert (status, reason) == ("failed", "oom_killed")
    assert fields == {
        "exit_code": None,
        "detail": {"signal": 9, "peak_memory": 64 * 1024 * 1024, "duration_ms": 1250.0},
    }


def test_no_result_is_a_lost_run_and_a_supervisor_error_a_failure() -> None:
    assert outcome_of(None) == ("lost", "vanished", {})
    broken = RunResult("7", "failed", "shim_error", error="boom")
    assert outcome_of(broken)[:2] == ("failed", "shim_error")


def test_start_timings_measure_from_the_request_to_the_programs_start() -> None:
    requested = parse_iso("2026-03-08T10:00:00+00:00")
    timings = start_timings(requested, T0 + timedelta(milliseconds=40), "2026-03-08T10:00:00.125Z")
    assert timings == {
        "dispatched_at": "2026-03-08T10:00:00.040000+00:00",
        "process_started_at": "2026-03-08T10:00:00.125000+00:00",
        "dispatch_ms": 125.0,
    }


def test_start_timings_without_a_request_time_or_a_start_stamp() -> None:
    assert start_timings(None, T0, None) == {"dispatched_at": T0.isoformat()}
    # A request time in another zone is the same instant.
    timings = start_timings(parse_iso("2026-03-08T18:59:59+09:00"), T0, None)
    assert timings["dispatch_ms"] == 1000.0
    assert parse_iso("not a time") is None
    assert parse_iso("2026-03-08T10:00:00") is None  # a naive time names no instant
