"""The OpenAI wire's audio and image endpoints: ``audio/transcriptions``,
``audio/translations``, ``audio/speech`` and ``images/generations``.

The client's body goes upstream as it came but for ``model`` (the deployment's id): JSON
re-encoded, multipart re-written with the same fields and files. The answer comes back as it
came (JSON, text, subtitles or audio bytes), with the units it is billed by:

* transcription, translation: seconds of audio, from the answer's ``usage.seconds``
  (``type: duration``) or ``duration`` (``verbose_json``), else from a WAV file's header;
* speech: characters of ``input``;
* images: the images in the answer's ``data`` (else the ``n`` asked for).
"""

from __future__ import annotations

from typing import Any

import msgspec

from switchpoint.canonical import MediaRequest, MediaResponse, MediaUnits
from switchpoint.errors import ProviderError
from switchpoint.multipart import FormPart, encode
from switchpoint.wav import wav_seconds

_encode = msgspec.json.encode


def media_body(request: MediaRequest, model: str) -> tuple[bytes, str]:
    """The upstream body and its content type."""
    fields = {**request.fields, "model": model}
    if not request.multipart:
        return _encode(fields), "application/json"
    parts = [
        FormPart(k, str(item).encode("utf-8"))
        for k, v in fields.items()
        for item in (v if isinstance(v, list) else [v])
    ]
    parts += [FormPart(f.field, f.data, f.filename or "file", f.content_type) for f in request.files]
    return encode(parts)


def _json(body: bytes, content_type: str) -> Any:
    if not content_type.startswith("application/json"):
        return None
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ProviderError("invalid_response", "the upstream's JSON answer could not be read") from None


def _units(request: MediaRequest, answer: Any) -> MediaUnits | None:
    op = request.operation
    if op == "audio/speech":
        text = request.fields.get("input")
        return MediaUnits(unit="characters", quantity=len(text)) if isinstance(text, str) else None
    if op == "images/generations":
        data = answer.get("data") if isinstance(answer, dict) else None
        if isinstance(data, list):
            return MediaUnits(unit="images", quantity=len(data))
        n = request.fields.get("n", 1)
        return MediaUnits(unit="images", quantity=float(n)) if isinstance(n, int | float) else None
    seconds: Any = None
    if isinstance(answer, dict):
        usage = answer.get("usage")
        if isinstance(usage, dict) and usage.get("type") == "duration":
            seconds = usage.get("seconds")
        if seconds is None:
            seconds = answer.get("duration")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        seconds = wav_seconds(request)
    return MediaUnits(unit="seconds", quantity=float(seconds)) if seconds is not None else None


def media_response(request: MediaRequest, body: bytes, content_type: str) -> MediaResponse:
    """The answer to pass back, with its units."""
    ctype = content_type or "application/octet-stream"
    return MediaResponse(body=body, content_type=ctype, units=_units(request, _json(body, ctype)))
