"""What the bot shows in Slack, as pure functions: help, modals, previews, progress.

Block Kit JSON in, Block Kit JSON out; no network here, so the shapes are easy to test
and the same on every runtime (a server here, a Lambda function later).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobdeck.catalog.params import ParamProblem, shell_quote, usage

if TYPE_CHECKING:
    from jobdeck.catalog.params import ParamSpec, ParamValue
    from jobdeck.commands.spec import CommandSpec
    from jobdeck.store.records import Run

MODAL_CALLBACK = "jobdeck_params"
RUN_ACTION = "jobdeck_confirm_run"
CANCEL_ACTION = "jobdeck_confirm_cancel"
VALUE_ACTION = "value"
# Slack's limits: a section's text and a button's value.
TEXT_LIMIT = 2900
VALUE_LIMIT = 2000

Block = dict[str, Any]


def mrkdwn_escape(text: str) -> str:
    """Text shown as is in mrkdwn: Slack reads only &, < and > specially."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """Inline code; a backtick inside would end it, so it is swapped for a look-alike."""
    return "`" + mrkdwn_escape(text).replace("`", "ˋ") + "`"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, TEXT_LIMIT)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text, TEXT_LIMIT)}]}


# -- help -------------------------------------------------------------------------------


def help_text(
    commands: Mapping[str, CommandSpec],
    base_slash: str = "/jobdeck",
    *,
    suspended: Mapping[str, str] | None = None,
) -> str:
    """The commands this user may run in this channel, with their params; a suspended
    one says so, with the reason."""
    if not commands:
        return (
            "There is no command you may run in this channel. Commands run from Slack only "
            "where their `allow` list in the catalog names the channel, you, or one of "
            "your user groups."
        )
    lines = ["*Commands you may run here:*"]
    for name, command in commands.items():
        lines.append("")
        title = f"*{name}*"
        if command.description:
            title += f" — {mrkdwn_escape(command.description)}"
        if command.confirm:
            title += " _(asks to confirm)_"
        if suspended and name in suspended:
            title += f" — *suspended*: {mrkdwn_escape(suspended[name])}"
        lines.append(title)
        lines.append(code(usage(name, command, prefix=f"{base_slash} run ")))
        if command.slash:
            lines.append(f"or {code(usage(command.slash, command))}")
        for key, param in command.params.items():
            lines.append(f"• {code(key)} {describe_param(param)}")
    return "\n".join(lines)


def describe_param(param: ParamSpec) -> str:
    parts: list[str] = [param.type]
    if param.type == "choice":
        parts.append("one of " + ", ".join(param.choices or []))
    if param.required:
        parts.append("required")
    if param.default is not None:
        parts.append(f"default {param.default}")
    if param.max_length is not None:
        parts.append(f"at most {param.max_length} characters")
    if param.min is not None:
        parts.append(f"min {param.min:g}")
    if param.max is not None:
        parts.append(f"max {param.max:g}")
    if param.pattern is not None:
        parts.append(f"matching {param.pattern}")
    shown = ", ".join(parts)
    if param.description:
        shown += f": {mrkdwn_escape(param.description)}"
    return shown


# -- the params modal -------------------------------------------------------------------


@dataclass(frozen=True)
class ModalContext:
    """Carried through the modal (its private_metadata) to the submission."""

    command: str
    channel: str | None
    response_url: str | None = None

    def dump(self) -> str:
        return json.dumps({"c": self.command, "ch": self.channel, "r": self.response_url})

    @classmethod
    def load(cls, text: str) -> ModalContext:
        data = json.loads(text or "{}")
        return cls(str(data.get("c", "")), data.get("ch"), data.get("r"))


def params_modal(name: str, command: CommandSpec, meta: ModalContext) -> dict[str, Any]:
    """A modal asking for every param, each input typed by the param's type."""
    blocks: list[Block] = []
    if command.description:
        blocks.append(section(mrkdwn_escape(command.description)))
    for key, param in command.params.items():
        block: Block = {
            "type": "input",
            "block_id": key,
            "label": {"type": "plain_text", "text": key[:2000]},
            "element": param_input(param),
            "optional": not param.required,
        }
        if param.description:
            block["hint"] = {"type": "plain_text", "text": param.description[:2000]}
        blocks.append(block)
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "private_metadata": meta.dump(),
        "title": {"type": "plain_text", "text": _clip(name, 24)},
        "submit": {"type": "plain_text", "text": "Run" if not command.confirm else "Preview"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def param_input(param: ParamSpec) -> Block:
    default = None if param.default is None else _shown(param.default)
    if param.type in ("choice", "bool"):
        choices = (param.choices or []) if param.type == "choice" else ["true", "false"]
        element: Block = {
            "type": "static_select",
            "action_id": VALUE_ACTION,
            "options": [_option(choice) for choice in choices],
        }
        if default is not None:
            element["initial_option"] = _option(default)
        return element
    if param.type in ("int", "float"):
        element = {
            "type": "number_input",
            "action_id": VALUE_ACTION,
            "is_decimal_allowed": param.type == "float",
        }
        for rule in ("min", "max"):
            limit = getattr(param, rule)
            if limit is not None:
                element[f"{rule}_value"] = f"{limit:g}"
    elif param.type == "url":
        element = {"type": "url_text_input", "action_id": VALUE_ACTION}
    else:
        element = {"type": "plain_text_input", "action_id": VALUE_ACTION}
        if param.max_length is not None:
            element["max_length"] = param.max_length
    if default is not None:
        element["initial_value"] = default
    return element


def submitted_values(state: Mapping[str, Any]) -> dict[str, str]:
    """The values of a submitted modal, by param name; empty inputs are left out."""
    found: dict[str, str] = {}
    for block_id, actions in (state.get("values") or {}).items():
        field = actions.get(VALUE_ACTION) or {}
        selected = field.get("selected_option")
        value = selected.get("value") if selected else field.get("value")
        if value is not None and value != "":
            found[block_id] = str(value)
    return found


def modal_errors(problems: Sequence[ParamProblem], known: Sequence[str]) -> dict[str, str]:
    """``response_action: errors`` for a modal: each message under its own input."""
    errors: dict[str, str] = {}
    for problem in problems:
        block = problem.param if problem.param in known else (known[0] if known else "")
        errors[block] = (errors.get(block, "") + " " + problem.message).strip()[:150]
    return errors


# -- the confirmation preview -----------------------------------------------------------


@dataclass(frozen=True)
class PreviewValue:
    """What a Run / Cancel button carries back: which request it confirms."""

    nonce: str
    command: str
    params: dict[str, str]
    requested_by: str

    def dump(self) -> str:
        return json.dumps(
            {"n": self.nonce, "c": self.command, "p": self.params, "u": self.requested_by},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def load(cls, text: str) -> PreviewValue:
        data = json.loads(text)
        params = {str(k): str(v) for k, v in dict(data.get("p") or {}).items()}
        return cls(str(data["n"]), str(data["c"]), params, str(data.get("u", "")))


def preview_blocks(
    name: str, command: CommandSpec, argv: list[str], requested_by: str, value: PreviewValue
) -> list[Block]:
    shown = value.dump()
    if len(shown) > VALUE_LIMIT:
        raise ValueError(
            f"the params are too long to confirm in Slack (the button holds {VALUE_LIMIT} "
            "characters); shorten them"
        )
    text = f"*{name}* asked by <@{requested_by}>"
    if command.description:
        text += f"\n{mrkdwn_escape(command.description)}"
    return [
        section(text),
        section("It will run exactly:\n```" + mrkdwn_escape(shell_quote(argv)) + "```"),
        {
            "type": "actions",
            "block_id": "jobdeck_confirm",
            "elements": [
                {
                    "type": "button",
                    "action_id": RUN_ACTION,
                    "text": {"type": "plain_text", "text": "Run"},
                    "style": "danger",
                    "value": shown,
                    "confirm": {
                        "title": {"type": "plain_text", "text": f"Run {name}?"[:100]},
                        "text": {"type": "plain_text", "text": shell_quote(argv)[:300]},
                        "confirm": {"type": "plain_text", "text": "Run"},
                        "deny": {"type": "plain_text", "text": "Back"},
                        "style": "danger",
                    },
                },
                {
                    "type": "button",
                    "action_id": CANCEL_ACTION,
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "value": shown,
                },
            ],
        },
    ]


def preview_text(name: str, argv: list[str], requested_by: str) -> str:
    return f"{name} asked by <@{requested_by}>: {shell_quote(argv)} (Run / Cancel)"


def cancelled_text(name: str, by: str) -> str:
    return f"{name} was cancelled by <@{by}>; nothing ran."


# -- progress ---------------------------------------------------------------------------

ICONS = {
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "timed_out": ":hourglass:",
    "cancelled": ":no_entry_sign:",
    "lost": ":grey_question:",
    "skipped": ":fast_forward:",
}


def started_text(name: str, run: Run, requested_by: str) -> str:
    return started_line(name, f"run {run.id}", run.status, requested_by)


def started_line(name: str, label: str, status: str, requested_by: str) -> str:
    """``label`` names what runs it: ``run 7`` here, an SSM command on AWS."""
    return f":arrow_forward: *{name}* started by <@{requested_by}> ({label}, {status})"


def result_text(name: str, run: Run, requested_by: str) -> str:
    return result_line(
        name,
        run.status,
        run.exit_code,
        duration(run),
        f"run {run.id}",
        requested_by,
        run.reason,
    )


def result_line(
    name: str,
    status: str,
    exit_code: int | None,
    took: str | None,
    label: str,
    requested_by: str,
    reason: str | None,
) -> str:
    shown_code = "-" if exit_code is None else str(exit_code)
    line = (
        f"{ICONS.get(status, ':grey_question:')} *{name}* {status}"
        f" — exit code {shown_code}"
        + (f", {took}" if took else "")
        + f" — {label}, asked by <@{requested_by}>"
    )
    if reason and status != "succeeded":
        line += f" (reason: {mrkdwn_escape(reason)})"
    return line


def result_blocks(name: str, run: Run, requested_by: str, tail: str) -> list[Block]:
    return line_and_tail(result_text(name, run, requested_by), tail)


def line_and_tail(line: str, tail: str) -> list[Block]:
    """A result's line, and the end of its output when there is any."""
    blocks = [section(line)]
    if tail.strip():
        body = mrkdwn_escape(tail.rstrip()).replace("```", "ˋˋˋ")
        blocks.append(section("```" + body[-(TEXT_LIMIT - 8) :] + "```"))
    return blocks


def duration(run: Run) -> str | None:
    measured = run.detail.get("duration_ms")
    if isinstance(measured, int | float):
        milliseconds = float(measured)
    elif run.started_at and run.ended_at:
        milliseconds = (run.ended_at - run.started_at).total_seconds() * 1000
    else:
        return None
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    return f"{milliseconds / 1000:.1f} s"


def refusal_text(message: str, problems: Sequence[ParamProblem] = ()) -> str:
    text = f"Sorry, I cannot run that: {mrkdwn_escape(message)}"
    if problems:
        text = "Sorry, I cannot run that yet; please fix these params:\n" + "\n".join(
            f"• {code(p.param)}: {mrkdwn_escape(p.message)}" for p in problems
        )
    return text


def _option(value: str) -> Block:
    return {"text": {"type": "plain_text", "text": value[:75]}, "value": value[:150]}


def _shown(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
