"""The governance tables (SQLAlchemy Core, their own ``metadata`` in the ledger's database): teams, virtual keys, and
the one-row change counter every replica polls. Migration ``0003_governance`` creates exactly these.

No secret is ever stored in clear: a key's row holds the SHA-256 of its secret and the short public
prefix that names it (``sk-sp-<prefix>-…``). Lists (roles, aliases, tags) and metadata are JSON text.
Every change to a key or a team stamps it with the next value of ``governance_version.version``, so
a replica that has seen version N reads only what changed after N.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, MetaData, Table, Text

from switchpoint.store.tables import Double

#: Apart from the ledger's (``tables.metadata``): migration ``0003_governance`` creates these.
metadata = MetaData()

LIMIT_COLUMNS = ("rpm", "tpm", "max_parallel")
BUDGET_COLUMNS = ("budget_daily", "budget_weekly", "budget_monthly", "budget_total")


def _limits() -> list[Column[int]]:
    return [Column(name, Integer) for name in LIMIT_COLUMNS]


def _budgets() -> list[Column[float]]:
    return [Column(name, Double) for name in BUDGET_COLUMNS]


teams = Table(
    "teams",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    *_limits(),
    *_budgets(),
    Column("metadata", Text),  # JSON object of strings
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("version", Integer, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    #: The public part of the secret (``sk-sp-<prefix>-…``), unique; what a lookup starts from.
    Column("prefix", Text, nullable=False, unique=True),
    #: Hex SHA-256 of the whole secret.
    Column("secret_hash", Text, nullable=False),
    #: After a rotation: the old secret's prefix and hash, valid until ``previous_valid_until``.
    Column("previous_prefix", Text, unique=True),
    Column("previous_hash", Text),
    Column("previous_valid_until", Double),
    Column("team_id", Text, ForeignKey("teams.id")),
    Column("roles", Text),  # JSON array
    Column("allowed_aliases", Text),  # JSON array of globs; empty: any
    *_limits(),
    *_budgets(),
    Column("priority", Text, nullable=False),
    Column("tags", Text),  # JSON array
    Column("metadata", Text),  # JSON object of strings
    Column("expires_at", Double),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("revoked_at", Double),
    Column("version", Integer, nullable=False),
    Index("ix_api_keys_team_id", "team_id"),
    Index("ix_api_keys_version", "version"),
)

#: One row (id 1): the last change's number. Bumped in the same transaction as the change.
governance_version = Table(
    "governance_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)
