"""Removing a run's cgroup while its shim removes it too: both succeed, neither raises."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from jobdeck.execute import cgroups
from tests.integration.test_execute_harness import HIERARCHY, needs_cgroups


def test_a_group_that_is_already_gone_counts_as_removed(tmp_path: Path) -> None:
    assert cgroups.remove(tmp_path / "never-made")


def _remove(group: Path, results: list[bool], errors: list[BaseException]) -> None:
    try:
        results.append(cgroups.remove(group))
    except BaseException as exc:  # the race must not surface as an error
        errors.append(exc)


@needs_cgroups
def test_two_removers_racing_on_real_groups_both_succeed() -> None:
    assert HIERARCHY is not None
    base = HIERARCHY.memory / "jobdeck" / f"test-remove-{uuid.uuid4().hex[:8]}"
    try:
        for round_ in range(30):
            group = base / f"run-{round_}"
            (group / "inner").mkdir(parents=True)
            results: list[bool] = []
            errors: list[BaseException] = []
            racers = [
                threading.Thread(target=_remove, args=(group, results, errors)) for _ in range(3)
            ]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join()
            assert errors == []
            assert results == [True, True, True]
            assert not group.exists()
    finally:
        cgroups.remove(base)
    assert not base.exists()
