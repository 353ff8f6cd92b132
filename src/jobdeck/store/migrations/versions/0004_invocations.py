"""Invocation keys: one row per chat request or click that may start a command run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invocation_keys",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_invocation_keys"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_invocation_keys_run_id_runs", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_invocation_keys_created_at", "invocation_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_invocation_keys_created_at", table_name="invocation_keys")
    op.drop_table("invocation_keys")
