"""Instructions the chat route costs per request for one caller, in process: no HTTP server, no
load generator, an upstream that answers at once — so the count holds only the gateway's own
work per request (routing, the gate, execution, encoding, the ledger's hand-off) and does not
move with the machine's load (``bench/instructions.py`` counts the whole served process, whose
fixed background work is spread over however many requests the load got done).

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/governance_path.py --caller limited --requests 2000

Run it for two request counts and take the difference over the difference of counts (that
removes start-up): ``--measure`` does exactly that, under callgrind, for each caller:

    python bench/governance_path.py --measure master,limited,limited-redis

Callers: ``master``; ``virtual`` (a virtual key without limits); ``limited`` (a virtual key with
RPM, TPM and a daily budget, far above what the run uses; the state in memory);
``limited-redis`` (the same, the state in Redis at 127.0.0.1:6379 under a prefix of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

CALLERS = ("master", "virtual", "limited", "limited-redis")
MASTER = "sk-bench-master-key"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}
).encode()
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17},
    }
).encode()


class InstantUpstream:
    """The same chat completion for every call, at once."""

    async def send(self, request: Any, **kw: Any) -> Any:
        from switchpoint.providers.base import UpstreamResponse

        return UpstreamResponse(status=200, headers={"content-type": "application/json"}, body=ANSWER)

    async def open_stream(self, request: Any, **kw: Any) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        return None


async def run(caller: str, n: int, work: Path) -> None:
    from switchpoint.api.app import OPENAI, Gateway
    from switchpoint.api.chat import ChatRoute
    from switchpoint.config import parse
    from switchpoint.governance import manage

    prefix = f"bench-gov-{uuid.uuid4().hex[:8]}:"
    doc: dict[str, Any] = {
        "server": {"master_key": "env:BENCH_MASTER"},
        "providers": {
            "up": {"family": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "env:BENCH_MASTER"}
        },
        "deployments": {"bench-model": {"provider": "up", "model": "gpt-4o-mini"}},
        "models": {"bench": "bench-model"},
        "storage": {"url": f"sqlite:///{work / 'ledger.db'}", "flush_interval_ms": 200},
    }
    if caller == "limited-redis":
        doc["state"] = {"redis_url": REDIS_URL, "prefix": prefix}
    gw = Gateway(parse(doc, env={"BENCH_MASTER": MASTER}), InstantUpstream())
    await gw.startup()
    try:
        secret = MASTER
        if caller != "master":
            assert gw.auth.ring is not None
            fields: dict[str, Any] = {"name": "bench"}
            if caller.startswith("limited"):
                fields["limits"] = {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000}
                fields["budgets"] = {"daily": 1e9}
            spec = manage.decode(json.dumps(fields).encode(), manage.KeyIn, "key")
            _, secret = await asyncio.to_thread(manage.create_key, gw.auth.ring.engine, spec)
        route = ChatRoute(gw, OPENAI, "/v1/chat/completions")
        headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
        for _ in range(50):  # warm: the key loaded, budgets seeded, caches filled
            reply = await route(headers, BODY)
            assert reply.status == 200, reply.body
        for _ in range(n):
            await route(headers, BODY)
        await gw.gate.state.drain()
    finally:
        await gw.shutdown()
        if caller == "limited-redis":
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
            client.close()


def count(caller: str, n: int) -> int:
    out = Path(tempfile.mkdtemp(prefix="govbench-")) / "callgrind.out"
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--caller",
            caller,
            "--requests",
            str(n),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    for line in reversed(out.read_text(errors="replace").splitlines()):
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit("no totals in the callgrind output")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--caller", choices=CALLERS, default="master")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--measure", help="comma list of callers: count each under callgrind")
    p.add_argument("--low", type=int, default=200)
    p.add_argument("--high", type=int, default=1200)
    args = p.parse_args()
    if args.measure:
        rows = {}
        for caller in [c.strip() for c in args.measure.split(",") if c.strip()]:
            a, b = count(caller, args.low), count(caller, args.high)
            rows[caller] = (b - a) // (args.high - args.low)
            print(f"{caller:14} {rows[caller]:>10,} instructions/request", flush=True)
        base = rows.get("master")
        if base:
            for caller, v in rows.items():
                print(f"{caller:14} {100.0 * (v - base) / base:+6.1f}% over master")
        print(json.dumps(rows))
        return
    with tempfile.TemporaryDirectory(prefix="govbench-") as work:
        asyncio.run(run(args.caller, args.requests, Path(work)))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
