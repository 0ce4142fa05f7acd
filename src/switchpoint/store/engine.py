"""A database URL → a SQLAlchemy engine, set up for the ledger.

SQLite (the embedded default, ``sqlite:///./switchpoint.db``) runs in WAL mode with
``synchronous=NORMAL`` (a commit is durable once the WAL is written; a power cut can lose the last
commits, a process crash cannot) and a busy timeout, so several processes (``--workers N``) share
one file. PostgreSQL goes through psycopg 3: ``postgresql://…`` and ``postgres://…`` are read as
``postgresql+psycopg://…``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from switchpoint.config.storage import DEFAULT_URL, ENV_URL

#: How long a SQLite writer waits for another process's lock before failing (ms).
SQLITE_BUSY_TIMEOUT_MS = 5000


def database_url(configured: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The URL to use: ``SWITCHPOINT_DATABASE_URL``, else ``configured``, else the default."""
    env = os.environ if env is None else env
    return env.get(ENV_URL) or configured or DEFAULT_URL


def normalize(url: str | URL) -> URL:
    """The URL with its driver made explicit (psycopg 3 for PostgreSQL)."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL (None for an in-memory database)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def redacted(url: str | URL) -> str:
    """The URL safe to print: the password hidden."""
    return normalize(url).render_as_string(hide_password=True)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url``; a SQLite file's directory is created if missing."""
    u = normalize(url)
    if u.get_backend_name() == "sqlite":
        path = sqlite_path(u)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # The ledger's writer thread uses connections the start-up thread opened.
        kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        if path is None:  # one shared connection, or every checkout would be a new empty database
            kwargs.setdefault("poolclass", StaticPool)
        _bind_none_fast()
        engine = create_engine(u, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = kwargs.setdefault("connect_args", {})
    connect_args.setdefault("connect_timeout", 5)
    return create_engine(u, **kwargs)


def _bind_none_fast() -> None:
    """Make Python's sqlite3 bind ``None`` without its failed-adapter search.

    sqlite3 (3.11) binds int, float and str directly, but looks every other value up as an
    adapter first, ``None`` included: the miss formats an AttributeError and clears it, several
    thousand instructions per NULL. An adapter registered for ``NoneType`` that returns ``None``
    (``{}.get``, a C call) turns that into a dict hit, still ~1.1 k instructions a NULL
    (callgrind): the ledger's writer therefore leaves a column NULL in every row of a batch out of
    its INSERT (``store.writer._Inserts``), and this adapter serves the NULLs that are still bound
    (a column NULL in some rows only; every other statement). Nothing else changes: sqlite3 binds
    the ``None`` it gets back as NULL, for every user of the module.
    """
    import sqlite3

    sqlite3.register_adapter(type(None), _NONE)


_NONE: Any = {}.get


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
