"""Notices: every notice the engine sent or held back by a notify policy, and why.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(32), nullable=False),
        sa.Column("sent", sa.Boolean(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("targets", _json(), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notices"),
    )
    op.create_index("ix_notices_job_kind_stream_at", "notices", ["job", "kind", "stream", "at"])
    op.create_index("ix_notices_at", "notices", ["at"])
    op.create_index("ix_notices_run_id", "notices", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_notices_run_id", table_name="notices")
    op.drop_index("ix_notices_at", table_name="notices")
    op.drop_index("ix_notices_job_kind_stream_at", table_name="notices")
    op.drop_table("notices")
