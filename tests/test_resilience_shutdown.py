"""Graceful shutdown: stop accepting, let requests and streams in flight finish (up to a
deadline), report not-ready while draining, account for everything before exiting."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from resilience_harness import AUTH, ENV, Server, chat, document, provider
from switchpoint.api.app import Gateway, _drain_on_sigterm, create_app
from switchpoint.config import parse
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_sim

#: 20 pieces at 20 per second: a stream of about one second.
SLOW = Behavior(output_tokens=20, tokens_per_s=20)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig(models={"slow": SLOW}))) as server:
        yield server.url


def _app(sim_url: str, drain_s: float) -> Any:
    doc = document(
        {"p": provider(sim_url, "openai")}, {"d-slow": {"provider": "p", "model": "slow"}}, {"slow": "d-slow"}
    )
    return create_app(parse(doc, env=ENV), shutdown_timeout_s=drain_s)


def _read_stream(url: str, out: dict[str, Any], started: threading.Event) -> None:
    with (
        httpx.Client(base_url=url, timeout=30) as c,
        c.stream(
            "POST", "/v1/chat/completions", json=chat("tell me a story", "slow", stream=True), headers=AUTH
        ) as r,
    ):
        lines = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                lines.append(line[6:])
                started.set()
        out["status"] = r.status_code
        out["lines"] = lines
        out["ended"] = time.monotonic()


def test_streams_in_flight_finish_and_new_connections_are_refused(sim: str) -> None:
    app = _app(sim, drain_s=5)
    gw: Gateway = app.state.gateway
    server = Server(app, graceful_s=5).start()
    out: dict[str, Any] = {}
    started = threading.Event()
    reader = threading.Thread(target=_read_stream, args=(server.url, out, started))
    reader.start()
    assert started.wait(10), "the stream started"
    assert gw.inflight == 1
    stop_at = time.monotonic()
    server.begin_stop()
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)
    reader.join(15)
    assert server.join(15), "the server exited once the stream was done"
    assert out["status"] == 200 and out["lines"][-1] == "[DONE]", "the stream finished normally"
    text = "".join(
        (json.loads(d)["choices"][0]["delta"].get("content") or "")
        for d in out["lines"][:-1]
        if json.loads(d).get("choices")
    )
    assert text.startswith("[simulated slow]")
    assert out["ended"] - stop_at > 0.3, "the stream outlived the stop signal"
    assert gw.inflight == 0 and gw.draining and not gw.ready
    assert gw.accounting.requests == 1, "the stream was accounted before exit"


def test_the_drain_has_a_deadline_and_the_cut_stream_ends_with_an_error_event(sim: str) -> None:
    app = _app(sim, drain_s=1)
    gw: Gateway = app.state.gateway
    server = Server(app, graceful_s=1).start()
    body = chat("story [[sim output_tokens=100 tokens_per_s=20]]", "slow", stream=True)  # about 5 s
    with (
        httpx.Client(base_url=server.url, timeout=30) as c,
        c.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as r,
    ):
        lines = r.iter_lines()
        next(lines)
        t0 = time.monotonic()
        server.begin_stop()
        data = [line[6:] for line in lines if line.startswith("data: ")]
    assert server.join(10)
    assert time.monotonic() - t0 < 3, (
        "the server stopped at its deadline, not when the stream would have ended"
    )
    assert data and data[-1] != "[DONE]", "the stream did not pretend to be complete"
    error = json.loads(data[-1])["error"]
    assert error["code"] == "shutting_down" and "shutting down" in error["message"]
    stats = gw.accounting.snapshot()
    assert stats["requests"] == 1 and stats["failed"] == 1, "the cut stream was accounted as failed"
    assert gw.draining and not gw.ready


async def test_drained_waits_for_requests_in_flight() -> None:
    from switchpoint.config import parse as parse_config

    gw = Gateway(parse_config({}, env={}), shutdown_timeout_s=1)
    gw.inflight = 2
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, gw.left)
    loop.call_later(0.1, gw.left)
    t0 = time.monotonic()
    assert await gw.drained(2) is True
    assert 0.08 < time.monotonic() - t0 < 1
    gw.inflight = 1
    assert await gw.drained(0.1) is False, "gives up at the deadline"


def test_sigterm_flips_readiness_then_runs_the_servers_handler() -> None:
    from switchpoint.config import parse as parse_config

    gw = Gateway(parse_config({}, env={}))
    gw.ready = True
    seen: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        _drain_on_sigterm(gw)
        signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, original)
    assert seen == [signal.SIGTERM]
    assert gw.draining and not gw.ready
