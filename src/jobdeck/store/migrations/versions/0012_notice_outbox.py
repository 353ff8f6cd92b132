"""Notices become an outbox: a notice to send is ``due`` until its targets accepted it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08

The notices recorded before keep ``delivery`` empty: they were sent once, at the time,
with no record of how it went. The types are spelled out here rather than imported from
``tables.py``: a migration must keep creating what it created on the day it was written.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("delivery", sa.String(16), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("message", _json(), nullable=True))
    op.create_index("ix_notices_delivery_next_try_at", "notices", ["delivery", "next_try_at"])


def downgrade() -> None:
    op.drop_index("ix_notices_delivery_next_try_at", table_name="notices")
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("message")
        batch.drop_column("delivered_at")
        batch.drop_column("next_try_at")
        batch.drop_column("attempts")
        batch.drop_column("delivery")
