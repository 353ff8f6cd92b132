"""Queue depth for ``/metrics``: visible, in-flight and delayed messages per queue, and
the age of each queue's oldest message (how far behind its workers are)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from jobdeck.app import Application


def queue_source(app: Application) -> Iterable[Metric]:
    """One scrape's queue families, read from the store."""
    now_ms = int(app.clock.now().timestamp() * 1000)
    depth = GaugeMetricFamily(
        "jobdeck_queue_messages",
        "Messages in each queue, by state (visible, in_flight, delayed).",
        labels=["queue", "state"],
    )
    oldest = GaugeMetricFamily(
        "jobdeck_queue_oldest_message_age_seconds",
        "Age of the oldest message in each queue (0 when it is empty).",
        labels=["queue"],
    )
    with app.store.reading() as tx:
        counts = tx.queues.queue_counts(now_ms)
        first_sent = tx.queues.oldest_sent_ms()
    for name, count in sorted(counts.items()):
        depth.add_metric([name, "visible"], count.visible)
        depth.add_metric([name, "in_flight"], count.in_flight)
        depth.add_metric([name, "delayed"], count.delayed)
        sent = first_sent.get(name)
        oldest.add_metric([name], max(0.0, (now_ms - sent) / 1000) if sent is not None else 0.0)
    return [depth, oldest]
