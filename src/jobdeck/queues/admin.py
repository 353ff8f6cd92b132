"""Operating queues from the command line: depth of every queue, and redrive of dead
letters back to the queues they came from (a message-move task, as SQS's console starts
one). Functions of a unit of work and ``now``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobdeck.catalog.model import Catalog
from jobdeck.queues.catalog import dead_letter_name, wire_name
from jobdeck.queues.moves import move_dead_letters
from jobdeck.store import Tx
from jobdeck.store.queue_records import MoveTask, QueueCounts


class QueueAdminError(Exception):
    """A refused queue operation; the message says why and what to do instead."""


def resolve(tx: Tx, name: str, catalog: Catalog | None) -> str:
    """The wire name of ``name``: a queue's own name, or a catalog queue's name
    (``feed-index`` for ``feed-index.fifo``, ``feed-index-dlq`` for its dead letters)."""
    if tx.queues.queue(name) is not None:
        return name
    if catalog is not None:
        for declared, spec in catalog.queues.items():
            if name == declared:
                return wire_name(declared, spec.fifo)
            if name == declared + "-dlq":
                return dead_letter_name(declared, spec.fifo)
    known = ", ".join(q.name for q in tx.queues.queues()) or "none yet"
    raise QueueAdminError(f"no queue named {name!r} (queues: {known})")


def stats(tx: Tx, now_ms: int, only: str | None = None) -> list[dict[str, Any]]:
    """Every queue's depth (or ``only`` that one): visible, in flight, delayed, and how
    many of its messages wait in its dead-letter queue."""
    counts = tx.queues.queue_counts(now_ms)
    rows = []
    for queue in tx.queues.queues():
        if only is not None and queue.name != only:
            continue
        own = counts.get(queue.name, QueueCounts(0, 0, 0))
        target = queue.settings.dead_letter_target
        dead = None
        if target is not None:
            dead = len(tx.queues.dead_letters(target, source=queue.name))
        rows.append(
            {
                "name": queue.name,
                "fifo": queue.fifo,
                "origin": queue.origin,
                "visible": own.visible,
                "in_flight": own.in_flight,
                "delayed": own.delayed,
                "dead_letter_queue": target,
                "max_receive_count": queue.settings.max_receive_count,
                "dead_lettered": dead,
            }
        )
    return rows


@dataclass(frozen=True)
class Redrive:
    dead_letter_queue: str
    moved: dict[str, int]  # source queue -> messages moved back
    stranded: dict[str, int]  # source queues that no longer exist -> messages left
    task: MoveTask  # the message-move task that did it, as ListMessageMoveTasks shows it


def redrive(tx: Tx, name: str, now_ms: int) -> Redrive:
    """Moves dead letters back to their source queues, visible at once, their receive
    counts reset, as a message-move task. ``name`` is a dead-letter queue (all of its
    messages go back to where each came from) or a source queue (its dead letters, from
    its dead-letter queue)."""
    queue = tx.queues.queue(name)
    if queue is None:
        raise QueueAdminError(f"no queue named {name!r}")
    only_from: str | None = None
    if queue.settings.dead_letter_target is not None:
        dead_letter_queue = queue.settings.dead_letter_target
        only_from = name
    else:
        dead_letter_queue = name
        if not tx.queues.dead_letters(name) and not tx.queues.dead_letter_sources(name):
            raise QueueAdminError(
                f"{name!r} is neither a dead-letter queue nor has one; nothing to redrive"
            )
    done = move_dead_letters(tx, dead_letter_queue, now_ms, only_from=only_from)
    return Redrive(dead_letter_queue, done.moved, done.stranded, done.task)
