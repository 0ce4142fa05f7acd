"""The aiohttp upstream client the gateway used before :class:`~switchpoint.executor.h1.H1Transport`.

Kept here only as the baseline ``test_transport_bench.py`` measures against (same
``Transport`` contract, same error kinds and messages). Needs ``aiohttp`` (the ``bench`` extra).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from switchpoint.errors import ProviderError
from switchpoint.executor.transport import UpstreamStream
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse

#: Timers are never rounded up to whole seconds (aiohttp does so from 5 s by default).
_NO_CEIL = 1e9


def _lower_headers(raw: aiohttp.typedefs.LooseHeaders) -> dict[str, str]:
    return {k.lower(): v for k, v in raw.items()}  # type: ignore[union-attr]


def _timeout_error(exc: TimeoutError, connect_s: float, total_s: float | None) -> ProviderError:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ProviderError("timeout", f"could not connect to the upstream within {connect_s:g} s")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return ProviderError("timeout", "upstream sent nothing within the stall timeout")
    return ProviderError("timeout", f"upstream did not answer within {total_s or 0:g} s")


class _AiohttpStream:
    __slots__ = ("_resp", "_stall_s", "_total_s", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, stall_s: float | None, total_s: float | None) -> None:
        self._resp = resp
        self._stall_s = stall_s
        self._total_s = total_s
        self.status = resp.status
        self.headers = _lower_headers(resp.headers)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ServerTimeoutError):
                message = f"upstream stream stalled (no data for {self._stall_s or 0:g} s)"
            else:
                message = f"upstream stream exceeded its total timeout of {self._total_s or 0:g} s"
            raise ProviderError("timeout", message) from exc
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


def _request_error(
    exc: TimeoutError | aiohttp.ClientError, connect_timeout_s: float, total_s: float | None
) -> ProviderError:
    """A failure before an answer arrived, as the one error type the executor handles."""
    if isinstance(exc, TimeoutError):
        return _timeout_error(exc, connect_timeout_s, total_s)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ProviderError("connection", f"cannot connect to upstream ({exc.os_error.__class__.__name__})")
    return ProviderError("connection", f"upstream connection failed: {type(exc).__name__}")


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
        self,
        request: UpstreamRequest,
        *,
        timeout_s: float | None,
        connect_timeout_s: float,
        read_timeout_s: float | None = None,
    ) -> UpstreamResponse:
        timeout = aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=connect_timeout_s, sock_read=read_timeout_s, ceil_threshold=_NO_CEIL
        )
        try:
            async with self._get().request(
                request.method, request.url, data=request.body, headers=request.headers, timeout=timeout
            ) as resp:
                body = await resp.read()
                return UpstreamResponse(status=resp.status, headers=_lower_headers(resp.headers), body=body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _request_error(exc, connect_timeout_s, timeout_s) from exc

    async def open_stream(
        self,
        request: UpstreamRequest,
        *,
        connect_timeout_s: float,
        read_timeout_s: float | None,
        total_timeout_s: float | None = None,
    ) -> UpstreamStream:
        timeout = aiohttp.ClientTimeout(
            total=total_timeout_s,
            sock_connect=connect_timeout_s,
            sock_read=read_timeout_s,
            ceil_threshold=_NO_CEIL,
        )
        try:
            resp = await self._get().request(
                request.method, request.url, data=request.body, headers=request.headers, timeout=timeout
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _request_error(exc, connect_timeout_s, total_timeout_s) from exc
        return _AiohttpStream(resp, read_timeout_s, total_timeout_s)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
