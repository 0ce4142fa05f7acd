"""CPU per request of a response-cache hit against a miss, in the gateway's own code.

    python bench/response_cache.py              # 2,000 requests of each
    python bench/response_cache.py --requests 500 --runs 5
    python bench/response_cache.py --backend sqlite   # the answers in a SQLite file

Calls the chat route in process (no sockets, no server) with a transport that answers every
upstream call with one canned OpenAI body, so a miss's CPU is the gateway's work for it (decode,
route, build, parse, encode, account) and nothing of an upstream's; a hit's is decode, route, the
key's hash, the lookup and the stored bytes. Misses use a different question each, hits the same
one. Reports process CPU time (``time.process_time``) per request, each configuration in fresh
processes (the median of ``--runs``). See docs/caching.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import msgspec

from switchpoint.api.app import create_app
from switchpoint.config import parse
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse

ANSWER = msgspec.json.encode(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Paris. " * 40}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 60, "completion_tokens": 80, "total_tokens": 140},
    }
)


class Canned:
    async def send(self, request: UpstreamRequest, **kw: Any) -> UpstreamResponse:
        return UpstreamResponse(status=200, headers={"content-type": "application/json"}, body=ANSWER)

    async def open_stream(self, request: UpstreamRequest, **kw: Any) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


def config(enabled: bool, backend: str, path: str) -> Any:
    section: dict[str, Any] = {"enabled": enabled, "backend": backend}
    if backend == "sqlite":
        section["path"] = path
    return parse(
        {
            "providers": {"p": {"family": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "env:K"}},
            "deployments": {"d": {"provider": "p", "model": "gpt-4o"}},
            "models": {"fast": "d"},
            "cache": {"response": section},
            "storage": {"enabled": False},
        },
        env={"K": "sk-x"},
    )


def body(text: str) -> bytes:
    messages = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": text}]
    return msgspec.json.encode({"model": "fast", "messages": messages, "temperature": 0})


async def measure(n: int, enabled: bool, backend: str) -> dict[str, float]:
    """One configuration, in this process (``main`` runs each in a fresh one)."""
    out: dict[str, float] = {}
    name = f"cache on ({backend})" if enabled else "no cache configured"
    with tempfile.TemporaryDirectory() as tmp:
        await _measure(n, enabled, backend, f"{tmp}/cache.db", name, out)
    return out


async def _measure(n: int, enabled: bool, backend: str, path: str, name: str, out: dict[str, float]) -> None:
    app = create_app(config(enabled, backend, path), transport=Canned())  # type: ignore[arg-type]
    gw = app.state.gateway
    gw.accounting.start()
    route = app.chat["/v1/chat/completions"]
    headers = {"content-type": "application/json"}
    for i in range(200):  # warm up
        await route(headers, body(f"warm {i}"))
    phases = [("miss", [body(f"question {i}") for i in range(n)])]
    if enabled:
        await route(headers, body("the same question"))
        await asyncio.to_thread(getattr(gw.caches.response.backend, "flush", lambda: None))
        phases.append(("hit", [body("the same question")] * n))
    for phase, bodies in phases:
        gc.collect()
        t0 = time.process_time()
        for b in bodies:
            reply = await route(headers, b)
            assert reply.status == 200, reply.body
        await gw.accounting.flush()
        flush = getattr(gw.caches.response.backend, "flush", None) if enabled else None
        if flush is not None:  # the sqlite writer thread's stores count too
            await asyncio.to_thread(flush)
        out[f"{name}: {phase}"] = (time.process_time() - t0) / n * 1e6
    await gw.accounting.stop()
    await gw.caches.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument(
        "--runs", type=int, default=3, help="fresh processes per configuration (the median is shown)"
    )
    p.add_argument("--backend", choices=["memory", "sqlite"], default="memory")
    p.add_argument("--one", choices=["on", "off"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(measure(args.requests, args.one == "on", args.backend))))
        return
    results: dict[str, list[float]] = {}
    for _ in range(args.runs):
        for one in ("off", "on"):
            cmd = [sys.executable, __file__, "--one", one, "--requests", str(args.requests)]
            cmd += ["--backend", args.backend]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            for label, us in json.loads(done.stdout.strip().splitlines()[-1]).items():
                results.setdefault(label, []).append(us)
    for label, values in results.items():
        print(
            f"{label:<28} {statistics.median(values):8.1f} us CPU per request (runs: {', '.join(f'{v:.1f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
