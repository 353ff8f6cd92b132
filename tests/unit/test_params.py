"""Command params: key=value words, checks naming the param and the rule, argv rendering."""

from __future__ import annotations

from typing import Any

import pytest

from jobdeck.catalog.model import Command
from jobdeck.catalog.params import (
    InvalidParams,
    parse_assignments,
    render_argv,
    shell_quote,
    split_words,
    usage,
    validate,
)

PUSH: dict[str, Any] = {
    "command": ["push", "--title", "{title}", "--url={url}", "--audience", "{audience}"],
    "params": {
        "title": {"type": "string", "required": True, "max_length": 12},
        "url": {"type": "url", "required": True},
        "audience": {"type": "choice", "choices": ["all", "ios", "android"], "default": "all"},
    },
}
NUMBERS: dict[str, Any] = {
    "command": ["n", "{count}", "{ratio}", "{dry}", "{code}"],
    "params": {
        "count": {"type": "int", "min": 1, "max": 10, "default": 3},
        "ratio": {"type": "float", "min": 0, "max": 1},
        "dry": {"type": "bool", "default": False},
        "code": {"type": "string", "pattern": "[A-Z]{3}"},
    },
}


def command(spec: dict[str, Any]) -> Command:
    return Command.model_validate(spec)


def problems(spec: dict[str, Any], given: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidParams) as caught:
        validate("cmd", command(spec), given)
    return [(p.param, p.rule) for p in caught.value.problems]


def test_values_are_typed_and_defaults_filled() -> None:
    values = validate("push", command(PUSH), {"title": "Quake", "url": "https://x.example/a"})
    assert values == {"title": "Quake", "url": "https://x.example/a", "audience": "all"}
    numbers = validate("n", command(NUMBERS), {"ratio": "0.5", "dry": "yes", "code": "ABC"})
    assert numbers == {"count": 3, "ratio": 0.5, "dry": True, "code": "ABC"}


@pytest.mark.parametrize(
    ("spec", "given", "expected"),
    [
        (PUSH, {"url": "https://x.example"}, [("title", "required")]),
        (PUSH, {"title": "x" * 13, "url": "https://x.example"}, [("title", "max_length")]),
        (PUSH, {"title": "a", "url": "ftp://x.example"}, [("url", "type")]),
        (PUSH, {"title": "a", "url": "https://x", "audience": "tv"}, [("audience", "choices")]),
        (PUSH, {"title": "a", "url": "https://x", "colour": "red"}, [("colour", "unknown")]),
        (NUMBERS, {"count": "11"}, [("count", "max")]),
        (NUMBERS, {"count": "0"}, [("count", "min")]),
        (NUMBERS, {"count": "2.5"}, [("count", "type")]),
        (NUMBERS, {"ratio": "nan"}, [("ratio", "type")]),
        (NUMBERS, {"dry": "maybe"}, [("dry", "type")]),
        (NUMBERS, {"code": "abc"}, [("code", "pattern")]),
        (PUSH, {}, [("title", "required"), ("url", "required")]),
    ],
)
def test_each_problem_names_the_param_and_the_rule(
    spec: dict[str, Any], given: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    assert problems(spec, given) == expected


def test_the_message_says_what_the_rule_is() -> None:
    with pytest.raises(InvalidParams) as caught:
        validate("push", command(PUSH), {"title": "x" * 13, "url": "https://x.example"})
    assert str(caught.value) == ("push: title: longer than 12 characters (13) (max_length: 12)")


def test_assignments_split_at_the_first_equals_sign() -> None:
    assert parse_assignments("c", ["a=b=c", "d=", "e=x y"]) == {"a": "b=c", "d": "", "e": "x y"}
    with pytest.raises(InvalidParams, match="expected key=value"):
        parse_assignments("c", ["lonely"])
    with pytest.raises(InvalidParams, match="given twice"):
        parse_assignments("c", ["a=1", "a=2"])


def test_chat_text_splits_like_a_shell_but_runs_nothing() -> None:
    text = "title=\"Big &amp; bold\" url=<https://x.example/a?b=1|x.example> note='$(id); `x`'"
    assert split_words("c", text) == [
        "title=Big & bold",
        "url=https://x.example/a?b=1",
        "note=$(id); `x`",
    ]
    with pytest.raises(InvalidParams, match="cannot be split"):
        split_words("c", 'title="unclosed')


@pytest.mark.parametrize(
    "hostile",
    ["$(touch /tmp/x)", "`id`", "a; rm -rf /", "'\"", "line1\nline2", "速報 🚨", "{url}", "--x"],
)
def test_a_value_is_always_one_whole_argv_element(hostile: str) -> None:
    spec = command(PUSH)
    values = validate("push", spec, {"title": hostile[:12], "url": "https://x.example"})
    argv = render_argv(spec, values)
    assert argv == [
        "push",
        "--title",
        hostile[:12],
        "--url=https://x.example",
        "--audience",
        "all",
    ]


def test_usage_and_preview_read_well() -> None:
    assert usage("push", command(PUSH)) == ("push title=TEXT url=URL [audience=all|ios|android]")
    assert shell_quote(["push", "--title", "a b", "$x"]) == "push --title 'a b' '$x'"
