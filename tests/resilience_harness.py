"""Fault injection around the simulated provider, and servers that can stop and come back.

The simulator scripts faults per model (``fail_rate``, ``ttft_ms`` …) or per request
(``x-sim-*`` headers, ``[[sim …]]`` directives). What it cannot do alone is vary a fault per
*upstream call* of one deployment: a random reset on 10% of calls, a slow tail on 4% of calls,
a 429 on the first call only. :class:`FaultInjector` wraps the simulator's ASGI app and adds
``x-sim-*`` headers to a seeded share of the calls of a *profile*; a deployment picks its
profile with a provider header (``x-fault-profile``), which the gateway sends on every call.
"""

from __future__ import annotations

import math
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from switchpoint.api.app import Gateway, create_app
from switchpoint.config import parse

from servers import server_options

PROFILE_HEADER = "x-fault-profile"
UPSTREAM_KEY = "sk-resilience-upstream"
GATEWAY_KEY = "sk-resilience-gateway"
ENV = {"RES_UPSTREAM_KEY": UPSTREAM_KEY, "RES_GATEWAY_KEY": GATEWAY_KEY}
AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
WIRES = {"openai": "/openai/v1", "anthropic": "/anthropic", "gemini": "/gemini/v1beta"}

#: Given the call's number within its profile (from 0) and a seeded RNG: headers to add.
Fault = Callable[[int, random.Random], dict[str, str]]


@dataclass
class Call:
    profile: str
    at: float
    injected: dict[str, str]


@dataclass
class FaultInjector:
    """ASGI wrapper: per profile, add ``x-sim-*`` headers chosen by a fault function."""

    app: Any
    faults: dict[str, Fault]
    seed: int = 1
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._counts: dict[str, int] = {}

    def restart(self) -> None:
        """Forget the calls and start the fault sequence over from the seed."""
        self._rng = random.Random(self.seed)
        self._counts.clear()
        self.calls.clear()

    def of(self, profile: str) -> list[Call]:
        return [c for c in self.calls if c.profile == profile]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = list(scope["headers"])
            profile = next((v.decode() for k, v in headers if k == PROFILE_HEADER.encode()), None)
            if profile is not None:
                n = self._counts.get(profile, 0)
                self._counts[profile] = n + 1
                fault = self.faults.get(profile)
                injected = fault(n, self._rng) if fault is not None else {}
                self.calls.append(Call(profile, time.monotonic(), injected))
                headers += [(k.encode(), v.encode()) for k, v in injected.items()]
                scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


class Server:
    """uvicorn in a thread on a fixed loopback port; it can be stopped and started again."""

    def __init__(self, app: Any, *, port: int | None = None, graceful_s: int = 2) -> None:
        self.app = app
        self.graceful_s = graceful_s
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(
            self.app,
            log_level="critical",
            access_log=False,
            loop="asyncio",
            lifespan="on",
            **server_options(self.app),
            timeout_graceful_shutdown=self.graceful_s,
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.005)
        self._sock = sock
        return self

    def begin_stop(self) -> None:
        """What SIGTERM does: stop accepting, let requests in flight finish."""
        assert self._server is not None
        self._server.should_exit = True

    def join(self, timeout: float = 15) -> bool:
        assert self._thread is not None
        self._thread.join(timeout)
        self._sock.close()
        return not self._thread.is_alive()

    def stop(self) -> None:
        self.begin_stop()
        self.join()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def provider(base: str, wire: str, profile: str | None = None, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"family": wire, "base_url": base + WIRES[wire], "api_key": "env:RES_UPSTREAM_KEY"}
    if profile is not None:
        row["headers"] = {PROFILE_HEADER: profile}
    row.update(extra)
    return row


def document(
    providers: dict[str, Any], deployments: dict[str, Any], models: dict[str, Any], **sections: Any
) -> dict[str, Any]:
    return {
        "server": {"master_key": "env:RES_GATEWAY_KEY"},
        "providers": providers,
        "deployments": deployments,
        "models": models,
        **sections,
    }


@contextmanager
def gateway(doc: dict[str, Any], *, shutdown_timeout_s: float = 5.0) -> Iterator[tuple[str, Gateway, Server]]:
    """The gateway over loopback HTTP: (base URL, the Gateway object, its server)."""
    app = create_app(parse(doc, env=ENV), shutdown_timeout_s=shutdown_timeout_s)
    server = Server(app).start()
    try:
        yield server.url, app.state.gateway, server
    finally:
        server.stop()


def chat(text: str, model: str, *, stream: bool = False, max_tokens: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def async_client(url: str, *, connections: int = 16) -> httpx.AsyncClient:
    """An HTTP client for load: TCP_NODELAY (no Nagle delay between a request's header and
    body writes), a pool as large as the concurrency."""
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    return httpx.AsyncClient(base_url=url, timeout=30, transport=transport)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def records(url: str, gw: Gateway) -> list[Any]:
    """The request records accounted so far (``/admin/stats`` waits for the queue to drain)."""
    httpx.get(f"{url}/admin/stats", headers=AUTH, timeout=10).raise_for_status()
    return [r for r, _ in gw.accounting.recent]
