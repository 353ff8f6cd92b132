"""A cancel recorded in the store for a run of another node (see
:mod:`jobdeck.workflow.elsewhere` for the owning node's side)."""

from __future__ import annotations

from datetime import datetime

from jobdeck.store import Tx
from jobdeck.store.records import CancelRequest, Run, RunPlan


def cancel_elsewhere(tx: Tx, run: Run, request: CancelRequest, host: str, now: datetime) -> Run:
    """In ``tx``, the cancel of ``run`` (active, of another node) through node ``host``:
    a pending run is taken over by ``host`` and ends ``cancelled`` at once (its node
    drops it and never starts it; the take is one conditional write, so a run its node
    started meanwhile is not ended under it); a running one keeps the request, for its
    node to stop it."""
    if run.status == "pending" and tx.runs.take_run(run.id, host, at=now) is not None:
        return tx.runs.update_run(
            run.id,
            at=now,
            event="cancelled",
            status="cancelled",
            reason="cancelled",
            ended_at=now,
            detail=request.detail(),
        )
    return tx.runs.update_run(
        run.id,
        at=now,
        event="cancel_requested",
        detail=RunPlan(cancel_requested=request).detail(),
    )
