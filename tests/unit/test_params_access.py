"""Who may run a command (deny by default), group membership caching, and the pure
decision of the invocation path."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobdeck.catalog.model import Catalog
from jobdeck.clock import FakeClock
from jobdeck.commands.authorize import Caller, authorize, needs_usergroups
from jobdeck.commands.invoke import Refused, prepare
from jobdeck.commands.usergroups import UserGroups
from jobdeck.store.records import Suspension

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def catalog(**command: Any) -> Catalog:
    spec: dict[str, Any] = {
        "command": ["echo", "{msg}"],
        "params": {"msg": {"type": "string", "required": True}},
        "allow": {"channels": ["C1"], "users": ["U1"], "usergroups": ["S1"]},
        **command,
    }
    return Catalog.model_validate({"version": 1, "project": "p", "commands": {"say": spec}})


ALLOW = catalog().commands["say"].allow


@pytest.mark.parametrize(
    ("caller", "groups", "allowed", "rule"),
    [
        (Caller("slack", "U9", "C1"), set(), True, "channel C1"),
        (Caller("slack", "U1", "C9"), set(), True, "user U1"),
        (Caller("slack", "U9", "C9"), {"S1"}, True, "usergroup S1"),
        (Caller("slack", "U9", "C9"), {"S2"}, False, None),
        (Caller("slack", "U9", None), set(), False, None),
        (Caller("cli", "alice@host"), set(), True, "operator (cli)"),
        (Caller("api", "deploy-bot"), set(), True, "operator (api)"),
    ],
)
def test_deny_by_default(caller: Caller, groups: set[str], allowed: bool, rule: str | None) -> None:
    decision = authorize(ALLOW, caller, groups)
    assert decision.allowed is allowed
    if rule:
        assert decision.rule == rule


def test_an_empty_allow_list_refuses_every_chat_caller() -> None:
    empty = catalog(allow={}).commands["say"].allow
    assert not authorize(empty, Caller("slack", "U1", "C1"), {"S1"}).allowed


def test_groups_are_looked_up_only_when_they_decide() -> None:
    assert not needs_usergroups(ALLOW, Caller("slack", "U1", "C9"))
    assert not needs_usergroups(ALLOW, Caller("slack", "U9", "C1"))
    assert not needs_usergroups(ALLOW, Caller("cli", "U9"))
    assert needs_usergroups(ALLOW, Caller("slack", "U9", "C9"))


def test_memberships_are_cached_for_the_ttl_on_the_clock() -> None:
    asyncio.run(_memberships_are_cached())


async def _memberships_are_cached() -> None:
    clock = FakeClock(NOW)
    calls: list[str] = []
    members = {"S1": ["U1", "U2"], "S2": ["U3"]}

    async def fetch(group: str) -> Collection[str]:
        calls.append(group)
        if group == "S3":
            raise RuntimeError("usergroup_not_found")
        return members[group]

    groups = UserGroups(fetch, clock, ttl=timedelta(seconds=60))
    assert await groups.groups_of("U2", ["S1", "S2", "S3"]) == {"S1"}
    members["S1"] = ["U1"]
    clock.advance(timedelta(seconds=59))
    assert await groups.groups_of("U2", ["S1"]) == {"S1"}
    assert calls == ["S1", "S2", "S3"]
    clock.advance(timedelta(seconds=1))
    assert await groups.groups_of("U2", ["S1", "S3"]) == set()
    assert calls == ["S1", "S2", "S3", "S1", "S3"]  # a failed lookup is not cached


def refusal(**kwargs: Any) -> Refused:
    arguments: dict[str, Any] = {
        "catalog": catalog(),
        "name": "say",
        "given": {"msg": "hi"},
        "caller": Caller("slack", "U1", "C1"),
        "member_of": set(),
        "suspensions": [],
        "now": NOW,
        **kwargs,
    }
    with pytest.raises(Refused) as caught:
        prepare(**arguments)
    return caught.value


def test_prepare_renders_the_argv() -> None:
    prepared = prepare(catalog(), "say", {"msg": "a b"}, Caller("cli", "me"), set(), [], NOW)
    assert prepared.argv == ["echo", "a b"]
    assert prepared.decision.rule == "operator (cli)"


def test_prepare_refuses_with_a_kind_and_a_reason() -> None:
    assert refusal(catalog=None).kind == "unknown"
    assert "known: say" in refusal(name="shout").message
    assert refusal(caller=Caller("slack", "U9", "C9")).kind == "forbidden"
    invalid = refusal(given={})
    assert (invalid.kind, [p.param for p in invalid.problems]) == ("invalid", ["msg"])
    assert refusal(catalog=catalog(enabled=False)).kind == "disabled"
    held = Suspension(1, "command", "say", "bad push yesterday", "ed", NOW - timedelta(hours=1))
    suspended = refusal(suspensions=[held])
    assert suspended.kind == "suspended"
    assert suspended.message == "command say is suspended by ed: bad push yesterday"
    expired = Suspension(2, "command", "say", "x", "ed", NOW - timedelta(hours=2), until=NOW)
    assert prepare(catalog(), "say", {"msg": "x"}, Caller("cli", "me"), set(), [expired], NOW)


def test_an_unauthorized_caller_learns_nothing_about_the_params() -> None:
    refused = refusal(caller=Caller("slack", "U9", "C9"), given={})
    assert refused.kind == "forbidden"
    assert refused.problems == []
