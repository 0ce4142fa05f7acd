"""Apply the ledger's Alembic migrations programmatically (no alembic.ini: the scripts ship inside
the package). Called at start-up (``Gateway``), once by a ``serve --workers N`` parent before it
spawns, and by ``switchpoint db upgrade``.

A database already at head costs one query (the version table), so start-up stays fast.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from switchpoint.store.engine import make_engine

SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))
#: A constant key for PostgreSQL's advisory lock: two processes never migrate at once.
_PG_LOCK = 0x5357_4C44  # "SWLD"

log = logging.getLogger("switchpoint.store")


def _config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The newest revision the package ships."""
    heads = _script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the ledger's migrations have {len(heads)} heads: {heads}")
    return heads[0]


def current(connection: Connection) -> str | None:
    """The database's revision (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(target: Engine | str, revision: str = "head") -> str | None:
    """Bring the database to ``revision``; returns the revision it is at afterwards."""
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        want = head() if revision == "head" else revision
        with engine.connect() as conn:
            if current(conn) == want:
                return want
        try:
            _run(engine, revision)
        except Exception:
            # Another process may have migrated at the same moment (SQLite has no advisory
            # lock): fine when the database is now where it should be.
            with engine.connect() as conn:
                if current(conn) != want:
                    raise
        with engine.connect() as conn:
            return current(conn)
    finally:
        if isinstance(target, str):
            engine.dispose()


def _run(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        log.info("migrating the ledger database to %s", revision)
        command.upgrade(_config(conn), revision)
