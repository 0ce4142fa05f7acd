"""Request features routing decides on: task, size, needs, targets, caller, tags.

Everything here is cheap. The prompt size is first estimated from character counts (ASCII text
at ~4 characters per token, other text at ~1.5, images at a fixed cost); the tokenizer runs
only when that estimate lands near a limit the decision depends on (``refine``).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from switchpoint import tokens
from switchpoint.canonical import (
    ChatRequest,
    ImagePart,
    MediaPart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from switchpoint.errors import BadRequest

TASK_HEADER = "x-switchpoint-task"
LATENCY_HEADER = "x-switchpoint-latency-ms"
PRIORITY_HEADER = "x-switchpoint-priority"
BUDGET_HEADER = "x-switchpoint-max-cost-usd"
SESSION_HEADER = "x-switchpoint-session"
TAGS_HEADER = "x-switchpoint-tags"
#: Keys of the body's ``metadata`` that routing reads; they are removed before the upstream call.
META_TASK, META_SESSION, META_PRIORITY = "task", "session_id", "priority"
ROUTING_META_KEYS = frozenset({META_TASK, META_SESSION, META_PRIORITY})

PRIORITIES = ("accuracy", "speed", "budget")
#: The priority queue's lanes (governance), sent on the same header; routing ignores them.
QUEUE_PRIORITIES = frozenset({"high", "normal", "low"})
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_SESSION = re.compile(r"^[\x21-\x7e]{1,256}$")

#: Tokens per character, by script; framing per message and per request as in ``tokens``.
ASCII_CHARS_PER_TOKEN = 4.0
OTHER_CHARS_PER_TOKEN = 1.5
#: The tokenizer is run when the character estimate is within this factor of a limit (dense
#: text such as punctuation or identifiers runs up to ~4x more tokens per character than prose).
REFINE_FACTOR = 4.0
#: Prompt-size multiplier for families whose tokenizer is not public (as in ``tokens``).
FAMILY_FACTOR: Mapping[str, float] = {"openai": 1.0}


def family_factor(family: str) -> float:
    return FAMILY_FACTOR.get(family, tokens.DEFAULT_SAFETY_FACTOR)


class Features(msgspec.Struct, kw_only=True):
    model: str
    #: Declared or classified task; ``task_source`` says which (declared, rules, semantic, default).
    task: str | None = None
    task_source: str | None = None
    task_score: float | None = None
    #: Prompt tokens (o200k basis, before any family factor); exact when the tokenizer ran.
    prompt_tokens: int = 0
    tokens_exact: bool = False
    #: Output tokens the client asked for (None: not set).
    output_tokens: int | None = None
    tools: bool = False
    images: bool = False
    audio: bool = False
    video: bool = False
    json_schema: bool = False
    stream: bool = False
    latency_ms: float | None = None
    priority: str | None = None
    max_cost_usd: float | None = None
    principal: str | None = None
    team: str | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    session: str | None = None

    @property
    def needs(self) -> tuple[str, ...]:
        """Capabilities a deployment must have to serve the request."""
        out: list[str] = []
        if self.tools:
            out.append("tools")
        if self.images:
            out.append("vision")
        if self.audio:
            out.append("audio")
        if self.video:
            out.append("video")
        if self.json_schema:
            out.append("json_schema")
        if self.stream:
            out.append("streaming")
        return tuple(out)


# --- size -------------------------------------------------------------------------------------


def _chars(text: str) -> float:
    return len(text) / (ASCII_CHARS_PER_TOKEN if text.isascii() else OTHER_CHARS_PER_TOKEN)


#: Flags of the inputs a message holds that need a capability (``message_tokens``).
IMAGE, AUDIO, VIDEO = 1, 2, 4
_MEDIA_FLAGS = {"audio": AUDIO, "video": VIDEO}


def message_tokens(msg: Message) -> tuple[float, int]:
    """Cheap token estimate of one message, and the :data:`IMAGE` / :data:`AUDIO` /
    :data:`VIDEO` flags of what it holds."""
    n = float(tokens.TOKENS_PER_MESSAGE)
    image = 0
    for part in msg.parts:
        if isinstance(part, TextPart):
            n += _chars(part.text)
        elif isinstance(part, ToolCallPart):
            n += _chars(part.name) + _chars(part.arguments)
        elif isinstance(part, ThinkingPart):
            n += _chars(part.text)
        elif isinstance(part, ImagePart):
            n += tokens.IMAGE_TOKENS_DEFAULT
            image |= IMAGE
        elif isinstance(part, ToolResultPart):
            for item in part.content:
                if isinstance(item, TextPart):
                    n += _chars(item.text)
                else:
                    n += tokens.IMAGE_TOKENS_DEFAULT
                    image |= IMAGE
        elif isinstance(part, MediaPart):
            # ~1 token per kB of media (Gemini: 32 tokens a second of 16 kHz audio), at least an image's
            n += max(tokens.IMAGE_TOKENS_DEFAULT, len(part.data or "") // 1000)
            image |= _MEDIA_FLAGS.get(part.kind, 0)
    return n, image


def _tools_tokens(request: ChatRequest) -> float:
    n = 0.0
    for tool in request.tools or ():
        n += tokens.TOKENS_PER_TOOL + _chars(tool.name) + len(msgspec.json.encode(tool.parameters)) / 4
        if tool.description:
            n += _chars(tool.description)
    return n


def cheap_tokens(request: ChatRequest) -> tuple[int, int]:
    """Character-based prompt estimate, and the flags of the inputs the prompt holds
    (:data:`IMAGE`, :data:`AUDIO`, :data:`VIDEO`)."""
    total = tokens.TOKENS_PER_REQUEST + _tools_tokens(request)
    media = 0
    for msg in request.messages:
        n, flags = message_tokens(msg)
        total += n
        media |= flags
    return math.ceil(total), media


def near(estimate: int, limits: Sequence[float]) -> bool:
    """Whether a sorted list of limits has one within :data:`REFINE_FACTOR` of ``estimate``."""
    i = bisect.bisect_left(limits, estimate / REFINE_FACTOR)
    return i < len(limits) and limits[i] <= estimate * REFINE_FACTOR


def count(features: Features, request: ChatRequest) -> None:
    """Replace the estimate with the tokenizer's count (``o200k_base``, message framing included)."""
    features.prompt_tokens = tokens.estimate_request_tokens(request, "openai")
    features.tokens_exact = True


