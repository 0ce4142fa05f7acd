"""Serving the simulator over HTTP with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .app import create_app
from .behavior import SimConfig

_CUT_NOTICE = "ASGI callable returned without completing response."


class _DropCutNotice(logging.Filter):
    """A scripted cut stream is intended: do not log it as a server error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _CUT_NOTICE


@contextlib.contextmanager
def _quiet_cuts(quiet: bool) -> Iterator[None]:
    if quiet:  # logging is left as the host process set it up
        yield
        return
    logger = logging.getLogger("uvicorn.error")
    notice = _DropCutNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def _server(config: SimConfig | None, host: str, port: int, quiet: bool) -> uvicorn.Server:
    """A uvicorn server for the simulator. ``quiet`` leaves the process's logging untouched
    (for running beside another server in the same process)."""
    settings = uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        log_config=None if quiet else LOGGING_CONFIG,
        log_level=None if quiet else "warning",
        access_log=False,
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(settings)


async def serve(
    host: str = "127.0.0.1",
    port: int = 8900,
    config: SimConfig | None = None,
    *,
    sockets: list[socket.socket] | None = None,
    quiet: bool = False,
) -> None:
    """Serve the simulator until the server is told to stop (SIGINT/SIGTERM)."""
    server = _server(config, host, port, quiet)
    with _quiet_cuts(quiet):
        await server.serve(sockets=sockets)


def run(
    host: str = "127.0.0.1", port: int = 8900, config: SimConfig | None = None, *, quiet: bool = False
) -> None:
    """Serve the simulator, blocking (uvloop and httptools when installed). Works in a
    background thread too (signals are then left to the main thread)."""
    server = _server(config, host, port, quiet)
    with _quiet_cuts(quiet):
        server.run()


@contextlib.asynccontextmanager
async def serving(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True
) -> AsyncIterator[str]:
    """Run the simulator on this event loop for the duration of the block; yields its base URL
    (``http://HOST:PORT``; the wires live under ``/openai/v1``, ``/anthropic``, ``/gemini/v1beta``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = _server(config, host, sock.getsockname()[1], quiet)
    with _quiet_cuts(quiet):
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the simulator stopped during startup")
                await asyncio.sleep(0.005)
            yield f"http://{host}:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
            sock.close()
