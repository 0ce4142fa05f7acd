"""The gateway's HTTP/1.1 connection protocol, run by uvicorn in place of its own.

uvicorn keeps what it is good at (sockets, worker processes, signals, the lifespan, graceful
shutdown); this protocol replaces the per-request machinery. The two chat routes are called
directly with a header dict and the whole body, and their answer is written with one
``transport.write`` (a stream: one write per chunk the gateway produces), with no ASGI scope,
message dicts, Starlette request/response objects or task group on the way. Every other
route goes to the ASGI app unchanged, through a small bridge.

HTTP/1.1 as served here: keep-alive, pipelined requests answered in order, ``Expect:
100-continue``, chunked and sized request bodies, a body limit answered with 413 before the
body is read, chunked streaming responses, write back-pressure, and a client that leaves
mid-stream cancels its stream (which closes the upstream call).

Connection limits (``server:`` in the config, ``api/connections.py``): a connection waits at
most ``keep_alive_s`` for the first byte of a request, then has ``head_timeout_s`` for the
head and ``body_timeout_s`` (plus a second per ``body_min_bytes_per_s`` bytes received) for
the body; past either it is answered 408 in the route's dialect and closed. Past
``max_connections`` a new connection is answered 503 and closed. While a request is served,
only a client that leaves the answer unread for ``send_timeout_s`` (the gateway's writes held
back) is cut, the executor's timeouts covering the upstream; an answer still buffered when
the keep-alive wait is up is not idle, and gets ``send_timeout_s`` per sign of progress. Each connection keeps one
deadline, which one sweep per server checks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from collections import deque
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, cast

import httptools

from switchpoint.api.app import GatewayApp
from switchpoint.api.chat import ChatRoute, Reply
from switchpoint.api.connections import LINGER_S, NEVER, connection_stats, stats_for, sweeper_for
from switchpoint.config import ConnectionLimits
from switchpoint.errors import (
    HeadTooLarge,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    SwitchpointError,
    TooManyConnections,
)

log = logging.getLogger("switchpoint.server")

#: What ``uvicorn.run`` / ``uvicorn.Config`` need to run the gateway on this protocol.
UVICORN_OPTIONS: dict[str, Any] = {
    "http": "switchpoint.api.server:GatewayProtocol",
    "proxy_headers": False,  # nothing here reads the client address
    "server_header": False,
}

_STATUS = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNK_END = b"0\r\n\r\n"
_BAD_REQUEST_BODY = b"Invalid HTTP request.\n"
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%b" % (len(_BAD_REQUEST_BODY), _BAD_REQUEST_BODY)
)


#: What a connection's deadline stands for: the wait for a request, reading its head or its
#: body, or the last reads after a refusal.
_IDLE = "idle"
_HEAD = "head"
_BODY = "body"
_LINGER = "linger"


def _status_line(status: int) -> bytes:
    return _STATUS.get(status) or f"HTTP/1.1 {status} \r\n".encode()


def _chunk(data: bytes) -> bytes:
    """One piece of a chunked response body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def _find_gateway(app: Any) -> GatewayApp | None:
    """The gateway app inside whatever uvicorn wrapped it in (proxy headers, logging)."""
    for _ in range(8):
        if isinstance(app, GatewayApp):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class _Request:
    __slots__ = (
        "body",
        "chat",
        "headers",
        "keep_alive",
        "method",
        "path",
        "rejected",
        "size",
        "url",
        "version",
    )

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.method = ""
        self.path = ""
        self.version = "1.1"
        self.keep_alive = True
        self.chat: ChatRoute | None = None
        #: Set when the request is answered before its body is read (over the limit).
        self.rejected: PayloadTooLarge | None = None


