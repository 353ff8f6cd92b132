"""Sending: a message validated and prepared as SQS would (pure), then enqueued with
FIFO deduplication inside the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from jobdeck.queues import messages as msg
from jobdeck.queues.errors import invalid_parameter, missing_parameter
from jobdeck.queues.params import Params, Result, as_int
from jobdeck.store import Tx
from jobdeck.store.queue_records import NewMessage, QueueRecord


def prepare_message(queue: QueueRecord, entry: Params, now: int) -> NewMessage:
    """A validated message ready to enqueue at ``now``, or SQS's refusal (pure)."""
    body = msg.check_body(entry.get("MessageBody"))
    attributes = msg.check_attributes(entry.get("MessageAttributes"))
    system = msg.check_system_attributes(entry.get("MessageSystemAttributes"))
    limit = queue.settings.max_message_size
    if msg.message_size(body, attributes) > limit:
        raise invalid_parameter(
            f"One or more parameters are invalid. Reason: Message must be shorter than "
            f"{limit} bytes."
        )
    delay = entry.get("DelaySeconds")
    group = entry.get("MessageGroupId")
    dedup = entry.get("MessageDeduplicationId")
    if queue.fifo:
        # Only a non-zero per-message delay is refused: clients that always send
        # DelaySeconds send 0, which SQS accepts on a FIFO queue.
        if delay is not None and as_int(delay, "DelaySeconds") != 0:
            raise invalid_parameter(
                f"Value {delay} for parameter DelaySeconds is invalid. Reason: The request "
                "include parameter that is not valid for this queue type."
            )
        if group is None:
            raise missing_parameter("MessageGroupId")
        msg.check_tag(group, "MessageGroupId")
        if dedup is None:
            if not queue.settings.content_based_deduplication:
                raise invalid_parameter(
                    "The queue should either have ContentBasedDeduplication enabled or "
                    "MessageDeduplicationId provided explicitly"
                )
            dedup = msg.content_dedup_id(body)
        msg.check_tag(dedup, "MessageDeduplicationId")
    elif dedup is not None:
        raise invalid_parameter(
            "Value for parameter MessageDeduplicationId is invalid. Reason: The request "
            "includes a parameter that is not valid for this queue type."
        )
    seconds = (
        queue.settings.delay_seconds
        if delay is None or queue.fifo
        else as_int(delay, "DelaySeconds")
    )
    if not 0 <= seconds <= 900:
        raise invalid_parameter(
            f"Value {seconds} for parameter DelaySeconds is invalid. Reason: DelaySeconds "
            "must be >= 0 and <= 900."
        )
    return NewMessage(
        message_id=str(uuid.uuid4()),
        body=body,
        attributes=attributes,
        system_attributes=system,
        md5_body=msg.md5_hex(body.encode("utf-8")),
        md5_attributes=msg.md5_of_attributes(attributes),
        md5_system_attributes=msg.md5_of_attributes(system),
        visible_ms=now + seconds * 1000,
        group_id=group if queue.fifo else None,
        dedup_id=dedup,
    )


def check_fifo_batch(queue: QueueRecord, batch: list[dict[str, Any]]) -> None:
    """A FIFO batch entry without a group id, or without a deduplication id where the
    queue does not derive one from the content, fails the whole call, as in SQS."""
    for entry in batch:
        if entry.get("MessageGroupId") is None:
            raise missing_parameter("MessageGroupId")
        if (
            entry.get("MessageDeduplicationId") is None
            and not queue.settings.content_based_deduplication
        ):
            raise invalid_parameter(
                "The queue should either have ContentBasedDeduplication enabled or "
                "MessageDeduplicationId provided explicitly"
            )


def enqueue(tx: Tx, queue: QueueRecord, prepared: list[NewMessage], now: int) -> list[Result]:
    """Inserts the messages, skipping FIFO duplicates within the window; one result
    per message, in order."""
    if not queue.fifo:
        tx.queues.insert_messages(queue.name, prepared, now, ids=False)
        return [sent_result(m, None) for m in prepared]
    seen = tx.queues.recent_dedup(queue.name, [m.dedup_id or "" for m in prepared], now)
    fresh: list[NewMessage] = []
    for m in prepared:
        if m.dedup_id not in seen:
            seen[m.dedup_id or ""] = (m.message_id, "")
            fresh.append(m)
    ids = tx.queues.insert_messages(queue.name, fresh, now)
    remembered = [
        (m.dedup_id or "", m.message_id, msg.sequence_number(i))
        for m, i in zip(fresh, ids, strict=True)
    ]
    tx.queues.remember_dedup(queue.name, remembered, now + msg.DEDUP_WINDOW_MS)
    for dedup_id, message_id, sequence in remembered:
        seen[dedup_id] = (message_id, sequence)
    results = []
    for m in prepared:
        original_id, sequence = seen[m.dedup_id or ""]
        results.append({**sent_result(m, sequence), "MessageId": original_id})
    return results


def sent_result(m: NewMessage, sequence: str | None) -> Result:
    out: Result = {"MessageId": m.message_id, "MD5OfMessageBody": m.md5_body}
    if m.md5_attributes is not None:
        out["MD5OfMessageAttributes"] = m.md5_attributes
    if m.md5_system_attributes is not None:
        out["MD5OfMessageSystemAttributes"] = m.md5_system_attributes
    if sequence is not None:
        out["SequenceNumber"] = sequence
    return out
