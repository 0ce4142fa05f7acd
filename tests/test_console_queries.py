"""Proof: the console's one-read overview gives the same figures as ``queries.usage`` (what
``/admin/usage`` answers from) — totals, each hour and each day, exact percentiles — on SQLite
and PostgreSQL; the spend, routing and per-holder reads count what was written."""

from __future__ import annotations

import json
import math
import random
from typing import Any

from switchpoint.store import console_queries as cq
from switchpoint.store import queries
from switchpoint.store.engine import make_engine
from switchpoint.store.tables import REQUEST_COLUMNS
from switchpoint.store.writer import Writer

NOW = 1_796_000_000.0  # a fixed clock
DEPS = ["dep-a", "dep-b", None]


def _rows(n: int, seed: int = 3) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    col = {c: i for i, c in enumerate(REQUEST_COLUMNS)}
    out = []
    for i in range(n):
        row: list[Any] = [None] * len(REQUEST_COLUMNS)
        dep = DEPS[i % 3]
        inp = rng.randint(10, 5000)
        cached = inp // 3 if i % 2 else 0
        out_t = rng.randint(1, 500)
        cost_in, cost_cached, cost_out = (inp - cached) * 1e-6, cached * 1e-7, out_t * 4e-6
        values = {
            "request_id": f"r{i:06d}",
            "started_at": NOW - 3 * 86400 + i * (3 * 86400 / n),
            "instance": "t",
            "dialect": "openai",
            "endpoint": "chat.completions",
            "alias": "smart",
            "deployment": dep,
            "key_id": f"k{i % 4}" if i % 5 else None,
            "team": "team-x" if i % 2 else None,
            "stream": i % 2 == 0,
            "status": 502 if dep is None else 200,
            "latency_ms": rng.lognormvariate(5, 0.7),
            "ttft_ms": rng.lognormvariate(4, 0.5) if i % 2 == 0 else None,
            "input_tokens": inp,
            "cached_input_tokens": cached,
            "cache_write_5m_tokens": 0,
            "cache_write_1h_tokens": 0,
            "output_tokens": out_t,
            "reasoning_tokens": 0,
            "cost_input": cost_in,
            "cost_cached_input": cost_cached,
            "cost_cache_write_5m": 0.0,
            "cost_cache_write_1h": 0.0,
            "cost_output": cost_out,
            "cost_reasoning": 0.0,
            "cost_usd": cost_in + cost_cached + cost_out,
            "saved_usd": cached * 9e-7,
            "attempts": 2 if i % 7 == 0 else 1,
            "retries": 1 if i % 11 == 0 else 0,
            "failovers": 1 if i % 7 == 0 else 0,
            "hedges": 0,
            "route": json.dumps(
                {
                    "rule": "alias:smart",
                    "strategy": "priority",
                    "candidates": [{"deployment": "dep-a", "reason": "priority 1"}],
                }
            ),
        }
        for k, v in values.items():
            row[col[k]] = v
        out.append(tuple(row))
    return out


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def test_overview_read_equals_usage(ledger_url: str) -> None:
    from switchpoint import defaults
    from switchpoint.config import parse
    from switchpoint.console import views

    engine = make_engine(ledger_url)
    try:
        Writer(engine).write(_rows(600), [])
        cfg = parse(defaults.simulated_document("http://127.0.0.1:9"), source="t", env={})
        for step in ("hour", "day"):
            w = views.Window(since=NOW - 2.5 * 86400, until=NOW - 0.5 * 86400, name="custom", step=step)
            o = views.overview(engine, cfg, w, now=NOW)
            total = queries.usage(engine, [], w.since, w.until)[0]
            assert o.totals is not None
            for f in ("requests", "errors", "input_tokens", "cached_input_tokens", "output_tokens"):
                assert getattr(o.totals, f) == getattr(total, f), f
            for f in (
                "cost_usd",
                "cost_cached_input",
                "saved_usd",
                "latency_p50_ms",
                "latency_p95_ms",
                "ttft_p50_ms",
                "ttft_p95_ms",
                "cache_read_ratio",
            ):
                assert _same(getattr(o.totals, f), getattr(total, f)), f
            per = {int(r.group[step]): r for r in queries.usage(engine, [step], w.since, w.until)}
            shown = {b: r for b, r in o.series if r is not None}
            assert shown.keys() == per.keys()
            for b, r in shown.items():
                assert r.requests == per[b].requests and r.errors == per[b].errors
                for f in ("cost_usd", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms"):
                    assert _same(getattr(r, f), getattr(per[b], f)), (b, f)
            rows = [r for r in _rows(600) if w.since <= r[1] < w.until]
            col = {c: i for i, c in enumerate(REQUEST_COLUMNS)}
            assert o.resilience.failed_over == sum(1 for r in rows if r[col["failovers"]])
            assert o.resilience.retried == sum(1 for r in rows if r[col["retries"]])
    finally:
        engine.dispose()


def test_spend_routes_and_holders(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    try:
        rows = _rows(300)
        Writer(engine).write(rows, [])
        col = {c: i for i, c in enumerate(REQUEST_COLUMNS)}
        since = NOW - 86400
        want = math.fsum(r[col["cost_usd"]] for r in rows if r[col["started_at"]] >= since)
        assert math.isclose(cq.spend_since(engine, since), want, rel_tol=1e-9)
        routed = cq.routes(engine, None, None)
        assert len(routed) == 300 and routed[0].route is not None and routed[0].route["rule"] == "alias:smart"
        spend = cq.holder_spend(engine, "key", {"recent": since}, ["k1", "k2"], all_time=["k1", "k3"])
        for k in ("k1", "k2", "k3", "k0"):
            mine = [r for r in rows if r[col["key_id"]] == k]
            recent = [r for r in mine if r[col["started_at"]] >= since]
            assert spend[k].requests == len(recent)
            assert math.isclose(
                spend[k].spent["recent"], math.fsum(r[col["cost_usd"]] for r in recent), rel_tol=1e-9
            )
            if k in ("k1", "k3"):
                assert math.isclose(
                    spend[k].spent["total"], math.fsum(r[col["cost_usd"]] for r in mine), rel_tol=1e-9
                )
            else:
                assert "total" not in spend[k].spent
            if k in ("k1", "k2"):
                assert spend[k].last_used == max(r[col["started_at"]] for r in mine)
            else:
                assert spend[k].last_used is None
        teams = cq.holder_spend(engine, "team", {"all": 0.0})
        assert teams.keys() == {"team-x"}
    finally:
        engine.dispose()


def test_attempt_totals_count_every_try(ledger_url: str) -> None:
    from switchpoint.store.tables import ATTEMPT_COLUMNS

    engine = make_engine(ledger_url)
    try:
        reqs = _rows(6)
        col = {c: i for i, c in enumerate(ATTEMPT_COLUMNS)}
        tries = []
        for i, req in enumerate(reqs):
            # each request: a failed try on dep-a (no answer or a 500), then dep-b answers
            for seq, (dep, status) in enumerate([("dep-a", None if i % 2 else 500), ("dep-b", 200)]):
                row: list[Any] = [None] * len(ATTEMPT_COLUMNS)
                row[col["request_id"]], row[col["seq"]] = req[0], seq
                row[col["deployment"]], row[col["status"]] = dep, status
                row[col["started_at"]] = req[1]
                tries.append(tuple(row))
        Writer(engine).write(reqs, tries)
        got = cq.attempt_totals(engine, None, None)
        assert {k: (v.attempts, v.failed) for k, v in got.items()} == {"dep-a": (6, 6), "dep-b": (6, 0)}
        later = cq.attempt_totals(engine, reqs[3][1], None)  # the window is the requests' start
        assert later["dep-a"].attempts == 3
    finally:
        engine.dispose()


def test_switches_in_a_window_equal_the_views_over_everything(ledger_url: str) -> None:
    col = {c: i for i, c in enumerate(REQUEST_COLUMNS)}
    rows = []
    for i, r in enumerate(_rows(90)):
        row = list(r)
        row[col["session"]] = f"s{i % 7}"
        row[col["task"]] = ("code", "chat")[i % 2]
        rows.append(tuple(row))
    engine = make_engine(ledger_url)
    try:
        Writer(engine).write(rows, [])
        per_task, top = cq.switches_in(engine, 0.0, NOW + 1)
        want = {r.group["task"]: r for r in queries.switch_frequency(engine, ["task"])}
        assert {r.group["task"]: (r.sessions, r.turns, r.switches) for r in per_task} == {
            k: (v.sessions, v.turns, v.switches) for k, v in want.items()
        }
        assert sum(r.switches for r in per_task) > 0
        views = queries.session_switches(engine, limit=20)
        assert [(s.session, s.requests, s.switches) for s in top] == [
            (s.session, s.requests, s.switches) for s in views
        ]
        # A window holds only its own turns.
        half = rows[45][col["started_at"]]
        inside = [r for r in rows if r[col["started_at"]] >= half and r[col["deployment"]] is not None]
        late, _ = cq.switches_in(engine, half, NOW + 1)
        sessions = {r[col["session"]] for r in inside}
        assert sum(r.turns for r in late) == len(inside) - len(sessions)
    finally:
        engine.dispose()
