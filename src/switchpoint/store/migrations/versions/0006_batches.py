"""Files and batches: the ``files``, ``batches`` and ``batch_lines`` tables behind ``/v1/files``,
``/v1/batches`` and ``/v1/messages/batches`` (``store/batches.py``).

Revision ID: 0006_batches
Revises: 0005_cache_savings
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_batches"
down_revision = "0005_cache_savings"
branch_labels = None
depends_on = None

# Frozen here (a migration never follows later edits of store/batches.py).
DOUBLE = sa.Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")
BLOB = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.Column("expires_at", DOUBLE),
        sa.Column("path", sa.Text),
        sa.Column("content", BLOB),
    )
    op.create_index("ix_files_owner_created", "files", ["owner", "created_at"])
    op.create_table(
        "batches",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("dialect", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("input_file_id", sa.Text),
        sa.Column("completion_window", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.Column("expires_at", DOUBLE, nullable=False),
        *(
            sa.Column(name, DOUBLE)
            for name in (
                "in_progress_at",
                "finalizing_at",
                "completed_at",
                "failed_at",
                "cancelling_at",
                "cancelled_at",
            )
        ),
        sa.Column("output_file_id", sa.Text),
        sa.Column("error_file_id", sa.Text),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("completed", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("metadata", sa.Text),
        sa.Column("runner", sa.Text),
        sa.Column("lease_until", DOUBLE),
    )
    op.create_index("ix_batches_owner_created", "batches", ["owner", "created_at"])
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_table(
        "batch_lines",
        sa.Column("batch_id", sa.Text, primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("custom_id", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("request_id", sa.Text),
        sa.Column("result", sa.Text),
    )
    op.create_index("ix_batch_lines_status", "batch_lines", ["batch_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_batch_lines_status", table_name="batch_lines")
    op.drop_table("batch_lines")
    op.drop_index("ix_batches_status", table_name="batches")
    op.drop_index("ix_batches_owner_created", table_name="batches")
    op.drop_table("batches")
    op.drop_index("ix_files_owner_created", table_name="files")
    op.drop_table("files")
