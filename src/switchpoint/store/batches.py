"""Files and batches (``/v1/files``, ``/v1/batches``, ``/v1/messages/batches``): the tables and
their typed queries.

* ``files``: one row per uploaded or produced file; its bytes in ``content``, or on disk at
  ``path`` (``batches.files_dir``). ``owner`` is who may read it (as for stored responses).
* ``batches``: one row per batch: its status and the times it moved, its counts, and the lease
  (``runner``, ``lease_until``) of the process running it, so two processes never run one batch.
* ``batch_lines``: one row per line, ``pending`` until its answer is in (``status_code`` and the
  answer's body); a runner only ever takes pending lines, so a restart never runs a line twice.

Blocking calls over an :class:`~sqlalchemy.Engine`: the gateway runs them on threads of their
own. Migration ``0006_batches`` creates the tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)

from switchpoint.store.tables import Double

#: Apart from the ledger's (``tables.metadata``): migration ``0006_batches`` creates them.
metadata = MetaData()

files = Table(
    "files",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double),
    Column("path", Text),  # on disk (``batches.files_dir``), else the bytes are in ``content``
    Column("content", LargeBinary),
    Index("ix_files_owner_created", "owner", "created_at"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("dialect", Text, nullable=False),  # 'openai' | 'anthropic'
    Column("endpoint", Text, nullable=False),
    Column("input_file_id", Text),
    Column("completion_window", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("in_progress_at", Double),
    Column("finalizing_at", Double),
    Column("completed_at", Double),
    Column("failed_at", Double),
    Column("cancelling_at", Double),
    Column("cancelled_at", Double),
    Column("output_file_id", Text),
    Column("error_file_id", Text),
    Column("total", Integer, nullable=False),
    Column("completed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("metadata", Text),  # JSON object
    Column("runner", Text),
    Column("lease_until", Double),
    # Forwarded to a provider's own Batch API: the deployment, and the provider's batch id.
    Column("deployment", Text),
    Column("upstream_id", Text),
    Index("ix_batches_owner_created", "owner", "created_at"),
    Index("ix_batches_status", "status"),
)

batch_lines = Table(
    "batch_lines",
    metadata,
    Column("batch_id", Text, primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("custom_id", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending | succeeded | errored | canceled
    Column("status_code", Integer),
    Column("request_id", Text),
    Column("result", Text),  # the answer's body (JSON)
    Index("ix_batch_lines_status", "batch_id", "status"),
)

#: A batch a runner still has work on.
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
#: Seconds a runner holds a batch without writing before another process may take it over.
LEASE_S = 60.0
#: Line outcomes.
PENDING, SUCCEEDED, ERRORED, CANCELED = "pending", "succeeded", "errored", "canceled"


class FileRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owner: str
    purpose: str
    filename: str
    bytes: int
    created_at: float
    expires_at: float | None = None
    path: str | None = None


class BatchRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owner: str
    dialect: str
    endpoint: str
    input_file_id: str | None
    completion_window: str
    status: str
    created_at: float
    expires_at: float
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    completed_at: float | None = None
    failed_at: float | None = None
    cancelling_at: float | None = None
    cancelled_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    metadata: dict[str, str] | None = None
    #: Set when the batch is forwarded to this deployment's provider (``batch_api``).
    deployment: str | None = None
    upstream_id: str | None = None


class Line(msgspec.Struct, frozen=True):
    line: int
    custom_id: str
    body: str


class LineResult(msgspec.Struct, frozen=True, kw_only=True):
    line: int
    custom_id: str
    status: str
    status_code: int | None = None
    request_id: str | None = None
    result: str | None = None


_FILE_COLUMNS = [c for c in files.c if c.name != "content"]
_BATCH_COLUMNS = [c for c in batches.c if c.name not in ("runner", "lease_until")]


def _file(row: Any) -> FileRow:
    return FileRow(**{c.name: getattr(row, c.name) for c in _FILE_COLUMNS})


def _batch(row: Any) -> BatchRow:
    values = {c.name: getattr(row, c.name) for c in _BATCH_COLUMNS}
    values["metadata"] = json.loads(values["metadata"]) if values["metadata"] else None
    return BatchRow(**values)


# --- files -----------------------------------------------------------------------------------


def insert_file(engine: Engine, row: FileRow, content: bytes | None) -> None:
    """A file's row, with its bytes when they are kept in the database (``row.path`` unset)."""
    with engine.begin() as conn:
        conn.execute(files.insert().values(**msgspec.structs.asdict(row), content=content))


