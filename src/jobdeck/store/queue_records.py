"""The records of the queue store: queues and their messages (plain frozen dataclasses).

Message times are integer milliseconds since the epoch, as SQS reports them; keeping
them as integers in the database too makes the hot receive path compare numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

QueueOrigin = Literal["api", "catalog"]


@dataclass(frozen=True)
class QueueSettings:
    """What a queue's attributes decide; the wire names are in ``jobdeck.queues.attributes``."""

    visibility_timeout: int = 30
    delay_seconds: int = 0
    retention_seconds: int = 345_600
    max_message_size: int = 1_048_576
    receive_wait_seconds: int = 0
    content_based_deduplication: bool = False
    # The dead-letter queue's name and after how many receives a message moves there.
    dead_letter_target: str | None = None
    max_receive_count: int | None = None
    # Attributes SQS accepts that change nothing here (Policy, KMS, ...), kept to echo.
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueRecord:
    name: str
    fifo: bool
    settings: QueueSettings
    origin: QueueOrigin
    created_ms: int
    modified_ms: int


@dataclass(frozen=True)
class NewMessage:
    """A message to enqueue, already validated, with its MD5s computed."""

    message_id: str
    body: str
    attributes: dict[str, Any]
    system_attributes: dict[str, Any]
    md5_body: str
    md5_attributes: str | None
    md5_system_attributes: str | None
    visible_ms: int
    group_id: str | None = None
    dedup_id: str | None = None


@dataclass(frozen=True)
class StoredMessage:
    id: int
    queue: str
    message_id: str
    body: str
    attributes: dict[str, Any]
    system_attributes: dict[str, Any]
    md5_body: str
    md5_attributes: str | None
    md5_system_attributes: str | None
    sent_ms: int
    visible_ms: int
    receive_count: int
    first_received_ms: int | None
    receipt_token: str | None
    group_id: str | None
    dedup_id: str | None
    dead_lettered_from: str | None


@dataclass(frozen=True)
class QueueCounts:
    """A queue's depth at one instant."""

    visible: int
    in_flight: int
    delayed: int


@dataclass(frozen=True)
class MoveTask:
    """A message-move task: dead letters of ``source`` moved back to the queues they came
    from, or to ``destination``. Status names are SQS's."""

    handle: str
    source: str
    destination: str | None
    max_per_second: int | None
    status: str
    moved: int
    to_move: int
    failure: str | None
    started_ms: int
