"""The one invocation path of commands, for the terminal, the HTTP API and chat.

find the command -> check its params -> authorize -> refuse a disabled or suspended
command -> claim the request's de-duplication key -> start the run in the command's
pool -> audit. Every attempt leaves one audit entry, refusals included, saying who,
from where, which command with which params, the decision, the run and the outcome.
:func:`prepare` is the pure part; :class:`Invoker` applies it to the engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from jobdeck.catalog.model import Catalog
from jobdeck.clock import Clock
from jobdeck.commands.authorize import Caller, needs_usergroups
from jobdeck.commands.decide import Prepared as Prepared
from jobdeck.commands.decide import RefusalKind as RefusalKind
from jobdeck.commands.decide import Refused as Refused
from jobdeck.commands.decide import decide
from jobdeck.commands.usergroups import UserGroups
from jobdeck.store import Store
from jobdeck.store.records import AuditEntry, Outcome, Run, Suspension, Trigger, Via
from jobdeck.workflow.refusals import RunRefused

log = logging.getLogger(__name__)

TRIGGERS: dict[Via, Trigger] = {
    "cli": "manual",
    "api": "api",
    "slack": "chatops",
    "engine": "manual",
}
# Slack gives up retrying a request within minutes; a day is plenty.
KEY_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class Invocation:
    """A started run, or (``duplicate``) the run an identical earlier request started."""

    prepared: Prepared
    run: Run | None
    audit_id: int | None
    duplicate: bool = False


class Starter(Protocol):
    """What starts a command run: the engine's run driver."""

    def run_command(
        self,
        name: str,
        argv: Sequence[str],
        *,
        trigger: Trigger,
        requested_by: str | None,
        detail: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Run: ...


def prepare(
    catalog: Catalog | None,
    name: str,
    given: Mapping[str, object],
    caller: Caller,
    member_of: set[str],
    suspensions: Sequence[Suspension],
    now: datetime,
) -> Prepared:
    """:func:`jobdeck.commands.decide.decide` on the commands of ``catalog``."""
    return decide(
        catalog.commands if catalog else None, name, given, caller, member_of, suspensions, now
    )


@dataclass
class Invoker:
    store: Store
    clock: Clock
    starter: Starter
    catalog: Callable[[], Catalog | None]
    usergroups: UserGroups | None = None

    async def member_of(self, name: str, caller: Caller) -> set[str]:
        catalog = self.catalog()
        command = catalog.commands.get(name) if catalog else None
        if command is None or self.usergroups is None:
            return set()
        if not needs_usergroups(command.allow, caller):
            return set()
        return await self.usergroups.groups_of(caller.actor, command.allow.usergroups)

    async def check(self, name: str, given: Mapping[str, object], caller: Caller) -> Prepared:
        """:func:`prepare` against the engine's state, without auditing or running."""
        member_of = await self.member_of(name, caller)
        now = self.clock.now()
        return prepare(
            self.catalog(),
            name,
            given,
            caller,
            member_of,
            self.store.suspensions.suspensions(now),
            now,
        )

    async def invoke(
        self,
        name: str,
        given: Mapping[str, object],
        caller: Caller,
        *,
        requested_at: datetime | None = None,
        key: str | None = None,
    ) -> Invocation:
        """Run ``name`` for ``caller``; raises :class:`Refused` (audited) when it may not.

        ``key`` identifies the request across retries and double clicks: of all requests
        with one key, only the first starts a run; the others get that run back.
        """
        requested_at = requested_at or self.clock.now()
        base = {"command": name, "params": _shown(given), "channel": caller.channel}
        try:
            prepared = await self.check(name, given, caller)
        except Refused as refused:
            self.audit_refusal(name, given, caller, refused)
            raise
        if key is not None:
            now = self.clock.now()
            with self.store.transaction() as tx:
                tx.keys.prune_keys(before=now - KEY_RETENTION)
                first = tx.keys.claim_key(key, at=now)
                earlier = None if first else tx.keys.key_run(key)
            if not first:
                log.info("request %s for %s was already received; not run again", key, name)
                run = self.store.runs.run(earlier) if earlier is not None else None
                return Invocation(prepared, run, None, duplicate=True)
        detail = {
            "requested_at": requested_at.isoformat(),
            "via": caller.via,
            "channel": caller.channel,
        }
        argv_detail = {**base, "argv": prepared.argv, "decision": prepared.decision.rule}
        try:
            run = self.starter.run_command(
                name,
                prepared.argv,
                trigger=TRIGGERS[caller.via],
                requested_by=caller.actor,
                detail={k: v for k, v in detail.items() if v is not None},
                params=dict(prepared.values),
            )
        except Exception as exc:  # the driver's own refusal (a race with suspend) or a fault
            if key is not None:
                # Nothing started: a later click (after a resume, say) may try again.
                with self.store.transaction() as tx:
                    tx.keys.release_key(key)
            by_driver = isinstance(exc, RunRefused)
            audit_id = self._audit(
                caller,
                name,
                "refused" if by_driver else "error",
                {**argv_detail, "why": str(exc)},
            )
            if isinstance(exc, RunRefused):
                kind: RefusalKind = "suspended" if exc.why == "suspended" else "disabled"
                raise Refused(kind, str(exc), audit_id=audit_id) from None
            raise
        audit_id = self._audit(caller, name, "ok", {**argv_detail, "run_id": run.id})
        if key is not None:
            with self.store.transaction() as tx:
                tx.keys.attach_run(key, run.id)
        return Invocation(prepared, run, audit_id)

    def audit_refusal(
        self, name: str, given: Mapping[str, object], caller: Caller, refused: Refused
    ) -> None:
        """Records a refusal found before :meth:`invoke` (by :meth:`check`, or by parsing
        what was typed); sets its ``audit_id``."""
        detail = {
            "command": name,
            "params": _shown(given),
            "channel": caller.channel,
            "decision": refused.kind,
            "why": refused.message,
        }
        refused.audit_id = self._audit(caller, name, "refused", detail)
        log.info("refused %s for %s: %s", name, caller.where, refused.message)

    def record(
        self, caller: Caller, name: str, action: str, outcome: Outcome, detail: dict[str, Any]
    ) -> int:
        """An audit entry about command ``name`` other than an invocation (a cancel)."""
        return self._audit(caller, name, outcome, detail, action=action)

    def _audit(
        self,
        caller: Caller,
        name: str,
        outcome: Outcome,
        detail: dict[str, Any],
        *,
        action: str = "invoke",
    ) -> int:
        entry = AuditEntry(
            at=self.clock.now(),
            actor=caller.actor,
            via=caller.via,
            action=action,
            target=f"command {name}",
            outcome=outcome,
            detail=bounded_detail({k: v for k, v in detail.items() if v is not None}),
        )
        with self.store.transaction() as tx:
            recorded = tx.audit.record_audit(entry)
        assert recorded.id is not None
        return recorded.id


# An audit entry's texts are cut to this many characters and its lists and objects to
# this many items; an entry still over the size is cut ten and five times harder.
AUDIT_TEXT_MAX = 1000
AUDIT_ITEMS_MAX = 50
AUDIT_DETAIL_MAX = 16 * 1024


def _shown(given: Mapping[str, object]) -> dict[str, Any]:
    """The params as given, JSON-safe, for the audit log."""
    return {
        key: value if isinstance(value, str | int | float | bool) or value is None else repr(value)
        for key, value in given.items()
    }


def bounded_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """``detail`` cut to at most about :data:`AUDIT_DETAIL_MAX` bytes of JSON: what was
    typed (a refused 10 MiB param, say) stays recognizable, never stored whole."""
    shown: dict[str, Any] = _cut(detail, AUDIT_TEXT_MAX, AUDIT_ITEMS_MAX)
    if len(json.dumps(shown, default=str)) > AUDIT_DETAIL_MAX:
        shown = _cut(detail, AUDIT_TEXT_MAX // 10, AUDIT_ITEMS_MAX // 5)
    return shown


def _cut(value: Any, text: int, items: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= text else f"{value[:text]}… ({len(value)} characters)"
    if isinstance(value, dict):
        pairs = list(value.items())
        kept = {str(k)[:text]: _cut(v, text, items) for k, v in pairs[:items]}
        if len(pairs) > items:
            kept["…"] = f"{len(pairs) - items} more"
        return kept
    if isinstance(value, list | tuple):
        cut = [_cut(v, text, items) for v in value[:items]]
        if len(value) > items:
            cut.append(f"… {len(value) - items} more")
        return cut
    return value
