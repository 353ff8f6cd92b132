"""Queues: the SQS-compatible endpoint's queues, messages and deduplication window.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "queues",
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("fifo", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("modified_ms", sa.BigInteger(), nullable=False),
        sa.Column("visibility_timeout", sa.Integer(), nullable=False),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("retention_seconds", sa.Integer(), nullable=False),
        sa.Column("max_message_size", sa.Integer(), nullable=False),
        sa.Column("receive_wait_seconds", sa.Integer(), nullable=False),
        sa.Column("content_based_deduplication", sa.Boolean(), nullable=False),
        sa.Column("dead_letter_target", sa.String(80), nullable=True),
        sa.Column("max_receive_count", sa.Integer(), nullable=True),
        sa.Column("extra", _json(), nullable=False),
        sa.Column("last_purge_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_queues"),
    )
    op.create_table(
        "queue_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("queue", sa.String(80), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attributes", _json(), nullable=False),
        sa.Column("system_attributes", _json(), nullable=False),
        sa.Column("md5_body", sa.String(32), nullable=False),
        sa.Column("md5_attributes", sa.String(32), nullable=True),
        sa.Column("md5_system_attributes", sa.String(32), nullable=True),
        sa.Column("sent_ms", sa.BigInteger(), nullable=False),
        sa.Column("visible_ms", sa.BigInteger(), nullable=False),
        sa.Column("receive_count", sa.Integer(), nullable=False),
        sa.Column("first_received_ms", sa.BigInteger(), nullable=True),
        sa.Column("receipt_token", sa.String(32), nullable=True),
        sa.Column("group_id", sa.String(128), nullable=True),
        sa.Column("dedup_id", sa.String(128), nullable=True),
        sa.Column("dead_lettered_from", sa.String(80), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_queue_messages"),
        sa.ForeignKeyConstraint(
            ["queue"],
            ["queues.name"],
            name="fk_queue_messages_queue_queues",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_queue_messages_queue_visible_ms_id",
        "queue_messages",
        ["queue", "visible_ms", "id"],
    )
    op.create_table(
        "queue_dedup",
        sa.Column("queue", sa.String(80), nullable=False),
        sa.Column("dedup_id", sa.String(128), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("sequence_number", sa.String(40), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("queue", "dedup_id", name="pk_queue_dedup"),
        sa.ForeignKeyConstraint(
            ["queue"], ["queues.name"], name="fk_queue_dedup_queue_queues", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("queue_dedup")
    op.drop_index("ix_queue_messages_queue_visible_ms_id", table_name="queue_messages")
    op.drop_table("queue_messages")
    op.drop_table("queues")
