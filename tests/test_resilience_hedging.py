"""Hedged requests cut the tail: the first deployment is fast except on 3% of its calls (800 ms
to first token); with hedging, a second candidate starts when the first is late, and the
first to produce a token wins. Prints p50/p99 with and without hedging (run with ``-s``).

Each run sees the same sequence of slow calls (the fault RNG restarts from its seed). Hedging
at the observed p95 needs the tail to be rarer than 5% of calls, and a warm-up (the p95 needs
20 observations first).
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from resilience_harness import (
    AUTH,
    FaultInjector,
    Server,
    async_client,
    chat,
    document,
    gateway,
    percentile,
    provider,
    records,
)
from switchpoint.config import Price
from switchpoint.pricing import cost_usd
from switchpoint.simulator import Behavior, SimConfig, create_app

N = 200
WARMUP = 60
CONCURRENCY = 8
SLOW_MS = 800
TAIL = 0.03
PRICE = {"input": 3.0, "output": 15.0}

Sim = tuple[str, FaultInjector]


def slow_tail(n: int, rng: random.Random) -> dict[str, str]:
    return {"x-sim-ttft-ms": str(SLOW_MS)} if rng.random() < TAIL else {}


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    app = create_app(SimConfig(models={"tail": Behavior(ttft_ms=10), "steady": Behavior(ttft_ms=30)}))
    injector = FaultInjector(app, {"tail": slow_tail}, seed=3)
    with Server(injector) as server:
        yield server.url, injector


def _doc(sim_url: str, hedging: dict[str, Any] | None) -> dict[str, Any]:
    return document(
        {"p-tail": provider(sim_url, "openai", "tail"), "p-steady": provider(sim_url, "anthropic")},
        {
            "d-tail": {"provider": "p-tail", "model": "tail", "price": PRICE},
            "d-steady": {"provider": "p-steady", "model": "steady", "price": PRICE},
        },
        {"hedged": ["d-tail", "d-steady"]},
        resilience={"hedging": hedging} if hedging else {},
    )


async def _latencies(url: str, n: int) -> list[float]:
    gate = asyncio.Semaphore(CONCURRENCY)
    out: list[float] = []
    async with async_client(url, connections=CONCURRENCY) as client:

        async def one(i: int) -> None:
            async with gate:
                t0 = time.perf_counter()
                body = chat(f"hedge me {i}", "hedged", stream=True)
                async with client.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as r:
                    lines = [line async for line in r.aiter_lines()]
                assert r.status_code == 200 and "data: [DONE]" in lines
                out.append((time.perf_counter() - t0) * 1000.0)

        await asyncio.gather(*(one(i) for i in range(n)))
    return out


async def _run(
    sim: Sim, hedging: dict[str, Any] | None, warmup: int = 0
) -> tuple[list[float], list[Any], int]:
    sim_url, injector = sim
    injector.restart()
    # A tail-latency measurement: collect what earlier tests left now, not during the run
    # (with coverage on, a full collection of the suite's heap pauses every server thread).
    gc.collect()
    with gateway(_doc(sim_url, hedging)) as (url, gw, _):
        if warmup:
            await _latencies(url, warmup)
        hedges_before = gw.executor.stats.hedges
        lat = await _latencies(url, N)
        recs = await asyncio.to_thread(records, url, gw)
        return lat, recs, gw.executor.stats.hedges - hedges_before


async def test_hedging_cuts_p99_when_one_deployment_has_a_slow_tail(sim: Sim) -> None:
    plain, _, _ = await _run(sim, None)
    fixed, recs, fixed_hedges = await _run(sim, {"enabled": True, "delay_ms": 100})
    p95_mode, _, p95_hedges = await _run(sim, {"enabled": True}, warmup=WARMUP)
    rows = [
        ("no hedging", plain, 0),
        ("hedge at 100 ms", fixed, fixed_hedges),
        ("hedge at p95 TTFT", p95_mode, p95_hedges),
    ]
    print(
        f"\n== hedging: {N} streamed requests each; {TAIL:.0%} of first-candidate calls take {SLOW_MS} ms to first token"
    )
    for name, lat, hedges in rows:
        print(
            f"   {name:<18} p50 {percentile(lat, 50):6.1f} ms   p99 {percentile(lat, 99):6.1f} ms   hedges {hedges}"
        )
    assert percentile(plain, 99) >= SLOW_MS, "without hedging the slow tail shows at p99"
    for name, lat, hedges in rows[1:]:
        assert hedges > 0, name
        assert percentile(lat, 99) < percentile(plain, 99) / 2, name
        # hedging must not make the typical request much slower (headroom for a loaded 2-core machine)
        assert percentile(lat, 50) < percentile(plain, 50) * 2 + 40, name

    hedged = [r for r in recs if len(r.attempts) == 2]
    assert hedged, "hedged requests keep both attempts"
    rate = Price(input=3.0, cached_input=3.0, cache_write=3.0, output=15.0, reasoning=15.0)
    for r in hedged:
        assert r.status == 200
        won = [a for a in r.attempts if a.error is None]
        lost = [a for a in r.attempts if a.error == "hedge_lost"]
        assert len(won) == 1 and len(lost) == 1 and won[0].deployment == r.deployment
        assert lost[0].latency_ms > 0
        assert lost[0].usage is not None and cost_usd(lost[0].usage, rate) > 0, "the loser is priced"
