"""One HTTP/1.1 exchange on one upstream connection, for :mod:`switchpoint.executor.h1`.

:class:`Conn` is the :class:`asyncio.Protocol` of one connection with its ``httptools`` parser
(one per connection, reused for every response on it); :class:`Exchange` is one request on it and
the :class:`~switchpoint.executor.transport.UpstreamStream` handed to the caller. The parser's
callbacks fill the exchange; the caller waits on one future at a time. One timer per exchange
serves both the stall and the total timeout: it is armed at the earlier deadline and, when it
fires, either fails the exchange or re-arms (a received byte only moves a timestamp).

A stream whose consumer falls more than :data:`HIGH_WATER` behind stops reading from the socket,
and its stall clock stops with it, until the consumer has drained what is buffered.
"""

from __future__ import annotations

import asyncio
import socket
import zlib
from collections import deque
from typing import Final, Protocol

from httptools import HttpResponseParser

from switchpoint.errors import ProviderError
from switchpoint.executor.proxy import Proxy


class Pool(Protocol):
    """What a connection tells its pool."""

    def release(self, conn: Conn) -> None:
        """The response arrived completely and both sides keep the connection alive."""

    def forget(self, conn: Conn) -> None:
        """The connection is gone (or going): its slot is free."""


#: A stream stops reading from its socket when this much is buffered and not yet consumed.
HIGH_WATER: Final = 256 * 1024

# what a waiter waits for
HEADERS: Final = 1
DATA: Final = 2
END: Final = 3
# why an exchange failed (0: it did not)
STALL: Final = 1
TOTAL: Final = 2
BROKEN: Final = 3

# request headers this client sets itself unless the caller did
_HOST, _UA, _ACCEPT, _ENCODING, _LENGTH, _TYPE, _CONNECTION = 1, 2, 4, 8, 16, 32, 64
_MANAGED: Final = {
    "host": _HOST,
    "user-agent": _UA,
    "accept": _ACCEPT,
    "accept-encoding": _ENCODING,
    "content-length": _LENGTH,
    "transfer-encoding": _LENGTH,
    "content-type": _TYPE,
    "connection": _CONNECTION,
}
_UA_LINE: Final = "user-agent: switchpoint\r\n"
_ACCEPT_LINE: Final = "accept: */*\r\n"
_ENCODING_LINE: Final = "accept-encoding: gzip, deflate\r\n"


class _OutOfStep(Exception):
    """Raised inside a parser callback to stop parsing: bytes that belong to no request."""


def request_error(ex: Exchange) -> ProviderError:
    """A failure before the answer was complete (``send``) or before its head (``open_stream``)."""
    if ex.err == STALL:
        return ProviderError("timeout", "upstream sent nothing within the stall timeout")
    if ex.err == TOTAL:
        return ProviderError("timeout", f"upstream did not answer within {ex.total_s or 0:g} s")
    return ProviderError("connection", f"upstream connection failed: {ex.err_name}")


def _stream_error(ex: Exchange) -> ProviderError:
    if ex.err == STALL:
        return ProviderError("timeout", f"upstream stream stalled (no data for {ex.stall_s or 0:g} s)")
    if ex.err == TOTAL:
        return ProviderError(
            "timeout", f"upstream stream exceeded its total timeout of {ex.total_s or 0:g} s"
        )
    return ProviderError("connection", f"upstream stream broke: {ex.err_name}")


def _read_error(ex: Exchange) -> ProviderError:
    if ex.err in (STALL, TOTAL):
        return ProviderError("timeout", "upstream did not finish its error body in time")
    return ProviderError("connection", f"upstream connection broke: {ex.err_name}")


