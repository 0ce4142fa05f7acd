"""Server-sent events: incremental framing of upstream bytes, and encoding for clients.

The decoder splits a byte stream into frames without decoding JSON; each frame keeps its
original bytes so a same-family stream can be forwarded unchanged. For such a stream,
:meth:`SSEDecoder.scan` hands out the complete frames as runs of bytes and picks out only
the frames the caller's :class:`Marks` match (the few it must still parse), so the others are
never split into lines or decoded, and go out byte for byte (keep-alive comments included).
"""

from __future__ import annotations

import re


class Marks:
    """What marks the frames of a forwarded stream that must still be read (see
    :meth:`SSEDecoder.scan`): byte strings to find, and patterns, each with the bytes every
    match of it starts with (a quick search finds where a pattern can first match; a single
    byte is the quickest). A match must lie within one frame.

    ``latest``: patterns (with their starting bytes, which every match must start at) for facts
    a stream reports cumulatively near its end, such as usage or the finish: in a read, the
    last frame one matches stands for the earlier ones, which may go out unread. They are
    looked for from the end of the read, so the usual last read does not pay a pass over the
    frames before it.
    """

    __slots__ = ("_searched", "latest", "literals", "patterns")

    def __init__(
        self,
        *marks: bytes | tuple[bytes, re.Pattern[bytes]],
        latest: tuple[tuple[bytes, re.Pattern[bytes]], ...] = (),
    ) -> None:
        self.literals = tuple(m for m in marks if isinstance(m, bytes))
        self.patterns = tuple(m for m in marks if not isinstance(m, bytes))
        self.latest = latest
        self._searched = self.patterns + latest

    def any(self, region: bytes) -> bool:
        """True when a mark matches anywhere in ``region``."""
        for lit in self.literals:
            if lit in region:
                return True
        for start, pattern in self._searched:
            at = region.find(start)
            if at >= 0 and pattern.search(region, at) is not None:
                return True
        return False

    def first(self, region: bytes, size: int) -> int:
        """Where the earliest match of any mark in ``region[:size]`` begins (``size``: none),
        a ``latest`` pattern counting by its last match. Each search stops at the earliest
        match found so far."""
        best = size
        for lit in self.literals:
            at = region.find(lit, 0, best)
            if at >= 0:
                best = at
        for start, pattern in self.patterns:
            at = region.find(start, 0, best)
            if at >= 0:
                match = pattern.search(region, at, best)
                if match is not None:
                    best = match.start()
        for start, pattern in self.latest:
            last = region.rfind(start, 0, best)
            if last < 0:
                continue
            if pattern.match(region, last) is not None:
                best = last
                continue
            at = region.find(start, 0, last)  # the last one does not match: an earlier one may
            if at >= 0:
                match = pattern.search(region, at, last)
                if match is not None:
                    best = match.start()
        return best


class SSEFrame:
    """One SSE event: its ``event`` name (or ``None``), its ``data`` and its original bytes.

    A frame from :meth:`SSEDecoder.scan` with no ``event`` and empty ``data`` stands for a run
    of unmarked frames: ``raw`` is their bytes, to forward as they are.
    """

    __slots__ = ("data", "event", "raw")

    def __init__(self, event: str | None, data: bytes, raw: bytes) -> None:
        self.event = event
        self.data = data
        self.raw = raw

    def __repr__(self) -> str:
        return f"SSEFrame(event={self.event!r}, data={self.data[:60]!r})"


