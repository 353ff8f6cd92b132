"""The store's tables, as SQLAlchemy Core metadata.

This is the shape the code queries; the migrations in ``migrations/versions`` create it.
A test compares the migrated database with this metadata, so the two cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

# Constraint names are part of the schema: later migrations (SQLite batch mode in
# particular) can only drop or alter a constraint that has a predictable name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def as_utc(value: datetime, what: str = "timestamp") -> datetime:
    """``value`` in UTC; a naive datetime is refused, since its zone would be a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: stored in UTC, always returned as an aware UTC datetime.

    PostgreSQL keeps ``timestamptz`` but returns it in the session's zone; SQLite keeps
    text without a zone and returns naive values, which are UTC because of the binding.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact); SQLite stores JSON text.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")

# Short identifying strings: names of catalog items, kinds, actors.
NAME_LENGTH = 200
URL_LENGTH = 1000  # a node's advertised URL

revisions = Table(
    "revisions",
    metadata,
    # The number is the primary key, hence unique: two applies that race for the same
    # number cannot both commit.
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UTCDateTime, nullable=False),
    Column("applied_by", String(NAME_LENGTH), nullable=False),
    Column("catalog_sha256", String(64), nullable=False),
    Column("git_describe", String(NAME_LENGTH), nullable=True),
    Column("source", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("catalog", JSONDocument, nullable=False),
)

suspensions = Table(
    "suspensions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("until", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("ended_by", String(NAME_LENGTH), nullable=True),
    Column("catch_up", Boolean, nullable=False, server_default=false()),
    Column("caught_up_at", UTCDateTime, nullable=True),
    Index(None, "kind", "name"),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(NAME_LENGTH), nullable=False),
    Column("via", String(32), nullable=False),
    Column("action", String(NAME_LENGTH), nullable=False),
    Column("target", String(NAME_LENGTH), nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("detail", JSONDocument, nullable=False),
    Index(None, "at"),
)

notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("job", String(NAME_LENGTH), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("event", String(64), nullable=False),
    Column("stream", String(32), nullable=False),
    Column("sent", Boolean, nullable=False),
    Column("why", Text, nullable=False),
    Column("run_id", Integer, nullable=True),
    Column("streak", Integer, nullable=False),
    Column("targets", JSONDocument, nullable=False),
    Column("detail", JSONDocument, nullable=False),
    Column("delivery", String(16), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_try_at", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("message", JSONDocument, nullable=True),
    Index(None, "job", "kind", "stream", "at"),
    Index(None, "delivery", "next_try_at"),
    Index(None, "at"),
    Index(None, "run_id"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(NAME_LENGTH), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    # Text, not a short string: besides the reason codes, a launch error's message.
    Column("reason", Text, nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("scheduled_for", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("pool", String(NAME_LENGTH), nullable=True),
    # The applied revision the run was started under; not a foreign key, so that a run
    # can be recorded from a catalog that was never applied (an ad-hoc `jobdeck run`).
    Column("revision", Integer, nullable=True),
    # SET NULL: pruning an old attempt keeps the later attempts it led to.
    Column("retry_of", Integer, ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("requested_by", String(NAME_LENGTH), nullable=True),
    Column("host", String(NAME_LENGTH), nullable=True),
    Column("params", JSONDocument, nullable=False),
    Column("detail", JSONDocument, nullable=False),
    # History of one job, newest first; active runs (and any status filter); all runs.
    Index(None, "job", "created_at"),
    Index(None, "status", "created_at"),
    Index(None, "created_at"),
)

run_events = Table(
    "run_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("type", String(64), nullable=False),
    Column("detail", JSONDocument, nullable=False),
    Index(None, "run_id", "id"),
)

# One row per timed fire that an engine decided to act on. The primary key is the
# fire's identity, so the database itself refuses a second claim of the same slot,
# whichever process, restart or retry makes it.
fires = Table(
    "fires",
    metadata,
    Column("schedule", String(NAME_LENGTH), nullable=False),
    Column("nominal_time", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("host", String(NAME_LENGTH), nullable=False),
    PrimaryKeyConstraint("schedule", "nominal_time"),
)

# One row per run that asked for a concurrency key (``concurrency: {key, limit}``): it
# waits while ``held_since`` is null and holds the key once set. A row counts only while
# its run is active (pending or running), so every end of a run releases its key, by
# whatever path it ends; rows of ended runs are deleted by the next claim of the key.
concurrency_claims = Table(
    "concurrency_claims",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(NAME_LENGTH), nullable=False),
    Column("key_limit", Integer, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("held_since", UTCDateTime, nullable=True),
    Index(None, "key", "run_id"),
)

# One row per request that may start a command run (a chat request, a click of Run),
# keyed by what identifies it across retries: Slack resends the same request when an
# answer is late, and a double click sends two. The key is the primary key, so only
# one of them ever wins, whichever engine process receives it.
invocation_keys = Table(
    "invocation_keys",
    metadata,
    Column("key", String(NAME_LENGTH), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Index(None, "created_at"),
)

# -- queues (the SQS-compatible endpoint) ---------------------------------------------

# SQS allows queue names of 80 characters; message group and deduplication ids of 128.
QUEUE_NAME_LENGTH = 80
MESSAGE_TAG_LENGTH = 128

# Milliseconds since the epoch, as SQS reports times: integers keep the receive path's
# comparisons cheap. An INTEGER PRIMARY KEY on SQLite (the rowid), 64 bits elsewhere.
Millis = BigInteger
MessageSequence = BigInteger().with_variant(Integer(), "sqlite")

queues = Table(
    "queues",
    metadata,
    # The name on the wire: "feed-index", "feed-index-dlq", "orders.fifo".
    Column("name", String(QUEUE_NAME_LENGTH), primary_key=True),
    Column("fifo", Boolean, nullable=False),
    # "catalog": declared in the applied catalog, which decides its settings; "api":
    # created by CreateQueue (or left behind when the catalog dropped it).
    Column("origin", String(16), nullable=False),
    Column("created_ms", Millis, nullable=False),
    Column("modified_ms", Millis, nullable=False),
    Column("visibility_timeout", Integer, nullable=False),
    Column("delay_seconds", Integer, nullable=False),
    Column("retention_seconds", Integer, nullable=False),
    Column("max_message_size", Integer, nullable=False),
    Column("receive_wait_seconds", Integer, nullable=False),
    Column("content_based_deduplication", Boolean, nullable=False),
    Column("dead_letter_target", String(QUEUE_NAME_LENGTH), nullable=True),
    Column("max_receive_count", Integer, nullable=True),
    Column("extra", JSONDocument, nullable=False),
    Column("last_purge_ms", Millis, nullable=True),
    # TagQueue's tags (cost allocation, Terraform's plans): a map of strings, or null.
    Column("tags", JSONDocument, nullable=True),
)

queue_messages = Table(
    "queue_messages",
    metadata,
    # Also the order of sending: FIFO groups deliver in this order.
    Column("id", MessageSequence, primary_key=True, autoincrement=True),
    Column(
        "queue",
        String(QUEUE_NAME_LENGTH),
        ForeignKey("queues.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("message_id", String(36), nullable=False),
    Column("body", Text, nullable=False),
    Column("attributes", JSONDocument, nullable=False),
    Column("system_attributes", JSONDocument, nullable=False),
    Column("md5_body", String(32), nullable=False),
    Column("md5_attributes", String(32), nullable=True),
    Column("md5_system_attributes", String(32), nullable=True),
    Column("sent_ms", Millis, nullable=False),
    # When the message can next be received: after its delay, or after the visibility
    # timeout of its latest receive.
    Column("visible_ms", Millis, nullable=False),
    Column("receive_count", Integer, nullable=False),
    Column("first_received_ms", Millis, nullable=True),
    # The secret part of the latest receipt handle; older handles no longer match.
    Column("receipt_token", String(32), nullable=True),
    Column("group_id", String(MESSAGE_TAG_LENGTH), nullable=True),
    Column("dedup_id", String(MESSAGE_TAG_LENGTH), nullable=True),
    # The queue it was dead-lettered from, so that a redrive can send it back.
    Column("dead_lettered_from", String(QUEUE_NAME_LENGTH), nullable=True),
    # Receiving reads a queue's messages by visibility time: a range scan, no sort.
    Index(None, "queue", "visible_ms", "id"),
)

# FIFO deduplication: a deduplication id seen within the last 5 minutes is not enqueued
# again, even when its message was already deleted; hence a table of its own.
queue_dedup = Table(
    "queue_dedup",
    metadata,
    Column(
        "queue",
        String(QUEUE_NAME_LENGTH),
        ForeignKey("queues.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("dedup_id", String(MESSAGE_TAG_LENGTH), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("sequence_number", String(40), nullable=False),
    Column("expires_ms", Millis, nullable=False),
    PrimaryKeyConstraint("queue", "dedup_id"),
)

# Message-move tasks (StartMessageMoveTask, `jobdeck queue redrive`): each moves the dead
# letters of a queue back to their sources (or to a destination), and is kept to list.
queue_move_tasks = Table(
    "queue_move_tasks",
    metadata,
    Column("handle", String(64), primary_key=True),
    # Not foreign keys: a task's record outlives the queues it named.
    Column("source", String(QUEUE_NAME_LENGTH), nullable=False),
    Column("destination", String(QUEUE_NAME_LENGTH), nullable=True),
    Column("max_per_second", Integer, nullable=True),
    # RUNNING, COMPLETED, CANCELLING, CANCELLED or FAILED, as SQS names them.
    Column("status", String(16), nullable=False),
    Column("moved", Integer, nullable=False),
    Column("to_move", Integer, nullable=False),
    Column("failure", Text, nullable=True),
    Column("started_ms", Millis, nullable=False),
    Index(None, "source", "started_ms"),
)

# -- workers (the supervisor of resident worker processes) ------------------------------

# A singleton worker's lease: taken before its process starts and given back only once
# that process is confirmed gone, so no restart, apply or engine restart ever has two of
# them alive. The primary key is the worker: there is one holder at most, by construction.
worker_leases = Table(
    "worker_leases",
    metadata,
    Column("worker", String(NAME_LENGTH), primary_key=True),
    # The run of the holding process; not a foreign key: pruning runs never frees a lease.
    Column("holder_run", Integer, nullable=False),
    Column("holder_host", String(NAME_LENGTH), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    # Renewed by the holding engine; another engine may take an expired lease over.
    Column("expires_at", UTCDateTime, nullable=False),
)

# What the supervisor last decided for each worker, for `jobdeck status` and the API.
worker_states = Table(
    "worker_states",
    metadata,
    Column("worker", String(NAME_LENGTH), primary_key=True),
    Column("desired", Integer, nullable=False),
    Column("restarts", Integer, nullable=False),
    Column("last_exit", JSONDocument, nullable=True),
    Column("decision", JSONDocument, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The supervisor's decisions, oldest first: scaling, restarts with their backoff, stops.
worker_events = Table(
    "worker_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("worker", String(NAME_LENGTH), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("type", String(64), nullable=False),
    Column("detail", JSONDocument, nullable=False),
    Index(None, "worker", "id"),
)

# The engines of a cluster (``jobdeck serve`` on one PostgreSQL store; one on SQLite).
nodes = Table(
    "nodes",
    metadata,
    Column("id", String(NAME_LENGTH), primary_key=True),
    Column("host", String(NAME_LENGTH), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("draining", Boolean, nullable=False, server_default=false()),
    Column("drain_deadline", UTCDateTime, nullable=True),
    Column("drained", Boolean, nullable=False, server_default=false()),
    Column("lost_after_ms", Integer, nullable=False),
    Column("url", String(URL_LENGTH), nullable=True),
)

# The leader's lease: one row (name "leader"); the token grows at every acquisition.
leader_lease = Table(
    "leader_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(NAME_LENGTH), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
