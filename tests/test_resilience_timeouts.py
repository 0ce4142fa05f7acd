"""Timeouts fire within ±10% of their setting: time to first token, stall between chunks, total,
and the request deadline a client sets with a header.

What is measured is the timer itself: the failed attempt's latency in the request record
(from the attempt's start to its timeout error), not the client's end-to-end latency.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from resilience_harness import AUTH, Server, chat, document, gateway, provider, records
from switchpoint.api.app import Gateway
from switchpoint.simulator import Behavior, SimConfig, create_app

TTFT_S = 0.6
STALL_S = 0.5
TOTAL_S = 0.7
TOLERANCE = 0.10

SIM = SimConfig(
    models={
        "slow-first": Behavior(ttft_ms=5000),
        "stall-mid": Behavior(stall_ms=5000, stall_after=2, output_tokens=10),
        "stall-pre": Behavior(stall_ms=5000, stall_after=0),
        "slow-answer": Behavior(latency_ms=5000),
    }
)


@pytest.fixture(scope="module")
def gw() -> Iterator[tuple[str, Gateway]]:
    with Server(create_app(SIM)) as sim:
        doc = document(
            {"p-oai": provider(sim.url, "openai"), "p-ant": provider(sim.url, "anthropic")},
            {
                "d-slow": {"provider": "p-oai", "model": "slow-first", "timeouts": {"ttft_s": TTFT_S}},
                "d-stall": {"provider": "p-oai", "model": "stall-mid", "timeouts": {"stall_s": STALL_S}},
                "d-stall-pre": {"provider": "p-oai", "model": "stall-pre", "timeouts": {"stall_s": STALL_S}},
                "d-total": {"provider": "p-oai", "model": "slow-answer", "timeouts": {"total_s": TOTAL_S}},
                "d-fast": {"provider": "p-ant", "model": "fast"},
            },
            {
                "ttft": ["d-slow", "d-fast"],
                "stall": ["d-stall", "d-fast"],
                "stall-pre": ["d-stall-pre", "d-fast"],
                "total": ["d-total", "d-fast"],
            },
            resilience={"breaker": {"enabled": False}},
        )
        with gateway(doc) as (url, gateway_, _):
            yield url, gateway_


def _within(measured_ms: float, setting_s: float) -> bool:
    return abs(measured_ms / 1000.0 - setting_s) <= TOLERANCE * setting_s


def _stream(c: httpx.Client, model: str, headers: dict[str, str] | None = None) -> tuple[list[Any], bool]:
    """(the chunks, whether [DONE] came) of one streamed request."""
    with c.stream(
        "POST",
        "/v1/chat/completions",
        json=chat("tell me", model, stream=True),
        headers={**AUTH, **(headers or {})},
    ) as r:
        assert r.status_code == 200
        data = [ln[6:] for ln in r.iter_lines() if ln.startswith("data: ")]
    return [json.loads(d) for d in data if d != "[DONE]"], "[DONE]" in data


def _last(url: str, gateway_: Gateway) -> Any:
    return records(url, gateway_)[-1]


def test_ttft_timeout_fires_on_time_and_fails_over_invisibly(gw: tuple[str, Gateway]) -> None:
    url, gateway_ = gw
    measured = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for _ in range(3):
            chunks, done = _stream(c, "ttft")
            assert done and not any("error" in ch for ch in chunks)
            rec = _last(url, gateway_)
            first, second = rec.attempts
            assert (first.deployment, first.error, second.deployment, second.error) == (
                "d-slow",
                "timeout",
                "d-fast",
                None,
            )
            measured.append(first.latency_ms)
    print(f"\n== TTFT timeout {TTFT_S * 1000:.0f} ms: measured {[round(m) for m in measured]} ms")
    assert all(_within(m, TTFT_S) for m in measured), measured


def test_ttft_timeout_from_a_request_header(gw: tuple[str, Gateway]) -> None:
    url, gateway_ = gw
    with httpx.Client(base_url=url, timeout=30) as c:
        _, done = _stream(c, "ttft", {"x-switchpoint-ttft-timeout-ms": "400"})
        assert done
        first = _last(url, gateway_).attempts[0]
        assert first.error == "timeout" and _within(first.latency_ms, 0.4), first


def test_stall_after_commit_ends_the_stream_with_an_error_event(gw: tuple[str, Gateway]) -> None:
    url, gateway_ = gw
    with httpx.Client(base_url=url, timeout=30) as c:
        chunks, done = _stream(c, "stall")
    assert not done, "a stream that stalled after its first content must not pretend to finish"
    assert "error" in chunks[-1] and "stalled" in chunks[-1]["error"]["message"]
    texts = [ch["choices"][0]["delta"].get("content") or "" for ch in chunks[:-1] if ch.get("choices")]
    assert any(texts)
    (attempt,) = _last(url, gateway_).attempts
    assert attempt.deployment == "d-stall" and attempt.error == "timeout" and attempt.ttft_ms is not None
    stall_ms = attempt.latency_ms - attempt.ttft_ms
    print(f"\n== stall timeout {STALL_S * 1000:.0f} ms: measured {stall_ms:.0f} ms after the last chunk")
    assert _within(stall_ms, STALL_S), stall_ms


def test_stall_before_first_content_fails_over_invisibly(gw: tuple[str, Gateway]) -> None:
    url, gateway_ = gw
    with httpx.Client(base_url=url, timeout=30) as c:
        chunks, done = _stream(c, "stall-pre")
    assert done and not any("error" in ch for ch in chunks)
    first, second = _last(url, gateway_).attempts
    assert (first.deployment, first.error, second.deployment) == ("d-stall-pre", "timeout", "d-fast")
    assert _within(first.latency_ms, STALL_S), first.latency_ms


def test_total_timeout_fires_on_time(gw: tuple[str, Gateway]) -> None:
    url, gateway_ = gw
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/v1/chat/completions", json=chat("tell me", "total"), headers=AUTH)
    assert r.status_code == 200 and r.headers["x-switchpoint-deployment"] == "d-fast"
    first = _last(url, gateway_).attempts[0]
    assert first.error == "timeout" and _within(first.latency_ms, TOTAL_S), first


def test_request_deadline_header_caps_every_attempt(gw: tuple[str, Gateway]) -> None:
    url, gateway_ = gw
    with httpx.Client(base_url=url, timeout=30) as c:
        t0 = time.perf_counter()
        r = c.post(
            "/v1/chat/completions",
            json=chat("tell me", "total"),
            headers={**AUTH, "x-switchpoint-timeout-ms": "300"},
        )
        elapsed = time.perf_counter() - t0
        assert r.status_code == 504, r.text
        (attempt,) = _last(url, gateway_).attempts
        assert attempt.error == "timeout" and _within(attempt.latency_ms, 0.3), attempt
        assert elapsed < 0.6, "no attempt starts after the deadline"
        bad = c.post(
            "/v1/chat/completions",
            json=chat("x", "total"),
            headers={**AUTH, "x-switchpoint-timeout-ms": "soon"},
        )
        assert bad.status_code == 400 and "x-switchpoint-timeout-ms" in bad.text
