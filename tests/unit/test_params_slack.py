"""What the Slack bot shows, as pure functions: the params modal typed by param type,
its errors, the preview's buttons, and the result message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobdeck.catalog.model import Command
from jobdeck.catalog.params import ParamProblem
from jobdeck.slack import blocks
from jobdeck.store.records import Run

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

COMMAND = Command.model_validate(
    {
        "description": "Send a <b> & push",
        "command": ["push", "{title}", "{url}", "{audience}", "{count}", "{ratio}", "{dry}"],
        "params": {
            "title": {"type": "string", "required": True, "max_length": 120},
            "url": {"type": "url", "required": True, "description": "The article"},
            "audience": {"type": "choice", "choices": ["all", "ios"], "default": "all"},
            "count": {"type": "int", "min": 1, "max": 5, "default": 2},
            "ratio": {"type": "float"},
            "dry": {"type": "bool", "default": True},
        },
        "confirm": True,
        "slash": "/push",
    }
)


def inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def test_the_modal_asks_for_each_param_by_its_type() -> None:
    meta = blocks.ModalContext("push", "C1", "https://hooks.example/r")
    view = blocks.params_modal("push", COMMAND, meta)
    assert view["callback_id"] == blocks.MODAL_CALLBACK
    assert blocks.ModalContext.load(view["private_metadata"]) == meta
    assert view["submit"]["text"] == "Preview"  # confirm: the preview comes next
    found = inputs(view)
    assert found["title"]["element"] == {
        "type": "plain_text_input",
        "action_id": "value",
        "max_length": 120,
    }
    assert found["url"]["element"]["type"] == "url_text_input"
    assert found["url"]["hint"]["text"] == "The article"
    audience = found["audience"]["element"]
    assert audience["type"] == "static_select"
    assert [o["value"] for o in audience["options"]] == ["all", "ios"]
    assert audience["initial_option"]["value"] == "all"
    count = found["count"]["element"]
    assert (count["type"], count["is_decimal_allowed"]) == ("number_input", False)
    assert (count["min_value"], count["max_value"], count["initial_value"]) == ("1", "5", "2")
    assert found["ratio"]["element"]["is_decimal_allowed"] is True
    assert found["dry"]["element"]["initial_option"]["value"] == "true"
    assert [found[k]["optional"] for k in found] == [False, False, True, True, True, True]


def test_submitted_values_and_errors_under_their_inputs() -> None:
    state = {
        "values": {
            "title": {"value": {"type": "plain_text_input", "value": "Quake"}},
            "audience": {"value": {"type": "static_select", "selected_option": {"value": "ios"}}},
            "ratio": {"value": {"type": "number_input", "value": None}},
        }
    }
    assert blocks.submitted_values(state) == {"title": "Quake", "audience": "ios"}
    problems = [
        ParamProblem("url", "required", "required; give it as key=value"),
        ParamProblem("colour", "unknown", "no such param"),
    ]
    assert blocks.modal_errors(problems, ["title", "url"]) == {
        "url": "required; give it as key=value",
        "title": "no such param",
    }


def test_the_preview_shows_the_argv_and_carries_the_request() -> None:
    value = blocks.PreviewValue("n0nce", "push", {"title": "a `b` <c>"}, "U1")
    shown = blocks.preview_blocks("push", COMMAND, ["push", "a `b` <c>", "x y"], "U1", value)
    assert "Send a &lt;b&gt; &amp; push" in shown[0]["text"]["text"]
    assert "push 'a `b` &lt;c&gt;' 'x y'" in shown[1]["text"]["text"]
    run, cancel = shown[2]["elements"]
    assert (run["action_id"], run["style"]) == (blocks.RUN_ACTION, "danger")
    assert run["confirm"]["style"] == "danger"
    assert cancel["action_id"] == blocks.CANCEL_ACTION
    assert blocks.PreviewValue.load(run["value"]) == value
    too_long = blocks.PreviewValue("n", "push", {"title": "x" * 3000}, "U1")
    with pytest.raises(ValueError, match="too long"):
        blocks.preview_blocks("push", COMMAND, ["push"], "U1", too_long)


def test_help_names_usage_slash_and_params() -> None:
    text = blocks.help_text({"push": COMMAND})
    assert "*push* — Send a &lt;b&gt; &amp; push _(asks to confirm)_" in text
    assert "`/jobdeck run push title=TEXT url=URL [audience=all|ios]" in text
    assert "or `/push title=TEXT" in text
    assert "• `count` int, default 2, min 1, max 5" in text
    assert "• `url` url, required: The article" in text
    assert "no command you may run in this channel" in blocks.help_text({})


def test_the_result_says_status_exit_code_duration_and_run() -> None:
    run = Run(
        7,
        "push",
        "command",
        "chatops",
        "failed",
        T0,
        reason="exit_code",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=2, milliseconds=500),
        exit_code=3,
    )
    assert blocks.result_text("push", run, "U1") == (
        ":x: *push* failed — exit code 3, 2.5 s — run 7, asked by <@U1> (reason: exit_code)"
    )
    quick = Run(
        8, "push", "command", "chatops", "succeeded", T0, exit_code=0, detail={"duration_ms": 41.7}
    )
    shown = blocks.result_blocks("push", quick, "U1", "line 1\n```\nlast line\n")
    assert shown[0]["text"]["text"].startswith(":white_check_mark: *push* succeeded")
    assert "42 ms" in shown[0]["text"]["text"]
    assert shown[1]["text"]["text"] == "```line 1\nˋˋˋ\nlast line```"
    assert len(blocks.result_blocks("push", quick, "U1", "   ")) == 1
