"""The reads the console needs beyond :mod:`switchpoint.store.queries` (which it also uses).

Totals without percentiles (one ``GROUP BY``, no sort), spend since a time, the routing traces of
a window, and per key / per team spend and last use. Synchronous, like every store read: the
console runs them on the ledger reads' threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, case, func, or_, select, text, tuple_

from switchpoint.store.queries import (
    COST_COLUMNS,
    GROUPS,
    PERCENTILES,
    PG_WORK_MEM,
    SessionSwitches,
    SwitchRow,
    _conditions,
    nearest_rank,
    usage_query,
)
from switchpoint.store.route_form import expand
from switchpoint.store.tables import TOKEN_COLUMNS, attempts, requests


class Totals(msgspec.Struct, kw_only=True):
    """One group's sums (no percentiles)."""

    group: dict[str, Any]
    requests: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    tokens: dict[str, int] = {}
    costs: dict[str, float] = {}
    #: What caching saved, as the ledger booked it per request (``requests.saved_usd``).
    saved_usd: float = 0.0


def totals(
    engine: Engine,
    group_by: Sequence[str] = (),
    since: float | None = None,
    until: float | None = None,
    filters: Mapping[str, Any] | None = None,
) -> list[Totals]:
    """Sums per group: the same ``GROUP BY`` as :func:`queries.usage`, without its percentiles."""
    names = list(group_by)
    q = usage_query(names, since, until, filters, percentiles=False)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    out: list[Totals] = []
    for row in rows:
        n = int(row["requests"] or 0)
        if n == 0:
            continue
        out.append(
            Totals(
                group={name: row[f"g_{i}"] for i, name in enumerate(names)},
                requests=n,
                errors=int(row["errors"] or 0),
                cost_usd=float(row["cost_usd"] or 0.0),
                tokens={c: int(row[c] or 0) for c in TOKEN_COLUMNS},
                costs={c: float(row[c] or 0.0) for c in COST_COLUMNS},
            )
        )
    return out


def spend_since(engine: Engine, since: float, until: float | None = None) -> float:
    """USD spent from ``since`` (inclusive) to ``until`` (exclusive; None: now)."""
    q = select(func.sum(requests.c.cost_usd)).where(*_conditions(since, until, None))
    with engine.connect() as conn:
        value = conn.execute(q).scalar()
    return float(value or 0.0)


class Resilience(msgspec.Struct, kw_only=True):
    """Retries, failovers and hedges in a window."""

    requests: int = 0
    retried: int = 0
    retries: int = 0
    failed_over: int = 0
    failovers: int = 0
    hedged: int = 0


def resilience(engine: Engine, since: float | None, until: float | None) -> Resilience:
    r = requests.c
    q = select(
        func.count(),
        func.sum(func.coalesce(r.retries, 0)),
        func.count().filter(r.retries > 0),
        func.sum(func.coalesce(r.failovers, 0)),
        func.count().filter(r.failovers > 0),
        func.count().filter(r.hedges > 0),
    ).where(*_conditions(since, until, None))
    with engine.connect() as conn:
        row = conn.execute(q).one()
    n, retries, retried, failovers, failed_over, hedged = (int(v or 0) for v in row)
    return Resilience(
        requests=n,
        retried=retried,
        retries=retries,
        failed_over=failed_over,
        failovers=failovers,
        hedged=hedged,
    )


class RouteRow(msgspec.Struct, kw_only=True):
    request_id: str
    deployment: str | None
    status: int
    failovers: int
    route: dict[str, Any] | None


#: The most routed requests the routing page reads in one window (the newest ones).
MAX_ROUTES = 20_000


def routes(
    engine: Engine, since: float | None, until: float | None, limit: int = MAX_ROUTES
) -> list[RouteRow]:
    """The newest ``limit`` requests of the window that have a routing trace."""
    r = requests.c
    q = (
        select(r.request_id, r.deployment, r.status, r.failovers, r.route)
        .where(*_conditions(since, until, None), r.route.is_not(None))
        .order_by(r.started_at.desc())
        .limit(limit)
    )
    out: list[RouteRow] = []
    with engine.connect() as conn:
        for row in conn.execute(q):
            out.append(
                RouteRow(
                    request_id=row.request_id,
                    deployment=row.deployment,
                    status=int(row.status),
                    failovers=int(row.failovers or 0),
                    route=expand(row.route),  # the trace, built from the stored decision
                )
            )
    return out


