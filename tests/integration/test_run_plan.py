"""The typed run plan reads the detail a previous release wrote, key for key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobdeck.store import Store
from jobdeck.store.records import CancelRequest, Retries, RunPlan

T0 = datetime(2024, 3, 10, 9, 0, tzinfo=UTC)

# The detail of runs as the previous release wrote them: plain dicts, control data and
# facts shown to people side by side.
OLD_DETAILS: list[dict[str, Any]] = [
    {"lateness_ms": 12.5, "catchup_of": "engine_down", "cancels": [3, 4], "exclusive": True},
    {"lateness_ms": 0.2, "buffered": True, "exclusive": True},
    {"lateness_ms": 1.0, "active_runs": [7]},
    {
        "not_before": "2024-03-10T09:00:30+00:00",
        "backoff_ms": 30000.0,
        "retry_of_reason": "exit_code",
        "retries": {"launch": 0, "failure": 2},
    },
    {
        "requested_at": "2024-03-10T09:00:00+00:00",
        "via": "slack",
        "channel": "C1",
        "argv": ["push", "--all"],
        "cancel_requested": {"cancelled_by": "ops", "cancel_reason": None},
    },
    {"spec_hash": "ab12", "singleton": False, "restart_of": 9, "failures": 1},
    {"spec_hash": "cd34", "singleton": True, "stop_reason": "scaled_in", "grace_s": 30.0},
]


def test_a_run_written_by_the_previous_release_reads_back_the_same(store: Store) -> None:
    ids = []
    with store.transaction() as tx:
        for detail in OLD_DETAILS:
            run = tx.runs.create_run(
                job="tick", kind="schedule", trigger="schedule", status="pending",
                created_at=T0, host="h1", detail=detail,
            )  # fmt: skip
            ids.append(run.id)
    runs = [store.runs.run(run_id) for run_id in ids]
    assert [r.detail if r else None for r in runs] == OLD_DETAILS
    plans = [r.plan for r in runs if r is not None]
    assert plans[0] == RunPlan(catchup_of="engine_down", cancels=(3, 4), exclusive=True)
    assert plans[1] == RunPlan(buffered=True, exclusive=True)
    assert plans[2] == RunPlan()
    assert plans[3] == RunPlan(
        not_before=T0 + timedelta(seconds=30), retries=Retries(launch=0, failure=2)
    )
    assert plans[4] == RunPlan(
        requested_at=T0, argv=("push", "--all"), cancel_requested=CancelRequest("ops", None)
    )
    assert plans[5] == RunPlan(spec_hash="ab12", singleton=False)
    assert plans[6] == RunPlan(spec_hash="cd34", singleton=True, stop_reason="scaled_in")


def test_a_plan_writes_the_keys_it_always_had() -> None:
    for detail in OLD_DETAILS:
        plan = RunPlan.of(detail)
        written = plan.detail()
        # Its own keys, with the values the previous release wrote, and nothing else.
        assert written == {k: v for k, v in detail.items() if k in written}
        assert RunPlan.of(written) == plan