def _is_literal(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except OSError:
        return False


class Origin:
    """One (scheme, host, port) and the way to it (direct, or a proxy): where to connect, and
    its idle connections (oldest first). Connections through a proxy are pooled apart.

    Through a proxy, an ``https`` origin is reached through a ``CONNECT`` tunnel (TLS, its SNI
    and certificate check, is then the origin's, inside the tunnel); an ``http`` one with
    absolute-form request targets and the ``Proxy-Authorization`` header (``extra``).
    """

    __slots__ = (
        "authority",
        "ca_file",
        "defaults",
        "dial_host",
        "dial_literal",
        "dial_port",
        "extra",
        "host",
        "host_line",
        "idle",
        "literal",
        "port",
        "proxy",
        "tls",
    )

    def __init__(
        self, tls: bool, host: str, port: int, proxy: Proxy | None = None, ca_file: str | None = None
    ) -> None:
        self.tls = tls
        self.host = host
        self.port = port
        self.proxy = proxy
        self.ca_file = ca_file
        self.literal = _is_literal(host)
        name = f"[{host}]" if ":" in host else host.encode("idna").decode("ascii")
        #: ``host:port`` as a CONNECT request names it (the port always given).
        self.authority = f"{name}:{port}"
        if port != (443 if tls else 80):
            name = f"{name}:{port}"
        self.host_line = f"host: {name}\r\n"
        self.defaults = self.host_line + _UA_LINE + _ACCEPT_LINE + _ENCODING_LINE
        self.idle: deque[Conn] = deque()
        #: A header line every request of this origin carries (the proxy's credentials), or "".
        self.extra = ""
        if proxy is None:
            self.dial_host, self.dial_port, self.dial_literal = host, port, self.literal
        else:
            self.dial_host, self.dial_port = proxy.host, proxy.port
            self.dial_literal = _is_literal(proxy.host)
            if not tls and proxy.auth:
                self.extra = f"proxy-authorization: {proxy.auth}\r\n"


def build_head(
    method: str, target: str, origin: Origin, headers: dict[str, str], size: int
) -> tuple[bytes, bool]:
    """The request line and headers as bytes, and whether the caller asked to close afterwards."""
    parts = [method, " ", target, " HTTP/1.1\r\n"]
    seen = 0
    close = False
    for name, value in headers.items():
        flag = _MANAGED.get(name.lower(), 0)
        if flag:
            seen |= flag
            if flag == _CONNECTION and "close" in value.lower():
                close = True
        parts += (name, ": ", value, "\r\n")
    lines = len(headers)
    if not seen & (_HOST | _UA | _ACCEPT | _ENCODING):
        parts.append(origin.defaults)
        lines += 4
    else:
        for flag, line in (
            (_HOST, origin.host_line),
            (_UA, _UA_LINE),
            (_ACCEPT, _ACCEPT_LINE),
            (_ENCODING, _ENCODING_LINE),
        ):
            if not seen & flag:
                parts.append(line)
                lines += 1
    if not seen & _LENGTH and (size or method not in ("GET", "HEAD")):
        parts += ("content-length: ", str(size), "\r\n")
        lines += 1
    if size and not seen & _TYPE:
        parts.append("content-type: application/octet-stream\r\n")
        lines += 1
    if origin.extra:
        parts.append(origin.extra)
        lines += 1
    parts.append("\r\n")
    text = "".join(parts)
    # A line break inside a header would split it into two (header injection).
    if text.count("\n") != lines + 2 or text.count("\r") != lines + 2:
        raise ProviderError("connection", "upstream connection failed: InvalidHeader")
    return text.encode(), close


class Exchange:
    """One request on one connection, and the upstream stream handed to the caller.

    The connection's parser callbacks fill it; the caller waits on one future at a time.
    """

    __slots__ = (
        "armed",
        "body",
        "buf",
        "close_after",
        "complete",
        "conn",
        "deadline",
        "err",
        "err_name",
        "flow",
        "got_bytes",
        "head_only",
        "headers",
        "info",
        "last",
        "loop",
        "paused",
        "sent",
        "size",
        "stall_s",
        "status",
        "timer",
        "total_s",
        "waiter",
        "want",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stall_s: float | None,
        total_s: float | None,
        deadline: float | None,
        head_only: bool,
        close_after: bool,
        flow: bool,
    ) -> None:
        self.loop = loop
        self.stall_s = stall_s
        self.total_s = total_s
        self.deadline = deadline
        self.head_only = head_only
        self.close_after = close_after
        self.flow = flow
        self.status = 0
        self.headers: dict[str, str] = {}
        self.buf: list[bytes] = []
        self.size = 0
        self.body: bytes | None = None
        self.complete = False
        self.err = 0
        self.err_name = ""
        self.conn: Conn | None = None
        self.got_bytes = False
        self.info = False
        self.sent = False
        self.paused = False
        self.last = 0.0
        self.armed = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.want = 0

    # --- the caller's side -----------------------------------------------------------------

    def chunks(self) -> Exchange:
        return self

    def __aiter__(self) -> Exchange:
        return self

    async def __anext__(self) -> bytes:
        while True:
            buf = self.buf
            if buf:
                data = buf[0] if len(buf) == 1 else b"".join(buf)
                buf.clear()
                self.size = 0
                if self.paused:
                    self._resume()
                return data
            if self.complete:
                raise StopAsyncIteration
            if self.err:
                raise _stream_error(self)
            await self.wait(DATA)

    async def read(self) -> bytes:
        if self.body is not None:
            return self.body
        self.flow = False
        if self.paused:
            self._resume()
        while not self.complete:
            if self.err:
                raise _read_error(self)
            await self.wait(END)
        self.body = self.take()
        return self.body

    def close(self) -> None:
        self.buf.clear()
        self.size = 0
        if not self.complete:
            self.fail(BROKEN, "ClientConnectionError")

    def take(self) -> bytes:
        buf = self.buf
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        buf.clear()
        self.size = 0
        return data

    async def wait(self, want: int) -> None:
        waiter = self.loop.create_future()
        self.waiter = waiter
        self.want = want
        try:
            await waiter
        finally:
            self.waiter = None
            self.want = 0

    def _resume(self) -> None:
        self.paused = False
        conn = self.conn
        if conn is not None:
            conn.resume()
        if self.stall_s is not None:
            self.last = self.loop.time()
            self.arm()

    # --- the connection's side -------------------------------------------------------------

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            self.want = 0
            if not waiter.done():
                waiter.set_result(None)

    def arm(self) -> None:
        """Schedule the one timer at the earlier of the total deadline and the stall deadline."""
        when = self.deadline
        if self.stall_s is not None and not self.paused:
            stall_at = self.last + self.stall_s
            if when is None or stall_at < when:
                when = stall_at
        if when is None:
            return
        timer = self.timer
        if timer is not None:
            if self.armed <= when:
                return  # it fires earlier and re-arms then
            timer.cancel()
        self.armed = when
        self.timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.complete or self.err:
            return
        armed = self.armed
        if self.deadline is not None and self.deadline <= armed:
            self.fail(TOTAL, "")
        elif self.stall_s is not None and not self.paused and self.last + self.stall_s <= armed:
            self.fail(STALL, "")
        else:
            self.arm()

    def finish(self) -> None:
        """The whole response arrived."""
        self.complete = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.wake()

    def fail(self, err: int, name: str) -> None:
        """End the exchange with an error; its connection (if still attached) is closed."""
        if self.complete or self.err:
            return
        self.err = err
        self.err_name = name
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exch = None
            conn.kill()
        self.wake()


class Conn(asyncio.Protocol):
    """One upstream connection; parser callbacks feed the exchange currently attached."""

    __slots__ = (
        "counted",
        "dead",
        "decomp",
        "drain",
        "exch",
        "idle_since",
        "keep",
        "origin",
        "owner",
        "parser",
        "raw_check",
        "read_paused",
        "reused",
        "sink",
        "transport",
        "write_paused",
    )

    transport: asyncio.Transport

    def __init__(self, owner: Pool, origin: Origin) -> None:
        self.owner = owner
        self.origin = origin
        self.parser = HttpResponseParser(self)
        self.exch: Exchange | None = None
        self.sink: list[bytes] = []  # the body buffer of the exchange attached
        self.decomp: zlib._Decompress | None = None
        self.raw_check = False
        self.counted = False
        self.dead = False
        self.keep = False
        self.reused = False
        self.read_paused = False
        self.write_paused = False
        self.drain: asyncio.Future[None] | None = None
        self.idle_since = 0.0

    def attach(self, ex: Exchange) -> None:
        ex.conn = self
        self.exch = ex
        self.sink = ex.buf
        self.decomp = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ex = self.exch
        if ex is None:  # bytes nobody asked for: this connection is out of step
            self.kill()
            return
        ex.got_bytes = True
        if ex.stall_s is not None:
            ex.last = ex.loop.time()
        try:
            self.parser.feed_data(data)
        except Exception:  # HttpParserError, HttpParserUpgrade, a callback's error: never out of here
            if not ex.complete:
                ex.fail(BROKEN, "ClientPayloadError" if ex.status else "ClientResponseError")
                return
            self.keep = False  # a whole response, then junk: the response stands, the connection goes
        if ex.complete:
            self.exch = None
            ex.conn = None
            if self.keep and ex.sent and not ex.close_after:
                self.owner.release(self)
            elif ex.sent:
                self.retire()
            else:
                self.kill()  # the answer came before the whole request left: stop sending
        elif ex.buf:  # once per read, not per chunk of the body
            ex.size += len(data)
            if ex.want == DATA:
                ex.wake()
            if ex.size > HIGH_WATER and ex.flow and not ex.paused:
                ex.paused = True
                self.read_paused = True
                self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        ex = self.exch
        if ex is not None:
            self.exch = None
            ex.conn = None
            if ex.status and exc is None and _until_close(ex.headers):
                self._flush()
                ex.finish()
            elif ex.status:
                ex.fail(BROKEN, "ClientPayloadError")
            else:
                ex.fail(BROKEN, "ClientOSError" if isinstance(exc, OSError) else "ServerDisconnectedError")
        else:
            try:
                self.origin.idle.remove(self)
            except ValueError:
                pass
        drain = self.drain
        if drain is not None:
            self.drain = None
            if not drain.done():
                drain.set_result(None)
        self.owner.forget(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drain = self.drain
        if drain is not None:
            self.drain = None
            if not drain.done():
                drain.set_result(None)

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        ex = self.exch
        if ex is None or ex.complete:
            raise _OutOfStep

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.exch
        if ex is None:
            raise _OutOfStep
        ex.headers[name.decode("latin-1").lower()] = value.decode("utf-8", "surrogateescape")

    def on_headers_complete(self) -> None:
        ex = self.exch
        if ex is None:
            raise _OutOfStep
        status = self.parser.get_status_code()
        if status < 200:  # informational (100 Continue …): the real head follows
            ex.headers.clear()
            ex.info = True
            return
        ex.status = status
        encoding = ex.headers.get("content-encoding")
        if encoding is not None:
            encoding = encoding.strip().lower()
            if encoding in ("gzip", "x-gzip"):
                self.decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif encoding == "deflate":
                self.decomp = zlib.decompressobj(zlib.MAX_WBITS)
                self.raw_check = True
        if ex.head_only:  # a HEAD answer has no body, whatever its length says
            self.keep = False
            ex.finish()
            raise _OutOfStep
        if ex.want == HEADERS:
            ex.wake()

    def on_body(self, body: bytes) -> None:
        # Only ever after on_message_begin and on_headers_complete accepted this message, so the
        # sink is the current exchange's; waking the reader is data_received's, once per read.
        if self.decomp is not None:
            body = self._inflate(body)
            if not body:
                return
        self.sink.append(body)

    def on_message_complete(self) -> None:
        ex = self.exch
        if ex is None:
            raise _OutOfStep
        if ex.info:
            ex.info = False
            return
        self.keep = self.parser.should_keep_alive()
        self._flush()
        ex.finish()

    def _inflate(self, data: bytes) -> bytes:
        decomp = self.decomp
        assert decomp is not None
        if self.raw_check:
            # "deflate" is meant to be zlib-wrapped; some servers send raw deflate (as aiohttp does)
            self.raw_check = False
            if data[0] & 0x0F != 8:
                decomp = self.decomp = zlib.decompressobj(-zlib.MAX_WBITS)
        return decomp.decompress(data)

    def _flush(self) -> None:
        if self.decomp is not None:
            tail = self.decomp.flush()
            self.decomp = None
            if tail:
                self.sink.append(tail)

    # --- pool side -------------------------------------------------------------------------

    def resume(self) -> None:
        if self.read_paused:
            self.read_paused = False
            if not self.dead:
                self.transport.resume_reading()

    def kill(self) -> None:
        """Close now (a broken or unfinished exchange); the slot is free at once."""
        if not self.dead:
            self.dead = True
            self.transport.abort()
        self.owner.forget(self)

    def retire(self) -> None:
        """Close an idle connection gracefully."""
        if not self.dead:
            self.dead = True
            self.transport.close()
        self.owner.forget(self)


def _until_close(headers: dict[str, str]) -> bool:
    """Whether a body runs until the server closes (no length, not chunked)."""
    return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "").lower()
