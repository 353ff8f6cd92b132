"""Params hold no control characters, strings have a default max_length, an argv has a
size limit, and the audit detail of a request is cut to a bounded size."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobdeck.catalog.model import Command
from jobdeck.catalog.params import (
    DEFAULT_MAX_LENGTH,
    MAX_ARGV_BYTES,
    InvalidParams,
    render_argv,
    validate,
)
from jobdeck.commands.invoke import AUDIT_DETAIL_MAX, bounded_detail
from jobdeck.execute.spec import RunSpec

SAY: dict[str, Any] = {
    "command": ["say", "{text}", "{link}"],
    "params": {"text": {"type": "string"}, "link": {"type": "url"}},
}
LONG: dict[str, Any] = {
    "command": ["say", "{a}", "{b}"],
    "params": {
        "a": {"type": "string", "max_length": 50_000},
        "b": {"type": "string", "max_length": 50_000},
    },
}


def problems(spec: dict[str, Any], given: dict[str, object]) -> list[tuple[str, str, str]]:
    with pytest.raises(InvalidParams) as caught:
        validate("say", Command.model_validate(spec), given)
    return [(p.param, p.rule, p.message) for p in caught.value.problems]


@pytest.mark.parametrize("bad", ["a\x00b", "\x1b[31mred", "form\x0cfeed", "\x7f", "\x85", "\x08"])
def test_control_characters_are_refused(bad: str) -> None:
    [(param, rule, message)] = problems(SAY, {"text": bad})
    assert (param, rule) == ("text", "characters")
    assert "control characters" in message
    assert f"U+{ord(next(c for c in bad if c.isprintable() is False)):04X}" in message
    url = problems(SAY, {"link": "https://x.example/" + bad})
    assert url[0][:2] == ("link", "characters")


def test_tab_and_line_ends_are_text() -> None:
    values = validate("say", Command.model_validate(SAY), {"text": "a\tb\r\nc"})
    assert values["text"] == "a\tb\r\nc"


def test_strings_have_a_default_max_length() -> None:
    fits = validate("say", Command.model_validate(SAY), {"text": "x" * DEFAULT_MAX_LENGTH})
    assert len(str(fits["text"])) == DEFAULT_MAX_LENGTH
    [(param, rule, message)] = problems(SAY, {"text": "x" * (10 * 1024 * 1024)})
    assert (param, rule) == ("text", "max_length")
    assert f"max_length: {DEFAULT_MAX_LENGTH}" in message
    assert len(message) < 200  # the value is not echoed


def test_the_argv_has_a_size_limit() -> None:
    command = Command.model_validate(LONG)
    values = validate("say", command, {"a": "x" * 40_000, "b": "y" * 40_000})
    with pytest.raises(InvalidParams, match=str(MAX_ARGV_BYTES)) as caught:
        render_argv(command, values, "say")
    assert caught.value.problems[0].rule == "size"
    assert render_argv(command, validate("say", command, {"a": "x", "b": "y"}))


def test_audit_details_are_bounded() -> None:
    huge = {
        "command": "say",
        "params": {f"p{i}": "z" * 100_000 for i in range(200)},
        "argv": ["say", *("w" * 5_000 for _ in range(500))],
        "why": "v" * 1_000_000,
    }
    shown = bounded_detail(huge)
    assert len(json.dumps(shown)) <= AUDIT_DETAIL_MAX
    assert shown["command"] == "say"
    small = {"command": "say", "params": {"text": "hello"}, "argv": ["say", "hello"]}
    assert bounded_detail(small) == small


def test_what_the_kernel_refuses_is_found_before_the_launch() -> None:
    assert RunSpec("1", argv=("echo", "ok"), env={"A": "b"}).exec_problem() is None
    assert "NUL" in str(RunSpec("1", argv=("echo", "a\x00b")).exec_problem())
    assert "NUL" in str(RunSpec("1", shell="echo a\x00b").exec_problem())
    assert RunSpec("1", argv=("echo",), env={"A": "b\x00c"}).exec_problem() is not None
    assert RunSpec("1", argv=("echo",), env={"A=B": "c"}).exec_problem() is not None
    assert "kernel" in str(RunSpec("1", argv=("echo", "x" * 200_000)).exec_problem())
    many = tuple("x" * 100_000 for _ in range(100))
    assert "kernel" in str(RunSpec("1", argv=("echo", *many)).exec_problem())
