"""A 429 with ``Retry-After: 2`` is honoured: no call reaches that deployment before 2 s.

Alone, the deployment is retried after the pause when the pause is short enough to wait for
(``retry_after_max_s``); with another candidate, traffic fails over at once and the paused
deployment gets no call until its pause is over.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from resilience_harness import AUTH, FaultInjector, Server, chat, document, gateway, provider, records
from switchpoint.simulator import SimConfig, create_app

PAUSE_S = 2.0


def first_call_limited(n: int, rng: random.Random) -> dict[str, str]:
    return {"x-sim-status": "429", "x-sim-retry-after-s": "2"} if n == 0 else {}


@pytest.fixture
def sim() -> Iterator[tuple[str, FaultInjector]]:
    injector = FaultInjector(create_app(SimConfig()), {"limited": first_call_limited})
    with Server(injector) as server:
        yield server.url, injector


def _doc(sim_url: str, models: dict[str, Any], wait_s: float) -> dict[str, Any]:
    return document(
        {
            "p-limited": provider(sim_url, "anthropic", "limited"),
            "p-other": provider(sim_url, "openai", "other"),
        },
        {
            "d-limited": {"provider": "p-limited", "model": "sim-limited"},
            "d-other": {"provider": "p-other", "model": "sim-other"},
        },
        models,
        resilience={"retry": {"retry_after_max_s": wait_s, "backoff_base_s": 0.01}},
    )


def test_alone_the_deployment_is_retried_only_after_the_pause(sim: tuple[str, FaultInjector]) -> None:
    sim_url, injector = sim
    doc = _doc(sim_url, {"solo": "d-limited"}, wait_s=5)
    with gateway(doc) as (url, gw, _), httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/v1/chat/completions", json=chat("hello", "solo"), headers=AUTH)
        assert r.status_code == 200, r.text
        first, second = records(url, gw)[-1].attempts
    assert (first.error, first.status, second.error) == ("rate_limited", 429, None)
    calls = injector.of("limited")
    assert len(calls) == 2
    gap = calls[1].at - calls[0].at
    print(f"\n== Retry-After {PAUSE_S:g} s: the retry came {gap:.3f} s after the 429")
    assert gap >= PAUSE_S


def test_a_pause_longer_than_the_wait_limit_goes_back_to_the_client(sim: tuple[str, FaultInjector]) -> None:
    sim_url, injector = sim
    with gateway(_doc(sim_url, {"solo": "d-limited"}, wait_s=1)) as (url, _, _):
        r = httpx.post(f"{url}/v1/chat/completions", json=chat("hello", "solo"), headers=AUTH, timeout=30)
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert len(injector.of("limited")) == 1, "not retried before the pause is over"


def test_with_a_backup_traffic_moves_and_the_paused_deployment_waits(sim: tuple[str, FaultInjector]) -> None:
    sim_url, injector = sim
    doc = _doc(sim_url, {"pair": ["d-limited", "d-other"]}, wait_s=1)
    with gateway(doc) as (url, _, _), httpx.Client(base_url=url, timeout=30) as c:
        t0 = time.monotonic()
        served = []
        while time.monotonic() - t0 < PAUSE_S + 0.6:
            r = c.post("/v1/chat/completions", json=chat("hello", "pair"), headers=AUTH)
            assert r.status_code == 200, r.text
            served.append((time.monotonic() - t0, r.headers["x-switchpoint-deployment"]))
            time.sleep(0.1)
    limited = injector.of("limited")
    assert limited[0].injected, "the first call was the scripted 429"
    later = [c.at - limited[0].at for c in limited[1:]]
    assert later and min(later) >= PAUSE_S, later
    assert served[0][1] == "d-other", "the first request failed over at once"
    assert all(dep == "d-other" for at, dep in served if at < PAUSE_S - 0.1)
    assert served[-1][1] == "d-limited", "after the pause the first candidate serves again"
