"""Queues: tags, and the message-move tasks that send dead letters back.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("tags", _json(), nullable=True))
    op.create_table(
        "queue_move_tasks",
        sa.Column("handle", sa.String(64), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("destination", sa.String(80), nullable=True),
        sa.Column("max_per_second", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("moved", sa.Integer(), nullable=False),
        sa.Column("to_move", sa.Integer(), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("handle", name="pk_queue_move_tasks"),
    )
    op.create_index(
        "ix_queue_move_tasks_source_started_ms", "queue_move_tasks", ["source", "started_ms"]
    )


def downgrade() -> None:
    op.drop_index("ix_queue_move_tasks_source_started_ms", table_name="queue_move_tasks")
    op.drop_table("queue_move_tasks")
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("tags")
