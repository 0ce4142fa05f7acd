"""Limits and budgets on the audio and image endpoints, as on chat and embeddings, on both
state backends: RPM refused with Retry-After in OpenAI's error JSON, a budget reserved from the
request's units (speech characters, images) and settled to what the ledger books, the refusal
with budget_exceeded, and max_parallel held while a media request runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance_harness import backend, bearer, configured_url_wins, doc, make_key
from media_harness import wav_bytes
from resilience_harness import AUTH, Server, gateway, provider
from switchpoint.governance.budgets import Budget
from switchpoint.governance.state import make_state
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store.engine import make_engine
from switchpoint.store.queries import usage

__all__ = ["backend", "configured_url_wins"]

#: $0.001 per character spoken, $0.01 per image, $0.002 per second transcribed.
PER_CHARACTER, PER_IMAGE, PER_SECOND = 0.001, 0.01, 0.002


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _doc(sim: str, tmp_path: Path, state: dict[str, Any] | None, **sections: Any) -> dict[str, Any]:
    deployments = {
        "d-gpt": {"provider": "p", "model": "gpt-4o-mini"},
        "a-tts": {
            "provider": "p",
            "model": "sim-tts",
            "kind": "audio",
            "price": {"per_character": PER_CHARACTER},
        },
        "a-stt": {
            "provider": "p",
            "model": "sim-whisper",
            "kind": "audio",
            "price": {"per_second": PER_SECOND},
        },
        "a-slow": {"provider": "slow", "model": "sim-tts", "kind": "audio"},
        "i-image": {
            "provider": "p",
            "model": "sim-image",
            "kind": "image",
            "price": {"per_image": PER_IMAGE},
        },
    }
    models = {
        "fast": "d-gpt",
        "tts-1": "a-tts",
        "whisper-1": "a-stt",
        "tts-slow": "a-slow",
        "gpt-image-1": "i-image",
    }
    d = doc(sim, tmp_path, state, deployments=deployments, models=models, **sections)
    d["providers"]["slow"] = provider(sim, "openai", headers={"x-sim-latency-ms": "600"})
    return d


def _speech(text: str, model: str = "tts-1") -> dict[str, Any]:
    return {"model": model, "input": text, "voice": "alloy"}


def _ledger(tmp_path: Path, key_id: str, n: int, timeout_s: float = 10.0) -> tuple[float, int]:
    """(the key's cost in the ledger, its requests) once it holds ``n`` of them."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = usage(engine, filters={"key": key_id})
            got = rows[0].requests if rows else 0
            if got >= n or time.monotonic() > deadline:
                return (rows[0].cost_usd if rows else 0.0), got
            time.sleep(0.05)
    finally:
        engine.dispose()


def _gate_spent(
    gw: Any, state: dict[str, Any] | None, key: dict[str, Any], period: str, limit: float
) -> float:
    """What the gate counts as spent (and reserved) against the key's budget."""
    budget_key = Budget("key", key["id"], key["name"], period, limit, time.time()).key
    if state is None:
        return float(asyncio.run(gw.gate.state.spent(budget_key)))

    async def read() -> float:
        redis = make_state(state["redis_url"], state["prefix"])
        try:
            return float(await redis.spent(budget_key))
        finally:
            await redis.close()

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/audio/speech", _speech("hello there")),
        ("/v1/images/generations", {"model": "gpt-image-1", "prompt": "a cat"}),
    ],
)
def test_rpm_refuses_the_second_media_request(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None, path: str, body: dict[str, Any]
) -> None:
    with gateway(_doc(sim, tmp_path, backend)) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        secret, _ = make_key(url, limits={"rpm": 1})
        r = c.post(path, json=body, headers=bearer(secret))
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit-requests"] == "1"
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        r = c.post(path, json=body, headers=bearer(secret))
        assert r.status_code == 429, r.text
        err = r.json()["error"]
        assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
        assert "Rate limit reached" in err["message"]
        assert 55 <= int(r.headers["retry-after"]) <= 61
        # the window is the key's, shared with chat
        chat = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        assert c.post("/v1/chat/completions", json=chat, headers=bearer(secret)).status_code == 429
        # the master key is not limited
        assert c.post(path, json=body, headers=AUTH).status_code == 200


