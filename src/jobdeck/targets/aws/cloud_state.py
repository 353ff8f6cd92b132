"""The project's state in AWS (DynamoDB): suspensions, audit entries, invocation keys.

Standard library and boto3 only: the CLI (``--target aws``), the Slack bot and the
keeper on Lambda share it. ``client`` is a boto3 DynamoDB client; time is a parameter.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SUSPENSION = "suspension"
AUDIT = "audit"
INVOCATION = "invocation"
EXPIRES = "expires"  # the table's TTL attribute (epoch seconds)
# How long an invocation key is kept: far longer than Slack retries a request.
KEY_DAYS = 7
AUDIT_DAYS = 400


def table_name(project: str) -> str:
    return f"{project}-jobdeck"


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as Step Functions' timestamp comparisons read it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class CloudSuspension:
    kind: str
    name: str
    reason: str
    created_by: str
    created_at: datetime
    until: datetime | None
    # For a worker: the ECS service's desired count before it was set to 0.
    restore: int | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "until": iso(self.until) if self.until else None,
        }


def suspension_key(kind: str, name: str) -> dict[str, Any]:
    return {"pk": {"S": SUSPENSION}, "sk": {"S": f"{kind}#{name}"}}


class CloudState:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    # suspensions

    def suspend(self, held: CloudSuspension) -> None:
        item: dict[str, Any] = {
            **suspension_key(held.kind, held.name),
            "kind": {"S": held.kind},
            "name": {"S": held.name},
            "reason": {"S": held.reason},
            "created_by": {"S": held.created_by},
            "created_at": {"S": iso(held.created_at)},
        }
        if held.until is not None:
            item["until"] = {"S": iso(held.until)}
            # Removed by DynamoDB a day after it ends (TTL deletes within about two days;
            # every reader compares ``until`` itself).
            item[EXPIRES] = {"N": str(int((held.until + timedelta(days=1)).timestamp()))}
        if held.restore is not None:
            item["restore"] = {"N": str(held.restore)}
        self.client.put_item(TableName=self.table, Item=item)

    def resume(self, kind: str, name: str) -> CloudSuspension | None:
        """Ends the suspension; the one that was held, or None."""
        found = self.client.delete_item(
            TableName=self.table, Key=suspension_key(kind, name), ReturnValues="ALL_OLD"
        )
        old = found.get("Attributes")
        return _suspension(old) if old else None

    def suspension(self, kind: str, name: str) -> CloudSuspension | None:
        found = self.client.get_item(
            TableName=self.table, Key=suspension_key(kind, name), ConsistentRead=True
        )
        item = found.get("Item")
        return _suspension(item) if item else None

    def suspensions(self, now: datetime | None = None) -> list[CloudSuspension]:
        """Every suspension held (only the active ones at ``now``, when given)."""
        held = [_suspension(item) for item in self._query(SUSPENSION, forward=True)]
        return [h for h in held if now is None or h.active(now)]

    # invocation keys

    def claim(self, key: str, now: datetime) -> bool:
        """True for the first claim of ``key``; False when it was claimed before."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": INVOCATION},
                    "sk": {"S": key},
                    "at": {"S": iso(now)},
                    EXPIRES: {"N": str(int((now + timedelta(days=KEY_DAYS)).timestamp()))},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # audit

    def record(
        self,
        now: datetime,
        *,
        actor: str,
        via: str,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        entry = {
            "at": iso(now),
            "actor": actor,
            "via": via,
            "action": action,
            "target": target,
            "outcome": outcome,
        }
        item: dict[str, Any] = {
            "pk": {"S": AUDIT},
            "sk": {"S": f"{now.astimezone(UTC).isoformat()}#{secrets.token_hex(4)}"},
            **{key: {"S": value} for key, value in entry.items()},
            EXPIRES: {"N": str(int((now + timedelta(days=AUDIT_DAYS)).timestamp()))},
        }
        if detail:
            item["detail"] = {"M": {k: {"S": str(v)} for k, v in detail.items() if v is not None}}
        self.client.put_item(TableName=self.table, Item=item)

    def audit(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` entries, newest first."""
        entries = []
        for item in self._query(AUDIT, forward=False, limit=limit):
            entry = {
                key: item[key]["S"] for key in ("at", "actor", "via", "action", "target", "outcome")
            }
            detail = item.get("detail", {}).get("M", {})
            entries.append({**entry, "detail": {k: v["S"] for k, v in detail.items()}})
        return entries

    def _query(self, pk: str, *, forward: bool, limit: int | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            asked: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": pk}},
                "ScanIndexForward": forward,
                "ConsistentRead": True,
            }
            if limit is not None:
                asked["Limit"] = limit - len(found)
            if start is not None:
                asked["ExclusiveStartKey"] = start
            page = self.client.query(**asked)
            found.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if start is None or (limit is not None and len(found) >= limit):
                return found


def _suspension(item: dict[str, Any]) -> CloudSuspension:
    until = item.get("until", {}).get("S")
    restore = item.get("restore", {}).get("N")
    return CloudSuspension(
        kind=item["kind"]["S"],
        name=item["name"]["S"],
        reason=item["reason"]["S"],
        created_by=item["created_by"]["S"],
        created_at=parse_iso(item["created_at"]["S"]),
        until=parse_iso(until) if until else None,
        restore=int(restore) if restore is not None else None,
    )
