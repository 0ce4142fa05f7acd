"""The reads the console needs beyond :mod:`switchpoint.store.queries` (which it also uses).

Totals without percentiles (one ``GROUP BY``, no sort), spend since a time, the routing traces of
a window, and per key / per team spend and last use. Synchronous, like every store read: the
console runs them on the ledger reads' threads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Engine, func, select

from switchpoint.store.queries import COST_COLUMNS, GROUPS, _conditions, usage_query
from switchpoint.store.tables import TOKEN_COLUMNS, requests


class Totals(msgspec.Struct, kw_only=True):
    """One group's sums (no percentiles)."""

    group: dict[str, Any]
    requests: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    tokens: dict[str, int] = {}
    costs: dict[str, float] = {}


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
            route = row.route
            if isinstance(route, str):
                try:
                    route = json.loads(route)
                except ValueError:
                    route = None
            out.append(
                RouteRow(
                    request_id=row.request_id,
                    deployment=row.deployment,
                    status=int(row.status),
                    failovers=int(row.failovers or 0),
                    route=route if isinstance(route, dict) else None,
                )
            )
    return out


class HolderSpend(msgspec.Struct, kw_only=True):
    """A key's or a team's spend since each period's start, and its last request."""

    spent: dict[str, float] = {}
    requests: int = 0
    last_used: float | None = None


def holder_spend(engine: Engine, column: str, starts: Mapping[str, float]) -> dict[str, HolderSpend]:
    """Per key id (``column='key'``) or team name (``'team'``): USD since each of ``starts``
    (period name → epoch seconds; 0 for all time), requests and the last request's time."""
    col = GROUPS[column]
    r = requests.c
    cols: list[Any] = [
        col.label("holder"),
        func.count().label("requests"),
        func.max(r.started_at).label("last_used"),
    ]
    for name, start in starts.items():
        cols.append(func.sum(func.coalesce(r.cost_usd, 0.0)).filter(r.started_at >= start).label(name))
    q = select(*cols).where(col.is_not(None)).group_by(col)
    out: dict[str, HolderSpend] = {}
    with engine.connect() as conn:
        for row in conn.execute(q).mappings():
            out[str(row["holder"])] = HolderSpend(
                spent={name: float(row[name] or 0.0) for name in starts},
                requests=int(row["requests"] or 0),
                last_used=float(row["last_used"]) if row["last_used"] is not None else None,
            )
    return out
