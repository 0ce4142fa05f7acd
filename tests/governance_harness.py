"""Shared pieces of the governance tests: a gateway with a SQLite ledger over the simulator,
keys made through the admin API, and the state backend (memory, or Redis with a key prefix of
the test's own, removed afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from resilience_harness import AUTH, document, provider
from switchpoint.config.storage import ENV_URL

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_problem() -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"Redis is not reachable at {REDIS_URL}: {type(exc).__name__}"
    return None


def drop_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def configured_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's own ledger file, whatever the environment names."""
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any] | None]:
    """The ``state`` section: None (memory) or Redis under a fresh prefix."""
    if request.param == "memory":
        yield None
        return
    problem = redis_problem()
    if problem is not None:
        pytest.skip(problem)
    prefix = f"sp-test-{uuid.uuid4().hex[:12]}:"
    try:
        yield {"redis_url": REDIS_URL, "prefix": prefix}
    finally:
        drop_prefix(prefix)


def doc(
    sim: str,
    tmp_path: Path,
    state: dict[str, Any] | None,
    *,
    deployments: dict[str, Any] | None = None,
    models: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    deps = deployments or {
        "d-gpt": {"provider": "p", "model": "gpt-4o-mini"},
        "d-claude": {"provider": "q", "model": "claude-haiku-4-5"},
    }
    extra: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "flush_interval_ms": 20}
    }
    if state is not None:
        extra["state"] = state
    extra.update(sections)
    return document(
        {"p": provider(sim, "openai"), "q": provider(sim, "anthropic")},
        deps,
        models or {"fast": "d-gpt", "claude": "d-claude"},
        **extra,
    )


def make_key(url: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    """A virtual key made with the master key: (its secret, its document)."""
    body = {"name": f"k-{uuid.uuid4().hex[:6]}", **fields}
    r = httpx.post(f"{url}/admin/keys", json=body, headers=AUTH, timeout=30)
    assert r.status_code in (200, 201), r.text
    data = r.json()
    return data["secret"], data


def make_team(url: str, **fields: Any) -> dict[str, Any]:
    body = {"name": f"t-{uuid.uuid4().hex[:6]}", **fields}
    r = httpx.post(f"{url}/admin/teams", json=body, headers=AUTH, timeout=30)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def anthropic_headers(secret: str) -> dict[str, str]:
    return {"x-api-key": secret, "anthropic-version": "2023-06-01"}


def openai_body(text: str = "hi", model: str = "fast", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def anthropic_body(
    text: str = "hi", model: str = "claude", max_tokens: int = 32, **extra: Any
) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }
