"""Receiving messages and acting on their receipt handles (delete, change visibility)."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from jobdeck.queues import messages as msg
from jobdeck.queues.attributes import queue_arn
from jobdeck.queues.core import ServiceCore, now_ms, read_queue
from jobdeck.queues.errors import SqsError, invalid_parameter
from jobdeck.queues.params import Params, Result, as_int, entries, failure, receive_limit, required
from jobdeck.store import Tx
from jobdeck.store.queue_records import QueueRecord, StoredMessage


class DeliveryActions(ServiceCore):
    # -- receiving -------------------------------------------------------------------

    def receive(self, params: Params) -> Result:
        """One attempt at receiving; an empty result when nothing is receivable now."""
        name = self.queue_name(params)
        limit = receive_limit(params)
        visibility = params.get("VisibilityTimeout")
        requested_system = list(params.get("MessageSystemAttributeNames") or []) + list(
            params.get("AttributeNames") or []
        )
        requested_user = list(params.get("MessageAttributeNames") or [])
        now = now_ms(self.clock)
        with self.transaction() as tx:
            queue = self._queue(tx, name)
            if queue.fifo and tx.queues.locks_rows():
                # One FIFO receive per queue at a time, so that two cannot both take a
                # group that has nothing in flight (SQLite's write lock does this).
                queue = read_queue(tx, name, for_update=True)
            seconds = queue.settings.visibility_timeout
            if visibility is not None:
                seconds = as_int(visibility, "VisibilityTimeout")
                if not 0 <= seconds <= 43_200:
                    raise invalid_parameter(
                        f"Value {seconds} for parameter VisibilityTimeout is invalid. Reason: "
                        "must be between 0 and 43200."
                    )
            target = queue.settings.dead_letter_target
            if target is not None and self._queue_or_none(tx, target) is None:
                target = None  # the dead-letter queue was deleted: nothing to move to
            token = secrets.token_hex(8)
            delivered: list[StoredMessage] = []
            for _ in range(5):
                candidates = tx.queues.receivable(
                    name,
                    now_ms=now,
                    sent_after_ms=now - queue.settings.retention_seconds * 1000,
                    # Room for dead letters among them, when there can be any.
                    limit=(limit - len(delivered)) + (10 if target else 0),
                    fifo=queue.fifo,
                )
                plan = msg.plan_receive(
                    queue if target else _without_redrive(queue),
                    candidates,
                    limit - len(delivered),
                )
                if plan.dead_letter and target is not None:
                    tx.queues.move_messages(
                        plan.dead_letter, to_queue=target, now_ms=now, dead_lettered_from=name
                    )
                chosen = set(plan.deliver)
                delivered += tx.queues.mark_received(
                    [m for m in candidates if m.id in chosen],
                    visible_ms=now + seconds * 1000,
                    token=token,
                    now_ms=now,
                )
                if not plan.dead_letter or len(delivered) >= limit:
                    break
        return (
            {
                "Messages": [
                    self._received(queue, m, token, requested_system, requested_user)
                    for m in delivered
                ]
            }
            if delivered
            else {}
        )

    def _received(
        self,
        queue: QueueRecord,
        m: StoredMessage,
        token: str,
        requested_system: list[str],
        requested_user: list[str],
    ) -> Result:
        out: Result = {
            "MessageId": m.message_id,
            "ReceiptHandle": msg.receipt_handle(m.id, token, m.message_id),
            "MD5OfBody": m.md5_body,
            "Body": m.body,
        }
        source = queue_arn(m.dead_lettered_from) if m.dead_lettered_from else None
        system = msg.system_attributes(m, requested_system, fifo=queue.fifo, source_arn=source)
        if system:
            out["Attributes"] = system
        chosen = msg.select_attributes(m.attributes, requested_user)
        if chosen:
            out["MessageAttributes"] = chosen
            out["MD5OfMessageAttributes"] = (
                m.md5_attributes
                if len(chosen) == len(m.attributes)
                else msg.md5_of_attributes(chosen)
            )
        return out

    # -- receipt handles -------------------------------------------------------------

    def delete_message(self, params: Params) -> Result:
        name = self.queue_name(params)
        with self.transaction() as tx:
            # The queue first: an unknown queue is NonExistentQueue whatever the handle.
            queue = self._queue(tx, name)
            raw = required(params, "ReceiptHandle")
            (refused,) = self._delete(tx, queue, [(raw, msg.parse_receipt_handle(raw))])
            if refused is not None:
                raise refused
        return {}

    def delete_message_batch(self, params: Params) -> Result:
        name = self.queue_name(params)
        failed: list[Result] = []
        handles: list[tuple[str, Any, msg.Receipt]] = []
        with self.transaction() as tx:
            queue = self._queue(tx, name)
            for entry in entries(params, "DeleteMessageBatch"):
                try:
                    raw = entry.get("ReceiptHandle")
                    handles.append((entry["Id"], raw, msg.parse_receipt_handle(raw)))
                except SqsError as refused:
                    failed.append(failure(entry["Id"], refused))
            outcomes = self._delete(tx, queue, [(raw, r) for _, raw, r in handles])
        successful: list[Result] = []
        for (entry_id, _, _), outcome in zip(handles, outcomes, strict=True):
            if outcome is None:
                successful.append({"Id": entry_id})
            else:
                failed.append(failure(entry_id, outcome))
        return {"Successful": successful, "Failed": failed}

    def _delete(
        self, tx: Tx, queue: QueueRecord, receipts: list[tuple[Any, msg.Receipt]]
    ) -> list[SqsError | None]:
        """Deletes the messages of ``receipts``; for each, None or why it was refused.

        Standard queues: any handle the message was ever received with deletes it, as
        SQS does, so that a worker that finishes after its message was delivered again
        still removes it (and whoever has it now fails to extend or finds it gone, rather
        than processing it again unseen). A handle of a deleted message deletes nothing
        and succeeds. FIFO queues: only the latest handle, while its receive still holds
        the message; an older or timed-out one is refused as expired, as SQS refuses it,
        so a worker learns that its message is someone else's now.
        """
        name = queue.name
        if not queue.fifo:
            tx.queues.delete_received(
                name,
                [(r.seq, r.message_id) for _, r in receipts if r.message_id],
                by_message_id=True,
            )
            tx.queues.delete_received(
                name, [(r.seq, r.token) for _, r in receipts if not r.message_id]
            )
            return [None] * len(receipts)
        now = now_ms(self.clock)
        outcomes: list[SqsError | None] = []
        latest: list[tuple[int, str]] = []
        for raw, receipt in receipts:
            message = tx.queues.received_message(name, receipt.seq)
            if message is None or receipt.message_id not in (None, message.message_id):
                outcomes.append(None)  # gone already
            elif message.receipt_token == receipt.token and message.visible_ms > now:
                latest.append((receipt.seq, receipt.token))
                outcomes.append(None)
            else:
                outcomes.append(msg.expired_handle(raw))
        tx.queues.delete_received(name, latest)
        return outcomes

    def change_message_visibility(self, params: Params) -> Result:
        name = self.queue_name(params)
        with self.transaction() as tx:
            self._queue(tx, name)
            self._change_visibility(tx, name, params)
        return {}

    def change_message_visibility_batch(self, params: Params) -> Result:
        name = self.queue_name(params)
        successful: list[Result] = []
        failed: list[Result] = []
        with self.transaction() as tx:
            self._queue(tx, name)
            for entry in entries(params, "ChangeMessageVisibilityBatch"):
                try:
                    self._change_visibility(tx, name, entry)
                    successful.append({"Id": entry["Id"]})
                except SqsError as refused:
                    failed.append(failure(entry["Id"], refused))
        return {"Successful": successful, "Failed": failed}

    def _change_visibility(self, tx: Tx, name: str, entry: Params) -> None:
        receipt = msg.parse_receipt_handle(required(entry, "ReceiptHandle"))
        seq, token = receipt.seq, receipt.token
        seconds = as_int(required(entry, "VisibilityTimeout"), "VisibilityTimeout")
        if not 0 <= seconds <= 43_200:
            raise invalid_parameter(
                f"Value {seconds} for parameter VisibilityTimeout is invalid. Reason: must be "
                "between 0 and 43200."
            )
        now = now_ms(self.clock)
        message = tx.queues.received_message(name, seq)
        if message is not None and message.receipt_token != token:
            # An older handle of a message received again since: only the latest
            # receive may move its visibility.
            raise msg.expired_handle(entry["ReceiptHandle"])
        if message is None or message.receipt_token != token or message.visible_ms <= now:
            raise SqsError(
                "MessageNotInflight" if message is not None else "ReceiptHandleIsInvalid",
                "Message does not exist or is not available for visibility timeout change."
                if message is not None
                else f'The input receipt handle "{entry["ReceiptHandle"]}" is not valid.',
            )
        tx.queues.set_visible_at(name, seq, token, visible_ms=now + seconds * 1000)


def _without_redrive(queue: QueueRecord) -> QueueRecord:
    return replace(
        queue, settings=replace(queue.settings, dead_letter_target=None, max_receive_count=None)
    )
