"""The store's interface for queues: queues, their messages, tags, move tasks and
de-duplication ids (part of :mod:`jobdeck.store.ports`, which re-exports it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from jobdeck.store.queue_records import (
    MoveTask,
    NewMessage,
    QueueCounts,
    QueueOrigin,
    QueueRecord,
    QueueSettings,
    StoredMessage,
)

# -- queues, messages, tags, move tasks, deduplication ---------------------------------


class QueueReads(Protocol):
    def queue(self, name: str, *, for_update: bool = False) -> QueueRecord | None: ...

    def queues(self, prefix: str = "") -> list[QueueRecord]: ...

    def dead_letter_sources(self, target: str) -> list[str]: ...

    def last_purge_ms(self, name: str) -> int | None: ...

    def recent_dedup(
        self, queue: str, dedup_ids: Iterable[str], now_ms: int
    ) -> dict[str, tuple[str, str]]:
        """The deduplication ids among ``dedup_ids`` seen within their window, with the
        message id and sequence number they were first sent as."""
        ...

    def dead_letters(self, queue: str, *, source: str | None = None) -> list[tuple[int, str]]:
        """The ``(id, source queue)`` of the messages dead-lettered into ``queue``."""
        ...

    def received_message(self, queue: str, message_id: int) -> StoredMessage | None: ...

    def queue_counts(
        self, now_ms: int, names: Sequence[str] | None = None
    ) -> dict[str, QueueCounts]:
        """Visible, in-flight and delayed messages of each queue (of ``names`` if given),
        not counting those past their retention."""
        ...

    def oldest_sent_ms(self) -> dict[str, int]:
        """When the oldest message of each queue that has one was sent."""
        ...

    def queue_tags(self, name: str) -> dict[str, str]: ...

    def queue_message_ids(self, queue: str) -> list[int]: ...

    def queue_message_count(self, queue: str) -> int: ...

    def move_task(self, handle: str) -> MoveTask | None: ...

    def move_tasks(self, source: str, limit: int) -> Sequence[MoveTask]:
        """The latest ``limit`` tasks of ``source``, the most recent first."""
        ...

    def locks_rows(self) -> bool:
        """True where writers run at once (PostgreSQL), so that a reader that must
        exclude others locks rows; False where one writer at a time (SQLite)."""
        ...


class Queues(QueueReads, Protocol):
    def create_queue(
        self, name: str, *, fifo: bool, settings: QueueSettings, origin: QueueOrigin, now_ms: int
    ) -> QueueRecord: ...

    def update_queue(
        self,
        name: str,
        *,
        settings: QueueSettings,
        now_ms: int,
        origin: QueueOrigin | None = None,
    ) -> QueueRecord: ...

    def set_queue_origin(self, name: str, origin: QueueOrigin) -> None: ...

    def delete_queue(self, name: str) -> bool:
        """Deletes the queue with its messages; False when there was no such queue."""
        ...

    def mark_purged(self, name: str, now_ms: int) -> None: ...

    def insert_messages(
        self, queue: str, messages: Sequence[NewMessage], now_ms: int, *, ids: bool = True
    ) -> list[int]:
        """Enqueues ``messages`` in order; their sequence ids (nothing without ``ids``).
        :class:`QueueGone` when the queue no longer exists."""
        ...

    def remember_dedup(
        self, queue: str, entries: Sequence[tuple[str, str, str]], expires_ms: int
    ) -> None:
        """Records ``(dedup_id, message_id, sequence_number)`` until ``expires_ms``."""
        ...

    def receivable(
        self, queue: str, *, now_ms: int, sent_after_ms: int, limit: int, fifo: bool
    ) -> list[StoredMessage]:
        """Up to ``limit`` messages of ``queue`` that can be received at ``now_ms``."""
        ...

    def mark_received(
        self, messages: Sequence[StoredMessage], *, visible_ms: int, token: str, now_ms: int
    ) -> list[StoredMessage]:
        """Counts a receive of each message and hides it until ``visible_ms``."""
        ...

    def move_messages(
        self, ids: Sequence[int], *, to_queue: str, now_ms: int, dead_lettered_from: str | None
    ) -> int:
        """Moves messages to another queue, visible at once, their receipt handles void."""
        ...

    def delete_received(
        self, queue: str, handles: Sequence[tuple[int, str]], *, by_message_id: bool = False
    ) -> None: ...

    def set_visible_at(
        self, queue: str, message_id: int, token: str, *, visible_ms: int
    ) -> bool: ...

    def purge_messages(self, queue: str) -> int: ...

    def prune_expired(self, now_ms: int) -> int:
        """Deletes messages older than their queue's retention, and expired dedup ids."""
        ...

    def set_queue_tags(self, name: str, tags: dict[str, str]) -> None: ...

    def record_move_task(self, task: MoveTask) -> None: ...
