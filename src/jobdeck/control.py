"""The control plane: plan, apply, suspend and resume against the store.

Every operation takes the store, a clock and who is acting; nothing here prints or
reads the terminal, so the CLI, the HTTP API and Slack share the same rules.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jobdeck.catalog.load import LoadedCatalog
from jobdeck.catalog.model import RUNNABLE_KINDS, SECTIONS, Kind
from jobdeck.catalog.plan import Plan, make_plan
from jobdeck.clock import Clock
from jobdeck.queues.catalog import sync_catalog_queues
from jobdeck.store import DataStore, RevisionConflict, Tx
from jobdeck.store.records import AuditEntry, Revision, Suspension, Via

# A step run inside the apply transaction after the revision row is written (queues,
# workers and other state that must change atomically with the revision plug in here).
ApplyStep = Callable[[Tx, Revision], None]

# What suspend and resume take: what runs, and the monitors of what runs elsewhere (a
# suspended monitor's slots without a ping are recorded ``suspended``, not notified).
SUSPENDABLE_KINDS: tuple[Kind, ...] = (*RUNNABLE_KINDS, "monitor")


class ControlError(Exception):
    """A refused operation; the message says why and what to do instead."""


def current_actor() -> str:
    """Who is acting from this terminal: ``$JOBDECK_USER``, else ``user@host``."""
    explicit = os.environ.get("JOBDECK_USER")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def git_describe(path: str | Path) -> str | None:
    """``git describe --always --dirty`` of the tree holding ``path``, or None outside Git."""
    folder = Path(path).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


@dataclass(frozen=True)
class Target:
    kind: str
    name: str


class Control:
    def __init__(self, store: DataStore, clock: Clock, actor: str, via: Via = "cli") -> None:
        self.store = store
        self.clock = clock
        self.actor = actor
        self.via = via

    def plan(self, loaded: LoadedCatalog) -> Plan:
        now = self.clock.now()
        applied = self.store.revisions.latest_revision()
        return make_plan(
            loaded.catalog.model_dump(mode="json"),
            applied.catalog if applied else None,
            self.store.suspensions.suspensions(now),
            now,
        )

    def apply(
        self,
        loaded: LoadedCatalog,
        *,
        git: str | None = None,
        expected: Plan | None = None,
        steps: Sequence[ApplyStep] | None = None,
    ) -> Revision | None:
        """Record the catalog as a new revision, atomically; None when nothing changes.

        ``steps`` run inside the same transaction; by default the catalog's queues (with
        their dead-letter queues) are created or updated, so they exist once applied.

        ``expected`` is the plan the user approved: when the applied state moved in the
        meantime (another apply), the apply is refused instead of applying something else.
        """
        document = loaded.catalog.model_dump(mode="json")
        if steps is None:
            steps = (sync_catalog_queues,)
        for _ in range(5):
            try:
                return self._apply_once(loaded, document, git, expected, steps)
            except RevisionConflict as exc:
                # Another apply committed first. Against a shown plan that is a refusal
                # (the user approved something else); otherwise plan again and retry.
                if expected is not None:
                    raise ControlError(f"{exc}; run the apply again") from None
        raise ControlError("too many concurrent applies; run the apply again")

    def _apply_once(
        self,
        loaded: LoadedCatalog,
        document: dict[str, Any],
        git: str | None,
        expected: Plan | None,
        steps: Sequence[ApplyStep],
    ) -> Revision | None:
        now = self.clock.now()
        with self.store.transaction() as tx:
            current = tx.revisions.latest_revision()
            plan = make_plan(
                document, current.catalog if current else None, tx.suspensions.suspensions(now)
            )
            if expected is not None and plan.changes != expected.changes:
                raise ControlError(
                    "the applied revision changed since the plan was shown; run the apply again"
                )
            if plan.empty and current is not None:
                return None
            revision = tx.revisions.add_revision(
                applied_at=now,
                applied_by=self.actor,
                catalog_sha256=loaded.digest,
                git_describe=git,
                source=_source(loaded.path),
                text=loaded.text,
                catalog=document,
            )
            for step in steps:
                step(tx, revision)
            tx.audit.record_audit(
                AuditEntry(
                    at=now,
                    actor=self.actor,
                    via=self.via,
                    action="apply",
                    target=f"revision {revision.number}",
                    detail={
                        "catalog_sha256": loaded.digest,
                        "git": git,
                        "source": loaded.path,
                        "add": plan.count("add"),
                        "change": plan.count("change"),
                        "remove": plan.count("remove"),
                    },
                )
            )
        return revision

    def resolve(self, name: str, kind: str | None = None) -> Target:
        """Find ``name`` among the applied schedules, workers, commands and monitors."""
        revision = self.store.revisions.latest_revision()
        if revision is None:
            raise ControlError("nothing is applied yet; run `jobdeck apply` first")
        kinds = [k for k in SUSPENDABLE_KINDS if kind in (None, k)]
        found = [k for k in kinds if name in (revision.catalog.get(SECTIONS[k]) or {})]
        if not found:
            raise ControlError(
                f"no schedule, worker, command or monitor named {name!r} "
                f"in revision {revision.number}" + _suggestion(name, _names(revision.catalog))
            )
        if len(found) > 1:
            raise ControlError(f"{name!r} names a {' and a '.join(found)}; say which with --kind")
        return Target(found[0], name)

    def suspend(
        self, name: str, reason: str, *, until: datetime | None = None, kind: str | None = None
    ) -> Suspension:
        if not reason.strip():
            raise ControlError("a suspension needs a reason (--reason TEXT)")
        target = self.resolve(name, kind)
        now = self.clock.now()
        if until is not None and until <= now:
            raise ControlError(f"--until {until.isoformat()} is not in the future")
        with self.store.transaction() as tx:
            existing = tx.suspensions.active_suspension(target.kind, target.name, now)
            if existing is not None:
                raise ControlError(
                    f"{target.kind} {name} is already suspended by {existing.created_by} "
                    f"({existing.reason!r}); resume it first to change the suspension"
                )
            suspension = tx.suspensions.add_suspension(
                kind=target.kind,
                name=target.name,
                reason=reason.strip(),
                created_by=self.actor,
                created_at=now,
                until=until,
            )
            detail: dict[str, Any] = {"reason": suspension.reason}
            if until is not None:
                detail["until"] = until.isoformat()
            self._audit(tx, "suspend", target, now, detail)
        return suspension

    def resume(self, name: str, *, kind: str | None = None, catch_up: bool = False) -> Suspension:
        """End a suspension. ``catch_up`` (schedules only): the engine runs the slots it
        held, by the schedule's ``catchup`` policy; without it, none of them ever runs."""
        now = self.clock.now()
        if not any(
            s.name == name and kind in (None, s.kind)
            for s in self.store.suspensions.suspensions(now)
        ):
            target = self.resolve(name, kind)  # an unknown name says so
            raise ControlError(f"{target.kind} {name} is not suspended")
        with self.store.transaction() as tx:
            active = [
                s
                for s in tx.suspensions.suspensions(now)
                if s.name == name and (kind is None or s.kind == kind)
            ]
            if not active:
                raise ControlError(f"{name!r} is not suspended")
            if len(active) > 1:
                kinds = " and ".join(s.kind for s in active)
                raise ControlError(f"{name!r} is suspended as a {kinds}; say which with --kind")
            if catch_up and active[0].kind != "schedule":
                raise ControlError(
                    f"--catch-up applies to schedules; {name!r} is a suspended {active[0].kind}"
                )
            ended = tx.suspensions.end_suspension(
                active[0].id, ended_by=self.actor, ended_at=now, catch_up=catch_up
            )
            detail: dict[str, Any] = {"reason": ended.reason}
            if catch_up:
                detail["catch_up"] = True
            self._audit(tx, "resume", Target(ended.kind, name), now, detail)
        return ended

    def _audit(
        self, tx: Tx, action: str, target: Target, now: datetime, detail: dict[str, Any]
    ) -> None:
        tx.audit.record_audit(
            AuditEntry(
                at=now,
                actor=self.actor,
                via=self.via,
                action=action,
                target=f"{target.kind} {target.name}",
                detail=detail,
            )
        )


def _source(path: str) -> str:
    """The catalog file as the engine finds it from any working directory: relative
    workdirs resolve against its folder."""
    found = Path(path)
    return str(found.resolve()) if found.is_file() else path


def _suggestion(name: str, known: list[str]) -> str:
    """``; did you mean 'X'?`` for the one close name (a typo), else nothing."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _names(catalog: dict[str, Any]) -> list[str]:
    return sorted(
        name for kind in SUSPENDABLE_KINDS for name in (catalog.get(SECTIONS[kind]) or {})
    )
