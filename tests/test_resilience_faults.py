"""Fault injection: 30% of upstream calls fail (5xx, 429, connection resets) on each of three
deployments (one per wire family); 1,000 client requests, half of them streamed.

Proves: ≥ 99.9% of client requests succeed; no streamed answer is duplicated or interleaved
(each equals the deployment's clean answer, byte for byte); every attempt is in the request
record. Prints the retry and failover counts (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
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
from switchpoint.simulator import SimConfig, create_app

N_REQUESTS = 1000
CONCURRENCY = 16
PROMPTS = [f"question {k}: how do gateways survive outages?" for k in range(20)]
DEPLOYMENTS = {"d-a": ("openai", "chaos-a"), "d-b": ("anthropic", "chaos-b"), "d-c": ("gemini", "chaos-c")}
KNOWN_ERRORS = {"server_error", "overloaded", "rate_limited", "connection", "invalid_response"}


def mixed_faults(n: int, rng: random.Random) -> dict[str, str]:
    """30% of calls: 10% 5xx, 10% 429, 10% a connection dropped before any content."""
    r = rng.random()
    if r < 0.10:
        return {"x-sim-status": str(rng.choice((500, 502, 503)))}
    if r < 0.20:
        return {"x-sim-status": "429"}
    if r < 0.30:
        return {"x-sim-cut-after": "0"}
    return {}


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[str, FaultInjector]]:
    injector = FaultInjector(
        create_app(SimConfig(seed=11)), {p: mixed_faults for p in ("a", "b", "c")}, seed=5
    )
    with Server(injector) as server:
        yield server.url, injector


def _doc(sim_url: str, *, faulty: bool) -> dict[str, Any]:
    providers = {
        f"p-{name}": provider(sim_url, wire, name[-1] if faulty else None)
        for name, (wire, _) in DEPLOYMENTS.items()
    }
    price = {"input": 1.0, "output": 2.0}
    deployments = {
        name: {"provider": f"p-{name}", "model": model, "price": price}
        for name, (_, model) in DEPLOYMENTS.items()
    }
    return document(
        providers,
        deployments,
        {"chaos": list(DEPLOYMENTS)},
        resilience={
            "retry": {"attempts": 3, "max_total_attempts": 9, "backoff_base_s": 0.005, "backoff_max_s": 0.05},
            "breaker": {"consecutive_failures": 5, "cooldown_s": 1},
        },
    )


def _references(sim_url: str) -> dict[tuple[str, str], str]:
    """The clean answer of every deployment to every prompt (no faults on this gateway)."""
    out: dict[tuple[str, str], str] = {}
    with gateway(_doc(sim_url, faulty=False)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        for prompt in PROMPTS:
            for dep in DEPLOYMENTS:
                r = c.post("/v1/chat/completions", json=chat(prompt, dep), headers=AUTH)
                assert r.status_code == 200, r.text
                out[(dep, prompt)] = r.json()["choices"][0]["message"]["content"]
    return out


class Outcome:
    def __init__(self) -> None:
        self.ok = 0
        self.failed: list[str] = []
        self.duplicated: list[str] = []
        self.latencies: list[float] = []


def _stream_text(lines: list[str]) -> tuple[str, int, bool, bool]:
    """(text, finish chunks, saw [DONE], saw an error event) of an OpenAI stream."""
    text: list[str] = []
    finishes = 0
    done = error = False
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            done = True
            continue
        chunk = json.loads(data)
        if "error" in chunk:
            error = True
            continue
        for choice in chunk.get("choices", []):
            text.append(choice["delta"].get("content") or "")
            finishes += choice.get("finish_reason") is not None
    return "".join(text), finishes, done, error


async def _one(client: httpx.AsyncClient, i: int, refs: dict[tuple[str, str], str], out: Outcome) -> None:
    prompt = PROMPTS[i % len(PROMPTS)]
    stream = i % 2 == 1
    t0 = time.perf_counter()
    try:
        if stream:
            async with client.stream(
                "POST", "/v1/chat/completions", json=chat(prompt, "chaos", stream=True), headers=AUTH
            ) as r:
                lines = [line async for line in r.aiter_lines()]
            dep = r.headers.get("x-switchpoint-deployment", "")
            if r.status_code != 200:
                out.failed.append(f"{i}: HTTP {r.status_code}")
                return
            text, finishes, done, error = _stream_text(lines)
            if error or not done or finishes != 1:
                out.failed.append(
                    f"{i}: stream ended badly (error={error}, done={done}, finishes={finishes})"
                )
                return
        else:
            r = await client.post("/v1/chat/completions", json=chat(prompt, "chaos"), headers=AUTH)
            dep = r.headers.get("x-switchpoint-deployment", "")
            if r.status_code != 200:
                out.failed.append(f"{i}: HTTP {r.status_code} {r.text[:200]}")
                return
            text = r.json()["choices"][0]["message"]["content"]
    except httpx.HTTPError as exc:
        out.failed.append(f"{i}: {type(exc).__name__}")
        return
    out.latencies.append((time.perf_counter() - t0) * 1000.0)
    if text != refs[(dep, prompt)]:
        out.duplicated.append(f"{i} ({dep}, stream={stream}): {text[:120]!r}")
        return
    out.ok += 1


async def test_thirty_percent_upstream_failures_are_invisible(sim: tuple[str, FaultInjector]) -> None:
    sim_url, injector = sim
    refs = _references(sim_url)
    injector.calls.clear()
    with gateway(_doc(sim_url, faulty=True)) as (url, gw, _):
        out = Outcome()
        gate = asyncio.Semaphore(CONCURRENCY)
        async with async_client(url, connections=CONCURRENCY) as client:

            async def run(i: int) -> None:
                async with gate:
                    await _one(client, i, refs, out)

            t0 = time.perf_counter()
            await asyncio.gather(*(run(i) for i in range(N_REQUESTS)))
            wall = time.perf_counter() - t0
        recs = await asyncio.to_thread(records, url, gw)
        stats = gw.executor.stats

    injected = collections.Counter(
        "reset" if "x-sim-cut-after" in c.injected else c.injected.get("x-sim-status", "ok")
        for c in injector.calls
    )
    faulty = sum(v for k, v in injected.items() if k != "ok") / max(1, len(injector.calls))
    errors = collections.Counter(a.error for r in recs for a in r.attempts if a.error)
    attempts_per_request = collections.Counter(len(r.attempts) for r in recs)
    print(
        f"\n== fault injection: {N_REQUESTS} requests (half streamed), concurrency {CONCURRENCY}, {wall:.1f} s"
        f"\n   upstream calls: {len(injector.calls)}, faulty {faulty:.1%}: {dict(sorted(injected.items()))}"
        f"\n   succeeded: {out.ok}/{N_REQUESTS} ({out.ok / N_REQUESTS:.2%}); failed: {len(out.failed)};"
        f" wrong or duplicated stream content: {len(out.duplicated)}"
        f"\n   retries: {stats.retries}, failovers: {stats.failovers}, attempts: {stats.attempts}"
        f"\n   attempt errors by class: {dict(errors)}"
        f"\n   attempts per request: {dict(sorted(attempts_per_request.items()))}"
        f"\n   client latency p50 {percentile(out.latencies, 50):.1f} ms, p99 {percentile(out.latencies, 99):.1f} ms"
    )
    assert 0.25 < faulty < 0.35, "the injected fault rate is what the scenario says"
    assert out.ok + len(out.failed) + len(out.duplicated) == N_REQUESTS
    assert not out.duplicated, out.duplicated[:5]
    assert out.ok >= 0.999 * N_REQUESTS, out.failed[:5]
    assert stats.retries + stats.failovers > 0.2 * N_REQUESTS

    # Every attempt is in the request records: deployment, error class, latency.
    assert len(recs) == N_REQUESTS
    assert sum(len(r.attempts) for r in recs) == stats.attempts == len(injector.calls)
    for r in recs:
        assert r.attempts, r
        for a in r.attempts:
            assert a.deployment in DEPLOYMENTS and a.latency_ms > 0
            assert a.error is None or a.error in KNOWN_ERRORS, a
        if r.status == 200:
            assert r.attempts[-1].error is None and r.attempts[-1].deployment == r.deployment
            assert all(a.error is not None for a in r.attempts[:-1])
    assert {"server_error", "rate_limited", "connection"} <= set(errors)
