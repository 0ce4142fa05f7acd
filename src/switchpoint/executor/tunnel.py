"""An HTTPS upstream through an HTTP proxy: ``CONNECT``, then TLS to the origin inside the tunnel.

The TLS handshake is the origin's: its name goes in SNI and its certificate is checked against
it (and the provider's CA bundle), never the proxy's. A proxy that refuses the tunnel (407, 403,
502 …) or closes the connection is a ``connection`` error naming the proxy and its answer.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Final

from switchpoint.errors import ProviderError

if TYPE_CHECKING:
    from switchpoint.executor.h1_wire import Conn, Origin

_MAX_HEAD: Final = 16 * 1024


class _Handshake(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT`` (a head, no body) before TLS starts."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.buf = bytearray()
        self.done: asyncio.Future[bytes] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end >= 0:
            if end + 4 != len(self.buf):
                self.done.set_exception(
                    ProviderError("connection", "the proxy sent bytes after its CONNECT answer")
                )
            else:
                self.done.set_result(bytes(self.buf[:end]))
        elif len(self.buf) > _MAX_HEAD:
            self.done.set_exception(ProviderError("connection", "the proxy's CONNECT answer is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionResetError("the proxy closed the connection during CONNECT"))


async def open_tunnel(
    loop: asyncio.AbstractEventLoop,
    conn: Conn,
    origin: Origin,
    host: str,
    port: int,
    ctx: ssl.SSLContext,
) -> None:
    """Connect ``conn`` to ``origin`` through the proxy at ``host:port`` (its resolved address)."""
    proxy = origin.proxy
    assert proxy is not None
    hs = _Handshake(loop)
    raw, _ = await loop.create_connection(lambda: hs, host, port)
    try:
        lines = [f"CONNECT {origin.authority} HTTP/1.1\r\n", f"host: {origin.authority}\r\n"]
        if proxy.auth:
            lines.append(f"proxy-authorization: {proxy.auth}\r\n")
        lines.append("\r\n")
        raw.write("".join(lines).encode("ascii"))
        head = await hs.done
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if not parts[0].startswith("HTTP/1.") or not 200 <= code < 300:
            what = status_line.strip()[:120] or "no status line"
            hint = ": check the proxy credentials" if code == 407 else ""
            raise ProviderError(
                "connection",
                f"the proxy {proxy.url} refused the tunnel to {origin.authority} ({what}){hint}",
            )
        tls = await loop.start_tls(raw, conn, ctx, server_hostname=origin.host)
    except BaseException:
        raw.abort()
        raise
    if tls is None:  # the connection closed during the handshake
        raise ConnectionResetError("the tunnel closed during the TLS handshake")
    conn.connection_made(tls)
