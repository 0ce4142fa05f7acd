"""The Anthropic Messages dialect: ``POST /v1/messages`` (and ``/v1/messages/count_tokens``).

Decoding keeps the client's body as ``raw`` so an Anthropic upstream receives it unchanged;
the canonical request built beside it serves routing, token estimates and other families.

How content maps to the canonical model:

* A user turn is split at its ``tool_result`` blocks: each becomes its own ``tool`` message
  (one :class:`ToolResultPart`), and the other blocks around them become ``user`` messages, in
  order. This is the shape every family expects; the Anthropic adapter merges them back.
* Blocks the canonical model has no part for (``document``, ``search_result``,
  ``server_tool_use``, web-search results, ``container_upload`` …) are kept on the message
  as ``extra["anthropic_blocks"] = [[position, block], ...]``, where ``position`` is the
  number of parts before the block. Inside a ``tool_result``, unknown content blocks are kept
  the same way on the :class:`ToolResultPart`. An Anthropic upstream puts them back in place;
  other families cannot express them and must reject a message or part that carries this key
  with a ``bad_request`` naming the block types, rather than drop them silently.
* Per-block leftovers (``cache_control``, ``citations``, ``caller`` …) go into the part's
  ``extra``. Server tools (``web_search_…`` etc.) stay only in ``raw``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any, Literal, NoReturn

import msgspec

from switchpoint.canonical import (
    ANTHROPIC_BLOCKS,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
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
from switchpoint.errors import BadRequest, SwitchpointError
from switchpoint.streaming import SSEFrame, encode

from .dialect import Dialect, StreamEncoder, decode_boundary

EXTRA_KEY = ANTHROPIC_BLOCKS

_STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "stop_sequence": "stop_sequence",
    "pause": "pause_turn",
    "error": "end_turn",
}
#: Error ``type`` by HTTP status, from the published ``ErrorType`` enum. Anthropic's docs also
#: name ``request_too_large`` for 413, but that one comes from their CDN and is not in the API's
#: enum, so a 413 here is an ``invalid_request_error`` (clients map errors by status anyway).
_ERROR_TYPES: dict[int, str] = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_EFFORTS: dict[str, Literal["low", "medium", "high"]] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
_TOOL_CHOICES: dict[str, Literal["auto", "none", "required", "tool"]] = {
    "auto": "auto",
    "any": "required",
    "tool": "tool",
    "none": "none",
}
_ALLOWED_TOOL_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_ENCODER = msgspec.json.Encoder()


def _fail(message: str, param: str | None = None) -> NoReturn:
    raise BadRequest(f"{param}: {message}" if param else message, param=param)


def _leftovers(block: dict[str, Any], core: tuple[str, ...]) -> dict[str, Any] | None:
    extra = {k: v for k, v in block.items() if k not in core}
    return extra or None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


# --- decoding --------------------------------------------------------------------------------


def _text(block: dict[str, Any], path: str) -> TextPart:
    text = block.get("text")
    if not isinstance(text, str):
        _fail("a text block needs a string 'text'", f"{path}.text")
    return TextPart(text=text, extra=_leftovers(block, ("type", "text")))


def _image(block: dict[str, Any], path: str) -> ImagePart:
    source = block.get("source")
    if not isinstance(source, dict):
        _fail("an image block needs a 'source' object", f"{path}.source")
    extra = _leftovers(block, ("type", "source"))
    stype = source.get("type")
    if stype == "base64":
        data, media_type = source.get("data"), source.get("media_type")
        if not isinstance(data, str) or not data:
            _fail("a base64 image source needs string 'data'", f"{path}.source.data")
        if not isinstance(media_type, str):
            _fail("a base64 image source needs a 'media_type'", f"{path}.source.media_type")
        return ImagePart(data=data, media_type=media_type, extra=extra)
    if stype == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url:
            _fail("a url image source needs a string 'url'", f"{path}.source.url")
        return ImagePart(url=url, extra=extra)
    _fail("image source type must be 'base64' or 'url'", f"{path}.source.type")


def _tool_use(block: dict[str, Any], path: str) -> ToolCallPart:
    tid, name, args = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(tid, str) or not tid:
        _fail("a tool_use block needs a string 'id'", f"{path}.id")
    if not isinstance(name, str) or not name:
        _fail("a tool_use block needs a string 'name'", f"{path}.name")
    if not isinstance(args, dict):
        _fail("a tool_use block needs an object 'input'", f"{path}.input")
    return ToolCallPart(
        id=tid,
        name=name,
        arguments=_ENCODER.encode(args).decode(),
        extra=_leftovers(block, ("type", "id", "name", "input")),
    )


def _thinking(block: dict[str, Any], path: str) -> ThinkingPart:
    if block["type"] == "redacted_thinking":
        data = block.get("data")
        if not isinstance(data, str):
            _fail("a redacted_thinking block needs string 'data'", f"{path}.data")
        return ThinkingPart(redacted=data)
    text, signature = block.get("thinking"), block.get("signature")
    if not isinstance(text, str):
        _fail("a thinking block needs a string 'thinking'", f"{path}.thinking")
    if signature is not None and not isinstance(signature, str):
        _fail("'signature' must be a string", f"{path}.signature")
    return ThinkingPart(text=text, signature=signature or None)


def _tool_result(block: dict[str, Any], path: str) -> ToolResultPart:
    tid = block.get("tool_use_id")
    if not isinstance(tid, str) or not tid:
        _fail("a tool_result block needs a string 'tool_use_id'", f"{path}.tool_use_id")
    is_error = block.get("is_error", False)
    if not isinstance(is_error, bool):
        _fail("'is_error' must be a boolean", f"{path}.is_error")
    content = block.get("content")
    parts: list[TextPart | ImagePart] = []
    kept: list[list[Any]] = []
    if isinstance(content, str):
        if content:
            parts.append(TextPart(text=content))
    elif isinstance(content, list):
        for j, item in enumerate(content):
            ipath = f"{path}.content.{j}"
            itype = _block_type(item, ipath)
            if itype == "text":
                parts.append(_text(item, ipath))
            elif itype == "image":
                parts.append(_image(item, ipath))
            else:
                kept.append([len(parts), item])
    elif content is not None:
        _fail("tool_result content must be a string or an array of blocks", f"{path}.content")
    extra = _leftovers(block, ("type", "tool_use_id", "content", "is_error"))
    if kept:
        extra = {**(extra or {}), EXTRA_KEY: kept}
    return ToolResultPart(tool_call_id=tid, content=parts, is_error=is_error, extra=extra)


def _block_type(block: Any, path: str) -> str:
    if not isinstance(block, dict):
        _fail("each content block must be an object", path)
    btype = block.get("type")
    if not isinstance(btype, str):
        _fail("each content block needs a string 'type'", f"{path}.type")
    return btype


_PART_DECODERS: dict[str, Callable[[dict[str, Any], str], Part]] = {
    "text": _text,
    "image": _image,
    "tool_use": _tool_use,
    "thinking": _thinking,
    "redacted_thinking": _thinking,
}


class _Turn:
    """Builds the canonical messages of one Anthropic turn."""

    __slots__ = ("kept", "out", "parts", "role")

    def __init__(self, role: Literal["user", "assistant"], out: list[Message]) -> None:
        self.role: Literal["user", "assistant"] = role
        self.out = out
        self.parts: list[Part] = []
        self.kept: list[list[Any]] = []

    def flush(self) -> None:
        if self.parts or self.kept:
            extra = {EXTRA_KEY: self.kept} if self.kept else None
            self.out.append(Message(role=self.role, parts=self.parts, extra=extra))
        self.parts, self.kept = [], []


def _decode_turn(msg: Any, path: str, out: list[Message]) -> None:
    if not isinstance(msg, dict):
        _fail("each message must be an object", path)
    role = msg.get("role")
    if role not in ("user", "assistant"):
        _fail("role must be 'user' or 'assistant'", f"{path}.role")
    content = msg.get("content")
    if isinstance(content, str):
        out.append(Message(role=role, parts=[TextPart(text=content)]))
        return
    if not isinstance(content, list):
        _fail("content must be a string or an array of content blocks", f"{path}.content")
    turn = _Turn(role, out)
    for j, block in enumerate(content):
        bpath = f"{path}.content.{j}"
        btype = _block_type(block, bpath)
        if btype == "tool_result":
            if role != "user":
                _fail("tool_result blocks belong in user messages", f"{bpath}.type")
            turn.flush()
            out.append(Message(role="tool", parts=[_tool_result(block, bpath)]))
            continue
        decoder = _PART_DECODERS.get(btype)
        if decoder is None:
            turn.kept.append([len(turn.parts), block])
        else:
            turn.parts.append(decoder(block, bpath))
    turn.flush()


def _decode_system(system: Any) -> Message | None:
    if system is None:
        return None
    if isinstance(system, str):
        return Message(role="system", parts=[TextPart(text=system)]) if system else None
    if not isinstance(system, list):
        _fail("system must be a string or an array of text blocks", "system")
    parts: list[Part] = []
    for i, block in enumerate(system):
        if _block_type(block, f"system.{i}") != "text":
            _fail("system blocks must have type 'text'", f"system.{i}.type")
        parts.append(_text(block, f"system.{i}"))
    return Message(role="system", parts=parts) if parts else None


def _decode_tools(tools: Any) -> list[Tool] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        _fail("tools must be an array", "tools")
    out: list[Tool] = []
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        if not isinstance(tool, dict):
            _fail("each tool must be an object", path)
        ttype = tool.get("type")
        if ttype is not None and not isinstance(ttype, str):
            _fail("a tool's 'type' must be a string", f"{path}.type")
        if ttype not in (None, "custom"):
            continue  # a server tool: only an Anthropic upstream runs it (it stays in raw)
        name, schema, desc = tool.get("name"), tool.get("input_schema"), tool.get("description")
        if not isinstance(name, str) or not name:
            _fail("a tool needs a string 'name'", f"{path}.name")
        if not isinstance(schema, dict):
            _fail("a tool needs an object 'input_schema'", f"{path}.input_schema")
        if desc is not None and not isinstance(desc, str):
            _fail("'description' must be a string", f"{path}.description")
        strict = tool.get("strict")
        out.append(
            Tool(
                name=name,
                description=desc,
                parameters=schema,
                strict=strict if isinstance(strict, bool) else None,
                extra=_leftovers(tool, ("type", "name", "input_schema", "description", "strict")),
            )
        )
    return out or None


def _decode_tool_choice(choice: Any) -> tuple[ToolChoice | None, bool | None]:
    if choice is None:
        return None, None
    if not isinstance(choice, dict):
        _fail("tool_choice must be an object", "tool_choice")
    ctype = choice.get("type")
    mode = _TOOL_CHOICES.get(ctype) if isinstance(ctype, str) else None
    if mode is None:
        _fail("tool_choice.type must be one of auto, any, tool, none", "tool_choice.type")
    name = choice.get("name")
    if mode == "tool" and (not isinstance(name, str) or not name):
        _fail("tool_choice of type 'tool' needs a 'name'", "tool_choice.name")
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        _fail("must be a boolean", "tool_choice.disable_parallel_tool_use")
    return ToolChoice(mode=mode, name=name if mode == "tool" else None), (False if disable else None)


def _decode_thinking(thinking: Any, output_config: Any) -> Thinking | None:
    result: Thinking | None = None
    if thinking is not None:
        if not isinstance(thinking, dict):
            _fail("thinking must be an object", "thinking")
        ttype = thinking.get("type")
        if ttype == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
                _fail("budget_tokens must be an integer of at least 1024", "thinking.budget_tokens")
            result = Thinking(enabled=True, budget_tokens=budget)
        elif ttype == "disabled":
            result = Thinking(enabled=False)
        elif ttype == "adaptive":
            result = Thinking(enabled=True)
        else:
            _fail("thinking.type must be 'enabled', 'disabled' or 'adaptive'", "thinking.type")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if isinstance(effort, str) and effort in _EFFORTS:
        if result is None:
            result = Thinking(enabled=True)
        result.effort = _EFFORTS[effort]
    return result


def _decode_output_format(output_config: Any) -> ResponseFormat | None:
    if output_config is None:
        return None
    if not isinstance(output_config, dict):
        _fail("output_config must be an object", "output_config")
    fmt = output_config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        _fail("output_config.format.type must be 'json_schema'", "output_config.format.type")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        _fail("must be an object", "output_config.format.schema")
    return ResponseFormat(type="json_schema", schema=schema)


def _optional(data: dict[str, Any], key: str, check: Any, what: str) -> Any:
    value = data.get(key)
    if value is not None and not check(value):
        _fail(f"must be {what}", key)
    return value


def _decode_sampling(data: dict[str, Any]) -> dict[str, Any]:
    stops = _optional(
        data,
        "stop_sequences",
        lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
        "an array of strings",
    )
    top_k = _optional(data, "top_k", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
    stream = _optional(data, "stream", lambda v: isinstance(v, bool), "a boolean")
    metadata = _optional(data, "metadata", lambda v: isinstance(v, dict), "an object")
    user = metadata.get("user_id") if metadata else None
    if user is not None and not isinstance(user, str):
        _fail("must be a string", "metadata.user_id")
    return {
        "temperature": _optional(data, "temperature", _is_number, "a number"),
        "top_p": _optional(data, "top_p", _is_number, "a number"),
        "top_k": top_k,
        "stop": stops or None,
        "stream": bool(stream),
        "user": user,
    }


def decode_messages_body(body: bytes, headers: Mapping[str, str], *, require_max_tokens: bool) -> ChatRequest:
    """A Messages API body as a canonical request (``raw`` = the decoded body)."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        _fail("the request body is not valid JSON")
    if not isinstance(data, dict):
        _fail("the request body must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        _fail("a model name (string) is required", "model")
    max_tokens = data.get("max_tokens")
    if (max_tokens is not None or require_max_tokens) and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0
    ):
        _fail("must be an integer of at least 0", "max_tokens")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        _fail("must be a non-empty array of messages", "messages")
    messages: list[Message] = []
    system = _decode_system(data.get("system"))
    if system is not None:
        messages.append(system)
    for i, msg in enumerate(raw_messages):
        _decode_turn(msg, f"messages.{i}", messages)
    choice, parallel = _decode_tool_choice(data.get("tool_choice"))
    beta = _header(headers, "anthropic-beta")
    return ChatRequest(
        model=model,
        messages=messages,
        tools=_decode_tools(data.get("tools")),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        response_format=_decode_output_format(data.get("output_config")),
        max_tokens=max_tokens,
        thinking=_decode_thinking(data.get("thinking"), data.get("output_config")),
        **_decode_sampling(data),
        dialect="anthropic",
        raw=data,
        passthrough_headers={"anthropic-beta": beta} if beta else None,
    )


