"""Rate and concurrency limits through the gateway, on both state backends: RPM, TPM (reserved
from the estimate, settled to the real usage) and max_parallel of a key and of its team, the
429 in each dialect with Retry-After and the x-ratelimit-* headers; a deployment at its limit
moves routing to the next candidate; the master key carries no limit headers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance_harness import (
    anthropic_body,
    anthropic_headers,
    backend,
    bearer,
    configured_url_wins,
    doc,
    make_key,
    make_team,
    openai_body,
)
from resilience_harness import AUTH, Server, gateway
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim

__all__ = ["backend", "configured_url_wins"]


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def test_rpm_in_both_dialects_with_retry_after_and_headers(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    with gateway(doc(sim, tmp_path, backend)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        secret, _ = make_key(url, limits={"rpm": 3})
        seen = []
        for i in range(3):
            if i % 2:
                r = c.post("/v1/messages", json=anthropic_body(), headers=anthropic_headers(secret))
            else:
                r = c.post("/v1/chat/completions", json=openai_body(), headers=bearer(secret))
            assert r.status_code == 200, r.text
            assert r.headers["x-ratelimit-limit-requests"] == "3"
            seen.append(int(r.headers["x-ratelimit-remaining-requests"]))
            assert r.headers["x-ratelimit-reset-requests"].endswith("s")
        assert seen == [2, 1, 0]

        r = c.post("/v1/chat/completions", json=openai_body(), headers=bearer(secret))
        assert r.status_code == 429
        err = r.json()["error"]
        assert err["type"] == "rate_limit_error"
        assert err["code"] == "rate_limit_exceeded"
        assert "3 requests per minute" in err["message"]
        assert 55 <= int(r.headers["retry-after"]) <= 61  # memory: the window's 0.1 s buckets
        assert r.headers["x-ratelimit-remaining-requests"] == "0"

        r = c.post("/v1/messages", json=anthropic_body(), headers=anthropic_headers(secret))
        assert r.status_code == 429
        body = r.json()
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
        assert "retry-after" in r.headers

        # the master key is not limited and carries no limit headers
        r = c.post("/v1/chat/completions", json=openai_body(), headers=AUTH)
        assert r.status_code == 200
        assert "x-ratelimit-limit-requests" not in r.headers


def test_a_team_limit_binds_every_key_of_the_team(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    with gateway(doc(sim, tmp_path, backend)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        team = make_team(url, limits={"rpm": 2})
        a, _ = make_key(url, team=team["name"], limits={"rpm": 100})
        b, _ = make_key(url, team=team["name"])
        assert c.post("/v1/chat/completions", json=openai_body(), headers=bearer(a)).status_code == 200
        assert c.post("/v1/chat/completions", json=openai_body(), headers=bearer(b)).status_code == 200
        r = c.post("/v1/chat/completions", json=openai_body(), headers=bearer(a))
        assert r.status_code == 429
        assert f"team '{team['name']}'" in r.json()["error"]["message"]
        # the headers show the tightest limit: the team's
        assert r.headers["x-ratelimit-limit-requests"] == "2"


def test_tpm_reserves_the_estimate_and_settles_to_the_real_usage(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    with gateway(doc(sim, tmp_path, backend)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        secret, _ = make_key(url, limits={"tpm": 1000})
        r = c.post("/v1/chat/completions", json=openai_body(max_tokens=600), headers=bearer(secret))
        assert r.status_code == 200, r.text
        reserved_left = int(r.headers["x-ratelimit-remaining-tokens"])
        assert reserved_left < 400  # 600 output tokens + the prompt were reserved
        used = r.json()["usage"]["total_tokens"]
        time.sleep(0.2)  # Redis: the settle goes out right after the answer
        # a request that needs more than the reservation left fits now that the first settled
        r = c.post("/v1/chat/completions", json=openai_body(max_tokens=800), headers=bearer(secret))
        assert r.status_code == 200, r.text
        left = int(r.headers["x-ratelimit-remaining-tokens"])
        assert left <= 1000 - used - 800
        assert left >= 1000 - used - 800 - 40  # the prompt's estimate (a few tokens)
        r = c.post("/v1/chat/completions", json=openai_body(max_tokens=990), headers=bearer(secret))
        assert r.status_code == 429
        assert "tokens per minute" in r.json()["error"]["message"]
        assert r.headers["x-ratelimit-limit-tokens"] == "1000"


async def _concurrent(url: str, bodies: list[tuple[dict[str, Any], dict[str, str]]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:

        async def one(i: int, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
            await asyncio.sleep(0.05 * i)  # in this order
            return await c.post("/v1/chat/completions", json=body, headers=headers)

        return await asyncio.gather(*[one(i, b, h) for i, (b, h) in enumerate(bodies)])


def test_max_parallel_refuses_without_a_queue(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    with gateway(doc(sim, tmp_path, backend, queue={"max_wait_s": 0})) as (url, _, _):
        secret, _ = make_key(url, limits={"max_parallel": 2})
        slow = openai_body("[[sim latency_ms=600]] hi")
        out = asyncio.run(_concurrent(url, [(slow, bearer(secret))] * 3))
        assert sorted(r.status_code for r in out) == [200, 200, 429]
        refused = next(r for r in out if r.status_code == 429)
        assert refused.json()["error"]["code"] == "too_many_parallel_requests"
        assert "retry-after" in refused.headers
        # the slots came back
        out = asyncio.run(_concurrent(url, [(openai_body(), bearer(secret))] * 2))
        assert [r.status_code for r in out] == [200, 200]


def test_requests_sharing_an_x_request_id_hold_a_slot_each(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    """A client's x-request-id is not what a slot is held by: three requests sent with the same
    one are three requests in flight, and a key's max_parallel of 2 refuses the third."""
    with gateway(doc(sim, tmp_path, backend, queue={"max_wait_s": 0})) as (url, _, _):
        secret, _ = make_key(url, limits={"max_parallel": 2, "rpm": 10})
        slow = openai_body("[[sim latency_ms=600]] hi")
        same = {**bearer(secret), "x-request-id": "req-shared-by-three"}
        out = asyncio.run(_concurrent(url, [(slow, same)] * 3))
        assert sorted(r.status_code for r in out) == [200, 200, 429]
        refused = next(r for r in out if r.status_code == 429)
        assert refused.json()["error"]["code"] == "too_many_parallel_requests"
        # the refused one took nothing from the window: with this one, 3 of 10
        r = httpx.post(f"{url}/v1/chat/completions", json=openai_body(), headers=same, timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-remaining-requests"] == "7"


def test_a_deployment_at_its_limit_moves_routing_to_the_next_candidate(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    deployments = {
        "d-a": {"provider": "p", "model": "gpt-4o-mini", "limits": {"rpm": 2}},
        "d-b": {"provider": "p", "model": "gpt-4o-mini"},
    }
    d = doc(sim, tmp_path, backend, deployments=deployments, models={"fast": ["d-a", "d-b"], "only-a": "d-a"})
    with gateway(d) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        served = []
        for _ in range(4):
            r = c.post("/v1/chat/completions", json=openai_body(), headers=AUTH)  # the master key too
            assert r.status_code == 200, r.text
            served.append(r.headers["x-switchpoint-deployment"])
        assert served == ["d-a", "d-a", "d-b", "d-b"]
        assert "skipped=d-a" in r.headers["x-switchpoint-route"]
        r = c.post("/v1/chat/completions", json=openai_body(model="only-a"), headers=AUTH)
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "deployment_at_limit"
        assert "deployment 'd-a'" in r.json()["error"]["message"]


def test_a_limited_key_is_refused_when_redis_does_not_answer(sim: str, tmp_path: Path) -> None:
    from resilience_harness import _free_port

    state = {"redis_url": f"redis://127.0.0.1:{_free_port()}/0", "prefix": "sp-test-down:"}  # nobody there
    with gateway(doc(sim, tmp_path, state)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        secret, _ = make_key(url, limits={"rpm": 10})
        r = c.post("/v1/chat/completions", json=openai_body(), headers=bearer(secret))
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "state_unavailable"
        assert r.headers["retry-after"] == "1"
        r = c.post("/v1/messages", json=anthropic_body(), headers=anthropic_headers(secret))
        assert r.status_code == 503 and r.json()["type"] == "error"
        # nothing limits the master key: it does not need the state
        assert c.post("/v1/chat/completions", json=openai_body(), headers=AUTH).status_code == 200
