"""The ledger's typed reads (and the one write a client makes: feedback).

Everything here is plain SQLAlchemy Core over :mod:`switchpoint.store.tables` and runs the same on
SQLite (≥ 3.25, for the views' window functions) and PostgreSQL. Calls are synchronous: callers on
the event loop run them in a thread (``asyncio.to_thread``).

Percentiles are nearest-rank (the smallest value with at least p·n values at or below it):
PostgreSQL's ``percentile_disc`` in the same ``GROUP BY`` as the totals; on SQLite, from one
narrow scan of (group, latency, TTFT) sorted here (see :func:`_percentiles_here`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec
from sqlalchemy import (
    Case,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    RowMapping,
    Select,
    and_,
    case,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from switchpoint.store.route_form import expand
from switchpoint.store.tables import TOKEN_COLUMNS, attempts, feedback, requests

Outcome = Literal["completed", "failed", "abandoned"]
OUTCOMES: tuple[str, ...] = ("completed", "failed", "abandoned")

# --- time buckets ----------------------------------------------------------------------------


class _bucket(FunctionElement[int]):
    """``floor(started_at / width) * width`` (epoch seconds), the same on every backend."""

    inherit_cache = True
    type = Integer()


@compiles(_bucket)
def _bucket_default(element: _bucket, compiler: Any, **kw: Any) -> str:
    col, width = list(element.clauses)
    # SQLite: CAST truncates, and times are positive, so truncation is the floor.
    return f"(CAST({compiler.process(col, **kw)} / {compiler.process(width, **kw)} AS INTEGER) * {compiler.process(width, **kw)})"


@compiles(_bucket, "postgresql")
def _bucket_pg(element: _bucket, compiler: Any, **kw: Any) -> str:
    col, width = list(element.clauses)
    # PostgreSQL rounds a double cast to integer: take the floor first.
    return f"(CAST(floor({compiler.process(col, **kw)} / {compiler.process(width, **kw)}) AS BIGINT) * {compiler.process(width, **kw)})"


def bucket(col: Any, width_s: int) -> ColumnElement[int]:
    return _bucket(col, literal_column(str(int(width_s))))


# --- usage -----------------------------------------------------------------------------------

#: ``group_by`` names → the expression grouped on.
GROUPS: Mapping[str, ColumnElement[Any]] = {
    "deployment": requests.c.deployment,
    "alias": requests.c.alias,
    "provider": requests.c.provider,
    "task": requests.c.task,
    "key": requests.c.key_id,
    "team": requests.c.team,
    "session": requests.c.session,
    "end_user": requests.c.end_user,
    "dialect": requests.c.dialect,
    "endpoint": requests.c.endpoint,
    "status": requests.c.status,
    "day": bucket(requests.c.started_at, 86400),
    "hour": bucket(requests.c.started_at, 3600),
}

#: Filter names → the column compared for equality (``tag`` and ``errors`` are special).
FILTERS: Mapping[str, Any] = {
    "deployment": requests.c.deployment,
    "alias": requests.c.alias,
    "provider": requests.c.provider,
    "task": requests.c.task,
    "key": requests.c.key_id,
    "team": requests.c.team,
    "session": requests.c.session,
    "end_user": requests.c.end_user,
    "dialect": requests.c.dialect,
    "endpoint": requests.c.endpoint,
    "status": requests.c.status,
    "error_kind": requests.c.error_kind,
}
#: Filters that are not a column: ``tag`` (one ``key=value`` of the request's tags) and
#: ``errors`` (``true``: failed requests only, ``false``: successful only).
SPECIAL_FILTERS = ("tag", "errors")

COST_COLUMNS = (
    "cost_input",
    "cost_cached_input",
    "cost_cache_write_5m",
    "cost_cache_write_1h",
    "cost_output",
    "cost_reasoning",
)


class QueryError(ValueError):
    """A query asked for something that does not exist (an unknown group or filter)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class UsageRow(msgspec.Struct, kw_only=True):
    """One group of :func:`usage`: the group's key values, then its totals."""

    group: dict[str, Any]
    requests: int
    errors: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float
    cost_input: float
    cost_cached_input: float
    cost_cache_write_5m: float
    cost_cache_write_1h: float
    cost_output: float
    cost_reasoning: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    #: Cached input tokens over input tokens (None when no input was billed).
    cache_read_ratio: float | None
    #: USD caching saved (prompt-cache reads less write surcharges, response-cache hits).
    saved_usd: float = 0.0


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _float(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _filter_value(name: str, value: Any) -> Any:
    if name == "status":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise QueryError(f"filter 'status' must be an HTTP status, got {value!r}", name) from None
    return str(value)


def _conditions(
    since: float | None, until: float | None, filters: Mapping[str, Any] | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if since is not None:
        where.append(requests.c.started_at >= since)
    if until is not None:
        where.append(requests.c.started_at < until)
    for name, value in (filters or {}).items():
        if name == "tag":
            # Tags are a JSON array of "key=value" strings; match one element exactly.
            where.append(requests.c.tags.like("%" + json.dumps(str(value))[:-1] + '"%'))
        elif name == "errors":
            flag = str(value).lower()
            if flag not in ("true", "false", "1", "0"):
                raise QueryError("filter 'errors' must be true or false", name)
            where.append(requests.c.status >= 400 if flag in ("true", "1") else requests.c.status < 400)
        elif name in FILTERS:
            col = FILTERS[name]
            where.append(col.is_(None) if value is None else col == _filter_value(name, value))
        else:
            known = ", ".join([*FILTERS, *SPECIAL_FILTERS])
            raise QueryError(f"unknown filter '{name}' (one of: {known})", name)
    return where


def _group_names(group_by: Iterable[str], known: Collection[str], what: str) -> list[str]:
    """``group_by`` without repeats, every name one of ``known`` (else a QueryError)."""
    out: list[str] = []
    for name in group_by:
        if name not in known:
            raise QueryError(f"cannot {what} by '{name}' (one of: {', '.join(known)})", "group_by")
        if name not in out:
            out.append(name)
    return out


def check_groups(group_by: Iterable[str]) -> list[str]:
    return _group_names(group_by, GROUPS, "group")


#: PostgreSQL's sort memory for a usage query (the server default, 4 MB, spills a day of
#: 100 k rows to disk; 64 MB keeps it in memory: 1.7x faster, bench/ledger_query.py).
PG_WORK_MEM = "64MB"

#: The percentiles :func:`usage` reports, by column.
PERCENTILES: tuple[tuple[str, str, float], ...] = (
    ("latency_p50_ms", "latency_ms", 0.5),
    ("latency_p95_ms", "latency_ms", 0.95),
    ("ttft_p50_ms", "ttft_ms", 0.5),
    ("ttft_p95_ms", "ttft_ms", 0.95),
)


def usage_query(
    group_by: Sequence[str],
    since: float | None = None,
    until: float | None = None,
    filters: Mapping[str, Any] | None = None,
    *,
    percentiles: bool = False,
) -> Select[Any]:
    """The totals per group in one ``GROUP BY``; with ``percentiles`` (PostgreSQL) also
    ``percentile_disc`` of latency and TTFT, which is nearest-rank."""
    names = check_groups(group_by)
    r = requests.c
    keys = [GROUPS[n].label(f"g_{i}") for i, n in enumerate(names)]
    errors: Case[Any] = case((r.status >= 400, 1), else_=0)
    cols: list[Any] = [
        *keys,
        func.count().label("requests"),
        func.sum(errors).label("errors"),
        *(func.sum(r[c]).label(c) for c in TOKEN_COLUMNS),
        func.sum(r.cost_usd).label("cost_usd"),
        *(func.sum(r[c]).label(c) for c in COST_COLUMNS),
        func.sum(r.saved_usd).label("saved_usd"),
    ]
    if percentiles:
        cols += [func.percentile_disc(p).within_group(r[c]).label(name) for name, c, p in PERCENTILES]
    q = select(*cols).where(*_conditions(since, until, filters))
    if keys:
        q = q.group_by(*keys).order_by(*keys)
    return q


def nearest_rank(values: list[float], p: float) -> float | None:
    """The smallest value with at least ``p`` of all values at or below it (sorts ``values``)."""
    if not values:
        return None
    values.sort()
    return values[max(0, math.ceil(p * len(values)) - 1)]


def _percentiles_here(
    conn: Connection, names: Sequence[str], where: list[ColumnElement[bool]]
) -> dict[tuple[Any, ...], dict[str, float | None]]:
    """Latency and TTFT percentiles per group, computed here from one narrow scan (for SQLite,
    which has no ordered-set aggregates: this is several times faster than window functions
    there, docs/benchmarks.md)."""
    r = requests.c
    keys = [GROUPS[n] for n in names]
    q = select(*keys, r.latency_ms, r.ttft_ms).where(*where)
    width = len(keys)
    groups: dict[tuple[Any, ...], tuple[list[float], list[float]]] = {}
    # Straight through the driver's cursor: SQLAlchemy's result rows cost ~4 us each here,
    # five times the scan itself at 1 M rows. The values are plain text and floats.
    compiled = q.compile(dialect=conn.dialect)
    params = compiled.params
    positional = [params[name] for name in compiled.positiontup or ()]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), positional if compiled.positiontup is not None else params)
        rows: Iterable[Any] = iter(lambda: cursor.fetchmany(10_000), [])
        flat = (row for chunk in rows for row in chunk)
        for row in flat:
            key = tuple(row[:width])
            lists = groups.get(key)
            if lists is None:
                lists = groups[key] = ([], [])
            latency, ttft = row[width], row[width + 1]
            if latency is not None:
                lists[0].append(latency)
            if ttft is not None:
                lists[1].append(ttft)
    finally:
        cursor.close()
    out: dict[tuple[Any, ...], dict[str, float | None]] = {}
    for key, (lat, ttft) in groups.items():
        out[key] = {
            "latency_p50_ms": nearest_rank(lat, 0.5),
            "latency_p95_ms": nearest_rank(lat, 0.95),
            "ttft_p50_ms": nearest_rank(ttft, 0.5),
            "ttft_p95_ms": nearest_rank(ttft, 0.95),
        }
    return out