def _read_count_tokens(body: bytes, headers: Mapping[str, str]) -> ChatRequest:
    return decode_messages_body(body, headers, require_max_tokens=False)


# --- encoding --------------------------------------------------------------------------------


def tool_id(value: str | None) -> str:
    """A tool-use id in the characters Anthropic clients accept (``[A-Za-z0-9_-]+``)."""
    if not value:
        return "toolu_" + secrets.token_hex(12)
    if all(c in _ALLOWED_TOOL_ID for c in value):
        return value
    return "".join(c if c in _ALLOWED_TOOL_ID else "_" for c in value)


def message_id(value: str) -> str:
    if value.startswith("msg_"):
        return value
    return "msg_" + (tool_id(value) if value else secrets.token_hex(12))


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(arguments) if arguments.strip() else {}
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _content_block(part: Part) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        # No ``citations`` key without citations: the published schema allows null, but
        # clients (Vercel's @ai-sdk/anthropic) accept only an array or the key absent.
        cites = part.extra.get("citations") if part.extra else None
        if isinstance(cites, list) and cites:
            return {"type": "text", "text": part.text, "citations": cites}
        return {"type": "text", "text": part.text}
    if isinstance(part, ThinkingPart):
        if not (part.text or part.signature or part.redacted):
            return None
        if part.redacted:
            return {"type": "redacted_thinking", "data": part.redacted}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    if isinstance(part, ToolCallPart):
        return {
            "type": "tool_use",
            "id": tool_id(part.id),
            "name": part.name,
            "input": _tool_input(part.arguments),
            "caller": {"type": "direct"},
        }
    return None


