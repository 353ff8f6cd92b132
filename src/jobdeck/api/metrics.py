"""Prometheus metrics of one Application, on a registry of its own (never the global one).

Two kinds of numbers, gathered when ``/metrics`` is scraped:

* **State**, read fresh at each scrape by :class:`StateCollector`: runs in the store by
  kind, job and status; worker replicas desired, running and restarted (the
  supervisor's state, or the catalog and the store's worker runs before it has any);
  pool memory used and its limit; each concurrency key's limit, holders and waiters; the
  applied revision; when each monitor was last pinged
  (``jobdeck_monitor_last_ping_seconds``); notices (``jobdeck_alerts_total``,
  sent and held back) and the duration alerts' thresholds in effect.
* **Distributions**, histograms fed from the run records: run durations, fire lateness
  and command dispatch latency. The engine writes these into each run's ``detail``;
  rather than hooking the engine, each scrape reads the runs *created* (for lateness)
  and *ended* (for duration and dispatch) since the previous scrape, in (time, id)
  order, and remembers where it stopped. So the histograms cover what happened since
  this server started, survive no restart (as Prometheus expects of a histogram), and
  cost the engine nothing. One engine writes its runs' ends in order from one thread,
  so the (time, id) watermark never skips a run it has not seen.

Other features (queue depth and the age of the oldest message, from the queues) add
their metric families as *sources*: ``create_api(app, metric_sources=[...])``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobdeck.catalog.model import Command, Schedule
from jobdeck.catalog.monitors import Monitor
from jobdeck.status import keys_status
from jobdeck.store.records import TERMINAL_STATUSES
from jobdeck.store.run_rows import Moment, RunRow
from jobdeck.workflow.durations import AUTO_SAMPLES, fast_threshold, slow_threshold

if TYPE_CHECKING:
    from jobdeck.app import Application

# Seconds; runs span sub-second checks to multi-hour batches.
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200)
# Seconds; a healthy engine fires within milliseconds of the nominal time.
LATENESS_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300)
# Seconds from a command's request to its process running.
DISPATCH_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

Source = Callable[[], Iterable[Metric]]


class StateCollector(Collector):
    """What is true now, read from the catalog, the store and the pools at each scrape."""

    def __init__(self, app: Application, sources: list[Source]) -> None:
        self.app = app
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        app = self.app
        runs = GaugeMetricFamily(
            "jobdeck_runs",
            "Runs in the store by kind, job and status.",
            labels=["kind", "job", "status"],
        )
        for count in app.store.runs.run_counts():
            runs.add_metric([count.kind, count.job, count.status], count.count)
        yield runs
        yield from self._workers()
        yield from self._pools()
        yield from self._keys()
        revision = GaugeMetricFamily("jobdeck_revision", "The applied revision the engine runs.")
        if app.applied is not None:
            revision.add_metric([], app.applied.revision)
        yield revision
        yield from self._alerts()
        yield self._monitor_pings()
        for source in self.sources:
            yield from source()

    def _workers(self) -> Iterable[Metric]:
        app = self.app
        desired = GaugeMetricFamily(
            "jobdeck_worker_replicas_desired", "Replicas a worker should run.", labels=["worker"]
        )
        running = GaugeMetricFamily(
            "jobdeck_worker_replicas_running", "Replicas a worker runs now.", labels=["worker"]
        )
        restarts = CounterMetricFamily(
            "jobdeck_worker_restarts",
            "Worker processes that ended (and were replaced) since this server started.",
            labels=["worker"],
        )
        catalog = app.catalog
        live = app.supervisor.overview()
        if live:
            # The supervisor's own view: desired after autoscaling and suspensions, its
            # processes running now, and the restarts it made since this engine started.
            for name in catalog.workers if catalog else {}:
                state = live.get(name)
                desired.add_metric([name], state["desired"] if state else 0)
                running.add_metric([name], state["running"] if state else 0)
                restarts.add_metric([name], state["restarts"] if state else 0)
            yield from (desired, running, restarts)
            return
        ended = app.store.runs.run_counts(kind="worker", since=app.started_at)
        active = app.store.runs.active_runs(kind="worker")
        for name, spec in (catalog.workers if catalog else {}).items():
            desired.add_metric([name], spec.desired_replicas)
            running.add_metric(
                [name], sum(1 for r in active if r.job == name and r.status == "running")
            )
            restarts.add_metric(
                [name],
                sum(c.count for c in ended if c.job == name and c.status in TERMINAL_STATUSES),
            )
        yield from (desired, running, restarts)

    def _alerts(self) -> Iterable[Metric]:
        app = self.app
        alerts = CounterMetricFamily(
            "jobdeck_alerts",
            "Notices decided, by kind, job, event (run.failed, run.recovered, run.slow, "
            "run.fast, run.not_started, ...) and whether they were sent or held back by "
            "the notify_policy.",
            labels=["kind", "job", "event", "sent"],
        )
        for count in app.store.notices.notice_counts():
            sent = "true" if count.sent else "false"
            alerts.add_metric([count.kind, count.job, count.event, sent], count.count)
        yield alerts
        thresholds = GaugeMetricFamily(
            "jobdeck_alert_threshold_seconds",
            "The duration alerts' thresholds in effect (auto: learned from the item's recent "
            "successful runs; absent while too few runs are known).",
            labels=["kind", "job", "alert", "source"],
        )
        catalog = app.catalog
        specs: list[tuple[str, str, Schedule | Command | Monitor]] = []
        if catalog is not None:
            specs += [("schedule", name, spec) for name, spec in catalog.schedules.items()]
            specs += [("command", name, spec) for name, spec in catalog.commands.items()]
            specs += [("monitor", name, spec) for name, spec in catalog.monitors.items()]
        for kind, name, spec in specs:
            if spec.alerts.slow is None and spec.alerts.fast is None:
                continue
            found = app.store.runs.runs(job=name, kind=kind, status="succeeded", limit=AUTO_SAMPLES)
            sample = [
                r.ended_at - r.started_at
                for r in found
                if r.started_at is not None and r.ended_at is not None
            ]
            for alert, threshold in (
                ("slow", slow_threshold(spec.alerts, sample)),
                ("fast", fast_threshold(spec.alerts, sample)),
            ):
                if threshold is not None:
                    labels = [kind, name, alert, threshold.source]
                    thresholds.add_metric(labels, threshold.value.total_seconds())
        yield thresholds

    def _monitor_pings(self) -> Metric:
        pings = GaugeMetricFamily(
            "jobdeck_monitor_last_ping_seconds",
            "When each monitor was last pinged (a start or an end), in seconds since the "
            "Unix epoch; absent until its first ping.",
            labels=["monitor"],
        )
        catalog = self.app.catalog
        for name in catalog.monitors if catalog is not None else {}:
            found = self.app.store.runs.runs(job=name, kind="monitor", trigger="ping", limit=2)
            moments = [
                moment
                for run in found
                for moment in (run.created_at, run.started_at, run.ended_at)
                if moment is not None
            ]
            if moments:
                pings.add_metric([name], max(moments).timestamp())
        return pings

    def _pools(self) -> Iterable[Metric]:
        used = GaugeMetricFamily(
            "jobdeck_pool_memory_used_bytes", "Memory the runs of a pool use.", labels=["pool"]
        )
        limit = GaugeMetricFamily(
            "jobdeck_pool_memory_limit_bytes", "A pool's memory limit.", labels=["pool"]
        )
        for usage in self.app.executor.pools.usage():
            if usage.memory_used is not None:
                used.add_metric([usage.pool], usage.memory_used)
            if usage.memory_limit is not None:
                limit.add_metric([usage.pool], usage.memory_limit)
        yield from (used, limit)

    def _keys(self) -> Iterable[Metric]:
        families = {
            name: GaugeMetricFamily(f"jobdeck_concurrency_key_{name}", help, labels=["key"])
            for name, help in (
                ("limit", "How many runs may hold a concurrency key at once."),
                ("holders", "Runs holding a concurrency key."),
                ("waiters", "Runs waiting for a concurrency key."),
            )
        }
        catalog = self.app.catalog
        if catalog is not None:
            for key in keys_status(catalog, self.app.store.runs.concurrency_keys()):
                families["limit"].add_metric([key["key"]], key["limit"])
                families["holders"].add_metric([key["key"]], len(key["holders"]))
                families["waiters"].add_metric([key["key"]], len(key["waiters"]))
        yield from families.values()


class Metrics:
    """The registry of one Application and the histograms fed from its run records."""

    def __init__(
        self, app: Application, *, sources: Iterable[Source] = (), since: datetime | None = None
    ) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        self.sources: list[Source] = list(sources)
        self.run_duration = Histogram(
            "jobdeck_run_duration_seconds",
            "How long ended runs ran, by kind, job and status.",
            ["kind", "job", "status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.fire_lateness = Histogram(
            "jobdeck_fire_lateness_seconds",
            "How late timed fires were decided after their nominal time.",
            ["schedule"],
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.dispatch_latency = Histogram(
            "jobdeck_command_dispatch_seconds",
            "From a command's invocation to its process running.",
            ["command"],
            buckets=DISPATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StateCollector(app, self.sources))
        start = since or app.clock.now()
        self._marks: dict[Moment, tuple[datetime, int]] = {
            "created_at": (start, 0),
            "ended_at": (start, 0),
        }
        # Scrapes run in the thread pool; two at once must not observe a run twice.
        self._lock = threading.Lock()

    def observe_new_runs(self) -> None:
        with self._lock:
            for row in self._since("created_at"):
                lateness = row.detail.get("lateness_ms")
                if row.kind == "schedule" and isinstance(lateness, int | float):
                    self.fire_lateness.labels(row.job).observe(max(0.0, lateness / 1000))
            for row in self._since("ended_at"):
                self._observe_end(row)

    def _since(self, moment: Moment) -> Iterable[RunRow]:
        while True:
            at, run_id = self._marks[moment]
            rows = self.app.store.runs.runs_after(moment, at, run_id)
            for row in rows:
                yield row
                when = row.created_at if moment == "created_at" else row.ended_at
                assert when is not None
                self._marks[moment] = (when, row.id)
            if len(rows) < 1000:
                return

    def _observe_end(self, row: RunRow) -> None:
        measured = row.detail.get("duration_ms")
        seconds: float | None = None
        if isinstance(measured, int | float):
            seconds = measured / 1000
        elif row.started_at is not None and row.ended_at is not None:
            seconds = (row.ended_at - row.started_at).total_seconds()
        if seconds is not None and row.status in TERMINAL_STATUSES:
            self.run_duration.labels(row.kind, row.job, row.status).observe(max(0.0, seconds))
        dispatch = row.detail.get("dispatch_ms")
        if row.kind == "command" and isinstance(dispatch, int | float):
            self.dispatch_latency.labels(row.job).observe(max(0.0, dispatch / 1000))

    def render(self) -> bytes:
        """The text exposition format, after taking in the runs since the last scrape."""
        self.observe_new_runs()
        return generate_latest(self.registry)