def usage(
    engine: Engine,
    group_by: Sequence[str] = (),
    since: float | None = None,
    until: float | None = None,
    filters: Mapping[str, Any] | None = None,
) -> list[UsageRow]:
    """Totals per group (no ``group_by``: one row for everything matched), ordered by the
    group's keys. ``since`` is inclusive, ``until`` exclusive (epoch seconds)."""
    names = check_groups(group_by)
    native = engine.dialect.name == "postgresql"
    q = usage_query(names, since, until, filters, percentiles=native)
    with engine.connect() as conn:
        if native:  # the percentiles sort in memory, not in temp files (this transaction only)
            conn.execute(text(f"SET LOCAL work_mem = '{PG_WORK_MEM}'"))
        rows = conn.execute(q).mappings().all()
        here = None if native else _percentiles_here(conn, names, _conditions(since, until, filters))
    out: list[UsageRow] = []
    none: dict[str, float | None] = dict.fromkeys(name for name, _, _ in PERCENTILES)
    for row in rows:
        n = _int(row["requests"])
        if n == 0:  # no group_by and nothing matched: no row
            continue
        key = tuple(row[f"g_{i}"] for i in range(len(names)))
        pct = row if here is None else here.get(key, none)
        inp, cached = _int(row["input_tokens"]), _int(row["cached_input_tokens"])
        out.append(
            UsageRow(
                group=dict(zip(names, key, strict=True)),
                requests=n,
                errors=_int(row["errors"]),
                input_tokens=inp,
                cached_input_tokens=cached,
                cache_write_5m_tokens=_int(row["cache_write_5m_tokens"]),
                cache_write_1h_tokens=_int(row["cache_write_1h_tokens"]),
                output_tokens=_int(row["output_tokens"]),
                reasoning_tokens=_int(row["reasoning_tokens"]),
                cost_usd=_float(row["cost_usd"]),
                cost_input=_float(row["cost_input"]),
                cost_cached_input=_float(row["cost_cached_input"]),
                cost_cache_write_5m=_float(row["cost_cache_write_5m"]),
                cost_cache_write_1h=_float(row["cost_cache_write_1h"]),
                cost_output=_float(row["cost_output"]),
                cost_reasoning=_float(row["cost_reasoning"]),
                latency_p50_ms=pct["latency_p50_ms"],
                latency_p95_ms=pct["latency_p95_ms"],
                ttft_p50_ms=pct["ttft_p50_ms"],
                ttft_p95_ms=pct["ttft_p95_ms"],
                cache_read_ratio=cached / inp if inp else None,
                saved_usd=_float(row["saved_usd"]),
            )
        )
    return out


