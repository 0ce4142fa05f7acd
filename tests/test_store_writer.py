"""The store's writer: rows in, every column back out; totals and histogram counts upserted in the
same transaction, summed across batches and across writers; retention pruning."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from switchpoint.store import migrate, tables
from switchpoint.store.engine import make_engine
from switchpoint.store.writer import Writer, aggregate

from store_db import db_url, rows, scalar

__all__ = ["db_url"]


def request_row(i: int, **over: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "request_id": f"req-{i}",
        "started_at": 1_700_000_000.25 + i,
        "instance": "host:1",
        "dialect": "anthropic",
        "endpoint": "messages",
        "alias": "smart",
        "deployment": "claude",
        "provider": "anthropic",
        "upstream_model": "claude-sonnet-4-5",
        "key_id": "key-1",
        "team": "team-a",
        "end_user": "user-9",
        "task": "code",
        "session": "sess-1",
        "tags": '["a", "b"]',
        "stream": True,
        "status": 200,
        "error_kind": None,
        "latency_ms": 120.5,
        "ttft_ms": 40.25,
        "input_tokens": 1000,
        "cached_input_tokens": 200,
        "cache_write_5m_tokens": 100,
        "cache_write_1h_tokens": 50,
        "output_tokens": 300,
        "reasoning_tokens": 30,
        "cost_input": 0.00195,
        "cost_cached_input": 0.00006,
        "cost_cache_write_5m": 0.000375,
        "cost_cache_write_1h": 0.0003,
        "cost_output": 0.00405,
        "cost_reasoning": 0.00045,
        "cost_usd": 0.007185,
        "saved_usd": 0.0012,
        "attempts": 2,
        "retries": 1,
        "failovers": 0,
        "hedges": 0,
        "cached": False,
        "batch": True,
        "price_version": "2026-11-01",
        "route": '{"model": "smart", "candidates": [{"deployment": "claude"}]}',
        "request_body": '{"messages": []}',
        "response_body": '{"content": []}',
        "audio_seconds": None,
        "characters": None,
        "images": None,
    }
    values.update(over)
    assert set(values) == set(tables.REQUEST_COLUMNS)
    return tuple(values[c] for c in tables.REQUEST_COLUMNS)


def attempt_row(i: int, seq: int, **over: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "request_id": f"req-{i}",
        "seq": seq,
        "started_at": 1_700_000_000.25 + i + seq,
        "offset_ms": 1000.0 * seq,
        "deployment": "claude",
        "provider": "anthropic",
        "family": "anthropic",
        "status": 529 if seq == 0 else 200,
        "error_kind": "overloaded" if seq == 0 else None,
        "error_message": "Overloaded" if seq == 0 else None,
        "latency_ms": 50.0,
        "ttft_ms": None if seq == 0 else 40.0,
        "hedge": False,
        "input_tokens": None if seq == 0 else 1000,
        "cached_input_tokens": None if seq == 0 else 200,
        "cache_write_5m_tokens": None if seq == 0 else 100,
        "cache_write_1h_tokens": None if seq == 0 else 50,
        "output_tokens": None if seq == 0 else 300,
        "reasoning_tokens": None if seq == 0 else 30,
        "cost_usd": 0.0 if seq == 0 else 0.007185,
    }
    values.update(over)
    assert set(values) == set(tables.ATTEMPT_COLUMNS)
    return tuple(values[c] for c in tables.ATTEMPT_COLUMNS)


@pytest.fixture
def writer(db_url: str) -> Any:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    yield Writer(engine)
    engine.dispose()


def test_every_request_and_attempt_column_round_trips(writer: Writer) -> None:
    writer.write([request_row(1)], [attempt_row(1, 0), attempt_row(1, 1)])
    with writer.engine.connect() as conn:
        back = conn.execute(select(tables.requests)).mappings().one()
        attempts = conn.execute(select(tables.attempts).order_by(tables.attempts.c.seq)).mappings().all()
    want = dict(zip(tables.REQUEST_COLUMNS, request_row(1), strict=True))
    want["route"] = {"model": "smart", "candidates": [{"deployment": "claude"}]}  # JSON, read back
    assert dict(back) == want
    assert [dict(a) for a in attempts] == [
        dict(zip(tables.ATTEMPT_COLUMNS, attempt_row(1, s), strict=True)) for s in (0, 1)
    ]


def test_totals_and_buckets_sum_across_batches(writer: Writer) -> None:
    writer.write([request_row(i) for i in range(3)], [])
    writer.write(
        [
            request_row(
                3, status=529, error_kind="overloaded", deployment=None, ttft_ms=None, latency_ms=7000.0
            ),
            request_row(4),
        ],
        [],
    )
    totals = rows(writer.engine, "SELECT * FROM usage_totals ORDER BY status")
    assert len(totals) == 2
    ok, failed = totals
    assert (ok["deployment"], ok["alias"], ok["status"], ok["error_kind"]) == ("claude", "smart", 200, "")
    assert ok["requests"] == 4
    assert ok["input_tokens"] == 4000 and ok["cached_input_tokens"] == 800
    assert ok["cache_write_5m_tokens"] == 400 and ok["cache_write_1h_tokens"] == 200
    assert ok["output_tokens"] == 1200 and ok["reasoning_tokens"] == 120
    assert ok["cost_usd"] == pytest.approx(4 * 0.007185)
    assert ok["latency_ms_sum"] == pytest.approx(4 * 120.5)
    assert ok["ttft_ms_sum"] == pytest.approx(4 * 40.25) and ok["ttft_count"] == 4
    assert (failed["deployment"], failed["error_kind"], failed["requests"], failed["ttft_count"]) == (
        "",
        "overloaded",
        1,
        0,
    )
    buckets = {
        (b["metric"], b["deployment"], b["le"]): b["count"]
        for b in rows(writer.engine, "SELECT * FROM latency_buckets")
    }
    # 120.5 ms falls in (0.1, 0.25]; 40.25 ms in (0.025, 0.05]; 7 s in (5, 10]
    assert buckets == {("latency", "claude", 0.25): 4, ("ttft", "claude", 0.05): 4, ("latency", "", 10.0): 1}


def test_the_histogram_has_an_infinite_bucket() -> None:
    _, buckets = aggregate([request_row(1, latency_ms=61_000.0, ttft_ms=0.0)])
    les = sorted(b[4] for b in buckets)
    assert les == [0.005, tables.INF]


def _reference_aggregate(batch: list[tuple[Any, ...]]) -> tuple[list[Any], list[Any]]:
    """Totals and histogram counts the plain way: one row at a time, column by column."""
    idx = {name: i for i, name in enumerate(tables.REQUEST_COLUMNS)}
    bounds = (*tables.BUCKETS, tables.INF)

    def le(ms: float) -> float:
        return next(b for b in bounds if ms / 1000.0 <= b)

    totals: dict[tuple[Any, ...], list[Any]] = {}
    buckets: dict[tuple[Any, ...], int] = {}
    for r in batch:
        dep = r[idx["deployment"]] or ""
        key = (
            r[idx["instance"]],
            dep,
            r[idx["alias"]],
            r[idx["status"]],
            r[idx["error_kind"]] or "",
            r[idx["task"]] or "",
        )
        t = totals.setdefault(key, [0] * 7 + [0.0] * 4 + [0])
        t[0] += 1
        for j, name in enumerate(tables.TOKEN_COLUMNS, 1):
            t[j] += r[idx[name]] or 0
        t[7] += r[idx["cost_usd"]] or 0.0
        t[8] += r[idx["saved_usd"]] or 0.0
        lat = r[idx["latency_ms"]] or 0.0
        t[9] += lat
        b = (r[idx["instance"]], "latency", dep, r[idx["alias"]], le(lat))
        buckets[b] = buckets.get(b, 0) + 1
        ttft = r[idx["ttft_ms"]]
        if ttft is not None:
            t[10] += ttft
            t[11] += 1
            b = (r[idx["instance"]], "ttft", dep, r[idx["alias"]], le(ttft))
            buckets[b] = buckets.get(b, 0) + 1
    return [(*k, *v) for k, v in totals.items()], [(*k, n) for k, n in buckets.items()]


def test_the_batch_totals_equal_a_row_by_row_sum() -> None:
    """Random rows (NULL and empty deployments and error kinds, NULL tokens, costs and first-token
    times, latencies on and between the bucket bounds): the grouped, column-wise totals equal a
    plain row-by-row sum, key for key."""
    import random

    rng = random.Random(7)
    edges = [b * 1000.0 for b in tables.BUCKETS]
    batch = []
    for i in range(2000):
        lat = rng.choice([rng.uniform(0, 70_000), rng.choice(edges), 0.0])
        batch.append(
            request_row(
                i,
                instance=rng.choice(["h:1", "h:2"]),
                deployment=rng.choice(["claude", "gpt", None, ""]),
                alias=rng.choice(["smart", "fast"]),
                status=rng.choice([200, 429, 500]),
                error_kind=rng.choice([None, "", "rate_limited"]),
                task=rng.choice([None, "", "code", "chat"]),
                latency_ms=lat,
                ttft_ms=rng.choice([None, rng.uniform(0, 2_000), rng.choice(edges)]),
                input_tokens=rng.choice([None, 0, rng.randint(1, 10_000)]),
                output_tokens=rng.choice([None, rng.randint(1, 4_000)]),
                cost_usd=rng.choice([None, rng.uniform(0, 0.1)]),
                saved_usd=rng.choice([None, 0.0, rng.uniform(0, 0.01)]),
            )
        )
    totals, buckets = aggregate(batch)
    want_totals, want_buckets = _reference_aggregate(batch)
    assert len(totals) == len(want_totals) and len(buckets) == len(want_buckets)
    got = {t[:6]: t[6:] for t in totals}
    for t in want_totals:
        g = got[t[:6]]
        assert g[:7] == t[6:13] and g[-1] == t[-1]  # counts and tokens exactly
        assert g[7:11] == pytest.approx(t[13:17], rel=1e-9, abs=1e-12)  # float sums, any order
    assert sorted(buckets) == sorted(want_buckets)


def test_two_writers_on_one_database_add_up(db_url: str) -> None:
    engines = [make_engine(db_url) for _ in range(2)]
    migrate.upgrade(engines[0])
    writers = [Writer(e) for e in engines]
    per_writer, batch = 200, 20

    def run(w: int) -> None:
        for start in range(0, per_writer, batch):
            ids = range(w * per_writer + start, w * per_writer + start + batch)
            writers[w].write([request_row(i) for i in ids], [attempt_row(i, 0) for i in ids])

    threads = [threading.Thread(target=run, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert scalar(engines[0], "SELECT count(*) FROM requests") == 2 * per_writer
        assert scalar(engines[0], "SELECT count(*) FROM attempts") == 2 * per_writer
        assert scalar(engines[0], "SELECT requests FROM usage_totals") == 2 * per_writer
        assert scalar(engines[0], "SELECT sum(count) FROM latency_buckets WHERE metric = 'latency'") == (
            2 * per_writer
        )
        assert scalar(engines[0], "SELECT output_tokens FROM usage_totals") == 2 * per_writer * 300
    finally:
        for e in engines:
            e.dispose()


def test_a_replay_skips_what_is_already_there_and_counts_it_once(writer: Writer) -> None:
    writer.write([request_row(i) for i in range(3)], [attempt_row(i, 0) for i in range(3)])
    writer.replay([request_row(i) for i in range(1, 5)], [attempt_row(i, 0) for i in range(1, 5)])
    assert scalar(writer.engine, "SELECT count(*) FROM requests") == 5
    assert scalar(writer.engine, "SELECT count(*) FROM attempts") == 5
    assert scalar(writer.engine, "SELECT requests FROM usage_totals") == 5


def test_prune_deletes_old_requests_attempts_and_feedback_but_keeps_the_totals(writer: Writer) -> None:
    now = time.time()
    old = [request_row(i, started_at=now - 10 * 86400) for i in range(3)]
    new = [request_row(i, started_at=now) for i in range(3, 5)]
    writer.write(old + new, [attempt_row(i, 0, started_at=now - 10 * 86400) for i in range(3)])
    with writer.engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO feedback (created_at, outcome) VALUES ({now - 10 * 86400}, 'completed'), ({now}, 'failed')"
        )
    assert writer.prune(now - 86400) == 3
    assert {r["request_id"] for r in rows(writer.engine, "SELECT request_id FROM requests")} == {
        "req-3",
        "req-4",
    }
    assert scalar(writer.engine, "SELECT count(*) FROM attempts") == 0
    assert scalar(writer.engine, "SELECT count(*) FROM feedback") == 1
    assert scalar(writer.engine, "SELECT requests FROM usage_totals") == 5


def test_a_request_id_already_in_the_ledger_does_not_fail_the_batch(writer: Writer) -> None:
    writer.write([request_row(1)], [attempt_row(1, 0)])
    # a client that sends the same x-request-id again: the batch is written, that row skipped
    writer.write([request_row(1), request_row(2)], [attempt_row(1, 0), attempt_row(2, 0)])
    assert {r["request_id"] for r in rows(writer.engine, "SELECT request_id FROM requests")} == {
        "req-1",
        "req-2",
    }
    assert scalar(writer.engine, "SELECT count(*) FROM attempts") == 2


def test_a_batch_larger_than_one_multi_row_insert_writes_every_row_once_in_order(writer: Writer) -> None:
    # SQLite inserts MULTI_ROWS rows per statement and the remainder one by one; a request id
    # already in the ledger is skipped wherever it falls
    from switchpoint.store.writer import MULTI_ROWS

    n = 2 * MULTI_ROWS + 37
    writer.write([request_row(5)], [attempt_row(5, 0)])
    reqs = [request_row(i, latency_ms=float(i)) for i in range(n)]
    atts = [attempt_row(i, seq) for i in range(n) for seq in (0, 1)]
    writer.write(reqs, atts)
    got = rows(writer.engine, "SELECT request_id, latency_ms FROM requests ORDER BY started_at")
    assert [(g["request_id"], g["latency_ms"]) for g in got] == [
        (f"req-{i}", 120.5 if i == 5 else float(i)) for i in range(n)
    ]
    assert scalar(writer.engine, "SELECT COUNT(*) FROM attempts") == 2 * n  # req-5: seq 0 kept, seq 1 added
    assert scalar(writer.engine, "SELECT SUM(requests) FROM usage_totals") == n + 1


def test_rows_with_different_nulls_in_one_batch_read_back_exactly_as_written(writer: Writer) -> None:
    # SQLite names only the columns some row of the batch sets (the others take their DEFAULT,
    # NULL): a column NULL in every row, in some rows, in none, across full multi-row chunks and
    # the remainder, and a batch where every column is set; all read back as written
    import json

    from switchpoint.store.writer import MULTI_ROWS

    def req(i: int) -> tuple[Any, ...]:
        over: dict[str, Any] = {"request_body": None, "response_body": None, "tags": None}  # all rows
        if i % 2:
            over["ttft_ms"] = None
        if i % 3 == 0:
            over.update(key_id=None, team=None, route=None)
        if i % 7 == 0:
            over.update(
                status=529, error_kind="overloaded", deployment=None, provider=None, input_tokens=None
            )
        if i == 11:
            over.update(audio_seconds=2.5)  # set in one row only
        return request_row(i, **over)

    def att(i: int, seq: int) -> tuple[Any, ...]:
        return attempt_row(i, seq, **({"provider": None, "family": None} if i % 5 == 0 else {}))

    n = 2 * MULTI_ROWS + 37
    reqs = [req(i) for i in range(n)]
    atts = [att(i, seq) for i in range(n) for seq in (0, 1)]
    writer.write(reqs, atts)
    every = [request_row(i, audio_seconds=1.0, characters=2, images=3, error_kind="x") for i in (n, n + 1)]
    writer.write(every, [attempt_row(n, 0, error_kind="x", error_message="m", ttft_ms=1.0, input_tokens=1)])
    few = [req(i) for i in range(n + 2, n + 9)]  # fewer rows than one multi-row INSERT
    writer.write(few, [att(i, 0) for i in range(n + 2, n + 9)])

    def want(row: tuple[Any, ...]) -> dict[str, Any]:
        d = dict(zip(tables.REQUEST_COLUMNS, row, strict=True))
        d["route"] = None if d["route"] is None else json.loads(d["route"])
        return d

    with writer.engine.connect() as conn:
        got = conn.execute(select(tables.requests).order_by(tables.requests.c.started_at)).mappings().all()
        got_atts = (
            conn.execute(
                select(tables.attempts).order_by(tables.attempts.c.request_id, tables.attempts.c.seq)
            )
            .mappings()
            .all()
        )
    assert [dict(g) for g in got] == [want(r) for r in [*reqs, *every, *few]]
    all_atts = [*atts, attempt_row(n, 0, error_kind="x", error_message="m", ttft_ms=1.0, input_tokens=1)]
    all_atts += [att(i, 0) for i in range(n + 2, n + 9)]
    assert [dict(a) for a in got_atts] == sorted(
        (dict(zip(tables.ATTEMPT_COLUMNS, a, strict=True)) for a in all_atts),
        key=lambda a: (a["request_id"], a["seq"]),
    )
    # NULL in the database, not an empty value
    total = n + 9
    assert scalar(writer.engine, "SELECT COUNT(*) FROM requests WHERE request_body IS NULL") == total - 2
    assert scalar(writer.engine, "SELECT COUNT(*) FROM requests WHERE ttft_ms IS NULL") == sum(
        1 for r in [*reqs, *every, *few] if r[tables.REQUEST_COLUMNS.index("ttft_ms")] is None
    )
    assert scalar(writer.engine, "SELECT COUNT(*) FROM requests WHERE audio_seconds IS NOT NULL") == 3
