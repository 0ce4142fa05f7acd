"""A gateway wired to the simulator over loopback, recording every upstream request."""

from __future__ import annotations

import socket
from typing import Any

from switchpoint.executor import H1Transport
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse

import specs

GATEWAY_KEY = "sk-gateway-test-key"
UPSTREAM_KEY = "sk-upstream-secret-do-not-leak"
ENV = {"E2E_GATEWAY_KEY": GATEWAY_KEY, "E2E_UPSTREAM_KEY": UPSTREAM_KEY}

FAMILIES = ("openai", "anthropic", "gemini")


class RecordingTransport:
    """The real pooled client, plus a log of what the adapters sent upstream."""

    def __init__(self) -> None:
        self.inner = H1Transport(pool_size=64)
        self.sent: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest, **kw: Any) -> UpstreamResponse:
        self.sent.append(request)
        return await self.inner.send(request, **kw)

    async def open_stream(self, request: UpstreamRequest, **kw: Any) -> Any:
        self.sent.append(request)
        return await self.inner.open_stream(request, **kw)

    async def close(self) -> None:
        await self.inner.close()


def family_of_url(url: str) -> str:
    for fam in FAMILIES:
        if f"/{fam}/" in url:
            return fam
    raise AssertionError(f"unexpected upstream URL {url}")


def validate_sent(sent: list[UpstreamRequest]) -> int:
    """Validate every recorded upstream request against its family's published spec."""
    for req in sent:
        fam = family_of_url(req.url)
        specs.check_request(fam, req.method, req.url, req.body, dict(req.headers))
    return len(sent)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def e2e_document(sim: str) -> dict[str, Any]:
    key = "env:E2E_UPSTREAM_KEY"
    price = {"input": 2.0, "cached_input": 0.2, "output": 8.0}
    return {
        "server": {"master_key": "env:E2E_GATEWAY_KEY", "max_body_bytes": 2 * 1024 * 1024},
        "providers": {
            "p-openai": {"family": "openai", "base_url": f"{sim}/openai/v1", "api_key": key},
            "p-anthropic": {"family": "anthropic", "base_url": f"{sim}/anthropic", "api_key": key},
            "p-gemini": {"family": "gemini", "base_url": f"{sim}/gemini/v1beta", "api_key": key},
            "p-dead": {
                "family": "openai",
                "base_url": f"http://127.0.0.1:{closed_port()}/v1",
                "api_key": key,
                "connect_timeout_s": 2,
            },
        },
        "deployments": {
            "d-openai": {"provider": "p-openai", "model": "sim-gpt", "price": price},
            "d-anthropic": {"provider": "p-anthropic", "model": "sim-claude", "price": price},
            "d-gemini": {"provider": "p-gemini", "model": "sim-gemini", "price": price},
            "d-dead": {"provider": "p-dead", "model": "gone"},
            "d-notools": {"provider": "p-openai", "model": "sim-small", "capabilities": ["streaming"]},
            "e-openai": {"provider": "p-openai", "model": "sim-embed", "kind": "embedding"},
            "e-gemini": {"provider": "p-gemini", "model": "sim-embed", "kind": "embedding"},
        },
        "models": {
            "up-openai": "d-openai",
            "up-anthropic": "d-anthropic",
            "up-gemini": "d-gemini",
            "failover": ["d-dead", "d-openai"],
            "notools": "d-notools",
            "emb-openai": "e-openai",
            "emb-gemini": "e-gemini",
        },
    }
