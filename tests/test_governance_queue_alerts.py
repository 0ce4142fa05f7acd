"""The priority queue (high before normal before low, the maximum wait, the bound, a
deployment's in-flight cap) and budget alerts (a signed webhook, once per threshold and period,
also when two gateways share Redis), on both state backends."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance_harness import backend, bearer, configured_url_wins, doc, make_key, openai_body
from resilience_harness import AUTH, UPSTREAM_KEY, Server, gateway
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim

__all__ = ["backend", "configured_url_wins"]

PRICE = {"input": 10.0, "output": 10.0}


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


async def _staggered(
    url: str, calls: list[tuple[dict[str, Any], dict[str, str]]], gap_s: float = 0.1
) -> list[tuple[float, httpx.Response]]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        t0 = time.monotonic()

        async def one(i: int, body: dict[str, Any], headers: dict[str, str]) -> tuple[float, httpx.Response]:
            await asyncio.sleep(gap_s * i)
            r = await c.post("/v1/chat/completions", json=body, headers=headers)
            return time.monotonic() - t0, r

        return await asyncio.gather(*[one(i, b, h) for i, (b, h) in enumerate(calls)])


def test_waiters_are_served_by_priority(sim: str, tmp_path: Path, backend: dict[str, Any] | None) -> None:
    with gateway(doc(sim, tmp_path, backend, queue={"max_wait_s": 20})) as (url, _, _):
        secret, _ = make_key(url, limits={"max_parallel": 1}, priority="low")
        # the holder keeps the slot long enough for all three waiters to be queued before it
        # comes back, even on a loaded machine: the order is then the queue's alone
        hold = openai_body("[[sim latency_ms=1500]] x")
        slow = openai_body("[[sim latency_ms=300]] x")
        h = bearer(secret)
        calls = [
            (hold, h),  # holds the slot
            (slow, h),  # the key's default priority: low
            (slow, {**h, "x-switchpoint-priority": "normal"}),
            (slow, {**h, "x-switchpoint-priority": "high"}),
        ]
        out = asyncio.run(_staggered(url, calls))
        assert [r.status_code for _, r in out] == [200] * 4
        done = [t for t, _ in out]
        # the first, then high, normal, low: each about one upstream call after the one before
        assert done[0] < done[3] < done[2] < done[1]


def test_the_queue_has_a_maximum_wait_and_a_size(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    with gateway(doc(sim, tmp_path, backend, queue={"max_wait_s": 0.5, "max_size": 1})) as (url, gw, _):
        secret, _ = make_key(url, limits={"max_parallel": 1})
        slow = openai_body("[[sim latency_ms=1500]] x")
        h = bearer(secret)
        out = asyncio.run(_staggered(url, [(slow, h), (slow, h), (slow, h)], gap_s=0.1))
        (_t1, first), (t2, waited), (t3, overflow) = out
        assert first.status_code == 200
        assert waited.status_code == 429 and waited.json()["error"]["code"] == "queue_timeout"
        assert 0.5 <= t2 < 1.4  # refused after its maximum wait, before the slot came back
        assert overflow.status_code == 429  # the queue (size 1) was full: refused at once
        assert overflow.json()["error"]["code"] == "too_many_parallel_requests"
        assert t3 < 0.5
        stats = httpx.get(f"{url}/admin/stats", headers=AUTH, timeout=10)
        assert stats.status_code == 200
        assert gw.gate.queue.timed_out == 1 and gw.gate.queue.overflowed == 1


def test_a_deployment_at_its_in_flight_cap_queues_requests(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None
) -> None:
    deployments = {"d-gpt": {"provider": "p", "model": "gpt-4o-mini", "limits": {"max_parallel": 1}}}
    d = doc(
        sim, tmp_path, backend, deployments=deployments, models={"fast": "d-gpt"}, queue={"max_wait_s": 10}
    )
    with gateway(d) as (url, _, _):
        slow = openai_body("[[sim latency_ms=300]] x")
        out = asyncio.run(_staggered(url, [(slow, AUTH)] * 3, gap_s=0.05))
        assert [r.status_code for _, r in out] == [200, 200, 200]
        done = sorted(t for t, _ in out)
        assert done[2] - done[0] >= 0.5  # one at a time


class _Receiver:
    """A local webhook endpoint: keeps every POST (headers, body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def thresholds(self) -> list[float]:
        return sorted(json.loads(b)["threshold"] for _, b in self.posts)


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    try:
        yield r
    finally:
        r.close()


def _alert_doc(sim: str, tmp_path: Path, state: dict[str, Any] | None, hook: str) -> dict[str, Any]:
    return doc(
        sim,
        tmp_path,
        state,
        deployments={"d-gpt": {"provider": "p", "model": "gpt-4o-mini", "price": PRICE}},
        models={"fast": "d-gpt"},
        alerts={"webhook_url": hook, "secret": "env:RES_UPSTREAM_KEY", "thresholds": [0.5, 0.8, 1.0]},
    )


def _spend_until_refused(urls: list[str], secret: str) -> int:
    """Requests of ~$0.0012 each (100 output tokens) against a $0.01 budget, round robin."""
    body = openai_body("[[sim output_tokens=100]] x", max_tokens=100)
    for i in range(40):
        r = httpx.post(
            f"{urls[i % len(urls)]}/v1/chat/completions", json=body, headers=bearer(secret), timeout=30
        )
        if r.status_code == 429:
            return i
        assert r.status_code == 200, r.text
        time.sleep(0.05)
    raise AssertionError("the budget never refused")


def _wait_posts(receiver: _Receiver, n: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(receiver.posts) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # and nothing more comes


def _check_signatures(receiver: _Receiver) -> None:
    for headers, body in receiver.posts:
        expected = "sha256=" + hmac.new(UPSTREAM_KEY.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-switchpoint-signature"], expected)
        assert headers["content-type"] == "application/json"


def test_alerts_fire_once_per_threshold_signed(
    sim: str, tmp_path: Path, backend: dict[str, Any] | None, receiver: _Receiver
) -> None:
    with gateway(_alert_doc(sim, tmp_path, backend, receiver.url)) as (url, gw, _):
        secret, key = make_key(url, budgets={"daily": 0.01})
        served = _spend_until_refused([url], secret)
        assert served >= 6
        _wait_posts(receiver, 2)
        assert receiver.thresholds() == [0.5, 0.8]  # the worst case keeps spend under 100%
        _check_signatures(receiver)
        doc0 = json.loads(receiver.posts[0][1])
        assert doc0["budget"] == f"key '{key['name']}' daily"
        assert doc0["limit_usd"] == 0.01 and doc0["period"] == "daily"
        assert doc0["resets_at"].endswith("T00:00:00Z")
        assert gw.gate.alerter.fired == {("key", "daily", 0.5): 1, ("key", "daily", 0.8): 1}
        metrics = httpx.get(f"{url}/metrics", headers=AUTH, timeout=10).text.splitlines()
        assert 'switchpoint_budget_alerts_total{scope="key",period="daily",threshold="0.5"} 1' in metrics
        assert 'switchpoint_budget_alerts_total{scope="key",period="daily",threshold="0.8"} 1' in metrics
        assert 'switchpoint_governance_refused_total{kind="budget_exceeded"} 1' in metrics


def test_two_gateways_sharing_redis_send_each_alert_once(
    sim: str, tmp_path: Path, receiver: _Receiver
) -> None:
    from governance_harness import REDIS_URL, drop_prefix, redis_problem

    problem = redis_problem()
    if problem is not None:
        pytest.skip(problem)
    state = {"redis_url": REDIS_URL, "prefix": f"sp-test-alerts-{time.time_ns()}:"}
    d = _alert_doc(sim, tmp_path, state, receiver.url)
    try:
        with gateway(d) as (a, _, _), gateway(d) as (b, _, _):
            secret, _ = make_key(a, budgets={"daily": 0.01})
            _spend_until_refused([a, b], secret)
            _wait_posts(receiver, 2)
            assert receiver.thresholds() == [0.5, 0.8]
            _check_signatures(receiver)
    finally:
        drop_prefix(state["prefix"])
