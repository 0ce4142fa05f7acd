"""CPU per upstream request of each HTTP client the gateway could use, with pytest-benchmark.

    .venv/bin/pytest bench/micro/test_transport_bench.py --benchmark-only -s

Against a fast local upstream in its own process (``fast_upstream.py``), each client does rounds
of N requests, 4 at a time, on one event loop: a plain JSON ``POST`` and a 20-chunk SSE stream
read chunk by chunk. What counts is ``time.process_time`` over a round divided by N (all the
client process's threads, so pyreqwest's Rust runtime is counted too): the printed
``cpu µs/request`` and ``extra_info["cpu_us_per_request"]`` in the benchmark JSON. Wall time per
round is what pytest-benchmark reports. ``aiohttp`` and ``h1`` go through the ``Transport``
protocol the executor uses (with its timeouts set, as the executor sets them); ``pyreqwest`` is
its async client called directly in a few lines (no error translation).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from switchpoint.executor import H1Transport
from switchpoint.providers.base import UpstreamRequest

N = 2000
CONCURRENCY = 4
ROUNDS = 7
PLAIN_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say something short."}]}'
STREAM_BODY = PLAIN_BODY[:-1] + b',"stream":true}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

One = Callable[[], Awaitable[int]]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    script = Path(__file__).with_name("fast_upstream.py")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _transport_calls(transport: Any, url: str, stream: bool) -> One:
    if not stream:
        req = UpstreamRequest(method="POST", url=url, headers=HEADERS, body=PLAIN_BODY)

        async def plain() -> int:
            resp = await transport.send(req, timeout_s=60.0, connect_timeout_s=5.0, read_timeout_s=None)
            return len(resp.body)

        return plain
    sreq = UpstreamRequest(method="POST", url=url, headers=HEADERS, body=STREAM_BODY, stream=True)

    async def streamed() -> int:
        s = await transport.open_stream(
            sreq, connect_timeout_s=5.0, read_timeout_s=30.0, total_timeout_s=600.0
        )
        size = 0
        try:
            async for chunk in s.chunks():
                size += len(chunk)
        finally:
            s.close()
        return size

    return streamed


def _pyreqwest_calls(client: Any, url: str, stream: bool) -> One:
    if not stream:

        async def plain() -> int:
            resp = await client.post(url).headers(HEADERS).body_bytes(PLAIN_BODY).build().send()
            return len(await resp.bytes())

        return plain

    async def streamed() -> int:
        size = 0
        async with client.post(url).headers(HEADERS).body_bytes(STREAM_BODY).build_streamed() as resp:
            reader = resp.body_reader
            while (chunk := await reader.read_chunk()) is not None:
                size += len(chunk)
        return size

    return streamed


async def _make(name: str, url: str, stream: bool) -> tuple[One, Callable[[], Awaitable[None]]]:
    if name == "aiohttp":
        from aiohttp_transport import AiohttpTransport

        t: Any = AiohttpTransport(pool_size=64)
        return _transport_calls(t, url, stream), t.close
    if name == "h1":
        t = H1Transport(pool_size=64)
        return _transport_calls(t, url, stream), t.close
    from datetime import timedelta

    from pyreqwest.client import ClientBuilder

    client = (
        ClientBuilder()
        .max_connections(64)
        .connect_timeout(timedelta(seconds=5))
        .timeout(timedelta(seconds=60))
        .gzip(True)
        .deflate(True)
        .user_agent("switchpoint")
        .build()
    )
    return _pyreqwest_calls(client, url, stream), client.close


async def _round(one: One, n: int) -> None:
    async def worker(count: int) -> None:
        for _ in range(count):
            assert await one() > 0

    await asyncio.gather(*(worker(n // CONCURRENCY) for _ in range(CONCURRENCY)))


@pytest.mark.parametrize("loop_kind", ["uvloop", "asyncio"])
@pytest.mark.parametrize("kind", ["plain", "stream"])
@pytest.mark.parametrize("client", ["aiohttp", "h1", "pyreqwest"])
def test_transport_cpu(benchmark: Any, upstream: str, client: str, kind: str, loop_kind: str) -> None:
    if client in ("pyreqwest", "aiohttp"):
        pytest.importorskip(client)
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        one, close = loop.run_until_complete(_make(client, upstream, kind == "stream"))
        loop.run_until_complete(_round(one, 400))  # connect, warm caches
        cpu: list[float] = []

        def measure() -> None:
            t0 = time.process_time()
            loop.run_until_complete(_round(one, N))
            cpu.append((time.process_time() - t0) / N * 1e6)

        benchmark.pedantic(measure, rounds=ROUNDS, iterations=1)
        loop.run_until_complete(close())
    finally:
        loop.close()
    us = statistics.median(cpu)
    benchmark.extra_info["cpu_us_per_request"] = round(us, 1)
    print(
        f"\n== {client:9} {kind:6} {loop_kind:7} cpu {us:6.1f} µs/request (min {min(cpu):.1f}, N={N}x{ROUNDS})"
    )
