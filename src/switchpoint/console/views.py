"""What each console page shows, read from the ledger (synchronous: run on the reads' threads).

Every figure comes from :mod:`switchpoint.store.queries` (the same functions ``/admin/usage``
and ``/admin/tasks`` answer from, so the console and the API agree) or from
:mod:`switchpoint.store.console_queries`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from switchpoint.config import Config
from switchpoint.store import console_queries as cq
from switchpoint.store import queries
from switchpoint.store.tables import TOKEN_COLUMNS

HOUR, DAY = 3600, 86400
#: Range picker presets: name → seconds back from now.
RANGES: dict[str, int] = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
DEFAULT_RANGE = "24h"


class RangeError(ValueError):
    pass


def parse_when(value: str, name: str) -> float:
    """Epoch seconds, or an ISO date / date-time (UTC unless it says otherwise)."""
    v = value.strip()
    try:
        n = float(v)
    except ValueError:
        pass
    else:
        if n >= 0 and n == n and n != float("inf"):
            return n
        raise RangeError(f"{name} must be a time")
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise RangeError(f"{name} must be a date and time like 2026-12-02T13:00 (UTC)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass(frozen=True)
class Window:
    since: float
    until: float
    #: The preset chosen, or ``custom``.
    name: str
    #: ``hour`` or ``day``: the width of the chart's buckets.
    step: str

    @property
    def width(self) -> int:
        return HOUR if self.step == "hour" else DAY


def window(params: dict[str, str], now: float | None = None) -> Window:
    """The range a page shows: ``range=1h|24h|7d|30d`` (default 24 h), or ``since``/``until``;
    ``step=hour|day`` (default: hours up to two days, days beyond)."""
    t = time.time() if now is None else now
    since_raw, until_raw = params.get("since") or "", params.get("until") or ""
    if since_raw or until_raw:
        until = parse_when(until_raw, "until") if until_raw else t
        since = parse_when(since_raw, "since") if since_raw else until - DAY
        name = "custom"
    else:
        name = params.get("range") or DEFAULT_RANGE
        if name not in RANGES:
            raise RangeError(f"range must be one of {', '.join(RANGES)}")
        since, until = t - RANGES[name], t
    if until <= since:
        raise RangeError("until must be after since")
    if until - since > 400 * DAY:
        raise RangeError("a range is at most 400 days")
    step = params.get("step") or ("hour" if until - since <= 2 * DAY else "day")
    if step not in ("hour", "day"):
        raise RangeError("step must be hour or day")
    if step == "hour" and until - since > 31 * DAY:
        step = "day"  # at most ~750 bars
    return Window(since=since, until=until, name=name, step=step)


def _buckets(w: Window) -> list[int]:
    width = w.width
    first = int(w.since // width) * width
    return list(range(first, int(w.until) + 1 if w.until % width else int(w.until), width))


def bucket_label(ts: int, step: str) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%m-%d %H:00") if step == "hour" else dt.strftime("%Y-%m-%d")


@dataclass
class Overview:
    window: Window
    totals: queries.UsageRow | None
    series: list[tuple[int, queries.UsageRow | None]]
    spend_today: float
    spend_month: float
    today_start: float
    month_start: float
    cache_saved_usd: float
    #: Deployments whose cache reads could not be priced (no input price known).
    unpriced: list[str] = field(default_factory=list)
    resilience: cq.Resilience = field(default_factory=cq.Resilience)

    @property
    def error_rate(self) -> float | None:
        t = self.totals
        return t.errors / t.requests if t is not None and t.requests else None


def month_start(now: float) -> float:
    d = datetime.fromtimestamp(now, UTC)
    return datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()


def cache_saved(config: Config, rows: list[cq.Totals]) -> tuple[float, list[str]]:
    """What cache reads saved: per deployment, the cached tokens at the plain input rate minus
    what they were billed. The rate is the deployment's configured price, else the ledger's own
    (its plain input's cost over its plain input tokens)."""
    saved, unpriced = 0.0, []
    for row in rows:
        cached = row.tokens.get("cached_input_tokens", 0)
        if not cached:
            continue
        name = row.group.get("deployment")
        dep = config.deployments.get(name) if isinstance(name, str) else None
        rate: float | None = None
        if dep is not None and dep.price is not None:
            rate = dep.price.input / 1_000_000
        else:
            plain = (
                row.tokens.get("input_tokens", 0)
                - cached
                - row.tokens.get("cache_write_5m_tokens", 0)
                - row.tokens.get("cache_write_1h_tokens", 0)
            )
            if plain > 0:
                rate = row.costs.get("cost_input", 0.0) / plain
        if rate is None:
            unpriced.append(str(name))
            continue
        saved += cached * rate - row.costs.get("cost_cached_input", 0.0)
    return saved, unpriced


def _usage_row(
    group: dict[str, Any], parts: list[cq.Totals], pct: dict[str, float | None]
) -> queries.UsageRow:
    """One :class:`queries.UsageRow` from sums over ``parts`` and its percentiles."""
    tokens = {c: sum(p.tokens.get(c, 0) for p in parts) for c in TOKEN_COLUMNS}
    costs = {c: math.fsum(p.costs.get(c, 0.0) for p in parts) for c in queries.COST_COLUMNS}
    inp, cached = tokens["input_tokens"], tokens["cached_input_tokens"]
    return queries.UsageRow(
        group=group,
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        cost_usd=math.fsum(p.cost_usd for p in parts),
        input_tokens=inp,
        cached_input_tokens=cached,
        cache_write_5m_tokens=tokens["cache_write_5m_tokens"],
        cache_write_1h_tokens=tokens["cache_write_1h_tokens"],
        output_tokens=tokens["output_tokens"],
        reasoning_tokens=tokens["reasoning_tokens"],
        cost_input=costs["cost_input"],
        cost_cached_input=costs["cost_cached_input"],
        cost_cache_write_5m=costs["cost_cache_write_5m"],
        cost_cache_write_1h=costs["cost_cache_write_1h"],
        cost_output=costs["cost_output"],
        cost_reasoning=costs["cost_reasoning"],
        saved_usd=math.fsum(p.saved_usd for p in parts),
        latency_p50_ms=pct.get("latency_p50_ms"),
        latency_p95_ms=pct.get("latency_p95_ms"),
        ttft_p50_ms=pct.get("ttft_p50_ms"),
        ttft_p95_ms=pct.get("ttft_p95_ms"),
        cache_read_ratio=cached / inp if inp else None,
    )


def overview(engine: Engine, config: Config, w: Window, now: float | None = None) -> Overview:
    """The overview's figures: one read of the range (sums per bucket and deployment, and the
    percentiles) and two sums for today and this month."""
    t = time.time() if now is None else now
    read = cq.overview(engine, w.width, w.since, w.until)
    by_bucket: dict[int, list[cq.Totals]] = {}
    by_dep: dict[Any, list[cq.Totals]] = {}
    for part in read.sums:
        by_bucket.setdefault(int(part.group[w.step]), []).append(part)
        by_dep.setdefault(part.group["deployment"], []).append(part)
    none: dict[str, float | None] = {}
    series: dict[int, queries.UsageRow] = {
        b: _usage_row({w.step: b}, parts, read.percentiles.get(b, none)) for b, parts in by_bucket.items()
    }
    deps = [_totals({"deployment": d}, parts) for d, parts in by_dep.items()]
    saved, unpriced = cache_saved(config, deps)
    today = float(int(t // DAY) * DAY)
    month = month_start(t)
    return Overview(
        window=w,
        totals=_usage_row({}, read.sums, read.percentiles.get(None, none)) if read.sums else None,
        series=[(b, series.get(b)) for b in _buckets(w)],
        spend_today=cq.spend_since(engine, today),
        spend_month=cq.spend_since(engine, month),
        today_start=today,
        month_start=month,
        cache_saved_usd=saved,
        unpriced=unpriced,
        resilience=read.resilience,
    )


def _totals(group: dict[str, Any], parts: list[cq.Totals]) -> cq.Totals:
    return cq.Totals(
        group=group,
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        cost_usd=math.fsum(p.cost_usd for p in parts),
        tokens={c: sum(p.tokens.get(c, 0) for p in parts) for c in TOKEN_COLUMNS},
        costs={c: math.fsum(p.costs.get(c, 0.0) for p in parts) for c in queries.COST_COLUMNS},
    )


@dataclass
class ModelRow:
    name: str
    provider: str | None
    upstream_model: str | None
    configured: bool
    usage: queries.UsageRow | None
    breaker: dict[str, Any]
    tries: cq.AttemptTotals | None = None


def models(engine: Engine, config: Config, w: Window, breakers: dict[str, dict[str, Any]]) -> list[ModelRow]:
    used = {r.group["deployment"]: r for r in queries.usage(engine, ["deployment"], w.since, w.until)}
    tries = cq.attempt_totals(engine, w.since, w.until)
    seen = {*used, *tries}
    names = [*config.deployments, *sorted(n for n in seen if n is not None and n not in config.deployments)]
    out: list[ModelRow] = []
    for name in names:
        dep = config.deployments.get(name)
        row = used.get(name)
        out.append(
            ModelRow(
                name=name,
                provider=dep.provider.name if dep is not None else None,
                upstream_model=dep.model if dep is not None else None,
                configured=dep is not None,
                usage=row,
                breaker=breakers.get(name, {}),
                tries=tries.get(name),
            )
        )
    if None in used:
        out.append(
            ModelRow(
                "(no deployment answered)",
                "every attempt failed, or none was made",
                None,
                False,
                used[None],
                {},
            )
        )
    return out


@dataclass
class Tasks:
    by_task: list[queries.UsageRow]
    costs: dict[Any, queries.TaskRow]
    efficiency: dict[Any, queries.EfficiencyRow]
    switches: dict[Any, queries.SwitchRow]
    by_deployment: list[queries.TaskRow]
    sessions: list[queries.SessionSwitches]


def tasks(engine: Engine, w: Window) -> Tasks:
    switches, sessions = cq.switches_in(engine, w.since, w.until)
    return Tasks(
        by_task=queries.usage(engine, ["task"], w.since, w.until),
        costs={r.group["task"]: r for r in queries.task_costs(engine, ["task"])},
        efficiency={r.group["task"]: r for r in queries.token_efficiency(engine, ["task"], w.since, w.until)},
        switches={r.group["task"]: r for r in switches},
        by_deployment=queries.task_costs(engine, ["task", "deployment"]),
        sessions=sessions,
    )


@dataclass
class Routing:
    rows: int
    capped: bool
    rules: list[tuple[str, int]]
    reasons: list[tuple[str, int]]
    strategies: list[tuple[str, int]]
    task_sources: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    #: Answered by a candidate other than the first (the first failed or was skipped at run time).
    fallbacks: int
    failed_over: int
    failovers: int
    answered: list[tuple[str, int]]
    resilience: cq.Resilience


def routing(engine: Engine, w: Window) -> Routing:
    rows = cq.routes(engine, w.since, w.until)
    rules: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    strategies: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    fallbacks = failed_over = failovers = 0
    for row in rows:
        route = row.route or {}
        rules[str(route.get("rule") or "(direct: no rule)")] += 1
        strategies[str(route.get("strategy") or "—")] += 1
        sources[str(route.get("task_source") or "(no task needed)")] += 1
        cands = route.get("candidates") or []
        if cands and isinstance(cands[0], dict):
            reasons[str(cands[0].get("reason") or "—")] += 1
            if row.deployment is not None and row.deployment != cands[0].get("deployment"):
                fallbacks += 1
        for s in route.get("skipped") or []:
            if isinstance(s, dict):
                skipped[str(s.get("reason") or "—")] += 1
        answered[row.deployment or "(none answered)"] += 1
        if row.failovers:
            failed_over += 1
            failovers += row.failovers
    return Routing(
        rows=len(rows),
        capped=len(rows) >= cq.MAX_ROUTES,
        rules=rules.most_common(),
        reasons=reasons.most_common(20),
        strategies=strategies.most_common(),
        task_sources=sources.most_common(),
        skipped=skipped.most_common(20),
        fallbacks=fallbacks,
        failed_over=failed_over,
        failovers=failovers,
        answered=answered.most_common(),
        resilience=cq.resilience(engine, w.since, w.until),
    )
