"""Server-sent events: incremental framing of upstream bytes, and encoding for clients.

The decoder splits a byte stream into frames without decoding JSON; each frame keeps its
original bytes so a same-family stream can be forwarded unchanged.
"""

from __future__ import annotations


class SSEFrame:
    """One SSE event: its ``event`` name (or ``None``), its ``data`` and its original bytes."""

    __slots__ = ("data", "event", "raw")

    def __init__(self, event: str | None, data: bytes, raw: bytes) -> None:
        self.event = event
        self.data = data
        self.raw = raw

    def __repr__(self) -> str:
        return f"SSEFrame(event={self.event!r}, data={self.data[:60]!r})"


class SSEDecoder:
    """Feed raw bytes, get complete frames. Comment-only frames (keep-alives) are dropped."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        frames: list[SSEFrame] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            block = buf[start:end]
            start = end + 2
            frame = _parse_block(block)
            if frame is not None:
                frames.append(frame)
        self._buf = buf[start:]
        return frames

    def flush(self) -> list[SSEFrame]:
        """At end of stream: a final frame without its blank line still counts."""
        block, self._buf = self._buf.strip(b"\n"), b""
        if not block:
            return []
        frame = _parse_block(block)
        return [frame] if frame is not None else []

    @property
    def pending(self) -> bool:
        return bool(self._buf.strip())


def _parse_block(block: bytes) -> SSEFrame | None:
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 58:  # ':' comment
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if event is None and not data:
        return None
    return SSEFrame(event, b"\n".join(data), block + b"\n\n")


def encode(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` must not contain newlines (compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
