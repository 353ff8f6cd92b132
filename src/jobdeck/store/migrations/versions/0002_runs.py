"""Runs: run records, their event history, and the claimed timed fires.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-15

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", _instant(), nullable=True),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("started_at", _instant(), nullable=True),
        sa.Column("ended_at", _instant(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("pool", sa.String(200), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("retry_of", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=True),
        sa.Column("host", sa.String(200), nullable=True),
        sa.Column("params", _json(), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["retry_of"], ["runs.id"], name="fk_runs_retry_of_runs", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_runs_job_created_at", "runs", ["job", "created_at"])
    op.create_index("ix_runs_status_created_at", "runs", ["status", "created_at"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_table(
        "run_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_events"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_events_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_run_events_run_id_id", "run_events", ["run_id", "id"])
    op.create_table(
        "fires",
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("nominal_time", _instant(), nullable=False),
        sa.Column("decided_at", _instant(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("schedule", "nominal_time", name="pk_fires"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_fires_run_id_runs", ondelete="SET NULL"
        ),
    )


def downgrade() -> None:
    op.drop_table("fires")
    op.drop_index("ix_run_events_run_id_id", table_name="run_events")
    op.drop_table("run_events")
    op.drop_index("ix_runs_created_at", table_name="runs")
    op.drop_index("ix_runs_status_created_at", table_name="runs")
    op.drop_index("ix_runs_job_created_at", table_name="runs")
    op.drop_table("runs")
