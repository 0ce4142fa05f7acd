"""Stored Responses: the ``responses`` table behind ``previous_response_id`` and
``GET``/``DELETE /v1/responses/{id}`` (``store/responses.py``).

Revision ID: 0004_responses
Revises: 0003_governance
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_responses"
down_revision = "0003_governance"
branch_labels = None
depends_on = None

# Frozen here (a migration never follows later edits of store/responses.py).
DOUBLE = sa.Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("previous_response_id", sa.Text),
        sa.Column("input_items", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
    )
    op.create_index("ix_responses_created_at", "responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_created_at", table_name="responses")
    op.drop_table("responses")
