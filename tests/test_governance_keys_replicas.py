"""Three ``switchpoint serve`` processes on one database: a key revoked through one of them is
refused by the other two within a second — with Redis (127.0.0.1:6379, a channel prefix of this
test's own: the change notice arrives over pub/sub, the database poll being 5 s apart there) and
without it (each process polls the database's change counter every 0.5 s). On SQLite and
PostgreSQL. The processes log at DEBUG; no secret appears in any of their lines."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from resilience_harness import Server, chat
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim

from store_db import db_url

__all__ = ["db_url"]

MASTER = "sk-replicas-master"
UPSTREAM = "sk-replicas-upstream"
AUTH = {"authorization": f"Bearer {MASTER}"}
REPLICAS = 3


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def redis_problem() -> str | None:
    try:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping()
    except Exception as exc:
        return f"Redis is not reachable at 127.0.0.1:6379: {exc}"
    return None


def wait_subscribed(channel: str, n: int, timeout_s: float = 10.0) -> None:
    """Until ``n`` processes listen on the Redis channel (a notice sent earlier would be lost)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        deadline = time.monotonic() + timeout_s
        while int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0)) < n:
            assert time.monotonic() < deadline, f"fewer than {n} listeners on {channel}"
            time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


class Replicas:
    def __init__(
        self, procs: list[subprocess.Popen[str]], urls: list[str], logs: list[Path], redis: bool
    ) -> None:
        self.procs, self.urls, self.logs, self.redis = procs, urls, logs, redis


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def replicas(request: pytest.FixtureRequest, sim: str, db_url: str, tmp_path: Path) -> Iterator[Replicas]:
    doc: dict[str, Any] = {
        "server": {"master_key": "env:REPLICAS_MASTER_KEY"},
        "providers": {
            "p": {"family": "openai", "base_url": f"{sim}/openai/v1", "api_key": "env:REPLICAS_UPSTREAM"}
        },
        "deployments": {"d-gpt": {"provider": "p", "model": "gpt-4o-mini"}},
        "models": {"fast": "d-gpt"},
        "storage": {"url": db_url, "flush_interval_ms": 50},
    }
    if request.param == "redis":
        problem = redis_problem()
        if problem is not None:
            pytest.skip(problem)
        prefix = f"sp-test-{uuid.uuid4().hex[:10]}:"
        doc["state"] = {"redis_url": "redis://127.0.0.1:6379/0", "prefix": prefix}
    cfg = tmp_path / "switchpoint.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY")
        and k not in ("OLLAMA_HOST", "SWITCHPOINT_MASTER_KEY", "SWITCHPOINT_DATABASE_URL")
    }
    env["REPLICAS_MASTER_KEY"] = MASTER
    env["REPLICAS_UPSTREAM"] = UPSTREAM
    procs: list[subprocess.Popen[str]] = []
    urls: list[str] = []
    logs: list[Path] = []
    try:
        for i in range(REPLICAS):
            port = _free_port()
            log = tmp_path / f"replica-{i}.log"
            env_i = {**env, "SWITCHPOINT_INSTANCE": f"replica-{i}"}
            with log.open("w") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "switchpoint.cli", "serve", "--config", str(cfg),
                         "--port", str(port), "--log-level", "debug"],
                        env=env_i, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, text=True,
                    )
                )  # fmt: skip
            urls.append(f"http://127.0.0.1:{port}")
            logs.append(log)
        deadline = time.monotonic() + 90
        for proc, url, log in zip(procs, urls, logs, strict=True):
            while True:
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "a replica did not become ready"
                time.sleep(0.2)
        if request.param == "redis":
            wait_subscribed(f"{prefix}governance:changes", REPLICAS)
        yield Replicas(procs, urls, logs, request.param == "redis")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_key_revoked_on_one_replica_is_refused_by_the_others_within_a_second(replicas: Replicas) -> None:
    first, *others = replicas.urls
    key = httpx.post(f"{first}/admin/keys", json={"name": "shared", "team": None}, headers=AUTH, timeout=10)
    assert key.status_code == 201, key.text
    secret, key_id = key.json()["secret"], key.json()["id"]
    bearer = {"authorization": f"Bearer {secret}"}
    for url in replicas.urls:  # every replica has the key in its cache
        r = httpx.post(f"{url}/v1/chat/completions", json=chat("hi", "fast"), headers=bearer, timeout=10)
        assert r.status_code == 200, r.text

    def refused_after(url: str, since: float) -> float:
        with httpx.Client(base_url=url, timeout=5) as c:
            while True:
                r = c.post("/v1/chat/completions", json=chat("hi", "fast"), headers=bearer)
                if r.status_code == 401:
                    assert r.json()["error"]["code"] == "key_revoked"
                    return time.monotonic() - since
                assert r.status_code == 200, r.text
                if time.monotonic() - since > 5:
                    return float("inf")
                time.sleep(0.01)

    with ThreadPoolExecutor(len(others)) as pool:
        r = httpx.delete(f"{first}/admin/keys/{key_id}", headers=AUTH, timeout=10)
        revoked = time.monotonic()
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        delays = list(pool.map(lambda u: refused_after(u, revoked), others))
    print(f"\nrevocation seen by the other replicas after {', '.join(f'{d * 1000:.0f} ms' for d in delays)}")
    assert all(d < 1.0 for d in delays), delays
    for url in others:
        keys = httpx.get(f"{url}/admin/stats", headers=AUTH, timeout=10).json()["keys"]
        assert keys["loads"] == 1  # the key was read once, on its first use there
        if replicas.redis:  # the notice came over pub/sub (the database poll is 5 s apart there)
            assert keys["notices"] >= 1, keys
        else:
            assert keys["notices"] == 0, keys

    for proc in replicas.procs:
        proc.terminate()
    for proc in replicas.procs:
        proc.wait(timeout=30)
    logged = "".join(log.read_text() for log in replicas.logs)
    assert "DEBUG" in logged  # the processes did log at DEBUG
    assert secret not in logged and secret[len("sk-sp-0123456789-") :] not in logged
    assert MASTER not in logged and UPSTREAM not in logged
