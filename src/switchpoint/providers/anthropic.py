"""The Anthropic Messages API wire family (``POST /v1/messages``).

Requests from an Anthropic client are passed through losslessly (the client's own body with the
upstream model id); everything else is translated from the canonical model. Translation rules
worth knowing:

* System and developer messages become the top-level ``system`` (a string, or a list of text
  blocks when a part carries ``cache_control``); consecutive messages of one role are merged
  because the API requires alternating turns; ``tool`` messages become ``tool_result`` blocks
  of a user turn (placed first in that turn, as the API requires).
* Thinking from another vendor carries no Anthropic signature and cannot be replayed; it is
  dropped. Signed and redacted thinking are sent back as ``thinking`` / ``redacted_thinking``.
* ``max_tokens`` is required: the request's, else the deployment's ``max_output_tokens``.
* Reasoning: a budget is sent as ``thinking.budget_tokens``; an effort without a budget maps to
  :data:`EFFORT_BUDGETS` (``minimal`` means no extended thinking). The budget is clamped to
  at least 1024 and below ``max_tokens``; when that is impossible thinking is not enabled.
  With thinking on, the API accepts no ``top_k``, ``temperature`` only at 1 and ``top_p`` only
  from 0.95, so other values are left out. A forced tool call (``tool_choice`` any/tool)
  cannot be combined with thinking either: thinking is then not enabled.
* ``temperature`` is clamped to the API's range 0..1 (OpenAI clients may send up to 2).
* ``response_format``: ``json_schema`` uses the Messages API's structured outputs
  (``output_config.format``); ``json_object`` has no API equivalent and adds a system
  instruction to answer with one JSON object only. ``seed`` and ``logprobs`` have no
  equivalent and are ignored.
* Tool-call ids are reduced to the characters the API accepts (``[A-Za-z0-9_-]``), the same way
  for ``tool_use`` and ``tool_result`` so pairs still match.
* Blocks the canonical model has no part for (documents, search results, server tools) are
  kept by the Anthropic dialect in ``Message.extra["anthropic_blocks"]`` as
  ``[position, block]`` pairs and put back in place here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import msgspec

from switchpoint.canonical import (
    ANTHROPIC_BLOCKS,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    MediaPart,
    Message,
    MessageStart,
    Part,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    TextPart,
    Thinking,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCallDelta,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    Usage,
    UsageUpdate,
)
from switchpoint.canonical import Finish as FinishEvent
from switchpoint.config import Deployment, Secret
from switchpoint.errors import ProviderError
from switchpoint.providers.anthropic_cache import place_breakpoints
from switchpoint.providers.base import Adapter, StreamParser, UpstreamRequest, UpstreamResponse
from switchpoint.providers.media_parts import anthropic_block
from switchpoint.streaming import Marks, SSEFrame

#: Thinking budget (tokens) for an effort level given without a budget.
EFFORT_BUDGETS: dict[str, int] = {"low": 1024, "medium": 4096, "high": 16384}
MIN_THINKING_BUDGET = 1024
JSON_ONLY_INSTRUCTION = "Respond with a single valid JSON object and nothing else: no prose, no code fences."
MAX_ERROR_MESSAGE = 500

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "max_tokens": "length",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "pause",
}
_ERROR_KINDS: dict[str, str] = {
    "invalid_request_error": "bad_request",
    "authentication_error": "authentication",
    "permission_error": "permission",
    "billing_error": "permission",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
    "rate_limit_error": "rate_limited",
    "api_error": "server_error",
    "overloaded_error": "overloaded",
    "timeout_error": "timeout",
}
_STATUS_KINDS: dict[int, str] = {
    400: "bad_request",
    401: "authentication",
    402: "permission",
    403: "permission",
    404: "not_found",
    408: "timeout",
    413: "request_too_large",
    422: "unprocessable",
    429: "rate_limited",
    503: "overloaded",
    504: "timeout",
    529: "overloaded",
}
_CONTEXT_RE = re.compile(
    r"prompt is too long|context (?:limit|window|length)|too many (?:input )?tokens", re.IGNORECASE
)
_KEY_RE = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")
_TOOL_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")
_DATA_URL = re.compile(r"^data:([^;,]+);base64,(.*)$", re.DOTALL)
_RESET_HEADERS = ("requests", "tokens", "input-tokens", "output-tokens")
_PROTECTED_HEADERS = frozenset({"anthropic-version", "x-api-key", "authorization"})
_EXTRA_KEY = ANTHROPIC_BLOCKS


# --- wire shapes (decoding only what the gateway reads) --------------------------------------


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class _OutputDetails(msgspec.Struct):
    thinking_tokens: int = 0


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    #: The cache writes by TTL (5-minute and 1-hour), beside their sum above.
    cache_creation: _CacheCreation | None = None
    #: ``thinking_tokens``: the part of ``output_tokens`` spent thinking.
    output_tokens_details: _OutputDetails | None = None


class _Block(msgspec.Struct):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    citations: Any = None


class _Message(msgspec.Struct):
    id: str
    model: str
    content: list[_Block]
    type: str = "message"
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: _Usage = msgspec.field(default_factory=_Usage)


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class _ErrorBody(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class _Event(msgspec.Struct):
    type: str
    message: _Message | None = None
    index: int | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _ErrorBody | None = None


_MESSAGE_DECODER = msgspec.json.Decoder(_Message)
_EVENT_DECODER = msgspec.json.Decoder(_Event)
_ENCODER = msgspec.json.Encoder()


# --- the adapter -----------------------------------------------------------------------------


class AnthropicAdapter(Adapter):
    family = "anthropic"

    def build_chat(self, request: ChatRequest, deployment: Deployment) -> UpstreamRequest:
        if request.dialect == "anthropic" and request.raw is not None:
            body = dict(request.raw)
            body["model"] = deployment.model
            if request.stream:
                body["stream"] = True
            else:
                body.pop("stream", None)
        else:
            body = _build_body(request, deployment)
        if request.prompt_cache is not None and deployment.prompt_cache:
            place_breakpoints(body, request.prompt_cache, deployment.model)
        base = deployment.provider.base_url.removesuffix("/v1")
        return UpstreamRequest(
            method="POST",
            url=f"{base}/v1/messages",
            headers=_headers(request, deployment),
            body=_ENCODER.encode(body),
            stream=request.stream,
        )

    def parse_chat(self, response: UpstreamResponse, deployment: Deployment) -> ChatResponse:
        try:
            msg = _MESSAGE_DECODER.decode(response.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProviderError(
                "invalid_response",
                f"the Anthropic response is not a valid message: {exc}",
                upstream_status=response.status,
            ) from None
        if msg.type != "message":
            raise ProviderError(
                "invalid_response",
                f"the Anthropic response has type {msg.type!r}, expected 'message'",
                upstream_status=response.status,
            )
        return ChatResponse(
            id=msg.id,
            model=msg.model,
            parts=_response_parts(msg.content),
            finish_reason=_finish(msg.stop_reason),
            stop_sequence=msg.stop_sequence,
            usage=_usage(msg.usage),
            created=int(time.time()),
            family=self.family,
            raw=response.body,
        )

    def stream_parser(self, request: ChatRequest, deployment: Deployment) -> StreamParser:
        return AnthropicStreamParser(deployment.name)

    def classify(self, response: UpstreamResponse, deployment: Deployment) -> ProviderError:
        etype, message = _error_fields(response.body)
        kind = _ERROR_KINDS.get(etype or "") or _status_kind(response.status)
        if kind == "server_error" and response.status in (503, 504, 529):
            kind = _status_kind(response.status)
        if kind == "bad_request" and _CONTEXT_RE.search(message):
            kind = "context_too_long"
        key = deployment.provider.api_key
        text = _safe_message(message, key.reveal() if key else None) or (
            f"the Anthropic upstream answered HTTP {response.status}"
        )
        return ProviderError(
            kind,
            text,
            upstream_status=response.status,
            retry_after=retry_after(response.headers),
            deployment=deployment.name,
            code=etype,
        )


# --- request building ------------------------------------------------------------------------


def _headers(request: ChatRequest, deployment: Deployment) -> dict[str, str]:
    provider = deployment.provider
    headers = {"content-type": "application/json", "anthropic-version": provider.anthropic_version}
    if provider.api_key is not None:
        headers["x-api-key"] = provider.api_key.reveal()
    for name, value in provider.headers:
        headers[name] = value.reveal() if isinstance(value, Secret) else value
    for name, value in (request.passthrough_headers or {}).items():
        lname = name.lower()
        if not lname.startswith("anthropic-") or lname in _PROTECTED_HEADERS:
            continue
        headers[lname] = f"{headers[lname]},{value}" if lname in headers else value
    return headers


def _build_body(request: ChatRequest, deployment: Deployment) -> dict[str, Any]:
    all_extras = request.dialect == "anthropic"
    system, messages = _convert_messages(request.messages, all_extras)
    if not messages:
        raise ProviderError("bad_request", "the request needs at least one user or assistant message")
    max_tokens = deployment.max_output_tokens if request.max_tokens is None else request.max_tokens
    body: dict[str, Any] = {"model": deployment.model, "max_tokens": max_tokens, "messages": messages}
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        system = _add_instruction(system, JSON_ONLY_INSTRUCTION)
    if system:
        body["system"] = system
    if fmt is not None and fmt.type == "json_schema":
        body["output_config"] = {"format": _output_format(fmt)}
    choice = None
    if request.tools:
        body["tools"] = [_tool(t, all_extras) for t in request.tools]
        choice = _tool_choice(request.tool_choice, request.parallel_tool_calls)
        if choice is not None:
            body["tool_choice"] = choice
    # The API refuses extended thinking together with a forced tool call; the forced call wins.
    forced = choice is not None and choice["type"] in ("any", "tool")
    thinking = None if forced else _thinking(request.thinking, max_tokens)
    if thinking is not None:
        body["thinking"] = thinking
    _sampling(body, request, thinking_on=thinking is not None and thinking["type"] == "enabled")
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    return body


def _convert_messages(
    messages: list[Message], all_extras: bool
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    system: list[TextPart] = []
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role in ("system", "developer"):
            system.extend(p for p in msg.parts if isinstance(p, TextPart) and p.text)
            continue
        blocks = [b for b in (_block(p, all_extras) for p in msg.parts) if b is not None]
        if msg.extra and _EXTRA_KEY in msg.extra:
            _reinsert(blocks, msg.extra[_EXTRA_KEY])
        if not blocks:
            continue
        role = "assistant" if msg.role == "assistant" else "user"
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        content = turn["content"]
        if turn["role"] == "user" and any(b["type"] == "tool_result" for b in content):
            content.sort(key=lambda b: b["type"] != "tool_result")
    return _system(system, all_extras), out


def _reinsert(blocks: list[dict[str, Any]], kept: Any) -> None:
    for item in kept:
        if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], dict):
            position = item[0] if isinstance(item[0], int) else len(blocks)
            blocks.insert(min(max(position, 0), len(blocks)), item[1])


def _system(parts: list[TextPart], all_extras: bool) -> str | list[dict[str, Any]] | None:
    if not parts:
        return None
    extras = [_extras(p.extra, all_extras) for p in parts]
    if any(extras):
        return [{**e, "type": "text", "text": p.text} for p, e in zip(parts, extras, strict=True)]
    return "\n\n".join(p.text for p in parts)


def _add_instruction(system: str | list[dict[str, Any]] | None, text: str) -> str | list[dict[str, Any]]:
    if system is None:
        return text
    if isinstance(system, str):
        return f"{system}\n\n{text}"
    return [*system, {"type": "text", "text": text}]


def _extras(extra: dict[str, Any] | None, all_extras: bool) -> dict[str, Any]:
    """Part leftovers to put on the block: all of them when the client spoke Anthropic,
    else only ``cache_control`` (which some OpenAI-style clients also send)."""
    if not extra:
        return {}
    if all_extras:
        return {k: v for k, v in extra.items() if k != _EXTRA_KEY}
    return {"cache_control": extra["cache_control"]} if "cache_control" in extra else {}


def _block(part: Part, all_extras: bool) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        if not part.text:
            return None
        return {**_extras(part.extra, all_extras), "type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return _image(part, all_extras)
    if isinstance(part, MediaPart):
        return anthropic_block(part, "messages")
    if isinstance(part, ToolCallPart):
        return {
            **_extras(part.extra, all_extras),
            "type": "tool_use",
            "id": tool_id(part.id),
            "name": part.name,
            "input": _arguments(part),
        }
    if isinstance(part, ToolResultPart):
        return _tool_result(part, all_extras)
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.redacted}
    if part.signature:
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    return None


def _image(part: ImagePart, all_extras: bool) -> dict[str, Any] | None:
    source: dict[str, Any]
    if part.data:
        source = {"type": "base64", "media_type": part.media_type or "image/png", "data": part.data}
    elif part.url:
        m = _DATA_URL.match(part.url)
        if m:
            source = {"type": "base64", "media_type": m.group(1), "data": m.group(2)}
        else:
            source = {"type": "url", "url": part.url}
    else:
        return None
    return {**_extras(part.extra, all_extras), "type": "image", "source": source}


def _tool_result(part: ToolResultPart, all_extras: bool) -> dict[str, Any]:
    block: dict[str, Any] = {
        **_extras(part.extra, all_extras),
        "type": "tool_result",
        "tool_use_id": tool_id(part.tool_call_id),
    }
    items = [b for b in (_block(p, all_extras) for p in part.content) if b is not None]
    if part.extra and _EXTRA_KEY in part.extra:
        _reinsert(items, part.extra[_EXTRA_KEY])
    if items and all(b["type"] == "text" and len(b) == 2 for b in items):
        block["content"] = "\n".join(b["text"] for b in items)
    elif items:
        block["content"] = items
    if part.is_error:
        block["is_error"] = True
    return block


def _arguments(part: ToolCallPart) -> dict[str, Any]:
    if not part.arguments.strip():
        return {}
    try:
        value = msgspec.json.decode(part.arguments)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise ProviderError(
            "bad_request",
            f"the arguments of tool call {part.id!r} ({part.name}) are not a JSON object; "
            "Anthropic models can only replay tool calls whose arguments are a JSON object",
        )
    return value


def tool_id(value: str) -> str:
    """A tool-call id in the characters the Messages API accepts (``[A-Za-z0-9_-]+``)."""
    if value and not _TOOL_ID_BAD.search(value):
        return value
    return _TOOL_ID_BAD.sub("_", value) or "toolu_unnamed"


def _tool(tool: Tool, all_extras: bool) -> dict[str, Any]:
    schema = tool.parameters
    if schema.get("type") != "object":
        schema = {**schema, "type": "object"}
    out: dict[str, Any] = {**_extras(tool.extra, all_extras), "name": tool.name, "input_schema": schema}
    if tool.description:
        out["description"] = tool.description
    if all_extras and tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _tool_choice(choice: ToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if parallel is False else None
    if choice.mode == "none":
        return {"type": "none"}
    out: dict[str, Any]
    if choice.mode == "tool" and choice.name:
        out = {"type": "tool", "name": choice.name}
    else:
        out = {"type": "any" if choice.mode == "required" else "auto"}
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def _output_format(fmt: ResponseFormat) -> dict[str, Any]:
    return {"type": "json_schema", "schema": fmt.schema or {"type": "object"}}


def _thinking(thinking: Thinking | None, max_tokens: int) -> dict[str, Any] | None:
    if thinking is None:
        return None
    if not thinking.enabled:
        return {"type": "disabled"}
    budget = thinking.budget_tokens
    if budget is None:
        if thinking.effort == "minimal":
            return None
        budget = EFFORT_BUDGETS[thinking.effort or "medium"]
    budget = min(max(budget, MIN_THINKING_BUDGET), max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        return None
    return {"type": "enabled", "budget_tokens": budget}


def _sampling(body: dict[str, Any], request: ChatRequest, *, thinking_on: bool) -> None:
    if request.temperature is not None:
        temperature = min(max(request.temperature, 0.0), 1.0)
        if not thinking_on or temperature == 1.0:
            body["temperature"] = temperature
    if request.top_p is not None and (not thinking_on or request.top_p >= 0.95):
        body["top_p"] = request.top_p
    if request.top_k is not None and not thinking_on:
        body["top_k"] = request.top_k


# --- responses -------------------------------------------------------------------------------


def _response_parts(blocks: list[_Block]) -> list[Part]:
    parts: list[Part] = []
    for b in blocks:
        if b.type == "text":
            extra = {"citations": b.citations} if b.citations else None
            parts.append(TextPart(text=b.text or "", extra=extra))
        elif b.type == "tool_use":
            parts.append(ToolCallPart(id=b.id or "", name=b.name or "", arguments=_input_json(b.input)))
        elif b.type == "thinking":
            parts.append(ThinkingPart(text=b.thinking or "", signature=b.signature or None))
        elif b.type == "redacted_thinking":
            parts.append(ThinkingPart(redacted=b.data or ""))
    return parts


def _input_json(value: Any) -> str:
    if not value:
        return "{}"
    return _ENCODER.encode(value).decode()


def _finish(reason: str | None) -> FinishReason | None:
    if reason is None:
        return None
    return _STOP_REASONS.get(reason, "stop")


def _usage(u: _Usage) -> Usage:
    """Canonical usage: Anthropic's ``input_tokens`` leaves out cache reads and writes, the
    canonical count holds them; ``cache_creation`` splits the writes into 5-minute and 1-hour."""
    cache_read = u.cache_read_input_tokens or 0
    cache_write, write_1h = _writes(u)
    return Usage(
        input_tokens=(u.input_tokens or 0) + cache_read + cache_write,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=write_1h,
        output_tokens=u.output_tokens or 0,
        reasoning_tokens=_thinking_tokens(u),
    )


def _writes(u: _Usage) -> tuple[int, int]:
    """(all cache writes, the 1-hour part): the sum when given, else the TTL split's."""
    split = u.cache_creation
    if split is None:
        return u.cache_creation_input_tokens or 0, 0
    total = u.cache_creation_input_tokens
    if total is None:
        total = split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens
    return total, min(split.ephemeral_1h_input_tokens, total)