def usage_body(u: Usage) -> dict[str, Any]:
    """An Anthropic ``Usage`` as the API sends it: ``input_tokens`` excludes cache reads and
    writes (the canonical count includes them), ``cache_creation`` splits the writes by TTL,
    ``output_tokens_details.thinking_tokens`` (read by the SDKs) is the reasoning part of the
    output, sent when there is one."""
    body = delta_usage_body(u)
    body["inference_geo"] = None
    body["service_tier"] = None
    return body


def delta_usage_body(u: Usage) -> dict[str, Any]:
    """A ``message_delta``'s ``MessageDeltaUsage`` (cumulative counts), with the TTL split too:
    a translated stream often learns its usage only at the end (OpenAI upstreams)."""
    body: dict[str, Any] = {
        "input_tokens": max(u.input_tokens - u.cached_input_tokens - u.cache_write_tokens, 0),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
        "cache_creation": cache_creation(u),
        "server_tool_use": None,
    }
    if u.reasoning_tokens:
        body["output_tokens_details"] = {"thinking_tokens": min(u.reasoning_tokens, u.output_tokens)}
    return body


def cache_creation(u: Usage) -> dict[str, int]:
    """The cache writes by TTL: the 1-hour part, and the rest written for 5 minutes."""
    write_1h = min(u.cache_write_1h_tokens, u.cache_write_tokens)
    return {
        "ephemeral_5m_input_tokens": u.cache_write_tokens - write_1h,
        "ephemeral_1h_input_tokens": write_1h,
    }


