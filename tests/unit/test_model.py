"""The effective catalog (defaults applied), its JSON Schema, and command parameters."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from jobdeck.catalog.command_parts import Param
from jobdeck.catalog.load import load_catalog, load_catalog_text
from jobdeck.catalog.model import Catalog, Command, Retry, Schedule, Worker
from jobdeck.catalog.params import coerce, render, resolve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "newsroom" / "jobdeck.yaml"


def load(text: str) -> Catalog:
    return load_catalog_text(textwrap.dedent(text).lstrip("\n"), "c.yaml").catalog


# --- defaults ------------------------------------------------------------------------------

WITH_DEFAULTS = """
    version: 1
    project: demo
    timezone: Asia/Tokyo
    defaults:
      timeout: 20m
      kill_grace: 5s
      stop_grace: 7s
      notify: ["slack:#ops"]
      pool: batch
      env: {SHARED: "1", OVERRIDDEN: default}
      memory: 128MiB
      retry: {launch: 1, failure: 2, backoff: 1s}
      overlap: allow
      catchup: none
      capacity: spot
    pools:
      batch: {memory: 1GiB}
      tools: {}
    queues:
      jobs: {}
    schedules:
      plain:
        cron: "0 9 * * *"
        command: [run]
      own:
        cron: "0 9 * * *"
        timezone: Europe/London
        command: [run]
        timeout: 1m
        notify: []
        pool: tools
        env: {OVERRIDDEN: mine, EXTRA: x}
        memory: 64MiB
        retry: {launch: 0}
        overlap: skip
      ticker:
        rate: 30s
        command: [run]
    workers:
      indexer:
        command: [run]
        queue: jobs
        stop_grace: 1s
      reader:
        command: [run]
    commands:
      push:
        command: [run]
        timeout: 2m
      other:
        command: [run]
