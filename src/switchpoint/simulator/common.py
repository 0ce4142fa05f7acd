"""Small pieces shared by the simulator's wire modules."""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass, field

import msgspec

Headers = list[tuple[bytes, bytes]]

_PREFIX = os.urandom(4).hex()
_COUNTER = itertools.count(1)


class SimError(Exception):
    """An error answer: HTTP status, a message safe to show, and the offending parameter."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s


def new_id(prefix: str) -> str:
    """A unique id such as ``chatcmpl-<hex>``."""
    return f"{prefix}{_PREFIX}{next(_COUNTER):012x}"


def now() -> int:
    return int(time.time())


_MISSING = re.compile(r"Object missing required field `([^`]+)`(?: - at `\$\.?(.*)`)?")
_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$")


def invalid_body(exc: msgspec.MsgspecError) -> SimError:
    """A 400 for a body that failed to decode, naming the parameter when msgspec knows it."""
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return SimError(400, f"The request body is not valid JSON: {text}")
    missing = _MISSING.match(text)
    if missing:
        name, where = missing.group(1), missing.group(2)
        param = f"{where}.{name}" if where else name
        return SimError(400, f"Missing required parameter: '{param}'.", param=param)
    located = _AT.match(text)
    if located:
        param = located.group(2) or None
        return SimError(400, f"Invalid value for '{param}': {located.group(1)}", param=param)
    return SimError(400, f"Invalid request body: {text}")


def header(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def bearer(headers: Headers) -> bool:
    value = header(headers, b"authorization")
    return value is not None and value[:7].lower() == b"bearer " and len(value.strip()) > 7


@dataclass(slots=True)
class Frames:
    """A stream: frames before the content, one frame per content piece, terminal frames."""

    pre: list[bytes] = field(default_factory=list)
    content: list[bytes] = field(default_factory=list)
    post: list[bytes] = field(default_factory=list)
    media_type: bytes = b"text/event-stream"


def corrupt(frame: bytes) -> bytes:
    """The frame with the JSON of its first ``data:`` line cut in half; the framing is kept."""
    start = frame.find(b"data: ")
    if start < 0:
        return frame[: max(1, len(frame) // 2)]
    start += 6
    end = frame.find(b"\n", start)
    if end < 0:
        end = len(frame)
    if frame[end - 1 : end] == b"\r":
        end -= 1
    return frame[: start + max(1, (end - start) // 2)] + frame[end:]


def retry_after_headers(status: int, seconds: float | None) -> Headers:
    if seconds is None or status not in (429, 503, 529):
        return []
    whole = int(seconds) if seconds == int(seconds) else int(seconds) + 1
    return [(b"retry-after", str(whole).encode()), (b"retry-after-ms", str(int(seconds * 1000)).encode())]
