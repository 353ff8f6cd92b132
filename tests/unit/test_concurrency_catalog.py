"""The ``concurrency`` field of schedules and commands: loaded, published in the schema,
and every mistake reported at its ``FILE:LINE:COL`` (one limit per key, across items)."""

from __future__ import annotations

import textwrap

import pytest

from jobdeck.catalog.load import CatalogError, LoadedCatalog, load_catalog_text
from jobdeck.catalog.model import Catalog

HEAD = """
version: 1
project: demo
schedules:
  nightly:
    cron: "0 3 * * *"
    command: [echo, hi]
    concurrency: {key: db-maintenance, limit: 2}
commands:
  vacuum:
    command: [echo, hi]
"""


def load(extra: str) -> LoadedCatalog:
    return load_catalog_text(textwrap.dedent(HEAD).lstrip("\n") + extra, "c.yaml")


def errors(extra: str) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load(extra)
    return [str(d) for d in info.value.diagnostics]


def test_a_key_is_shared_by_items_and_its_limit_defaults_to_one() -> None:
    loaded = load("    concurrency: {key: db-maintenance, limit: 2}\n")
    nightly = loaded.catalog.schedules["nightly"].concurrency
    vacuum = loaded.catalog.commands["vacuum"].concurrency
    assert nightly is not None
    assert vacuum is not None
    assert (nightly.key, nightly.limit) == (vacuum.key, vacuum.limit) == ("db-maintenance", 2)
    alone = load("    concurrency: {key: reports}\n").catalog.commands["vacuum"].concurrency
    assert alone is not None
    assert alone.limit == 1


def test_two_items_naming_one_key_with_different_limits_say_who_set_it_first() -> None:
    assert errors("    concurrency: {key: db-maintenance}\n") == [
        "c.yaml:11:24: error: commands.vacuum.concurrency: key 'db-maintenance' has limit 1 "
        "here, but schedules.nightly (line 7) set it to 2 first; give every item naming the "
        "key the same limit"
    ]


def test_a_bad_key_or_limit_is_reported_where_it_is() -> None:
    found = errors("    concurrency: {key: Db Maintenance, limit: 0}\n")
    assert found[0].startswith("c.yaml:11:24: error: commands.vacuum.concurrency.key: invalid")
    assert found[1] == (
        "c.yaml:11:47: error: commands.vacuum.concurrency.limit: must be at least 1, found 0; "
        "raise it"
    )
    assert errors("    concurrency: {limit: 2}\n") == [
        "c.yaml:11:5: error: commands.vacuum.concurrency: missing required key 'key'; add it"
    ]


def test_workers_and_defaults_take_no_key() -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog_text(
            "version: 1\nproject: demo\ndefaults:\n  concurrency: {key: db}\n", "c.yaml"
        )
    assert str(info.value.diagnostics[0]).startswith(
        "c.yaml:4:3: error: defaults: unknown key 'concurrency'"
    )


def test_the_schema_publishes_the_field() -> None:
    document = Catalog.model_json_schema()
    field = document["$defs"]["Concurrency"]
    assert set(field["properties"]) == {"key", "limit"}
    assert field["properties"]["limit"]["default"] == 1
    assert field["properties"]["limit"]["minimum"] == 1
    assert "concurrency" in document["$defs"]["Schedule"]["properties"]
    assert "concurrency" in document["$defs"]["Command"]["properties"]
    assert "concurrency" not in document["$defs"]["Worker"]["properties"]
