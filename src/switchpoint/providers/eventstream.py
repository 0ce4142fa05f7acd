"""AWS's binary event-stream framing (``application/vnd.amazon.eventstream``), decoded.

Bedrock's ``ConverseStream`` and ``InvokeModelWithResponseStream`` answer in it. A message is::

    total length (4, big-endian) | headers length (4) | prelude CRC32 (4, of the 8 bytes before)
    headers (name length 1, name, value type 1, value) … | payload | message CRC32 (4, of all before)

Both checksums are checked; a message that fails either, or whose lengths do not add up, is an
``invalid_response`` (the stream cannot be trusted past it). Each message becomes an
:class:`~switchpoint.streaming.SSEFrame` so the executor's stream path stays one: ``event`` is
the ``:event-type`` header of an event, ``:exception:<:exception-type>`` for a modelled
exception (``throttlingException`` …) and ``:error:<:error-code>`` for an error message;
``data`` is the payload (JSON for Bedrock; an error message's ``:error-message``); ``raw`` is the
whole message.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

from switchpoint.errors import ProviderError
from switchpoint.streaming import SSEFrame

#: The largest message the decoder accepts (AWS's limit is 16 MiB of payload, 128 KiB of headers).
MAX_MESSAGE: Final = 16 * 1024 * 1024 + 128 * 1024 + 16
_PRELUDE: Final = 12
_MIN: Final = 16
_U32 = struct.Struct(">I")
_PRELUDE_FMT = struct.Struct(">III")

HeaderValue = bool | int | bytes | str


def _invalid(message: str) -> ProviderError:
    return ProviderError("invalid_response", f"upstream event stream is corrupt: {message}")


def parse_headers(data: bytes) -> dict[str, HeaderValue]:
    """The headers block of one message. Raises ``ProviderError('invalid_response')``."""
    out: dict[str, HeaderValue] = {}
    i, end = 0, len(data)
    try:
        while i < end:
            n = data[i]
            name = data[i + 1 : i + 1 + n].decode("utf-8")
            i += 1 + n
            kind = data[i]
            i += 1
            value: HeaderValue
            if kind in (0, 1):
                value = kind == 0
            elif kind == 2:
                value = int.from_bytes(data[i : i + 1], "big", signed=True)
                i += 1
            elif kind == 3:
                value = int.from_bytes(data[i : i + 2], "big", signed=True)
                i += 2
            elif kind == 4:
                value = int.from_bytes(data[i : i + 4], "big", signed=True)
                i += 4
            elif kind in (5, 8):  # long, timestamp (ms since the epoch)
                value = int.from_bytes(data[i : i + 8], "big", signed=True)
                i += 8
            elif kind in (6, 7):  # bytes, string: a 2-byte length
                size = int.from_bytes(data[i : i + 2], "big")
                raw = data[i + 2 : i + 2 + size]
                if len(raw) != size:
                    raise _invalid("a header value runs past its block")
                value = raw.decode("utf-8") if kind == 7 else bytes(raw)
                i += 2 + size
            elif kind == 9:  # uuid
                value = bytes(data[i : i + 16])
                i += 16
            else:
                raise _invalid(f"unknown header value type {kind}")
            if i > end:
                raise _invalid("a header runs past its block")
            out[name] = value
    except IndexError:
        raise _invalid("a header runs past its block") from None
    except UnicodeDecodeError:
        raise _invalid("a header is not UTF-8") from None
    return out


class EventStreamDecoder:
    """Feed raw bytes, get one frame per complete message (a partial one waits for more)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        buf = self._buf
        buf += chunk
        frames: list[SSEFrame] = []
        start = 0
        size = len(buf)
        while size - start >= _PRELUDE:
            total, head_len, prelude_crc = _PRELUDE_FMT.unpack_from(buf, start)
            if zlib.crc32(buf[start : start + 8]) != prelude_crc:
                raise _invalid("prelude checksum mismatch")
            if total < _MIN or total > MAX_MESSAGE or head_len > total - _MIN:
                raise _invalid(f"impossible lengths (message {total}, headers {head_len})")
            if size - start < total:
                break
            end = start + total
            (message_crc,) = _U32.unpack_from(buf, end - 4)
            if zlib.crc32(buf[start : end - 4]) != message_crc:
                raise _invalid("message checksum mismatch")
            raw = bytes(buf[start:end])
            headers = parse_headers(raw[_PRELUDE : _PRELUDE + head_len])
            frames.append(_frame(headers, raw[_PRELUDE + head_len : -4], raw))
            start = end
        if start:
            del buf[:start]
        return frames

    def flush(self) -> list[SSEFrame]:
        """At the end of the body: leftover bytes are a message cut short."""
        if self._buf:
            left = len(self._buf)
            self._buf.clear()
            raise _invalid(f"the stream ended inside a message ({left} bytes left)")
        return []


def _frame(headers: dict[str, HeaderValue], payload: bytes, raw: bytes) -> SSEFrame:
    kind = headers.get(":message-type", "event")
    if kind == "event":
        event = headers.get(":event-type")
        return SSEFrame(event if isinstance(event, str) else "", payload, raw)
    if kind == "exception":
        name = headers.get(":exception-type")
        return SSEFrame(f":exception:{name if isinstance(name, str) else ''}", payload, raw)
    code = headers.get(":error-code")
    text = headers.get(":error-message")
    message = text.encode() if isinstance(text, str) else payload
    return SSEFrame(f":error:{code if isinstance(code, str) else ''}", message, raw)