def refine(features: Features, request: ChatRequest, limits: Sequence[float]) -> None:
    """Count with the tokenizer when the estimate is near one of ``limits``."""
    if not features.tokens_exact and near(features.prompt_tokens, limits):
        count(features, request)


# --- the caller's declarations ---------------------------------------------------------------


def _metadata(request: ChatRequest) -> Mapping[str, Any]:
    if request.metadata:
        return request.metadata
    raw = request.raw.get("metadata") if request.raw is not None else None
    return raw if isinstance(raw, dict) else {}


def _name(value: Any, param: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise BadRequest(f"{param} must be a name of 1-64 letters, digits or '_.:-'", param=param)
    return value


def _number(value: str, param: str, *, positive: bool) -> float:
    try:
        n = float(value)
    except ValueError:
        n = math.nan
    if not math.isfinite(n) or n < 0 or (positive and n == 0):
        what = "a positive number" if positive else "a number of at least 0"
        raise BadRequest(f"{param} must be {what}", param=param)
    return n


def _priority(value: Any, param: str) -> str:
    if value not in PRIORITIES:
        raise BadRequest(f"{param} must be one of {', '.join(PRIORITIES)}", param=param)
    return str(value)


def _session(value: Any, param: str) -> str:
    if not isinstance(value, str) or not _SESSION.match(value):
        raise BadRequest(f"{param} must be 1-256 printable characters without spaces", param=param)
    return value


def _tags(meta: Mapping[str, Any], header: str | None) -> dict[str, str]:
    tags = {k: v for k, v in meta.items() if isinstance(v, str) and k not in ROUTING_META_KEYS}
    if header:
        for item in header.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise BadRequest(f"{TAGS_HEADER} must look like 'key=value, key2=value2'", param=TAGS_HEADER)
            tags[key.strip()] = value.strip()
    return tags


def extract(
    request: ChatRequest,
    headers: Mapping[str, str] | None = None,
    *,
    principal: str | None = None,
    team: str | None = None,
) -> Features:
    """The request's features. Invalid routing headers or metadata are a 400."""
    h: Mapping[str, str] = headers if headers is not None else {}
    meta = _metadata(request)
    size, media = cheap_tokens(request)
    f = Features(
        model=request.model,
        prompt_tokens=size,
        output_tokens=request.max_tokens,
        tools=bool(request.tools),
        images=(media & IMAGE) != 0,
        json_schema=request.response_format is not None and request.response_format.type == "json_schema",
        stream=request.stream,
        principal=principal,
        team=team,
        tags=_tags(meta, h.get(TAGS_HEADER)),
    )
    if media > IMAGE:  # audio or video (rare: the usual request sets neither)
        f.audio, f.video = (media & AUDIO) != 0, (media & VIDEO) != 0
    task = h.get(TASK_HEADER) or meta.get(META_TASK)
    if task is not None:
        f.task = _name(task, TASK_HEADER if h.get(TASK_HEADER) else "metadata.task")
        f.task_source = "declared"
    latency = h.get(LATENCY_HEADER)
    if latency is not None:
        f.latency_ms = _number(latency, LATENCY_HEADER, positive=True)
    budget = h.get(BUDGET_HEADER)
    if budget is not None:
        f.max_cost_usd = _number(budget, BUDGET_HEADER, positive=False)
    priority = h.get(PRIORITY_HEADER) or meta.get(META_PRIORITY)
    if priority is not None and priority not in QUEUE_PRIORITIES:  # those are governance's
        f.priority = _priority(priority, PRIORITY_HEADER if h.get(PRIORITY_HEADER) else "metadata.priority")
    session = h.get(SESSION_HEADER) or meta.get(META_SESSION)
    if session is not None:
        f.session = _session(session, SESSION_HEADER if h.get(SESSION_HEADER) else "metadata.session_id")
    return f


def prompt_text(request: ChatRequest, max_chars: int) -> str:
    """What the semantic classifier reads: the last user turn's text (else all text), cut short."""
    for msg in reversed(request.messages):
        if msg.role == "user":
            text = msg.text()
            if text:
                return text[:max_chars]
    return " ".join(m.text() for m in request.messages)[:max_chars]
