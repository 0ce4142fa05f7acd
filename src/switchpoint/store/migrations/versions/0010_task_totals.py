"""The per-instance totals by task as well: ``usage_totals`` keyed by the request's task too
(``''`` for none), so ``/metrics`` can show caching's savings and cache-read ratio per task.

Revision ID: 0010_task_totals
Revises: 0009_batch_forward
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_task_totals"
down_revision = "0009_batch_forward"
branch_labels = None
depends_on = None

_KEY = ("instance", "deployment", "alias", "status", "error_kind")


def upgrade() -> None:
    # the rows so far had no task: they keep their totals under ''
    with op.batch_alter_table("usage_totals", recreate="always") as batch:
        batch.add_column(sa.Column("task", sa.Text, nullable=False, server_default=""))
        batch.drop_constraint("pk_usage_totals", type_="primary")
        batch.create_primary_key("pk_usage_totals", [*_KEY, "task"])


def downgrade() -> None:
    # the tasks' rows of one key are summed back into one row
    sums = (
        "requests",
        "input_tokens",
        "cached_input_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost_usd",
        "saved_usd",
        "latency_ms_sum",
        "ttft_ms_sum",
        "ttft_count",
    )
    keys = ", ".join(_KEY)
    op.execute(
        f"CREATE TEMPORARY TABLE usage_totals_merged AS SELECT {keys}, "
        + ", ".join(f"SUM({c}) AS {c}" for c in sums)
        + f" FROM usage_totals GROUP BY {keys}"
    )
    op.execute("DELETE FROM usage_totals")
    with op.batch_alter_table("usage_totals", recreate="always") as batch:
        batch.drop_constraint("pk_usage_totals", type_="primary")
        batch.drop_column("task")
        batch.create_primary_key("pk_usage_totals", list(_KEY))
    cols = ", ".join((*_KEY, *sums))
    op.execute(f"INSERT INTO usage_totals ({cols}) SELECT {cols} FROM usage_totals_merged")
    op.execute("DROP TABLE usage_totals_merged")
