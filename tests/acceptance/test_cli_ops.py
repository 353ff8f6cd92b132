"""Suspend, resume, status and audit from the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.acceptance.conftest import Jobdeck


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    url: str = request.getfixturevalue("pg_url")
    return {"JOBDECK_STORE": url}


def test_suspend_survives_apply_and_shows_everywhere(
    jobdeck: Jobdeck, store_env: dict[str, str]
) -> None:
    assert jobdeck("apply", "--yes", env=store_env).code == 0
    held = jobdeck(
        "suspend",
        "stale-cache-sweep",
        "--reason",
        "hammering the cache",
        "--until",
        "2h",
        env=store_env,
    )
    assert held.code == 0, held.err
    assert held.out.startswith("suspended schedule stale-cache-sweep until ")

    status = jobdeck("status", "--json", env=store_env).json()
    by_name = {s["name"]: s for s in status["schedules"]}
    assert by_name["stale-cache-sweep"]["suspension"]["reason"] == "hammering the cache"
    assert by_name["ranking-aggregate"]["suspension"] is None
    assert by_name["ranking-aggregate"]["next_fire"].endswith("Z")
    text = jobdeck("status", env=store_env).out
    assert "SUSPENDED by alice until" in text

    plan = jobdeck("plan", env=store_env)
    assert "! schedule stale-cache-sweep: 'hammering the cache' by alice" in plan.out

    audit = jobdeck("audit", "--json", env=store_env).json()
    assert [(e["action"], e["target"]) for e in audit] == [
        ("suspend", "schedule stale-cache-sweep"),
        ("apply", "revision 1"),
    ]

    resumed = jobdeck("resume", "stale-cache-sweep", env={**store_env, "JOBDECK_USER": "bob"})
    assert resumed.code == 0, resumed.err
    assert jobdeck("status", "--json", env=store_env).json()["schedules"][2]["suspension"] is None
    assert jobdeck("audit", "--json", env=store_env).json()[0]["actor"] == "bob"


def test_unknown_names_exit_1(jobdeck: Jobdeck) -> None:
    not_applied = jobdeck("suspend", "x", "--reason", "r")
    assert not_applied.code == 1
    assert "nothing is applied yet" in not_applied.err
    jobdeck("apply", "--yes")
    unknown = jobdeck("suspend", "no-such-batch", "--reason", "r")
    assert unknown.code == 1
    assert "no schedule, worker, command or monitor named 'no-such-batch'" in unknown.err
    assert jobdeck("resume", "ranking-aggregate").code == 1


def test_status_before_any_apply(jobdeck: Jobdeck) -> None:
    result = jobdeck("status")
    assert result.code == 0
    assert "Nothing applied yet" in result.out