# --- requests --------------------------------------------------------------------------------

#: The columns a request listing shows (bodies and the routing trace only in :func:`request`).
LIST_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in requests.columns if c.name not in ("route", "request_body", "response_body")
)


class Page(msgspec.Struct, kw_only=True):
    items: list[dict[str, Any]]
    #: Pass back as ``cursor`` for the next (older) page; None on the last page.
    next_cursor: str | None


def encode_cursor(started_at: float, request_id: str) -> str:
    raw = json.dumps([started_at, request_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, rid = json.loads(raw)
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not isinstance(rid, str):
            raise ValueError
        return float(ts), rid
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise QueryError("cursor is not one this API returned", "cursor") from None


def _row_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(row)
    tags = out.get("tags")
    if isinstance(tags, str):
        try:
            out["tags"] = json.loads(tags)
        except ValueError:
            pass
    for flag in ("stream", "cached", "batch", "hedge"):
        if flag in out and out[flag] is not None:
            out[flag] = bool(out[flag])
    return out


MAX_PAGE = 1000


def list_requests(
    engine: Engine,
    filters: Mapping[str, Any] | None = None,
    *,
    since: float | None = None,
    until: float | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Page:
    """Requests newest first, ``limit`` at a time. Keyset paging on ``(started_at,
    request_id)``: a page is an index range scan however deep it is, and rows written
    meanwhile never shift a page."""
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError(f"limit must be 1-{MAX_PAGE}", "limit")
    r = requests.c
    where = _conditions(since, until, filters)
    if cursor is not None:
        ts, rid = decode_cursor(cursor)
        where.append(or_(r.started_at < ts, and_(r.started_at == ts, r.request_id < rid)))
    q = (
        select(*(r[c] for c in LIST_COLUMNS))
        .where(*where)
        .order_by(r.started_at.desc(), r.request_id.desc())
        .limit(limit + 1)
    )
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    items = [_row_dict(row) for row in rows[:limit]]
    more = len(rows) > limit
    last = items[-1] if items and more else None
    return Page(
        items=items,
        next_cursor=encode_cursor(last["started_at"], last["request_id"]) if last is not None else None,
    )


def request(engine: Engine, request_id: str) -> dict[str, Any] | None:
    """One request with its attempts (in order), its feedback, and its routing explanation
    (``route``: the decision's trace, rebuilt from its stored form). None when unknown."""
    with engine.connect() as conn:
        row = conn.execute(select(requests).where(requests.c.request_id == request_id)).mappings().first()
        if row is None:
            return None
        tries = (
            conn.execute(select(attempts).where(attempts.c.request_id == request_id).order_by(attempts.c.seq))
            .mappings()
            .all()
        )
        notes = (
            conn.execute(select(feedback).where(feedback.c.request_id == request_id).order_by(feedback.c.id))
            .mappings()
            .all()
        )
    out = _row_dict(row)
    out["route"] = expand(out.get("route"))  # the trace, built from the stored decision
    out["attempt_list"] = [_row_dict(a) for a in tries]
    out["feedback"] = [dict(f) for f in notes]
    return out


def request_exists(engine: Engine, request_id: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(select(requests.c.request_id).where(requests.c.request_id == request_id)).first()
    return found is not None


# --- feedback --------------------------------------------------------------------------------


def insert_feedback(
    engine: Engine,
    *,
    outcome: str,
    request_id: str | None = None,
    task_id: str | None = None,
    score: float | None = None,
    key_id: str | None = None,
    created_at: float | None = None,
) -> int:
    """Record an outcome for a request or a client's task; returns the feedback row's id."""
    if outcome not in OUTCOMES:
        raise QueryError(f"outcome must be one of: {', '.join(OUTCOMES)}", "outcome")
    if (request_id is None) == (task_id is None):
        raise QueryError("give exactly one of request_id and task_id", "request_id")
    values = {
        "created_at": time.time() if created_at is None else created_at,
        "request_id": request_id,
        "task_id": task_id,
        "outcome": outcome,
        "score": score,
        "key_id": key_id,
    }
    with engine.begin() as conn:
        result = conn.execute(insert(feedback).values(**values).returning(feedback.c.id))
        return int(result.scalar_one())


# --- task analytics (the views of migration 0002_task_views) ---------------------------------

TASK_GROUPS = ("task", "alias", "deployment")


class TaskRow(msgspec.Struct, kw_only=True):
    group: dict[str, Any]
    #: Task instances with an outcome, and how many of them completed.
    tasks: int
    completed: int
    #: All spend on those task instances (every outcome, every request).
    cost_usd: float
    #: ``cost_usd / completed``: what one success costs, failures paid for included.
    cost_per_completed_task: float | None
    #: Visible output of successful requests / every token billed (docs/ledger.md).
    token_efficiency: float | None


def check_task_groups(group_by: Iterable[str]) -> list[str]:
    return _group_names(group_by, TASK_GROUPS, "group tasks")


def _per_group(engine: Engine, names: Sequence[str], aggregates: str, view: str) -> Sequence[RowMapping]:
    """``aggregates`` over ``view`` per group of ``names`` (checked: only view columns), ordered
    by the group; with no names one row over all of it."""
    cols = ", ".join(names)
    sql = f"SELECT {cols + ', ' if cols else ''}{aggregates} FROM {view}" + (
        f" GROUP BY {cols} ORDER BY {cols}" if cols else ""
    )
    with engine.connect() as conn:
        return conn.execute(text(sql)).mappings().all()


def task_costs(engine: Engine, group_by: Sequence[str] = ("task",)) -> list[TaskRow]:
    """Cost per completed task (view ``ledger_task_requests``), grouped by task type, alias
    and/or deployment. A task instance spanning two deployments counts once in each."""
    names = check_task_groups(group_by)
    billed = "COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)"
    useful = (
        "CASE WHEN status < 400 THEN COALESCE(output_tokens, 0) - COALESCE(reasoning_tokens, 0) ELSE 0 END"
    )
    aggregates = (
        "COUNT(DISTINCT instance) AS tasks, "
        "COUNT(DISTINCT CASE WHEN outcome = 'completed' THEN instance END) AS completed, "
        "SUM(COALESCE(cost_usd, 0)) AS cost_usd, "
        f"SUM({useful}) AS useful, SUM({billed}) AS billed"
    )
    rows = _per_group(engine, names, aggregates, "ledger_task_requests")
    out: list[TaskRow] = []
    for row in rows:
        tasks = _int(row["tasks"])
        if tasks == 0:
            continue
        completed, cost, billed_n = _int(row["completed"]), _float(row["cost_usd"]), _int(row["billed"])
        out.append(
            TaskRow(
                group={n: row[n] for n in names},
                tasks=tasks,
                completed=completed,
                cost_usd=cost,
                cost_per_completed_task=cost / completed if completed else None,
                token_efficiency=_int(row["useful"]) / billed_n if billed_n else None,
            )
        )
    return out


class EfficiencyRow(msgspec.Struct, kw_only=True):
    group: dict[str, Any]
    requests: int
    useful_output_tokens: int
    billed_tokens: int
    token_efficiency: float | None


def token_efficiency(
    engine: Engine,
    group_by: Sequence[str] = ("task",),
    since: float | None = None,
    until: float | None = None,
) -> list[EfficiencyRow]:
    """Token efficiency over every request (no feedback needed), per task, alias, deployment."""
    names = check_task_groups(group_by)
    r = requests.c
    keys = [GROUPS[n].label(n) for n in names]
    useful = case(
        (r.status < 400, func.coalesce(r.output_tokens, 0) - func.coalesce(r.reasoning_tokens, 0)), else_=0
    )
    billed = func.coalesce(r.input_tokens, 0) + func.coalesce(r.output_tokens, 0)
    q = select(
        *keys,
        func.count().label("requests"),
        func.sum(useful).label("useful"),
        func.sum(billed).label("billed"),
    ).where(*_conditions(since, until, None))
    if keys:
        q = q.group_by(*keys).order_by(*keys)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    out: list[EfficiencyRow] = []
    for row in rows:
        n = _int(row["requests"])
        if n == 0:
            continue
        u, b = _int(row["useful"]), _int(row["billed"])
        out.append(
            EfficiencyRow(
                group={k: row[k] for k in names},
                requests=n,
                useful_output_tokens=u,
                billed_tokens=b,
                token_efficiency=u / b if b else None,
            )
        )
    return out


class SessionSwitches(msgspec.Struct, kw_only=True):
    session: str
    requests: int
    deployments: int
    switches: int
    #: ``switches / (requests - 1)``: the share of turns that changed deployment.
    switch_rate: float | None


def session_switches(engine: Engine, *, limit: int = 100, min_requests: int = 2) -> list[SessionSwitches]:
    """Model switch frequency per session (view ``ledger_session_switches``), most switches first."""
    sql = text(
        "SELECT session, requests, deployments, switches FROM ledger_session_switches "
        "WHERE requests >= :m ORDER BY switches DESC, session LIMIT :n"
    )
    with engine.connect() as conn:
        rows = conn.execute(sql, {"m": min_requests, "n": limit}).mappings().all()
    out: list[SessionSwitches] = []
    for row in rows:
        n, switches = _int(row["requests"]), _int(row["switches"])
        out.append(
            SessionSwitches(
                session=row["session"],
                requests=n,
                deployments=_int(row["deployments"]),
                switches=switches,
                switch_rate=switches / (n - 1) if n > 1 else None,
            )
        )
    return out


class SwitchRow(msgspec.Struct, kw_only=True):
    group: dict[str, Any]
    sessions: int
    #: Turns that have a turn before them in their session, and how many changed deployment.
    turns: int
    switches: int
    switch_rate: float | None


def switch_frequency(engine: Engine, group_by: Sequence[str] = ("task",)) -> list[SwitchRow]:
    """Model switch frequency (view ``ledger_session_turns``) per task type, alias and/or the
    deployment switched to: switches over turns."""
    names = check_task_groups(group_by)
    switched = (
        "CASE WHEN previous_deployment IS NOT NULL AND previous_deployment <> deployment THEN 1 ELSE 0 END"
    )
    aggregates = (
        "COUNT(DISTINCT session) AS sessions, "
        f"COUNT(previous_deployment) AS turns, SUM({switched}) AS switches"
    )
    rows = _per_group(engine, names, aggregates, "ledger_session_turns")
    out: list[SwitchRow] = []
    for row in rows:
        sessions = _int(row["sessions"])
        if sessions == 0:
            continue
        turns, switches = _int(row["turns"]), _int(row["switches"])
        out.append(
            SwitchRow(
                group={n: row[n] for n in names},
                sessions=sessions,
                turns=turns,
                switches=switches,
                switch_rate=switches / turns if turns else None,
            )
        )
    return out


__all__ = [
    "FILTERS",
    "GROUPS",
    "LIST_COLUMNS",
    "MAX_PAGE",
    "OUTCOMES",
    "SPECIAL_FILTERS",
    "TASK_GROUPS",
    "TOKEN_COLUMNS",
    "EfficiencyRow",
    "Page",
    "QueryError",
    "SessionSwitches",
    "SwitchRow",
    "TaskRow",
    "UsageRow",
    "check_groups",
    "check_task_groups",
    "insert_feedback",
    "list_requests",
    "request",
    "request_exists",
    "session_switches",
    "switch_frequency",
    "task_costs",
    "token_efficiency",
    "usage",
]
