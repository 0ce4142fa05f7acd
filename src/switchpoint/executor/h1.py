"""A lean HTTP/1.1 upstream client: :class:`asyncio.Protocol` + ``httptools``, keep-alive pools.

The gateway's upstream client (the :class:`~switchpoint.executor.transport.Transport`
protocol), chosen by measurement over aiohttp and pyreqwest (``docs/decisions.md``), for a
fraction of their CPU per request: the request head (and a small body)
leaves in one write, one parser lives per connection, one timer per request serves both the
stall and the total timeout (re-armed only when it fires, never per received byte), and nothing
spawns a task.

Pool: connections are kept per (scheme, host, port) and the way there (direct, or through which
proxy: :mod:`switchpoint.executor.proxy`, :mod:`switchpoint.executor.tunnel`), at most
``pool_size`` open at once over all origins (connecting, busy or idle); further requests queue, and an idle connection of another
origin is closed to make room. An idle connection expires after 30 s. A connection goes back to
the pool only when its response arrived completely and both sides allow keep-alive. A reused
connection that fails before the first byte of its response (the server closed it while it was
idle) is retried once on a fresh connection; nothing else is retried (the executor owns retries).

Bodies with ``content-length``, chunked, or until the server closes; gzip and deflate are
decoded on the fly. This module is the pool and the connecting; one request on one connection
(parsing, timers, flow control) is :mod:`switchpoint.executor.h1_wire`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlsplit

from switchpoint.config import Config
from switchpoint.errors import ProviderError
from switchpoint.executor.h1_wire import (
    BROKEN,
    END,
    HEADERS,
    Conn,
    Exchange,
    Origin,
    build_head,
    request_error,
)
from switchpoint.executor.proxy import ProxyPolicy, policy_for
from switchpoint.executor.tunnel import open_tunnel
from switchpoint.providers import bedrock, vertex
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse

if TYPE_CHECKING:
    from switchpoint.executor.transport import Transport, UpstreamStream

#: Where a cloud deployment without a provider ``base_url`` sends its requests.
CLOUD_ENDPOINTS = {"bedrock": bedrock.endpoint, "vertex": vertex.endpoint}
KEEPALIVE_S: Final = 30.0
_SMALL_BODY: Final = 64 * 1024
_WRITE_SLICE: Final = 256 * 1024
_DNS_TTL_S: Final = 300.0
_MAX_ROUTES: Final = 1024
_SAFE_TARGET: Final = "/:@!$&'()*+,;=-._~%?"


class H1Transport:
    """HTTP/1.1 keep-alive pools on asyncio protocols; bound lazily to the running loop."""

    __slots__ = (
        "_conns",
        "_dns",
        "_loop",
        "_open",
        "_origins",
        "_pool_size",
        "_proxies",
        "_routes",
        "_ssl",
        "_sweeper",
        "_waiters",
    )

    def __init__(self, *, pool_size: int = 256, proxies: ProxyPolicy | None = None) -> None:
        self._pool_size = max(1, pool_size)
        #: Proxies and CA bundles (``None``, or one with none: every URL direct, system CAs).
        self._proxies = None if proxies is None or proxies.inert else proxies
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open = 0  # connections connecting, busy or idle
        self._conns: set[Conn] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._origins: dict[tuple[bool, str, int, object, str | None], Origin] = {}
        self._routes: dict[str, tuple[Origin, str]] = {}
        self._dns: dict[tuple[str, int], tuple[float, list[tuple[str, int]]]] = {}
        self._ssl: dict[str | None, ssl.SSLContext] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    # --- Transport -------------------------------------------------------------------------

    async def send(
        self,
        request: UpstreamRequest,
        *,
        timeout_s: float | None,
        connect_timeout_s: float,
        read_timeout_s: float | None = None,
    ) -> UpstreamResponse:
        ex = await self._exchange(request, connect_timeout_s, read_timeout_s, timeout_s, END)
        return UpstreamResponse(status=ex.status, headers=ex.headers, body=ex.take())

    async def open_stream(
        self,
        request: UpstreamRequest,
        *,
        connect_timeout_s: float,
        read_timeout_s: float | None,
        total_timeout_s: float | None = None,
    ) -> UpstreamStream:
        return await self._exchange(request, connect_timeout_s, read_timeout_s, total_timeout_s, HEADERS)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for origin in self._origins.values():
            while origin.idle:
                # at once: a TLS close would wait for the peer, and the loop may stop before
                origin.idle.popleft().kill()
        for conn in list(self._conns):
            conn.kill()
        if self._loop is not None and not self._loop.is_closed():
            await asyncio.sleep(0)  # let the transports report their closing

    # --- one request -----------------------------------------------------------------------

    async def _exchange(
        self,
        request: UpstreamRequest,
        connect_s: float,
        stall_s: float | None,
        total_s: float | None,
        want: int,
    ) -> Exchange:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        deadline = None if total_s is None else loop.time() + total_s
        route = self._routes.get(request.url) or self._route(request.url)
        origin = route[0]
        body = request.body
        head, close_after = build_head(request.method, route[1], origin, request.headers, len(body))
        small = len(body) <= _SMALL_BODY
        wire = head + body if small else head
        head_only = request.method == "HEAD"
        fresh = False
        while True:
            conn = await self._acquire(origin, connect_s, total_s, deadline, fresh)
            ex = Exchange(loop, stall_s, total_s, deadline, head_only, close_after, want == HEADERS)
            conn.attach(ex)
            if stall_s is not None:
                ex.last = loop.time()
            ex.arm()
            try:
                if small:
                    conn.transport.write(wire)
                    ex.sent = True
                else:
                    await self._write_large(conn, ex, wire, body)
                while not (ex.complete or ex.err or (want == HEADERS and ex.status)):
                    await ex.wait(want)
            except BaseException:
                ex.fail(BROKEN, "CancelledError")  # the caller gave up: the connection goes
                raise
            if not ex.err:
                if ex.status == 407 and origin.proxy is not None:
                    ex.close()
                    raise ProviderError(
                        "connection",
                        f"the proxy {origin.proxy.url} asked for authentication (407 Proxy "
                        "Authentication Required): check the proxy credentials",
                    )
                return ex
            if ex.err == BROKEN and not ex.got_bytes and conn.reused and not fresh:
                fresh = True  # the server closed the idle keep-alive connection: once more, anew
                continue
            raise request_error(ex)

    async def _write_large(self, conn: Conn, ex: Exchange, head: bytes, body: bytes) -> None:
        """Write a big body in slices, waiting whenever the socket's buffer is full."""
        transport = conn.transport
        transport.write(head)
        view = memoryview(body)
        for start in range(0, len(view), _WRITE_SLICE):
            if conn.dead or ex.err or ex.complete:
                return  # the answer came early, or the connection broke: not reusable (sent=False)
            transport.write(view[start : start + _WRITE_SLICE])
            if conn.write_paused and not conn.dead:
                drain = conn.drain = ex.loop.create_future()
                await drain
        ex.sent = True

    # --- the pool --------------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or a new event loop: connections of another loop are unusable."""
        self._loop = loop
        self._open = 0
        self._conns = set()
        self._waiters = deque()
        self._origins = {}
        self._routes = {}
        self._sweeper = None

    def _route(self, url: str) -> tuple[Origin, str]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ProviderError("connection", "upstream connection failed: InvalidUrlClientError") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ProviderError("connection", "upstream connection failed: NonHttpUrlClientError")
        host = parts.hostname
        if not host:
            raise ProviderError("connection", "upstream connection failed: InvalidUrlClientError")
        tls = scheme == "https"
        port = port or (443 if tls else 80)
        proxy, ca_file = (None, None) if self._proxies is None else self._proxies.choose(url, tls, host, port)
        key = (tls, host, port, None if proxy is None else proxy.key, ca_file)
        origin = self._origins.get(key)
        if origin is None:
            try:
                origin = Origin(tls, host, port, proxy, ca_file)
            except ValueError:  # a host name IDNA cannot encode
                raise ProviderError(
                    "connection", "upstream connection failed: InvalidUrlClientError"
                ) from None
            self._origins[key] = origin
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        target = quote(target, safe=_SAFE_TARGET)
        if proxy is not None and not tls:
            target = f"http://{origin.host_line[6:-2]}{target}"  # absolute-form, to a proxy
        route = (origin, target)
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[url] = route
        return route

    def _take_idle(self, origin: Origin) -> Conn | None:
        idle = origin.idle
        if not idle:
            return None
        assert self._loop is not None
        fresh_after = self._loop.time() - KEEPALIVE_S
        while idle:
            conn = idle.pop()  # the most recently used: the others may expire
            if conn.idle_since > fresh_after and not conn.transport.is_closing():
                return conn
            conn.retire()
        return None

    async def _acquire(
        self, origin: Origin, connect_s: float, total_s: float | None, deadline: float | None, fresh: bool
    ) -> Conn:
        if not fresh:
            conn = self._take_idle(origin)
            if conn is not None:
                return conn
        while self._open >= self._pool_size:
            if self._evict_idle():
                continue
            await self._queue(total_s, deadline)
            if not fresh:
                conn = self._take_idle(origin)
                if conn is not None:
                    return conn
        self._open += 1  # the slot is held while connecting, then belongs to the connection
        try:
            conn = await self._connect(origin, connect_s, total_s, deadline)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        conn.counted = True
        self._conns.add(conn)
        if conn.dead:
            self.forget(conn)
            raise ProviderError("connection", "upstream connection failed: ServerDisconnectedError")
        return conn

    async def _queue(self, total_s: float | None, deadline: float | None) -> None:
        assert self._loop is not None
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            if deadline is None:
                await waiter
            else:
                async with asyncio.timeout_at(deadline):
                    await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, but leaving: pass the turn on
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise ProviderError("timeout", f"upstream did not answer within {total_s or 0:g} s") from exc
            raise

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _evict_idle(self) -> bool:
        """Close the oldest idle connection of any origin, to make room for another origin."""
        for origin in self._origins.values():
            if origin.idle:
                origin.idle.popleft().retire()
                return True
        return False

    def release(self, conn: Conn) -> None:
        """A connection whose response arrived completely and that both sides keep alive."""
        if conn.dead or self._loop is None:
            conn.kill()
            return
        conn.resume()
        conn.reused = True
        conn.idle_since = self._loop.time()
        conn.origin.idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(conn.idle_since + KEEPALIVE_S, self._sweep)
        if self._waiters:
            self._wake_one()

    def forget(self, conn: Conn) -> None:
        """A connection is gone (or going): its slot is free."""
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._conns.discard(conn)
            if self._waiters:
                self._wake_one()

    def _sweep(self) -> None:
        self._sweeper = None
        assert self._loop is not None
        now = self._loop.time()
        nxt: float | None = None
        for origin in self._origins.values():
            idle = origin.idle
            while idle and idle[0].idle_since + KEEPALIVE_S <= now:
                idle.popleft().retire()
            if idle:
                at = idle[0].idle_since + KEEPALIVE_S
                nxt = at if nxt is None else min(nxt, at)
        if nxt is not None:
            self._sweeper = self._loop.call_at(nxt, self._sweep)

    # --- connecting ------------------------------------------------------------------------

    async def _connect(
        self, origin: Origin, connect_s: float, total_s: float | None, deadline: float | None
    ) -> Conn:
        assert self._loop is not None
        limit = self._loop.time() + connect_s
        by_connect = deadline is None or limit <= deadline
        timeout = asyncio.timeout_at(limit if by_connect else deadline)
        made: list[Conn] = []
        try:
            try:
                async with timeout:
                    return await self._dial(origin, made)
            except BaseException:
                for conn in made:  # connected, but the clock ran out before it was handed over
                    conn.dead = True
                    conn.transport.abort()
                raise
        except TimeoutError as exc:
            if not timeout.expired():  # the OS gave up (ETIMEDOUT), not our clock
                raise ProviderError(
                    "connection", f"cannot connect to upstream ({type(exc).__name__})"
                ) from exc
            if by_connect:
                raise ProviderError(
                    "timeout", f"could not connect to the upstream within {connect_s:g} s"
                ) from exc
            raise ProviderError("timeout", f"upstream did not answer within {total_s or 0:g} s") from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError …)
            if origin.proxy is not None and not isinstance(exc, ssl.SSLError):
                raise ProviderError(
                    "connection",
                    f"cannot connect to the proxy {origin.proxy.url} ({type(exc).__name__})",
                ) from exc
            raise ProviderError("connection", f"cannot connect to upstream ({type(exc).__name__})") from exc

    async def _dial(self, origin: Origin, made: list[Conn]) -> Conn:
        if origin.dial_literal:
            return await self._dial_one(origin, origin.dial_host, origin.dial_port, made)
        error: OSError | None = None
        for host, port in await self._resolve(origin):
            try:
                return await self._dial_one(origin, host, port, made)
            except OSError as exc:
                error = exc
        raise error or OSError(f"no address for {origin.dial_host}")

    def _tls(self, ca_file: str | None) -> ssl.SSLContext:
        ctx = self._ssl.get(ca_file)
        if ctx is None:
            try:
                ctx = self._ssl[ca_file] = ssl.create_default_context(cafile=ca_file)
            except OSError as exc:  # a CA bundle that cannot be read
                raise ProviderError(
                    "connection", f"cannot read the CA bundle {ca_file} ({type(exc).__name__})"
                ) from exc
        return ctx

    async def _dial_one(self, origin: Origin, host: str, port: int, made: list[Conn]) -> Conn:
        assert self._loop is not None
        conn = Conn(self, origin)
        if origin.proxy is not None and origin.tls:
            await open_tunnel(self._loop, conn, origin, host, port, self._tls(origin.ca_file))
        elif origin.tls:
            await self._loop.create_connection(
                lambda: conn, host, port, ssl=self._tls(origin.ca_file), server_hostname=origin.host
            )
        else:
            await self._loop.create_connection(lambda: conn, host, port)
        made.append(conn)
        return conn

    async def _resolve(self, origin: Origin) -> list[tuple[str, int]]:
        assert self._loop is not None
        key = (origin.dial_host, origin.dial_port)
        now = self._loop.time()
        hit = self._dns.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        infos = await self._loop.getaddrinfo(key[0], key[1], type=socket.SOCK_STREAM)
        addrs: list[tuple[str, int]] = []
        for info in infos:
            addr = (str(info[4][0]), int(info[4][1]))
            if addr not in addrs:
                addrs.append(addr)
        self._dns[key] = (now + _DNS_TTL_S, addrs)
        return addrs


def transport_for(config: Config, env: Mapping[str, str] | None = None) -> H1Transport:
    """The gateway's upstream client for a configuration: its pool size, and the proxies and CA
    bundles of the environment (``os.environ`` unless given) and of its providers."""
    endpoints: dict[str, list[str]] = {}
    for dep in config.deployments.values():
        if not dep.provider.base_url and dep.family in CLOUD_ENDPOINTS:
            endpoints.setdefault(dep.provider.name, []).append(CLOUD_ENDPOINTS[dep.family](dep))
    policy = policy_for(config.providers.values(), os.environ if env is None else env, endpoints)
    return H1Transport(pool_size=config.pool_size, proxies=policy)


if TYPE_CHECKING:

    def _is_a_transport(t: H1Transport) -> Transport:
        return t  # mypy checks H1Transport against the Transport protocol here
