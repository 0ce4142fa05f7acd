"""Server-side connection limits, spoken to over raw sockets: the head and body timeouts
(408 in the route's dialect), the body's minimum rate, the keep-alive idle close, the
maximum number of connections (503), a client that stops reading (``send_timeout_s``), and
the counts ``/metrics`` shows.

The gateway runs on both event loops it may meet (asyncio in most tests, uvloop as
``switchpoint serve`` runs it), with small limits so each case takes a second or two.
Closing times are checked against the configured timeout with a generous upper slack (the
sweep runs every quarter of the shortest timeout, and the machine is shared); they are a
proof that the limit acts, not a latency measurement.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from switchpoint.api import server
from switchpoint.api.app import Gateway, create_app
from switchpoint.api.connections import ConnectionStats, connection_stats, max_connections, sweep_interval
from switchpoint.config import ConnectionLimits, parse
from switchpoint.errors import ConfigError

from gateway_harness import ENV, GATEWAY_KEY, e2e_document
from servers import serve_in_thread

HEAD_S = 1.0
BODY_S = 1.0
KEEP_ALIVE_S = 1.0
SEND_S = 1.0
MAX_HEAD = 8192
MIN_RATE = 1000  # bytes per second
#: Upper slack on a close: the sweep interval, the linger, and a loaded machine.
SLACK_S = 3.0
#: Lower slack: a loop's clock may lag the wall by one iteration.
EARLY_S = 0.1

AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
AUTH_LINE = f"authorization: Bearer {GATEWAY_KEY}\r\n"


def _chat_body(pad: int = 0) -> bytes:
    body = {"model": "up-openai", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 16}
    return b" " * pad + json.dumps(body).encode()  # JSON allows leading whitespace


@dataclass
class Running:
    url: str
    gw: Gateway
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=10)

    @property
    def stats(self) -> ConnectionStats:
        return connection_stats(self.gw)


@contextlib.contextmanager
def _serve(sim: str, loop: str, **limits: Any) -> Iterator[Running]:
    doc = e2e_document(sim)
    doc["server"].update(limits)
    # A deployment allowed a long answer, to fill the socket buffers of a client that stops reading.
    doc["deployments"]["d-long"] = {"provider": "p-openai", "model": "sim-gpt", "max_output_tokens": 100_000}
    doc["models"]["long"] = "d-long"
    app = create_app(parse(doc, env=ENV))
    with serve_in_thread(app, loop=loop) as url:
        yield Running(url, app.state.gateway)


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def limited(request: Any, simulator_url: str) -> Iterator[Running]:
    with _serve(
        simulator_url,
        request.param,
        head_timeout_s=HEAD_S,
        body_timeout_s=BODY_S,
        body_min_bytes_per_s=MIN_RATE,
        keep_alive_s=KEEP_ALIVE_S,
        send_timeout_s=SEND_S,
        max_head_bytes=MAX_HEAD,
    ) as running:
        yield running


def _read_until_closed(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and the time it closed."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            break
        if not piece:
            break
        data += piece
    return data, time.monotonic()


def _read_health(sock: socket.socket) -> bytes:
    """One whole ``GET /health`` answer (its body is ``{"status":"ok"}``)."""
    sock.settimeout(10)
    data = b""
    while not data.endswith(b'"ok"}'):
        piece = sock.recv(65536)
        assert piece, "the connection stayed open"
        data += piece
    return data


def _response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body[: int(headers.get("content-length", len(body)))]


def _assert_408(data: bytes, shape: str, what: str) -> None:
    status, headers, body = _response(data)
    assert status == 408
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"
    doc = json.loads(body)
    if shape == "anthropic":
        assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error"
    else:
        assert doc["error"]["code"] == "request_timeout"
        assert doc["error"]["type"] == "invalid_request_error"
    assert what in doc["error"]["message"]


def _wait(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --- the head ---------------------------------------------------------------------------------


@dataclass
class Loris:
    sock: socket.socket
    shape: str
    started: float
    data: bytes = b""
    closed_at: float | None = None


def test_slow_loris_connections_are_closed_at_the_head_timeout_while_others_are_served(
    limited: Running,
) -> None:
    n, trickle_s = 120, 0.3  # each sends a byte every 0.3 s: more than three within its timeout
    open_start = limited.stats.open
    with httpx.Client(base_url=limited.url, timeout=10) as client:  # the usual latency, first
        usual = []
        for _ in range(20):
            t = time.monotonic()
            assert client.post("/v1/chat/completions", content=_chat_body(), headers=AUTH).status_code == 200
            usual.append(time.monotonic() - t)
    # that client's connection gone from the server's count before the slow ones are counted
    assert _wait(lambda: limited.stats.open <= open_start), "the measuring connection was let go"
    before = dict(limited.stats.closed)
    open_before = limited.stats.open
    sel = selectors.DefaultSelector()
    lorises: list[Loris] = []
    for i in range(n):
        sock = limited.connect()
        path, shape = ("/v1/messages", "anthropic") if i % 2 else ("/v1/chat/completions", "openai")
        started = time.monotonic()
        sock.sendall(f"POST {path} HTTP/1.1\r\nhost: gw\r\n{AUTH_LINE}x-slow: ".encode())
        sock.setblocking(False)
        loris = Loris(sock, shape, started)
        sel.register(sock, selectors.EVENT_READ, loris)
        lorises.append(loris)
    assert _wait(lambda: limited.stats.open >= open_before + n), "every slow connection was accepted"

    statuses: list[int] = []
    latencies: list[float] = []
    stop = threading.Event()

    def normal_traffic() -> None:
        with httpx.Client(base_url=limited.url, timeout=10) as client:
            while not stop.is_set():
                t = time.monotonic()
                r = client.post("/v1/chat/completions", content=_chat_body(), headers=AUTH)
                latencies.append(time.monotonic() - t)
                statuses.append(r.status_code)

    worker = threading.Thread(target=normal_traffic)
    worker.start()
    served_while_open = 0
    try:
        last_trickle = time.monotonic()
        give_up = time.monotonic() + HEAD_S + SLACK_S + 5
        left = n
        while left and time.monotonic() < give_up:
            for key, _ in sel.select(timeout=trickle_s):
                loris = key.data
                try:
                    piece = loris.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    piece = b""
                loris.data += piece
                if not piece:
                    loris.closed_at = time.monotonic()
                    sel.unregister(loris.sock)
                    loris.sock.close()
                    left -= 1
            if left == n:
                served_while_open = len(statuses)
            if time.monotonic() - last_trickle >= trickle_s:
                last_trickle = time.monotonic()
                for loris in lorises:
                    if loris.closed_at is None:
                        with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                            loris.sock.send(b"a")
    finally:
        stop.set()
        worker.join(15)
        for loris in lorises:
            if loris.closed_at is None:
                loris.sock.close()
        sel.close()

    still_open = [lo for lo in lorises if lo.closed_at is None]
    assert not still_open, f"{len(still_open)} of {n} slow connections were never closed"
    for loris in lorises:
        assert loris.closed_at is not None
        held = loris.closed_at - loris.started
        assert HEAD_S - EARLY_S <= held <= HEAD_S + SLACK_S, f"closed after {held:.2f} s"
        _assert_408(loris.data, loris.shape, "head did not arrive within 1 s")
    assert statuses and set(statuses) == {200}, "every normal request succeeded"
    assert served_while_open > 0, "normal requests were served while the slow connections were open"
    # ... at about their usual latency (the median; generous for a loaded machine, far below what
    # a server blocked by the slow heads would show: a head timeout, 1 s)
    during = statistics.median(latencies[:served_while_open])
    print(
        f"slow-loris: usual p50 {statistics.median(usual) * 1000:.1f} ms, while open {during * 1000:.1f} ms"
    )
    assert during <= 5 * statistics.median(usual) + 0.05, (during, statistics.median(usual))
    closed = limited.stats.closed
    assert closed["head_timeout"] - before["head_timeout"] == n
    assert closed["body_timeout"] == before["body_timeout"]
    assert _wait(lambda: limited.stats.open <= open_before + 1), "the server let go of every descriptor"


def test_a_partial_head_after_a_served_request_gets_408(limited: Running) -> None:
    sock = limited.connect()
    try:
        body = _chat_body()
        started = time.monotonic()
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n{AUTH_LINE}"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
            + b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
        )
        data, closed_at = _read_until_closed(sock)
    finally:
        sock.close()
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ")
    length = int(
        next(h for h in first.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
    )
    second = rest[length:]
    _assert_408(second, "openai", "head did not arrive")
    assert closed_at - started >= HEAD_S - EARLY_S


def test_a_head_over_max_head_bytes_gets_431_and_a_smaller_one_is_served(limited: Running) -> None:
    before = limited.stats.closed["head_too_large"]
    sock = limited.connect()
    try:
        sock.sendall(
            f"GET /health HTTP/1.1\r\nhost: gw\r\nx-fill: {'a' * (MAX_HEAD - 1024)}\r\n\r\n".encode()
        )
        assert _read_health(sock).startswith(b"HTTP/1.1 200 ")
        # A header that keeps growing, a kilobyte at a time, on the same connection.
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: gw\r\nanthropic-version: 2023-06-01\r\nx-big: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(4 * MAX_HEAD // 1024):
                sock.sendall(b"b" * 1024)
                time.sleep(0.005)
        data, _ = _read_until_closed(sock)
    finally:
        sock.close()
    status, headers, body = _response(data)
    assert status == 431 and headers["connection"] == "close"
    doc = json.loads(body)
    assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error"
    assert f"over the limit of {MAX_HEAD} bytes" in doc["error"]["message"]
    assert limited.stats.closed["head_too_large"] == before + 1


# --- the body ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "extra", "shape"),
    [
        ("/v1/chat/completions", "", "openai"),
        ("/v1/messages", "anthropic-version: 2023-06-01\r\n", "anthropic"),
        ("/v1/embeddings", "", "openai"),
    ],
)
def test_a_body_that_stops_arriving_gets_408_in_the_routes_dialect(
    limited: Running, path: str, extra: str, shape: str
) -> None:
    before = limited.stats.closed["body_timeout"]
    sock = limited.connect()
    try:
        started = time.monotonic()
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nhost: gw\r\n{AUTH_LINE}{extra}content-length: 500\r\n\r\n".encode()
            + b'{"model": '
        )
        data, closed_at = _read_until_closed(sock)
    finally:
        sock.close()
    _assert_408(data, shape, "body did not arrive in time")
    held = closed_at - started
    assert BODY_S - EARLY_S <= held <= BODY_S + SLACK_S + 1  # + the linger
    assert limited.stats.closed["body_timeout"] == before + 1


def _trickle_body(limited: Running, body: bytes, piece: int, every_s: float) -> tuple[bytes, float]:
    sock = limited.connect()
    try:
        started = time.monotonic()
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n{AUTH_LINE}content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n".encode()
        )
        for i in range(0, len(body), piece):
            try:
                sock.sendall(body[i : i + piece])
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(every_s)
        data, _ = _read_until_closed(sock)
        return data, time.monotonic() - started
    finally:
        sock.close()


def test_a_large_body_above_the_minimum_rate_may_take_longer_than_the_base_timeout(limited: Running) -> None:
    # 150 bytes every 0.1 s: about 1,500 bytes per second against a minimum of 1,000, for 3 s.
    body = _chat_body(pad=4500 - len(_chat_body()))
    data, took = _trickle_body(limited, body, 150, 0.1)
    status, _, out = _response(data)
    assert status == 200 and json.loads(out)["object"] == "chat.completion"
    assert took > BODY_S + 1, "the upload outlasted the base body timeout"


def test_a_body_below_the_minimum_rate_gets_408(limited: Running) -> None:
    before = limited.stats.closed["body_timeout"]
    # 10 bytes every 0.2 s: 50 bytes per second, far under the minimum of 1,000.
    data, took = _trickle_body(limited, _chat_body(pad=2000), 10, 0.2)
    _assert_408(data, "openai", "one second per 1000 bytes received")
    assert took < 20
    assert limited.stats.closed["body_timeout"] == before + 1


# --- keep-alive -------------------------------------------------------------------------------


def test_an_idle_keep_alive_connection_is_closed_after_keep_alive_s(limited: Running) -> None:
    before = limited.stats.closed["idle"]
    sock = limited.connect()
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
        first = _read_health(sock)
        answered = time.monotonic()
        assert first.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in first
        rest, closed_at = _read_until_closed(sock)
    finally:
        sock.close()
    assert rest == b"", "nothing is sent to an idle connection before it is closed"
    assert KEEP_ALIVE_S - EARLY_S <= closed_at - answered <= KEEP_ALIVE_S + SLACK_S
    assert limited.stats.closed["idle"] == before + 1


def test_a_connection_that_never_sends_a_byte_is_closed_as_idle(limited: Running) -> None:
    before = dict(limited.stats.closed)
    sock = limited.connect()
    try:
        opened = time.monotonic()
        data, closed_at = _read_until_closed(sock)
    finally:
        sock.close()
    assert data == b""
    assert KEEP_ALIVE_S - EARLY_S <= closed_at - opened <= KEEP_ALIVE_S + SLACK_S
    assert limited.stats.closed["idle"] == before["idle"] + 1
    assert limited.stats.closed["head_timeout"] == before["head_timeout"]


def test_a_connection_in_use_is_not_closed_by_the_idle_limit(limited: Running) -> None:
    """Requests one after another, each within the idle time, keep one connection open
    for longer than the idle time."""
    sock = limited.connect()
    try:
        sock.settimeout(10)
        started = time.monotonic()
        for _ in range(4):
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
            assert _read_health(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(KEEP_ALIVE_S / 2)
        assert time.monotonic() - started > KEEP_ALIVE_S * 1.5
    finally:
        sock.close()


# --- a client that does not read ------------------------------------------------------------


def test_a_client_that_stops_reading_a_stream_is_cut_after_send_timeout_s(limited: Running) -> None:
    gw = limited.gw
    before = limited.stats.closed["send_timeout"]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills soon
    sock.settimeout(10)
    sock.connect((limited.host, limited.port))
    try:
        text = "[[sim output_tokens=100000]] Tell a very long story."
        body = {"model": "long", "messages": [{"role": "user", "content": text}], "stream": True}
        data = json.dumps({**body, "max_tokens": 100_000}).encode()
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n{AUTH_LINE}"
            f"content-length: {len(data)}\r\n\r\n".encode()
            + data
        )
        assert sock.recv(64).startswith(b"HTTP/1.1 200 ")
        # ... and nothing more is read: the gateway's writes back up, then it gives up.
        assert _wait(lambda: limited.stats.closed["send_timeout"] == before + 1, timeout=60)
        assert _wait(lambda: gw.inflight == 0 and gw.health.get("d-long").inflight == 0), (
            "the stream and its upstream call ended"
        )
        with contextlib.suppress(ConnectionResetError):
            while sock.recv(1 << 20):
                pass  # what was buffered, then the reset
    finally:
        sock.close()


def test_a_client_that_leaves_a_large_answer_unread_is_cut_after_send_timeout_s(limited: Running) -> None:
    """A non-streamed answer bigger than the socket buffers stays in the gateway's buffer;
    past the idle time it is not taken for idle, and with no progress for ``send_timeout_s``
    the connection is cut."""
    before = dict(limited.stats.closed)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((limited.host, limited.port))
    try:
        # 250 vectors of 8,192 floats: about 8 MB of JSON, more than the socket buffers hold.
        body = {"model": "emb-openai", "input": [f"text {i}" for i in range(250)], "dimensions": 8192}
        data = json.dumps(body).encode()
        sock.sendall(
            f"POST /v1/embeddings HTTP/1.1\r\nhost: gw\r\n{AUTH_LINE}content-length: {len(data)}\r\n\r\n".encode()
            + data
        )
        assert sock.recv(64).startswith(b"HTTP/1.1 200 ")
        assert _wait(lambda: limited.stats.closed["send_timeout"] == before["send_timeout"] + 1, timeout=60)
        assert limited.stats.closed["idle"] == before["idle"], "a connection still sending is not idle"
    finally:
        sock.close()


# --- /metrics ---------------------------------------------------------------------------------


def _metric_lines(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("switchpoint_connections_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_metrics_show_open_connections_and_closes_by_reason(limited: Running) -> None:
    before = _metric_lines(limited.url)
    assert set(before) == {
        "switchpoint_connections_open",
        'switchpoint_connections_closed_total{reason="head_timeout"}',
        'switchpoint_connections_closed_total{reason="body_timeout"}',
        'switchpoint_connections_closed_total{reason="idle"}',
        'switchpoint_connections_closed_total{reason="limit"}',
        'switchpoint_connections_closed_total{reason="send_timeout"}',
        'switchpoint_connections_closed_total{reason="head_too_large"}',
    }
    assert before["switchpoint_connections_open"] >= 1  # the one asking
    sock = limited.connect()
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\n")  # a head that never ends
        data, _ = _read_until_closed(sock)
    finally:
        sock.close()
    _assert_408(data, "openai", "head did not arrive")
    after = _metric_lines(limited.url)
    key = 'switchpoint_connections_closed_total{reason="head_timeout"}'
    assert after[key] == before[key] + 1
    # The process-wide view (what a single-worker ``serve`` shows) sums every server's counts.
    assert server.connection_stats().closed["head_timeout"] >= after[key]


# --- the number of connections ----------------------------------------------------------------


def test_connections_past_max_connections_get_503_and_are_closed(simulator_url: str) -> None:
    with _serve(simulator_url, "asyncio", max_connections=3, keep_alive_s=30) as running:
        held = [running.connect() for _ in range(3)]
        try:
            assert _wait(lambda: running.stats.open == 3)
            extra = running.connect()
            try:
                extra.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
                data, _ = _read_until_closed(extra)
            finally:
                extra.close()
            status, headers, body = _response(data)
            assert status == 503 and headers["connection"] == "close" and headers["retry-after"] == "1"
            error = json.loads(body)["error"]
            assert error["code"] == "too_many_connections" and "too many open connections" in error["message"]
            assert running.stats.closed["limit"] == 1
            # The held connections are served as usual, and a freed place is taken again.
            held[0].sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
            held[0].settimeout(10)
            assert held[0].recv(65536).startswith(b"HTTP/1.1 200 ")
            held.pop().close()
            assert _wait(lambda: running.stats.open == 2)
            with httpx.Client(base_url=running.url, timeout=10) as client:
                r = client.post("/v1/chat/completions", content=_chat_body(), headers=AUTH)
            assert r.status_code == 200
            assert running.stats.closed["limit"] == 1
        finally:
            for sock in held:
                sock.close()


# --- configuration ----------------------------------------------------------------------------


def test_limits_have_defaults_and_take_the_server_keys() -> None:
    assert parse({}, env={}).connections == ConnectionLimits(
        head_timeout_s=10.0,
        body_timeout_s=30.0,
        body_min_bytes_per_s=65536,
        keep_alive_s=5.0,
        send_timeout_s=60.0,
        max_head_bytes=65536,
    )
    cfg = parse(
        {
            "server": {
                "head_timeout_s": 2,
                "body_timeout_s": 4.5,
                "body_min_bytes_per_s": 100,
                "keep_alive_s": 75,
                "send_timeout_s": 20,
                "max_head_bytes": 4096,
                "max_connections": 50,
            }
        },
        env={},
    )
    assert cfg.connections == ConnectionLimits(
        head_timeout_s=2,
        body_timeout_s=4.5,
        body_min_bytes_per_s=100,
        keep_alive_s=75,
        send_timeout_s=20,
        max_head_bytes=4096,
        max_connections=50,
    )
    assert max_connections(cfg.connections) == 50
    assert sweep_interval(cfg.connections) == 0.5  # a quarter of the shortest timeout


def test_default_max_connections_follows_the_open_file_limit() -> None:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    expected = 10_000 if soft == resource.RLIM_INFINITY else max(16, min(10_000, soft // 2))
    assert max_connections(ConnectionLimits()) == expected
    assert sweep_interval(ConnectionLimits()) == 1.0


def test_bad_limits_are_reported_with_their_paths() -> None:
    with pytest.raises(ConfigError) as info:
        parse(
            {
                "server": {
                    "head_timeout_s": 0,
                    "body_timeout_s": -1,
                    "body_min_bytes_per_s": 0,
                    "keep_alive_s": -2,
                    "send_timeout_s": 0,
                    "max_head_bytes": 0,
                    "max_connections": 0,
                }
            },
            env={},
        )
    problems = "\n".join(info.value.problems)
    for key in (
        "head_timeout_s",
        "body_timeout_s",
        "body_min_bytes_per_s",
        "keep_alive_s",
        "send_timeout_s",
        "max_head_bytes",
        "max_connections",
    ):
        assert f"$.server.{key}: must be positive" in problems
    with pytest.raises(ConfigError, match=r"\$\.server: .*unknown field `header_timeout_s`"):
        parse({"server": {"header_timeout_s": 3}}, env={})
