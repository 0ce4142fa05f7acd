"""The ledger's tables (SQLAlchemy Core). The contract with every reader: /work/notes/ledger_schema.md,
mirrored in docs/architecture.md ("The ledger"). Migration ``0001_ledger`` creates exactly these.

Times are UTC epoch seconds (float), money is USD (float). ``input_tokens`` includes cached reads
and cache writes; ``output_tokens`` includes reasoning (the convention of ``canonical.Usage``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects import postgresql

metadata = MetaData()

#: DOUBLE PRECISION on PostgreSQL (a plain ``Float`` would be REAL there), REAL on SQLite.
Double = Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")
#: The routing trace: JSON text on SQLite, JSON on PostgreSQL.
Json = JSON().with_variant(postgresql.JSON(), "postgresql")

#: The histogram's bucket upper bounds in seconds (+Inf is stored as ``INF``).
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INF = 1e308

#: The request columns of the audio and image endpoints' units, last in a request row.
MEDIA_COLUMNS = ("audio_seconds", "characters", "images")

TOKEN_COLUMNS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
)


def _tokens() -> list[Column[int]]:
    return [Column(name, Integer) for name in TOKEN_COLUMNS]


def _when_set(name: str) -> Index:
    """``(name, started_at)`` over the rows where ``name`` is set: the caller and task columns are
    often NULL, and a row that has none costs no index entry. A query that compares the column
    (``key_id = ?``) implies it is set, so SQLite and PostgreSQL both use the index for it."""
    cond = text(f"{name} IS NOT NULL")
    return Index(
        f"ix_requests_{name}_started_at", name, "started_at", sqlite_where=cond, postgresql_where=cond
    )


requests = Table(
    "requests",
    metadata,
    Column("request_id", Text, primary_key=True),
    Column("started_at", Double, nullable=False),
    Column("instance", Text, nullable=False),
    Column("dialect", Text, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("alias", Text, nullable=False),
    Column("deployment", Text),
    Column("provider", Text),
    Column("upstream_model", Text),
    Column("key_id", Text),
    Column("team", Text),
    Column("end_user", Text),
    Column("task", Text),
    Column("session", Text),
    Column("tags", Text),
    Column("stream", Boolean),
    Column("status", Integer, nullable=False),
    Column("error_kind", Text),
    Column("latency_ms", Double),
    Column("ttft_ms", Double),
    *_tokens(),
    Column("cost_input", Double),
    Column("cost_cached_input", Double),
    Column("cost_cache_write_5m", Double),
    Column("cost_cache_write_1h", Double),
    Column("cost_output", Double),
    Column("cost_reasoning", Double),
    Column("cost_usd", Double),
    #: USD caching saved (migration 0005_cache_savings; docs/caching.md).
    Column("saved_usd", Double),
    Column("attempts", Integer),
    Column("retries", Integer),
    Column("failovers", Integer),
    Column("hedges", Integer),
    Column("cached", Boolean),
    Column("batch", Boolean),
    Column("price_version", Text),
    Column("route", Json),
    Column("request_body", Text),
    Column("response_body", Text),
    #: What an audio or image request is billed by (migration 0008_media_units; NULL elsewhere).
    Column("audio_seconds", Double),
    Column("characters", Integer),
    Column("images", Integer),
    # time windows go through started_at; a deployment or alias filter reads the window's rows
    # (no index of its own: each cost every insert ~7 k instructions; docs/ledger.md)
    Index("ix_requests_started_at", "started_at"),
    *(_when_set(name) for name in ("key_id", "team", "task", "session")),
)

attempts = Table(
    "attempts",
    metadata,
    Column("request_id", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("started_at", Double),
    Column("offset_ms", Double),
    Column("deployment", Text, nullable=False),
    Column("provider", Text),
    Column("family", Text),
    Column("status", Integer),
    Column("error_kind", Text),
    Column("error_message", Text),
    Column("latency_ms", Double),
    Column("ttft_ms", Double),
    Column("hedge", Boolean),
    *_tokens(),
    Column("cost_usd", Double),
    # the primary key's index serves lookups by request_id (its first column)
    PrimaryKeyConstraint("request_id", "seq", name="pk_attempts"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Double, nullable=False),
    Column("request_id", Text),
    Column("task_id", Text),
    Column("outcome", Text, nullable=False),
    Column("score", Double),
    Column("key_id", Text),
    Index("ix_feedback_request_id", "request_id"),
    Index("ix_feedback_task_id", "task_id"),
    Index("ix_feedback_created_at", "created_at"),
)

usage_totals = Table(
    "usage_totals",
    metadata,
    Column("instance", Text, nullable=False),
    Column("deployment", Text, nullable=False),
    Column("alias", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_kind", Text, nullable=False),
    Column("requests", Integer, nullable=False),
    *(Column(name, Integer, nullable=False) for name in TOKEN_COLUMNS),
    Column("cost_usd", Double, nullable=False),
    Column("saved_usd", Double, nullable=False, server_default="0"),
    Column("latency_ms_sum", Double, nullable=False),
    Column("ttft_ms_sum", Double, nullable=False),
    Column("ttft_count", Integer, nullable=False),
    #: The request's task ('' for none): savings and the cache-read ratio per task (0010).
    Column("task", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint(
        "instance", "deployment", "alias", "status", "error_kind", "task", name="pk_usage_totals"
    ),
)

latency_buckets = Table(
    "latency_buckets",
    metadata,
    Column("instance", Text, nullable=False),
    Column("metric", Text, nullable=False),
    Column("deployment", Text, nullable=False),
    Column("alias", Text, nullable=False),
    Column("le", Double, nullable=False),
    Column("count", Integer, nullable=False),
    PrimaryKeyConstraint("instance", "metric", "deployment", "alias", "le", name="pk_latency_buckets"),
)

#: Column order of the rows the writer inserts (tuples, in exactly this order).
REQUEST_COLUMNS: tuple[str, ...] = tuple(c.name for c in requests.columns)
ATTEMPT_COLUMNS: tuple[str, ...] = tuple(c.name for c in attempts.columns)