def get_file(engine: Engine, file_id: str, owner: str) -> FileRow | None:
    q = select(*_FILE_COLUMNS).where(files.c.id == file_id, files.c.owner == owner)
    with engine.connect() as conn:
        row = conn.execute(q).first()
    return _file(row) if row is not None else None


def file_content(engine: Engine, file_id: str) -> bytes | None:
    """A file's bytes kept in the database (None: kept on disk, or no such file)."""
    with engine.connect() as conn:
        value = conn.execute(select(files.c.content).where(files.c.id == file_id)).scalar()
    return bytes(value) if value is not None else None


def list_files(
    engine: Engine, owner: str, *, purpose: str | None, limit: int, after: str | None, newest_first: bool
) -> list[FileRow]:
    """Up to ``limit`` of the owner's files, after the file ``after`` in the order asked."""
    q = select(*_FILE_COLUMNS).where(files.c.owner == owner)
    if purpose is not None:
        q = q.where(files.c.purpose == purpose)
    order = (
        (files.c.created_at.desc(), files.c.id.desc()) if newest_first else (files.c.created_at, files.c.id)
    )
    with engine.connect() as conn:
        if after is not None:
            mark = conn.execute(select(files.c.created_at).where(files.c.id == after)).scalar()
            if mark is not None:
                if newest_first:
                    q = q.where(
                        or_(files.c.created_at < mark, and_(files.c.created_at == mark, files.c.id < after))
                    )
                else:
                    q = q.where(
                        or_(files.c.created_at > mark, and_(files.c.created_at == mark, files.c.id > after))
                    )
        rows = conn.execute(q.order_by(*order).limit(limit)).all()
    return [_file(r) for r in rows]


def delete_file(engine: Engine, file_id: str, owner: str) -> bool:
    with engine.begin() as conn:
        result = conn.execute(delete(files).where(files.c.id == file_id, files.c.owner == owner))
    return bool(result.rowcount)


# --- batches ---------------------------------------------------------------------------------

_CHUNK = 500


def insert_batch(engine: Engine, row: BatchRow, lines: Sequence[tuple[str, str]]) -> None:
    """The batch and its lines (``(custom_id, body)``, in order), in one transaction."""
    values = msgspec.structs.asdict(row)
    values["metadata"] = json.dumps(row.metadata) if row.metadata is not None else None
    with engine.begin() as conn:
        conn.execute(batches.insert().values(**values))
        for start in range(0, len(lines), _CHUNK):
            conn.execute(
                batch_lines.insert(),
                [
                    {"batch_id": row.id, "line": start + i, "custom_id": cid, "body": body, "status": PENDING}
                    for i, (cid, body) in enumerate(lines[start : start + _CHUNK])
                ],
            )


def get_batch(engine: Engine, batch_id: str, owner: str | None = None) -> BatchRow | None:
    q = select(*_BATCH_COLUMNS).where(batches.c.id == batch_id)
    if owner is not None:
        q = q.where(batches.c.owner == owner)
    with engine.connect() as conn:
        row = conn.execute(q).first()
    return _batch(row) if row is not None else None