"""


def test_defaults_fill_unset_fields() -> None:
    plain = load(WITH_DEFAULTS).schedules["plain"]
    assert plain.timeout == timedelta(minutes=20)
    assert plain.kill_grace == timedelta(seconds=5)
    assert plain.notify == ["slack:#ops"]
    assert plain.pool == "batch"
    assert plain.env == {"SHARED": "1", "OVERRIDDEN": "default"}
    assert plain.memory == 128 * 1024**2
    assert plain.retry == Retry(launch=1, failure=2, backoff=timedelta(seconds=1))
    assert plain.overlap == "allow"
    assert plain.catchup == "none"


def test_defaults_never_override_what_an_item_sets() -> None:
    own = load(WITH_DEFAULTS).schedules["own"]
    assert own.timeout == timedelta(minutes=1)
    assert own.notify == []  # an explicit empty list is a choice, not a gap
    assert own.pool == "tools"
    assert own.memory == 64 * 1024**2
    assert own.retry == Retry(launch=0)  # the item's retry, whole; not merged field by field
    assert own.overlap == "skip"
    assert own.kill_grace == timedelta(seconds=5)  # not set by the item: filled


def test_env_merges_with_the_item_winning() -> None:
    own = load(WITH_DEFAULTS).schedules["own"]
    assert own.env == {"SHARED": "1", "OVERRIDDEN": "mine", "EXTRA": "x"}


def test_schedules_get_the_catalog_zone_unless_they_have_one() -> None:
    catalog = load(WITH_DEFAULTS)
    assert catalog.schedules["plain"].timezone == "Asia/Tokyo"
    assert catalog.schedules["own"].timezone == "Europe/London"
    assert catalog.schedules["ticker"].timezone is None  # a rate has no zone


def test_catalog_zone_defaults_to_utc() -> None:
    catalog = load("version: 1\nproject: demo\nschedules:\n  a: {cron: '@daily', command: [x]}\n")
    assert catalog.schedules["a"].timezone == "UTC"


def test_defaults_apply_only_to_fields_an_item_has() -> None:
    catalog = load(WITH_DEFAULTS)
    indexer, reader = catalog.workers["indexer"], catalog.workers["reader"]
    assert indexer.stop_grace == timedelta(seconds=1)
    assert reader.stop_grace == timedelta(seconds=7)
    assert reader.capacity == "spot"
    assert reader.pool == "batch"
    assert not hasattr(reader, "timeout")  # workers have no timeout to fill
    push, other = catalog.commands["push"], catalog.commands["other"]
    assert push.timeout == timedelta(minutes=2)
    assert other.timeout == timedelta(minutes=20)
    assert other.notify == ["slack:#ops"]


def test_without_defaults_the_model_defaults_hold() -> None:
    catalog = load("version: 1\nproject: demo\nschedules:\n  a: {rate: 1m, command: [x]}\n")
    schedule = catalog.schedules["a"]
    assert schedule == Schedule(rate=timedelta(minutes=1), command=["x"])
    assert schedule.timeout == timedelta(hours=1)
    assert schedule.overlap == "skip"
    assert schedule.catchup == "latest"
    assert schedule.retry == Retry(launch=3, failure=0, backoff=timedelta(seconds=10))


def test_the_example_loads_with_its_defaults() -> None:
    catalog = load_catalog(EXAMPLE).catalog
    assert catalog.counts() == {
        "pools": 2,
        "queues": 2,
        "schedules": 5,
        "workers": 2,
        "commands": 1,
        "monitors": 0,
    }
    sitemap = catalog.schedules["sitemap-rebuild"]
    assert sitemap.notify == ["slack:#batch-alerts"]
    assert sitemap.timezone == "Asia/Tokyo"
    assert catalog.commands["breaking-push"].timeout == timedelta(minutes=2)
    assert [kind for kind, _ in catalog.find("feed-indexer")] == ["worker"]


# --- replicas ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, 1),
        ({"replicas": 0}, 0),
        ({"replicas": 3}, 3),
        ({"queue": "q", "autoscale": {"max": 6}}, 0),
        ({"queue": "q", "autoscale": {"min": 2, "max": 6}}, 2),
        ({"singleton": True}, 1),
    ],
)
def test_desired_replicas(spec: dict[str, Any], expected: int) -> None:
    worker = Worker.model_validate({"command": ["run"], **spec})
    assert worker.desired_replicas == expected


# --- JSON Schema ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return Catalog.model_json_schema()


def yaml_data(text: str) -> Any:
    return YAML(typ="safe").load(text)


def test_schema_is_valid_json_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_example_validates_against_the_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(yaml_data(EXAMPLE.read_text()))


@pytest.mark.parametrize(
    "text",
    [
        "version: 2\nproject: demo\n",
        "project: demo\n",
        "version: 1\nproject: Demo\n",
        "version: 1\nproject: demo\ntimout: 1h\n",
        "version: 1\nproject: demo\npools:\n  batch: {memory: 1024}\n",
        "version: 1\nproject: demo\npools:\n  batch: {memory: 1gb}\n",
        "version: 1\nproject: demo\npools:\n  Batch: {}\n",
        "version: 1\nproject: demo\nschedules:\n  a: {rate: 30, command: [x]}\n",
        "version: 1\nproject: demo\nschedules:\n  a: {rate: 1m, command: x}\n",
        "version: 1\nproject: demo\nschedules:\n  a: {rate: 1m, command: [x], overlap: no}\n",
        "version: 1\nproject: demo\ncommands:\n  a: {command: [x], slash: go}\n",
        "version: 1\nproject: demo\ndefaults:\n  notify: ['email:x@example.com']\n",
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(schema: dict[str, Any], text: str) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    assert not validator.is_valid(yaml_data(text))


# --- params: coerce ------------------------------------------------------------------------


def param(**fields: Any) -> Param:
    return Param.model_validate(fields)


@pytest.mark.parametrize(
    ("spec", "raw", "expected"),
    [
        ({}, "hello", "hello"),
        ({}, 42, "42"),
        ({"type": "int"}, "42", 42),
        ({"type": "int"}, " -7 ", -7),
        ({"type": "int"}, 5, 5),
        ({"type": "float"}, "2.5", 2.5),
        ({"type": "float"}, 3, 3.0),
        ({"type": "int", "min": 1, "max": 10}, "10", 10),
        ({"type": "float", "min": 0.5}, "0.5", 0.5),
        ({"max_length": 3}, "abc", "abc"),
        ({"pattern": "[A-Z]{2}-[0-9]+"}, "AB-12", "AB-12"),
        ({"type": "choice", "choices": ["all", "ios"]}, "ios", "ios"),
        ({"type": "url"}, "https://example.com/a?b=c", "https://example.com/a?b=c"),
        ({"type": "url"}, "http://localhost:8000", "http://localhost:8000"),
        ({"type": "bool"}, True, True),
        ({"type": "bool"}, "true", True),
        ({"type": "bool"}, "YES", True),
        ({"type": "bool"}, "on", True),
        ({"type": "bool"}, "1", True),
        ({"type": "bool"}, "false", False),
        ({"type": "bool"}, " No ", False),
        ({"type": "bool"}, "off", False),
        ({"type": "bool"}, "0", False),
    ],
)
def test_coerce_accepts(spec: dict[str, Any], raw: object, expected: object) -> None:
    value = coerce(param(**spec), raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("spec", "raw", "reason"),
    [
        ({}, None, "expected text"),
        ({}, True, "expected text"),
        ({}, ["a"], "expected text"),
        ({"type": "int"}, "4.2", "whole number"),
        ({"type": "int"}, "", "whole number"),
        ({"type": "int"}, True, "whole number"),
        ({"type": "int"}, "1e3", "whole number"),
        ({"type": "float"}, "abc", "expected a number"),
        ({"type": "float"}, "nan", "expected a number"),
        ({"type": "float"}, "inf", "expected a number"),
        ({"type": "float"}, False, "expected a number"),
        ({"type": "int", "min": 1}, "0", "at least 1"),
        ({"type": "int", "max": 10}, "11", "at most 10"),
        ({"type": "float", "min": 0.5}, "0.4", "at least 0.5"),
        ({"max_length": 3}, "abcd", "longer than 3 characters"),
        ({"max_length": 3}, "ééé€", "longer than 3 characters"),
        ({"pattern": "[A-Z]{2}"}, "ABC", "does not match"),
        ({"pattern": "[A-Z]{2}"}, "ab", "does not match"),
        ({"type": "choice", "choices": ["all", "ios"]}, "android", "not one of all, ios"),
        ({"type": "choice", "choices": ["all", "ios"]}, "ALL", "not one of"),
        ({"type": "url"}, "example.com", "not an http"),
        ({"type": "url"}, "ftp://example.com", "not an http"),
        ({"type": "url"}, "javascript:alert(1)", "not an http"),
        ({"type": "url"}, "https://exa mple.com", "not an http"),
        ({"type": "url"}, "https://", "not an http"),
        ({"type": "bool"}, "maybe", "true or false"),
        ({"type": "bool"}, 1, "true or false"),
        ({"type": "bool"}, "", "true or false"),
    ],
)
def test_coerce_rejects(spec: dict[str, Any], raw: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        coerce(param(**spec), raw)


# --- params: resolve -----------------------------------------------------------------------

PUSH = Command.model_validate(
    {
        "command": ["push", "--title", "{title}", "--audience={audience}", "{count}", "{loud}"],
        "params": {
            "title": {"type": "string", "required": True, "max_length": 20},
            "audience": {"type": "choice", "choices": ["all", "ios"], "default": "all"},
            "count": {"type": "int", "default": 3, "min": 1},
            "loud": {"type": "bool", "default": "yes"},
            "note": {},
        },
    }
)


def test_resolve_fills_defaults_typed() -> None:
    assert resolve(PUSH, {"title": "Hi"}) == {
        "title": "Hi",
        "audience": "all",
        "count": 3,
        "loud": True,
        "note": "",
    }


def test_resolve_coerces_given_values() -> None:
    values = resolve(PUSH, {"title": "Hi", "count": "5", "loud": "off", "audience": "ios"})
    assert values["count"] == 5
    assert values["loud"] is False
    assert values["audience"] == "ios"


def test_resolve_reports_every_problem_by_name() -> None:
    with pytest.raises(ValueError, match=r"^colour: unknown parameter") as info:
        resolve(PUSH, {"count": "0", "audience": "web", "colour": "red"})
    assert str(info.value) == (
        "colour: unknown parameter (known: title, audience, count, loud, note); "
        "title: required; "
        "audience: 'web' is not one of all, ios; "
        "count: must be at least 1"
    )


def test_resolve_with_no_params() -> None:
    bare = Command(command=["run"])
    assert resolve(bare, {}) == {}
    with pytest.raises(ValueError, match="x: unknown parameter \\(known: none\\)"):
        resolve(bare, {"x": "1"})


# --- params: render ------------------------------------------------------------------------


def test_render_substitutes_whole_and_partial_elements() -> None:
    values = resolve(PUSH, {"title": "Hi there"})
    assert render(PUSH.command, values) == [
        "push",
        "--title",
        "Hi there",
        "--audience=all",
        "3",
        "true",
    ]


def test_render_keeps_literal_braces() -> None:
    assert render(["echo", "{{x}}", "{a}{{"], {"a": "1"}) == ["echo", "{x}", "1{"]


HOSTILE = [
    "$(rm -rf /)",
    "`rm -rf /`",
    "a; rm -rf /",
    "a && b || c",
    "a | tee /etc/passwd",
    "'single' \"double\"",
    "line1\nline2\r\n",
    "tab\there",
    "--help",
    "-rf",
    "> /dev/null 2>&1",
    "${HOME} $HOME %PATH%",
    "{title} {{x}} {0}",
    "*.py ~ ?",
    "\\ backslash \\n",
    "日本語 ニュース 🚨",
    "zero\u200bwidth",
    "",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_render_keeps_each_value_inside_one_argv_element(payload: str) -> None:
    command = Command.model_validate(
        {"command": ["push", "--title", "{title}", "--tag={title}"], "params": {"title": {}}}
    )
    argv = render(command.command, resolve(command, {"title": payload}))
    assert argv == ["push", "--title", payload, f"--tag={payload}"]


def test_render_does_not_expand_placeholders_inside_values() -> None:
    argv = render(["{a}", "{b}"], {"a": "{b}", "b": "x"})
    assert argv == ["{b}", "x"]
