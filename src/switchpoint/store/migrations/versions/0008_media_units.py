"""Media units: what an audio or image request is billed by (seconds of audio, characters of
speech, images), on its request row.

Revision ID: 0008_media_units
Revises: 0007_evals
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_media_units"
down_revision = "0007_evals"
branch_labels = None
depends_on = None

# Frozen here (a migration never follows later edits of tables.py).
DOUBLE = sa.Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")


def upgrade() -> None:
    op.add_column("requests", sa.Column("audio_seconds", DOUBLE))
    op.add_column("requests", sa.Column("characters", sa.Integer))
    op.add_column("requests", sa.Column("images", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for name in ("images", "characters", "audio_seconds"):
            batch.drop_column(name)
