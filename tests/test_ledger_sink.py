"""The ledger sink: booked records become rows (every column), written off the loop in batches;
a full buffer spills to a file that is replayed; a database that is down fails no request and
loses nothing; bodies are kept only when asked, redacted; retention prunes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from switchpoint.accounting import Booked
from switchpoint.accounting.ledger import Ledger, Redactor
from switchpoint.canonical import Usage
from switchpoint.config import Storage
from switchpoint.pricing import Cost
from switchpoint.records import Attempt, RequestRecord
from switchpoint.store import migrate, tables
from switchpoint.store.engine import make_engine

from store_db import db_url, rows, scalar

__all__ = ["db_url"]

SECRET = "sk-live-abcdefghijklmnopqrstuvwxyz0123"


class Trace:
    def trace(self) -> dict[str, Any]:
        return {"model": "smart", "rule": "code", "candidates": [{"deployment": "b"}, {"deployment": "a"}]}


def record(i: int, **over: Any) -> RequestRecord:
    usage = Usage(
        input_tokens=1000,
        cached_input_tokens=200,
        cache_write_tokens=150,
        cache_write_1h_tokens=50,
        output_tokens=300,
        reasoning_tokens=30,
    )
    values: dict[str, Any] = {
        "request_id": f"r-{i}",
        "started_at": 1_800_000_000.5 + i,
        "dialect": "anthropic",
        "endpoint": "messages",
        "model": "smart",
        "deployment": "b",
        "stream": True,
        "status": 200,
        "latency_ms": 321.0,
        "ttft_ms": 45.0,
        "usage": usage,
        "attempts": (
            Attempt(
                deployment="a",
                provider="pa",
                family="openai",
                status=503,
                error="unavailable",
                error_message=f"upstream said: bad key {SECRET}",
                latency_ms=10.0,
            ),
            Attempt(
                deployment="a",
                provider="pa",
                family="openai",
                status=503,
                error="unavailable",
                latency_ms=11.0,
                offset_ms=20.0,
            ),
            Attempt(
                deployment="b",
                provider="pb",
                family="anthropic",
                status=200,
                latency_ms=290.0,
                ttft_ms=40.0,
                usage=usage,
                offset_ms=31.0,
            ),
            Attempt(
                deployment="c",
                provider="pc",
                family="gemini",
                error="cancelled",
                latency_ms=5.0,
                offset_ms=250.0,
                hedge=True,
            ),
        ),
        "decision": Trace(),
        "key_id": "k-1",
        "team": "t-1",
        "end_user": "u-1",
        "task": "code",
        "session": "s-1",
        "tags": ("x", "y"),
        "cached": False,
        "batch": True,
        "request_body": f'{{"messages": [{{"content": "my key is {SECRET} and card 4111-1111"}}]}}'.encode(),
        "response_body": b'{"content": "ok 4111-1111"}',
    }
    values.update(over)
    return RequestRecord(**values)


COST = Cost(
    input=0.1, cached_input=0.01, cache_write_5m=0.02, cache_write_1h=0.03, output=0.4, reasoning=0.05
)


def booked(i: int, **over: Any) -> Booked:
    r = record(i, **over)
    costs = tuple(COST if a.usage is not None else Cost() for a in r.attempts)
    return Booked(record=r, cost=COST, attempt_costs=costs, price_version="pv-1")


def storage(tmp_path: Path, **over: Any) -> Storage:
    values: dict[str, Any] = {"flush_interval_ms": 20, "spill_path": str(tmp_path / "spill.jsonl")}
    values.update(over)
    return Storage(**values)


def ledger(
    url: str, tmp_path: Path, *, instance: str = "test:1", migrate: bool = True, **over: Any
) -> Ledger:
    from switchpoint.config import parse

    cfg = parse(
        {
            "providers": {
                "pb": {"family": "anthropic", "base_url": "http://127.0.0.1:9", "api_key": "env:K"}
            },
            "deployments": {"b": {"provider": "pb", "model": "claude-upstream"}},
            "models": {"smart": "b"},
        },
        env={"K": SECRET},
    )
    return Ledger(
        storage(tmp_path, **over),
        url,
        instance=instance,
        deployments=cfg.deployments,
        secrets=[SECRET],
        migrate=migrate,
    )


async def test_a_booked_record_becomes_one_request_row_and_one_row_per_attempt(
    db_url: str, tmp_path: Path
) -> None:
    lg = ledger(db_url, tmp_path, store_bodies=True, redact=[r"\d{4}-\d{4}"])
    lg.start()
    lg.write([booked(1)])
    await lg.close()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        req = dict(conn.execute(select(tables.requests)).mappings().one())
        atts = [
            dict(a) for a in conn.execute(select(tables.attempts).order_by(tables.attempts.c.seq)).mappings()
        ]
    engine.dispose()
    assert req == {
        "request_id": "r-1",
        "started_at": 1_800_000_001.5,
        "instance": "test:1",
        "dialect": "anthropic",
        "endpoint": "messages",
        "alias": "smart",
        "deployment": "b",
        "provider": "pb",
        "upstream_model": "claude-upstream",
        "key_id": "k-1",
        "team": "t-1",
        "end_user": "u-1",
        "task": "code",
        "session": "s-1",
        "tags": '["x","y"]',
        "stream": True,
        "status": 200,
        "error_kind": None,
        "latency_ms": 321.0,
        "ttft_ms": 45.0,
        "input_tokens": 1000,
        "cached_input_tokens": 200,
        "cache_write_5m_tokens": 100,
        "cache_write_1h_tokens": 50,
        "output_tokens": 300,
        "reasoning_tokens": 30,
        "cost_input": 0.1,
        "cost_cached_input": 0.01,
        "cost_cache_write_5m": 0.02,
        "cost_cache_write_1h": 0.03,
        "cost_output": 0.4,
        "cost_reasoning": 0.05,
        "cost_usd": pytest.approx(COST.total),
        "saved_usd": 0.0,
        "attempts": 4,
        "retries": 1,
        "failovers": 1,
        "hedges": 1,
        "cached": False,
        "batch": True,
        "price_version": "pv-1",
        "route": Trace().trace(),
        "request_body": '{"messages": [{"content": "my key is [REDACTED] and card [REDACTED]"}]}',
        "response_body": '{"content": "ok [REDACTED]"}',
        "audio_seconds": None,  # the units of the audio and image endpoints
        "characters": None,
        "images": None,
    }
    assert [(a["seq"], a["deployment"], a["status"], a["error_kind"], a["hedge"]) for a in atts] == [
        (0, "a", 503, "unavailable", False),
        (1, "a", 503, "unavailable", False),
        (2, "b", 200, None, False),
        (3, "c", None, "cancelled", True),
    ]
    assert atts[0]["error_message"] == "upstream said: bad key [REDACTED]"
    assert [a["offset_ms"] for a in atts] == [0.0, 20.0, 31.0, 250.0]
    assert atts[2]["started_at"] == pytest.approx(1_800_000_001.5 + 0.031)
    assert (atts[2]["input_tokens"], atts[2]["cache_write_5m_tokens"], atts[2]["cost_usd"]) == (
        1000,
        100,
        pytest.approx(COST.total),
    )
    assert atts[0]["input_tokens"] is None and atts[0]["cost_usd"] == 0.0


async def test_bodies_are_not_stored_unless_asked(db_url: str, tmp_path: Path) -> None:
    lg = ledger(db_url, tmp_path)
    lg.start()
    lg.write([booked(1)])
    await lg.close()
    engine = make_engine(db_url)
    assert rows(engine, "SELECT request_body, response_body FROM requests") == [
        {"request_body": None, "response_body": None}
    ]
    engine.dispose()


async def test_batches_are_written_every_flush_interval_without_close(db_url: str, tmp_path: Path) -> None:
    lg = ledger(db_url, tmp_path, flush_interval_ms=50)
    lg.start()
    engine = make_engine(db_url)
    try:
        lg.write([booked(i) for i in range(5)])
        deadline = time.monotonic() + 5
        while scalar(engine, "SELECT count(*) FROM requests") < 5:
            assert time.monotonic() < deadline, "the writer flushed on its interval"
            await asyncio.sleep(0.02)
        assert lg.stats()["written"] == 5
    finally:
        await lg.close()
        engine.dispose()


async def test_records_that_arrive_during_a_write_wait_for_a_full_batch_or_the_interval(
    tmp_path: Path,
) -> None:
    """A full batch is written at once; what arrives while it is written is not chased with
    small batches (each a commit and slower inserts) but goes in one batch at the interval's
    end, so no record waits longer than one flush interval."""
    lg = ledger(f"sqlite:///{tmp_path / 'l.db'}", tmp_path, flush_interval_ms=600, flush_rows=100)
    sizes: list[tuple[int, float]] = []
    write = lg._writer.write

    def slow_write(requests: Any, attempts: Any) -> None:
        sizes.append((len(requests), time.monotonic()))
        time.sleep(0.05)
        write(requests, attempts)

    lg._writer.write = slow_write  # type: ignore[method-assign]
    lg.start()
    try:
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        lg.write([booked(i) for i in range(100)])  # a full batch: written now
        for i in range(100, 130):  # trickling in while it is written
            await asyncio.sleep(0.005)
            lg.write([booked(i)])
        deadline = time.monotonic() + 5
        while lg.stats()["written"] < 130:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert [n for n, _ in sizes] == [100, 30]
        assert sizes[0][1] - t0 < 0.3  # the full batch did not wait for the interval
        assert sizes[1][1] - t0 < 0.6 + 0.3  # the rest waited one interval at most
    finally:
        await lg.close()


async def test_a_full_buffer_spills_to_the_file_which_is_replayed_on_start(
    db_url: str, tmp_path: Path
) -> None:
    lg = ledger(db_url, tmp_path, buffer_rows=10)
    # not started: nothing drains the buffer, as when the database is slow
    lg.write([booked(i) for i in range(10)])
    deadline = time.monotonic() + 5
    for start in (10, 15, 20):  # over the limit: these spill (a backlog of up to buffer_rows)
        lg.write([booked(i) for i in range(start, start + 5)])
        while lg.stats()["spilled"] < start - 5:
            assert time.monotonic() < deadline, "the overflow was spilled"
            await asyncio.sleep(0.01)
    spill = tmp_path / "spill.jsonl"
    assert len(spill.read_bytes().splitlines()) == 15
    assert lg.stats()["dropped"] == 0
    assert len(lg._buffer) == 10  # the buffer itself stayed within its bound
    lg.start()  # replays the spill file first, then writes the buffer
    await lg.close()
    engine = make_engine(db_url)
    assert scalar(engine, "SELECT count(*) FROM requests") == 25
    assert scalar(engine, "SELECT count(*) FROM attempts") == 100
    assert scalar(engine, "SELECT requests FROM usage_totals") == 25
    engine.dispose()
    assert lg.stats()["replayed"] == 15
    assert not spill.exists()


async def test_a_spill_file_left_by_a_dead_process_is_replayed_by_the_next(
    db_url: str, tmp_path: Path
) -> None:
    first = ledger(db_url, tmp_path, buffer_rows=2)
    first.write([booked(0), booked(1)])
    first.write([booked(2), booked(3)])  # spilled
    deadline = time.monotonic() + 5
    while first.stats()["spilled"] < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    # the first process dies here (its buffer, r-0 and r-1, is lost); the next one starts
    second = ledger(db_url, tmp_path)
    second.start()
    await second.close()
    engine = make_engine(db_url)
    assert {r["request_id"] for r in rows(engine, "SELECT request_id FROM requests")} == {"r-2", "r-3"}
    engine.dispose()
    await first.close()


async def test_a_database_that_fails_loses_nothing_and_catches_up_when_it_recovers(
    db_url: str, tmp_path: Path
) -> None:
    # the tables are missing: every write fails, as with a database that is down
    lg = ledger(db_url, tmp_path, migrate=False)
    lg.start()
    lg.write([booked(i) for i in range(4)])
    deadline = time.monotonic() + 5
    while lg.stats()["spilled"] < 4:
        assert time.monotonic() < deadline, "a failed batch went to the spill file"
        await asyncio.sleep(0.01)
    assert not lg.stats()["database_ok"]
    lg.write([booked(i) for i in range(4, 6)])  # accepted at once, whatever the database does
    migrate.upgrade(db_url)  # the database is back
    engine = make_engine(db_url)
    try:
        deadline = time.monotonic() + 15
        while scalar(engine, "SELECT count(*) FROM requests") < 6:
            assert time.monotonic() < deadline, "the writer retried and replayed the spill file"
            await asyncio.sleep(0.05)
        await lg.close()
        assert scalar(engine, "SELECT count(*) FROM requests") == 6
        assert scalar(engine, "SELECT requests FROM usage_totals") == 6
        assert lg.stats()["database_ok"] and lg.stats()["dropped"] == 0
    finally:
        engine.dispose()


async def test_an_unreachable_database_at_shutdown_spills_everything(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none"  # nothing listens on port 1
    lg = ledger(url, tmp_path, migrate=False)
    lg.start()
    lg.write([booked(i) for i in range(3)])
    await lg.close()
    lines = (tmp_path / "spill.jsonl").read_bytes().splitlines()
    assert sorted(json.loads(line)[0][0] for line in lines) == ["r-0", "r-1", "r-2"]


async def test_two_ledgers_on_one_database_keep_their_own_totals(db_url: str, tmp_path: Path) -> None:
    a = ledger(db_url, tmp_path, instance="host:1", spill_path=str(tmp_path / "a.jsonl"))
    b = ledger(db_url, tmp_path, instance="host:2", spill_path=str(tmp_path / "b.jsonl"))
    a.start()
    b.start()
    for i in range(0, 60, 3):
        a.write([booked(i), booked(i + 1)])
        b.write([booked(i + 2)])
        await asyncio.sleep(0.005)
    await a.close()
    await b.close()
    engine = make_engine(db_url)
    got = {r["instance"]: r["requests"] for r in rows(engine, "SELECT instance, requests FROM usage_totals")}
    assert got == {"host:1": 40, "host:2": 20}
    assert scalar(engine, "SELECT sum(output_tokens) FROM usage_totals") == 60 * 300
    engine.dispose()


async def test_retention_prunes_old_requests(db_url: str, tmp_path: Path) -> None:
    now = time.time()
    lg = ledger(db_url, tmp_path, retention_days=7)
    lg.write([booked(i, started_at=now - 30 * 86400) for i in range(3)] + [booked(9, started_at=now)])
    lg.start()  # writes the batch, then prunes (the first prune runs at once)
    engine = make_engine(db_url)
    try:
        deadline = time.monotonic() + 5
        while scalar(engine, "SELECT count(*) FROM requests") != 1:
            assert time.monotonic() < deadline, "the old requests were pruned"
            await asyncio.sleep(0.02)
        assert rows(engine, "SELECT request_id FROM requests") == [{"request_id": "r-9"}]
        assert scalar(engine, "SELECT count(*) FROM attempts") == 4
        assert scalar(engine, "SELECT requests FROM usage_totals") == 4
    finally:
        await lg.close()
        engine.dispose()


def test_the_redactor_scrubs_known_secrets_key_shapes_and_configured_patterns() -> None:
    red = Redactor([r"(?i)password=\S+"], secrets=["my-master-key-123"])
    text = (
        "Authorization: Bearer abc.def-ghi my-master-key-123 sk-ant-api03-xxxxxxxxxxxxxxxx PASSWORD=hunter2"
    )
    assert red(text) == "Authorization: [REDACTED] [REDACTED] [REDACTED] [REDACTED]"


async def test_a_spill_file_from_before_saved_usd_is_replayed(db_url: str, tmp_path: Path) -> None:
    """Rows spilled by a gateway older than migration 0005 lack saved_usd: replayed as NULL."""
    import msgspec

    from switchpoint.store import tables

    first = ledger(db_url, tmp_path, buffer_rows=2)
    first.write([booked(0), booked(1)])
    first.write([booked(2), booked(3)])  # spilled
    deadline = time.monotonic() + 5
    while first.stats()["spilled"] < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    spill = tmp_path / "spill.jsonl"
    at = tables.REQUEST_COLUMNS.index("saved_usd")
    old = []
    for line in spill.read_bytes().splitlines():
        row, attempts = msgspec.json.decode(line)
        old.append(msgspec.json.encode([row[:at] + row[at + 1 :], attempts]))
    spill.write_bytes(b"\n".join(old) + b"\n")
    second = ledger(db_url, tmp_path)
    second.start()
    await second.close()
    engine = make_engine(db_url)
    try:
        assert scalar(engine, "SELECT count(*) FROM requests WHERE saved_usd IS NULL") == 2
    finally:
        engine.dispose()
    assert second.stats()["replayed"] == 2 and not spill.exists()
