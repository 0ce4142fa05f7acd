"""OpenAI's audio and image endpoints, simulated: transcriptions and translations (multipart),
speech (JSON in, audio bytes out), image generations.

* A transcription says how long the audio was: ``[simulated <model>] I heard 0.25 seconds of
  audio.`` (a WAV file's length from its header; any other file, 16 kB a second), with
  ``usage: {type: duration, seconds}`` in ``json``, ``duration`` in ``verbose_json``, the bare
  text in ``text``, ``srt`` and ``vtt``.
* Speech is a silent WAV for ``wav`` (60 ms a character), and a few bytes of the asked format
  labelled with its content type otherwise.
* Generations answer ``n`` 1x1 PNGs (``b64_json``) or URLs.
"""

from __future__ import annotations

import base64
import io
import wave
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from typing import Any

import msgspec

from .common import Headers, SimError, header, now

_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
_AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
_TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_encode = msgspec.json.encode


def _seconds(data: bytes) -> float:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        try:
            with wave.open(io.BytesIO(data)) as w:
                frames: int = w.getnframes()
                rate: int = w.getframerate()
            return round(frames / rate, 3)
        except (wave.Error, EOFError, ZeroDivisionError):
            pass
    return round(len(data) / 16_000, 3)


def silent_wav(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise SimError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(data, dict):
        raise SimError(400, "The request body must be a JSON object.")
    return data


def _required(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise SimError(400, f"Missing required parameter: '{name}'.", param=name)
    return value


@dataclass(slots=True)
class _FormPart:
    name: str
    data: bytes
    filename: str | None


def _form(headers: Headers, body: bytes) -> list[_FormPart]:
    """A multipart/form-data body's parts, read by the standard library's MIME parser (not the
    gateway's own reader, so that each checks the other)."""
    ctype = header(headers, b"content-type") or b""
    if not ctype.lower().startswith(b"multipart/form-data"):
        raise SimError(400, "Invalid Content-Type header: expected multipart/form-data.")
    msg = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + ctype + b"\r\n\r\n" + body)
    if not msg.is_multipart() or msg.defects:
        raise SimError(400, "Could not parse multipart form.")
    out: list[_FormPart] = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            raise SimError(400, "Could not parse multipart form: a part has no name.")
        out.append(_FormPart(name, payload, part.get_filename()))
    return out


def model_of(route: str, headers: Headers, body: bytes) -> str:
    """The request's model (for the fault plan), or ``""`` when the body does not say."""
    try:
        if route in ("audio/transcriptions", "audio/translations"):
            return next((p.data.decode() for p in _form(headers, body) if p.name == "model"), "")
        model = _json_object(body).get("model")
    except (SimError, UnicodeDecodeError):
        return ""
    return model if isinstance(model, str) else ""


def _transcription(route: str, headers: Headers, body: bytes) -> tuple[bytes, bytes]:
    parts = _form(headers, body)
    fields = {p.name: p.data.decode("utf-8", "replace") for p in parts if p.filename is None}
    files = [p for p in parts if p.filename is not None and p.name == "file"]
    model = _required(fields, "model")
    if not files or not files[0].data:
        raise SimError(400, "Missing required parameter: 'file'.", param="file")
    fmt = fields.get("response_format", "json")
    if fmt not in _TRANSCRIPT_FORMATS:
        raise SimError(400, f"Invalid value for 'response_format': {fmt!r}.", param="response_format")
    seconds = _seconds(files[0].data)
    text = f"[simulated {model}] I heard {seconds:g} seconds of audio."
    if fmt in ("text", "srt", "vtt"):
        return text.encode() + b"\n", b"text/plain; charset=utf-8"
    if fmt == "verbose_json":
        task = "translate" if route == "audio/translations" else "transcribe"
        answer: dict[str, Any] = {
            "task": task,
            "language": "english",
            "duration": seconds,
            "text": text,
            "segments": [],
        }
    else:
        answer = {"text": text, "usage": {"type": "duration", "seconds": max(1, round(seconds))}}
    return _encode(answer), b"application/json"


def _speech(body: bytes) -> tuple[bytes, bytes]:
    fields = _json_object(body)
    _required(fields, "model")
    text = _required(fields, "input")
    if len(text) > 4096:
        raise SimError(400, "'input' is longer than 4096 characters.", param="input")
    if not isinstance(fields.get("voice"), str | dict):
        raise SimError(400, "Missing required parameter: 'voice'.", param="voice")
    fmt = fields.get("response_format", "mp3")
    if fmt not in _AUDIO_TYPES:
        raise SimError(400, f"Invalid value for 'response_format': {fmt!r}.", param="response_format")
    audio = silent_wav(0.06 * len(text)) if fmt == "wav" else b"SIMULATED-" + fmt.encode() + b"\0" * 16
    return audio, _AUDIO_TYPES[fmt].encode()


def _images(body: bytes) -> tuple[bytes, bytes]:
    fields = _json_object(body)
    _required(fields, "prompt")
    n = fields.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
        raise SimError(400, "Invalid value for 'n': must be an integer from 1 to 10.", param="n")
    if fields.get("response_format", "b64_json") == "url":
        data: list[dict[str, str]] = [{"url": f"https://simulator.invalid/images/{i}.png"} for i in range(n)]
    else:
        data = [{"b64_json": base64.b64encode(_PNG).decode()} for _ in range(n)]
    return _encode({"created": now(), "data": data}), b"application/json"


def answer(route: str, headers: Headers, body: bytes) -> tuple[bytes, bytes]:
    """The answer to ``route``'s request (body, content type); a :class:`SimError` for a bad one."""
    if route == "audio/speech":
        return _speech(body)
    if route == "images/generations":
        return _images(body)
    return _transcription(route, headers, body)


ROUTES = ("audio/transcriptions", "audio/translations", "audio/speech", "images/generations")
