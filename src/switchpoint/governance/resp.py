"""A small Redis client for the two calls on the request path (admit, settle: ``EVALSHA``).

redis-py's asyncio client spends most of a call in its own machinery (a pooled connection
checked out and back, per-argument encoding, a general reply parser). Here one connection
carries every call, pipelined: a command is one ``transport.write``; replies come back in
order and resolve the oldest waiting future. Only the reply types these calls produce are
parsed (bulk strings, errors, simple strings, integers, nil). Everything else the gateway
asks Redis (seeding a budget, alert latches, loading a script) stays on redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit


class RespError(Exception):
    """Redis answered an error (``-NOSCRIPT …``, ``-ERR …``)."""


def encode(args: tuple[bytes, ...]) -> bytes:
    """A command as RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join([b"$%d\r\n%b\r\n" % (len(a), a) for a in args])


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        #: asyncio's or uvloop's transport (uvloop's is not an ``asyncio.Transport`` subclass).
        self.transport: Any = None
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.buf = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError("the Redis connection was lost"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while self.waiters:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            kind = buf[pos]
            value: Any
            if kind == 36:  # $ bulk string
                n = int(buf[pos + 1 : end])
                if n < 0:
                    value, nxt = None, end + 2
                else:
                    nxt = end + 2 + n + 2
                    if len(buf) < nxt:
                        break
                    value = bytes(buf[end + 2 : end + 2 + n])
            elif kind == 45:  # - error
                value, nxt = RespError(buf[pos + 1 : end].decode(errors="replace")), end + 2
            elif kind == 58:  # : integer
                value, nxt = int(buf[pos + 1 : end]), end + 2
            elif kind == 43:  # + simple string
                value, nxt = bytes(buf[pos + 1 : end]), end + 2
            else:  # a reply type these calls never get: give up the connection
                value, nxt = RespError(f"unexpected Redis reply type {chr(kind)!r}"), len(buf)
                if self.transport is not None:
                    self.transport.close()
            pos = nxt
            fut = self.waiters.popleft()
            if not fut.done():
                if isinstance(value, RespError):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)
        if pos:
            del buf[:pos]


class FastRedis:
    """One pipelined connection to the Redis at ``url`` (``redis://[user:password@]host[:port][/db]``)."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        if u.scheme != "redis":
            raise ValueError("only redis:// URLs")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 6379
        self.db = int(u.path.strip("/") or 0)
        self.username = unquote(u.username) if u.username else None
        self.password = unquote(u.password) if u.password else None
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            _, proto = await loop.create_connection(_Protocol, self.host, self.port)
            setup: list[tuple[bytes, ...]] = []
            if self.password is not None:
                user = (self.username or "default").encode()
                setup.append((b"AUTH", user, self.password.encode()))
            if self.db:
                setup.append((b"SELECT", str(self.db).encode()))
            for args in setup:
                await self._send(proto, args)
            self._proto = proto
            self._connecting.set_result(proto)
            return proto
        except BaseException as exc:
            self._connecting.set_exception(exc)
            self._connecting.exception()  # retrieved
            raise
        finally:
            self._connecting = None

    @staticmethod
    def _send(proto: _Protocol, args: tuple[bytes, ...]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        proto.waiters.append(fut)
        assert proto.transport is not None
        proto.transport.write(encode(args))
        return fut

    def send_now(self, *args: bytes) -> asyncio.Future[Any] | None:
        """Write the command at once, on the open connection: the future of its reply; None
        when the connection is not open (then :meth:`call`, which opens it)."""
        proto = self._proto
        if proto is None or proto.closed:
            return None
        return self._send(proto, args)

    async def call(self, *args: bytes) -> Any:
        proto = self._proto
        if proto is None or proto.closed:
            proto = await self._connection()
        return await self._send(proto, args)

    async def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            with contextlib.suppress(Exception):
                proto.transport.close()
