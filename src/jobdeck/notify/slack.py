"""A run notice as a Slack ``chat.postMessage`` body, and how to read Slack's answer.

Pure functions: the request itself is made by the notifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobdeck.notify.notice import RunNotice, display_duration, iso_utc
from jobdeck.notify.outcome import DELIVERED, Attempt, final, retry

# Slack answers HTTP 200 with {"ok": false, "error": ...}; these errors are Slack's own
# temporary trouble, every other one (channel_not_found, not_in_channel, invalid_auth,
# ...) would fail the same way on every retry.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
     "request_timeout"}
)  # fmt: skip
HEADER_LIMIT = 150  # Slack rejects a header block longer than this
SECTION_LIMIT = 3000  # and a section's text longer than this

HEADLINES = {
    "failed": "failed",
    "timed_out": "timed out",
    "lost": "was lost",
    "cancelled": "was cancelled",
}


ALERT_HEADLINES = {
    "run.slow": "is running slow",
    "run.fast": "succeeded suspiciously fast",
    "run.not_started": "has not started",
}


def escape(text: str) -> str:
    """Slack's mrkdwn treats ``<``, ``>`` and ``&`` as markup; a log line such as
    ``<!channel>`` must not ping a whole channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(notice: RunNotice) -> str:
    if notice.event_type == "run.missed":
        count = notice.missed_count
        return f"{notice.job} missed {count} slot{'s' if count != 1 else ''}"
    if notice.event_type == "run.recovered":
        return f"{notice.job} recovered"
    if notice.alert is not None:
        return f"{notice.job} {ALERT_HEADLINES.get(notice.event_type, notice.event_type)}"
    if notice.reason == "oom_killed":
        return f"{notice.job} was killed: out of memory"
    return f"{notice.job} {HEADLINES.get(notice.status, notice.status.replace('_', ' '))}"


def fallback_text(notice: RunNotice) -> str:
    """The plain text Slack shows in push notifications and where blocks cannot be drawn."""
    reason = f" ({notice.reason})" if notice.reason else ""
    project = f"[{notice.project}] " if notice.project else ""
    return f"{project}{headline(notice)}{reason}, run {notice.run_id}"


def chat_message(channel: str, notice: RunNotice) -> dict[str, Any]:
    """The JSON body of ``chat.postMessage`` for one notice."""
    emoji = ":white_check_mark:" if notice.event_type == "run.recovered" else ":rotating_light:"
    if notice.alert is not None:
        emoji = ":hourglass:"
    title = f"{emoji} {headline(notice)}"
    if len(title) > HEADER_LIMIT:
        title = title[: HEADER_LIMIT - 1] + "…"
    run = f"<{notice.link}|{notice.run_id}>" if notice.link else str(notice.run_id)
    fields = [
        ("Reason", f"`{escape(notice.reason)}`" if notice.reason else "-"),
        ("Attempt", str(notice.attempt)),
        ("Duration", display_duration(notice.duration)),
        ("Exit code", "-" if notice.exit_code is None else str(notice.exit_code)),
        ("Run", run),
        ("Kind", notice.kind),
    ]
    if notice.missed is not None:
        fields = missed_fields(notice.missed, run)
    elif notice.scheduled_for is not None:
        fields.append(("Scheduled for", iso_utc(notice.scheduled_for) or "-"))
    if notice.host:
        fields.append(("Host", escape(notice.host)))
    if notice.alert is not None:
        alert = notice.alert
        fields.append(("Value", str(alert.get("value") or "-")))
        fields.append(("Threshold", f"{alert.get('threshold')} ({alert.get('source')})"))
        fields.append(("Threshold from", escape(str(alert.get("how") or "-"))))
    elif notice.why:
        fields.append(("Why now", escape(notice.why)))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields],
        },
    ]
    if notice.log_tail:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": log_block(notice)}})
    context = [f"job `{escape(notice.job)}`", f"trigger {notice.trigger or '-'}"]
    if notice.project:
        context.insert(0, f"project `{escape(notice.project)}`")
    if notice.link:
        context.append(f"<{notice.link}|open in the dashboard>")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    return {
        "channel": channel,
        "text": fallback_text(notice),
        "blocks": blocks,
        # A dashboard link must not unfurl into a preview that buries the alert.
        "unfurl_links": False,
        "unfurl_media": False,
    }


def missed_fields(missed: Mapping[str, Any], run: str) -> list[tuple[str, str]]:
    """A missed-slot notice's fields: why, how many, which, and what catch-up ran."""
    reasons = ", ".join(f"{why} {n}" for why, n in dict(missed.get("reasons") or {}).items())
    slots = [str(slot.get("at")) for slot in missed.get("slots") or []]
    listed = "\n".join(slots[-5:]) or "-"
    count = int(missed.get("count") or 0)
    if count > len(slots[-5:]):
        listed = (
            f"{missed.get('first')} … {missed.get('last')}\n(newest: {slots[-1] if slots else '-'})"
        )
    caught = missed.get("caught_up") or []
    return [
        ("Cause", f"`{escape(str(missed.get('cause') or '-'))}`"),
        ("Missed", f"{count} ({escape(reasons) or '-'})"),
        ("Slots", listed),
        ("Caught up", f"{len(caught)} (catchup: {missed.get('catchup', '-')})"),
        ("Run", run),
        ("Window", str(missed.get("catchup_window") or "-")),
    ]


def log_block(notice: RunNotice) -> str:
    # Three backticks in the log would end the code block early; a zero-width space
    # between them keeps the text readable and the block whole.
    body = escape(notice.log_tail).replace("```", "``\u200b`")
    room = SECTION_LIMIT - len("```\n\n```")
    if len(body) > room:
        body = "…" + body[len(body) - room + 1 :]
    return f"```\n{body}\n```"


def slack_attempt(status: int, body: object, retry_after: float | None) -> Attempt:
    """Read one ``chat.postMessage`` answer."""
    if status == 429:
        return retry("Slack rate limit (HTTP 429)", retry_after)
    if status >= 500:
        return retry(f"Slack answered HTTP {status}", retry_after)
    if status != 200:
        return final(f"Slack answered HTTP {status}")
    if not isinstance(body, dict):
        return final("Slack answered with something other than a JSON object")
    if body.get("ok") is True:
        return DELIVERED
    error = str(body.get("error") or "unknown_error")
    if error in RETRYABLE_ERRORS:
        return retry(f"Slack error {error}", retry_after)
    return final(f"Slack error {error}")