def _thinking_tokens(u: _Usage) -> int:
    details = u.output_tokens_details
    if details is None:
        return 0
    return min(details.thinking_tokens, u.output_tokens or 0)


# --- errors ----------------------------------------------------------------------------------


def _error_fields(body: bytes) -> tuple[str | None, str]:
    """(error type, message) from an error body; ``(None, "")`` when it is not the usual shape."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None, ""
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None, ""
    etype = err.get("type")
    message = err.get("message")
    return (etype if isinstance(etype, str) else None), (message if isinstance(message, str) else "")


def _status_kind(status: int) -> str:
    kind = _STATUS_KINDS.get(status)
    if kind is not None:
        return kind
    return "server_error" if status >= 500 else "bad_request"


def _safe_message(message: str, key: str | None) -> str:
    if key and key in message:
        message = message.replace(key, "[redacted]")
    message = _KEY_RE.sub("sk-ant-[redacted]", message)
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[: MAX_ERROR_MESSAGE - 1] + "…"
    return message


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after`` (seconds or HTTP date), else from the
    ``anthropic-ratelimit-*-reset`` times (RFC 3339) of the exhausted limits."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
            except (TypeError, ValueError):
                pass
    exhausted: list[float] = []
    other: list[float] = []
    for name in _RESET_HEADERS:
        reset = headers.get(f"anthropic-ratelimit-{name}-reset")
        if not reset:
            continue
        try:
            wait = max(datetime.fromisoformat(reset).timestamp() - now, 0.0)
        except ValueError:
            continue
        remaining = headers.get(f"anthropic-ratelimit-{name}-remaining")
        (exhausted if remaining == "0" else other).append(wait)
    if exhausted:
        return max(exhausted)
    return min(other) if other else None


def _stream_error(err: _ErrorBody, deployment: str | None) -> ProviderError:
    kind = _ERROR_KINDS.get(err.type, "server_error")
    if kind == "bad_request" and _CONTEXT_RE.search(err.message):
        kind = "context_too_long"
    message = _safe_message(err.message, None) or f"the Anthropic stream reported {err.type}"
    return ProviderError(kind, message, upstream_status=200, deployment=deployment, code=err.type)


# --- streaming -------------------------------------------------------------------------------


#: Frames a forwarded stream still parses after commit, by the ``type`` the parser reads:
#: ``message_delta`` (usage, stop reason), ``message_stop`` (the end), ``message_start`` (and its
#: usage), ``error``; and, to stay on the safe side, any ASCII letter spelled as an escape
#: (``"\u006dessage_stop"``). Content block events, pings and unknown events go out unread.
_PASSTHROUGH_MARKS = Marks(b"message_", b'"error"', (b"\\", re.compile(rb"\\u00[4-7]")))


class AnthropicStreamParser:
    """Turns Messages API stream events into canonical events (one instance per attempt)."""

    __slots__ = ("_blocks", "_deployment", "_done", "_tools")

    passthrough_marks = _PASSTHROUGH_MARKS

    def __init__(self, deployment: str | None = None) -> None:
        self._deployment = deployment
        #: block index -> tool ordinal (for tool_use), -1 for other blocks
        self._blocks: dict[int, int] = {}
        self._tools = 0
        self._done = False

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        if not frame.data:
            return []
        try:
            event = _EVENT_DECODER.decode(frame.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self._invalid(f"the Anthropic stream sent an event that cannot be read: {exc}") from None
        kind = event.type
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_start":
            return self._start(event)
        if kind == "message_start":
            return self._message_start(event)
        if kind == "message_delta":
            return _message_delta(event)
        if kind == "message_stop":
            self._done = True
        elif kind == "error":
            raise _stream_error(event.error or _ErrorBody(), self._deployment)
        return []

    def close(self) -> list[StreamEvent]:
        if not self._done:
            raise self._invalid("the Anthropic stream ended before message_stop")
        return []

    def _invalid(self, message: str) -> ProviderError:
        return ProviderError("invalid_response", message, upstream_status=200, deployment=self._deployment)

    def _message_start(self, event: _Event) -> list[StreamEvent]:
        msg = event.message
        if msg is None:
            raise self._invalid("the Anthropic stream sent message_start without a message")
        return [
            MessageStart(id=msg.id, model=msg.model, created=int(time.time())),
            UsageUpdate(usage=_usage(msg.usage)),
        ]

    def _start(self, event: _Event) -> list[StreamEvent]:
        block = event.content_block
        if block is None or event.index is None:
            raise self._invalid("the Anthropic stream sent content_block_start without a block")
        if block.type == "tool_use":
            ordinal = self._blocks[event.index] = self._tools
            self._tools += 1
            args = _input_json(block.input) if block.input else ""
            return [ToolCallDelta(index=ordinal, id=block.id or "", name=block.name or "", arguments=args)]
        self._blocks[event.index] = -1
        if block.type == "text":
            return [TextDelta(text=block.text)] if block.text else []
        if block.type == "thinking":
            if block.thinking or block.signature:
                return [ThinkingDelta(text=block.thinking or "", signature=block.signature or None)]
            return []
        if block.type == "redacted_thinking":
            return [ThinkingDelta(redacted=block.data or "")]
        return []

    def _delta(self, event: _Event) -> list[StreamEvent]:
        delta = event.delta
        if delta is None:
            raise self._invalid("the Anthropic stream sent content_block_delta without a delta")
        dtype = delta.type
        if dtype == "text_delta":
            return [TextDelta(text=delta.text)] if delta.text else []
        if dtype == "input_json_delta":
            ordinal = self._blocks.get(event.index if event.index is not None else -1, -1)
            if ordinal < 0 or not delta.partial_json:
                return []
            return [ToolCallDelta(index=ordinal, arguments=delta.partial_json)]
        if dtype == "thinking_delta":
            return [ThinkingDelta(text=delta.thinking)] if delta.thinking else []
        if dtype == "signature_delta":
            return [ThinkingDelta(signature=delta.signature)] if delta.signature else []
        return []


def _message_delta(event: _Event) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    delta = event.delta
    if delta is not None and delta.stop_reason is not None:
        out.append(
            FinishEvent(reason=_finish(delta.stop_reason) or "stop", stop_sequence=delta.stop_sequence)
        )
    u = event.usage
    if u is not None:
        # Without ``input_tokens`` the sum is the cache part only, below message_start's
        # count, which ``Usage.merge`` keeps.
        out.append(UsageUpdate(usage=_usage(u)))
    return out