@pytest.mark.parametrize("limited", [False, True], ids=["usual", "deployment-limits"])
def test_a_budget_holds_on_speech_and_images_and_matches_the_ledger(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None, limited: bool
) -> None:
    d = _doc(sim, tmp_path, backend)
    if limited:  # the gate's general path (not the memory state's prepared one)
        for name in ("a-tts", "a-stt", "i-image"):
            d["deployments"][name]["limits"] = {"rpm": 1000}
    with gateway(d) as (url, gw, _), httpx.Client(base_url=url, timeout=30) as c:
        secret, key = make_key(url, budgets={"total": 0.1})
        # 40 characters: $0.04 reserved, $0.04 spent
        r = c.post("/v1/audio/speech", json=_speech("x" * 40), headers=bearer(secret))
        assert r.status_code == 200, r.text
        # 3 images: $0.03
        r = c.post(
            "/v1/images/generations",
            json={"model": "gpt-image-1", "prompt": "a cat", "n": 3},
            headers=bearer(secret),
        )
        assert r.status_code == 200, r.text
        # a WAV of 5 s: $0.01 reserved from its header, $0.01 booked
        files = {"file": ("a.wav", wav_bytes(5.0), "audio/wav")}
        r = c.post(
            "/v1/audio/transcriptions", data={"model": "whisper-1"}, files=files, headers=bearer(secret)
        )
        assert r.status_code == 200, r.text
        spent, n = _ledger(tmp_path, key["id"], 3)
        assert n == 3
        assert spent == pytest.approx(0.04 + 0.03 + 0.01)
        assert _gate_spent(gw, backend, key, "total", 0.1) == pytest.approx(spent)
        # $0.08 spent: 30 characters ($0.03) cannot be held, refused before going upstream
        r = c.post("/v1/audio/speech", json=_speech("y" * 30), headers=bearer(secret))
        assert r.status_code == 402, r.text
        err = r.json()["error"]
        assert err["type"] == "budget_exceeded" and err["code"] == "budget_exceeded"
        assert "total" in err["message"]
        assert r.headers["x-switchpoint-budget"].endswith("total")
        # nor 3 images ($0.03)
        body = {"model": "gpt-image-1", "prompt": "a cat", "n": 3}
        r = c.post("/v1/images/generations", json=body, headers=bearer(secret))
        assert r.status_code == 402, r.text
        assert r.json()["error"]["code"] == "budget_exceeded"
        # the refusals reserved nothing; 20 characters ($0.02) still fit, exactly
        r = c.post("/v1/audio/speech", json=_speech("z" * 20), headers=bearer(secret))
        assert r.status_code == 200, r.text
        spent, n = _ledger(tmp_path, key["id"], 6)
        assert spent == pytest.approx(0.1)
        assert _gate_spent(gw, backend, key, "total", 0.1) == pytest.approx(spent)
        r = c.post(
            "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a cat"}, headers=bearer(secret)
        )
        assert r.status_code == 402


def test_a_failed_media_request_gives_its_reservation_back(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    with gateway(_doc(sim, tmp_path, backend)) as (url, gw, _), httpx.Client(base_url=url, timeout=30) as c:
        secret, key = make_key(url, budgets={"daily": 0.05})
        r = c.post("/v1/audio/speech", json=_speech("x" * 4097), headers=bearer(secret))
        assert r.status_code == 429  # its $4.097 cannot be held today (a daily budget: 429)
        assert r.json()["error"]["code"] == "budget_exceeded"
        assert "daily" in r.json()["error"]["message"] and "retry-after" in r.headers
        # a smaller failing one: $0.04 reserved, then settled to 0
        bad = {"model": "tts-1", "input": "x" * 40, "voice": "alloy", "response_format": "nope"}
        r = c.post("/v1/audio/speech", json=bad, headers=bearer(secret))
        assert r.status_code == 400, r.text
        assert _gate_spent(gw, backend, key, "daily", 0.05) == pytest.approx(0.0)
        r = c.post("/v1/audio/speech", json=_speech("x" * 40), headers=bearer(secret))
        assert r.status_code == 200, r.text


def test_max_parallel_holds_during_a_media_request(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    d = _doc(sim, tmp_path, backend, queue={"max_wait_s": 0})
    with gateway(d) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        secret, _ = make_key(url, limits={"max_parallel": 1})

        async def both() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as ac:

                async def one(i: int) -> httpx.Response:
                    await asyncio.sleep(0.15 * i)
                    return await ac.post(
                        "/v1/audio/speech", json=_speech("hi", "tts-slow"), headers=bearer(secret)
                    )

                return await asyncio.gather(one(0), one(1))

        out = asyncio.run(both())
        assert [r.status_code for r in out] == [200, 429], [r.text for r in out]
        refused = out[1].json()["error"]
        assert refused["code"] == "too_many_parallel_requests"
        # the slot came back when the request ended
        r = c.post(
            "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a cat"}, headers=bearer(secret)
        )
        assert r.status_code == 200, r.text