def _stop_reason(reason: FinishReason | None) -> str:
    return _STOP_REASONS.get(reason or "stop", "end_turn")


def error_body(err: SwitchpointError) -> dict[str, Any]:
    etype = _ERROR_TYPES.get(err.status) or ("api_error" if err.status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": etype, "message": err.message}, "request_id": None}


class AnthropicDialect(Dialect):
    name = "anthropic"

    def read_chat(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        return decode_messages_body(body, headers, require_max_tokens=True)

    def decode_count_tokens(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """``POST /v1/messages/count_tokens``: as :meth:`decode_chat`, ``max_tokens`` optional,
        behind the same decode boundary."""
        return decode_boundary(_read_count_tokens, body, headers)

    def encode_chat(self, response: ChatResponse, request: ChatRequest) -> bytes:
        if response.family == "anthropic" and response.raw is not None:
            return response.raw
        content = [b for b in (_content_block(p) for p in response.parts) if b is not None]
        reason = _stop_reason(response.finish_reason)
        return _ENCODER.encode(
            {
                "id": message_id(response.id),
                "type": "message",
                "role": "assistant",
                "model": response.model or request.model,
                "content": content,
                "stop_reason": reason,
                "stop_sequence": response.stop_sequence if reason == "stop_sequence" else None,
                "stop_details": None,
                "container": None,
                "usage": usage_body(response.usage),
            }
        )

    def stream_encoder(self, request: ChatRequest) -> StreamEncoder:
        return AnthropicStreamEncoder(request)

    def render_error(self, err: SwitchpointError) -> tuple[int, bytes]:
        return err.status, _ENCODER.encode(error_body(err))


# --- streaming -------------------------------------------------------------------------------

_Block = Literal["text", "thinking", "tool", "redacted"]


class AnthropicStreamEncoder(StreamEncoder):
    """Messages API stream events for one client stream.

    Passthrough (upstream family ``anthropic``): every upstream frame is forwarded unchanged.
    Translated: blocks are opened and closed as the kind of content changes; ``message_delta``
    (stop reason and final usage) is held until :meth:`finish`, because some upstreams report
    usage only after their finish reason.
    """

    def __init__(self, request: ChatRequest) -> None:
        self._model = request.model
        self._passthrough = False
        self._started = False
        self._stopped = False
        self._id = ""
        self._index = -1
        self._open: _Block | None = None
        self._tool = -1
        self._signed = False
        self._usage = Usage()
        self._reason: FinishReason | None = None
        self._stop_sequence: str | None = None

    def commit(self, family: str) -> None:
        self._passthrough = family == "anthropic"

    def encode(self, events: list[StreamEvent], frame: SSEFrame | None) -> bytes:
        if self._passthrough:
            return frame.raw if frame is not None else b""
        if self._stopped:
            return b""
        out: list[bytes] = []
        if not self._started:
            for event in events:
                if isinstance(event, MessageStart):
                    self._id, self._model = event.id, event.model or self._model
                elif isinstance(event, UsageUpdate):
                    self._usage = self._usage.merge(event.usage)
            self._message_start(out)
        for event in events:
            self._event(event, out)
        return b"".join(out)

    def finish(self) -> bytes:
        if self._passthrough or self._stopped:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._message_start(out)
        self._close(out)
        reason = _stop_reason(self._reason)
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": reason,
                "stop_sequence": self._stop_sequence if reason == "stop_sequence" else None,
                "stop_details": None,
                "container": None,
            },
            "usage": delta_usage_body(self._usage),
        }
        out.append(encode(_ENCODER.encode(delta), "message_delta"))
        out.append(encode(b'{"type":"message_stop"}', "message_stop"))
        self._stopped = True
        return b"".join(out)

    def error(self, err: SwitchpointError) -> bytes:
        self._stopped = True
        return encode(_ENCODER.encode(error_body(err)), "error")

    # --- translated events ---

    def _message_start(self, out: list[bytes]) -> None:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(self._id),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "stop_details": None,
            "container": None,
            "usage": usage_body(self._usage),
        }
        out.append(encode(_ENCODER.encode({"type": "message_start", "message": message}), "message_start"))

    def _event(self, event: StreamEvent, out: list[bytes]) -> None:
        if isinstance(event, TextDelta):
            if event.text:
                if self._open != "text":
                    self._start(out, "text", {"type": "text", "text": ""})
                self._delta(out, {"type": "text_delta", "text": event.text})
        elif isinstance(event, ThinkingDelta):
            self._thinking(event, out)
        elif isinstance(event, ToolCallDelta):
            if self._open != "tool" or self._tool != event.index:
                block = {
                    "type": "tool_use",
                    "id": tool_id(event.id),
                    "name": event.name or "",
                    "input": {},
                    "caller": {"type": "direct"},
                }
                self._start(out, "tool", block)
                self._tool = event.index
            if event.arguments:
                self._delta(out, {"type": "input_json_delta", "partial_json": event.arguments})
        elif isinstance(event, UsageUpdate):
            self._usage = self._usage.merge(event.usage)
        elif isinstance(event, FinishEvent):
            self._close(out)
            self._reason, self._stop_sequence = event.reason, event.stop_sequence

    def _thinking(self, event: ThinkingDelta, out: list[bytes]) -> None:
        if event.redacted:
            self._start(out, "redacted", {"type": "redacted_thinking", "data": event.redacted})
            self._close(out)
        if event.text:
            if self._open != "thinking" or self._signed:
                self._start(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self._delta(out, {"type": "thinking_delta", "thinking": event.text})
        if event.signature:
            if self._open != "thinking" or self._signed:
                self._start(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self._delta(out, {"type": "signature_delta", "signature": event.signature})
            self._signed = True

    def _start(self, out: list[bytes], kind: _Block, block: dict[str, Any]) -> None:
        self._close(out)
        self._index += 1
        self._open = kind
        self._signed = False
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        out.append(encode(_ENCODER.encode(start), "content_block_start"))

    def _delta(self, out: list[bytes], delta: dict[str, Any]) -> None:
        event = {"type": "content_block_delta", "index": self._index, "delta": delta}
        out.append(encode(_ENCODER.encode(event), "content_block_delta"))

    def _close(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        out.append(
            encode(
                _ENCODER.encode({"type": "content_block_stop", "index": self._index}), "content_block_stop"
            )
        )
        self._open = None
        self._tool = -1
