"""The routing decision in the ledger: stored in its compact form, and the trace rebuilt when read
(``store.route_form.expand``) equals ``Decision.trace()`` exactly, through JSON and through the
database (``queries.request``, the console's ``routes``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from switchpoint.accounting import Booked
from switchpoint.accounting.ledger import Ledger
from switchpoint.accounting.route_form import compact
from switchpoint.canonical import ChatRequest, Message, TextPart
from switchpoint.config import Config, ExecutionOptions, Hedging, RetryPolicy, Storage, Timeouts, parse
from switchpoint.pricing import Cost
from switchpoint.records import Attempt, RequestRecord
from switchpoint.routing import Router
from switchpoint.routing.explain import Candidate, Decision
from switchpoint.store import console_queries, queries
from switchpoint.store.engine import make_engine
from switchpoint.store.route_form import expand

from store_db import db_url

__all__ = ["db_url"]

BASE = "http://127.0.0.1:9"


def config() -> Config:
    return parse(
        {
            "providers": {
                "p-openai": {"family": "openai", "base_url": f"{BASE}/v1"},
                "p-anthropic": {"family": "anthropic", "base_url": BASE},
            },
            "deployments": {
                "a": {"provider": "p-openai", "model": "m-a", "price": {"input": 1, "output": 2}},
                "b": {"provider": "p-anthropic", "model": "m-b", "price": {"input": 3, "output": 15}},
            },
            "models": {"trio": ["a", "b"]},
        },
        env={},
    )


def decisions() -> list[Decision]:
    cfg = config()
    a, b = cfg.deployments["a"], cfg.deployments["b"]
    req = ChatRequest(model="trio", messages=[Message(role="user", parts=[TextPart(text="hello there")])])
    routed = Router(cfg).route(req, principal="master")
    return [
        routed,  # what the router gives a plain alias
        Decision(model="direct", candidates=(Candidate(deployment=a, reason="direct"),)),
        Decision(
            model="smart",
            candidates=(
                Candidate(deployment=b, reason="cheapest healthy", cost_usd=0.000123456789, healthy=True),
                Candidate(deployment=a, reason="fallback", cost_usd=None, healthy=False),
            ),
            skipped=(("c", "context window 8k < 9k"), ("d", "no tools")),
            options=ExecutionOptions(
                timeouts=Timeouts(ttft_s=2.5),
                retry=RetryPolicy(attempts=2, deadline_s=30.0),
                hedging=Hedging(enabled=True, delay_ms=400.0),
            ),
            rule="code",
            task="code",
            task_source="semantic",
            task_score=0.7312345,
            strategy="cost_under_constraint",
            presets=("top_p", "max_tokens"),
            trimmed="dropped 3 turns",
            prompt_tokens=9120,
            tokens_exact=True,
            output_tokens=512,
            session="s-ü-1",
            affinity="kept on b",
            currency=("CNY", 7.1234),
            tags=("team=ml",),
        ),
        Decision(model="m", candidates=(), session="s", affinity=None, options=ExecutionOptions()),
    ]


def stored(d: Decision) -> str:
    return msgspec.json.encode(compact(d)).decode()


def through_json(d: Decision) -> Any:
    """The trace as a reader got it before the compact form: ``trace()`` through JSON."""
    return json.loads(msgspec.json.encode(d.trace()))


@pytest.mark.parametrize("i", range(4))
def test_the_trace_rebuilt_from_the_stored_form_equals_the_decisions_own(i: int) -> None:
    d = decisions()[i]
    assert expand(stored(d)) == through_json(d)
    assert expand(json.loads(stored(d))) == through_json(d)  # a JSON column reads back decoded


def test_a_stored_trace_is_read_as_it_is_and_garbage_as_none() -> None:
    trace = {"model": "smart", "rule": "code", "candidates": []}
    assert expand(json.dumps(trace)) == trace
    assert expand(trace) == trace
    assert expand(None) is None
    assert expand("not json") is None
    assert expand("[99, 1]") is None


def test_the_compact_form_is_smaller_than_the_trace() -> None:
    d = decisions()[2]
    assert len(stored(d)) < 0.6 * len(msgspec.json.encode(d.trace()))


def record(i: int, d: Decision) -> Booked:
    names = [c.deployment.name for c in d.candidates] or ["a"]
    r = RequestRecord(
        request_id=f"r-{i}",
        started_at=1_800_000_000.0 + i,
        dialect="openai",
        endpoint="chat.completions",
        model=d.model,
        status=200,
        latency_ms=10.0,
        deployment=names[0],
        attempts=(Attempt(deployment=names[0], provider="p", family="openai", status=200, latency_ms=9.0),),
        decision=d,
    )
    return Booked(record=r, cost=Cost(), attempt_costs=(Cost(),), price_version="pv")


async def test_the_ledger_stores_the_compact_form_and_reads_give_the_trace(
    db_url: str, tmp_path: Path
) -> None:
    cfg = config()
    lg = Ledger(
        Storage(flush_interval_ms=20, spill_path=str(tmp_path / "spill.jsonl")),
        db_url,
        instance="test:1",
        deployments=cfg.deployments,
    )
    lg.start()
    ds = decisions()
    lg.write([record(i, d) for i, d in enumerate(ds)])
    await lg.close()
    engine = make_engine(db_url)
    try:
        for i, d in enumerate(ds):
            found = queries.request(engine, f"r-{i}")
            assert found is not None and found["route"] == through_json(d)
        routed = {r.request_id: r.route for r in console_queries.routes(engine, None, None)}
        assert routed == {f"r-{i}": through_json(d) for i, d in enumerate(ds)}
    finally:
        engine.dispose()
