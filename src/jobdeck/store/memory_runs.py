"""The runs aggregate in memory: runs, their events and claimed fires (see
:mod:`jobdeck.store.memory`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jobdeck.store.concurrency_sql import REASON, group
from jobdeck.store.errors import NotFound
from jobdeck.store.key_records import KeyUse
from jobdeck.store.records import (
    ACTIVE_STATUSES,
    Run,
    RunEvent,
    RunKind,
    RunStatus,
    RunStep,
    Trigger,
)
from jobdeck.store.run_rows import Moment, RunCount, RunRow
from jobdeck.store.run_steps import apply_steps
from jobdeck.store.tables import as_utc


@dataclasses.dataclass
class RunState:
    runs: dict[int, Run] = dataclasses.field(default_factory=dict)
    events: list[RunEvent] = dataclasses.field(default_factory=list)
    # (schedule, nominal time) -> the run it started, if attached yet.
    fires: dict[tuple[str, datetime], int | None] = dataclasses.field(default_factory=dict)
    # run id -> its concurrency claim: (key, limit, requested at, held since)
    claims: dict[int, tuple[str, int, datetime, datetime | None]] = dataclasses.field(
        default_factory=dict
    )

    def copy(self) -> RunState:
        return RunState(
            runs=dict(self.runs),
            events=list(self.events),
            fires=dict(self.fires),
            claims=dict(self.claims),
        )


def _newest_first(run: Run) -> tuple[datetime, int]:
    return (run.created_at, run.id)


class MemoryRuns:
    def __init__(self, state: RunState) -> None:
        self._state = state

    # -- fires -----------------------------------------------------------------------

    def claim_fire(
        self, schedule: str, nominal: datetime, *, decided_at: datetime, host: str
    ) -> bool:
        slot = (schedule, as_utc(nominal, "nominal"))
        as_utc(decided_at, "decided_at")
        if slot in self._state.fires:
            return False
        self._state.fires[slot] = None
        return True

    def reclaim_fire(
        self, schedule: str, nominal: datetime, *, decided_at: datetime, host: str
    ) -> bool:
        if self.claim_fire(schedule, nominal, decided_at=decided_at, host=host):
            return True
        slot = (schedule, as_utc(nominal, "nominal"))
        held = self._state.fires.get(slot)
        run = self._state.runs.get(held) if held is not None else None
        if run is None or (run.status, run.reason) != ("skipped", "suspended"):
            return False
        self._state.fires[slot] = None
        return True

    def attach_fire(self, schedule: str, nominal: datetime, run_id: int) -> None:
        slot = (schedule, as_utc(nominal, "nominal"))
        if slot not in self._state.fires:
            raise NotFound(f"no claimed fire of {schedule!r} at {nominal.isoformat()}")
        self._state.fires[slot] = run_id

    def last_fire(self, schedule: str) -> datetime | None:
        return max((at for name, at in self._state.fires if name == schedule), default=None)

    def last_fires(self) -> dict[str, datetime]:
        last: dict[str, datetime] = {}
        for name, at in self._state.fires:
            if name not in last or at > last[name]:
                last[name] = at
        return last

    def claimed_fires(
        self, schedule: str, start: datetime, end: datetime
    ) -> dict[datetime, int | None]:
        low, high = as_utc(start, "start"), as_utc(end, "end")
        found = {
            at: run_id
            for (name, at), run_id in self._state.fires.items()
            if name == schedule and low <= at <= high
        }
        return dict(sorted(found.items()))

    # -- runs ------------------------------------------------------------------------

    def create_run(
        self,
        *,
        job: str,
        kind: RunKind,
        trigger: Trigger,
        status: RunStatus,
        created_at: datetime,
        reason: str | None = None,
        attempt: int = 1,
        scheduled_for: datetime | None = None,
        pool: str | None = None,
        revision: int | None = None,
        retry_of: int | None = None,
        requested_by: str | None = None,
        host: str | None = None,
        params: dict[str, Any] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Run:
        created = Run(
            id=max(self._state.runs, default=0) + 1,
            job=job,
            kind=kind,
            trigger=trigger,
            status=status,
            created_at=as_utc(created_at, "created_at"),
            reason=reason,
            attempt=attempt,
            scheduled_for=None if scheduled_for is None else as_utc(scheduled_for, "scheduled_for"),
            pool=pool,
            revision=revision,
            retry_of=retry_of,
            requested_by=requested_by,
            host=host,
            params={} if params is None else params,
            detail={} if detail is None else detail,
        )
        self._state.runs[created.id] = created
        self._append(created.id, created_at, "created", {"status": status, "reason": reason})
        return created

    def update_run(
        self,
        run_id: int,
        *,
        at: datetime,
        event: str,
        status: RunStatus | None = None,
        reason: str | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        exit_code: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Run:
        step = RunStep(event, status, reason, started_at, ended_at, exit_code, detail)
        return self.update_run_steps(run_id, at=at, steps=[step])

    def update_run_steps(
        self, run_id: int, *, at: datetime, steps: Sequence[RunStep], known: Run | None = None
    ) -> Run:
        # ``known`` spares the SQL store a read; here the run is at hand anyway.
        current = self._state.runs.get(run_id)
        if current is None:
            raise NotFound(f"no run with id {run_id}")
        changes, events = apply_steps(run_id, at, steps, current.status, current.detail)
        updated = dataclasses.replace(current, **changes) if changes else current
        self._state.runs[run_id] = updated
        for event in events:
            self._append(run_id, event["at"], event["type"], event["detail"])
        return updated

    def decide_job(self, job: str, kind: RunKind) -> list[Run]:
        return self.active_runs(job=job, kind=kind)

    def take_run(
        self, run_id: int, host: str, *, at: datetime, only_from: str | None = None
    ) -> Run | None:
        current = self._state.runs.get(run_id)
        if current is None or current.status != "pending":
            return None
        if only_from is not None and current.host != only_from:
            return None
        taken = dataclasses.replace(current, host=host)
        self._state.runs[run_id] = taken
        self._append(run_id, at, "taken", {"from": current.host, "to": host})
        return taken

    def add_event(
        self, run_id: int, *, at: datetime, type: str, detail: dict[str, Any] | None = None
    ) -> RunEvent:
        if run_id not in self._state.runs:
            raise NotFound(f"no run with id {run_id}")
        return self._append(run_id, at, type, {} if detail is None else detail)

    def append_events(
        self, run_ids: Sequence[int], *, at: datetime, type: str, detail: dict[str, Any]
    ) -> None:
        missing = [i for i in run_ids if i not in self._state.runs]
        if missing:
            raise NotFound(f"no run with id {missing[0]}")
        for run_id in run_ids:
            self._append(run_id, at, type, detail)

    def _append(self, run_id: int, at: datetime, type: str, detail: dict[str, Any]) -> RunEvent:
        event = RunEvent(
            id=len(self._state.events) + 1,
            run_id=run_id,
            at=as_utc(at, "at"),
            type=type,
            detail=detail,
        )
        self._state.events.append(event)
        return event

    # -- concurrency keys ----------------------------------------------------------------

    def claim_concurrency(self, run_id: int, key: str, limit: int, *, at: datetime) -> bool:
        at = as_utc(at, "at")
        claims, all_runs = self._state.claims, self._state.runs
        old = claims.get(run_id)
        if old is None or old[3] is None:  # a holder keeps the key it holds
            claims[run_id] = (key, limit, old[2], None) if old else (key, limit, at, None)
        for other in [i for i, c in claims.items() if c[0] == key]:
            if other not in all_runs or not all_runs[other].active:
                del claims[other]
        mine = claims.get(run_id)
        if mine is None or not all_runs[run_id].active:
            return False
        if mine[3] is not None:
            return True
        rows = [(i, c) for i, c in claims.items() if c[0] == key]
        held = sum(1 for _, c in rows if c[3] is not None)
        ahead = sum(1 for i, c in rows if c[3] is None and i < run_id)
        run = all_runs[run_id]
        if held + ahead < limit:
            claims[run_id] = (key, limit, mine[2], at)
            if run.reason == REASON:
                all_runs[run_id] = dataclasses.replace(run, reason=None)
            return True
        if run.status == "pending" and run.reason is None:
            all_runs[run_id] = dataclasses.replace(run, reason=REASON)
        return False

    def concurrency_keys(self, keys: Sequence[str] | None = None) -> list[KeyUse]:
        all_runs = self._state.runs
        rows = [
            (key, limit, run_id, all_runs[run_id].kind, all_runs[run_id].job, asked, held)
            for run_id, (key, limit, asked, held) in sorted(self._state.claims.items())
            if run_id in all_runs and all_runs[run_id].active and (keys is None or key in keys)
        ]
        return group(sorted(rows, key=lambda row: (row[0], row[2])))

    def concurrency_key_of(self, run_id: int) -> str | None:
        claim = self._state.claims.get(run_id)
        return None if claim is None else claim[0]

    def run(self, run_id: int) -> Run | None:
        return self._state.runs.get(run_id)

    def runs(
        self,
        *,
        job: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Run]:
        start = None if since is None else as_utc(since, "since")
        end = None if until is None else as_utc(until, "until")
        found = [
            r
            for r in self._state.runs.values()
            if (job is None or r.job == job)
            and (kind is None or r.kind == kind)
            and (status is None or r.status == status)
            and (trigger is None or r.trigger == trigger)
            and (start is None or r.created_at >= start)
            and (end is None or r.created_at < end)
        ]
        found.sort(key=_newest_first, reverse=True)
        return found[offset : offset + limit]

    def active_runs(
        self, *, job: str | None = None, kind: RunKind | None = None, host: str | None = None
    ) -> list[Run]:
        found = [
            r
            for r in self._state.runs.values()
            if r.status in ACTIVE_STATUSES
            and (job is None or r.job == job)
            and (kind is None or r.kind == kind)
            and (host is None or r.host == host)
        ]
        return sorted(found, key=_newest_first)

    def last_runs(self, jobs: list[str] | None = None) -> dict[str, Run]:
        newest: dict[str, Run] = {}
        for run in self._state.runs.values():
            if jobs is not None and run.job not in jobs:
                continue
            held = newest.get(run.job)
            if held is None or _newest_first(run) > _newest_first(held):
                newest[run.job] = run
        return dict(sorted(newest.items()))

    def events(self, run_id: int) -> list[RunEvent]:
        return [e for e in self._state.events if e.run_id == run_id]

    def running_workers(self) -> dict[str, int]:
        running: dict[str, int] = {}
        for run in self._state.runs.values():
            if run.kind == "worker" and run.status == "running":
                running[run.job] = running.get(run.job, 0) + 1
        return running

    # -- aggregates, for metrics and listings ----------------------------------------

    def run_counts(
        self, *, kind: str | None = None, since: datetime | None = None
    ) -> list[RunCount]:
        counts: dict[tuple[str, str, str], int] = {}
        for r in self._state.runs.values():
            if (kind is None or r.kind == kind) and (since is None or r.created_at >= since):
                group = (r.kind, r.job, r.status)
                counts[group] = counts.get(group, 0) + 1
        return [RunCount(k, j, s, n) for (k, j, s), n in sorted(counts.items())]

    def runs_after(
        self, moment: Moment, at: datetime, run_id: int, limit: int = 1000
    ) -> list[RunRow]:
        found: list[tuple[datetime, int, Run]] = []
        for r in self._state.runs.values():
            when: datetime | None = getattr(r, moment)
            if when is not None and (when > at or (when == at and r.id > run_id)):
                found.append((when, r.id, r))
        found.sort(key=lambda item: (item[0], item[1]))
        return [
            RunRow(
                r.id,
                r.job,
                r.kind,
                r.trigger,
                r.status,
                r.created_at,
                r.started_at,
                r.ended_at,
                dict(r.detail or {}),
            )
            for _, _, r in found[:limit]
        ]
