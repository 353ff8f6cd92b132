"""The one application object of ``jobdeck serve``, wired at start.

It owns the store, the clock, the executor (pools and run shims), the run driver and the
scheduler, follows the applied revision (hot reload), and runs the background loops as
named, supervised tasks: if one of them dies, the server stops loudly instead of limping
on. Nothing here is global; tests build an :class:`Application` of their own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from jobdeck.app.cluster import ClusterSide
from jobdeck.app.options import SHUTDOWN_SLACK, Options
from jobdeck.catalog.model import Catalog
from jobdeck.clock import Clock, SystemClock
from jobdeck.commands.approvals import Approver
from jobdeck.commands.invoke import Invoker
from jobdeck.commands.usergroups import UserGroups
from jobdeck.control import Control
from jobdeck.execute.environment import inherited, pass_env_patterns
from jobdeck.execute.executor import Executor
from jobdeck.execute.retention import LogRetention
from jobdeck.execute.spec import LOG_FILE
from jobdeck.instance import instance_name
from jobdeck.notify import Notifier, RunNotice
from jobdeck.queue_depth import SAMPLE_SECONDS, DepthHistory
from jobdeck.queues.catalog import worker_environment
from jobdeck.schedule.leader import LeaderFiring
from jobdeck.schedule.scheduler import Scheduler
from jobdeck.schedule.since import Since, catch_up_since
from jobdeck.store import Run, Store, open_store
from jobdeck.store.records import Revision, Via
from jobdeck.workers.supervisor import Supervisor
from jobdeck.workflow.driver import Applied, RunDriver
from jobdeck.workflow.outbox import notice_id_of

__all__ = ["Application", "Loop", "Options", "ServerFailed"]

log = logging.getLogger("jobdeck")

# A new applied revision is picked up within this many seconds (the contract says 2 s).
RELOAD_INTERVAL = 1.0
RETENTION_INTERVAL = 3600.0
# How often a server on SQLite checkpoints the store's WAL (see Store.checkpoint).
CHECKPOINT_INTERVAL = 1.0
APPROVAL_INTERVAL = 1.0

Loop = Callable[[], Coroutine[Any, Any, None]]
# A revision read from the store, with its catalog when validated already.
_Read = tuple[Revision | None, Catalog | None]


class ServerFailed(Exception):
    """A supervised loop of the server ended or failed; the server stops."""


def _run_environment(options: Options) -> Mapping[str, str]:
    """What every run starts from: the engine's environment through its allow-list (see
    :mod:`jobdeck.execute.environment`) and, when the SQS endpoint is served, its
    endpoint, region and credentials, so that a schedule that produces messages with an
    SDK finds it as a worker does (what the operator passes on wins)."""
    patterns = pass_env_patterns(options.environ, options.pass_env)
    base = inherited(options.environ, patterns)
    if not options.sqs_url:
        return base
    return {**worker_environment(options.sqs_url, None), **base}


class Application:
    def __init__(self, options: Options, *, clock: Clock | None = None) -> None:
        self.options = options
        self.clock: Clock = clock or SystemClock()
        # Absolute: run shims and launchers work from "/", not from the engine's cwd.
        self.state_dir = options.state_dir.resolve()
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Runs' records and logs, and the SQLite store, are the engine's user's alone.
        if self.state_dir.stat().st_mode & 0o077:
            self.state_dir.chmod(0o700)
        self.store: Store = open_store(options.store_url, state_dir=self.state_dir)
        self._checkpointing = self.store.take_over_checkpoints()
        self.instance = instance_name(self.state_dir, options.store_url)
        self.host = f"{socket.gethostname()}:{self.instance}"
        self.executor = Executor(
            self.state_dir,
            self.instance,
            {},
            base_env=_run_environment(options),
            mode=options.isolation,
        )
        self.notifier: Notifier | None = None
        self.driver = RunDriver(
            self.store,
            self.clock,
            self.executor,
            host=self.host,
            notify=self._notify,
            on_error=self._failed,
        )
        self.firing = LeaderFiring(self.driver, self.leads, lambda: self.leadership.token)
        self.scheduler = Scheduler(
            self.firing,
            self.clock,
            self.store.runs.last_fires,
            since=self._catch_up_since,
        )
        self.supervisor = Supervisor(
            self.store,
            self.clock,
            self.executor,
            host=self.host,
            sqs_url=options.sqs_url,
            on_error=self._failed,
        )
        self.cluster = ClusterSide(
            options,
            self.store,
            self.clock,
            self.host,
            self.state_dir,
            driver=self.driver,
            supervisor=self.supervisor,
            scheduler=self.scheduler,
            firing=self.firing,
            notify=self._notify,
            applied=lambda: self.applied,
        )
        self.leadership = self.cluster.leadership
        self.role = self.cluster.role
        self.placement = self.cluster.placement
        self.outbox = self.cluster.outbox
        self.clustered = self.cluster.clustered
        self.retention = LogRetention(self.executor.runs_dir, self.store.runs)
        self.queue_depth = DepthHistory()
        self.applied: Applied | None = None
        self.started_at: datetime | None = None
        self._failure: BaseException | None = None
        self._stop = asyncio.Event()
        self.extra_loops: dict[str, Loop] = {}

    # -- the cluster ------------------------------------------------------------------------

    def leads(self) -> bool:
        """Whether this engine does what only one may (on SQLite: unless drained)."""
        return self.cluster.leads()

    # -- the applied revision -------------------------------------------------------------

    def reload(self, *, starting: bool = False, read: _Read | None = None) -> bool:
        """Follow the newest applied revision (or the one ``read`` already, with its
        catalog); True when it changed."""
        revision, catalog = (
            read if read is not None else (self.store.revisions.latest_revision(), None)
        )
        if revision is None:
            return False
        if self.applied is not None and self.applied.revision == revision.number:
            return False
        if catalog is None:
            catalog = Catalog.model_validate(revision.catalog)
        base_dir = Path(revision.source).resolve().parent if revision.source else Path.cwd()
        self.applied = Applied(revision.number, catalog, base_dir)
        self.executor.update_pools(catalog.pools)
        self.driver.load(self.applied)
        self.scheduler.load(catalog.schedules, catch_up=starting)
        self.supervisor.load(self.applied)
        _settle_heap()
        log.info("running revision %d", revision.number)
        return True

    def _catch_up_since(self, last: Mapping[str, datetime], now: datetime) -> Mapping[str, Since]:
        return catch_up_since(self.store, last, last.keys(), now)

    @property
    def catalog(self) -> Catalog | None:
        return self.applied.catalog if self.applied else None

    def invoker(self, usergroups: UserGroups | None = None) -> Invoker:
        """The invocation path of commands (Slack, the API, the dashboard) on this engine."""
        return Invoker(self.store, self.clock, self.driver, lambda: self.catalog, usergroups)

    def approver(self, usergroups: UserGroups | None = None) -> Approver:
        """Who decides on runs that wait for approval (Slack, the API, the dashboard)."""
        return Approver(self.store, self.clock, self.driver.approvals, usergroups)

    def control(self, actor: str, via: Via) -> Control:
        return Control(self.store, self.clock, actor, via)

    def log_path(self, run_id: int) -> Path:
        return self.executor.run_dir(run_id) / LOG_FILE

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt surviving runs, then take the applied revision (with catch-up)."""
        self.started_at = self.clock.now()
        self.scheduler.start()  # it starts while the rest does, to listen when loaded
        self.store.pin_writes()  # the event loop's transactions, on a connection of its own
        self.notifier = Notifier.from_env(self.options.environ, clock=self.clock)
        for warning in self.executor.pools.warnings:
            log.warning("%s", warning)
        log.info("isolation: %s", self.executor.pools.isolation)
        # Pools first: adopted runs are released back into them when they end.
        revision = self.store.revisions.latest_revision()
        catalog = Catalog.model_validate(revision.catalog) if revision is not None else None
        if catalog is not None:
            self.executor.update_pools(catalog.pools)
        self.role.start()  # a node of the cluster, leader if the lease is free
        recovered = self.driver.recover().report()
        if recovered:
            log.info("%s", recovered)
        workers = self.supervisor.recover()
        if workers:
            log.info("adopted %d worker process(es): %s", len(workers), workers)
        token = self.leadership.token
        self.reload(starting=True, read=(revision, catalog))
        self.firing.caught_up(token)

    async def run(self, loops: Mapping[str, Loop] | None = None) -> None:
        """Run the background loops until :meth:`stop` or until one of them ends."""
        named: dict[str, Loop] = {
            "scheduler": self.scheduler.run,
            "revisions": self._follow_revisions,
            "retention": self._sweep_logs,
            "approvals": self._expire_approvals,
            "queue-depth": self._sample_queues,
            "notices": self.outbox.run,
            **({"checkpoints": self._checkpoint} if self._checkpointing else {}),
            "workers": self.supervisor.run,
            "cluster": self.role.run,
            **({"cancels": self.driver.cancels.watch} if self.clustered else {}),
            **({"placement": self.placement.run} if self.clustered else {}),
            **self.extra_loops,
            **(loops or {}),
        }
        tasks: dict[asyncio.Task[Any], str] = {
            asyncio.create_task(loop(), name=name): name for name, loop in named.items()
        }
        stopper: asyncio.Task[Any] = asyncio.create_task(self._stop.wait(), name="stop")
        clean = hands_over = False
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            clean = stopper in done and self._failure is None
            # A leader with another node alive hands over (its workers stop, it resigns);
            # one alone keeps its workers and its lease, for its restart to adopt them.
            hands_over = (
                clean
                and self.clustered
                and self.leadership.lease is not None
                and await asyncio.to_thread(self.placement.others_alive)
            )
            if clean and (self.options.stop_workers_at_exit or hands_over):
                await self._stop_workers()
        finally:
            if self.clustered:
                self.leadership.closing = True  # from now on it neither renews nor takes
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
        if hands_over and self.leadership.lease is not None:
            # A clean stop (SIGTERM, SIGINT) of the leader: its workers stopped, it hands
            # leadership over at once instead of letting the lease run out.
            await asyncio.to_thread(self.role.resign)
            log.info("handed leadership over: another node leads from its next heartbeat")
        if self._failure is not None:
            raise ServerFailed(f"the run driver failed: {self._failure!r}") from self._failure
        for task in done:
            if task is stopper:
                continue
            name = tasks[task]
            error = task.exception() if not task.cancelled() else None
            if error is not None:
                raise ServerFailed(f"the {name} loop failed: {error!r}") from error
            raise ServerFailed(f"the {name} loop ended")

    def stop(self) -> None:
        self._stop.set()

    async def _stop_workers(self) -> None:
        """Every worker process stopped (SIGTERM, its stop_grace, SIGKILL) before the
        other loops end, each recorded as cancelled for ``shutdown``."""
        catalog = self.catalog
        graces = [w.stop_grace.total_seconds() for w in catalog.workers.values()] if catalog else []
        within = max(graces, default=30.0) + SHUTDOWN_SLACK
        log.info("stopping the worker processes before the endpoints close")
        try:
            # Bounded twice: stop_all's own deadline, and this one around all of it.
            await asyncio.wait_for(self.supervisor.stop_all(within, "shutdown"), within + 5)
        except TimeoutError:
            log.warning("some worker processes did not stop in time; the next start adopts them")

    async def aclose(self) -> None:
        """Stop watching runs and worker processes (they go on; the next start adopts
        them) and close."""
        self.scheduler.close()
        await self.supervisor.aclose()
        await self.driver.aclose()
        # A warm pool's launcher is the engine's helper: it goes with it (the runs it
        # started go on; the next start starts a launcher again at the pool's first run).
        await asyncio.to_thread(self.executor.stop_launchers)
        if self.notifier is not None:
            await self.notifier.aclose()
        self.store.close()

    # -- loops and callbacks -----------------------------------------------------------------

    async def _follow_revisions(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            # Only the number, off the event loop: a revision's row holds the whole
            # catalog, which is large at thousands of schedules.
            latest = await asyncio.to_thread(self.store.revisions.latest_number)
            applied = self.applied.revision if self.applied else None
            if latest is not None and latest != applied:
                self.reload()
            # A resume with --catch-up (from the CLI or the API, of any process) is
            # picked up here as promptly as a revision.
            if self.leads():
                await asyncio.to_thread(self.catch_up_resumed)

    def catch_up_resumed(self) -> None:
        """Run the slots of each schedule resumed with catch-up that no engine took yet."""
        for held in self.store.suspensions.catch_ups_asked():
            self.driver.catch_up_resumed(held)

    async def _expire_approvals(self) -> None:
        """Runs whose approval expired end ``cancelled`` (``approval_expired``), by the
        engine's clock, within a second of their expiry (also those of an earlier life)."""
        while True:
            self.driver.approvals.expire_due()
            await asyncio.sleep(APPROVAL_INTERVAL)

    async def _sample_queues(self) -> None:
        while True:
            await asyncio.to_thread(self.sample_queues)
            await asyncio.sleep(SAMPLE_SECONDS)

    def sample_queues(self) -> None:
        """One sample of every queue's depth into :attr:`queue_depth`."""
        now = self.clock.now()
        with self.store.reading() as tx:
            counts = tx.queues.queue_counts(int(now.timestamp() * 1000))
        self.queue_depth.record(now, counts)

    async def _checkpoint(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            await asyncio.to_thread(self.store.checkpoint)

    async def _sweep_logs(self) -> None:
        while True:
            removed = await asyncio.to_thread(self.retention.sweep, self.clock.now())
            if removed:
                log.info("log retention removed %d run folder(s)", removed)
            await asyncio.sleep(RETENTION_INTERVAL)

    def _notify(self, targets: list[str], run: Run, tail: str) -> None:
        if not targets or self.notifier is None:
            return
        link = None
        if self.options.public_url:
            # A missed-slot notice links the schedule's page (its runs, the missed ones).
            page = f"schedules/{run.job}" if run.reason == "missed" else f"runs/{run.id}"
            if run.kind == "monitor":
                page = f"runs/{run.id}"
            link = f"{self.options.public_url.rstrip('/')}/{page}"
        project = self.catalog.project if self.catalog else None
        notice = RunNotice.from_run(run, log_tail=tail, link=link, project=project)
        notice_id = notice_id_of(run)
        if notice_id is None:
            self.notifier.notify(targets, notice)
            return
        done = self.outbox.sending(notice_id)
        if done is not None:  # else this engine is sending it already
            self.notifier.notify(targets, notice, notice_id=notice_id, done=done)

    def _failed(self, error: BaseException) -> None:
        self._failure = error
        self._stop.set()


def _settle_heap() -> None:
    """After a revision is loaded: collect what the previous one left, then move every
    object that lives on (the catalog's models, the fire queue) out of the collector's
    sight. A full collection otherwise walks all of them again and again, and at
    thousands of schedules each walk stops every thread (the scheduler's included) for
    tens of milliseconds. Frozen objects are still freed when nothing refers to them."""
    gc.collect()
    gc.freeze()
