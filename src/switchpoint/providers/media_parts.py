"""Audio, video and document parts (:class:`~switchpoint.canonical.MediaPart`) on each wire.

* **OpenAI** Chat Completions: audio inline as ``input_audio`` (``wav`` or ``mp3`` only);
  documents, and anything given by ``file_id``, as ``file`` parts (``file_data`` is a
  ``data:`` URI); no video, and no media by URL.
* **Anthropic** Messages: documents only, as ``document`` blocks (base64 PDF, plain text, a
  PDF URL); no audio, no video.
* **Gemini** (and Vertex's Gemini): every modality, inline as ``inlineData`` or by URI
  (``gs://``, https, a Files API URI) as ``fileData``; an OpenAI ``file_id`` cannot be read.
* **Bedrock** Converse: none yet (refused).

A part a wire cannot carry is a ``bad_request`` naming the message and part: routing keeps
audio and video away from deployments without the capability, so this is what an operator
sees when a deployment declares a capability its wire lacks.
"""

from __future__ import annotations

import base64
from typing import Any

from switchpoint.canonical import MediaPart
from switchpoint.errors import ProviderError

_OPENAI_AUDIO = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}
_ANTHROPIC_DOCS = ("application/pdf", "text/plain")


def _refuse(where: str, message: str) -> ProviderError:
    return ProviderError("bad_request", f"{where}: {message}", param=where)


def _label(part: MediaPart) -> str:
    return f"{part.kind} ({part.media_type})" if part.media_type else part.kind


def openai_part(part: MediaPart, where: str) -> dict[str, Any]:
    """A Chat Completions content part for ``part``."""
    if part.file_id is not None:
        return {"type": "file", "file": {"file_id": part.file_id}}
    if part.data is None:
        raise _refuse(where, f"OpenAI chat models take {part.kind} inline (base64 data), not by URL")
    if part.kind == "audio":
        fmt = _OPENAI_AUDIO.get((part.media_type or "").lower())
        if fmt is None:
            raise _refuse(where, f"OpenAI chat models take wav or mp3 audio, not {part.media_type}")
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": fmt}}
    if part.kind == "video":
        raise _refuse(where, "OpenAI chat models take no video input")
    media = part.media_type or "application/pdf"
    file: dict[str, Any] = {"file_data": f"data:{media};base64,{part.data}"}
    file["filename"] = part.filename or ("document.pdf" if media == "application/pdf" else "document")
    return {"type": "file", "file": file}


def anthropic_block(part: MediaPart, where: str) -> dict[str, Any]:
    """An Anthropic ``document`` block for a document part; audio and video are refused."""
    if part.kind != "document":
        raise _refuse(where, f"Anthropic models take no {part.kind} input")
    media = (part.media_type or "application/pdf").lower()
    if part.file_id is not None:
        raise _refuse(where, "an OpenAI file_id can only be read by an OpenAI model")
    if part.data is None:
        if media != "application/pdf" or not (part.url or "").startswith(("http://", "https://")):
            raise _refuse(where, "Anthropic models take documents by URL only as PDFs over http(s)")
        source: dict[str, Any] = {"type": "url", "url": part.url}
    elif media not in _ANTHROPIC_DOCS:
        raise _refuse(where, f"Anthropic models take PDF or plain-text documents, not {part.media_type}")
    elif media == "text/plain":
        text = base64.b64decode(part.data).decode("utf-8", "replace")
        source = {"type": "text", "media_type": "text/plain", "data": text}
    else:
        source = {"type": "base64", "media_type": media, "data": part.data}
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return block


def gemini_part(part: MediaPart, where: str) -> dict[str, Any]:
    """A Gemini part: ``inlineData`` or ``fileData``."""
    if part.file_id is not None:
        raise _refuse(where, "an OpenAI file_id can only be read by an OpenAI model")
    if part.media_type is None:
        raise _refuse(where, f"Gemini needs the MIME type of {part.kind} input")
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type, "data": part.data}}
    return {"fileData": {"mimeType": part.media_type, "fileUri": part.url or ""}}


def refuse(part: MediaPart, where: str, family: str) -> ProviderError:
    """The error for a family that carries no media parts."""
    return _refuse(where, f"{_label(part)} input cannot be sent to a {family} model")
