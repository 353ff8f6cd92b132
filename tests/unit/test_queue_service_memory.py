"""The queue service's time-dependent semantics on the memory store: the same tests as
on SQLite and PostgreSQL (tests/integration/test_queue_service.py), the same
assertions, with the store only a dependency of the core."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobdeck.clock import FakeClock
from jobdeck.queues.service import QueueService
from jobdeck.store.memory import MemoryStore
from tests.integration.test_queue_service import (
    test_delay_seconds_per_queue_and_per_message,
    test_fifo_deduplication_window_is_five_minutes,
    test_fifo_group_waits_for_its_visibility_timeout,
    test_purge_is_allowed_again_after_sixty_seconds,
    test_retention_drops_old_messages,
    test_visibility_timeout_expires_exactly,
)

__all__ = [
    "test_delay_seconds_per_queue_and_per_message",
    "test_fifo_deduplication_window_is_five_minutes",
    "test_fifo_group_waits_for_its_visibility_timeout",
    "test_purge_is_allowed_again_after_sixty_seconds",
    "test_retention_drops_old_messages",
    "test_visibility_timeout_expires_exactly",
]

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def service(clock: FakeClock) -> QueueService:
    return QueueService(MemoryStore(), clock, "http://127.0.0.1:9324")
