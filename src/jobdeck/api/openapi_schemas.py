"""The schemas of the OpenAPI document: the JSON shapes the API answers with."""

from __future__ import annotations

from typing import Any, get_args

from jobdeck.store.records import RunKind, RunStatus, Trigger

STATUSES: list[str] = list(get_args(RunStatus))
TRIGGERS: list[str] = list(get_args(Trigger))
KINDS: list[str] = list(get_args(RunKind))


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def schemas() -> dict[str, Any]:
    time = {"type": ["string", "null"], "format": "date-time"}
    text = {"type": ["string", "null"]}
    integer = {"type": ["integer", "null"]}
    suspension = {"oneOf": [ref("Suspension"), {"type": "null"}]}
    run_fields = {
        "id": {"type": "integer"},
        "job": {"type": "string"},
        "kind": {"enum": KINDS},
        "trigger": {"enum": TRIGGERS},
        "status": {"enum": STATUSES},
        "reason": text,
        "attempt": {"type": "integer"},
        "scheduled_for": time,
        "started_at": time,
        "ended_at": time,
        "exit_code": integer,
        "pool": text,
        "created_at": time,
        "duration_ms": {"type": ["number", "null"]},
        "retry_of": integer,
        "requested_by": text,
        "revision": integer,
    }
    last_run = {"oneOf": [ref("Run"), {"type": "null"}]}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
        "Run": {"type": "object", "required": list(run_fields), "properties": run_fields},
        "RunDetail": {
            "allOf": [
                ref("Run"),
                {
                    "type": "object",
                    "required": ["events", "attempts", "detail", "params"],
                    "properties": {
                        "host": text,
                        "concurrency": {
                            "type": "object",
                            "description": "The concurrency key the run asked for: whether "
                            "it holds it, its place in line while it waits (1: next), the "
                            "key's holders and waiting run ids; only for runs of items "
                            "with `concurrency`, while it is active (once it ended, holders "
                            "and waiters are empty, or the field is gone).",
                            "properties": {
                                "key": {"type": "string"},
                                "limit": {"type": ["integer", "null"]},
                                "held": {"type": "boolean"},
                                "position": {"type": ["integer", "null"]},
                                "holders": {"type": "array", "items": {"type": "object"}},
                                "waiters": {"type": "array", "items": {"type": "integer"}},
                            },
                        },
                        "params": {"type": "object"},
                        "detail": {"type": "object"},
                        "events": {"type": "array", "items": ref("RunEvent")},
                        "notices": {
                            "type": "array",
                            "description": "Notices decided about the run, sent or held back.",
                            "items": ref("Notice"),
                        },
                        "attempts": {
                            "type": "array",
                            "description": "Every attempt linked by retries, first to last.",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "integer"},
                                    "attempt": {"type": "integer"},
                                    "status": {"enum": STATUSES},
                                    "reason": text,
                                },
                            },
                        },
                    },
                },
            ]
        },
        "RunEvent": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "at": time,
                "type": {"type": "string"},
                "detail": {"type": "object"},
            },
        },
        "RunRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ignore_overlap": {"type": "boolean", "default": False},
                "trigger": {"enum": ["manual", "api"], "default": "manual"},
                "via": {"enum": ["api", "cli"], "default": "api"},
                "slot": {
                    "type": "string",
                    "description": "Re-run this past slot of the schedule (ISO 8601; without "
                    "an offset, in the schedule's zone): the run's scheduled_for.",
                },
            },
        },
        "BackfillRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["from", "to"],
            "properties": {
                "from": {"type": "string", "description": "First instant (included), ISO 8601."},
                "to": {"type": "string", "description": "Last instant (included), not future."},
                "dry_run": {"type": "boolean", "default": False},
                "rerun": {"type": "boolean", "default": False},
                "via": {"enum": ["api", "cli"], "default": "api"},
            },
        },
        "Backfill": {
            "type": "object",
            "required": ["schedule", "from", "to", "dry_run", "rerun", "to_run", "kept", "slots"],
            "properties": {
                "schedule": {"type": "string"},
                "from": time,
                "to": time,
                "dry_run": {"type": "boolean"},
                "rerun": {"type": "boolean"},
                "to_run": {"type": "integer"},
                "kept": {"type": "integer"},
                "slots": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["slot", "action", "existing_run", "run"],
                        "properties": {
                            "slot": time,
                            "action": {"enum": ["run", "rerun", "keep"]},
                            "existing_run": integer,
                            "run": {"oneOf": [ref("Run"), {"type": "null"}]},
                        },
                    },
                },
            },
        },
        "InvocationRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "params": {"type": "object", "description": "Param names and values."},
                "via": {"enum": ["api", "cli"], "default": "api"},
            },
        },
        "CancelRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "reason": {"type": ["string", "null"], "description": "Why; recorded."},
                "via": {"enum": ["api", "cli"], "default": "api"},
            },
        },
        "ApprovalRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "reason": {
                    "type": ["string", "null"],
                    "description": "Why; recorded with the run. Required to reject.",
                },
                "via": {"enum": ["api", "cli"], "default": "api"},
            },
        },
        "SuspendRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["reason"],
            "properties": {
                "reason": {"type": "string", "minLength": 1},
                "until": {
                    "type": ["string", "null"],
                    "description": "A duration (2h) or an ISO 8601 time.",
                },
            },
        },
        "ResumeRequest": {
            "type": "object",
            "properties": {
                "catch_up": {
                    "type": "boolean",
                    "description": "A schedule's only: also run the slots the suspension "
                    "held, by its catchup policy (without it, none of them ever runs).",
                },
            },
        },
        "Suspension": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "kind": {"enum": KINDS},
                "name": {"type": "string"},
                "reason": {"type": "string"},
                "created_by": {"type": "string"},
                "created_at": time,
                "until": time,
                "ended_at": time,
                "ended_by": text,
                "catch_up": {"type": "boolean"},
            },
        },
        "Schedule": {
            "type": "object",
            "required": ["name", "trigger", "next_fire", "suspension", "last_run"],
            "properties": {
                "name": {"type": "string"},
                "trigger": {"type": "string"},
                "timezone": text,
                "enabled": {"type": "boolean"},
                "next_fire": time,
                "next_fire_local": text,
                "pool": text,
                "suspension": suspension,
                "last_run": last_run,
            },
        },
        "ScheduleDetail": {
            "allOf": [
                ref("Schedule"),
                {
                    "type": "object",
                    "properties": {
                        "definition": {"type": "object"},
                        "upcoming": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "at": time,
                                    "local": {"type": "string"},
                                    "jitter_ms": {
                                        "type": "integer",
                                        "description": "With jitter: the slot's delay.",
                                    },
                                    "starts_at": time,
                                },
                            },
                        },
                    },
                },
            ]
        },
        "Worker": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "desired": {"type": "integer"},
                "running": {"type": "integer"},
                "restarts": {"type": "integer"},
                "autoscale": {"type": ["object", "null"]},
                "singleton": {"type": "boolean"},
                "queue": text,
                "enabled": {"type": "boolean"},
                "suspension": suspension,
            },
        },
        "Node": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "host": {"type": "string"},
                "pid": {"type": "integer"},
                "version": {"type": "string"},
                "role": {"enum": ["leader", "standby", "draining", "drained", "lost"]},
                "started_at": {"type": "string", "format": "date-time"},
                "heartbeat_age_s": {"type": "number"},
                "running_runs": {"type": "integer"},
                "replicas": {"type": "integer"},
                "draining": {"type": "boolean"},
                "drain_deadline": {"type": ["string", "null"], "format": "date-time"},
                "token": {"type": ["integer", "null"]},
            },
        },
        "Command": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "pool": text,
                "enabled": {"type": "boolean"},
                "params": {"type": "object"},
                "suspension": suspension,
                "last_run": last_run,
            },
        },
        "Queue": {"type": "object", "properties": {"name": {"type": "string"}}},
        "Monitor": {
            "type": "object",
            "required": ["name", "trigger", "grace", "timeout", "next_slot", "last_run"],
            "properties": {
                "name": {"type": "string"},
                "trigger": {"type": "string"},
                "timezone": text,
                "grace": {"type": "string"},
                "timeout": {"type": "string"},
                "next_slot": time,
                "next_slot_local": text,
                "last_run": last_run,
            },
        },
        "Pool": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "memory_used": integer,
                "memory_limit": integer,
            },
        },
        "AuditEntry": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "at": time,
                "actor": {"type": "string"},
                "via": {"enum": ["cli", "api", "slack", "engine"]},
                "action": {"type": "string"},
                "target": text,
                "outcome": {"enum": ["ok", "refused", "error"]},
                "detail": {"type": "object"},
            },
        },
        "Notice": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "at": time,
                "job": {"type": "string"},
                "kind": {"type": "string"},
                "event": {"type": "string", "description": "run.failed, run.recovered, ..."},
                "stream": {"enum": ["failure", "duration"]},
                "sent": {"type": "boolean", "description": "false: held back by the policy"},
                "why": {"type": "string"},
                "run_id": {"type": ["integer", "null"]},
                "consecutive_failures": {"type": "integer"},
                "targets": {"type": "array", "items": {"type": "string"}},
                "detail": {"type": "object"},
            },
        },
        "Revision": {
            "type": "object",
            "properties": {
                "number": {"type": "integer"},
                "applied_at": time,
                "applied_by": {"type": "string"},
                "catalog_sha256": {"type": "string"},
                "git_describe": text,
                "source": {"type": "string"},
                "text": {"type": "string"},
                "catalog": {"type": "object"},
            },
        },
    }
