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

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from jobdeck.clock import Clock
from jobdeck.queues import messages as msg
from jobdeck.queues.attributes import (
    LOCAL_ACCOUNT_ID,
    apply_attributes,
    check_queue_name,
    queue_arn,
    render_attributes,
)
from jobdeck.queues.errors import SqsError, invalid_parameter, missing_parameter, no_such_queue
from jobdeck.queues.params import (
    Params,
    Result,
    as_int,
    entries,
    failure,
    queue_name_from_url,
    receive_limit,
    required,
    string_map,
    wait_seconds,
)
from jobdeck.queues.sending import enqueue, prepare_message
from jobdeck.store import Store, Tx
from jobdeck.store.queue_records import (
    NewMessage,
    QueueCounts,
    QueueRecord,
    QueueSettings,
    StoredMessage,
)

# How long a queue's settings are taken from memory before the store is read again.
QUEUE_CACHE_S = 1.0
# SQS allows one purge per queue per 60 seconds.
PURGE_INTERVAL_MS = 60_000


def now_ms(clock: Clock) -> int:
    return int(clock.now().timestamp() * 1000)


class QueueService:
    def __init__(self, store: Store, clock: Clock, base_url: str) -> None:
        self.store = store
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self._known: dict[str, tuple[float, QueueRecord]] = {}
        self._pinned: Connection | None = None
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
        }

    # -- the queue cache -------------------------------------------------------------

    def _queue(self, tx: Tx, name: str) -> QueueRecord:
        queue = self._queue_or_none(tx, name)
        if queue is None:
            raise no_such_queue()
        return queue

    def _queue_or_none(self, tx: Tx, name: str) -> QueueRecord | None:
        """The queue, from a cache of at most QUEUE_CACHE_S: the hot actions would
        otherwise read the queue's row on every call. Changes made through this service
        apply at once; those of another process (an apply) within the cache's age."""
        now = time.monotonic()
        hit = self._known.get(name)
        if hit is not None and now - hit[0] < QUEUE_CACHE_S:
            return hit[1]
        queue = tx.queue(name)
        if queue is None:
            self._known.pop(name, None)
        else:
            self._known[name] = (now, queue)
        return queue

    # -- transactions ----------------------------------------------------------------

    def pin_connection(self) -> None:
        """Runs every transaction of this service on one connection of its own, which
        spares a pool checkout per call. Only for a service used by one thread at a
        time (the endpoint on SQLite, whose requests all run on the event loop)."""
        if self._pinned is None:
            self._pinned = self.store.engine.connect()

    def close(self) -> None:
        if self._pinned is not None:
            self._pinned.close()
            self._pinned = None

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One unit of work, as :meth:`Store.transaction` (on the pinned connection)."""
        if self._pinned is None:
            with self.store.transaction() as tx:
                yield tx
            return
        with self.store.write_lock, self._pinned.begin():
            yield Tx(self._pinned)

    @contextmanager
    def _sending(self, name: str) -> Iterator[Tx]:
        """A transaction that enqueues: a queue deleted by another process meanwhile
        (still in the cache) refuses the insert, which is SQS's missing queue."""
        try:
            with self.transaction() as tx:
                yield tx
        except IntegrityError:
            self._known.pop(name, None)
            raise no_such_queue() from None

    def default_wait(self, params: Params) -> Result:
        """The queue's ReceiveMessageWaitTimeSeconds, for a receive that gives none."""
        name = self.queue_name(params)
        hit = self._known.get(name)
        if hit is not None and time.monotonic() - hit[0] < QUEUE_CACHE_S:
            queue: QueueRecord | None = hit[1]
        else:
            with self.store.reading() as tx:
                queue = self._queue_or_none(tx, name)
        return {"wait": 0 if queue is None else queue.settings.receive_wait_seconds}

    def url_of(self, name: str) -> str:
        return f"{self.base_url}/{LOCAL_ACCOUNT_ID}/{name}"

    # -- queues ----------------------------------------------------------------------

    def create_queue(self, params: Params) -> Result:
        name = required(params, "QueueName")
        attributes = string_map(params.get("Attributes"), "Attributes")
        fifo = str(attributes.get("FifoQueue", "false")).lower() == "true"
        check_queue_name(name, fifo)
        settings = apply_attributes(QueueSettings(), attributes, fifo=fifo, creating=True)
        now = now_ms(self.clock)
        self._known.pop(name, None)
        with self.transaction() as tx:
            _check_dead_letter_target(tx, name, fifo, settings)
            existing = tx.queue(name)
            if existing is None:
                tx.create_queue(name, fifo=fifo, settings=settings, origin="api", now_ms=now)
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
            if (owner not in (None, LOCAL_ACCOUNT_ID)) or tx.queue(name) is None:
                raise no_such_queue()
        return {"QueueUrl": self.url_of(name)}

    def list_queues(self, params: Params) -> Result:
        prefix = str(params.get("QueueNamePrefix") or "")
        limit = params.get("MaxResults")
        start = str(params.get("NextToken") or "")
        if limit is not None and not 1 <= int(limit) <= 1000:
            raise invalid_parameter("MaxResults must be an integer between 1 and 1000.")
        with self.store.reading() as tx:
            names = [q.name for q in tx.queues(prefix) if q.name > start]
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
            if not tx.delete_queue(name):
                raise no_such_queue()
        self._known.pop(name, None)
        return {}

    def get_queue_attributes(self, params: Params) -> Result:
        name = self.queue_name(params)
        names = params.get("AttributeNames") or []
        now = now_ms(self.clock)
        with self.store.reading() as tx:
            queue = _queue(tx, name)
            counts = tx.queue_counts(now, [name]).get(name, QueueCounts(0, 0, 0))
        attributes = render_attributes(queue, counts, names)
        return {"Attributes": attributes} if attributes else {}

    def set_queue_attributes(self, params: Params) -> Result:
        name = self.queue_name(params)
        attributes = string_map(params.get("Attributes"), "Attributes")
        if not attributes:
            raise missing_parameter("Attributes")
        self._known.pop(name, None)
        with self.transaction() as tx:
            queue = _queue(tx, name)
            settings = apply_attributes(queue.settings, attributes, fifo=queue.fifo, creating=False)
            _check_dead_letter_target(tx, name, queue.fifo, settings)
            tx.update_queue(name, settings=settings, now_ms=now_ms(self.clock))
        self._known.pop(name, None)
        return {}

    def purge_queue(self, params: Params) -> Result:
        name = self.queue_name(params)
        now = now_ms(self.clock)
        with self.transaction() as tx:
            _queue(tx, name)
            last = tx.last_purge_ms(name)
            if last is not None and now - last < PURGE_INTERVAL_MS:
                raise SqsError(
                    "PurgeQueueInProgress",
                    f"Only one PurgeQueue operation on {name} is allowed every 60 seconds.",
                )
            tx.purge_messages(name)
            tx.mark_purged(name, now)
        return {}

    def list_dead_letter_source_queues(self, params: Params) -> Result:
        name = self.queue_name(params)
        with self.store.reading() as tx:
            _queue(tx, name)
            sources = tx.dead_letter_sources(name)
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
        batch = entries(params)
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
            if queue.fifo and tx.connection.dialect.name == "postgresql":
                # One FIFO receive per queue at a time, so that two cannot both take a
                # group that has nothing in flight (SQLite's write lock does this).
                queue = _queue(tx, name, for_update=True)
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
                candidates = tx.receivable(
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
                    tx.move_messages(
                        plan.dead_letter, to_queue=target, now_ms=now, dead_lettered_from=name
                    )
                chosen = set(plan.deliver)
                delivered += tx.mark_received(
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
            "ReceiptHandle": msg.receipt_handle(m.id, token),
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
        handle = msg.parse_receipt_handle(required(params, "ReceiptHandle"))
        with self.transaction() as tx:
            self._queue(tx, name)
            # A stale handle (the message was received again since) deletes nothing and
            # succeeds, as SQS documents; so does a handle of an already deleted message.
            tx.delete_received(name, [handle])
        return {}

    def delete_message_batch(self, params: Params) -> Result:
        name = self.queue_name(params)
        batch = entries(params)
        successful: list[Result] = []
        failed: list[Result] = []
        handles: list[tuple[str, tuple[int, str]]] = []
        for entry in batch:
            try:
                handles.append((entry["Id"], msg.parse_receipt_handle(entry.get("ReceiptHandle"))))
            except SqsError as refused:
                failed.append(failure(entry["Id"], refused))
        with self.transaction() as tx:
            self._queue(tx, name)
            tx.delete_received(name, [h for _, h in handles])
        successful = [{"Id": i} for i, _ in handles]
        return {"Successful": successful, "Failed": failed}

    def change_message_visibility(self, params: Params) -> Result:
        name = self.queue_name(params)
        with self.transaction() as tx:
            self._queue(tx, name)
            self._change_visibility(tx, name, params)
        return {}

    def change_message_visibility_batch(self, params: Params) -> Result:
        name = self.queue_name(params)
        batch = entries(params)
        successful: list[Result] = []
        failed: list[Result] = []
        with self.transaction() as tx:
            self._queue(tx, name)
            for entry in batch:
                try:
                    self._change_visibility(tx, name, entry)
                    successful.append({"Id": entry["Id"]})
                except SqsError as refused:
                    failed.append(failure(entry["Id"], refused))
        return {"Successful": successful, "Failed": failed}

    def _change_visibility(self, tx: Tx, name: str, entry: Params) -> None:
        seq, token = msg.parse_receipt_handle(required(entry, "ReceiptHandle"))
        seconds = as_int(required(entry, "VisibilityTimeout"), "VisibilityTimeout")
        if not 0 <= seconds <= 43_200:
            raise invalid_parameter(
                f"Value {seconds} for parameter VisibilityTimeout is invalid. Reason: must be "
                "between 0 and 43200."
            )
        now = now_ms(self.clock)
        message = tx.received_message(name, seq)
        if message is None or message.receipt_token != token or message.visible_ms <= now:
            raise SqsError(
                "MessageNotInflight" if message is not None else "ReceiptHandleIsInvalid",
                "Message does not exist or is not available for visibility timeout change."
                if message is not None
                else f'The input receipt handle "{entry["ReceiptHandle"]}" is not valid.',
            )
        tx.set_visible_at(name, seq, token, visible_ms=now + seconds * 1000)

    # -- lookups ---------------------------------------------------------------------

    def queue_name(self, params: Params) -> str:
        return queue_name_from_url(required(params, "QueueUrl"))


def _queue(tx: Tx, name: str, *, for_update: bool = False) -> QueueRecord:
    queue = tx.queue(name, for_update=for_update)
    if queue is None:
        raise no_such_queue()
    return queue


def _without_redrive(queue: QueueRecord) -> QueueRecord:
    return replace(
        queue, settings=replace(queue.settings, dead_letter_target=None, max_receive_count=None)
    )


def _check_dead_letter_target(tx: Tx, name: str, fifo: bool, settings: QueueSettings) -> None:
    target = settings.dead_letter_target
    if target is None:
        return
    found = tx.queue(target)
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