class SSEDecoder:
    """Feed raw bytes, get complete frames. Comment-only frames (keep-alives) are dropped.

    Line endings are normalised to ``\\n`` (a CRLF split between two reads counts once). Either
    :meth:`feed` a read and take all its frames, or :meth:`push` it and take frames one by one
    with :meth:`next`, then the rest with :meth:`scan`. The frames with data or an event name
    are the same either way; :meth:`scan` also hands on the bytes of comment-only frames and
    blank lines (as runs), which :meth:`feed` and :meth:`next` drop.
    """

    __slots__ = ("_buf", "_cr", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        #: Where the unread part of ``_buf`` starts.
        self._pos = 0
        #: The last read ended with a CR: a LF that starts the next one ends the same line.
        self._cr = False

    def push(self, chunk: bytes) -> None:
        """Buffer one read; its frames come out of :meth:`next` and :meth:`scan`."""
        if self._cr and chunk:
            self._cr = False
            if chunk[0] == 10:  # '\n'
                chunk = chunk[1:]
        buf = self._buf[self._pos :] + chunk if self._pos < len(self._buf) else chunk
        if b"\r" in buf:
            self._cr = buf[-1] == 13  # '\r'
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._buf, self._pos = buf, 0

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        """Buffer one read and take all its complete frames."""
        self.push(chunk)
        frames: list[SSEFrame] = []
        while (frame := self.next()) is not None:
            frames.append(frame)
        return frames

    def next(self) -> SSEFrame | None:
        """The next complete frame buffered, or ``None`` when there is none."""
        buf = self._buf
        m = _USUAL_FRAME.match(buf, self._pos)
        if m is not None:  # one pattern match instead of a search, a slice and a parse
            self._pos = m.end()
            name = m.group(1)
            return SSEFrame(None if name is None else _event_name(name), m.group(2), m.group(0))
        while True:
            end = buf.find(b"\n\n", self._pos)
            if end < 0:
                return None
            frame = _parse_block(buf[self._pos : end])
            self._pos = end + 2
            if frame is not None:
                return frame

    def scan(self, marks: Marks) -> list[SSEFrame]:
        """All complete frames buffered, for a stream forwarded unchanged: the frames before the
        first in which one of ``marks`` matches come out as one run (see :class:`SSEFrame`), never
        split into lines; that frame and the ones after it come out parsed, one by one (the
        marked frames of a stream are its last few: usage, the finish, the end). An incomplete
        frame at the end stays buffered.

        The bytes that come out are the read's complete frames as they came (line endings
        normalised): comments (keep-alives), blank lines and fields the parser ignores are
        forwarded too, as runs, where :meth:`feed` would drop them.
        """
        buf, pos = self._buf, self._pos
        last = buf.rfind(b"\n\n", pos)
        if last < 0:
            return []
        end = last + 2
        region = buf[pos:end] if pos or end < len(buf) else buf
        size = end - pos
        if region.find(b"\n\n") == size - 2:
            # One frame (the usual read of a paced stream): asking whether any mark matches is
            # quicker than asking where each does.
            self._pos = end
            frame = _parse_block(region[:-2]) if marks.any(region) else None
            return [frame if frame is not None else SSEFrame(None, b"", region)]
        at = marks.first(region, size)
        # Where the frame with the first match begins (0: the first frame; size: no match).
        begin = size if at == size else region.rfind(b"\n\n", 0, at) + 2
        if begin < 2:
            begin = 0
        out: list[SSEFrame] = []
        if begin:
            out.append(SSEFrame(None, b"", region if begin == size else region[:begin]))
            self._pos = pos + begin
        while True:
            start = self._pos
            frame = self.next()
            if frame is None:  # what is left of the region holds no frame with data
                self._pos = end
                if end > start:
                    out.append(SSEFrame(None, b"", buf[start:end]))
                return out
            skipped = self._pos - len(frame.raw) - start  # comments or blank lines before it
            if skipped:
                out.append(SSEFrame(None, b"", buf[start : start + skipped]))
            out.append(frame)

    def flush(self) -> list[SSEFrame]:
        """At end of stream: a final frame without its blank line still counts."""
        block = self._buf[self._pos :].strip(b"\n")
        self._buf, self._pos, self._cr = b"", 0, False
        if not block:
            return []
        frame = _parse_block(block)
        return [frame] if frame is not None else []

    @property
    def pending(self) -> bool:
        return bool(self._buf[self._pos :].strip())


#: The usual frame, whole: an optional event line and one data line, each with its one space.
#: Anything else (comments, several data lines, other fields, no space) is parsed line by line.
_USUAL_FRAME = re.compile(rb"(?:event: ([^\n]*)\n)?data: ([^\n]*)\n\n")
#: Event names seen, decoded once (a stream repeats a handful of them); bounded.
_EVENT_NAMES: dict[bytes, str] = {}


def _event_name(raw: bytes) -> str:
    name = _EVENT_NAMES.get(raw)
    if name is None:
        name = raw.decode("utf-8", "replace")
        if len(_EVENT_NAMES) < 64:
            _EVENT_NAMES[raw] = name
    return name


def _parse_block(block: bytes) -> SSEFrame | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # the usual frame: one data line
        return SSEFrame(None, block[6:], block + b"\n\n")
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
            event = _event_name(value)
    if event is None and not data:
        return None
    return SSEFrame(event, b"\n".join(data), block + b"\n\n")


def encode(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` must not contain newlines (compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
