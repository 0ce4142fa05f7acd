"""Chat Completions' ``input_audio`` and ``file`` content parts, decoded to
:class:`~switchpoint.canonical.MediaPart` (the OpenAI dialect calls :func:`openai_media`).

* ``{"type": "input_audio", "input_audio": {"data": <base64>, "format": "wav" | "mp3"}}``
  (other formats Gemini reads are accepted too: ``flac``, ``ogg``, ``aac``, ``aiff``, ``webm``).
* ``{"type": "file", "file": {"file_data": "data:<type>;base64,<data>" | <base64>,
  "filename": ..., "file_id": ...}}``: the MIME type from the data URI, else from the
  filename (a PDF when neither says); ``audio/*`` is audio, ``video/*`` video, the rest a
  document.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from switchpoint.canonical import MediaPart, media_kind
from switchpoint.errors import BadRequest

AUDIO_FORMATS = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "aac": "audio/aac",
    "aiff": "audio/aiff",
    "webm": "audio/webm",
}


def _fail(param: str, message: str) -> BadRequest:
    return BadRequest(f"{param}: {message}", param=param)


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(param, "must be an object")
    return value


def _string(spec: dict[str, Any], key: str, param: str) -> str | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(f"{param}.{key}", "must be a non-empty string")
    return value


def openai_media(part: dict[str, Any], kind: str, param: str) -> MediaPart:
    """The part at ``param`` of type ``kind`` (``input_audio`` or ``file``)."""
    if kind == "input_audio":
        spec = _object(part.get("input_audio"), f"{param}.input_audio")
        data = _string(spec, "data", f"{param}.input_audio")
        fmt = spec.get("format")
        if data is None:
            raise _fail(f"{param}.input_audio.data", "required (base64 audio)")
        if fmt not in AUDIO_FORMATS:
            raise _fail(f"{param}.input_audio.format", f"must be one of {', '.join(AUDIO_FORMATS)}")
        return MediaPart(kind="audio", media_type=AUDIO_FORMATS[fmt], data=data)
    spec = _object(part.get("file"), f"{param}.file")
    data = _string(spec, "file_data", f"{param}.file")
    file_id = _string(spec, "file_id", f"{param}.file")
    filename = _string(spec, "filename", f"{param}.file")
    if data is None and file_id is None:
        raise _fail(f"{param}.file", "needs file_data or file_id")
    media_type = mimetypes.guess_type(filename)[0] if filename else None
    if data is not None and data.startswith("data:"):
        header, sep, payload = data[5:].partition(",")
        if not sep or not payload or not header.endswith(";base64") or "/" not in header:
            raise _fail(
                f"{param}.file.file_data", "invalid data URI: expected data:<media type>;base64,<data>"
            )
        media_type, data = header.partition(";")[0], payload
    if file_id is not None and data is None:
        return MediaPart(
            kind=media_kind(media_type or ""), media_type=media_type, file_id=file_id, filename=filename
        )
    media_type = media_type or "application/pdf"
    return MediaPart(kind=media_kind(media_type), media_type=media_type, data=data, filename=filename)
