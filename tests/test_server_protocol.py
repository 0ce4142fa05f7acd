"""The gateway's own HTTP/1.1 protocol, spoken to over raw sockets.

The SDK suites go through it for every request; these cases are the HTTP edges they never
reach: keep-alive, pipelining, ``Expect: 100-continue``, chunked uploads, the body limit
answered before the body is read, malformed requests, HTTP/1.0, ``Connection: close``, the
ASGI routes, and a client that leaves in the middle of a stream.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from gateway_harness import GATEWAY_KEY

AUTH = f"authorization: Bearer {GATEWAY_KEY}\r\n"


def _chat(model: str = "up-openai", *, stream: bool = False, text: str = "Say hi.") -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 16}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def _post(path: str, body: bytes, extra: str = "", *, version: str = "1.1") -> bytes:
    head = (
        f"POST {path} HTTP/{version}\r\nhost: gw\r\n{AUTH}content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


class Conn:
    """A raw HTTP/1.1 client connection that reads whole responses (sized or chunked)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("closed")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self) -> tuple[int, dict[str, str]]:
        status = int(self._line().split(b" ")[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding") == "chunked":
            out = b""
            while size := int(self._line(), 16):
                out += self._exact(size)
                self._exact(2)
            self._exact(2)
            return out
        return self._exact(int(headers.get("content-length", "0")))

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers = self.head()
        return status, headers, self.body(headers)

    def closed_by_peer(self) -> bool:
        self.sock.settimeout(5)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def conn(gateway: Any) -> Any:
    c = Conn(gateway.url)
    yield c
    c.close()


def test_keep_alive_serves_chat_and_asgi_routes_on_one_connection(conn: Conn) -> None:
    conn.send(_post("/v1/chat/completions", _chat()))
    status, headers, body = conn.response()
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)["object"] == "chat.completion"
    assert headers["x-switchpoint-deployment"] == "d-openai"
    assert "date" in headers and "server" not in headers
    conn.send(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
    status, _, body = conn.response()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    conn.send(_post("/v1/messages", _chat("up-anthropic"), "anthropic-version: 2023-06-01\r\n"))
    status, _, body = conn.response()
    assert status == 200 and json.loads(body)["type"] == "message"


def test_pipelined_requests_are_answered_in_order(conn: Conn) -> None:
    ids = ["pipe-1", "pipe-2", "pipe-3"]
    conn.send(
        _post("/v1/chat/completions", _chat(), f"x-request-id: {ids[0]}\r\n")
        + f"GET /health HTTP/1.1\r\nhost: gw\r\nx-request-id: {ids[1]}\r\n\r\n".encode()
        + _post("/v1/chat/completions", _chat(stream=True), f"x-request-id: {ids[2]}\r\n")
    )
    seen = []
    for _ in ids:
        status, headers, _ = conn.response()
        assert status == 200
        seen.append(headers["x-request-id"])
    assert seen == ids


def test_expect_100_continue_then_body(conn: Conn) -> None:
    body = _chat()
    conn.send(
        (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n{AUTH}content-type: application/json\r\n"
            f"content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n"
        ).encode()
    )
    status, _ = conn.head()
    assert status == 100
    conn.send(body)
    status, _, out = conn.response()
    assert status == 200 and json.loads(out)["object"] == "chat.completion"


def test_chunked_request_body(conn: Conn) -> None:
    body = _chat()
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in (body[:half], body[half:])) + b"0\r\n\r\n"
    conn.send(
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n{AUTH}transfer-encoding: chunked\r\n\r\n".encode()
        + chunks
    )
    status, _, out = conn.response()
    assert status == 200 and json.loads(out)["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/v1/chat/completions", "openai"),
        ("/v1/messages", "anthropic"),
        ("/v1/embeddings", "openai"),
        ("/v1/messages/count_tokens", "anthropic"),
        ("/v1/responses/input_tokens", "openai"),
    ],
)
def test_declared_body_over_the_limit_is_refused_before_reading_it(conn: Conn, path: str, shape: str) -> None:
    size = 3 * 1024 * 1024  # the e2e config allows 2 MiB
    conn.send(
        f"POST {path} HTTP/1.1\r\nhost: gw\r\n{AUTH}content-length: {size}\r\n\r\n".encode() + b"{" * 1000
    )
    status, headers, body = conn.response()
    assert status == 413
    assert headers["connection"] == "close"
    doc = json.loads(body)
    if shape == "openai":
        assert "exceeds the limit" in doc["error"]["message"]
    else:
        assert doc["type"] == "error" and "exceeds the limit" in doc["error"]["message"]
    assert conn.closed_by_peer()


def test_chunked_body_growing_over_the_limit_is_refused(conn: Conn) -> None:
    conn.send(
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n{AUTH}transfer-encoding: chunked\r\n\r\n".encode()
    )
    piece = b"x" * 65536
    try:
        for _ in range(40):  # 2.5 MiB
            conn.send(b"%x\r\n%b\r\n" % (len(piece), piece))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the gateway answered and closed while the upload went on
    status, _, body = conn.response()
    assert status == 413 and "exceeds the limit" in json.loads(body)["error"]["message"]


def test_malformed_request_gets_400_and_close(conn: Conn) -> None:
    conn.send(b"THIS IS NOT HTTP\r\n\r\n")
    status, headers, _ = conn.response()
    assert status == 400 and headers["connection"] == "close"
    assert conn.closed_by_peer()


def test_http_10_and_connection_close_end_the_connection(gateway: Any) -> None:
    for version, extra in (("1.0", ""), ("1.1", "connection: close\r\n")):
        c = Conn(gateway.url)
        try:
            c.send(_post("/v1/chat/completions", _chat(), extra, version=version))
            status, headers, body = c.response()
            assert status == 200 and json.loads(body)["object"] == "chat.completion"
            assert headers["connection"] == "close"
            assert c.closed_by_peer()
        finally:
            c.close()


def test_streams_are_chunked_and_complete(conn: Conn) -> None:
    conn.send(_post("/v1/chat/completions", _chat(stream=True)))
    status, headers, body = conn.response()
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    assert body.rstrip().endswith(b"data: [DONE]")


def test_asgi_routes_keep_their_errors(conn: Conn) -> None:
    conn.send(b"GET /nowhere HTTP/1.1\r\nhost: gw\r\n\r\n")
    status, _, body = conn.response()
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    conn.send(b"DELETE /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n\r\n")  # GET lists stored ones
    status, headers, _ = conn.response()
    assert status == 405 and "POST" in headers["allow"]
    conn.send(f"GET /v1/models HTTP/1.1\r\nhost: gw\r\n{AUTH}\r\n".encode())
    status, _, body = conn.response()
    assert status == 200 and any(m["id"] == "up-openai" for m in json.loads(body)["data"])


def test_client_leaving_mid_stream_stops_the_upstream_call(gateway: Any) -> None:
    gw = gateway.gw
    before = gw.accounting.requests
    c = Conn(gateway.url)
    # A ten-second stream: 200 tokens at 20 per second.
    slow = _chat(stream=True, text="[[sim tokens_per_s=20 output_tokens=200]] Tell a long story.")
    body = json.loads(slow)
    body["max_tokens"] = 400
    c.send(_post("/v1/chat/completions", json.dumps(body).encode()))
    status, _ = c.head()
    assert status == 200
    c._line()  # the first chunk of the stream arrived
    c.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and (
        gw.inflight or gw.health.get("d-openai").inflight or gw.accounting.requests == before
    ):
        time.sleep(0.02)
    assert gw.inflight == 0
    assert gw.health.get("d-openai").inflight == 0
