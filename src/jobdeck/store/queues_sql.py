"""The store's queries for queues and their messages.

:class:`SqlQueues` is the queues aggregate of a unit of work
(:class:`jobdeck.store.sql.SqlTx`): every method runs on its connection and inside its
transaction. No method reads the clock,
and none decides what SQS semantics require: ``jobdeck.queues`` does, and composes these
primitives inside one transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from jobdeck.store.errors import QueueGone
from jobdeck.store.queue_records import (
    MoveTask,
    NewMessage,
    QueueCounts,
    QueueOrigin,
    QueueRecord,
    QueueSettings,
    StoredMessage,
)
from jobdeck.store.queue_statements_sql import (
    DELETE_BY_MESSAGE_ID,
    DELETE_RECEIVED,
    INSERT_MESSAGES,
    MARK_RECEIVED,
    RECEIVABLE_FIFO,
    RECEIVABLE_LOCKING,
    RECEIVABLE_STANDARD,
    move_task_record,
    queue_record,
    retention_cutoff,
    settings_values,
    stored_message,
)
from jobdeck.store.tables import queue_dedup, queue_messages, queue_move_tasks, queues

_m = queue_messages.c


class SqlQueues:
    """Queues, messages, FIFO deduplication, tags and message-move tasks, on the
    connection of one unit of work."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- queues ----------------------------------------------------------------------

    def queue(self, name: str, *, for_update: bool = False) -> QueueRecord | None:
        """The queue called ``name``. ``for_update`` locks its row until the end of the
        transaction (PostgreSQL; SQLite's write lock already serializes writers)."""
        query = select(queues).where(queues.c.name == name)
        if for_update:
            # FOR NO KEY UPDATE: inserting a message (whose foreign key takes a KEY SHARE
            # lock on the queue's row) does not wait for the lock holder.
            query = query.with_for_update(key_share=True)
        row = self.connection.execute(query).mappings().first()
        return None if row is None else queue_record(row)

    def queues(self, prefix: str = "") -> list[QueueRecord]:
        query = select(queues).order_by(queues.c.name)
        if prefix:
            query = query.where(queues.c.name.startswith(prefix, autoescape=True))
        return [queue_record(row) for row in self.connection.execute(query).mappings()]

    def create_queue(
        self, name: str, *, fifo: bool, settings: QueueSettings, origin: QueueOrigin, now_ms: int
    ) -> QueueRecord:
        values = {
            "name": name,
            "fifo": fifo,
            "origin": origin,
            "created_ms": now_ms,
            "modified_ms": now_ms,
            **settings_values(settings),
        }
        row = self.connection.execute(queues.insert().values(values).returning(*queues.c))
        return queue_record(row.mappings().one())

    def update_queue(
        self,
        name: str,
        *,
        settings: QueueSettings,
        now_ms: int,
        origin: QueueOrigin | None = None,
    ) -> QueueRecord:
        values: dict[str, Any] = {"modified_ms": now_ms, **settings_values(settings)}
        if origin is not None:
            values["origin"] = origin
        query = update(queues).where(queues.c.name == name).values(values).returning(*queues.c)
        return queue_record(self.connection.execute(query).mappings().one())

    def set_queue_origin(self, name: str, origin: QueueOrigin) -> None:
        self.connection.execute(update(queues).where(queues.c.name == name).values(origin=origin))

    def delete_queue(self, name: str) -> bool:
        """Deletes the queue with its messages; False when there was no such queue."""
        # Explicit deletes rather than relying on ON DELETE CASCADE alone, so that the
        # outcome does not depend on SQLite's foreign_keys pragma of the connection.
        self.connection.execute(delete(queue_messages).where(_m.queue == name))
        self.connection.execute(delete(queue_dedup).where(queue_dedup.c.queue == name))
        done = self.connection.execute(
            delete(queues).where(queues.c.name == name).returning(queues.c.name)
        )
        return done.first() is not None

    def dead_letter_sources(self, target: str) -> list[str]:
        query = (
            select(queues.c.name)
            .where(queues.c.dead_letter_target == target)
            .order_by(queues.c.name)
        )
        return list(self.connection.scalars(query))

    def mark_purged(self, name: str, now_ms: int) -> None:
        self.connection.execute(
            update(queues).where(queues.c.name == name).values(last_purge_ms=now_ms)
        )

    def last_purge_ms(self, name: str) -> int | None:
        value = self.connection.scalar(select(queues.c.last_purge_ms).where(queues.c.name == name))
        return None if value is None else int(value)

    # -- sending ---------------------------------------------------------------------

    def insert_messages(
        self, queue: str, messages: Sequence[NewMessage], now_ms: int, *, ids: bool = True
    ) -> list[int]:
        """Enqueues ``messages`` in order; returns their sequence ids, in the same order
        (nothing without ``ids``, which spares reading them back)."""
        if not messages:
            return []
        try:
            return self._insert_messages(queue, messages, now_ms, ids=ids)
        except IntegrityError as gone:
            raise QueueGone(f"no queue {queue!r}") from gone

    def _insert_messages(
        self, queue: str, messages: Sequence[NewMessage], now_ms: int, *, ids: bool
    ) -> list[int]:
        rows = [
            {
                "queue": queue,
                "message_id": m.message_id,
                "body": m.body,
                "attributes": m.attributes,
                "system_attributes": m.system_attributes,
                "md5_body": m.md5_body,
                "md5_attributes": m.md5_attributes,
                "md5_system_attributes": m.md5_system_attributes,
                "sent_ms": now_ms,
                "visible_ms": m.visible_ms,
                "receive_count": 0,
                "group_id": m.group_id,
                "dedup_id": m.dedup_id,
            }
            for m in messages
        ]
        if not ids:
            self.connection.execute(INSERT_MESSAGES, rows)
            return []
        if len(rows) == 1:
            inserted = self.connection.execute(queue_messages.insert().returning(_m.id), rows[0])
            return [int(inserted.scalar_one())]
        # sort_by_parameter_order: the ids come back in the order of the rows given.
        inserted = self.connection.execute(
            queue_messages.insert().returning(_m.id, sort_by_parameter_order=True), rows
        )
        return [int(row[0]) for row in inserted]

    def recent_dedup(
        self, queue: str, dedup_ids: Iterable[str], now_ms: int
    ) -> dict[str, tuple[str, str]]:
        """The deduplication ids among ``dedup_ids`` seen within their window, with the
        message id and sequence number they were first sent as."""
        wanted = sorted(set(dedup_ids))
        if not wanted:
            return {}
        query = select(
            queue_dedup.c.dedup_id, queue_dedup.c.message_id, queue_dedup.c.sequence_number
        ).where(
            queue_dedup.c.queue == queue,
            queue_dedup.c.dedup_id.in_(wanted),
            queue_dedup.c.expires_ms > now_ms,
        )
        return {row[0]: (row[1], row[2]) for row in self.connection.execute(query)}

    def remember_dedup(
        self, queue: str, entries: Sequence[tuple[str, str, str]], expires_ms: int
    ) -> None:
        """Records ``(dedup_id, message_id, sequence_number)`` until ``expires_ms``,
        replacing an expired record of the same id."""
        if not entries:
            return
        try:
            self._remember_dedup(queue, entries, expires_ms)
        except IntegrityError as gone:
            raise QueueGone(f"no queue {queue!r}") from gone

    def _remember_dedup(
        self, queue: str, entries: Sequence[tuple[str, str, str]], expires_ms: int
    ) -> None:
        self.connection.execute(
            delete(queue_dedup).where(
                queue_dedup.c.queue == queue,
                queue_dedup.c.dedup_id.in_([e[0] for e in entries]),
            )
        )
        self.connection.execute(
            queue_dedup.insert(),
            [
                {
                    "queue": queue,
                    "dedup_id": dedup_id,
                    "message_id": message_id,
                    "sequence_number": sequence,
                    "expires_ms": expires_ms,
                }
                for dedup_id, message_id, sequence in entries
            ],
        )

    def locks_rows(self) -> bool:
        """True on PostgreSQL, whose writers run at once; SQLite's write lock already
        serializes them."""
        return self.connection.dialect.name == "postgresql"

    # -- receiving -------------------------------------------------------------------

    def receivable(
        self, queue: str, *, now_ms: int, sent_after_ms: int, limit: int, fifo: bool
    ) -> list[StoredMessage]:
        """Up to ``limit`` messages of ``queue`` that can be received at ``now_ms``.

        Standard queues: the longest-visible first. FIFO queues: in sending order, and
        none of a message group that has a message in flight (one receiver per group).
        PostgreSQL skips rows that a concurrent receive has locked.
        """
        if self.locks_rows():
            query = RECEIVABLE_LOCKING[fifo]
        else:
            query = RECEIVABLE_FIFO if fifo else RECEIVABLE_STANDARD
        found = self.connection.execute(
            query,
            {"queue": queue, "now_ms": now_ms, "sent_after_ms": sent_after_ms, "limit": limit},
        )
        return [stored_message(row) for row in found.mappings()]

    def mark_received(
        self, messages: Sequence[StoredMessage], *, visible_ms: int, token: str, now_ms: int
    ) -> list[StoredMessage]:
        """Counts a receive of each message (read, and locked, by :meth:`receivable` in
        this transaction) and hides it until ``visible_ms``; returns them as now stored."""
        if not messages:
            return []
        self.connection.execute(
            MARK_RECEIVED,
            {
                "ids": [m.id for m in messages],
                "visible_ms": visible_ms,
                "token": token,
                "now_ms": now_ms,
            },
        )
        return [
            dataclasses.replace(
                m,
                receive_count=m.receive_count + 1,
                visible_ms=visible_ms,
                receipt_token=token,
                first_received_ms=now_ms if m.first_received_ms is None else m.first_received_ms,
            )
            for m in messages
        ]

    def move_messages(
        self, ids: Sequence[int], *, to_queue: str, now_ms: int, dead_lettered_from: str | None
    ) -> int:
        """Moves messages to another queue, visible at once, their receipt handles void.

        Into a dead-letter queue the receive count and first receive stay, as in SQS;
        back out of one (``dead_lettered_from`` None) the message starts afresh.
        """
        if not ids:
            return 0
        values: dict[str, Any] = {
            "queue": to_queue,
            "visible_ms": now_ms,
            "receipt_token": None,
            "dead_lettered_from": dead_lettered_from,
        }
        if dead_lettered_from is None:
            values.update(receive_count=0, first_received_ms=None)
        done = self.connection.execute(
            update(queue_messages).where(_m.id.in_(ids)).values(values).returning(_m.id)
        )
        return len(done.all())

    def dead_letters(self, queue: str, *, source: str | None = None) -> list[tuple[int, str]]:
        """The ``(id, source queue)`` of the messages that were dead-lettered into
        ``queue`` (from ``source`` only, when given), in sending order."""
        query = (
            select(_m.id, _m.dead_lettered_from)
            .where(_m.queue == queue, _m.dead_lettered_from.is_not(None))
            .order_by(_m.id)
        )
        if source is not None:
            query = query.where(_m.dead_lettered_from == source)
        return [(int(row[0]), str(row[1])) for row in self.connection.execute(query)]

    # -- receipt handles -------------------------------------------------------------

    def delete_received(
        self, queue: str, handles: Sequence[tuple[int, str]], *, by_message_id: bool = False
    ) -> None:
        """Deletes each message whose latest receipt token matches (whose message id
        matches, ``by_message_id``)."""
        if not handles:
            return
        self.connection.execute(
            DELETE_BY_MESSAGE_ID if by_message_id else DELETE_RECEIVED,
            {
                "ids": [message_id for message_id, _ in handles],
                "queue": queue,
                "handles": list(handles),
            },
        )

    def set_visible_at(self, queue: str, message_id: int, token: str, *, visible_ms: int) -> bool:
        """Moves the visibility of a received message (matching ``token``) to ``visible_ms``."""
        done = self.connection.execute(
            update(queue_messages)
            .where(_m.id == message_id, _m.queue == queue, _m.receipt_token == token)
            .values(visible_ms=visible_ms)
            .returning(_m.id)
        ).first()
        return done is not None

    def received_message(self, queue: str, message_id: int) -> StoredMessage | None:
        row = (
            self.connection.execute(
                select(queue_messages).where(_m.id == message_id, _m.queue == queue)
            )
            .mappings()
            .first()
        )
        return None if row is None else stored_message(row)

    # -- housekeeping and depth ------------------------------------------------------

    def purge_messages(self, queue: str) -> int:
        done = self.connection.execute(
            delete(queue_messages).where(_m.queue == queue).returning(_m.id)
        )
        return len(done.all())

    def prune_expired(self, now_ms: int) -> int:
        """Deletes messages older than their queue's retention, and expired dedup ids."""
        cutoff = select(retention_cutoff(now_ms)).where(queues.c.name == _m.queue).scalar_subquery()
        done = self.connection.execute(
            delete(queue_messages).where(_m.sent_ms <= cutoff).returning(_m.id)
        )
        self.connection.execute(delete(queue_dedup).where(queue_dedup.c.expires_ms <= now_ms))
        return len(done.all())

    def queue_counts(
        self, now_ms: int, names: Sequence[str] | None = None
    ) -> dict[str, QueueCounts]:
        """Visible, in-flight and delayed messages of each queue (of ``names`` if given),
        not counting those past their retention."""
        in_flight = and_(_m.visible_ms > now_ms, _m.receive_count > 0)
        delayed = and_(_m.visible_ms > now_ms, _m.receive_count == 0)
        retained = _m.sent_ms > retention_cutoff(now_ms)
        query = (
            select(
                queues.c.name,
                func.count(_m.id).filter(and_(_m.visible_ms <= now_ms, retained)),
                func.count(_m.id).filter(and_(in_flight, retained)),
                func.count(_m.id).filter(and_(delayed, retained)),
            )
            .select_from(queues.outerjoin(queue_messages, _m.queue == queues.c.name))
            .group_by(queues.c.name)
            .order_by(queues.c.name)
        )
        if names is not None:
            query = query.where(queues.c.name.in_(list(names)))
        return {
            str(row[0]): QueueCounts(visible=row[1], in_flight=row[2], delayed=row[3])
            for row in self.connection.execute(query)
        }

    def oldest_sent_ms(self) -> dict[str, int]:
        """When the oldest message of each queue that has one was sent."""
        query = select(_m.queue, func.min(_m.sent_ms)).group_by(_m.queue)
        return {str(name): int(sent) for name, sent in self.connection.execute(query).all()}

    # -- tags ------------------------------------------------------------------------

    def queue_tags(self, name: str) -> dict[str, str]:
        value = self.connection.scalar(select(queues.c.tags).where(queues.c.name == name))
        return {str(k): str(v) for k, v in (value or {}).items()}

    def set_queue_tags(self, name: str, tags: dict[str, str]) -> None:
        self.connection.execute(
            update(queues).where(queues.c.name == name).values(tags=dict(tags) or None)
        )

    # -- message-move tasks ----------------------------------------------------------

    def queue_message_ids(self, queue: str) -> list[int]:
        query = select(queue_messages.c.id).where(queue_messages.c.queue == queue)
        return [int(i) for i in self.connection.scalars(query.order_by(queue_messages.c.id))]

    def queue_message_count(self, queue: str) -> int:
        query = select(func.count()).where(queue_messages.c.queue == queue)
        return int(self.connection.scalar(query) or 0)

    def record_move_task(self, task: MoveTask) -> None:
        self.connection.execute(
            queue_move_tasks.insert().values(
                handle=task.handle,
                source=task.source,
                destination=task.destination,
                max_per_second=task.max_per_second,
                status=task.status,
                moved=task.moved,
                to_move=task.to_move,
                failure=task.failure,
                started_ms=task.started_ms,
            )
        )

    def move_task(self, handle: str) -> MoveTask | None:
        row = (
            self.connection.execute(
                select(queue_move_tasks).where(queue_move_tasks.c.handle == handle)
            )
            .mappings()
            .first()
        )
        return None if row is None else move_task_record(row)

    def move_tasks(self, source: str, limit: int) -> Sequence[MoveTask]:
        """The latest ``limit`` tasks of ``source``, the most recent first."""
        query = (
            select(queue_move_tasks)
            .where(queue_move_tasks.c.source == source)
            .order_by(queue_move_tasks.c.started_ms.desc(), queue_move_tasks.c.handle.desc())
            .limit(limit)
        )
        return [move_task_record(row) for row in self.connection.execute(query).mappings()]
