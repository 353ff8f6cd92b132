"""Failure notices of the stack, relayed by the bot's function to the catalog's
``notify`` targets: Slack channels through the bot, and webhooks with the local engine's
JSON body (version 1, signed with ``JOBDECK_WEBHOOK_SECRET`` when the secret holds one).
Each target is tried once; one that fails is logged and does not make SNS deliver the
notice again to the others. Standard library and slack_sdk only (and the webhook
signature of :mod:`jobdeck.notify.signature`).
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.request
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient

from jobdeck.notify.signature import sign

LOG = logging.getLogger(__name__)


def relay_notices(
    records: list[dict[str, Any]], client: WebClient, webhook_secret: str | None = None
) -> dict[str, int]:
    sent = failed = 0
    for record in records:
        sns = record["Sns"]
        notice = json.loads(sns["Message"])
        done = deliver(
            notice, client, webhook_secret, sns.get("MessageId", ""), sns.get("Timestamp")
        )
        sent, failed = sent + done[0], failed + done[1]
    return {"sent": sent, "failed": failed}


def notice_text(notice: dict[str, Any]) -> str:
    """One line for Slack: what, which slot, why, and where its logs are."""
    error = notice.get("error") or {}
    what = notice.get("status") or "failed"
    text = (
        f":red_circle: {notice.get('kind', 'job')} *{notice.get('job')}* {what} "
        f"(slot {notice.get('scheduled_time')}): {error.get('Error', 'unknown error')}"
    )
    if notice.get("reason"):
        text += f" ({notice['reason']})"
    if notice.get("logs"):
        text += f" <{notice['logs']}|logs>"
    return text


def deliver(
    notice: dict[str, Any],
    client: WebClient,
    webhook_secret: str | None,
    delivery_id: str,
    occurred_at: str | None,
) -> tuple[int, int]:
    """(sent, failed): the notice to each of its ``notify`` targets, each tried once."""
    sent = failed = 0
    text = notice_text(notice)
    for target in notice.get("notify") or []:
        kind, _, where = target.partition(":")
        try:
            if kind == "slack":
                client.chat_postMessage(channel=where, text=text)
            elif kind == "webhook":
                body = webhook_body(notice, delivery_id, occurred_at)
                post_webhook(where, body, webhook_secret)
            else:
                continue
            sent += 1
        except Exception:
            LOG.exception("notice to %s failed", target)
            failed += 1
    return sent, failed


def webhook_body(notice: dict[str, Any], delivery_id: str, occurred_at: str | None) -> bytes:
    """The local engine's webhook JSON (version 1) for a failed run on AWS; what AWS does
    not know (run id, exit code, times of the task, log tail) is null."""
    error = (notice.get("error") or {}).get("Error", "")
    cause = (notice.get("error") or {}).get("Cause") or ""
    reason: str | None
    if notice.get("status") in ("lost", "missed"):
        status, reason = "failed", notice["status"]
    elif error == "States.Timeout":
        status, reason = "timed_out", "timeout"
    elif any(f in cause for f in ("ResourceInitializationError", "CannotPullContainerError")):
        status, reason = "failed", "launch_error"
    else:
        status, reason = "failed", "exit_code" if error == "States.TaskFailed" else None
    payload: dict[str, Any] = {
        "type": f"run.{status}",
        "version": 1,
        "delivery_id": delivery_id,
        "occurred_at": occurred_at,
        "run": {
            "id": None,
            "job": notice.get("job"),
            "kind": notice.get("kind", "schedule"),
            "trigger": notice.get("trigger", "schedule"),
            "status": status,
            "reason": reason,
            "attempt": None,
            "scheduled_for": notice.get("scheduled_time"),
            "started_at": None,
            "ended_at": None,
            "duration_seconds": None,
            "exit_code": None,
            "pool": notice.get("pool"),
            "host": None,
            "project": notice.get("project"),
            # The run's logs in the CloudWatch console where known, else its execution.
            "url": notice.get("logs") or notice.get("execution"),
        },
        "log_tail": None,
    }
    return json.dumps(payload).encode()


def post_webhook(url: str, body: bytes, secret: str | None, timeout: float = 10) -> None:
    """POST ``body`` like the local notifier: JSON, signed when there is a secret
    (``X-Jobdeck-Signature: sha256=HMAC(secret, "<timestamp>." + body)``), TLS 1.2+."""
    headers = {"Content-Type": "application/json", "User-Agent": "jobdeck-aws"}
    if secret:
        headers.update(sign(secret, body, datetime.now(UTC)))
    tls = ssl.create_default_context()
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout, context=tls) as response:
        response.read()
