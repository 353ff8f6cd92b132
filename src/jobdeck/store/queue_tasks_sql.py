"""The store's queries for what SQS keeps beside queues and messages: tags, and the
records of message-move tasks. Mixed into :class:`jobdeck.store.sql.Tx`, as
:class:`jobdeck.store.queues_sql.QueueQueries` is."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, RowMapping, func, select, update

from jobdeck.store.queue_records import MoveTask
from jobdeck.store.tables import queue_messages, queue_move_tasks, queues

_t = queue_move_tasks.c


class QueueTaskQueries:
    connection: Connection

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
            self.connection.execute(select(queue_move_tasks).where(_t.handle == handle))
            .mappings()
            .first()
        )
        return None if row is None else _task(row)

    def move_tasks(self, source: str, limit: int) -> Sequence[MoveTask]:
        """The latest ``limit`` tasks of ``source``, the most recent first."""
        query = (
            select(queue_move_tasks)
            .where(_t.source == source)
            .order_by(_t.started_ms.desc(), _t.handle.desc())
            .limit(limit)
        )
        return [_task(row) for row in self.connection.execute(query).mappings()]


def _task(row: RowMapping) -> MoveTask:
    return MoveTask(
        handle=row["handle"],
        source=row["source"],
        destination=row["destination"],
        max_per_second=row["max_per_second"],
        status=row["status"],
        moved=int(row["moved"]),
        to_move=int(row["to_move"]),
        failure=row["failure"],
        started_ms=int(row["started_ms"]),
    )
