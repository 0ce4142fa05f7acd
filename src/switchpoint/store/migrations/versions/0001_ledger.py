"""The ledger: requests, attempts, feedback, usage_totals, latency_buckets.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

# Frozen here (a migration never follows later edits of tables.py).
DOUBLE = sa.Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")
JSON = sa.JSON().with_variant(postgresql.JSON(), "postgresql")
TOKENS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
)


def _tokens(nullable: bool = True) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.Integer, nullable=nullable) for name in TOKENS]


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("started_at", DOUBLE, nullable=False),
        sa.Column("instance", sa.Text, nullable=False),
        sa.Column("dialect", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("deployment", sa.Text),
        sa.Column("provider", sa.Text),
        sa.Column("upstream_model", sa.Text),
        sa.Column("key_id", sa.Text),
        sa.Column("team", sa.Text),
        sa.Column("end_user", sa.Text),
        sa.Column("task", sa.Text),
        sa.Column("session", sa.Text),
        sa.Column("tags", sa.Text),
        sa.Column("stream", sa.Boolean),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_kind", sa.Text),
        sa.Column("latency_ms", DOUBLE),
        sa.Column("ttft_ms", DOUBLE),
        *_tokens(),
        sa.Column("cost_input", DOUBLE),
        sa.Column("cost_cached_input", DOUBLE),
        sa.Column("cost_cache_write_5m", DOUBLE),
        sa.Column("cost_cache_write_1h", DOUBLE),
        sa.Column("cost_output", DOUBLE),
        sa.Column("cost_reasoning", DOUBLE),
        sa.Column("cost_usd", DOUBLE),
        sa.Column("attempts", sa.Integer),
        sa.Column("retries", sa.Integer),
        sa.Column("failovers", sa.Integer),
        sa.Column("hedges", sa.Integer),
        sa.Column("cached", sa.Boolean),
        sa.Column("batch", sa.Boolean),
        sa.Column("price_version", sa.Text),
        sa.Column("route", JSON),
        sa.Column("request_body", sa.Text),
        sa.Column("response_body", sa.Text),
    )
    # time windows go through started_at; deployment and alias filters read the window's rows
    op.create_index("ix_requests_started_at", "requests", ["started_at"])
    # partial: a row without a key, team, task or session costs no entry in their index
    for col in ("key_id", "team", "task", "session"):
        cond = sa.text(f"{col} IS NOT NULL")
        op.create_index(
            f"ix_requests_{col}_started_at",
            "requests",
            [col, "started_at"],
            sqlite_where=cond,
            postgresql_where=cond,
        )

    op.create_table(
        "attempts",
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("started_at", DOUBLE),
        sa.Column("offset_ms", DOUBLE),
        sa.Column("deployment", sa.Text, nullable=False),
        sa.Column("provider", sa.Text),
        sa.Column("family", sa.Text),
        sa.Column("status", sa.Integer),
        sa.Column("error_kind", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("latency_ms", DOUBLE),
        sa.Column("ttft_ms", DOUBLE),
        sa.Column("hedge", sa.Boolean),
        *_tokens(),
        sa.Column("cost_usd", DOUBLE),
        sa.PrimaryKeyConstraint("request_id", "seq", name="pk_attempts"),
    )
    # lookups by request_id use the primary key's index

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.Column("request_id", sa.Text),
        sa.Column("task_id", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("score", DOUBLE),
        sa.Column("key_id", sa.Text),
    )
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])
    op.create_index("ix_feedback_task_id", "feedback", ["task_id"])
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])

    op.create_table(
        "usage_totals",
        sa.Column("instance", sa.Text, nullable=False),
        sa.Column("deployment", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_kind", sa.Text, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        *_tokens(nullable=False),
        sa.Column("cost_usd", DOUBLE, nullable=False),
        sa.Column("latency_ms_sum", DOUBLE, nullable=False),
        sa.Column("ttft_ms_sum", DOUBLE, nullable=False),
        sa.Column("ttft_count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(
            "instance", "deployment", "alias", "status", "error_kind", name="pk_usage_totals"
        ),
    )

    op.create_table(
        "latency_buckets",
        sa.Column("instance", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("deployment", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("le", DOUBLE, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("instance", "metric", "deployment", "alias", "le", name="pk_latency_buckets"),
    )


def downgrade() -> None:
    for table in ("latency_buckets", "usage_totals", "feedback", "attempts", "requests"):
        op.drop_table(table)
