"""Workers: singleton leases, the supervisor's state and its decisions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "worker_leases",
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("holder_run", sa.Integer(), nullable=False),
        sa.Column("holder_host", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker", name="pk_worker_leases"),
    )
    op.create_table(
        "worker_states",
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("desired", sa.Integer(), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("last_exit", _json(), nullable=True),
        sa.Column("decision", _json(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker", name="pk_worker_states"),
    )
    op.create_table(
        "worker_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_worker_events"),
    )
    op.create_index("ix_worker_events_worker_id", "worker_events", ["worker", "id"])


def downgrade() -> None:
    op.drop_index("ix_worker_events_worker_id", table_name="worker_events")
    op.drop_table("worker_events")
    op.drop_table("worker_states")
    op.drop_table("worker_leases")
