"""The lean HTTP/1.1 transport (``executor/h1.py``) against real loopback servers.

Most cases use a tiny raw asyncio server (so a test can count connections, answer with any
framing, stall, cut or misbehave on purpose); the rest use the simulator over uvicorn. The same
error kinds and messages the executor and its tests rely on are asserted.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import ssl
import subprocess
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from switchpoint.errors import ProviderError
from switchpoint.executor import H1Transport, h1, h1_wire
from switchpoint.providers.base import UpstreamRequest

# --- a raw loopback upstream -----------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    head: bytes


class Peer:
    """The server's side of one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        self.reader = reader
        self.writer = writer
        self.number = number  # 1 for the first connection the server accepted

    async def request(self) -> Request | None:
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(size) if size else b""
        return Request(method, target, headers, body, head)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()


Handler = Callable[[Peer], Awaitable[None]]


class Upstream:
    """An HTTP server on a loopback port that runs ``handler`` for every connection."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0  # accepted so far
        self.open = 0
        self.max_open = 0
        self.requests: list[Request] = []
        self.closed = asyncio.Event()  # set each time a connection ends
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self.handler(Peer(reader, writer, self.connections))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:  # the test is over (a cancelled task upsets asyncio's streams)
            pass
        finally:
            self.open -= 1
            writer.close()
            self.closed.set()
            self._tasks.discard(task)


def answer(body: bytes, *, status: int = 200, headers: tuple[str, ...] = (), length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *headers]
    if length:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)


def keep_alive(make: Callable[[Request], bytes], seen: list[Request] | None = None) -> Handler:
    """Answer every request of a connection with ``make(request)``."""

    async def handler(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            if seen is not None:
                seen.append(req)
            peer.send(make(req))

    return handler


def post(url: str, body: bytes = b'{"q":1}', headers: dict[str, str] | None = None) -> UpstreamRequest:
    """A POST to ``url``, or to ``/v1/x`` when ``url`` is only the server's base."""
    if url.count("/") == 2:
        url += "/v1/x"
    return UpstreamRequest(
        method="POST", url=url, headers=headers or {"content-type": "application/json"}, body=body
    )


@pytest.fixture
async def client() -> AsyncIterator[H1Transport]:
    transport = H1Transport(pool_size=8)
    yield transport
    await transport.close()


async def send(t: H1Transport, req: UpstreamRequest, **kw: Any) -> Any:
    kw.setdefault("timeout_s", 10)
    kw.setdefault("connect_timeout_s", 5)
    return await t.send(req, **kw)


async def stream(t: H1Transport, req: UpstreamRequest, **kw: Any) -> Any:
    kw.setdefault("connect_timeout_s", 5)
    kw.setdefault("read_timeout_s", 10)
    return await t.open_stream(req, **kw)


# --- round trips ---------------------------------------------------------------------------


async def test_json_round_trip_against_the_simulator(client: H1Transport, simulator_url: str) -> None:
    body = json.dumps({"model": "sim", "messages": [{"role": "user", "content": "hello"}]}).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer sk-test"}
    req = UpstreamRequest(
        method="POST", url=simulator_url + "/openai/v1/chat/completions", headers=headers, body=body
    )
    resp = await send(client, req)
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert all(k == k.lower() for k in resp.headers)
    data = json.loads(resp.body)
    assert data["object"] == "chat.completion" and data["choices"][0]["message"]["content"]


