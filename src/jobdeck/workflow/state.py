"""What the run driver knows of its runs, shared by its dispatching and its outcomes.

One :class:`Runs` per driver, in the engine's event loop's thread only: the revision it
runs, the runs waiting and running, and who is cancelling which. The
:class:`~jobdeck.workflow.dispatch.Dispatcher` starts runs from it and the
:class:`~jobdeck.workflow.outcomes.Outcomes` end them in it; neither holds the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobdeck.catalog.model import Command, Schedule
from jobdeck.execute.executor import DEFAULT_POOL, Applied
from jobdeck.store import Tx
from jobdeck.store.records import Run, RunKind, RunStatus, RunStep, Trigger
from jobdeck.workflow.waiting import WaitingRuns

Spec = Schedule | Command
# Notify(targets, run, log tail) is called after a run ends badly; it must not block.
Notify = Callable[[list[str], Run, str], None]


@dataclass
class Runs:
    """The driver's runs, by state; the revision that says what their jobs are."""

    host: str
    applied: Applied | None = None
    running: dict[int, Run] = field(default_factory=dict)
    waiting: WaitingRuns = field(default_factory=WaitingRuns)
    starting: set[int] = field(default_factory=set)  # launches in flight
    cancelled_by: dict[int, int] = field(default_factory=dict)  # run -> the newer run
    cancelling: set[int] = field(default_factory=set)  # asked to stop, not ended yet
    # Runs that someone cancelled (jobdeck cancel, the API): who and why, recorded with
    # the outcome.
    asked: dict[int, dict[str, Any]] = field(default_factory=dict)

    def spec_of(self, kind: str, name: str) -> Spec | None:
        if self.applied is None:
            return None
        if kind == "schedule":
            return self.applied.catalog.schedules.get(name)
        if kind == "command":
            return self.applied.catalog.commands.get(name)
        return None

    def forget(self, run_id: int) -> Run | None:
        """The run ended: it is no longer running, replaced, asked or being stopped."""
        self.cancelled_by.pop(run_id, None)
        self.asked.pop(run_id, None)
        self.cancelling.discard(run_id)
        return self.running.pop(run_id, None)

    def record(
        self,
        tx: Tx,
        kind: RunKind,
        name: str,
        trigger: Trigger,
        status: RunStatus,
        reason: str | None,
        nominal: datetime | None,
        now: datetime,
        spec: Spec | None,
        *,
        detail: Mapping[str, Any] | None = None,
        requested_by: str | None = None,
        params: Mapping[str, Any] | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
        host: str | None = None,
    ) -> Run:
        """A new run of this engine in ``tx`` (of ``host`` when given: the leader's, see
        :data:`~jobdeck.workflow.placement.LEADER`); ``detail`` holds its plan's keys (see
        :meth:`~jobdeck.store.records.RunPlan.detail`) beside the facts it shows."""
        return tx.runs.create_run(
            job=name,
            kind=kind,
            trigger=trigger,
            status=status,
            created_at=now,
            reason=reason,
            attempt=attempt,
            scheduled_for=nominal,
            pool=(spec.pool or DEFAULT_POOL) if spec else None,
            revision=self.applied.revision if self.applied else None,
            retry_of=retry_of,
            requested_by=requested_by,
            host=host or self.host,
            params=dict(params or {}),
            detail=dict(detail or {}),
        )


def started_step(now: datetime, detail: dict[str, Any]) -> RunStep:
    """The step of a run whose program started (or was found started after a restart)."""
    return RunStep("started", "running", started_at=now, detail=detail)
