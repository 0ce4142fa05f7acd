"""Stored Responses (``store: true`` on ``POST /v1/responses``): the table and its typed queries.

One row per response: who may read it (``owner``: the virtual key's id, or the principal's name
for the master key or an open gateway), the input items it was given as sent, and the Response
object it answered with. A conversation is the chain of ``previous_response_id`` links, read
in one recursive query (:func:`chain`). Blocking calls over an :class:`~sqlalchemy.Engine`:
the gateway runs them on threads of their own. Migration ``0004_responses`` creates the table.

Background responses (migration ``0012_responses_background``) also keep their ``status``
(``queued`` → ``in_progress`` → ``completed`` / ``failed`` / ``incomplete`` / ``cancelled``),
the worker running them and that worker's last ``heartbeat_at``. Every change of a background
row is guarded by its status: only a queued or in-progress row changes (:func:`settle`,
:func:`cancel`), so a run that ends after someone cancelled it (on any worker) never
overwrites ``cancelled``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Index,
    MetaData,
    Table,
    Text,
    delete,
    false,
    select,
    text,
    update,
)

from switchpoint.store.tables import Double

#: Apart from the ledger's (``tables.metadata``): migration ``0004_responses`` creates it.
metadata = MetaData()

responses = Table(
    "responses",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("model", Text, nullable=False),
    Column("previous_response_id", Text),
    Column("input_items", Text, nullable=False),  # JSON array, as the client sent them
    Column("response", Text, nullable=False),  # the Response object (JSON)
    Column("status", Text, nullable=False, server_default="completed"),
    Column("background", Boolean, nullable=False, server_default=false()),
    Column("worker", Text),  # a background run: the worker (instance) running it
    Column("heartbeat_at", Double),  # … and when that worker last said it was alive
    Index("ix_responses_created_at", "created_at"),
    Index("ix_responses_status", "status"),
)

#: A background response's states that may still change.
ACTIVE = ("queued", "in_progress")

#: The longest conversation :func:`chain` follows back (a cycle cannot happen: ids are new).
MAX_CHAIN = 1000


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owner: str
    created_at: float
    model: str
    previous_response_id: str | None
    input_items: list[dict[str, Any]]
    response: bytes
    status: str = "completed"
    background: bool = False
    worker: str | None = None
    heartbeat_at: float | None = None


def _row(row: Any) -> StoredResponse:
    return StoredResponse(
        id=row.id,
        owner=row.owner,
        created_at=row.created_at,
        model=row.model,
        previous_response_id=row.previous_response_id,
        input_items=json.loads(row.input_items),
        response=row.response.encode(),
        status=row.status,
        background=bool(row.background),
        worker=row.worker,
        heartbeat_at=row.heartbeat_at,
    )


def insert(engine: Engine, row: StoredResponse) -> None:
    with engine.begin() as conn:
        conn.execute(
            responses.insert().values(
                id=row.id,
                owner=row.owner,
                created_at=row.created_at,
                model=row.model,
                previous_response_id=row.previous_response_id,
                input_items=msgspec.json.encode(row.input_items).decode(),
                response=row.response.decode(),
                status=row.status,
                background=row.background,
                worker=row.worker,
                heartbeat_at=row.heartbeat_at,
            )
        )


def get(engine: Engine, response_id: str, owner: str) -> StoredResponse | None:
    """The response, when ``owner`` stored it."""
    q = select(responses).where(responses.c.id == response_id, responses.c.owner == owner)
    with engine.connect() as conn:
        row = conn.execute(q).first()
    return _row(row) if row is not None else None


def remove(engine: Engine, response_id: str, owner: str) -> bool:
    """Delete the response; False when ``owner`` has none of that id."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(responses).where(responses.c.id == response_id, responses.c.owner == owner)
        )
    return bool(result.rowcount)


_CHAIN = text(
    """
WITH RECURSIVE chain(id, owner, created_at, model, previous_response_id, input_items, response,
                     status, background, worker, heartbeat_at, depth) AS (
    SELECT id, owner, created_at, model, previous_response_id, input_items, response,
           status, background, worker, heartbeat_at, 0
    FROM responses WHERE id = :id AND owner = :owner
    UNION ALL
    SELECT r.id, r.owner, r.created_at, r.model, r.previous_response_id, r.input_items, r.response,
           r.status, r.background, r.worker, r.heartbeat_at, c.depth + 1
    FROM responses r JOIN chain c ON r.id = c.previous_response_id
    WHERE r.owner = :owner AND c.depth < :limit
)
SELECT id, owner, created_at, model, previous_response_id, input_items, response,
       status, background, worker, heartbeat_at
FROM chain ORDER BY depth DESC
"""
)


def chain(engine: Engine, response_id: str, owner: str, limit: int = MAX_CHAIN) -> list[StoredResponse]:
    """The conversation ending with ``response_id``, oldest first ([] when it is not there).
    A link deleted on the way ends the walk: the conversation starts after it."""
    with engine.connect() as conn:
        rows = conn.execute(_CHAIN, {"id": response_id, "owner": owner, "limit": limit}).all()
    return [_row(r) for r in rows]


# --- background responses ----------------------------------------------------------------------


def settle(engine: Engine, response_id: str, owner: str, status: str, response: bytes) -> bool:
    """A background response's new state (``in_progress``, or how it ended), when it is still
    queued or in progress; False when it is not (cancelled meanwhile, or failed as stale)."""
    q = (
        update(responses)
        .where(responses.c.id == response_id, responses.c.owner == owner, responses.c.status.in_(ACTIVE))
        .values(status=status, response=response.decode())
    )
    with engine.begin() as conn:
        return bool(conn.execute(q).rowcount)


def cancel(engine: Engine, response_id: str, owner: str, response: bytes) -> bool:
    """Mark a queued or in-progress background response ``cancelled`` (False: it was not)."""
    return settle(engine, response_id, owner, "cancelled", response)


def touch(engine: Engine, worker: str, ids: list[str], now: float) -> None:
    """``worker`` is alive and still running ``ids``."""
    if not ids:
        return
    q = (
        update(responses)
        .where(responses.c.id.in_(ids), responses.c.worker == worker, responses.c.status.in_(ACTIVE))
        .values(heartbeat_at=now)
    )
    with engine.begin() as conn:
        conn.execute(q)


def stale(engine: Engine, before: float) -> list[StoredResponse]:
    """Background responses still queued or in progress whose worker has not said it was alive
    since ``before`` (it died, or shut down without finishing them)."""
    q = select(responses).where(
        responses.c.status.in_(ACTIVE),
        responses.c.background.is_(True),
        (responses.c.heartbeat_at < before) | responses.c.heartbeat_at.is_(None),
    )
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(q).all()]
