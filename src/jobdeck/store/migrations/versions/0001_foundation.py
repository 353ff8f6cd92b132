"""Foundation: applied revisions, suspensions and the audit log.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "revisions",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("applied_at", _instant(), nullable=False),
        sa.Column("applied_by", sa.String(200), nullable=False),
        sa.Column("catalog_sha256", sa.String(64), nullable=False),
        sa.Column("git_describe", sa.String(200), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("catalog", _json(), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_revisions"),
    )
    op.create_table(
        "suspensions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("until", _instant(), nullable=True),
        sa.Column("ended_at", _instant(), nullable=True),
        sa.Column("ended_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_suspensions"),
    )
    op.create_index("ix_suspensions_kind_name", "suspensions", ["kind", "name"])
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("via", sa.String(32), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entries"),
    )
    op.create_index("ix_audit_entries_at", "audit_entries", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_at", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_index("ix_suspensions_kind_name", table_name="suspensions")
    op.drop_table("suspensions")
    op.drop_table("revisions")
