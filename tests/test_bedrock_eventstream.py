"""AWS's event-stream framing: the decoder against messages built here, byte by byte.

The encoder below is the test's own, written from the format's description (prelude: total
length, headers length, CRC32 of those 8 bytes; headers; payload; CRC32 of everything before),
so the decoder is checked against neither the gateway's code nor the simulator's.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import pytest

from switchpoint.errors import ProviderError
from switchpoint.providers.eventstream import EventStreamDecoder, parse_headers


def header(name: str, kind: int, value: Any) -> bytes:
    n = name.encode()
    out = bytes([len(n)]) + n + bytes([kind])
    if kind in (0, 1):
        return out
    if kind == 2:
        return out + struct.pack(">b", value)
    if kind == 3:
        return out + struct.pack(">h", value)
    if kind == 4:
        return out + struct.pack(">i", value)
    if kind in (5, 8):
        return out + struct.pack(">q", value)
    if kind in (6, 7):
        raw = value if isinstance(value, bytes) else value.encode()
        return out + struct.pack(">H", len(raw)) + raw
    if kind == 9:
        return out + value
    raise AssertionError(kind)


def frame(headers: bytes, payload: bytes, *, bad_prelude: bool = False, bad_message: bool = False) -> bytes:
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    crc = zlib.crc32(prelude) ^ (1 if bad_prelude else 0)
    body = prelude + struct.pack(">I", crc) + headers + payload
    return body + struct.pack(">I", zlib.crc32(body) ^ (1 if bad_message else 0))


def event(name: str, payload: dict[str, Any]) -> bytes:
    h = (
        header(":event-type", 7, name)
        + header(":content-type", 7, "application/json")
        + header(":message-type", 7, "event")
    )
    return frame(h, json.dumps(payload).encode())


STREAM = [
    event("messageStart", {"role": "assistant"}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo ✓"}}),
    event("contentBlockStop", {"contentBlockIndex": 0}),
    event("messageStop", {"stopReason": "end_turn"}),
    event(
        "metadata",
        {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}},
    ),
]


def decode_all(data: bytes, step: int) -> list[Any]:
    dec = EventStreamDecoder()
    out = []
    for i in range(0, len(data), step):
        out += dec.feed(data[i : i + step])
    out += dec.flush()
    return out


@pytest.mark.parametrize("step", [1, 2, 3, 7, 16, 64, 10_000])
def test_messages_split_anywhere_decode_the_same(step: int) -> None:
    data = b"".join(STREAM)
    frames = decode_all(data, step)
    assert [f.event for f in frames] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert json.loads(frames[2].data) == {"contentBlockIndex": 0, "delta": {"text": "lo ✓"}}
    assert b"".join(f.raw for f in frames) == data  # each frame keeps its whole message


def test_every_header_type() -> None:
    h = (
        header("t", 0, True)
        + header("f", 1, False)
        + header("b", 2, -5)
        + header("s", 3, -300)
        + header("i", 4, 70_000)
        + header("l", 5, -(2**40))
        + header("bytes", 6, b"\x00\xff")
        + header("str", 7, "wörd")
        + header("ts", 8, 1_700_000_000_000)
        + header("uuid", 9, bytes(range(16)))
    )
    assert parse_headers(h) == {
        "t": True,
        "f": False,
        "b": -5,
        "s": -300,
        "i": 70_000,
        "l": -(2**40),
        "bytes": b"\x00\xff",
        "str": "wörd",
        "ts": 1_700_000_000_000,
        "uuid": bytes(range(16)),
    }
    [f] = EventStreamDecoder().feed(frame(h + header(":event-type", 7, "x"), b"{}"))
    assert f.event == "x" and f.data == b"{}"


def test_exceptions_and_errors_become_named_frames() -> None:
    exc = frame(
        header(":exception-type", 7, "throttlingException")
        + header(":content-type", 7, "application/json")
        + header(":message-type", 7, "exception"),
        b'{"message":"Too many requests"}',
    )
    err = frame(
        header(":error-code", 7, "InternalFailure")
        + header(":error-message", 7, "boom")
        + header(":message-type", 7, "error"),
        b"",
    )
    frames = EventStreamDecoder().feed(exc + err)
    assert [(f.event, f.data) for f in frames] == [
        (":exception:throttlingException", b'{"message":"Too many requests"}'),
        (":error:InternalFailure", b"boom"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (frame(b"", b"{}", bad_prelude=True), "prelude checksum mismatch"),
        (frame(b"", b"{}", bad_message=True), "message checksum mismatch"),
        (
            struct.pack(">II", 8, 0) + struct.pack(">I", zlib.crc32(struct.pack(">II", 8, 0))) + b"\0" * 4,
            "impossible lengths (message 8, headers 0)",
        ),
        (
            struct.pack(">II", 40, 100)
            + struct.pack(">I", zlib.crc32(struct.pack(">II", 40, 100)))
            + b"\0" * 28,
            "impossible lengths (message 40, headers 100)",
        ),
        (frame(b"\x05ab", b""), "a header runs past its block"),
        (frame(b"\x01a\x0e", b""), "unknown header value type 14"),
    ],
)
def test_corrupt_messages_are_invalid_responses(data: bytes, message: str) -> None:
    with pytest.raises(ProviderError) as exc:
        EventStreamDecoder().feed(data)
    assert exc.value.kind == "invalid_response" and exc.value.retryable
    assert exc.value.message == f"upstream event stream is corrupt: {message}"


def test_a_corrupt_message_after_good_ones_still_fails() -> None:
    dec = EventStreamDecoder()
    assert len(dec.feed(STREAM[0])) == 1
    with pytest.raises(ProviderError, match="message checksum mismatch"):
        dec.feed(STREAM[1][:-1] + bytes([STREAM[1][-1] ^ 0xFF]))


def test_a_stream_cut_inside_a_message() -> None:
    dec = EventStreamDecoder()
    assert len(dec.feed(STREAM[0] + STREAM[1][:20])) == 1
    with pytest.raises(ProviderError) as exc:
        dec.flush()
    assert (
        exc.value.message
        == "upstream event stream is corrupt: the stream ended inside a message (20 bytes left)"
    )
    assert EventStreamDecoder().flush() == []
