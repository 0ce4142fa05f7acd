"""The multipart/form-data reader and writer the audio endpoints use: what the ``openai`` SDK
(httpx) writes is read back exactly; what the gateway writes, the standard library's MIME
parser reads; malformed bodies are errors, never parts."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import httpx
import pytest

from switchpoint.multipart import FormPart, MultipartError, boundary_of, encode, parse

AUDIO = bytes(range(256)) * 8 + b"\r\n--\r\n\r\n"  # every byte, CRLFs and dashes inside


def test_reads_what_httpx_writes() -> None:
    request = httpx.Request(
        "POST",
        "http://x/v1/audio/transcriptions",
        data={"model": "whisper-1", "timestamp_granularities[]": ["word", "segment"]},
        files={"file": ("speech.wav", AUDIO, "audio/wav")},
    )
    body = request.read()
    boundary = boundary_of(request.headers["content-type"])
    assert boundary is not None
    parts = parse(body, boundary)
    assert [(p.name, p.filename, p.content_type) for p in parts] == [
        ("model", None, None),
        ("timestamp_granularities[]", None, None),
        ("timestamp_granularities[]", None, None),
        ("file", "speech.wav", "audio/wav"),
    ]
    assert [p.data for p in parts[:3]] == [b"whisper-1", b"word", b"segment"]
    assert parts[3].data == AUDIO


def test_what_it_writes_the_standard_library_reads() -> None:
    body, ctype = encode([FormPart("model", b"m"), FormPart("file", AUDIO, "a.wav", "audio/wav")])
    msg = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    got = [
        (p.get_param("name", header="content-disposition"), p.get_filename(), p.get_payload(decode=True))
        for p in msg.iter_parts()
    ]
    assert got == [("model", None, b"m"), ("file", "a.wav", AUDIO)]
    assert parse(body, boundary_of(ctype) or "") == [
        FormPart("model", b"m"),
        FormPart("file", AUDIO, "a.wav", "audio/wav"),
    ]


@pytest.mark.parametrize(
    ("ctype", "boundary"),
    [
        ("multipart/form-data; boundary=abc", "abc"),
        ('Multipart/Form-Data; charset=utf-8; boundary="a b"', "a b"),
        ("multipart/form-data", None),
        ("application/json", None),
        ("multipart/mixed; boundary=abc", None),
    ],
)
def test_boundary_of(ctype: str, boundary: str | None) -> None:
    assert boundary_of(ctype) == boundary


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "closing boundary"),
        (b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\nvalue\r\n", "closing boundary"),
        (b"--b\r\nContent-Disposition: form-data; name=x\r\nvalue\r\n--b--\r\n", "blank line"),
        (b"--b\r\nContent-Type: text/plain\r\n\r\nvalue\r\n--b--\r\n", "Content-Disposition"),
        (b"--b\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--b--\r\n", "no name"),
        (b"--bX\r\n\r\n--b--\r\n", "CRLF"),
    ],
)
def test_malformed_bodies_are_errors(body: bytes, says: str) -> None:
    with pytest.raises(MultipartError, match=says):
        parse(body, "b")


def test_quotes_and_line_breaks_in_filenames_cannot_break_the_header() -> None:
    body, ctype = encode([FormPart("file", b"x", 'a"b\r\nX-Evil: 1.wav', "audio/wav")])
    (part,) = parse(body, boundary_of(ctype) or "")
    assert part.filename == "a%22b%0D%0AX-Evil: 1.wav" and part.data == b"x"
