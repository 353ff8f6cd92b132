"""The SQS actions against the store: JSON-shaped parameters in, JSON-shaped results out.

Both wire protocols translate to and from these shapes (those of botocore's service
model), so there is one implementation of each action. Each action is one transaction;
a send returns only after its transaction has committed, hence is durable. Long
polling is the endpoint's business: :meth:`QueueService.receive` tries once.

Durability on SQLite: the store runs in WAL mode with ``synchronous=NORMAL`` (see
``jobdeck.store.engine``). A commit has been written to the WAL, in the operating
system's hands, before it returns, so an acknowledged message survives any crash of the
server process, ``kill -9`` included; only a power loss or kernel crash can take the
last commits since the WAL's previous sync. ``FULL`` would close that gap with an fsync
per commit; in ``bench/sqs.py`` that costs a fifth to a third of the throughput. The queues
ask for what the rest of the store (runs, revisions) has.
"""

from __future__ import annotations

from collections.abc import Callable

from jobdeck.clock import Clock
from jobdeck.queues import messages as msg
from jobdeck.queues.attributes import (
    LOCAL_ACCOUNT_ID,
    apply_attributes,
    check_queue_name,
    render_attributes,
)
from jobdeck.queues.core import now_ms, read_queue
from jobdeck.queues.delivery import DeliveryActions
from jobdeck.queues.errors import SqsError, invalid_parameter, missing_parameter, no_such_queue
from jobdeck.queues.management import ManagementActions, check_tags
from jobdeck.queues.params import (
    Params,
    Result,
    entries,
    failure,
    queue_name_from_url,
    receive_limit,
    required,
    string_map,
    wait_seconds,
)
from jobdeck.queues.sending import check_fifo_batch, enqueue, prepare_message
from jobdeck.store import DataStore, Tx
from jobdeck.store.queue_records import NewMessage, QueueCounts, QueueSettings

# SQS allows one purge per queue per 60 seconds.
PURGE_INTERVAL_MS = 60_000


