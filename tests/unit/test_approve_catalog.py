"""The ``approve`` field of a command: loaded, published in the schema, and every
mistake reported at its ``FILE:LINE:COL``."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from jobdeck.catalog.load import CatalogError, load_catalog_text
from jobdeck.catalog.model import Catalog

HEAD = """
version: 1
project: demo
commands:
  push:
    command: [echo, hi]
"""


def load(extra: str) -> object:
    return load_catalog_text(textwrap.dedent(HEAD).lstrip("\n") + extra, "c.yaml")


def errors(extra: str) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load(extra)
    return [str(d) for d in info.value.diagnostics]


def test_approve_loads_with_its_default_expiry() -> None:
    loaded = load("    approve: {users: [U0EDITOR], usergroups: [S0DESK]}\n")
    command = loaded.catalog.commands["push"]  # type: ignore[attr-defined]
    assert command.approve.users == ["U0EDITOR"]
    assert command.approve.usergroups == ["S0DESK"]
    assert command.approve.expires == timedelta(minutes=15)


def test_approve_without_any_approver_is_an_error_at_its_line() -> None:
    assert errors("    approve: {expires: 10m}\n") == [
        "c.yaml:6:5: error: commands.push.approve: names no approver: list at least one of "
        "users or usergroups (the requester can never approve their own request)"
    ]


def test_approve_expiry_out_of_range() -> None:
    found = errors("    approve:\n      users: [alice]\n      expires: 8d\n")
    assert found == [
        "c.yaml:8:7: error: commands.push.approve.expires: longer than 7d; an approval "
        "must be asked for again"
    ]


def test_approve_unknown_key_is_an_error() -> None:
    found = errors("    approve:\n      users: [alice]\n      approvers: [bob]\n")
    assert len(found) == 1
    assert found[0].startswith("c.yaml:8:7: error: commands.push.approve")
    assert "approvers" in found[0]


def test_approve_in_the_schema() -> None:
    schema = Catalog.model_json_schema()
    approve = schema["$defs"]["Approve"]
    assert set(approve["properties"]) == {"users", "usergroups", "expires"}
    assert approve["additionalProperties"] is False
    command = schema["$defs"]["Command"]["properties"]["approve"]
    assert {"$ref": "#/$defs/Approve"} in command["anyOf"]