class HolderSpend(msgspec.Struct, kw_only=True):
    """A key's or a team's spend since each period's start, its requests since the earliest of
    those starts, and its last request."""

    spent: dict[str, float] = {}
    requests: int = 0
    last_used: float | None = None


def holder_spend(
    engine: Engine,
    column: str,
    starts: Mapping[str, float],
    holders: Sequence[str] = (),
    *,
    all_time: Sequence[str] = (),
) -> dict[str, HolderSpend]:
    """Per key id (``column='key'``) or team name (``'team'``): USD since each of ``starts``
    (period name → epoch seconds, the latest periods only: one scan from the earliest start),
    the requests since then, and — for ``holders`` — the time of the last request (an index
    lookup each). ``all_time`` holders also get ``spent['total']`` (their whole history)."""
    col = GROUPS[column]
    r = requests.c
    since = min(starts.values()) if starts else None
    out: dict[str, HolderSpend] = {}

    def get(h: Any) -> HolderSpend:
        key = str(h)
        if key not in out:
            out[key] = HolderSpend(spent=dict.fromkeys(starts, 0.0))
        return out[key]

    with engine.connect() as conn:
        if since is not None:
            cols: list[Any] = [col.label("holder"), func.count().label("requests")]
            for name, start in starts.items():
                cols.append(
                    func.sum(func.coalesce(r.cost_usd, 0.0)).filter(r.started_at >= start).label(name)
                )
            q = select(*cols).where(col.is_not(None), r.started_at >= since).group_by(col)
            for row in conn.execute(q).mappings():
                hs = get(row["holder"])
                hs.requests = int(row["requests"] or 0)
                hs.spent.update({name: float(row[name] or 0.0) for name in starts})
        if all_time:
            q = (
                select(col, func.sum(func.coalesce(r.cost_usd, 0.0)))
                .where(col.in_(list(all_time)))
                .group_by(col)
            )
            for holder, total in conn.execute(q):
                get(holder).spent["total"] = float(total or 0.0)
        for h in holders:
            last = conn.execute(select(func.max(r.started_at)).where(col == h)).scalar()
            if last is not None:
                get(h).last_used = float(last)
    return out


class OverviewRead(msgspec.Struct, kw_only=True):
    """The overview's range in two reads: sums per (time bucket, deployment), and latency / TTFT
    percentiles per bucket and over the whole range (key None)."""

    sums: list[Totals]
    resilience: Resilience
    percentiles: dict[int | None, dict[str, float | None]]