class GatewayProtocol(asyncio.Protocol):
    """One client connection. Constructed by uvicorn: ``http=GatewayProtocol`` in its config."""

    # Slots: attribute reads stay on CPython's fast path (an instance dict past 30 keys
    # leaves it, and the protocol's attributes are read many times per request).
    __slots__ = (
        "app_state",
        "asgi",
        "body_s",
        "client",
        "closed",
        "closing",
        "connections",
        "deadline",
        "drain_waiter",
        "ending",
        "gateway_app",
        "gone",
        "head_bytes",
        "head_s",
        "keep_alive_s",
        "limit",
        "loop",
        "max_head",
        "parser",
        "per_byte",
        "phase",
        "queue",
        "read_paused",
        "req",
        "root_path",
        "scheme",
        "send_by",
        "send_left",
        "send_s",
        "server",
        "server_state",
        "stats",
        "streaming",
        "sweeper",
        "task",
        "tasks",
        "transport",
        "write_paused",
    )

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.loop = _loop or asyncio.get_event_loop()
        self.asgi = config.loaded_app
        self.gateway_app = _find_gateway(self.asgi)
        self.app_state = app_state
        self.server_state = server_state
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        gwa = self.gateway_app
        limits = (
            gwa.gateway.config.connections
            if gwa is not None
            else ConnectionLimits(keep_alive_s=config.timeout_keep_alive)
        )
        self.keep_alive_s = limits.keep_alive_s
        self.head_s = limits.head_timeout_s
        self.max_head = limits.max_head_bytes
        #: Bytes read while the head in hand is still incomplete (past its first read).
        self.head_bytes = 0
        self.body_s = limits.body_timeout_s
        self.per_byte = 1.0 / limits.body_min_bytes_per_s
        self.send_s = limits.send_timeout_s
        #: While writes are held back (``_drain``): when the client must have taken them.
        self.send_by = NEVER
        #: Bytes of the last answer still buffered when the sweep last looked (0: none).
        self.send_left = 0
        self.sweeper = sweeper_for(server_state, self.loop, limits)
        self.stats = stats_for(gwa.gateway if gwa is not None else None)
        #: Loop time past which the sweep expires the connection, and what it is waiting for.
        self.deadline = NEVER
        self.phase = _IDLE
        self.root_path: str = config.root_path
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.closed = False
        self.closing = False  # answer what is in hand, then close (shutdown, Connection: close)
        self.req = _Request()
        self.queue: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self.streaming = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.gone: asyncio.Future[None] | None = None
        self.read_paused = False
        self.ending = False
        #: The body limit (bodies are read whole before the app sees them; none without a gateway).
        self.limit = 1 << 62

    # --- connection -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                self.server = sock.getsockname()[:2]
                self.client = sock.getpeername()[:2]
            except OSError:
                pass
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.stats.open += 1
        sweeper = self.sweeper
        sweeper.ensure()
        if len(self.connections) > sweeper.max_connections:
            self.stats.closed["limit"] += 1
            self._refuse(
                TooManyConnections("The gateway has too many open connections; retry shortly", retry_after=1)
            )
            return
        self.deadline = self.loop.time() + self.keep_alive_s

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.connections.discard(self)
        self.stats.open -= 1
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)
        if self.streaming and self.task is not None:
            self.task.cancel()  # the client left mid-stream: stop reading the upstream

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    async def _drain(self) -> None:
        if self.write_paused and not self.closed:
            self.drain_waiter = self.loop.create_future()
            # The client has ``send_timeout_s`` to take what is buffered; the sweep checks.
            self.send_by = by = self.loop.time() + self.send_s
            if by < self.deadline:
                self.deadline = by
            try:
                await self.drain_waiter
            finally:
                self.send_by = NEVER
                if self.deadline == by:
                    self.deadline = NEVER

    def shutdown(self) -> None:
        """The server is stopping: close when idle, else after the response in hand."""
        self.closing = True
        if self.gateway_app is not None:
            self.gateway_app.gateway.begin_drain()  # not ready: load balancers stop sending
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if self.task is None and not self.queue and self.transport is not None:
            self.transport.close()

    def expire(self, now: float) -> None:
        """Past the deadline (called by the sweep): close, answering 408 if a request began."""
        transport = self.transport
        if transport is None or self.closed:
            return
        if self.task is not None:
            # Serving: only a client that leaves the answer unread is cut (the upstream's
            # timeouts are the executor's). A stream in hand stops when the connection is lost.
            if now >= self.send_by:
                self.stats.closed["send_timeout"] += 1
                transport.abort()
            return
        phase = self.phase
        if phase is _IDLE:
            left = transport.get_write_buffer_size()
            if left and left != self.send_left:
                # Not idle: the last answer is still leaving, and it moved since the last
                # look. The client has ``send_timeout_s`` more to take some of it.
                self.send_left = left
                self.deadline = now + self.send_s
            elif left:
                self.stats.closed["send_timeout"] += 1
                transport.abort()
            else:
                self.stats.closed["idle"] += 1
                transport.close()
        elif phase is _LINGER:
            # The refusal was written a while ago; a client that has not even read it is cut.
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()
        elif phase is _HEAD:
            self.stats.closed["head_timeout"] += 1
            self._refuse(RequestTimeout(f"The request's head did not arrive within {self.head_s:g} s"))
        else:
            self.stats.closed["body_timeout"] += 1
            rate = round(1 / self.per_byte)
            self._refuse(
                RequestTimeout(
                    f"The request's body did not arrive in time ({self.body_s:g} s, "
                    f"plus one second per {rate} bytes received)"
                )
            )

    def _refuse(self, err: SwitchpointError) -> None:
        """Answer ``err`` before any response began, then read nothing more and close soon."""
        transport = self.transport
        assert transport is not None
        req = self.req
        req.keep_alive = False
        path = req.url.split(b"?", 1)[0].decode("latin-1")
        headers = _header_dict(req.headers)
        gwa = self.gateway_app
        # ``too_large`` renders any refusal in the route's dialect (OpenAI or Anthropic JSON).
        reply = gwa.too_large(path, headers, err) if gwa is not None else _plain_error(err)
        transport.write(
            self._head(reply.status, reply.headers, reply.media_type, len(reply.body), req) + reply.body
        )
        self.ending = True
        self.phase = _LINGER
        self.deadline = self.loop.time() + LINGER_S
        if transport.can_write_eof():
            transport.write_eof()

    def data_received(self, data: bytes) -> None:
        if self.ending:
            return  # a request was refused unread: nothing more is read on this connection
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no protocol upgrades here: the request is answered as plain HTTP/1.1
        except httptools.HttpParserError:
            log.debug("invalid HTTP request from %s", self.client)
            if self.transport is not None and self.task is None:
                self.transport.write(_BAD_REQUEST)
                self.transport.close()
            else:
                self.closing = True
                self.queue.clear()
        if self.phase is _HEAD:  # the head is still incomplete after this read
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head:
                self._head_too_large()

    def _head_too_large(self) -> None:
        """A head over ``max_head_bytes``: 431, or, behind a response in hand, just the end."""
        transport = self.transport
        if transport is None or transport.is_closing() or self.ending:
            return
        self.stats.closed["head_too_large"] += 1
        if self.task is None:
            self._refuse(HeadTooLarge(f"The request's head is over the limit of {self.max_head} bytes"))
        else:
            self.ending = True  # nothing more is read; the connection ends after the answer
            self.closing = True

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.req = _Request()
        self.phase = _HEAD
        self.head_bytes = 0
        self.deadline = self.loop.time() + self.head_s

    def on_url(self, url: bytes) -> None:
        self.req.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.req.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.phase = _BODY
        self.deadline = self.loop.time() + self.body_s
        req, parser = self.req, self.parser
        req.method = parser.get_method().decode("ascii")
        req.version = parser.get_http_version()
        req.keep_alive = parser.should_keep_alive() and req.version != "1.0"
        gwa = self.gateway_app
        if gwa is None:
            return
        req.path = req.url.split(b"?", 1)[0].decode("latin-1")
        if req.method == "POST":
            req.chat = gwa.chat.get(req.path)
        self.limit = limit = gwa.gateway.config.max_body_bytes
        expect = False
        for name, value in req.headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                req.rejected = PayloadTooLarge(
                    f"Request body of {int(value)} bytes exceeds the limit of {limit} bytes"
                )
            elif name == b"expect" and value.lower() == b"100-continue":
                expect = True
        if req.rejected is not None:
            self._enqueue(req)  # answered at once; the body is never read
        elif expect and self.transport is not None and self.task is None:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        req = self.req
        if req.rejected is not None:
            return
        self.deadline += len(body) * self.per_byte
        req.size += len(body)
        if req.size > self.limit and self.gateway_app is not None:
            req.rejected = PayloadTooLarge(f"Request body exceeds the limit of {self.limit} bytes")
            req.body.clear()
            self._enqueue(req)
            return
        req.body.append(body)

    def on_message_complete(self) -> None:
        self.phase = _IDLE  # between requests; the deadline is set when this one is served
        req = self.req
        if req.rejected is not None:
            return  # answered already
        self._enqueue(req)

    def _enqueue(self, req: _Request) -> None:
        if self.ending:
            return
        if req.rejected is not None:
            req.keep_alive = False  # the rest of the body is not read: the connection ends
            self.ending = True
        if self.task is None:
            self._start(req)
        else:
            self.queue.append(req)
            if not self.read_paused and self.transport is not None:
                self.read_paused = True
                self.transport.pause_reading()

    # --- serving ----------------------------------------------------------------------------

    def _start(self, req: _Request) -> None:
        self.deadline = NEVER
        task = self.loop.create_task(self._serve(req))
        self.task = task
        self.tasks.add(task)
        task.add_done_callback(self._served)

    def _served(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.task = None
        self.streaming = False
        self.server_state.total_requests += 1
        transport = self.transport
        if transport is None or self.closed:
            return
        if self.closing and not self.queue:
            transport.close()
            return
        if self.queue:
            self._start(self.queue.popleft())
            if not self.queue and self.read_paused:
                self.read_paused = False
                transport.resume_reading()
            return
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()
        # The wait for the next request; or a pipelined one began: its head or body restarts.
        self.send_left = 0
        phase = self.phase
        wait = self.keep_alive_s if phase is _IDLE else self.head_s if phase is _HEAD else self.body_s
        self.deadline = self.loop.time() + wait

    async def _serve(self, req: _Request) -> None:
        try:
            if req.rejected is not None and self.gateway_app is not None:
                headers = _header_dict(req.headers)
                await self._write_reply(self.gateway_app.too_large(req.path, headers, req.rejected), req)
            elif req.chat is not None:
                await self._serve_chat(req, req.chat)
            else:
                await self._serve_asgi(req)
        except asyncio.CancelledError:
            if not self.closed and self.transport is not None:
                self.transport.close()  # cut by shutdown: the response cannot be completed
        except Exception:
            log.exception("unhandled error while serving %s %r", req.method, req.url[:200])
            if self.transport is not None:
                self.transport.close()
        if not req.keep_alive:
            self.closing = True

    async def _serve_chat(self, req: _Request, route: ChatRoute) -> None:
        headers = _header_dict(req.headers)
        gw = route.gw
        gw.inflight += 1
        try:
            body = req.body[0] if len(req.body) == 1 else b"".join(req.body)
            reply = await route(headers, body)
            await self._write_reply(reply, req)
        finally:
            gw.left()

    def _head_start(self, status: int) -> list[bytes]:
        """The status line and the server's own headers (the date)."""
        parts = [_status_line(status)]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        return parts

    def _head_end(self, parts: list[bytes], req: _Request) -> bytes:
        if not req.keep_alive or self.closing:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _head(
        self, status: int, headers: Mapping[str, str], media_type: str, length: int | None, req: _Request
    ) -> bytes:
        parts = self._head_start(status)
        parts.append(b"content-type: " + media_type.encode("latin-1") + b"\r\n")
        if length is None:
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            parts.append(b"content-length: " + str(length).encode() + b"\r\n")
        for name, value in headers.items():
            parts += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
        return self._head_end(parts, req)

    async def _write_reply(self, reply: Reply, req: _Request) -> None:
        transport = self.transport
        assert transport is not None
        stream = reply.stream
        if stream is None:
            if not self.closed:
                transport.write(
                    self._head(reply.status, reply.headers, reply.media_type, len(reply.body), req)
                    + reply.body
                )
            return
        # A stream's pieces are gathered and written once the task yields to the loop: what
        # is ready together (the head, the first events, the last ones and the end) leaves in
        # one socket write, and nothing waits longer than the current loop iteration.
        self.streaming = True
        out = [self._head(reply.status, reply.headers, reply.media_type, None, req)]
        flush: asyncio.Handle | None = None

        def write_out() -> None:
            nonlocal flush
            flush = None
            if not transport.is_closing():
                transport.write(b"".join(out))
            out.clear()

        try:
            async for chunk in stream:
                if transport.is_closing():
                    return
                if chunk:
                    out.append(_chunk(chunk))
                    if flush is None:
                        flush = self.loop.call_soon(write_out)
                    if self.write_paused:
                        await self._drain()
            out.append(_CHUNK_END)
            if flush is not None:
                flush.cancel()
            write_out()
        except asyncio.CancelledError:
            # Stopped by the server (shutdown past its drain deadline), not by the client
            # (that closes the transport first): end the stream in the dialect's error shape.
            if reply.abort is not None and not transport.is_closing():
                tail = reply.abort(ShuttingDown("The gateway is shutting down; the answer is incomplete"))
                out.append(_chunk(tail) + _CHUNK_END)
                if flush is not None:
                    flush.cancel()
                write_out()
            raise
        finally:
            if flush is not None:
                flush.cancel()
            self.streaming = False
            await stream.aclose()

    # --- everything else: the ASGI app ------------------------------------------------------

    async def _serve_asgi(self, req: _Request) -> None:
        transport = self.transport
        assert transport is not None
        parsed = httptools.parse_url(req.url)
        raw_path: bytes = parsed.path
        path = raw_path.decode("ascii", "replace")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": req.version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": req.method,
            "root_path": self.root_path,
            "path": self.root_path + path,
            "raw_path": raw_path,
            "query_string": parsed.query or b"",
            "headers": req.headers,
            "state": self.app_state.copy(),
        }
        body = b"".join(req.body)
        sent_body = False
        started = False
        chunked = False
        finished = False
        no_body = req.method == "HEAD"  # HEAD, and 1xx, 204 and 304 answers below

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            if not self.closed and not finished:
                if self.gone is None:
                    self.gone = self.loop.create_future()
                await asyncio.shield(self.gone)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal started, chunked, finished, no_body
            kind = message["type"]
            if kind == "http.response.start":
                if started:
                    raise RuntimeError("response already started")
                started = True
                status = message["status"]
                # 1xx, 204 and 304 answers have no body (RFC 9112 6.3): no chunked framing, or
                # the client reads its terminator as the next answer (a 304 to a revalidation).
                if status in (204, 304) or 100 <= status < 200:
                    no_body = True
                parts = self._head_start(status)
                has_length = False
                for name, value in message.get("headers", ()):
                    low = name.lower()
                    if low == b"content-length":
                        has_length = True
                    parts += [low, b": ", value, b"\r\n"]
                if not has_length and not no_body:
                    chunked = True
                    parts.append(b"transfer-encoding: chunked\r\n")
                head = self._head_end(parts, req)
                if not self.closed:
                    transport.write(head)
            elif kind == "http.response.body":
                if not started:
                    raise RuntimeError("response body before response start")
                if finished:
                    return
                data: bytes = message.get("body", b"")
                more = message.get("more_body", False)
                if self.closed:
                    return
                if data and not no_body:
                    transport.write(_chunk(data) if chunked else data)
                if not more:
                    finished = True
                    if chunked:
                        transport.write(_CHUNK_END)
                elif self.write_paused:
                    await self._drain()

        try:
            await self.asgi(scope, receive, send)
        except Exception:
            log.exception("ASGI app failed on %s %s", req.method, path)
            if not started and not self.closed:
                transport.write(
                    _status_line(500)
                    + b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n"
                    + b"connection: close\r\n\r\nInternal Server Error"
                )
            req.keep_alive = False
            return
        if not finished:
            if not started and not self.closed:
                transport.write(_status_line(500) + b"content-length: 0\r\nconnection: close\r\n\r\n")
            req.keep_alive = False  # the response is incomplete: the connection cannot be reused


def _plain_error(err: SwitchpointError) -> Reply:
    """A refusal in OpenAI's error shape, for an app that is not the gateway's."""
    kind = "server_error" if err.status >= 500 else "invalid_request_error"
    error = {"message": err.message, "type": kind, "param": None, "code": err.kind}
    return Reply(err.status, {}, json.dumps({"error": error}).encode())


def _header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Names lower-cased; a repeated header keeps its first value (as Starlette's ``get``)."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1")
        if key not in out:
            out[key] = value.decode("latin-1")
    return out


__all__ = ["UVICORN_OPTIONS", "GatewayProtocol", "connection_stats"]
