"""The seam between the executor and the upstream HTTP client.

Adapters produce :class:`UpstreamRequest` values; only a transport touches sockets
(:class:`~switchpoint.executor.h1.H1Transport` is the one the gateway uses). Every transport
failure becomes a :class:`ProviderError` inside the transport (kinds ``connection`` /
``timeout``), so the executor sees one error type.

Timeouts (seconds, ``None`` = off): ``connect_timeout_s`` for the TCP (and TLS) connect,
``timeout_s`` / ``total_timeout_s`` for the whole call (a stream included), ``read_timeout_s``
for the longest silence on the connection (the stall timeout; the clock restarts on every
byte). Timers are never rounded: a timeout fires when it is set to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from switchpoint.providers.base import UpstreamRequest, UpstreamResponse


class UpstreamStream(Protocol):
    status: int
    headers: dict[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


class Transport(Protocol):
    async def send(
        self,
        request: UpstreamRequest,
        *,
        timeout_s: float | None,
        connect_timeout_s: float,
        read_timeout_s: float | None = None,
    ) -> UpstreamResponse: ...

    async def open_stream(
        self,
        request: UpstreamRequest,
        *,
        connect_timeout_s: float,
        read_timeout_s: float | None,
        total_timeout_s: float | None = None,
    ) -> UpstreamStream: ...

    async def close(self) -> None: ...