class QueueService(DeliveryActions, ManagementActions):
    def __init__(self, store: DataStore, clock: Clock, base_url: str) -> None:
        super().__init__(store, clock, base_url)
        self.actions: dict[str, Callable[[Params], Result]] = {
            "CreateQueue": self.create_queue,
            "GetQueueUrl": self.get_queue_url,
            "ListQueues": self.list_queues,
            "DeleteQueue": self.delete_queue,
            "GetQueueAttributes": self.get_queue_attributes,
            "SetQueueAttributes": self.set_queue_attributes,
            "PurgeQueue": self.purge_queue,
            "ListDeadLetterSourceQueues": self.list_dead_letter_source_queues,
            "SendMessage": self.send_message,
            "SendMessageBatch": self.send_message_batch,
            "ReceiveMessage": self.receive,
            "DeleteMessage": self.delete_message,
            "DeleteMessageBatch": self.delete_message_batch,
            "ChangeMessageVisibility": self.change_message_visibility,
            "ChangeMessageVisibilityBatch": self.change_message_visibility_batch,
            "TagQueue": self.tag_queue,
            "UntagQueue": self.untag_queue,
            "ListQueueTags": self.list_queue_tags,
            "AddPermission": self.add_permission,
            "RemovePermission": self.remove_permission,
            "StartMessageMoveTask": self.start_message_move_task,
            "ListMessageMoveTasks": self.list_message_move_tasks,
            "CancelMessageMoveTask": self.cancel_message_move_task,
        }

    # -- queues ----------------------------------------------------------------------

    def create_queue(self, params: Params) -> Result:
        name = required(params, "QueueName")
        attributes = string_map(params.get("Attributes"), "Attributes")
        fifo = str(attributes.get("FifoQueue", "false")).lower() == "true"
        check_queue_name(name, fifo)
        settings = apply_attributes(QueueSettings(), attributes, fifo=fifo, creating=True)
        tags = check_tags(params.get("tags") or {}, "tags")
        now = now_ms(self.clock)
        self._known.pop(name, None)
        with self.transaction() as tx:
            _check_dead_letter_target(tx, name, fifo, settings)
            existing = tx.queues.queue(name)
            if existing is None:
                tx.queues.create_queue(name, fifo=fifo, settings=settings, origin="api", now_ms=now)
                if tags:
                    tx.queues.set_queue_tags(name, tags)
            elif existing.fifo != fifo or (
                attributes
                and apply_attributes(existing.settings, attributes, fifo=fifo, creating=True)
                != existing.settings
            ):
                raise SqsError(
                    "QueueNameExists",
                    "A queue already exists with the same name and a different value for "
                    "attribute(s) given.",
                )
        self._known.pop(name, None)
        return {"QueueUrl": self.url_of(name)}

    def get_queue_url(self, params: Params) -> Result:
        name = required(params, "QueueName")
        owner = params.get("QueueOwnerAWSAccountId")
        with self.store.reading() as tx:
            if (owner not in (None, LOCAL_ACCOUNT_ID)) or tx.queues.queue(name) is None:
                raise no_such_queue()
        return {"QueueUrl": self.url_of(name)}

    def list_queues(self, params: Params) -> Result:
        prefix = str(params.get("QueueNamePrefix") or "")
        limit = params.get("MaxResults")
        start = str(params.get("NextToken") or "")
        if limit is not None and not 1 <= int(limit) <= 1000:
            raise invalid_parameter("MaxResults must be an integer between 1 and 1000.")
        with self.store.reading() as tx:
            names = [q.name for q in tx.queues.queues(prefix) if q.name > start]
        if limit is None:
            names = names[:1000]
            return {"QueueUrls": [self.url_of(n) for n in names]} if names else {}
        page = names[: int(limit)]
        result: Result = {"QueueUrls": [self.url_of(n) for n in page]}
        if len(names) > len(page):
            result["NextToken"] = page[-1]
        return result

    def delete_queue(self, params: Params) -> Result:
        name = self.queue_name(params)
        self._known.pop(name, None)
        with self.transaction() as tx:
            if not tx.queues.delete_queue(name):
                raise no_such_queue()
        self._known.pop(name, None)
        return {}

    def get_queue_attributes(self, params: Params) -> Result:
        name = self.queue_name(params)
        names = params.get("AttributeNames") or []
        now = now_ms(self.clock)
        with self.store.reading() as tx:
            queue = read_queue(tx, name)
            counts = tx.queues.queue_counts(now, [name]).get(name, QueueCounts(0, 0, 0))
        attributes = render_attributes(queue, counts, names)
        return {"Attributes": attributes} if attributes else {}

    def set_queue_attributes(self, params: Params) -> Result:
        name = self.queue_name(params)
        attributes = string_map(params.get("Attributes"), "Attributes")
        if not attributes:
            raise missing_parameter("Attributes")
        self._known.pop(name, None)
        with self.transaction() as tx:
            queue = read_queue(tx, name)
            settings = apply_attributes(queue.settings, attributes, fifo=queue.fifo, creating=False)
            _check_dead_letter_target(tx, name, queue.fifo, settings)
            tx.queues.update_queue(name, settings=settings, now_ms=now_ms(self.clock))
        self._known.pop(name, None)
        return {}

    def purge_queue(self, params: Params) -> Result:
        name = self.queue_name(params)
        now = now_ms(self.clock)
        with self.transaction() as tx:
            read_queue(tx, name)
            last = tx.queues.last_purge_ms(name)
            if last is not None and now - last < PURGE_INTERVAL_MS:
                raise SqsError(
                    "PurgeQueueInProgress",
                    f"Only one PurgeQueue operation on {name} is allowed every 60 seconds.",
                )
            tx.queues.purge_messages(name)
            tx.queues.mark_purged(name, now)
        return {}

    def list_dead_letter_source_queues(self, params: Params) -> Result:
        name = self.queue_name(params)
        with self.store.reading() as tx:
            read_queue(tx, name)
            sources = tx.queues.dead_letter_sources(name)
        return {"queueUrls": [self.url_of(s) for s in sources]}

    # -- sending ---------------------------------------------------------------------

    def send_message(self, params: Params) -> Result:
        name = self.queue_name(params)
        with self._sending(name) as tx:
            queue = self._queue(tx, name)
            prepared = prepare_message(queue, params, now_ms(self.clock))
            (sent,) = enqueue(tx, queue, [prepared], now_ms(self.clock))
        return sent

    def send_message_batch(self, params: Params) -> Result:
        name = self.queue_name(params)
        batch = entries(params, "SendMessageBatch")
        total = sum(msg.message_size(str(e.get("MessageBody") or ""), {}) for e in batch)
        if total > msg.MAX_BATCH_BYTES:
            raise SqsError(
                "BatchRequestTooLong",
                f"Batch requests cannot be longer than {msg.MAX_BATCH_BYTES} bytes. "
                f"You have sent {total} bytes.",
            )
        failed: list[Result] = []
        with self._sending(name) as tx:
            queue = self._queue(tx, name)
            if queue.fifo:
                check_fifo_batch(queue, batch)
            now = now_ms(self.clock)
            ready: list[tuple[str, NewMessage]] = []
            for entry in batch:
                try:
                    ready.append((entry["Id"], prepare_message(queue, entry, now)))
                except SqsError as refused:
                    failed.append(failure(entry["Id"], refused))
            sent = enqueue(tx, queue, [m for _, m in ready], now)
        successful = [{"Id": i, **s} for (i, _), s in zip(ready, sent, strict=True)]
        return {"Successful": successful, "Failed": failed}


def _check_dead_letter_target(tx: Tx, name: str, fifo: bool, settings: QueueSettings) -> None:
    target = settings.dead_letter_target
    if target is None:
        return
    found = tx.queues.queue(target)
    if found is None or target == name:
        raise invalid_parameter(
            "Value for parameter RedrivePolicy is invalid. Reason: Dead letter target does "
            "not exist."
        )
    if found.fifo != fifo:
        raise invalid_parameter(
            "Value for parameter RedrivePolicy is invalid. Reason: The dead-letter queue of a "
            f"{'FIFO' if fifo else 'standard'} queue must also be a "
            f"{'FIFO' if fifo else 'standard'} queue."
        )


__all__ = [
    "Params",
    "QueueService",
    "Result",
    "queue_name_from_url",
    "receive_limit",
    "wait_seconds",
]
