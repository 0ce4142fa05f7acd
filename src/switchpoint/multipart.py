"""``multipart/form-data`` (RFC 7578): read a whole body into its parts, write parts into one.

The audio endpoints take their files this way. Bodies are read whole (the server's body limit
already holds them in memory), so this is a split on the boundary, not a streaming parser.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

FORM = "multipart/form-data"


class MultipartError(ValueError):
    """The body is not the multipart document its content type says."""


@dataclass(slots=True, frozen=True)
class FormPart:
    name: str
    data: bytes
    #: Set for a file (``filename`` in its ``Content-Disposition``).
    filename: str | None = None
    content_type: str | None = None

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def boundary_of(content_type: str) -> str | None:
    """The ``boundary`` of a ``multipart/form-data`` content type (None: not one)."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != FORM:
        return None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"')
    return None


def _params(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.split(";")[1:]:
        key, sep, raw = item.strip().partition("=")
        if sep:
            out[key.strip().lower()] = raw.strip().strip('"')
    return out


def _part(piece: bytes) -> FormPart:
    if not piece.startswith(b"\r\n") or not piece.endswith(b"\r\n"):
        raise MultipartError("a part is not framed by CRLF")
    head, sep, data = piece[2:-2].partition(b"\r\n\r\n")
    if not sep:
        raise MultipartError("a part has no blank line after its headers")
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition", "")
    if not disposition.lower().startswith("form-data"):
        raise MultipartError("a part has no Content-Disposition: form-data")
    params = _params(disposition)
    if "name" not in params:
        raise MultipartError("a part has no name")
    return FormPart(params["name"], data, params.get("filename"), headers.get("content-type"))


def parse(body: bytes, boundary: str) -> list[FormPart]:
    """The parts of ``body``. Raises :class:`MultipartError` on a malformed one."""
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = (b"\r\n" + body).split(b"\r\n" + delimiter)
    if len(pieces) < 2 or not pieces[-1].startswith(b"--"):
        raise MultipartError("the body does not end with its closing boundary")
    return [_part(piece + b"\r\n") for piece in pieces[1:-1]]


def _quoted(value: str) -> str:
    """A name or filename inside quotes, escaped as browsers do (WHATWG: ``"``, CR, LF)."""
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def encode(parts: list[FormPart]) -> tuple[bytes, str]:
    """``parts`` as one body, and its content type (a fresh boundary)."""
    boundary = "switchpoint-" + uuid.uuid4().hex
    out: list[bytes] = []
    for p in parts:
        disposition = f'form-data; name="{_quoted(p.name)}"'
        if p.filename is not None:
            disposition += f'; filename="{_quoted(p.filename)}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if p.content_type is not None:
            head += f"Content-Type: {p.content_type}\r\n"
        out += [head.encode("utf-8"), b"\r\n", p.data, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"{FORM}; boundary={boundary}"
