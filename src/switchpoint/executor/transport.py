"""The one pooled HTTP client for upstream calls, behind a small protocol.

Adapters produce :class:`UpstreamRequest` values; only this module touches sockets. Every
transport failure becomes a :class:`ProviderError` here (kinds ``connection`` / ``timeout``),
so the executor sees one error type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp

from switchpoint.errors import ProviderError
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse


class UpstreamStream(Protocol):
    status: int
    headers: dict[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


class Transport(Protocol):
    async def send(
        self, request: UpstreamRequest, *, timeout_s: float, connect_timeout_s: float
    ) -> UpstreamResponse: ...

    async def open_stream(
        self, request: UpstreamRequest, *, connect_timeout_s: float, read_timeout_s: float
    ) -> UpstreamStream: ...

    async def close(self) -> None: ...


def _lower_headers(raw: aiohttp.typedefs.LooseHeaders) -> dict[str, str]:
    return {k.lower(): v for k, v in raw.items()}  # type: ignore[union-attr]


class _AiohttpStream:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = _lower_headers(resp.headers)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise ProviderError(
                "timeout", "upstream stream stalled (no data within the read timeout)"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", f"upstream stream broke: {type(exc).__name__}") from exc

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except TimeoutError as exc:
            raise ProviderError("timeout", "upstream did not finish its error body in time") from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", f"upstream connection broke: {type(exc).__name__}") from exc

    def close(self) -> None:
        self._resp.close()


class AiohttpTransport:
    """aiohttp session with a keep-alive pool per host; created lazily inside the running loop."""

    def __init__(self, *, pool_size: int = 256) -> None:
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size,
                limit_per_host=self._pool_size,
                ttl_dns_cache=300,
                keepalive_timeout=30,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                headers={"user-agent": "switchpoint"},
            )
        return self._session

    async def send(
        self, request: UpstreamRequest, *, timeout_s: float, connect_timeout_s: float
    ) -> UpstreamResponse:
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        try:
            async with self._get().request(
                request.method, request.url, data=request.body, headers=request.headers, timeout=timeout
            ) as resp:
                body = await resp.read()
                return UpstreamResponse(status=resp.status, headers=_lower_headers(resp.headers), body=body)
        except TimeoutError as exc:
            raise ProviderError("timeout", f"upstream did not answer within {timeout_s:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ProviderError(
                "connection", f"cannot connect to upstream ({exc.os_error.__class__.__name__})"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", f"upstream connection failed: {type(exc).__name__}") from exc

    async def open_stream(
        self, request: UpstreamRequest, *, connect_timeout_s: float, read_timeout_s: float
    ) -> UpstreamStream:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
        try:
            resp = await self._get().request(
                request.method, request.url, data=request.body, headers=request.headers, timeout=timeout
            )
        except TimeoutError as exc:
            raise ProviderError("timeout", f"upstream did not answer within {read_timeout_s:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ProviderError(
                "connection", f"cannot connect to upstream ({exc.os_error.__class__.__name__})"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", f"upstream connection failed: {type(exc).__name__}") from exc
        return _AiohttpStream(resp)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
