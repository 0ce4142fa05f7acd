"""Run an ASGI app with uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from switchpoint.api.app import GatewayApp
from switchpoint.api.server import UVICORN_OPTIONS


def server_options(app: Any) -> dict[str, Any]:
    """The gateway runs on its own HTTP/1.1 protocol, as ``switchpoint serve`` runs it."""
    return UVICORN_OPTIONS if isinstance(app, GatewayApp) else {}


@contextlib.contextmanager
def serve_in_thread(app: Any, *, graceful_s: float = 2.0, loop: str = "asyncio") -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        loop=loop,
        lifespan="on",
        **server_options(app),
        timeout_graceful_shutdown=int(graceful_s) or 1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=graceful_s + 5)
        sock.close()
