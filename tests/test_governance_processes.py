"""Governance across processes, proved on real ``switchpoint serve`` processes sharing Redis
and one ledger database (PostgreSQL, a schema of the test's own; SQLite when it is absent):

- three gateways, 300 concurrent requests from one key with a $1.00 daily budget against the
  simulated deployment: the ledger's spend is at most $1.00 plus one request's estimate error,
  every refusal is the clean ``budget_exceeded`` 429, nothing else fails;
- three gateways, a key with RPM 60 hammered for one minute: 60 ± 1 accepted;
- ``serve --workers 2`` without ``state.redis_url`` refuses to start when something is limited.

The figures are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance_harness import REDIS_URL, drop_prefix, redis_problem
from resilience_harness import Server, _free_port
from switchpoint.config.storage import ENV_URL
from switchpoint.simulator import Behavior, SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store.engine import make_engine
from switchpoint.store.queries import usage

from store_db import PgSchema, postgres_problem

MASTER = "sk-governance-master-0123456789"
AUTH = {"authorization": f"Bearer {MASTER}"}
#: USD per million tokens: a request of ~12 tokens in and 100 out costs ~$0.0112.
PRICE_PER_M = 100.0


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig(default=Behavior(latency_ms=150, output_tokens=100)))) as server:
        yield server.url


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(ledger URL, Redis prefix) shared by the processes; removed afterwards."""
    problem = redis_problem()
    if problem is not None:
        pytest.skip(problem)
    prefix = f"sp-test-proc-{uuid.uuid4().hex[:10]}:"
    schema = PgSchema() if postgres_problem() is None else None
    url = schema.url if schema is not None else f"sqlite:///{tmp_path / 'ledger.db'}"
    try:
        yield url, prefix
    finally:
        drop_prefix(prefix)
        if schema is not None:
            schema.drop()


def _config(tmp: Path, sim: str, db: str, prefix: str | None, *, limits: str = "") -> Path:
    cfg = tmp / f"gateway-{uuid.uuid4().hex[:6]}.yaml"
    state = f'state: {{redis_url: "{REDIS_URL}", prefix: "{prefix}"}}' if prefix else ""
    cfg.write_text(
        f"""
server: {{master_key: env:GOV_MASTER_KEY}}
providers:
  sim: {{family: openai, base_url: "{sim}/openai/v1", api_key: env:GOV_MASTER_KEY}}
deployments:
  d-sim: {{provider: sim, model: gpt-4o-mini, price: {{input: {PRICE_PER_M}, output: {PRICE_PER_M}}}{limits}}}
models:
  fast: d-sim
storage:
  url: "{db}"
  flush_interval_ms: 50
{state}
"""
    )
    return cfg


class Gateways:
    """``n`` ``switchpoint serve`` processes on one config."""

    def __init__(self, cfg: Path, n: int, tmp: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self.logs: list[Path] = []
        env = {**os.environ, "GOV_MASTER_KEY": MASTER}
        env.pop(ENV_URL, None)
        for i in range(n):
            port = _free_port()
            log = tmp / f"serve-{i}-{port}.log"
            self.logs.append(log)
            with log.open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "switchpoint.cli",
                            "serve",
                            "--config",
                            str(cfg),
                            "--port",
                            str(port),
                        ],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            self.urls.append(f"http://127.0.0.1:{port}")
        for proc, url, log in zip(self.procs, self.urls, self.logs, strict=True):
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"a gateway did not start:\n{log.read_text()}")
                time.sleep(0.1)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _make_key(url: str, **fields: Any) -> dict[str, Any]:
    r = httpx.post(
        f"{url}/admin/keys", json={"name": f"proc-{uuid.uuid4().hex[:6]}", **fields}, headers=AUTH, timeout=30
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _ledger(db: str, key_id: str, n: int, timeout_s: float = 20.0) -> tuple[float, int]:
    engine = make_engine(db)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = usage(engine, filters={"key": key_id})
            got = rows[0].requests if rows else 0
            if got >= n or time.monotonic() > deadline:
                return (rows[0].cost_usd if rows else 0.0), got
            time.sleep(0.1)
    finally:
        engine.dispose()


async def _burst(urls: list[str], n: int, secret: str) -> list[httpx.Response]:
    body = {
        "model": "fast",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Say something, please."}],
    }
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as c:
        return await asyncio.gather(
            *[
                c.post(
                    f"{urls[i % len(urls)]}/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {secret}"},
                )
                for i in range(n)
            ]
        )


