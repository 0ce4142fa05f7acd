"""Limits and budgets on ``/v1/embeddings``, as on the chat routes, on both state backends: RPM
with Retry-After and the x-ratelimit-* headers, TPM reserved from the inputs' estimate and
settled to the real usage, max_parallel, a budget reserved and refused with budget_exceeded, a
deployment at its limit passed over, and the master key untouched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance_harness import backend, bearer, configured_url_wins, doc, make_key
from resilience_harness import AUTH, Server, gateway
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim

__all__ = ["backend", "configured_url_wins"]

#: USD per million tokens: 1,000 input tokens cost $0.10.
PRICE = {"input": 100.0, "output": 0.0}


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _doc(sim: str, tmp_path: Path, state: dict[str, Any] | None, **sections: Any) -> dict[str, Any]:
    deployments = {
        "d-gpt": {"provider": "p", "model": "gpt-4o-mini"},
        "e-one": {"provider": "p", "model": "text-embedding-3-small", "kind": "embedding", "price": PRICE},
        "e-two": {"provider": "p", "model": "text-embedding-3-small", "kind": "embedding", "price": PRICE},
    }
    models = {"fast": "d-gpt", "embed": "e-one", "embed-any": ["e-one", "e-two"]}
    return doc(sim, tmp_path, state, deployments=deployments, models=models, **sections)


def _embed(text: str = "a cat sat on the mat", model: str = "embed") -> dict[str, Any]:
    return {"model": model, "input": [text, text]}


def test_rpm_refuses_embeddings_with_retry_after_and_headers(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    with gateway(_doc(sim, tmp_path, backend)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        secret, _ = make_key(url, limits={"rpm": 2})
        left = []
        for _ in range(2):
            r = c.post("/v1/embeddings", json=_embed(), headers=bearer(secret))
            assert r.status_code == 200, r.text
            assert len(r.json()["data"]) == 2
            assert r.headers["x-ratelimit-limit-requests"] == "2"
            left.append(r.headers["x-ratelimit-remaining-requests"])
        assert left == ["1", "0"]
        r = c.post("/v1/embeddings", json=_embed(), headers=bearer(secret))
        assert r.status_code == 429
        err = r.json()["error"]
        assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
        assert 55 <= int(r.headers["retry-after"]) <= 61  # memory: the window's 0.1 s buckets
        # the window is shared with chat: the key's chat requests are refused too
        chat = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        assert c.post("/v1/chat/completions", json=chat, headers=bearer(secret)).status_code == 429
        # the master key is not limited and carries no limit headers
        r = c.post("/v1/embeddings", json=_embed(), headers=AUTH)
        assert r.status_code == 200
        assert "x-ratelimit-limit-requests" not in r.headers


def test_tpm_reserves_the_inputs_and_settles_to_the_real_usage(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    with gateway(_doc(sim, tmp_path, backend)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        secret, _ = make_key(url, limits={"tpm": 2000})
        text = "word " * 200  # ~250 tokens estimated per input (1,000 characters), 2 inputs
        r = c.post("/v1/embeddings", json=_embed(text), headers=bearer(secret))
        assert r.status_code == 200, r.text
        reserved_left = int(r.headers["x-ratelimit-remaining-tokens"])
        assert reserved_left <= 2000 - 500  # no output is reserved, the inputs are (with a margin)
        used = r.json()["usage"]["total_tokens"]
        assert used > 0
        time.sleep(0.2)  # Redis: the settle goes out right after the answer
        r = c.post("/v1/embeddings", json=_embed("a cat"), headers=bearer(secret))
        assert r.status_code == 200, r.text
        left = int(r.headers["x-ratelimit-remaining-tokens"])
        assert 2000 - used - 30 <= left < 2000 - used  # the first request settled to its real usage
        r = c.post("/v1/embeddings", json=_embed("word " * 2000), headers=bearer(secret))
        assert r.status_code == 429
        assert "tokens per minute" in r.json()["error"]["message"]


def test_a_budget_holds_on_embeddings(sim: str, tmp_path: Path, backend: dict[str, Any] | None) -> None:
    with gateway(_doc(sim, tmp_path, backend)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        # one request of ~2 x 250 tokens reserves ~$0.065 (estimate with its margin), costs less
        secret, _ = make_key(url, budgets={"total": 0.1})
        text = "word " * 200
        r = c.post("/v1/embeddings", json=_embed(text), headers=bearer(secret))
        assert r.status_code == 200, r.text
        time.sleep(0.2)
        r = c.post("/v1/embeddings", json=_embed(text), headers=bearer(secret))
        assert r.status_code == 402
        err = r.json()["error"]
        assert err["type"] == "budget_exceeded" and err["code"] == "budget_exceeded"
        assert "total" in err["message"]
        assert r.headers["x-switchpoint-budget"].endswith("total")
        # a small one still fits
        assert c.post("/v1/embeddings", json=_embed("a cat"), headers=bearer(secret)).status_code == 200


def test_max_parallel_on_embeddings_and_a_deployment_at_its_limit(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    d = _doc(sim, tmp_path, backend, queue={"max_wait_s": 0})
    d["deployments"]["e-one"]["limits"] = {"rpm": 1}
    with gateway(d) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        # e-one takes one request a minute; then routing moves on to e-two
        first = c.post("/v1/embeddings", json=_embed(model="embed-any"), headers=AUTH)
        assert first.status_code == 200, first.text
        assert first.headers["x-switchpoint-deployment"] == "e-one"
        second = c.post("/v1/embeddings", json=_embed(model="embed-any"), headers=AUTH)
        assert second.status_code == 200, second.text
        assert second.headers["x-switchpoint-deployment"] == "e-two"
        # with nowhere else to go: 429 deployment_at_limit
        r = c.post("/v1/embeddings", json=_embed(), headers=AUTH)
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "deployment_at_limit"

        secret, _ = make_key(url, limits={"max_parallel": 1})

        async def both() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as ac:
                slow = {"model": "embed-any", "input": ["[[sim latency_ms=600]] a cat"]}

                async def one(i: int) -> httpx.Response:
                    await asyncio.sleep(0.1 * i)
                    return await ac.post("/v1/embeddings", json=slow, headers=bearer(secret))

                return await asyncio.gather(one(0), one(1))

        out = asyncio.run(both())
        assert sorted(r.status_code for r in out) == [200, 429]
        refused = next(r for r in out if r.status_code == 429)
        assert refused.json()["error"]["code"] == "too_many_parallel_requests"
        # the slot came back
        r = c.post("/v1/embeddings", json=_embed(model="embed-any"), headers=bearer(secret))
        assert r.status_code == 200, r.text
