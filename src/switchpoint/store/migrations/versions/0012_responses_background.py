"""Background responses: a stored response's ``status`` and ``background`` flag, and, for a
background run, the worker running it and when that worker last said it was alive
(``heartbeat_at``), so a run left by a dead process can be told from a live one.

Revision ID: 0012_responses_background
Revises: 0011_chat_completions
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_responses_background"
down_revision = "0011_chat_completions"
branch_labels = None
depends_on = None

# Frozen here (a migration never follows later edits of store/responses.py).
DOUBLE = sa.Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")


def upgrade() -> None:
    # the rows so far are foreground answers: completed (or incomplete, which status does not
    # need to tell apart for them: the Response object says so)
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("status", sa.Text, nullable=False, server_default="completed"))
        batch.add_column(sa.Column("background", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("worker", sa.Text))
        batch.add_column(sa.Column("heartbeat_at", DOUBLE))
    op.create_index("ix_responses_status", "responses", ["status"])


def downgrade() -> None:
    op.drop_index("ix_responses_status", table_name="responses")
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("worker")
        batch.drop_column("background")
        batch.drop_column("status")