def test_three_gateways_300_concurrent_requests_hold_a_one_dollar_budget(
    sim: str, tmp_path: Path, shared: tuple[str, str]
) -> None:
    db, prefix = shared
    gws = Gateways(_config(tmp_path, sim, db, prefix), 3, tmp_path)
    try:
        key = _make_key(gws.urls[0], budgets={"daily": 1.0})
        out = asyncio.run(_burst(gws.urls, 300, key["secret"]))
        ok = [r for r in out if r.status_code == 200]
        refused = [r for r in out if r.status_code == 429]
        other = [r for r in out if r.status_code not in (200, 429)]
        assert not other, [(r.status_code, r.text) for r in other[:3]]
        for r in refused:
            err = r.json()["error"]
            assert err["type"] == "budget_exceeded" and err["code"] == "budget_exceeded", r.text
            assert "daily" in err["message"] and "resets at" in err["message"]
            assert r.headers["retry-after"]
        spent, rows = _ledger(db, key["id"], len(out))
        costs = [
            (r.json()["usage"]["prompt_tokens"] + r.json()["usage"]["completion_tokens"]) * PRICE_PER_M / 1e6
            for r in ok
        ]
        # a request's estimate error: its worst case (the reservation) minus what it cost
        prompt = ok[0].json()["usage"]["prompt_tokens"]
        reserved = (int((prompt * 1.25 + 8) + 0.999) + 100) * PRICE_PER_M / 1e6
        print(
            f"\n300 concurrent requests over 3 gateways, $1.00 budget: {len(ok)} answered, "
            f"{len(refused)} refused (budget_exceeded), {len(other)} other failures; "
            f"ledger: {rows} rows, spend ${spent:.6f}; one request costs ${max(costs):.6f} and "
            f"reserves ${reserved:.6f}"
        )
        assert rows == 300
        assert spent <= 1.0 + max(0.0, max(costs) - reserved) + 1e-9
        assert len(ok) >= 80  # the budget was used, not refused wholesale
    finally:
        gws.stop()


def test_rpm_60_across_three_gateways_for_one_minute(
    sim: str, tmp_path: Path, shared: tuple[str, str]
) -> None:
    db, prefix = shared
    gws = Gateways(_config(tmp_path, sim, db, prefix), 3, tmp_path)
    try:
        key = _make_key(gws.urls[0], limits={"rpm": 60})
        headers = {"authorization": f"Bearer {key['secret']}"}
        body = {
            "model": "fast",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "[[sim latency_ms=1]] hi"}],
        }

        async def hammer() -> tuple[int, int, int]:
            accepted = refused = other = 0
            async with httpx.AsyncClient(timeout=30) as c:
                end = time.monotonic() + 60.0
                i = 0

                async def client(offset: int) -> None:
                    nonlocal accepted, refused, other, i
                    while time.monotonic() < end:
                        i += 1
                        r = await c.post(
                            f"{gws.urls[(i + offset) % 3]}/v1/chat/completions", json=body, headers=headers
                        )
                        if r.status_code == 200:
                            accepted += 1
                        elif r.status_code == 429:
                            refused += 1
                        else:
                            other += 1
                        await asyncio.sleep(0.05)

                await asyncio.gather(*[client(k) for k in range(6)])
            return accepted, refused, other

        accepted, refused, other = asyncio.run(hammer())
        print(
            f"\nRPM 60 over 3 gateways for 60 s: {accepted} accepted, {refused} refused (429), {other} other"
        )
        assert other == 0
        assert refused > 300  # it was hammered
        assert 59 <= accepted <= 61
    finally:
        gws.stop()


def test_serve_with_workers_refuses_without_shared_state(sim: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, sim, f"sqlite:///{tmp_path / 'ledger.db'}", None, limits=", limits: {rpm: 100}")
    env = {**os.environ, "GOV_MASTER_KEY": MASTER}
    env.pop(ENV_URL, None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "switchpoint.cli",
            "serve",
            "--config",
            str(cfg),
            "--port",
            str(_free_port()),
            "--workers",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--workers 2 needs state.redis_url" in done.stderr
    assert "d-sim" in done.stderr
