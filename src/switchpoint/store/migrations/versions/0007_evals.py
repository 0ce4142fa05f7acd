"""Evals: suite registrations (hashes stored before any run) and eval runs with their reports.

Revision ID: 0007_evals
Revises: 0006_batches
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_evals"
down_revision = "0006_batches"
branch_labels = None
depends_on = None

# Frozen here (a migration never follows later edits of store/evals.py).
DOUBLE = sa.Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "eval_registrations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("suite", sa.Text, nullable=False),
        sa.Column("cases_hash", sa.Text, nullable=False),
        sa.Column("rubric_hash", sa.Text, nullable=False),
        sa.Column("gate_hash", sa.Text, nullable=False),
        sa.Column("registered_at", DOUBLE, nullable=False),
    )
    op.create_index("ix_eval_registrations_suite", "eval_registrations", ["suite", "registered_at"])
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("suite", sa.Text, nullable=False),
        sa.Column("suite_hash", sa.Text, nullable=False),
        sa.Column("registration", sa.Text, nullable=False),
        sa.Column("started_at", DOUBLE, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("html", sa.Text),
    )
    op.create_index("ix_eval_runs_suite", "eval_runs", ["suite", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_eval_runs_suite", table_name="eval_runs")
    op.drop_table("eval_runs")
    op.drop_index("ix_eval_registrations_suite", table_name="eval_registrations")
    op.drop_table("eval_registrations")
