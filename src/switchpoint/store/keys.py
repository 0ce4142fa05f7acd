"""Typed reads and writes of the governance tables (teams, api_keys, governance_version).

Blocking calls over an :class:`~sqlalchemy.Engine`: the gateway runs them in a thread, the CLI
directly. Every write stamps what it changed with the next change number (one transaction), which
is what replicas poll (:func:`current_version`, :func:`changed_since`). Nothing here sees a
secret: callers pass its prefix and hash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, RowMapping, Table, or_, select, update
from sqlalchemy.exc import IntegrityError

from switchpoint.store.governance_tables import api_keys, governance_version, teams

#: Key and team columns that hold JSON text.
_JSON_LISTS = ("roles", "allowed_aliases", "tags")


class StoreConflict(ValueError):
    """A write broke a uniqueness rule (a team name taken, a prefix reused)."""


class TeamRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_daily: float | None = None
    budget_weekly: float | None = None
    budget_monthly: float | None = None
    budget_total: float | None = None
    metadata: dict[str, str] = {}
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 0


class KeyRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    prefix: str
    secret_hash: str
    previous_prefix: str | None = None
    previous_hash: str | None = None
    previous_valid_until: float | None = None
    team_id: str | None = None
    roles: tuple[str, ...] = ()
    allowed_aliases: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_daily: float | None = None
    budget_weekly: float | None = None
    budget_monthly: float | None = None
    budget_total: float | None = None
    priority: str = "normal"
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = {}
    expires_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    revoked_at: float | None = None
    version: int = 0


def _team(row: Mapping[Any, Any]) -> TeamRow:
    d = dict(row)
    d["metadata"] = json.loads(d["metadata"]) if d.get("metadata") else {}
    return TeamRow(**d)


def _key(row: Mapping[Any, Any]) -> KeyRow:
    d = dict(row)
    for name in _JSON_LISTS:
        d[name] = tuple(json.loads(d[name])) if d.get(name) else ()
    d["metadata"] = json.loads(d["metadata"]) if d.get("metadata") else {}
    return KeyRow(**d)


def _stored(values: Mapping[str, Any]) -> dict[str, Any]:
    """Column values as stored: lists and metadata as JSON text."""
    out = dict(values)
    for name in (*_JSON_LISTS, "metadata"):
        if name in out and out[name] is not None:
            v = out[name]
            out[name] = json.dumps(list(v) if name != "metadata" else dict(v), sort_keys=True)
    return out


def _next_version(conn: Connection) -> int:
    conn.execute(
        update(governance_version)
        .where(governance_version.c.id == 1)
        .values(version=governance_version.c.version + 1)
    )
    return int(
        conn.execute(select(governance_version.c.version).where(governance_version.c.id == 1)).scalar_one()
    )


def current_version(engine: Engine) -> int:
    """The last change's number (0: nothing changed yet)."""
    with engine.connect() as conn:
        v = conn.execute(select(governance_version.c.version).where(governance_version.c.id == 1)).scalar()
    return int(v or 0)


# --- teams ------------------------------------------------------------------------------------


def _insert(conn: Connection, table: Table, values: Mapping[str, Any]) -> RowMapping:
    """Store a new row stamped with its times and the next change number; the row as stored."""
    now = time.time()
    row = {**_stored(values), "created_at": now, "updated_at": now, "version": _next_version(conn)}
    conn.execute(table.insert().values(**row))
    return conn.execute(select(table).where(table.c.id == row["id"])).mappings().one()


def _update(conn: Connection, table: Table, row_id: str, changes: Mapping[str, Any]) -> RowMapping | None:
    """Change one row, stamped with the time and the next change number; the row as stored, or
    None (and nothing stamped) when there is no such row."""
    stamp = {"updated_at": time.time(), "version": _next_version(conn)}
    done = conn.execute(table.update().where(table.c.id == row_id).values(**_stored(changes), **stamp))
    if done.rowcount == 0:
        conn.rollback()
        return None
    return conn.execute(select(table).where(table.c.id == row_id)).mappings().one()


def insert_team(engine: Engine, values: Mapping[str, Any]) -> TeamRow:
    try:
        with engine.begin() as conn:
            return _team(_insert(conn, teams, values))
    except IntegrityError:
        raise StoreConflict(f"a team named {values.get('name')!r} exists already") from None


def update_team(engine: Engine, team_id: str, changes: Mapping[str, Any]) -> TeamRow | None:
    try:
        with engine.begin() as conn:
            row = _update(conn, teams, team_id, changes)
            return _team(row) if row is not None else None
    except IntegrityError:
        raise StoreConflict(f"a team named {changes.get('name')!r} exists already") from None


