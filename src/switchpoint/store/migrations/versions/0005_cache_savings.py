"""Caching: what caching saved, per request and in the per-instance totals.

Revision ID: 0005_cache_savings
Revises: 0004_responses
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_cache_savings"
down_revision = "0004_responses"
branch_labels = None
depends_on = None

# Frozen here (a migration never follows later edits of tables.py).
DOUBLE = sa.Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")


def upgrade() -> None:
    op.add_column("requests", sa.Column("saved_usd", DOUBLE))
    op.add_column("usage_totals", sa.Column("saved_usd", DOUBLE, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("usage_totals") as batch:
        batch.drop_column("saved_usd")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("saved_usd")
