"""The exact response cache through the gateway: a hit answers with the miss's body (and, for
streams, its events) in every dialect pairing; only deterministic requests by default; the
client's Cache-Control and x-switchpoint-cache honoured; one tenant never reads another's
answers; hits booked in the ledger as cached, with no cost and the original's cost saved;
the memory backend bounded in bytes (LRU) with a TTL, and the Redis backend shared."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance_harness import (
    REDIS_URL,
    anthropic_body,
    anthropic_headers,
    bearer,
    configured_url_wins,
    doc,
    drop_prefix,
    make_key,
    make_team,
    openai_body,
    redis_problem,
)
from resilience_harness import AUTH, GATEWAY_KEY, Server, gateway, records
from switchpoint.cache.backends import MemoryBackend, RedisBackend
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store.engine import make_engine

from store_db import rows

__all__ = ["configured_url_wins"]

ANT = anthropic_headers(GATEWAY_KEY)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _doc(sim: str, tmp_path: Path, cache: dict[str, Any] | None = None, state: Any = None) -> dict[str, Any]:
    section = {"response": {"enabled": True}} if cache is None else cache
    return doc(sim, tmp_path, state, cache=section)


def _post(c: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    r = c.post(path, json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r


CASES = [
    ("/v1/chat/completions", "fast", AUTH),  # OpenAI in, OpenAI upstream: passthrough
    ("/v1/chat/completions", "claude", AUTH),  # OpenAI in, Anthropic upstream: translated
    ("/v1/messages", "claude", ANT),  # Anthropic passthrough
    ("/v1/messages", "fast", ANT),  # Anthropic in, OpenAI upstream
]


def _body(path: str, model: str, text: str, **extra: Any) -> dict[str, Any]:
    if path == "/v1/messages":
        return anthropic_body(text, model=model, **extra)
    return openai_body(text, model=model, **extra)


def test_a_hit_is_the_miss_again_plain_and_streamed(sim: str, tmp_path: Path) -> None:
    with gateway(_doc(sim, tmp_path)) as (url, gw, _):
        assert gw.caches.response is not None
        with httpx.Client(base_url=url, timeout=30) as c:
            for path, model, headers in CASES:
                text = f"question for {path} {model}"
                body = _body(path, model, text, temperature=0)
                miss = _post(c, path, body, headers)
                hit = _post(c, path, body, headers)
                assert (miss.headers["x-switchpoint-cache"], hit.headers["x-switchpoint-cache"]) == (
                    "miss",
                    "hit",
                )
                assert hit.content == miss.content
                assert hit.headers["x-switchpoint-deployment"] == miss.headers["x-switchpoint-deployment"]
                streamed = dict(body, stream=True)
                smiss = _post(c, path, streamed, headers)
                shit = _post(c, path, streamed, headers)
                assert (smiss.headers["x-switchpoint-cache"], shit.headers["x-switchpoint-cache"]) == (
                    "miss",
                    "hit",
                )
                assert shit.headers["content-type"].startswith("text/event-stream")
                assert shit.content == smiss.content and b"data:" in shit.content
        got = records(url, gw)
    hits = [r for r in got if r.cached]
    assert len(hits) == 2 * len(CASES)
    assert all(r.attempts == () and r.status == 200 and r.usage is None for r in hits)  # no tokens billed
    assert sum(len(r.attempts) for r in got if not r.cached) == 2 * len(CASES)  # misses went upstream once


def test_only_deterministic_requests_unless_a_rule_says_so(sim: str, tmp_path: Path) -> None:
    with gateway(_doc(sim, tmp_path)) as (url, _gw, _), httpx.Client(base_url=url, timeout=30) as c:
        for body in (openai_body("warm"), openai_body("warm", temperature=0.7)):
            for _ in range(2):
                r = _post(c, "/v1/chat/completions", body, AUTH)
                assert r.headers["x-switchpoint-cache"] == "bypass"
        seeded = openai_body("warm", temperature=0.7, seed=42)
        assert _post(c, "/v1/chat/completions", seeded, AUTH).headers["x-switchpoint-cache"] == "miss"
        assert _post(c, "/v1/chat/completions", seeded, AUTH).headers["x-switchpoint-cache"] == "hit"
    section = {
        "response": {"enabled": True},
        "rules": {"bulk": {"deterministic_only": False}, "private": {"response": False}},
    }
    routing = {
        "rules": [
            {"name": "bulk", "match": {"model": "fast"}, "candidates": ["d-gpt"]},
            {"name": "private", "match": {"model": "claude"}, "candidates": ["d-claude"]},
        ]
    }
    config = dict(_doc(sim, tmp_path, section), routing=routing)
    with gateway(config) as (url, _gw, _), httpx.Client(base_url=url, timeout=30) as c:
        route = _post(c, "/v1/chat/completions", openai_body("any"), AUTH).headers["x-switchpoint-route"]
        assert "rule=bulk" in route
        assert (
            _post(c, "/v1/chat/completions", openai_body("any"), AUTH).headers["x-switchpoint-cache"] == "hit"
        )
        off = openai_body("x", model="claude", temperature=0)
        assert _post(c, "/v1/chat/completions", off, AUTH).headers["x-switchpoint-cache"] == "bypass"


def test_the_clients_cache_directives(sim: str, tmp_path: Path) -> None:
    body = openai_body("directives", temperature=0)
    with gateway(_doc(sim, tmp_path)) as (url, gw, _):
        with httpx.Client(base_url=url, timeout=30) as c:

            def mark(extra: dict[str, str]) -> str:
                return str(
                    _post(c, "/v1/chat/completions", body, {**AUTH, **extra}).headers["x-switchpoint-cache"]
                )

            assert mark({"cache-control": "no-store"}) == "bypass"
            assert mark({}) == "miss"  # no-store kept nothing
            assert mark({}) == "hit"
            assert mark({"cache-control": "no-cache"}) == "miss"  # read skipped, the answer stored again
            assert mark({"x-switchpoint-cache": "refresh"}) == "miss"
            assert mark({"x-switchpoint-cache": "bypass"}) == "bypass"
            assert mark({"Cache-Control": "max-age=0, no-store"}) == "bypass"
            assert mark({}) == "hit"
            stats = c.get("/admin/stats", headers=AUTH).json()["cache"]["response"]
            assert (stats["hits"], stats["misses"], stats["stored"]) == (2, 3, 3)
            metrics = c.get("/metrics", headers=AUTH).text
            assert "switchpoint_response_cache_hits_total 2" in metrics
            assert "switchpoint_response_cache_stored_total 3" in metrics
        cache = gw.caches.response
        assert cache is not None and cache.stored == 3


def test_every_answer_says_hit_miss_or_bypass(sim: str, tmp_path: Path) -> None:
    """Errors (before the lookup or after it) and the Responses API's stateful route are marked
    too: bypass, or what the lookup said."""
    with gateway(_doc(sim, tmp_path)) as (url, _gw, _), httpx.Client(base_url=url, timeout=30) as c:
        unknown = c.post(
            "/v1/chat/completions", json=openai_body("x", model="nope", temperature=0), headers=AUTH
        )
        assert unknown.status_code == 404 and unknown.headers["x-switchpoint-cache"] == "bypass"
        broken = c.post("/v1/chat/completions", content=b"{not json", headers=AUTH)
        assert broken.status_code == 400 and broken.headers["x-switchpoint-cache"] == "bypass"
        refused = c.post("/v1/chat/completions", json=openai_body("x", temperature=0), headers={})
        assert refused.status_code == 401 and refused.headers["x-switchpoint-cache"] == "bypass"
        answered = c.post(
            "/v1/responses", json={"model": "fast", "input": "hi", "temperature": 0}, headers=AUTH
        )
        assert answered.status_code == 200, answered.text
        assert answered.headers["x-switchpoint-cache"] == "bypass"
        failing = openai_body("x", temperature=0, max_tokens=-1)
        bad = c.post("/v1/chat/completions", json=failing, headers=AUTH)
        assert bad.status_code == 400 and bad.headers["x-switchpoint-cache"] in ("bypass", "miss")


def test_one_tenant_never_reads_anothers_answers(sim: str, tmp_path: Path) -> None:
    body = openai_body("the same question", temperature=0)
    for scope in ("key", "team"):
        section = {"response": {"enabled": True, "scope": scope}}
        with gateway(_doc(sim, tmp_path / scope, section)) as (url, _gw, _):
            team_a, team_b = make_team(url), make_team(url)
            a1, _ = make_key(url, team=team_a["name"])
            a2, _ = make_key(url, team=team_a["name"])
            b1, _ = make_key(url, team=team_b["name"])
            with httpx.Client(base_url=url, timeout=30) as c:

                def mark(secret: str) -> str:
                    return str(
                        _post(c, "/v1/chat/completions", body, bearer(secret)).headers["x-switchpoint-cache"]
                    )

                assert mark(a1) == "miss" and mark(a1) == "hit"
                # The same team: shared only with scope team.
                assert mark(a2) == ("hit" if scope == "team" else "miss")
                assert mark(b1) == "miss"  # another team: never
                assert mark(GATEWAY_KEY) == "miss"  # the master key is a tenant of its own


def test_hits_in_the_ledger_cost_nothing_and_save_the_original(sim: str, tmp_path: Path) -> None:
    body = anthropic_body("ledger question", temperature=0)
    with gateway(_doc(sim, tmp_path)) as (url, _gw, _), httpx.Client(base_url=url, timeout=30) as c:
        for _ in range(3):
            _post(c, "/v1/messages", body, ANT)
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        got = rows(
            engine,
            "SELECT cached, cost_usd, saved_usd, attempts, input_tokens FROM requests ORDER BY started_at",
        )
    finally:
        engine.dispose()
    miss, *hits = got
    assert miss["cached"] == 0 and miss["cost_usd"] > 0 and miss["attempts"] == 1
    for hit in hits:
        assert hit["cached"] == 1 and hit["cost_usd"] == 0 and hit["attempts"] == 0
        assert hit["saved_usd"] == pytest.approx(miss["cost_usd"])
        assert hit["input_tokens"] == 0 and miss["input_tokens"] > 0  # no tokens were billed


def test_not_configured_costs_nothing(sim: str, tmp_path: Path) -> None:
    with gateway(doc(sim, tmp_path, None)) as (url, gw, _):
        assert gw.caches.response is None
        with httpx.Client(base_url=url, timeout=30) as c:
            r = _post(c, "/v1/chat/completions", openai_body("x", temperature=0), AUTH)
            assert "x-switchpoint-cache" not in r.headers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_memory_backend_is_bounded_in_bytes_lru_with_a_ttl() -> None:
    clock = Clock()
    mem = MemoryBackend(max_bytes=300, clock=clock)
    for name in ("a", "b", "c"):
        mem.put(name, name.encode() * 100, ttl_s=10)
    assert mem.bytes == 300 and len(mem) == 3
    assert mem.get_now("a") == b"a" * 100  # a is now the most recently used
    mem.put("d", b"d" * 100, ttl_s=10)
    assert mem.get_now("b") is None and mem.get_now("a") is not None and mem.bytes <= 300
    mem.put("huge", b"x" * 301, ttl_s=10)
    assert mem.get_now("huge") is None and mem.bytes <= 300
    clock.now += 11
    assert all(mem.get_now(k) is None for k in "acd") and mem.bytes == 0


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    problem = redis_problem()
    if problem is not None:
        pytest.skip(problem)
    prefix = f"sp-test-cache-{uuid.uuid4().hex[:10]}:"
    try:
        yield prefix
    finally:
        drop_prefix(prefix)


def test_redis_backend_round_trip_and_ttl(redis_prefix: str) -> None:
    async def run() -> None:
        backend = RedisBackend(REDIS_URL, redis_prefix)
        try:
            assert await backend.get("k") is None
            backend.put("k", b"value", ttl_s=0.2)
            await asyncio.sleep(0.05)
            assert await backend.get("k") == b"value"
            await asyncio.sleep(0.3)
            assert await backend.get("k") is None
        finally:
            await backend.close()
        down = RedisBackend("redis://127.0.0.1:1/0", redis_prefix)  # nobody listens: a miss, no error
        try:
            assert await down.get("k") is None
            down.put("k", b"v", ttl_s=1)
        finally:
            await down.close()

    asyncio.run(run())


def test_two_gateways_share_answers_over_redis(sim: str, tmp_path: Path, redis_prefix: str) -> None:
    state = {"redis_url": REDIS_URL, "prefix": redis_prefix}
    section = {"response": {"enabled": True, "backend": "redis"}}
    body = openai_body("shared over redis", temperature=0)
    with gateway(_doc(sim, tmp_path / "one", section, state)) as (one, _g1, _):
        with httpx.Client(base_url=one, timeout=30) as c:
            first = _post(c, "/v1/chat/completions", body, AUTH)
        assert first.headers["x-switchpoint-cache"] == "miss"
    with gateway(_doc(sim, tmp_path / "two", section, state)) as (two, _g2, _):
        with httpx.Client(base_url=two, timeout=30) as c:
            again = _post(c, "/v1/chat/completions", body, AUTH)
        assert again.headers["x-switchpoint-cache"] == "hit" and again.content == first.content
