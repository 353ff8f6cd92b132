"""The worker supervisor: every worker of the applied revision kept at its replicas.

Each process is a run of kind ``worker`` with its log, started through the executor in
the worker's pool. A round of the loop reads what only the store knows (suspensions,
the queues' backlog, leases) and converges each worker (:mod:`jobdeck.workers.rollout`):
it starts what is missing, restarts what exited after a backoff that doubles while the
worker crash-loops, stops (SIGTERM, ``stop_grace``, SIGKILL) what a change, a removal,
a suspension or a scale-in no longer wants, and rolls a changed worker one replica at a
time. Rounds run when a process exits, when a revision is loaded, and on a modest tick
for autoscaling and suspensions.

A singleton holds a lease in the store, taken with its run before its process starts
and given back only once that process is confirmed gone, so that crash loops, applies
and engine restarts never have two of its processes alive. Worker processes outlive the
engine; the next engine adopts them (:meth:`Supervisor.recover`).

Starts are recorded with trigger ``schedule`` (the engine starts them on its own, as the
applied catalog declares, as it fires a schedule) and restarts after an exit with
trigger ``retry``, linked to the run that exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from jobdeck.catalog.model import Catalog, Worker
from jobdeck.execute.executor import Applied
from jobdeck.queues.catalog import wire_name
from jobdeck.store.errors import Fenced
from jobdeck.store.records import Run
from jobdeck.store.worker_records import WorkerState
from jobdeck.workers.autoscale import decide_replicas
from jobdeck.workers.lease import process_gone
from jobdeck.workers.replicas import Backoff, Replica, ReplicaKeeper, WorkerLife
from jobdeck.workers.rollout import ReplicaView, StopReason, converge

__all__ = ["Backoff", "Replica", "Supervisor", "WorkerLife"]

log = logging.getLogger(__name__)

# A worker's fields that its running processes do not depend on: changing them scales
# or re-labels the worker without restarting a replica.
# How long a new leader's worker process has run before a drained node's one stops.
HANDOVER_SETTLE = timedelta(seconds=2)

NOT_IN_THE_PROCESS = {"replicas", "autoscale", "description", "stop_grace", "capacity", "notify"}


class Supervisor(ReplicaKeeper):
    """Decides what each worker needs, round by round; :class:`ReplicaKeeper` does it."""

    # -- configuration and state --------------------------------------------------------

    def load(self, applied: Applied) -> None:
        self.applied = applied
        self.wake()

    def overview(self) -> dict[str, dict[str, Any]]:
        """Each worker's desired and running replicas, restarts, last exit and latest
        autoscale decision, as this supervisor sees them now."""
        return {
            name: {
                "desired": life.desired,
                "running": sum(1 for r in life.replicas.values() if r.state == "running"),
                "restarts": life.restarts,
                "last_exit": life.last_exit,
                "decision": life.decision,
            }
            for name, life in sorted(self.workers.items())
        }

    def _hash(self, spec: Worker) -> str:
        assert self.applied is not None
        document = {
            # What the process is made of: the count of replicas, the autoscale policy
            # and the rest that no process sees change nothing that runs.
            "spec": spec.model_dump(mode="json", exclude=NOT_IN_THE_PROCESS),
            "base_dir": str(self.applied.base_dir),
            "sqs_url": self.sqs_url,
        }
        text = json.dumps(document, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- adoption -----------------------------------------------------------------------

    def recover(self) -> list[int]:
        """Take over this host's worker runs from the store; returns the adopted ids.

        A live process is watched again and counts as a replica (of an outdated spec if
        the revision changed meanwhile); one that ended while no engine ran has its
        outcome recorded by the watch at once; a run that never launched is cancelled.
        """
        adopted: list[int] = []
        now = self.clock.now()
        for run in self.store.runs.active_runs(kind="worker", host=self.host):
            life = self.life(run.job)
            if run.id in life.replicas:
                continue
            if run.status == "pending" and not self.executor.launched(run.id):
                with self.store.transaction() as tx:
                    tx.runs.update_run(
                        run.id,
                        at=now,
                        event="cancelled",
                        status="cancelled",
                        reason="engine_restart",
                        ended_at=now,
                        detail={"why": "the engine stopped before the process started"},
                    )
                    tx.workers.release_lease(run.job, run.id)
                continue
            self._adopt(life, run, now)
            adopted.append(run.id)
        self.wake()
        return adopted

    def _adopt(self, life: WorkerLife, run: Run, now: datetime) -> None:
        stop = cast("StopReason | None", run.plan.stop_reason)
        life.replicas[run.id] = Replica(
            run,
            run.plan.spec_hash or "",
            "stopping" if stop else "running",
            started_at=run.started_at or now,
            stop_reason=stop,
        )
        if stop:  # the earlier engine may have died before it could signal the stop
            spec = self._spec(run.job)
            grace = (spec.stop_grace if spec else timedelta(seconds=30)).total_seconds()
            self.tasks.spawn(self._signal_stop(life.replicas[run.id], grace))
        with self.store.transaction() as tx:
            tx.runs.add_event(
                run.id, at=now, type="adopted", detail={"state": self.executor.probe(run.id)}
            )
            if run.status == "pending":
                tx.runs.update_run(
                    run.id, at=now, event="started", status="running", started_at=now
                )
        self.executor.watch(run.id, self._on_exit)

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self._round()
            wait = self._next_wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _next_wait(self) -> float:
        wait = self.tick.total_seconds()
        now = self.clock.now()
        for life in self.workers.values():
            if life.not_before is not None and life.not_before > now:
                wait = min(wait, (life.not_before - now).total_seconds())
        return max(0.01, wait)

    async def _round(self) -> None:
        if self.applied is None:
            return
        now = self.clock.now()
        if self.leads is not None and not self.leads(now):
            return  # a standby: the leader keeps the workers (its own processes end)
        # Shielded and awaited by aclose: the thread holds a store connection, which must
        # be back in the pool before the store closes.
        observing = asyncio.to_thread(self._observe, self.applied.catalog, now)
        self._observing = asyncio.ensure_future(observing)
        suspended, visible = await asyncio.shield(self._observing)
        if self.applied is None:  # stopped meanwhile
            return
        catalog = self.applied.catalog
        for name in sorted(set(catalog.workers) | set(self.workers)):
            spec = catalog.workers.get(name)
            life = self.life(name)
            if spec is None and not life.replicas:
                continue
            self._converge(life, spec, name in suspended, visible, now)
            self._save(life, now)
        # Renewed while this engine may hold a lease: a singleton declared, or a process
        # of one (also one being confirmed gone after the catalog dropped it).
        declared = any(w.singleton for w in catalog.workers.values())
        cleaning = any(life.cleaning for life in self.workers.values())
        if (
            declared
            or cleaning
            or any(
                r.run.plan.singleton
                for life in self.workers.values()
                for r in life.replicas.values()
            )
        ):
            with contextlib.suppress(Fenced), self.store.transaction() as tx:
                if self.fence is not None:
                    self.fence(tx, now)
                tx.workers.renew_leases(self.host, now + self.lease_ttl)

    def _observe(self, catalog: Catalog, now: datetime) -> tuple[set[str], dict[str, int]]:
        """What the store alone knows: suspended workers and the visible backlog of the
        queues that autoscaled workers follow (by catalog queue name)."""
        with self.store.reading() as tx:
            suspended = {s.name for s in tx.suspensions.suspensions(now) if s.kind == "worker"}
            followed = {w.queue for w in catalog.workers.values() if w.autoscale and w.queue}
            visible: dict[str, int] = {}
            if followed:
                counts = tx.queues.queue_counts(int(now.timestamp() * 1000))
                for queue in followed:
                    declared = catalog.queues.get(queue)
                    wire = wire_name(queue, declared.fifo if declared else False)
                    found = counts.get(wire)
                    visible[queue] = found.visible if found else 0
        return suspended, visible

    def _converge(
        self,
        life: WorkerLife,
        spec: Worker | None,
        suspended: bool,
        visible: Mapping[str, int],
        now: datetime,
    ) -> None:
        zero: StopReason = "scaled_in"
        if spec is None:
            desired, zero = 0, "removed"
        elif not spec.enabled:
            desired, zero = 0, "disabled"
        elif suspended:
            desired, zero = 0, "suspended"
        elif spec.autoscale is not None and spec.queue is not None:
            desired = self._autoscale(life, spec, visible.get(spec.queue, 0), now)
        else:
            desired = spec.desired_replicas
        life.desired = desired
        if spec is not None:
            spec_hash = self._hash(spec)
            if life.spec_hash is not None and life.spec_hash != spec_hash:
                life.failures, life.not_before = 0, None  # a new spec starts afresh
            life.spec_hash = spec_hash
        views = [
            ReplicaView(r.run.id, r.spec_hash == life.spec_hash, r.state)
            for r in life.replicas.values()
        ]
        may_start = life.not_before is None or life.not_before <= now
        singleton = spec is not None and spec.singleton
        steps = converge(views, desired, singleton=singleton, may_start=may_start, zero_reason=zero)
        for run_id, reason in steps.stop:
            self._stop(life, life.replicas[run_id], reason, now)
        if spec is None:
            return
        for _ in range(steps.start):
            if singleton and not self._lease_free(life, now):
                break
            self._start(life, spec, now)

    def _autoscale(self, life: WorkerLife, spec: Worker, visible: int, now: datetime) -> int:
        assert spec.autoscale is not None
        decision = decide_replicas(spec.autoscale, visible, life.scale, now, cooldown=self.cooldown)
        previous = life.decision
        life.scale = decision.state
        shown = decision.to_json(now)
        before = None if previous is None else previous.get("action")
        # Recorded: every change, the start of a cooldown, and its end without a change
        # (a burst came back); a steady hold is not news.
        entered = decision.action == "cooldown" and before != "cooldown"
        left = decision.action == "hold" and before == "cooldown"
        if decision.changed or entered or left:
            life.decision = shown
            with self.store.transaction() as tx:
                tx.workers.add_worker_event(life.name, at=now, type="autoscale", detail=shown)
            if decision.changed:
                log.info(
                    "worker %s: %s to %d (%s)",
                    life.name,
                    decision.action,
                    decision.desired,
                    decision.reason,
                )
        return decision.desired

    def _save(self, life: WorkerLife, now: datetime) -> None:
        """Keeps the store's view (for `jobdeck status`) in step, writing only changes."""
        key = (life.desired, life.restarts, json.dumps(life.last_exit), json.dumps(life.decision))
        if key == life.saved:
            return
        life.saved = key
        state = WorkerState(
            life.name, life.desired, life.restarts, now, life.last_exit, life.decision
        )
        with self.store.transaction() as tx:
            tx.workers.save_worker_state(state)

    # -- singleton leases ---------------------------------------------------------------

    def _lease_free(self, life: WorkerLife, now: datetime) -> bool:
        """True when this engine may try to take the lease: it is free, or held by an
        earlier process of this host that is confirmed gone (then it is given back)."""
        if life.cleaning:
            return False
        with self.store.reading() as tx:
            lease = tx.workers.lease(life.name)
        if lease is None:
            return True
        if lease.holder_host != self.host:
            if lease.expires_at > now:
                self._note(
                    life,
                    "lease",
                    f"held by {lease.holder_host} until {lease.expires_at.isoformat()}",
                )
                return False
            return True  # expired: take_lease takes it over
        holder = lease.holder_run
        if holder in life.replicas:
            return False
        state = self.executor.probe(holder)
        if state == "running":
            run = self.store.runs.run(holder)
            if run is not None:
                self._adopt(life, run, now)
            return False
        if process_gone(self.executor.run_dir(holder)):
            with self.store.transaction() as tx:
                tx.workers.release_lease(life.name, holder)
            return True
        life.cleaning = True
        self.tasks.spawn(self._clean_up(life, holder, None))
        return False

    def _note(self, life: WorkerLife, what: str, text: str) -> None:
        if life.decision is None or life.decision.get(what) != text:
            life.decision = {**(life.decision or {}), what: text}

    async def stop_all(self, within: float = 60.0, reason: StopReason = "removed") -> None:
        """Stop every worker process (each with its stop_grace) and wait until they are
        gone: at a shutdown that takes the workers' SQS endpoint away (reason
        ``shutdown``), and for tests and tools."""
        now = self.clock.now()
        for life in self.workers.values():
            for replica in list(life.replicas.values()):
                if replica.state != "stopping":
                    self._stop(life, replica, reason, now)
        self.applied = None  # nothing starts again
        deadline = asyncio.get_running_loop().time() + within
        while any(life.replicas for life in self.workers.values()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("worker processes did not stop in time")
            await asyncio.sleep(0.05)
        while self.tasks:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("the worker supervisor's tasks did not end in time")
            await asyncio.wait(list(self.tasks), timeout=left)

    # -- a drain's handover: new before old ------------------------------------------

    def stop_singletons(self, now: datetime) -> None:
        """Stops this node's singleton processes (a singleton moves stop-then-start)."""
        for life in self.workers.values():
            for replica in list(life.replicas.values()):
                if replica.run.plan.singleton and replica.state != "stopping":
                    self._stop(life, replica, "shutdown", now)

    def singletons_left(self) -> bool:
        """Whether a singleton process of this node may be alive (or its lease held)."""
        return any(
            life.cleaning or any(r.run.plan.singleton for r in life.replicas.values())
            for life in self.workers.values()
        )

    def handed_over(self) -> tuple[int, ...]:
        """This node's worker runs that stay while a drain hands them over."""
        return tuple(
            sorted(
                r.run.id
                for life in self.workers.values()
                for r in life.replicas.values()
                if r.state != "stopping"
            )
        )

    def hand_over(
        self, runs: Collection[int], now: datetime, leader: str | None, *, final: bool
    ) -> bool:
        """One step of a drain's handover of this node's worker runs ``runs`` (this node
        no longer leads): of each worker, stops as many of them as the leader ``leader``
        runs beyond the desired count with them (``running`` in the store for
        ``HANDOVER_SETTLE``, so that a new process is up before an old one stops): the
        count never dips. All of them when ``final``. True once none of them is left."""
        running: dict[str, int] = {}
        if leader is not None and leader != self.host and not final:
            for run in self.store.runs.active_runs(kind="worker", host=leader):
                started = run.started_at
                if run.status == "running" and started and started <= now - HANDOVER_SETTLE:
                    running[run.job] = running.get(run.job, 0) + 1
        left = False
        for life in self.workers.values():
            kept = [r for r in life.replicas.values() if r.run.id in runs]
            left = left or bool(kept)
            mine = [r for r in kept if r.state != "stopping"]
            surplus = len(mine) if final else len(mine) + running.get(life.name, 0) - life.desired
            for replica in mine[: max(0, surplus)]:
                self._stop(life, replica, "shutdown", now)
        return not left

    async def aclose(self) -> None:
        """Stop supervising; worker processes go on, and the next engine adopts them."""
        await self.tasks.cancel()
        if self._observing is not None:
            await asyncio.gather(self._observing, return_exceptions=True)
