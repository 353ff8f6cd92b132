"""Queue depth over time, for the dashboard's queue pages: the engine samples every
queue's visible, in-flight and dead-lettered messages on an interval and keeps the last
hour or so in memory (a restart starts the history over; ``/metrics`` is the durable
record for a Prometheus that scrapes it)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from jobdeck.store.queue_records import QueueCounts

SAMPLE_SECONDS = 15.0
KEPT = 240  # an hour at the interval above


@dataclass(frozen=True)
class Sample:
    at: datetime
    visible: int
    in_flight: int
    delayed: int


class DepthHistory:
    """The last :data:`KEPT` samples of each queue, by wire name."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._queues: dict[str, deque[Sample]] = {}

    def record(self, at: datetime, counts: Mapping[str, QueueCounts]) -> None:
        for name, count in counts.items():
            samples = self._queues.setdefault(name, deque(maxlen=self.kept))
            samples.append(Sample(at, count.visible, count.in_flight, count.delayed))

    def of(self, name: str) -> list[Sample]:
        """Oldest first."""
        return list(self._queues.get(name, ()))
