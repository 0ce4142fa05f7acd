"""Stored chat completions (``store: true`` on ``POST /v1/chat/completions``): the table and its
typed queries.

One row per completion: who may read it (``owner``: the virtual key's id, or the principal's
name for the master key or an open gateway, as for stored Responses), when it was made, the
model the client asked for (the list's ``model`` filter), its ``metadata`` (the filter
``metadata[key]=value``, and the one thing an update may change), the request's messages as
sent, and the ``chat.completion`` object the client got. Blocking calls over an
:class:`~sqlalchemy.Engine`: the gateway runs them on threads of their own. Migration
``0011_chat_completions`` creates the table; the ledger's retention prunes it
(``store.writer``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec
from sqlalchemy import Column, Engine, Index, MetaData, Table, Text, and_, delete, or_, select, update

from switchpoint.store.tables import Double, Json

#: Apart from the ledger's (``tables.metadata``): migration ``0011_chat_completions`` creates it.
metadata = MetaData()

chat_completions = Table(
    "chat_completions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("model", Text, nullable=False),
    Column("metadata", Json),  # a JSON object of strings, or null
    Column("messages", Text, nullable=False),  # JSON array, as the client sent them
    Column("completion", Text, nullable=False),  # the chat.completion object (JSON)
    Index("ix_chat_completions_owner_created_at", "owner", "created_at"),
    Index("ix_chat_completions_created_at", "created_at"),
)

Order = Literal["asc", "desc"]


class StoredCompletion(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owner: str
    created_at: float
    model: str
    metadata: dict[str, str] | None
    messages: list[Any]
    completion: bytes


def _row(row: Any) -> StoredCompletion:
    values = dict(row._mapping)
    values["messages"] = json.loads(values["messages"])
    values["completion"] = values["completion"].encode()
    return StoredCompletion(**values)


def insert(engine: Engine, row: StoredCompletion) -> None:
    values = msgspec.structs.asdict(row)
    values["messages"] = msgspec.json.encode(row.messages).decode()
    values["completion"] = row.completion.decode()
    with engine.begin() as conn:
        conn.execute(chat_completions.insert().values(**values))


def get(engine: Engine, completion_id: str, owner: str) -> StoredCompletion | None:
    """The completion, when ``owner`` stored it."""
    t = chat_completions
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == completion_id, t.c.owner == owner)).first()
    return _row(row) if row is not None else None


def page(
    engine: Engine,
    owner: str,
    *,
    limit: int,
    order: Order = "asc",
    after: str | None = None,
    model: str | None = None,
    where: dict[str, str] | None = None,
) -> tuple[list[StoredCompletion], bool]:
    """``owner``'s completions by creation time (then id), at most ``limit``, and whether more
    follow; only those of ``model`` and with every ``where`` metadata pair. ``after``: the
    page starts after that completion (an empty page when ``owner`` has no such one)."""
    t = chat_completions
    q = select(t).where(t.c.owner == owner)
    if model is not None:
        q = q.where(t.c.model == model)
    for key, value in (where or {}).items():
        q = q.where(t.c.metadata[key].as_string() == value)
    with engine.connect() as conn:
        if after is not None:
            mark = conn.execute(
                select(t.c.created_at).where(t.c.id == after, t.c.owner == owner)
            ).scalar_one_or_none()
            if mark is None:
                return [], False
            later = (t.c.created_at > mark) if order == "asc" else (t.c.created_at < mark)
            tie = t.c.id > after if order == "asc" else t.c.id < after
            q = q.where(or_(later, and_(t.c.created_at == mark, tie)))
        keys = (t.c.created_at, t.c.id) if order == "asc" else (t.c.created_at.desc(), t.c.id.desc())
        rows = conn.execute(q.order_by(*keys).limit(limit + 1)).all()
    return [_row(r) for r in rows[:limit]], len(rows) > limit


def set_metadata(
    engine: Engine, completion_id: str, owner: str, meta: dict[str, str] | None
) -> StoredCompletion | None:
    """Replace the completion's metadata; the row after, None when ``owner`` has none of that id."""
    t = chat_completions
    with engine.begin() as conn:
        done = conn.execute(
            update(t).where(t.c.id == completion_id, t.c.owner == owner).values(metadata=meta)
        )
        if not done.rowcount:
            return None
        row = conn.execute(select(t).where(t.c.id == completion_id)).first()
    return _row(row) if row is not None else None


def remove(engine: Engine, completion_id: str, owner: str) -> bool:
    """Delete the completion; False when ``owner`` has none of that id."""
    t = chat_completions
    with engine.begin() as conn:
        result = conn.execute(delete(t).where(t.c.id == completion_id, t.c.owner == owner))
    return bool(result.rowcount)
