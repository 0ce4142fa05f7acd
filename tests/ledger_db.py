"""Ledger databases for tests: a SQLite file, or a PostgreSQL schema of its own (dropped after).

PostgreSQL is the one at ``SWITCHPOINT_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
tests that need it skip, saying why, when it does not answer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

PG_URL = os.environ.get("SWITCHPOINT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def postgres_missing() -> str | None:
    """Why PostgreSQL cannot be used (None: it answers)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__}: {exc})"
    return None


def schema_url(schema: str) -> str:
    """``PG_URL`` with its search path set to ``schema`` (libpq ``options``)."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def postgres_schema(prefix: str = "t") -> Iterator[str]:
    """A fresh schema; yields the URL that uses it; drops it (and everything in it) after."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def ledger_database(kind: str, tmp: Path, *, migrate: bool = True) -> Iterator[str]:
    """A database URL of ``kind`` (``sqlite`` or ``postgresql``), migrated to head."""
    from switchpoint.store import migrate as migrations

    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'ledger.db'}"
        if migrate:
            migrations.upgrade(url)
        yield url
        return
    with postgres_schema("ledger") as url:
        if migrate:
            migrations.upgrade(url)
        yield url


class PgSchema:
    """A fresh schema as an object (the test is skipped, with the reason, when PostgreSQL does
    not answer): ``url`` uses it, ``drop()`` removes it and everything in it."""

    def __init__(self, prefix: str = "t") -> None:
        import psycopg
        import pytest

        why = postgres_missing()
        if why is not None:
            pytest.skip(why)
        self.name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        self.url = schema_url(self.name)

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
