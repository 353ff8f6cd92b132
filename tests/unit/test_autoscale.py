"""The autoscale decision and the rollout steps, as pure functions of their inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.catalog.model import Autoscale
from jobdeck.workers.autoscale import ScaleState, decide_replicas, target_replicas
from jobdeck.workers.rollout import ReplicaView, converge
from jobdeck.workers.supervisor import Backoff

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = Autoscale(min=1, max=6, backlog_per_replica=100, cooldown=timedelta(seconds=60))


@pytest.mark.parametrize(
    ("visible", "expected"),
    [(0, 1), (1, 1), (100, 1), (101, 2), (250, 3), (600, 6), (601, 6), (10_000, 6)],
)
def test_the_target_is_the_backlog_per_replica_rounded_up_within_bounds(
    visible: int, expected: int
) -> None:
    assert target_replicas(POLICY, visible) == expected


def test_min_zero_scales_to_nothing_when_the_queue_is_empty() -> None:
    policy = Autoscale(min=0, max=3, backlog_per_replica=10)
    assert target_replicas(policy, 0) == 0
    assert target_replicas(policy, 1) == 1


def test_the_first_decision_takes_the_target() -> None:
    decision = decide_replicas(POLICY, 250, None, T0)
    assert (decision.desired, decision.action) == (3, "start")
    assert decision.changed


def test_scaling_out_is_immediate() -> None:
    decision = decide_replicas(POLICY, 450, ScaleState(1), T0)
    assert (decision.desired, decision.action, decision.target) == (5, "out", 5)


def test_scaling_in_waits_for_a_whole_cooldown_of_lower_backlog() -> None:
    state = ScaleState(4)
    first = decide_replicas(POLICY, 0, state, T0)
    assert (first.desired, first.action) == (4, "cooldown")
    assert first.state.lower_since == T0
    assert not first.changed
    later = decide_replicas(POLICY, 0, first.state, T0 + timedelta(seconds=59))
    assert (later.desired, later.action) == (4, "cooldown")
    assert later.state.lower_since == T0
    done = decide_replicas(POLICY, 0, later.state, T0 + timedelta(seconds=60))
    assert (done.desired, done.action) == (1, "in")
    assert done.state == ScaleState(1, None)


def test_a_burst_during_the_cooldown_restarts_it() -> None:
    waiting = decide_replicas(POLICY, 0, ScaleState(3), T0)
    assert waiting.action == "cooldown"
    burst = decide_replicas(POLICY, 300, waiting.state, T0 + timedelta(seconds=30))
    assert (burst.desired, burst.action) == (3, "hold")
    assert burst.state.lower_since is None
    again = decide_replicas(POLICY, 0, burst.state, T0 + timedelta(seconds=70))
    assert again.action == "cooldown"
    assert again.state.lower_since == T0 + timedelta(seconds=70)


def test_the_cooldown_can_be_overridden() -> None:
    waiting = decide_replicas(POLICY, 0, ScaleState(2), T0, cooldown=timedelta(seconds=1))
    done = decide_replicas(
        POLICY, 0, waiting.state, T0 + timedelta(seconds=1), cooldown=timedelta(seconds=1)
    )
    assert (done.desired, done.action) == (1, "in")


def test_new_bounds_apply_at_once() -> None:
    narrower = Autoscale(min=2, max=3, backlog_per_replica=100)
    assert decide_replicas(narrower, 0, ScaleState(5), T0).desired == 3
    assert decide_replicas(narrower, 0, ScaleState(1), T0).desired == 2


def test_a_decision_reads_as_an_event() -> None:
    shown = decide_replicas(POLICY, 250, ScaleState(1), T0).to_json(T0)
    assert shown == {
        "at": T0.isoformat(),
        "action": "out",
        "desired": 3,
        "target": 3,
        "visible": 250,
        "reason": "250 visible, 100 per replica",
    }


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(base=timedelta(seconds=1), most=timedelta(seconds=10))
    delays = [backoff.delay(n).total_seconds() for n in range(7)]
    assert delays == [0, 1, 2, 4, 8, 10, 10]


# -- rollout -----------------------------------------------------------------------------


def view(run_id: int, current: bool = True, state: str = "running") -> ReplicaView:
    return ReplicaView(run_id, current, state)  # type: ignore[arg-type]


def test_missing_replicas_start_and_extra_ones_stop_newest_first() -> None:
    assert converge([view(1)], 3, singleton=False, may_start=True).start == 2
    assert converge([view(1)], 3, singleton=False, may_start=False).start == 0
    steps = converge([view(1), view(2), view(3)], 1, singleton=False, may_start=True)
    assert steps.stop == ((3, "scaled_in"), (2, "scaled_in"))


def test_a_change_rolls_one_replica_at_a_time_new_first() -> None:
    old = [view(1, False), view(2, False)]
    assert converge(old, 2, singleton=False, may_start=True).start == 1
    # While the new one starts, nothing else happens.
    starting = [*old, view(3, True, "starting")]
    assert converge(starting, 2, singleton=False, may_start=True) == converge(
        [], 0, singleton=False, may_start=True
    )
    # Once it runs, the oldest old one stops.
    running = [*old, view(3)]
    assert converge(running, 2, singleton=False, may_start=True).stop == ((1, "changed"),)
    # While it stops, nothing else; once gone, the next new one starts.
    stopping = [view(1, False, "stopping"), view(2, False), view(3)]
    assert converge(stopping, 2, singleton=False, may_start=True).start == 0
    assert converge([view(2, False), view(3)], 2, singleton=False, may_start=True).start == 1
    last = [view(2, False), view(3), view(4)]
    assert converge(last, 2, singleton=False, may_start=True).stop == ((2, "changed"),)


def test_a_singleton_stops_its_old_process_before_starting_a_new_one() -> None:
    steps = converge([view(1, False)], 1, singleton=True, may_start=True)
    assert (steps.start, steps.stop) == (0, ((1, "changed"),))
    assert converge([view(1, False, "stopping")], 1, singleton=True, may_start=True).start == 0
    assert converge([], 1, singleton=True, may_start=True).start == 1
    assert converge([], 1, singleton=True, may_start=False).start == 0


def test_desired_zero_stops_everything_with_its_reason() -> None:
    steps = converge(
        [view(2), view(1, False), view(3, True, "stopping")],
        0,
        singleton=False,
        may_start=True,
        zero_reason="suspended",
    )
    assert steps.stop == ((1, "suspended"), (2, "suspended"))
