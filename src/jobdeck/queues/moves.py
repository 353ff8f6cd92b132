"""Message-move tasks: dead letters sent back to the queues they came from, or to a
destination queue, as SQS's StartMessageMoveTask does and `jobdeck queue redrive` asks.

A task runs to its end inside the transaction that starts it: moving rows between queues
is one UPDATE here, not a copy across servers, so there is nothing to pace; the task is
recorded COMPLETED (or FAILED, with what was left and why) for ListMessageMoveTasks.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from jobdeck.store import Tx
from jobdeck.store.queue_records import MoveTask

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"


@dataclass(frozen=True)
class MoveOutcome:
    task: MoveTask
    moved: dict[str, int]  # queue -> messages moved there
    stranded: dict[str, int]  # source queues that no longer exist -> messages left


def move_dead_letters(
    tx: Tx,
    source: str,
    now_ms: int,
    *,
    destination: str | None = None,
    only_from: str | None = None,
    max_per_second: int | None = None,
) -> MoveOutcome:
    """Moves the messages of the dead-letter queue ``source``: each back to the queue it
    was dead-lettered from (those of ``only_from`` alone, when given), or every message
    to ``destination``. Moved messages are visible at once with their receive counts
    reset; ones whose source queue is gone (or that never had one) stay, and fail the task.
    """
    moved: dict[str, int] = {}
    stranded: dict[str, int] = {}
    if destination is not None:
        ids = tx.queues.queue_message_ids(source)
        to_move = len(ids)
        if ids:
            moved[destination] = tx.queues.move_messages(
                ids, to_queue=destination, now_ms=now_ms, dead_lettered_from=None
            )
    else:
        letters = tx.queues.dead_letters(source, source=only_from)
        by_source: dict[str, list[int]] = {}
        for message_id, origin in letters:
            by_source.setdefault(origin, []).append(message_id)
        to_move = len(letters)
        for origin, ids in sorted(by_source.items()):
            if tx.queues.queue(origin) is None:
                stranded[origin] = len(ids)
                continue
            moved[origin] = tx.queues.move_messages(
                ids, to_queue=origin, now_ms=now_ms, dead_lettered_from=None
            )
        if only_from is None:
            never = tx.queues.queue_message_count(source) - sum(stranded.values())
            if never > 0:
                stranded[""] = never
                to_move += never
    failure = None
    if stranded:
        failure = "; ".join(
            f"{count} message(s) without a source queue"
            if not origin
            else f"{count} message(s) from {origin}, which no longer exists"
            for origin, count in stranded.items()
        )
    task = MoveTask(
        handle=secrets.token_urlsafe(24),
        source=source,
        destination=destination,
        max_per_second=max_per_second,
        status=FAILED if failure else COMPLETED,
        moved=sum(moved.values()),
        to_move=to_move,
        failure=failure,
        started_ms=now_ms,
    )
    tx.queues.record_move_task(task)
    return MoveOutcome(task, moved, {k: v for k, v in stranded.items() if k})
