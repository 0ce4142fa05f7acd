"""Batches forwarded to a provider's own Batch API: the deployment and the provider's batch id
on the ``batches`` row (``store/batches.py``).

Revision ID: 0009_batch_forward
Revises: 0008_media_units
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_batch_forward"
down_revision = "0008_media_units"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("deployment", sa.Text))
    op.add_column("batches", sa.Column("upstream_id", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("upstream_id")
        batch.drop_column("deployment")