def list_batches(
    engine: Engine, owner: str, dialect: str, *, limit: int, after: str | None, before: str | None = None
) -> list[BatchRow]:
    """The owner's batches of a dialect, newest first; after (older than) / before (newer than)
    the batch named."""
    q = select(*_BATCH_COLUMNS).where(batches.c.owner == owner, batches.c.dialect == dialect)
    newest_first = before is None
    with engine.connect() as conn:
        for mark_id, older in ((after, True), (before, False)):
            if mark_id is None:
                continue
            mark = conn.execute(select(batches.c.created_at).where(batches.c.id == mark_id)).scalar()
            if mark is None:
                continue
            if older:
                q = q.where(
                    or_(
                        batches.c.created_at < mark,
                        and_(batches.c.created_at == mark, batches.c.id < mark_id),
                    )
                )
            else:
                q = q.where(
                    or_(
                        batches.c.created_at > mark,
                        and_(batches.c.created_at == mark, batches.c.id > mark_id),
                    )
                )
        order = (
            (batches.c.created_at.desc(), batches.c.id.desc())
            if newest_first
            else (batches.c.created_at, batches.c.id)
        )
        rows = conn.execute(q.order_by(*order).limit(limit)).all()
    out = [_batch(r) for r in rows]
    return out if newest_first else out[::-1]


def delete_batch(engine: Engine, batch_id: str, owner: str) -> bool:
    """Delete the owner's batch and its lines, in one transaction; False when it has none of that
    id. (Whether it may go, an ended batch only, is the caller's to decide.)"""
    with engine.begin() as conn:
        result = conn.execute(delete(batches).where(batches.c.id == batch_id, batches.c.owner == owner))
        if result.rowcount:
            conn.execute(delete(batch_lines).where(batch_lines.c.batch_id == batch_id))
    return bool(result.rowcount)


def set_status(
    engine: Engine, batch_id: str, status: str, *, only_from: Iterable[str] = (), **values: Any
) -> bool:
    """Move a batch to ``status`` (with the times and file ids given); with ``only_from``, only
    from one of those statuses. False when it did not move."""
    q = update(batches).where(batches.c.id == batch_id)
    allowed = tuple(only_from)
    if allowed:
        q = q.where(batches.c.status.in_(allowed))
    with engine.begin() as conn:
        result = conn.execute(q.values(status=status, **values))
    return bool(result.rowcount)


def set_upstream(engine: Engine, batch_id: str, upstream_id: str, now: float) -> None:
    """A forwarded batch has its batch at the provider: the id, and ``in_progress``."""
    with engine.begin() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(upstream_id=upstream_id, in_progress_at=func.coalesce(batches.c.in_progress_at, now))
        )
        conn.execute(
            update(batches)
            .where(batches.c.id == batch_id, batches.c.status == "validating")
            .values(status="in_progress")
        )


def set_counts(engine: Engine, batch_id: str, completed: int, failed: int) -> None:
    """A forwarded batch's progress, as the provider reports it."""
    with engine.begin() as conn:
        conn.execute(
            update(batches).where(batches.c.id == batch_id).values(completed=completed, failed=failed)
        )


def claim(engine: Engine, runner: str, now: float, lease_s: float) -> list[BatchRow]:
    """The active batches this runner now holds: those it held, whose lease ran out, or that no
    runner holds (each taken with one conditional update, so one runner holds a batch)."""
    with engine.begin() as conn:
        ids = conn.execute(
            select(batches.c.id)
            .where(
                batches.c.status.in_(ACTIVE),
                or_(batches.c.runner.is_(None), batches.c.runner == runner, batches.c.lease_until < now),
            )
            .order_by(batches.c.created_at)
        ).scalars()
        held = []
        for batch_id in list(ids):
            got = conn.execute(
                update(batches)
                .where(
                    batches.c.id == batch_id,
                    or_(batches.c.runner.is_(None), batches.c.runner == runner, batches.c.lease_until < now),
                )
                .values(runner=runner, lease_until=now + lease_s)
            )
            if got.rowcount:
                held.append(batch_id)
        rows = conn.execute(select(*_BATCH_COLUMNS).where(batches.c.id.in_(held))).all() if held else []
    by_id = {r.id: _batch(r) for r in rows}
    return [by_id[i] for i in held if i in by_id]


