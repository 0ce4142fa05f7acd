"""The client's latency with shadow traffic off and at 100% sampling, in the same run.

    python bench/shadow.py                     # 6 interleaved rounds x 200 requests per mode
    python bench/shadow.py --rounds 10 --requests 300 --concurrency 8

The simulator runs in a thread of its own (its own event loop), both deployments scripted to
answer after 20 ms. The gateway runs in process, its chat route called over ASGI with the answer
streamed back as it is sent (``switchpoint.evals.asgi``); with shadow on, every answered request
is also copied to the candidate alias on the gateway's own loop, so what the copies cost the
client's requests shows in their latency. Rounds alternate the two modes; each prints p50 and
p95 of the client's latency and the ratio of the two modes over all rounds. See docs/evals.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from typing import Any

import httpx
import uvicorn

from switchpoint.api.app import create_app
from switchpoint.config import parse
from switchpoint.evals.asgi import StreamingASGITransport
from switchpoint.evals.metrics import percentile
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_simulator
from switchpoint.simulator.behavior import Behavior


def serve_simulator(port: int) -> uvicorn.Server:
    sim = create_simulator(SimConfig(default=Behavior(ttft_ms=20, tokens_per_s=0)))
    server = uvicorn.Server(uvicorn.Config(sim, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server


def config(sim: str, sample: float) -> Any:
    return parse(
        {
            "providers": {"sim": {"family": "openai", "base_url": f"{sim}/openai/v1", "simulated": True}},
            "deployments": {
                "live": {"provider": "sim", "model": "live-model"},
                "candidate": {"provider": "sim", "model": "candidate-model"},
            },
            "models": {"cand": "candidate"},
            "routing": {
                "default": {
                    "name": "main",
                    "candidates": ["live"],
                    "shadow": {"alias": "cand", "sample": sample},
                }
            },
            "storage": {"enabled": False},
        }
    )


async def measure(sim: str, sample: float, requests: int, concurrency: int) -> list[float]:
    app = create_app(config(sim, sample))
    out: list[float] = []
    limit = asyncio.Semaphore(concurrency)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = StreamingASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=30) as client:

            async def one(i: int) -> None:
                body = {"model": "auto", "messages": [{"role": "user", "content": f"question {i}"}]}
                async with limit:
                    start = time.perf_counter()
                    resp = await client.post("/v1/chat/completions", json=body)
                    out.append(time.perf_counter() - start)
                    assert resp.status_code == 200, resp.text

            await asyncio.gather(*(one(i) for i in range(requests)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--port", type=int, default=8931)
    args = ap.parse_args()
    server = serve_simulator(args.port)
    sim = f"http://127.0.0.1:{args.port}"
    all_: dict[str, list[float]] = {"off": [], "100%": []}
    try:
        for r in range(args.rounds):
            for mode, sample in (
                (("off", 0.0), ("100%", 1.0)) if r % 2 == 0 else (("100%", 1.0), ("off", 0.0))
            ):
                lat = asyncio.run(measure(sim, sample, args.requests, args.concurrency))
                all_[mode] += lat
                print(
                    f"round {r + 1} shadow {mode:>4}: p50 {percentile(lat, 0.5) * 1000:6.2f} ms, p95 {percentile(lat, 0.95) * 1000:6.2f} ms"
                )
    finally:
        server.should_exit = True
    off, on = all_["off"], all_["100%"]
    print("\n| shadow | requests | p50 ms | p95 ms | mean ms |\n|---|---|---|---|---|")
    for mode, lat in (("off", off), ("100%", on)):
        print(
            f"| {mode} | {len(lat)} | {percentile(lat, 0.5) * 1000:.2f} | {percentile(lat, 0.95) * 1000:.2f} | {statistics.mean(lat) * 1000:.2f} |"
        )
    print(f"\np50 ratio (100% / off): {percentile(on, 0.5) / percentile(off, 0.5):.3f}")


if __name__ == "__main__":
    main()