async def test_error_status_and_headers_pass_through(client: H1Transport, simulator_url: str) -> None:
    body = json.dumps({"model": "sim", "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {
        "content-type": "application/json",
        "authorization": "Bearer k",
        "x-sim-status": "429",
        "x-sim-retry-after-s": "3",
    }
    req = UpstreamRequest(
        method="POST", url=simulator_url + "/openai/v1/chat/completions", headers=headers, body=body
    )
    resp = await send(client, req)
    assert resp.status == 429 and resp.headers["retry-after"] == "3"
    assert json.loads(resp.body)["error"]
    s = await stream(client, UpstreamRequest(method="POST", url=req.url, headers=headers, body=body))
    try:
        assert s.status == 429
        assert json.loads(await s.read())["error"]
        assert json.loads(await s.read())["error"]  # read() again gives the same body
    finally:
        s.close()


async def test_request_head_is_what_the_adapter_built(client: H1Transport) -> None:
    seen: list[Request] = []
    async with Upstream(keep_alive(lambda r: answer(b"ok"), seen)) as up:
        req = UpstreamRequest(
            method="POST",
            url=up.url + "/v1beta/models/m:streamGenerateContent?alt=sse",
            headers={"content-type": "application/json", "X-Goog-Api-Key": "k1", "anthropic-beta": "a,b"},
            body=b'{"a": 1}',
        )
        resp = await send(client, req)
        get = UpstreamRequest(
            method="GET", url=up.url + "/v1/models", headers={"User-Agent": "mine"}, body=b""
        )
        await send(client, get)
    assert resp.status == 200 and resp.body == b"ok"
    first, second = seen
    assert first.method == "POST" and first.target == "/v1beta/models/m:streamGenerateContent?alt=sse"
    assert first.headers == {
        "content-type": "application/json",
        "x-goog-api-key": "k1",
        "anthropic-beta": "a,b",
        "host": f"127.0.0.1:{up.port}",
        "user-agent": "switchpoint",
        "accept": "*/*",
        "accept-encoding": "gzip, deflate",
        "content-length": "8",
    }
    assert b"X-Goog-Api-Key: k1\r\n" in first.head  # names are sent as given
    assert first.body == b'{"a": 1}'
    assert second.method == "GET" and second.target == "/v1/models"
    assert second.headers["user-agent"] == "mine" and "content-length" not in second.headers


async def test_a_line_break_in_a_header_is_refused(client: H1Transport) -> None:
    async with Upstream(keep_alive(lambda r: answer(b"ok"))) as up:
        with pytest.raises(ProviderError) as exc:
            await send(client, post(up.url, headers={"x-a": "1\r\nx-injected: 1"}))
        assert up.connections == 0
    assert exc.value.kind == "connection"


# --- body framings -------------------------------------------------------------------------


async def test_content_length_chunked_and_until_close_bodies(client: H1Transport) -> None:
    payload = b"0123456789" * 1000

    async def handler(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            kind = req.target.rsplit("/", 1)[1]
            if kind == "length":
                peer.send(answer(payload))
            elif kind == "chunked":
                peer.send(answer(b"", headers=("transfer-encoding: chunked",), length=False))
                for i in range(0, len(payload), 3000):
                    peer.send(chunked(payload[i : i + 3000]))
                    await peer.drain()
                peer.send(b"0\r\n\r\n")
            else:  # no length, not chunked: the body ends when the server closes
                peer.send(answer(b"", length=False) + payload[:5000])
                await peer.drain()
                await asyncio.sleep(0.02)
                peer.send(payload[5000:])
                await peer.drain()
                return

    async with Upstream(handler) as up:
        for kind in ("length", "chunked", "close"):
            req = UpstreamRequest(method="GET", url=f"{up.url}/{kind}", headers={}, body=b"")
            assert (await send(client, req)).body == payload, kind
            s = await stream(client, req)
            got = b"".join([c async for c in s.chunks()])
            s.close()
            assert got == payload, kind
        assert up.connections == 2  # an until-close answer ends its connection

    for version in ("1.0", "1.1"):  # an HTTP/1.0 answer is not kept alive

        async def old(peer: Peer, version: str = version) -> None:
            while await peer.request() is not None:
                peer.send(f"HTTP/{version} 200 OK\r\ncontent-length: 2\r\n\r\nhi".encode())

        async with Upstream(old) as up:
            assert (await send(client, post(up.url))).body == b"hi"
            assert (await send(client, post(up.url))).body == b"hi"
            assert up.connections == (2 if version == "1.0" else 1)


async def test_informational_and_empty_answers(client: H1Transport) -> None:
    async def handler(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            if req.target.endswith("/continue"):
                peer.send(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"after"))
            elif req.method == "HEAD":
                peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            else:
                peer.send(b"HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n")

    async with Upstream(handler) as up:
        resp = await send(
            client, UpstreamRequest(method="GET", url=up.url + "/continue", headers={}, body=b"")
        )
        assert resp.status == 200 and resp.body == b"after"
        resp = await send(client, UpstreamRequest(method="GET", url=up.url + "/empty", headers={}, body=b""))
        assert resp.status == 204 and resp.body == b"" and resp.headers["x-a"] == "1"
        resp = await send(client, UpstreamRequest(method="HEAD", url=up.url + "/h", headers={}, body=b""))
        assert resp.status == 200 and resp.body == b"" and resp.headers["content-length"] == "1000"
        resp = await send(client, UpstreamRequest(method="GET", url=up.url + "/empty", headers={}, body=b""))
        assert resp.status == 204


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies_are_decoded(client: H1Transport, encoding: str) -> None:
    text = b'{"text": "' + b"compress me " * 2000 + b'"}'
    if encoding == "gzip":
        packed = gzip.compress(text)
    elif encoding == "deflate":
        packed = zlib.compress(text)
    else:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed = packer.compress(text) + packer.flush()
    name = "deflate" if encoding == "raw-deflate" else encoding

    async def handler(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            if req.target.endswith("/stream"):
                peer.send(
                    answer(
                        b"", headers=(f"content-encoding: {name}", "transfer-encoding: chunked"), length=False
                    )
                )
                for i in range(0, len(packed), 50):  # tiny pieces: the decoder must keep its state
                    peer.send(chunked(packed[i : i + 50]))
                    await peer.drain()
                peer.send(b"0\r\n\r\n")
            else:
                peer.send(answer(packed, headers=(f"content-encoding: {name}",)))

    async with Upstream(handler) as up:
        resp = await send(client, post(up.url))
        assert resp.body == text and resp.headers["content-encoding"] == name
        s = await stream(client, post(up.url + "/stream"))
        got = b"".join([c async for c in s.chunks()])
        s.close()
        assert got == text


# --- streaming -----------------------------------------------------------------------------


async def test_stream_chunks_arrive_as_they_are_sent(client: H1Transport) -> None:
    go_on = asyncio.Event()

    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(
            answer(
                b"", headers=("content-type: text/event-stream", "transfer-encoding: chunked"), length=False
            )
        )
        peer.send(chunked(b"data: one\n\n"))
        await peer.drain()
        await go_on.wait()  # the rest only after the client saw the first chunk
        peer.send(chunked(b"data: two\n\n") + chunked(b"data: three\n\n") + b"0\r\n\r\n")
        await peer.request()

    async with Upstream(handler) as up:
        s = await stream(client, post(up.url))
        assert s.status == 200 and s.headers["content-type"] == "text/event-stream"
        got = []
        async for chunk in s.chunks():
            got.append(chunk)
            go_on.set()
        s.close()
    assert got[0] == b"data: one\n\n"
    assert b"".join(got) == b"data: one\n\ndata: two\n\ndata: three\n\n"


async def test_simulator_stream_is_incremental(client: H1Transport, simulator_url: str) -> None:
    body = json.dumps(
        {"model": "sim", "stream": True, "messages": [{"role": "user", "content": "a story"}]}
    ).encode()
    headers = {
        "content-type": "application/json",
        "authorization": "Bearer k",
        "x-sim-tokens-per-s": "50",
        "x-sim-output-tokens": "10",
        "x-sim-ttft-ms": "0",
    }
    req = UpstreamRequest(
        method="POST", url=simulator_url + "/openai/v1/chat/completions", headers=headers, body=body
    )
    s = await stream(client, req)
    times = []
    data = b""
    async for chunk in s.chunks():
        times.append(time.perf_counter())
        data += chunk
    s.close()
    assert s.status == 200 and data.rstrip().endswith(b"data: [DONE]")
    assert len(times) >= 5, "chunks were not delivered as they came"
    assert times[-1] - times[0] > 0.1  # 10 pieces at 50/s: spread over ~0.2 s, not all at the end


async def test_slow_consumer_pauses_the_socket(client: H1Transport) -> None:
    size = 8 * 1024 * 1024
    block = bytes(range(256)) * 256  # 64 KiB

    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(answer(b"", headers=(f"content-length: {size}",), length=False))
        for _ in range(size // len(block)):
            peer.send(block)
            await peer.drain()
        await peer.request()

    async with Upstream(handler) as up:
        s = await stream(client, post(up.url), read_timeout_s=0.5)
        await asyncio.sleep(1.0)  # a consumer busy elsewhere, longer than the stall timeout
        buffered = s.size
        assert buffered <= h1_wire.HIGH_WATER + 256 * 1024, buffered  # reading stopped near the mark
        got = b"".join([c async for c in s.chunks()])
        s.close()
    assert got == block * (size // len(block))


async def test_large_request_body_is_written_with_flow_control(client: H1Transport) -> None:
    payload = bytes(range(251)) * 40_000  # ~10 MB

    async def handler(peer: Peer) -> None:
        head = await peer.reader.readuntil(b"\r\n\r\n")
        size = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        got = bytearray()
        while len(got) < size:
            got += await peer.reader.read(65536)
            await asyncio.sleep(0)  # a slow reader
        peer.send(answer(str(zlib.crc32(got)).encode()))
        await peer.request()

    async with Upstream(handler) as up:
        resp = await send(client, post(up.url, body=payload))
    assert int(resp.body) == zlib.crc32(payload)


# --- the pool ------------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(client: H1Transport) -> None:
    async with Upstream(keep_alive(lambda r: answer(b"x" * 100))) as up:
        for _ in range(5):
            assert (await send(client, post(up.url))).body == b"x" * 100
        for _ in range(3):
            s = await stream(client, post(up.url))
            assert [c async for c in s.chunks()] == [b"x" * 100]
            s.close()  # after the end: the connection is already back in the pool
    assert up.connections == 1


async def test_connection_close_is_honoured(client: H1Transport) -> None:
    async with Upstream(keep_alive(lambda r: answer(b"bye", headers=("connection: close",)))) as up:
        for _ in range(3):
            assert (await send(client, post(up.url))).body == b"bye"
    assert up.connections == 3
    async with Upstream(keep_alive(lambda r: answer(b"ok"))) as up:
        for _ in range(2):
            await send(client, post(up.url, headers={"connection": "close"}))
    assert up.connections == 2


async def test_a_stale_pooled_connection_is_retried_once_on_a_fresh_one(client: H1Transport) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(answer(b"first"))
        if peer.number == 1:
            await peer.request()  # the second request on this connection: close without a word
            return
        while await peer.request() is not None:
            peer.send(answer(b"again"))

    async with Upstream(handler) as up:
        assert (await send(client, post(up.url))).body == b"first"
        assert (await send(client, post(up.url))).body == b"first"  # on connection 2
        assert up.connections == 2


async def test_a_connection_closed_while_idle_is_not_used(client: H1Transport) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(answer(b"once"))  # then the server's idle timeout: close

    async with Upstream(handler) as up:
        for _ in range(3):
            assert (await send(client, post(up.url))).body == b"once"
            await asyncio.sleep(0.05)
        assert up.connections == 3


async def test_no_retry_on_a_fresh_connection_or_after_bytes_arrived(client: H1Transport) -> None:
    async def silent(peer: Peer) -> None:
        await peer.request()

    async with Upstream(silent) as up:
        with pytest.raises(ProviderError) as exc:
            await send(client, post(up.url))
        assert up.connections == 1
    assert exc.value.kind == "connection"
    assert exc.value.message == "upstream connection failed: ServerDisconnectedError"

    async def half(peer: Peer) -> None:
        await peer.request()
        peer.send(answer(b"ok"))
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\ncontent-")  # then gone

    async with Upstream(half) as up:
        await send(client, post(up.url))
        with pytest.raises(ProviderError) as exc:
            await send(client, post(up.url))
        assert up.connections == 1
    assert exc.value.kind == "connection"


async def test_pool_limit_holds_under_concurrency() -> None:
    async def handler(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            if req.target.endswith("/open"):  # a stream that does not end
                peer.send(answer(b"", headers=("transfer-encoding: chunked",), length=False) + chunked(b"a"))
                continue
            await asyncio.sleep(0.03)
            peer.send(answer(b"ok"))

    client = H1Transport(pool_size=3)
    try:
        async with Upstream(handler) as up:
            results = await asyncio.gather(*(send(client, post(up.url)) for _ in range(20)))
            assert [r.body for r in results] == [b"ok"] * 20
            assert up.max_open == 3 and up.connections == 3
            streams = [await stream(client, post(up.url + "/open")) for _ in range(3)]  # every slot taken
            waiting = asyncio.ensure_future(send(client, post(up.url)))
            await asyncio.sleep(0.1)
            assert not waiting.done()  # queued for a slot
            assert up.connections == 3
            streams[0].close()  # an unfinished stream: its connection goes, which frees a slot
            assert (await waiting).body == b"ok"
            for s in streams[1:]:
                s.close()
            assert up.connections == 4
    finally:
        await client.close()


async def test_waiting_for_a_slot_is_bounded_by_the_total_timeout() -> None:
    async def hang(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(10)

    client = H1Transport(pool_size=1)
    try:
        async with Upstream(hang) as up:
            first = asyncio.ensure_future(send(client, post(up.url), timeout_s=5))
            await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            with pytest.raises(ProviderError) as exc:
                await send(client, post(up.url), timeout_s=0.2)
            assert 0.18 <= time.perf_counter() - t0 < 0.5
            assert exc.value.kind == "timeout" and exc.value.message == "upstream did not answer within 0.2 s"
            assert up.connections == 1
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
    finally:
        await client.close()


async def test_early_close_does_not_return_the_connection(client: H1Transport) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            peer.send(answer(b"", headers=("transfer-encoding: chunked",), length=False))
            peer.send(chunked(b"first"))
            await peer.drain()
            await asyncio.sleep(0.2)
            peer.send(chunked(b"second") + b"0\r\n\r\n")

    async with Upstream(handler) as up:
        s = await stream(client, post(up.url))
        async for chunk in s.chunks():
            assert chunk == b"first"
            break
        s.close()
        await asyncio.wait_for(up.closed.wait(), 2)  # the server saw it go
        s2 = await stream(client, post(up.url))
        assert b"".join([c async for c in s2.chunks()]) == b"firstsecond"
        s2.close()
        assert up.connections == 2
        with pytest.raises(ProviderError) as exc:
            async for _ in s.chunks():
                pass
        assert exc.value.kind == "connection"


async def test_a_cancelled_request_frees_its_slot() -> None:
    async def handler(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            if req.target.endswith("/hang"):
                await asyncio.sleep(10)
            peer.send(answer(b"ok"))

    client = H1Transport(pool_size=1)
    try:
        async with Upstream(handler) as up:
            hung = asyncio.ensure_future(
                send(client, UpstreamRequest(method="GET", url=up.url + "/hang", headers={}, body=b""))
            )
            await asyncio.sleep(0.05)
            hung.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hung
            assert (await send(client, post(up.url), timeout_s=2)).body == b"ok"
            assert up.connections == 2
    finally:
        await client.close()


async def test_idle_connections_expire(client: H1Transport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h1, "KEEPALIVE_S", 0.2)
    async with Upstream(keep_alive(lambda r: answer(b"ok"))) as up:
        await send(client, post(up.url))
        up.closed.clear()
        await asyncio.wait_for(up.closed.wait(), 2)  # closed by the client after 0.2 s idle
        await send(client, post(up.url))
        assert up.connections == 2


# --- failures and timeouts -----------------------------------------------------------------


async def test_connect_refused(client: H1Transport) -> None:
    async with Upstream(keep_alive(lambda r: b"")) as up:
        url = up.url
    with pytest.raises(ProviderError) as exc:
        await send(client, post(url))
    assert exc.value.kind == "connection"
    assert exc.value.message == "cannot connect to upstream (ConnectionRefusedError)"
    with pytest.raises(ProviderError) as exc:
        await stream(client, post(url))
    assert exc.value.kind == "connection"


async def test_connect_timeout_covers_the_tls_handshake(client: H1Transport) -> None:
    """A server that accepts TCP but never answers the TLS hello: the connect timeout fires."""

    async def mute(peer: Peer) -> None:
        await asyncio.sleep(10)

    async with Upstream(mute) as up:
        t0 = time.perf_counter()
        with pytest.raises(ProviderError) as exc:
            await send(client, post(up.url.replace("http:", "https:")), connect_timeout_s=0.3)
        elapsed = time.perf_counter() - t0
    assert exc.value.kind == "timeout"
    assert exc.value.message == "could not connect to the upstream within 0.3 s"
    assert 0.28 <= elapsed < 0.6


async def test_connect_timeout_on_a_full_accept_queue(client: H1Transport) -> None:
    """A listening socket nobody accepts from: once its queue is full, SYNs are dropped."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        try:
            await send(client, post(f"http://127.0.0.1:{port}"), connect_timeout_s=0.3, timeout_s=5)
        except ProviderError as exc:
            if exc.kind != "timeout":
                pytest.skip(f"this kernel does not drop SYNs on a full accept queue ({exc.message})")
            assert exc.message == "could not connect to the upstream within 0.3 s"
            assert 0.28 <= time.perf_counter() - t0 < 0.6
        else:
            pytest.skip("this kernel accepted beyond the backlog")
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_total_timeout_before_connect_wins_when_shorter(client: H1Transport) -> None:
    async def mute(peer: Peer) -> None:
        await asyncio.sleep(10)

    async with Upstream(mute) as up:
        with pytest.raises(ProviderError) as exc:
            await send(client, post(up.url.replace("http:", "https:")), connect_timeout_s=5, timeout_s=0.2)
    assert exc.value.kind == "timeout" and exc.value.message == "upstream did not answer within 0.2 s"


async def test_stall_timeouts(client: H1Transport) -> None:
    async def handler(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            if req.target.endswith("/mute"):
                await asyncio.sleep(10)
            peer.send(answer(b"", headers=("transfer-encoding: chunked",), length=False))
            if req.target.endswith("/trickle"):  # a byte every 0.1 s: never silent for 0.25 s
                for _ in range(8):
                    peer.send(chunked(b"."))
                    await peer.drain()
                    await asyncio.sleep(0.1)
                peer.send(b"0\r\n\r\n")
                continue
            peer.send(chunked(b"data: 1\n\n"))
            await peer.drain()
            await asyncio.sleep(10)

    async with Upstream(handler) as up:
        t0 = time.perf_counter()
        with pytest.raises(ProviderError) as exc:
            await send(client, post(up.url + "/mute"), read_timeout_s=0.3)
        assert 0.28 <= time.perf_counter() - t0 < 0.5
        assert exc.value.kind == "timeout"
        assert exc.value.message == "upstream sent nothing within the stall timeout"

        s = await stream(client, post(up.url + "/stall"), read_timeout_s=0.3)
        last = 0.0
        with pytest.raises(ProviderError) as exc:
            async for _ in s.chunks():
                last = time.perf_counter()
        stalled = time.perf_counter() - last
        s.close()
        assert exc.value.kind == "timeout"
        assert exc.value.message == "upstream stream stalled (no data for 0.3 s)"
        assert 0.28 <= stalled < 0.5, stalled

        s = await stream(client, post(up.url + "/trickle"), read_timeout_s=0.25)
        assert b"".join([c async for c in s.chunks()]) == b"." * 8
        s.close()

        s = await stream(client, post(up.url + "/stall"), read_timeout_s=0.3)
        with pytest.raises(ProviderError) as exc:
            await s.read()
        s.close()
        assert exc.value.kind == "timeout"
        assert exc.value.message == "upstream did not finish its error body in time"


async def test_total_timeouts(client: H1Transport) -> None:
    async def trickle(peer: Peer) -> None:
        await peer.request()
        peer.send(answer(b"", headers=("transfer-encoding: chunked",), length=False))
        for _ in range(100):
            peer.send(chunked(b"."))
            await peer.drain()
            await asyncio.sleep(0.05)

    async with Upstream(trickle) as up:
        t0 = time.perf_counter()
        with pytest.raises(ProviderError) as exc:
            await send(client, post(up.url), timeout_s=0.4, read_timeout_s=0.2)
        assert 0.38 <= time.perf_counter() - t0 < 0.6
        assert exc.value.kind == "timeout" and exc.value.message == "upstream did not answer within 0.4 s"

        t0 = time.perf_counter()
        s = await stream(client, post(up.url), read_timeout_s=0.2, total_timeout_s=0.4)
        got = b""
        with pytest.raises(ProviderError) as exc:
            async for chunk in s.chunks():
                got += chunk
        s.close()
        assert 0.38 <= time.perf_counter() - t0 < 0.6
        assert got and set(got) == {ord(".")}
        assert exc.value.kind == "timeout"
        assert exc.value.message == "upstream stream exceeded its total timeout of 0.4 s"


async def test_eof_mid_body(client: H1Transport) -> None:
    async def handler(peer: Peer) -> None:
        req = await peer.request()
        assert req is not None
        if req.target.endswith("/length"):
            peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        else:
            peer.send(
                answer(b"", headers=("transfer-encoding: chunked",), length=False) + chunked(b"data: 1\n\n")
            )

    async with Upstream(handler) as up:
        for kind in ("length", "chunked"):
            with pytest.raises(ProviderError) as exc:
                await send(client, post(f"{up.url}/{kind}"))
            assert exc.value.kind == "connection"
            assert exc.value.message == "upstream connection failed: ClientPayloadError"
            s = await stream(client, post(f"{up.url}/{kind}"))
            got = b""
            with pytest.raises(ProviderError) as exc:
                async for chunk in s.chunks():
                    got += chunk
            s.close()
            assert got in (b"only part", b"data: 1\n\n")
            assert exc.value.kind == "connection"
            assert exc.value.message == "upstream stream broke: ClientPayloadError"


async def test_malformed_answer(client: H1Transport) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(b"SMTP ready\r\n\r\n")
        await peer.request()

    async with Upstream(handler) as up:
        with pytest.raises(ProviderError) as exc:
            await send(client, post(up.url))
    assert exc.value.kind == "connection"
    assert exc.value.message == "upstream connection failed: ClientResponseError"


async def test_error_body_cut_short(client: H1Transport) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(b'HTTP/1.1 500 Oops\r\ncontent-length: 100\r\n\r\n{"error"')

    async with Upstream(handler) as up:
        s = await stream(client, post(up.url))
        assert s.status == 500
        with pytest.raises(ProviderError) as exc:
            await s.read()
        s.close()
    assert exc.value.kind == "connection"
    assert exc.value.message == "upstream connection broke: ClientPayloadError"


async def test_an_answer_before_the_upload_ends(client: H1Transport) -> None:
    """The server refuses a big body after its head: the answer counts, the connection goes."""

    async def handler(peer: Peer) -> None:
        while (req := await peer.reader.readuntil(b"\r\n\r\n")) is not None:
            if b"content-length: 2\r\n" in req:
                await peer.reader.readexactly(2)
                peer.send(answer(b"small"))
                continue
            peer.send(answer(b"too large", status=413))
            while await peer.reader.read(65536):  # discard until the client gives up
                pass
            return

    async with Upstream(handler) as up:
        resp = await send(client, post(up.url, body=b"x" * 20_000_000))
        assert resp.status == 413 and resp.body == b"too large"
        assert (await send(client, post(up.url, body=b"{}"))).body == b"small"
        assert up.connections == 2


async def test_bad_urls(client: H1Transport) -> None:
    for url in ("ftp://127.0.0.1/x", "http:///x", "http://127.0.0.1:99999/x"):
        with pytest.raises(ProviderError) as exc:
            await send(client, UpstreamRequest(method="GET", url=url, headers={}, body=b""))
        assert exc.value.kind == "connection", url


async def test_a_full_pool_closes_an_idle_connection_of_another_origin() -> None:
    client = H1Transport(pool_size=1)
    try:
        async with (
            Upstream(keep_alive(lambda r: answer(b"a"))) as a,
            Upstream(keep_alive(lambda r: answer(b"b"))) as b,
        ):
            assert (await send(client, post(a.url))).body == b"a"
            assert (await send(client, post(b.url))).body == b"b"
            await asyncio.wait_for(a.closed.wait(), 2)  # a's idle connection made room
            assert (await send(client, post(a.url))).body == b"a"
            assert a.connections == 2 and b.connections == 1
    finally:
        await client.close()


async def test_close_ends_open_streams_and_the_transport_stays_usable() -> None:
    async def handler(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            if req.target.endswith("/open"):
                peer.send(answer(b"", headers=("transfer-encoding: chunked",), length=False) + chunked(b"a"))
            else:
                peer.send(answer(b"ok"))

    client = H1Transport()
    try:
        async with Upstream(handler) as up:
            await send(client, post(up.url))
            s = await stream(client, post(up.url + "/open"))
            await client.close()
            with pytest.raises(ProviderError) as exc:
                async for _ in s.chunks():
                    pass
            assert exc.value.kind == "connection"
            s.close()
            assert (await send(client, post(up.url))).body == b"ok"
    finally:
        await client.close()


async def test_a_host_name_is_resolved_once(client: H1Transport) -> None:
    async with Upstream(keep_alive(lambda r: answer(b"bye", headers=("connection: close",)))) as up:
        by_name = up.url.replace("127.0.0.1", "localhost")
        for _ in range(3):
            assert (await send(client, post(by_name))).body == b"bye"
        assert up.connections == 3
    assert list(client._dns) == [("localhost", up.port)]


# --- https ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key), made offline with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl CLI to make a test certificate (and no trustme/cryptography installed)")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=switchpoint test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    (d / "leaf.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")  # fmt: skip
    return d / "ca.pem", d / "leaf.pem", d / "leaf.key"


def _server_tls(files: tuple[Path, Path, Path], names: list[str | None] | None = None) -> ssl.SSLContext:
    """The server's TLS; ``names`` collects the SNI name of every handshake."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files[1], files[2])
    if names is not None:
        ctx.sni_callback = lambda _sock, name, _ctx: names.append(name)
    return ctx


async def test_https_round_trip_and_reuse(
    tls_files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))  # trusted by ssl.create_default_context()
    client = H1Transport()
    seen: list[Request] = []
    sni: list[str | None] = []
    try:
        async with Upstream(
            keep_alive(lambda r: answer(b"secure " + r.body), seen), tls=_server_tls(tls_files, sni)
        ) as up:
            for _ in range(3):
                assert (await send(client, post(up.url, body=b"hello"))).body == b"secure hello"
            local = up.url.replace("127.0.0.1", "localhost")  # by name: resolved, SNI, name checked
            assert (await send(client, post(local, body=b"name"))).body == b"secure name"
            s = await stream(client, post(up.url, body=b"streamed"))
            assert b"".join([c async for c in s.chunks()]) == b"secure streamed"
            s.close()
            assert up.connections == 2
            assert sni == [None, "localhost"]  # no SNI for an IP address, the name otherwise
            assert seen[0].headers["host"] == f"127.0.0.1:{up.port}"
            assert seen[3].headers["host"] == f"localhost:{up.port}"
    finally:
        await client.close()


async def test_https_with_an_untrusted_certificate(tls_files: tuple[Path, Path, Path]) -> None:
    client = H1Transport()
    try:
        async with Upstream(keep_alive(lambda r: answer(b"x")), tls=_server_tls(tls_files)) as up:
            with pytest.raises(ProviderError) as exc:
                await send(client, post(up.url))
    finally:
        await client.close()
    assert exc.value.kind == "connection"
    assert exc.value.message == "cannot connect to upstream (SSLCertVerificationError)"