def delete_team(engine: Engine, team_id: str) -> bool | None:
    """Delete a team without live keys: True; False: it has live keys; None: no such team."""
    with engine.begin() as conn:
        if conn.execute(select(teams.c.id).where(teams.c.id == team_id)).first() is None:
            return None
        live = conn.execute(
            select(api_keys.c.id)
            .where(api_keys.c.team_id == team_id, api_keys.c.revoked_at.is_(None))
            .limit(1)
        ).first()
        if live is not None:
            return False
        version = _next_version(conn)
        conn.execute(
            update(api_keys).where(api_keys.c.team_id == team_id).values(team_id=None, version=version)
        )
        conn.execute(teams.delete().where(teams.c.id == team_id))
    return True


def get_team(engine: Engine, team: str) -> TeamRow | None:
    """A team by id or by name."""
    with engine.connect() as conn:
        row = (
            conn.execute(select(teams).where(or_(teams.c.id == team, teams.c.name == team)))
            .mappings()
            .first()
        )
    return _team(row) if row is not None else None


def list_teams(engine: Engine) -> list[TeamRow]:
    with engine.connect() as conn:
        return [
            _team(r) for r in conn.execute(select(teams).order_by(teams.c.created_at, teams.c.id)).mappings()
        ]


# --- keys -------------------------------------------------------------------------------------


def insert_key(engine: Engine, values: Mapping[str, Any]) -> KeyRow:
    try:
        with engine.begin() as conn:
            return _key(_insert(conn, api_keys, values))
    except IntegrityError as exc:
        raise StoreConflict(f"the key could not be stored: {type(exc.orig).__name__}") from None


def update_key(engine: Engine, key_id: str, changes: Mapping[str, Any]) -> KeyRow | None:
    """Change a key (revoked keys included); None when there is no such key."""
    try:
        with engine.begin() as conn:
            row = _update(conn, api_keys, key_id, changes)
            return _key(row) if row is not None else None
    except IntegrityError as exc:
        raise StoreConflict(f"the key could not be changed: {type(exc.orig).__name__}") from None


def get_key(engine: Engine, key_id: str) -> KeyRow | None:
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
    return _key(row) if row is not None else None


def list_keys(engine: Engine, *, team_id: str | None = None, include_revoked: bool = False) -> list[KeyRow]:
    q = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if team_id is not None:
        q = q.where(api_keys.c.team_id == team_id)
    if not include_revoked:
        q = q.where(api_keys.c.revoked_at.is_(None))
    with engine.connect() as conn:
        return [_key(r) for r in conn.execute(q).mappings()]


def key_by_prefix(engine: Engine, prefix: str) -> tuple[KeyRow, TeamRow | None] | None:
    """The key whose current or previous (rotated) secret has ``prefix``, with its team."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(api_keys).where(or_(api_keys.c.prefix == prefix, api_keys.c.previous_prefix == prefix))
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        key = _key(row)
        team = None
        if key.team_id is not None:
            t = conn.execute(select(teams).where(teams.c.id == key.team_id)).mappings().first()
            team = _team(t) if t is not None else None
    return key, team


class VersionReader:
    """The change number, read over one database connection of its own kept open: the key
    ring's poll (twice a second on every replica) as one plain single-row query, without a
    pool checkout and a statement built each time. Not for use from two threads at once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Any = None
        self._sql = f"SELECT version FROM {governance_version.name} WHERE id = 1"

    def read(self) -> int:
        conn = self._conn
        if conn is None:
            conn = self._conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            try:
                cur.execute(self._sql)
                row = cur.fetchone()
            finally:
                cur.close()
            conn.rollback()  # no transaction left open between polls
        except Exception:
            self.close()
            raise
        return int(row[0] or 0) if row is not None else 0

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing more to give back
                pass


def changed_since(engine: Engine, version: int) -> tuple[int, list[KeyRow], list[TeamRow]]:
    """The current change number, and the keys and teams changed after ``version``."""
    with engine.connect() as conn:
        now = int(
            conn.execute(select(governance_version.c.version).where(governance_version.c.id == 1)).scalar()
            or 0
        )
        if now <= version:
            return now, [], []
        ks = [_key(r) for r in conn.execute(select(api_keys).where(api_keys.c.version > version)).mappings()]
        ts = [_team(r) for r in conn.execute(select(teams).where(teams.c.version > version)).mappings()]
    return now, ks, ts


def teams_by_id(engine: Engine, ids: Sequence[str]) -> dict[str, TeamRow]:
    if not ids:
        return {}
    with engine.connect() as conn:
        return {
            r["id"]: _team(r) for r in conn.execute(select(teams).where(teams.c.id.in_(list(ids)))).mappings()
        }
