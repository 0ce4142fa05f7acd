"""Governance: teams, virtual keys (hashed secrets only), and the change counter replicas poll.

Revision ID: 0003_governance
Revises: 0002_task_views
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_governance"
down_revision = "0002_task_views"
branch_labels = None
depends_on = None

# Frozen here (a migration never follows later edits of governance_tables.py).
DOUBLE = sa.Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")


def _limits() -> list[sa.Column[int]]:
    return [sa.Column(name, sa.Integer) for name in ("rpm", "tpm", "max_parallel")]


def _budgets() -> list[sa.Column[float]]:
    names = ("budget_daily", "budget_weekly", "budget_monthly", "budget_total")
    return [sa.Column(name, DOUBLE) for name in names]


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        *_limits(),
        *_budgets(),
        sa.Column("metadata", sa.Text),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.Column("updated_at", DOUBLE, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("prefix", sa.Text, nullable=False, unique=True),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("previous_prefix", sa.Text, unique=True),
        sa.Column("previous_hash", sa.Text),
        sa.Column("previous_valid_until", DOUBLE),
        sa.Column("team_id", sa.Text, sa.ForeignKey("teams.id")),
        sa.Column("roles", sa.Text),
        sa.Column("allowed_aliases", sa.Text),
        *_limits(),
        *_budgets(),
        sa.Column("priority", sa.Text, nullable=False),
        sa.Column("tags", sa.Text),
        sa.Column("metadata", sa.Text),
        sa.Column("expires_at", DOUBLE),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.Column("updated_at", DOUBLE, nullable=False),
        sa.Column("revoked_at", DOUBLE),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_api_keys_team_id", "api_keys", ["team_id"])
    op.create_index("ix_api_keys_version", "api_keys", ["version"])
    op.create_table(
        "governance_version",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.execute("INSERT INTO governance_version (id, version) VALUES (1, 0)")


def downgrade() -> None:
    for table in ("governance_version", "api_keys", "teams"):
        op.drop_table(table)