def release(engine: Engine, runner: str) -> None:
    """Give up every lease this runner holds (a stopping process): another may go on at once."""
    with engine.begin() as conn:
        conn.execute(update(batches).where(batches.c.runner == runner).values(runner=None, lease_until=None))


def pending_lines(engine: Engine, batch_id: str, after: int, limit: int) -> list[Line]:
    """Up to ``limit`` lines still to run, in order, past line number ``after``."""
    q = (
        select(batch_lines.c.line, batch_lines.c.custom_id, batch_lines.c.body)
        .where(
            batch_lines.c.batch_id == batch_id, batch_lines.c.status == PENDING, batch_lines.c.line > after
        )
        .order_by(batch_lines.c.line)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [Line(r.line, r.custom_id, r.body) for r in conn.execute(q)]


def save_results(
    engine: Engine, batch_id: str, results: Sequence[LineResult], runner: str, lease_until: float
) -> str | None:
    """Keep the lines' answers (a line already answered keeps its first) and the batch's counts;
    renews the runner's lease. Returns the batch's status (None: it is gone)."""
    with engine.begin() as conn:
        for r in results:
            conn.execute(
                update(batch_lines)
                .where(
                    batch_lines.c.batch_id == batch_id,
                    batch_lines.c.line == r.line,
                    batch_lines.c.status == PENDING,
                )
                .values(status=r.status, status_code=r.status_code, request_id=r.request_id, result=r.result)
            )
        counts = _counts(conn, batch_id)
        conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(
                completed=counts.get(SUCCEEDED, 0),
                failed=counts.get(ERRORED, 0) + counts.get(CANCELED, 0),
                lease_until=lease_until,
                runner=runner,
            )
        )
        status = conn.execute(select(batches.c.status).where(batches.c.id == batch_id)).scalar()
    return str(status) if status is not None else None


def _counts(conn: Any, batch_id: str) -> dict[str, int]:
    q = (
        select(batch_lines.c.status, func.count())
        .where(batch_lines.c.batch_id == batch_id)
        .group_by(batch_lines.c.status)
    )
    return {status: int(n) for status, n in conn.execute(q)}


def counts(engine: Engine, batch_id: str) -> dict[str, int]:
    """Lines by outcome (``pending``, ``succeeded``, ``errored``, ``canceled``)."""
    with engine.connect() as conn:
        return _counts(conn, batch_id)


def cancel_pending(engine: Engine, batch_id: str) -> int:
    """Mark every line still pending as canceled (counted as failed); returns how many."""
    with engine.begin() as conn:
        result = conn.execute(
            update(batch_lines)
            .where(batch_lines.c.batch_id == batch_id, batch_lines.c.status == PENDING)
            .values(status=CANCELED)
        )
        counts = _counts(conn, batch_id)
        conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(failed=counts.get(ERRORED, 0) + counts.get(CANCELED, 0))
        )
    return int(result.rowcount)


def results(engine: Engine, batch_id: str, after: int, limit: int) -> list[LineResult]:
    """Up to ``limit`` lines of the batch with what became of them, in order, past ``after``."""
    q = (
        select(
            batch_lines.c.line,
            batch_lines.c.custom_id,
            batch_lines.c.status,
            batch_lines.c.status_code,
            batch_lines.c.request_id,
            batch_lines.c.result,
        )
        .where(batch_lines.c.batch_id == batch_id, batch_lines.c.line > after)
        .order_by(batch_lines.c.line)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            LineResult(
                line=r.line,
                custom_id=r.custom_id,
                status=r.status,
                status_code=r.status_code,
                request_id=r.request_id,
                result=r.result,
            )
            for r in conn.execute(q)
        ]
