"""Suspensions: resumed with catch-up, and when an engine caught their slots up.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("suspensions") as batch:
        batch.add_column(
            sa.Column("catch_up", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("caught_up_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("suspensions") as batch:
        batch.drop_column("caught_up_at")
        batch.drop_column("catch_up")