def overview(engine: Engine, width: int, since: float, until: float) -> OverviewRead:
    """Everything the overview shows for a range, with one ``GROUP BY`` and — on SQLite — one
    narrow scan for every percentile (the bucket's and the range's from the same values), instead
    of a query per figure. The sums are those of :func:`queries.usage`; the percentiles are the
    same nearest-rank ones."""
    step = "hour" if width == 3600 else "day"
    r = requests.c
    b = GROUPS[step]
    cols: list[Any] = [
        b.label("g_0"),
        r.deployment.label("g_1"),
        func.count().label("requests"),
        func.sum(case((r.status >= 400, 1), else_=0)).label("errors"),
        *(func.sum(r[c]).label(c) for c in TOKEN_COLUMNS),
        func.sum(r.cost_usd).label("cost_usd"),
        *(func.sum(r[c]).label(c) for c in COST_COLUMNS),
        func.sum(r.saved_usd).label("saved_usd"),
        func.sum(func.coalesce(r.retries, 0)).label("retries"),
        func.sum(case((r.retries > 0, 1), else_=0)).label("retried"),
        func.sum(func.coalesce(r.failovers, 0)).label("failovers"),
        func.sum(case((r.failovers > 0, 1), else_=0)).label("failed_over"),
        func.sum(case((r.hedges > 0, 1), else_=0)).label("hedged"),
    ]
    where = _conditions(since, until, None)
    q = select(*cols).where(*where).group_by(b, r.deployment)
    native = engine.dialect.name == "postgresql"
    res = Resilience()
    sums: list[Totals] = []
    with engine.connect() as conn:
        if native:
            conn.execute(text(f"SET LOCAL work_mem = '{PG_WORK_MEM}'"))
        for row in conn.execute(q).mappings():
            n = int(row["requests"] or 0)
            if n == 0:
                continue
            sums.append(
                Totals(
                    group={step: row["g_0"], "deployment": row["g_1"]},
                    requests=n,
                    errors=int(row["errors"] or 0),
                    cost_usd=float(row["cost_usd"] or 0.0),
                    tokens={c: int(row[c] or 0) for c in TOKEN_COLUMNS},
                    costs={c: float(row[c] or 0.0) for c in COST_COLUMNS},
                    saved_usd=float(row["saved_usd"] or 0.0),
                )
            )
            res.requests += n
            res.retries += int(row["retries"] or 0)
            res.retried += int(row["retried"] or 0)
            res.failovers += int(row["failovers"] or 0)
            res.failed_over += int(row["failed_over"] or 0)
            res.hedged += int(row["hedged"] or 0)
        pct = _pg_percentiles(conn, b, where) if native else _percentiles_scan(conn, b, where)
    return OverviewRead(sums=sums, resilience=res, percentiles=pct)


def _pg_percentiles(conn: Connection, b: Any, where: list[Any]) -> dict[int | None, dict[str, float | None]]:
    r = requests.c
    aggs = [func.percentile_disc(p).within_group(r[c]).label(name) for name, c, p in PERCENTILES]
    out: dict[int | None, dict[str, float | None]] = {}
    # One statement for every bucket and the whole range: GROUPING SETS ((bucket), ()).
    q = select(b.label("b"), *aggs).where(*where).group_by(func.grouping_sets(tuple_(b), tuple_()))
    for row in conn.execute(q).mappings():
        out[None if row["b"] is None else int(row["b"])] = {name: row[name] for name, _, _ in PERCENTILES}
    return out


def _percentiles_scan(
    conn: Connection, b: Any, where: list[Any]
) -> dict[int | None, dict[str, float | None]]:
    r = requests.c
    compiled = select(b, r.latency_ms, r.ttft_ms).where(*where).compile(dialect=conn.dialect)
    params = compiled.params
    positional = [params[name] for name in compiled.positiontup or ()]
    lat: dict[int, list[float]] = {}
    ttft: dict[int, list[float]] = {}
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:  # straight through the driver's cursor, as queries.usage does (rows cost ~4 us otherwise)
        cursor.execute(str(compiled), positional if compiled.positiontup is not None else params)
        while chunk := cursor.fetchmany(10_000):
            for key, latency, first in chunk:
                if latency is not None:
                    lat.setdefault(key, []).append(latency)
                if first is not None:
                    ttft.setdefault(key, []).append(first)
    finally:
        cursor.close()
    out: dict[int | None, dict[str, float | None]] = {}
    for key in {*lat, *ttft}:
        lv, tv = lat.get(key, []), ttft.get(key, [])
        out[int(key)] = _four(lv, tv)
    all_lat = [v for vs in lat.values() for v in vs]
    all_ttft = [v for vs in ttft.values() for v in vs]
    out[None] = _four(all_lat, all_ttft)
    return out


def _four(lat: list[float], ttft: list[float]) -> dict[str, float | None]:
    return {
        "latency_p50_ms": nearest_rank(lat, 0.5),
        "latency_p95_ms": nearest_rank(lat, 0.95),
        "ttft_p50_ms": nearest_rank(ttft, 0.5),
        "ttft_p95_ms": nearest_rank(ttft, 0.95),
    }


