"""Stored chat completions: the ``chat_completions`` table behind ``store: true`` on
``POST /v1/chat/completions`` and ``/v1/chat/completions/{id}`` (``store/chat_completions.py``).

Revision ID: 0011_chat_completions
Revises: 0010_task_totals
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011_chat_completions"
down_revision = "0010_task_totals"
branch_labels = None
depends_on = None

# Frozen here (a migration never follows later edits of store/chat_completions.py).
DOUBLE = sa.Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")
JSON = sa.JSON().with_variant(postgresql.JSON(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "chat_completions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("metadata", JSON),
        sa.Column("messages", sa.Text, nullable=False),
        sa.Column("completion", sa.Text, nullable=False),
    )
    op.create_index("ix_chat_completions_owner_created_at", "chat_completions", ["owner", "created_at"])
    op.create_index("ix_chat_completions_created_at", "chat_completions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_chat_completions_created_at", table_name="chat_completions")
    op.drop_index("ix_chat_completions_owner_created_at", table_name="chat_completions")
    op.drop_table("chat_completions")
