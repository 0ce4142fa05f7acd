"""The ledger's databases for tests: a SQLite file, and PostgreSQL in a schema of its own.

``db_url`` is parametrised over both; the PostgreSQL case (127.0.0.1:5432, user ``postgres``,
database ``test``) creates a unique schema, points the URL's ``search_path`` at it and drops it
afterwards. It is skipped, with the reason, when that server does not answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here (None: it can)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'switchpoint[postgres]')"
    try:
        with psycopg.connect(PG_DSN) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL is not reachable at 127.0.0.1:5432 (database test, user postgres): {exc}"
    return None


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql)


class PgSchema:
    """A throw-away schema: ``url`` reaches it (its search_path), ``drop()`` removes it."""

    def __init__(self) -> None:
        problem = postgres_problem()
        if problem is not None:
            pytest.skip(problem)
        self.name = f"sp_test_{uuid.uuid4().hex[:12]}"
        _admin(f"CREATE SCHEMA {self.name}")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        _admin(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: Any, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    schema = PgSchema()
    try:
        yield schema.url
    finally:
        schema.drop()


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]