def crossings(
    engine: Engine, column: str, holder: str, since: float, amounts: Sequence[float]
) -> list[float | None]:
    """When the holder's spend since ``since`` first reached each of ``amounts`` (USD, ascending):
    the start of the request that took it there, or None while it has not. ``column`` is ``key``
    (a key id) or ``team`` (a team name). Reads that holder's requests in order, until the last
    amount is reached."""
    col = GROUPS[column]
    r = requests.c
    q = (
        select(r.started_at, r.cost_usd)
        .where(col == holder, r.started_at >= since)
        .order_by(r.started_at, r.request_id)
        .execution_options(yield_per=5000)
    )
    out: list[float | None] = [None] * len(amounts)
    spent, i = 0.0, 0
    with engine.connect() as conn:
        for started, cost in conn.execute(q):
            spent += float(cost or 0.0)
            while i < len(amounts) and spent + 1e-12 >= amounts[i]:
                out[i] = float(started)
                i += 1
            if i == len(amounts):
                break
    return out


class AttemptTotals(msgspec.Struct, kw_only=True):
    attempts: int = 0
    #: Attempts with no answer or an HTTP error status from the upstream.
    failed: int = 0


def attempt_totals(engine: Engine, since: float | None, until: float | None) -> dict[str, AttemptTotals]:
    """Upstream attempts per deployment of the requests started in the window (retries, failovers
    and hedges included): how often each deployment was tried and failed, whoever answered."""
    a, r = attempts.c, requests.c
    failed = case((or_(a.status.is_(None), a.status >= 400), 1), else_=0)
    q = (
        select(a.deployment, func.count(), func.sum(failed))
        .select_from(requests.join(attempts, a.request_id == r.request_id))
        .where(*_conditions(since, until, None))
        .group_by(a.deployment)
    )
    with engine.connect() as conn:
        return {
            str(dep): AttemptTotals(attempts=int(n or 0), failed=int(f or 0)) for dep, n, f in conn.execute(q)
        }


_TURNS = """
WITH turns AS (
  SELECT session, task, deployment,
         LAG(deployment) OVER (PARTITION BY session ORDER BY started_at, request_id) AS prev
  FROM requests
  WHERE session IS NOT NULL AND deployment IS NOT NULL AND started_at >= :since AND started_at < :until
)
"""
_SWITCHED = "CASE WHEN prev IS NOT NULL AND prev <> deployment THEN 1 ELSE 0 END"


def switches_in(
    engine: Engine, since: float, until: float, *, sessions: int = 20
) -> tuple[list[SwitchRow], list[SessionSwitches]]:
    """Model switch frequency within a window — the views ``ledger_switch_frequency`` and
    ``ledger_session_switches`` over the window's turns only (a session's first turn in the
    window has no turn before it), so the cost is the window's, not the whole ledger's: per task
    type, and the ``sessions`` sessions that switched most."""
    params = {"since": since, "until": until}
    per_task = text(
        _TURNS + f"SELECT task, COUNT(DISTINCT session) AS sessions, COUNT(prev) AS turns, "
        f"SUM({_SWITCHED}) AS switches FROM turns GROUP BY task ORDER BY task"
    )
    per_session = text(
        _TURNS + f"SELECT session, COUNT(*) AS requests, COUNT(DISTINCT deployment) AS deployments, "
        f"SUM({_SWITCHED}) AS switches FROM turns GROUP BY session HAVING COUNT(*) >= 2 "
        "ORDER BY switches DESC, session LIMIT :n"
    )
    with engine.connect() as conn:
        tasks = conn.execute(per_task, params).mappings().all()
        top = conn.execute(per_session, {**params, "n": sessions}).mappings().all()
    rows = []
    for r in tasks:
        turns, switched = int(r["turns"] or 0), int(r["switches"] or 0)
        rows.append(
            SwitchRow(
                group={"task": r["task"]},
                sessions=int(r["sessions"] or 0),
                turns=turns,
                switches=switched,
                switch_rate=switched / turns if turns else None,
            )
        )
    out = []
    for r in top:
        n, switched = int(r["requests"] or 0), int(r["switches"] or 0)
        out.append(
            SessionSwitches(
                session=r["session"],
                requests=n,
                deployments=int(r["deployments"] or 0),
                switches=switched,
                switch_rate=switched / (n - 1) if n > 1 else None,
            )
        )
    return rows, out
