"""The Anthropic wire: messages (plain and streamed) and token counting."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .common import Frames, Headers, SimError, bearer, header, invalid_body, new_id
from .content import Answer, ChatCall, Conversation, ToolSpec, Usage, prompt_tokens

_THINKING_TOKENS = 12
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


class _Block(msgspec.Struct):
    type: str
    text: str | None = None
    thinking: str | None = None
    content: str | list[_Block] | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None


class _Message(msgspec.Struct):
    role: Literal["user", "assistant"]
    content: str | list[_Block]


class _Tool(msgspec.Struct):
    name: str
    input_schema: dict[str, Any] | None = None
    type: str | None = None
    cache_control: dict[str, Any] | None = None


class MessagesBody(msgspec.Struct):
    model: str
    messages: Annotated[list[_Message], msgspec.Meta(min_length=1)]
    #: 0 is allowed: it warms the prompt cache without generating anything.
    max_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None
    system: str | list[_Block] | None = None
    tools: list[_Tool] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None
    stream: bool | None = None
    cache_control: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(MessagesBody)
_encode = msgspec.json.encode

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    408: ("timeout_error", "Request timeout"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("overloaded_error", "Overloaded"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(err: SimError) -> bytes:
    kind, default = _ERRORS.get(
        err.status, ("invalid_request_error" if err.status < 500 else "api_error", "Error")
    )
    return _encode(
        {
            "type": "error",
            "error": {"type": kind, "message": err.message or default},
            "request_id": new_id("req_"),
        }
    )


def check_auth(headers: Headers, query: bytes) -> SimError | None:
    if not (header(headers, b"x-api-key") or bearer(headers)):
        return SimError(401, "x-api-key header is required")
    if not header(headers, b"anthropic-version"):
        return SimError(400, "anthropic-version: header is required")
    return None


def response_headers() -> Headers:
    return [(b"request-id", new_id("req_").encode())]


def _cache_breakpoint(conv: Conversation, control: dict[str, Any] | None, at: int) -> None:
    """A ``cache_control`` at prefix boundary ``at`` (0: the tools, k + 1: turn k)."""
    if control is not None:
        conv.cache_control = True
        one_hour = control.get("ttl") == "1h"
        conv.cache_1h = conv.cache_1h or one_hour
        conv.breakpoints[at] = conv.breakpoints.get(at, False) or one_hour


def _block_text(block: _Block, conv: Conversation, at: int) -> str:
    _cache_breakpoint(conv, block.cache_control, at)
    kind = block.type
    if kind == "text":
        return block.text or ""
    if kind == "image":
        conv.images += 1
        return ""
    if kind == "document":
        conv.documents += 1
        return ""
    if kind in ("thinking", "redacted_thinking"):
        return block.thinking or ""
    if kind in ("tool_use", "server_tool_use"):
        return (block.name or "") + (_encode(block.input).decode() if block.input else "")
    if kind == "tool_result":
        return _content_text(block.content, conv, at)
    return ""


def _content_text(content: str | list[_Block] | None, conv: Conversation, at: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(t for t in (_block_text(b, conv, at) for b in content) if t)


def _last_turn(last: _Message, conv: Conversation) -> None:
    conv.ends_with_user = last.role == "user"
    if last.role == "assistant" and conv.turns[-1][1].lstrip().startswith(("{", "[")):
        conv.prefill = conv.turns[-1][1]  # the answer continues a JSON document
        conv.json_mode = True
    if last.role != "user":
        return
    if isinstance(last.content, str):
        conv.last_user_text = last.content
        return
    results = [b for b in last.content if b.type == "tool_result"]
    if results:
        conv.tool_result = _content_text(results[-1].content, Conversation(model=""), 0)
    conv.last_user_text = "\n".join(b.text or "" for b in last.content if b.type == "text")


def _tools(body: MessagesBody, conv: Conversation) -> None:
    for i, tool in enumerate(body.tools or ()):
        _cache_breakpoint(conv, tool.cache_control, 0)
        if tool.type not in (None, "custom"):
            continue
        if tool.input_schema is None:
            raise SimError(
                400, f"tools.{i}.custom.input_schema: Field required", param=f"tools.{i}.input_schema"
            )
        conv.tools.append(ToolSpec(tool.name, tool.input_schema))
        conv.tool_chars += len(tool.name) + len(_encode(tool.input_schema))
    choice = body.tool_choice
    if not choice:
        return
    kind = choice.get("type")
    if kind == "none":
        conv.tool_mode = "none"
    elif kind == "any":
        conv.tool_mode = "any"
    elif kind == "tool":
        name = choice.get("name")
        if not any(t.name == name for t in conv.tools):
            raise SimError(400, f"tool_choice: tool {name!r} not found in tools", param="tool_choice")
        conv.tool_mode, conv.forced_tool = "any", str(name)
    elif kind != "auto":
        raise SimError(400, f"tool_choice.type: unexpected value {kind!r}", param="tool_choice")
    if choice.get("disable_parallel_tool_use"):
        conv.parallel = False


def _options(body: MessagesBody, conv: Conversation, need_max_tokens: bool) -> None:
    if need_max_tokens and body.max_tokens is None:
        raise SimError(400, "max_tokens: Field required", param="max_tokens")
    thinking = body.thinking
    if thinking and thinking.get("type") in ("enabled", "adaptive"):
        budget = thinking.get("budget_tokens")
        if thinking.get("type") == "enabled":
            if not isinstance(budget, int) or budget < 1024:
                raise SimError(
                    400, "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
                )
            if need_max_tokens and body.max_tokens is not None and body.max_tokens <= budget:
                raise SimError(400, "`max_tokens` must be greater than `thinking.budget_tokens`.")
        conv.thinking_tokens = _THINKING_TOKENS
    for fmt in ((body.output_config or {}).get("format"), body.output_format):
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = fmt.get("schema")
            conv.json_mode = True
            conv.json_schema = schema if isinstance(schema, dict) else {"type": "object"}
    conv.max_tokens = body.max_tokens


def parse_chat(raw: bytes, *, count_only: bool = False) -> ChatCall:
    try:
        body = _DECODER.decode(raw)
    except msgspec.MsgspecError as exc:
        raise invalid_body(exc) from None
    conv = Conversation(model=body.model, explicit_cache=True, family="anthropic")
    if body.system is not None:
        conv.turns.append(("system", _content_text(body.system, conv, 1)))
    for msg in body.messages:
        conv.turns.append((msg.role, _content_text(msg.content, conv, len(conv.turns) + 1)))
    # A top-level cache_control (automatic caching) marks the last block of the prompt.
    _cache_breakpoint(conv, body.cache_control, len(conv.turns))
    _last_turn(body.messages[-1], conv)
    _tools(body, conv)
    _options(body, conv, need_max_tokens=not count_only)
    return ChatCall(conv=conv, stream=bool(body.stream))


def render_count(call: ChatCall) -> bytes:
    return _encode({"input_tokens": prompt_tokens(call.conv)})


def _usage(u: Usage, *, delta: bool = False) -> dict[str, Any]:
    fresh = u.input_tokens - u.cached_tokens - u.cache_write_tokens
    if delta:
        return {
            "input_tokens": fresh,
            "cache_creation_input_tokens": u.cache_write_tokens,
            "cache_read_input_tokens": u.cached_tokens,
            "output_tokens": u.output_tokens,
            "server_tool_use": None,
        }
    return {
        "input_tokens": fresh,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_tokens - u.cache_write_1h_tokens,
            "ephemeral_1h_input_tokens": u.cache_write_1h_tokens,
        },
        "output_tokens": u.output_tokens,
        "server_tool_use": None,
        "service_tier": "standard",
        "inference_geo": None,
    }


def _blocks(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.thinking:
        blocks.append(
            {"type": "thinking", "thinking": "".join(answer.thinking), "signature": answer.signature}
        )
    if answer.text:
        blocks.append({"type": "text", "text": answer.content})
    for c in answer.calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": "toolu_" + c.key,
                "name": c.name,
                "input": c.arguments,
                "caller": {"type": "direct"},
            }
        )
    return blocks


def _message(call: ChatCall, answer: Answer, blocks: list[dict[str, Any]], final: bool) -> dict[str, Any]:
    usage = _usage(answer.usage)
    if not final:
        usage["output_tokens"] = 1
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": call.conv.model,
        "content": blocks,
        "stop_reason": _STOP[answer.finish] if final else None,
        "stop_sequence": None,
        "stop_details": None,
        "usage": usage,
        "container": None,
    }


def render_chat(call: ChatCall, answer: Answer) -> bytes:
    return _encode(_message(call, answer, _blocks(answer), final=True))


def _event(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


def _delta(index: int, delta: bytes) -> bytes:
    return _event(
        b"content_block_delta",
        b'{"type":"content_block_delta","index":' + str(index).encode() + b',"delta":' + delta + b"}",
    )


def _block_frames(answer: Answer) -> list[tuple[dict[str, Any], list[bytes], bytes]]:
    """Per block: its empty start value, its delta payloads, and an optional closing delta."""
    out: list[tuple[dict[str, Any], list[bytes], bytes]] = []
    if answer.thinking:
        deltas = [b'{"type":"thinking_delta","thinking":' + _encode(p) + b"}" for p in answer.thinking]
        sig = b'{"type":"signature_delta","signature":' + _encode(answer.signature) + b"}"
        out.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas, sig))
    if answer.text:
        deltas = [b'{"type":"text_delta","text":' + _encode(p) + b"}" for p in answer.text]
        out.append(({"type": "text", "text": ""}, deltas, b""))
    for c in answer.calls:
        start = {
            "type": "tool_use",
            "id": "toolu_" + c.key,
            "name": c.name,
            "input": {},
            "caller": {"type": "direct"},
        }
        deltas = [b'{"type":"input_json_delta","partial_json":' + _encode(p) + b"}" for p in c.pieces]
        out.append((start, deltas, b""))
    return out


def stream_chat(call: ChatCall, answer: Answer) -> Frames:
    frames = Frames()
    frames.pre.append(
        _event(
            b"message_start", _encode({"type": "message_start", "message": _message(call, answer, [], False)})
        )
    )
    for index, (start, deltas, closing) in enumerate(_block_frames(answer)):
        begin = _event(
            b"content_block_start",
            _encode({"type": "content_block_start", "index": index, "content_block": start}),
        )
        if index == 0:
            frames.pre.append(begin + _event(b"ping", b'{"type":"ping"}'))
            begin = b""
        stop = (_delta(index, closing) if closing else b"") + _event(
            b"content_block_stop", b'{"type":"content_block_stop","index":' + str(index).encode() + b"}"
        )
        entries = [_delta(index, d) for d in deltas] or [b""]
        entries[0] = begin + entries[0]
        entries[-1] += stop
        frames.content.extend(entries)
    if not frames.content:
        frames.pre.append(_event(b"ping", b'{"type":"ping"}'))
    message_delta = {
        "type": "message_delta",
        "delta": {
            "stop_reason": _STOP[answer.finish],
            "stop_sequence": None,
            "stop_details": None,
            "container": None,
        },
        "usage": _usage(answer.usage, delta=True),
    }
    frames.post.append(_event(b"message_delta", _encode(message_delta)))
    frames.post.append(_event(b"message_stop", b'{"type":"message_stop"}'))
    return frames
