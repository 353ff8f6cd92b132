"""The queues aggregate in memory: queues, messages, FIFO deduplication, tags and
message-move tasks (see :mod:`jobdeck.store.memory`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from jobdeck.store.errors import NotFound, QueueGone
from jobdeck.store.queue_records import (
    MoveTask,
    NewMessage,
    QueueCounts,
    QueueOrigin,
    QueueRecord,
    QueueSettings,
    StoredMessage,
)


@dataclasses.dataclass
class QueueState:
    queues: dict[str, QueueRecord] = dataclasses.field(default_factory=dict)
    tags: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    purged: dict[str, int] = dataclasses.field(default_factory=dict)
    messages: dict[int, StoredMessage] = dataclasses.field(default_factory=dict)
    # (queue, dedup id) -> (message id, sequence number, expires_ms)
    dedup: dict[tuple[str, str], tuple[str, str, int]] = dataclasses.field(default_factory=dict)
    move_tasks: dict[str, MoveTask] = dataclasses.field(default_factory=dict)
    last_id: int = 0

    def copy(self) -> QueueState:
        return QueueState(
            queues=dict(self.queues),
            tags=dict(self.tags),
            purged=dict(self.purged),
            messages=dict(self.messages),
            dedup=dict(self.dedup),
            move_tasks=dict(self.move_tasks),
            last_id=self.last_id,
        )


class MemoryQueues:
    def __init__(self, state: QueueState) -> None:
        self._state = state

    def _of(self, queue: str) -> list[StoredMessage]:
        """The messages of ``queue`` in sending order."""
        return [m for m in self._state.messages.values() if m.queue == queue]

    # -- queues ----------------------------------------------------------------------

    def queue(self, name: str, *, for_update: bool = False) -> QueueRecord | None:
        return self._state.queues.get(name)

    def queues(self, prefix: str = "") -> list[QueueRecord]:
        return [q for n, q in sorted(self._state.queues.items()) if n.startswith(prefix)]

    def create_queue(
        self, name: str, *, fifo: bool, settings: QueueSettings, origin: QueueOrigin, now_ms: int
    ) -> QueueRecord:
        if name in self._state.queues:
            raise ValueError(f"queue {name!r} exists already")
        record = QueueRecord(name, fifo, settings, origin, now_ms, now_ms)
        self._state.queues[name] = record
        return record

    def update_queue(
        self,
        name: str,
        *,
        settings: QueueSettings,
        now_ms: int,
        origin: QueueOrigin | None = None,
    ) -> QueueRecord:
        found = self._state.queues.get(name)
        if found is None:
            raise NotFound(f"no queue {name!r}")
        changed = dataclasses.replace(
            found, settings=settings, modified_ms=now_ms, origin=origin or found.origin
        )
        self._state.queues[name] = changed
        return changed

    def set_queue_origin(self, name: str, origin: QueueOrigin) -> None:
        found = self._state.queues.get(name)
        if found is not None:
            self._state.queues[name] = dataclasses.replace(found, origin=origin)

    def delete_queue(self, name: str) -> bool:
        for m in self._of(name):
            del self._state.messages[m.id]
        for key in [k for k in self._state.dedup if k[0] == name]:
            del self._state.dedup[key]
        self._state.tags.pop(name, None)
        self._state.purged.pop(name, None)
        return self._state.queues.pop(name, None) is not None

    def dead_letter_sources(self, target: str) -> list[str]:
        return sorted(
            n for n, q in self._state.queues.items() if q.settings.dead_letter_target == target
        )

    def mark_purged(self, name: str, now_ms: int) -> None:
        if name in self._state.queues:
            self._state.purged[name] = now_ms

    def last_purge_ms(self, name: str) -> int | None:
        return self._state.purged.get(name)

    def locks_rows(self) -> bool:
        return False  # one unit of work at a time

    # -- sending ---------------------------------------------------------------------

    def insert_messages(
        self, queue: str, messages: Sequence[NewMessage], now_ms: int, *, ids: bool = True
    ) -> list[int]:
        if not messages:
            return []
        if queue not in self._state.queues:
            raise QueueGone(f"no queue {queue!r}")
        given: list[int] = []
        for m in messages:
            self._state.last_id += 1
            stored = StoredMessage(
                id=self._state.last_id,
                queue=queue,
                message_id=m.message_id,
                body=m.body,
                attributes=m.attributes,
                system_attributes=m.system_attributes,
                md5_body=m.md5_body,
                md5_attributes=m.md5_attributes,
                md5_system_attributes=m.md5_system_attributes,
                sent_ms=now_ms,
                visible_ms=m.visible_ms,
                receive_count=0,
                first_received_ms=None,
                receipt_token=None,
                group_id=m.group_id,
                dedup_id=m.dedup_id,
                dead_lettered_from=None,
            )
            self._state.messages[stored.id] = stored
            given.append(stored.id)
        return given if ids else []

    def recent_dedup(
        self, queue: str, dedup_ids: Iterable[str], now_ms: int
    ) -> dict[str, tuple[str, str]]:
        seen: dict[str, tuple[str, str]] = {}
        for dedup_id in sorted(set(dedup_ids)):
            found = self._state.dedup.get((queue, dedup_id))
            if found is not None and found[2] > now_ms:
                seen[dedup_id] = (found[0], found[1])
        return seen

    def remember_dedup(
        self, queue: str, entries: Sequence[tuple[str, str, str]], expires_ms: int
    ) -> None:
        if not entries:
            return
        if queue not in self._state.queues:
            raise QueueGone(f"no queue {queue!r}")
        for dedup_id, message_id, sequence in entries:
            self._state.dedup[(queue, dedup_id)] = (message_id, sequence, expires_ms)

    # -- receiving -------------------------------------------------------------------

    def receivable(
        self, queue: str, *, now_ms: int, sent_after_ms: int, limit: int, fifo: bool
    ) -> list[StoredMessage]:
        mine = self._of(queue)
        visible = [m for m in mine if m.visible_ms <= now_ms and m.sent_ms > sent_after_ms]
        if not fifo:
            return sorted(visible, key=lambda m: (m.visible_ms, m.id))[:limit]
        busy = {m.group_id for m in mine if m.visible_ms > now_ms and m.receive_count > 0}
        if None in busy:
            return []  # as SQL's NOT IN with a NULL among the groups: nothing
        free = [
            m for m in visible if m.group_id not in busy and (m.group_id is not None or not busy)
        ]
        return sorted(free, key=lambda m: m.id)[:limit]

    def mark_received(
        self, messages: Sequence[StoredMessage], *, visible_ms: int, token: str, now_ms: int
    ) -> list[StoredMessage]:
        received = []
        for m in messages:
            current = self._state.messages.get(m.id)
            if current is not None:
                self._state.messages[m.id] = dataclasses.replace(
                    current,
                    receive_count=current.receive_count + 1,
                    visible_ms=visible_ms,
                    receipt_token=token,
                    first_received_ms=current.first_received_ms or now_ms,
                )
            received.append(
                dataclasses.replace(
                    m,
                    receive_count=m.receive_count + 1,
                    visible_ms=visible_ms,
                    receipt_token=token,
                    first_received_ms=now_ms
                    if m.first_received_ms is None
                    else m.first_received_ms,
                )
            )
        return received

    def move_messages(
        self, ids: Sequence[int], *, to_queue: str, now_ms: int, dead_lettered_from: str | None
    ) -> int:
        values: dict[str, Any] = {
            "queue": to_queue,
            "visible_ms": now_ms,
            "receipt_token": None,
            "dead_lettered_from": dead_lettered_from,
        }
        if dead_lettered_from is None:
            values.update(receive_count=0, first_received_ms=None)
        moved = 0
        for i in set(ids):
            found = self._state.messages.get(i)
            if found is not None:
                self._state.messages[i] = dataclasses.replace(found, **values)
                moved += 1
        return moved

    def dead_letters(self, queue: str, *, source: str | None = None) -> list[tuple[int, str]]:
        return [
            (m.id, m.dead_lettered_from)
            for m in sorted(self._of(queue), key=lambda m: m.id)
            if m.dead_lettered_from is not None
            and (source is None or m.dead_lettered_from == source)
        ]

    # -- receipt handles -------------------------------------------------------------

    def delete_received(
        self, queue: str, handles: Sequence[tuple[int, str]], *, by_message_id: bool = False
    ) -> None:
        wanted = set(handles)
        for message_id, _ in handles:
            m = self._state.messages.get(message_id)
            if m is None or m.queue != queue:
                continue
            if (m.id, m.message_id if by_message_id else m.receipt_token) in wanted:
                del self._state.messages[message_id]

    def set_visible_at(self, queue: str, message_id: int, token: str, *, visible_ms: int) -> bool:
        m = self._state.messages.get(message_id)
        if m is None or m.queue != queue or m.receipt_token != token:
            return False
        self._state.messages[message_id] = dataclasses.replace(m, visible_ms=visible_ms)
        return True

    def received_message(self, queue: str, message_id: int) -> StoredMessage | None:
        m = self._state.messages.get(message_id)
        return m if m is not None and m.queue == queue else None

    # -- housekeeping and depth ------------------------------------------------------

    def purge_messages(self, queue: str) -> int:
        mine = self._of(queue)
        for m in mine:
            del self._state.messages[m.id]
        return len(mine)

    def prune_expired(self, now_ms: int) -> int:
        expired = [
            m
            for m in self._state.messages.values()
            if m.queue in self._state.queues and m.sent_ms <= self._cutoff(m.queue, now_ms)
        ]
        for m in expired:
            del self._state.messages[m.id]
        for key in [k for k, v in self._state.dedup.items() if v[2] <= now_ms]:
            del self._state.dedup[key]
        return len(expired)

    def _cutoff(self, queue: str, now_ms: int) -> int:
        return now_ms - self._state.queues[queue].settings.retention_seconds * 1000

    def queue_counts(
        self, now_ms: int, names: Sequence[str] | None = None
    ) -> dict[str, QueueCounts]:
        counts: dict[str, QueueCounts] = {}
        for name in sorted(self._state.queues):
            if names is not None and name not in names:
                continue
            cutoff = self._cutoff(name, now_ms)
            kept = [m for m in self._of(name) if m.sent_ms > cutoff]
            counts[name] = QueueCounts(
                visible=sum(1 for m in kept if m.visible_ms <= now_ms),
                in_flight=sum(1 for m in kept if m.visible_ms > now_ms and m.receive_count > 0),
                delayed=sum(1 for m in kept if m.visible_ms > now_ms and m.receive_count == 0),
            )
        return counts

    def oldest_sent_ms(self) -> dict[str, int]:
        oldest: dict[str, int] = {}
        for m in self._state.messages.values():
            if m.queue not in oldest or m.sent_ms < oldest[m.queue]:
                oldest[m.queue] = m.sent_ms
        return oldest

    # -- tags and message-move tasks -------------------------------------------------

    def queue_tags(self, name: str) -> dict[str, str]:
        return dict(self._state.tags.get(name) or {})

    def set_queue_tags(self, name: str, tags: dict[str, str]) -> None:
        if name in self._state.queues:
            self._state.tags[name] = dict(tags)

    def queue_message_ids(self, queue: str) -> list[int]:
        return sorted(m.id for m in self._of(queue))

    def queue_message_count(self, queue: str) -> int:
        return len(self._of(queue))

    def record_move_task(self, task: MoveTask) -> None:
        if task.handle in self._state.move_tasks:
            raise ValueError(f"move task {task.handle!r} exists already")
        self._state.move_tasks[task.handle] = task

    def move_task(self, handle: str) -> MoveTask | None:
        return self._state.move_tasks.get(handle)

    def move_tasks(self, source: str, limit: int) -> Sequence[MoveTask]:
        mine = [t for t in self._state.move_tasks.values() if t.source == source]
        return sorted(mine, key=lambda t: (t.started_ms, t.handle), reverse=True)[:limit]
