"""Nodes advertise the URL where their HTTP API answers: another node forwards a request
for a run's log there (the log lives in the state dir of the node that ran it).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("url", sa.String(1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("url")
