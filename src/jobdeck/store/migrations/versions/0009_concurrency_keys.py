"""Concurrency keys: the runs that hold or wait for a key shared by several items.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "concurrency_claims",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("key_limit", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held_since", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name="fk_concurrency_claims_run_id_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name="pk_concurrency_claims"),
    )
    op.create_index("ix_concurrency_claims_key_run_id", "concurrency_claims", ["key", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_concurrency_claims_key_run_id", table_name="concurrency_claims")
    op.drop_table("concurrency_claims")
