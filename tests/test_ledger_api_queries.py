"""The ledger's typed queries, on SQLite and PostgreSQL, against rows written by the store's writer."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from switchpoint.store import queries
from switchpoint.store.engine import make_engine
from switchpoint.store.tables import ATTEMPT_COLUMNS, REQUEST_COLUMNS
from switchpoint.store.writer import Writer

DAY = 86400.0
T0 = 1_780_000_000.0 - (1_780_000_000.0 % DAY)  # a midnight UTC


def req(request_id: str, started_at: float, **kw: Any) -> tuple[Any, ...]:
    base: dict[str, Any] = {
        "request_id": request_id,
        "started_at": started_at,
        "instance": "test",
        "dialect": "openai",
        "endpoint": "chat.completions",
        "alias": "a",
        "deployment": "d1",
        "provider": "p",
        "status": 200,
        "latency_ms": 100.0,
        "input_tokens": 0,
        "cached_input_tokens": 0,
        "cache_write_5m_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 0.0,
    }
    base.update(kw)
    unknown = set(base) - set(REQUEST_COLUMNS)
    assert not unknown, unknown
    return tuple(base.get(c) for c in REQUEST_COLUMNS)


def att(request_id: str, seq: int, **kw: Any) -> tuple[Any, ...]:
    base: dict[str, Any] = {"request_id": request_id, "seq": seq, "deployment": "d1", "status": 200}
    base.update(kw)
    return tuple(base.get(c) for c in ATTEMPT_COLUMNS)


@pytest.fixture
def engine(ledger_url: str) -> Iterator[Engine]:
    eng = make_engine(ledger_url)
    yield eng
    eng.dispose()


def nearest_rank(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(p * len(s)) - 1)]


def test_usage_totals_percentiles_and_cache_ratio(engine: Engine) -> None:
    lat1 = [float(v) for v in (120, 30, 400, 75, 250, 60, 90, 1000, 45, 310, 80)]
    ttft1 = [None, 10.0, 40.0, None, 20.0, 5.0, 30.0, None, 15.0, 25.0, 35.0]
    rows = []
    for i, (lat, ttft) in enumerate(zip(lat1, ttft1, strict=True)):
        rows.append(
            req(
                f"r{i:02d}",
                T0 + i,
                latency_ms=lat,
                ttft_ms=ttft,
                input_tokens=100,
                cached_input_tokens=40,
                cache_write_5m_tokens=10,
                cache_write_1h_tokens=5,
                output_tokens=20,
                reasoning_tokens=7,
                cost_usd=0.001,
                cost_input=0.0004,
                cost_output=0.0006,
                status=500 if i in (3, 7) else 200,
                error_kind="upstream_error" if i in (3, 7) else None,
            )
        )
    rows.append(req("x1", T0 + 50, deployment="d2", latency_ms=7.0, input_tokens=9, output_tokens=1))
    Writer(engine).write(rows, [])

    out = {r.group["deployment"]: r for r in queries.usage(engine, group_by=["deployment"])}
    assert set(out) == {"d1", "d2"}
    d1 = out["d1"]
    assert d1.requests == 11 and d1.errors == 2
    assert (d1.input_tokens, d1.cached_input_tokens, d1.output_tokens) == (1100, 440, 220)
    assert (d1.cache_write_5m_tokens, d1.cache_write_1h_tokens, d1.reasoning_tokens) == (110, 55, 77)
    assert d1.cost_usd == pytest.approx(0.011)
    assert d1.cost_input == pytest.approx(0.0044) and d1.cost_output == pytest.approx(0.0066)
    assert d1.latency_p50_ms == nearest_rank(lat1, 0.5)
    assert d1.latency_p95_ms == nearest_rank(lat1, 0.95)
    present = [t for t in ttft1 if t is not None]
    assert d1.ttft_p50_ms == nearest_rank(present, 0.5)
    assert d1.ttft_p95_ms == nearest_rank(present, 0.95)
    assert d1.cache_read_ratio == pytest.approx(0.4)
    d2 = out["d2"]
    assert d2.requests == 1 and d2.latency_p50_ms == 7.0 and d2.ttft_p50_ms is None

    (everything,) = queries.usage(engine)
    assert everything.group == {} and everything.requests == 12
    assert queries.usage(engine, since=T0 + 1000) == []


def test_day_and_hour_buckets_and_time_window(engine: Engine) -> None:
    rows = [
        req("a", T0 + 10, input_tokens=1),
        req("b", T0 + 3599.5, input_tokens=2),
        req("c", T0 + 3600, input_tokens=4),
        req("d", T0 + DAY - 0.25, input_tokens=8),
        req("e", T0 + DAY, input_tokens=16),
    ]
    Writer(engine).write(rows, [])
    days = queries.usage(engine, group_by=["day"])
    assert [(r.group["day"], r.input_tokens) for r in days] == [(int(T0), 15), (int(T0 + DAY), 16)]
    hours = queries.usage(engine, group_by=["hour"], until=T0 + DAY)
    assert [(r.group["hour"], r.requests) for r in hours] == [
        (int(T0), 2),
        (int(T0 + 3600), 1),
        (int(T0 + DAY - 3600), 1),
    ]
    # since inclusive, until exclusive
    (one,) = queries.usage(engine, since=T0 + 3600, until=T0 + DAY)
    assert one.input_tokens == 12
    both = queries.usage(engine, group_by=["day", "deployment"])
    assert [tuple(r.group.values()) for r in both] == [(int(T0), "d1"), (int(T0 + DAY), "d1")]


def test_filters(engine: Engine) -> None:
    rows = [
        req("a", T0 + 1, task="code", key_id="k1", tags=json.dumps(["env=prod", "team=x"]), input_tokens=1),
        req("b", T0 + 2, task="chat", key_id="k2", tags=json.dumps(["env=prodx"]), input_tokens=2),
        req("c", T0 + 3, task="code", key_id="k2", status=429, error_kind="rate_limited", input_tokens=4),
    ]
    Writer(engine).write(rows, [])

    def total(**filters: Any) -> int:
        got = queries.usage(engine, filters=filters)
        return got[0].input_tokens if got else 0

    assert total(task="code") == 5
    assert total(key="k2") == 6
    assert total(tag="env=prod") == 1  # an exact element, not a prefix
    assert total(errors="true") == 4 and total(errors="false") == 3
    assert total(status="429") == 4
    by_task = queries.usage(engine, group_by=["task", "key"])
    assert [(r.group["task"], r.group["key"], r.requests) for r in by_task] == [
        ("chat", "k2", 1),
        ("code", "k1", 1),
        ("code", "k2", 1),
    ]
    with pytest.raises(queries.QueryError, match="unknown filter"):
        queries.usage(engine, filters={"nope": "1"})
    with pytest.raises(queries.QueryError, match="cannot group by"):
        queries.usage(engine, group_by=["colour"])
    with pytest.raises(queries.QueryError, match="HTTP status"):
        queries.usage(engine, filters={"status": "abc"})


def test_request_paging_is_complete_and_stable(engine: Engine) -> None:
    rows = [req(f"r{i:03d}", T0 + (i // 3), task="t" if i % 2 else "u") for i in range(31)]
    Writer(engine).write(rows, [])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = queries.list_requests(engine, cursor=cursor, limit=7)
        pages += 1
        seen += [item["request_id"] for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        if pages == 2:  # a request written meanwhile (newer) does not shift later pages
            Writer(engine).write([req("new", T0 + 100)], [])
    expected = sorted(((r[1], r[0]) for r in rows), reverse=True)
    assert seen == [rid for _, rid in expected]
    assert pages == 5
    odd = queries.list_requests(engine, {"task": "t"}, limit=1000)
    assert len(odd.items) == 15 and odd.next_cursor is None
    assert "route" not in odd.items[0]
    with pytest.raises(queries.QueryError, match="cursor"):
        queries.list_requests(engine, cursor="not-a-cursor")
    with pytest.raises(queries.QueryError, match="limit"):
        queries.list_requests(engine, limit=0)


def test_one_request_with_attempts_route_and_feedback(engine: Engine) -> None:
    route = {"model": "a", "candidates": [{"deployment": "d0"}, {"deployment": "d1"}]}
    Writer(engine).write(
        [
            req(
                "r1",
                T0,
                attempts=2,
                failovers=1,
                route=json.dumps(route),
                tags=json.dumps(["k=v"]),
                stream=True,
            )
        ],
        [
            att("r1", 1, deployment="d1", status=200, offset_ms=12.5),
            att("r1", 0, deployment="d0", status=None, error_kind="connect_error"),
        ],
    )
    fid = queries.insert_feedback(engine, request_id="r1", outcome="completed", score=0.9)
    got = queries.request(engine, "r1")
    assert got is not None
    assert [a["deployment"] for a in got["attempt_list"]] == ["d0", "d1"]
    assert got["attempt_list"][0]["error_kind"] == "connect_error"
    assert got["route"] == route
    assert got["tags"] == ["k=v"] and got["stream"] is True
    assert [(f["id"], f["outcome"], f["score"]) for f in got["feedback"]] == [(fid, "completed", 0.9)]
    assert queries.request(engine, "nope") is None
    assert queries.request_exists(engine, "r1") and not queries.request_exists(engine, "nope")
    with pytest.raises(queries.QueryError):
        queries.insert_feedback(engine, request_id="r1", outcome="great")
    with pytest.raises(queries.QueryError):
        queries.insert_feedback(engine, request_id="r1", task_id="t", outcome="failed")


def test_task_views(engine: Engine) -> None:
    # Session s1 (a client's task id "s1"): three turns d1, d2, d2 → one switch in two turns.
    # Session s2: d1, d1 → none. Request r9 on its own is a task graded by request id.
    rows = [
        req(
            "r1",
            T0 + 1,
            session="s1",
            task="code",
            deployment="d1",
            input_tokens=100,
            output_tokens=50,
            reasoning_tokens=10,
            cost_usd=0.5,
        ),
        req(
            "r2",
            T0 + 2,
            session="s1",
            task="code",
            deployment="d2",
            input_tokens=200,
            output_tokens=100,
            cost_usd=1.0,
        ),
        req(
            "r3",
            T0 + 3,
            session="s1",
            task="code",
            deployment="d2",
            input_tokens=100,
            output_tokens=0,
            status=500,
            error_kind="upstream_error",
            cost_usd=0.0,
        ),
        req(
            "r4",
            T0 + 4,
            session="s2",
            task="code",
            deployment="d1",
            input_tokens=50,
            output_tokens=50,
            cost_usd=0.25,
        ),
        req(
            "r5",
            T0 + 5,
            session="s2",
            task="code",
            deployment="d1",
            input_tokens=50,
            output_tokens=50,
            cost_usd=0.25,
        ),
        req("r9", T0 + 9, task="chat", deployment="d1", input_tokens=10, output_tokens=10, cost_usd=0.1),
    ]
    Writer(engine).write(rows, [])
    queries.insert_feedback(engine, task_id="s1", outcome="failed")
    queries.insert_feedback(engine, task_id="s1", outcome="completed", score=1.0)  # the latest wins
    queries.insert_feedback(engine, task_id="s2", outcome="abandoned")
    queries.insert_feedback(engine, request_id="r9", outcome="completed")

    by_task = {r.group["task"]: r for r in queries.task_costs(engine, ["task"])}
    code = by_task["code"]
    assert (code.tasks, code.completed) == (2, 1)
    assert code.cost_usd == pytest.approx(2.0)  # s1 (1.5) and s2 (0.5): failures paid for count
    assert code.cost_per_completed_task == pytest.approx(2.0)
    # useful: r1 40 + r2 100 + r4 50 + r5 50 (r3 failed) = 240; billed: 150+300+100+100+100 = 750
    assert code.token_efficiency == pytest.approx(240 / 750)
    chat = by_task["chat"]
    assert (chat.tasks, chat.completed, chat.cost_per_completed_task) == (1, 1, pytest.approx(0.1))

    per_dep = {r.group["deployment"]: r for r in queries.task_costs(engine, ["deployment"])}
    assert (per_dep["d1"].tasks, per_dep["d1"].completed) == (3, 2)  # s1, s2, r9
    assert (per_dep["d2"].tasks, per_dep["d2"].completed) == (1, 1)

    eff = {r.group["task"]: r for r in queries.token_efficiency(engine, ["task"])}
    assert eff["code"].useful_output_tokens == 240 and eff["code"].billed_tokens == 750
    assert eff["chat"].token_efficiency == pytest.approx(0.5)

    sw = {s.session: s for s in queries.session_switches(engine)}
    assert (sw["s1"].requests, sw["s1"].deployments, sw["s1"].switches) == (3, 2, 1)
    assert sw["s1"].switch_rate == pytest.approx(0.5)
    assert sw["s2"].switches == 0 and sw["s2"].switch_rate == 0.0
    freq = {
        (r.group["task"], r.group["alias"]): r for r in queries.switch_frequency(engine, ["task", "alias"])
    }
    assert (freq[("code", "a")].turns, freq[("code", "a")].switches) == (3, 1)
    assert freq[("code", "a")].sessions == 2

    with engine.connect() as conn:  # the views themselves, as docs/ledger.md shows them
        from sqlalchemy import text

        costs = conn.execute(
            text(
                "SELECT deployment, tasks, completed, cost_per_completed_task FROM ledger_task_costs "
                "WHERE task = 'code' ORDER BY deployment"
            )
        ).all()
        assert [(d, t, c) for d, t, c, _ in costs] == [("d1", 2, 1), ("d2", 1, 1)]
        assert costs[0][3] == pytest.approx(1.0)  # d1: 0.5 (s1's r1) + 0.5 (s2) over one completed
        assert costs[1][3] == pytest.approx(1.0)  # d2: r2 + r3 of s1
