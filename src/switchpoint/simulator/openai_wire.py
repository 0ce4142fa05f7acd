"""The OpenAI wire: chat completions (plain and streamed), embeddings, the model list."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any, Literal

import msgspec

from .common import Frames, Headers, SimError, bearer, header, invalid_body, new_id, now
from .content import Answer, ChatCall, Conversation, ToolSpec, Usage, media_seen
from .embeddings import embed, to_base64

_REASONING = {"minimal": 4, "low": 8, "medium": 16, "high": 32, "xhigh": 48}
_FINGERPRINT = "fp_simulated"
_IMAGE_PARTS = frozenset({"image_url", "input_image"})
_TEXT_PARTS = frozenset({"text", "input_text", "refusal"})


class _Audio(msgspec.Struct):
    data: str
    format: Literal["wav", "mp3"]


class _File(msgspec.Struct):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class _Part(msgspec.Struct):
    type: str = "text"
    text: str | None = None
    refusal: str | None = None
    input_audio: _Audio | None = None
    file: _File | None = None


class _FunctionCall(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    id: str = ""
    type: str = "function"
    function: _FunctionCall | None = None


class _Message(msgspec.Struct):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[_Part] | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class _Function(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None


class _Tool(msgspec.Struct):
    type: str = "function"
    function: _Function | None = None


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatBody(msgspec.Struct):
    model: str
    messages: Annotated[list[_Message], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    tools: list[_Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None
    prompt_cache_key: str | None = None


class EmbeddingBody(msgspec.Struct):
    model: str
    input: str | list[str | int | list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, msgspec.Meta(ge=1, le=8192)] | None = None


_CHAT = msgspec.json.Decoder(ChatBody)
_EMBED = msgspec.json.Decoder(EmbeddingBody)
_encode = msgspec.json.encode

_ERROR_KINDS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Permission denied."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    409: ("invalid_request_error", None, "Conflict."),
    413: ("invalid_request_error", None, "Request too large."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Request timed out."),
}


def error_body(err: SimError) -> bytes:
    kind, code, default = _ERROR_KINDS.get(
        err.status, ("invalid_request_error" if err.status < 500 else "server_error", None, "Error.")
    )
    message = err.message or default
    return _encode({"error": {"message": message, "type": kind, "param": err.param, "code": code}})


def check_auth(headers: Headers, query: bytes) -> SimError | None:
    if bearer(headers) or header(headers, b"api-key"):
        return None
    return SimError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    )


def response_headers() -> Headers:
    return [(b"x-request-id", new_id("req_").encode()), (b"openai-processing-ms", b"1")]


def _text_of(content: str | list[_Part] | None, conv: Conversation) -> tuple[str, int]:
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    texts: list[str] = []
    images = 0
    for part in content:
        if part.type in _TEXT_PARTS:
            texts.append(part.text or part.refusal or "")
        elif part.type in _IMAGE_PARTS:
            images += 1
        elif part.input_audio is not None:
            media_seen(conv, "audio/" + part.input_audio.format)
        elif part.file is not None:
            media_seen(conv, _file_type(part.file))
    return "\n".join(texts), images


def _file_type(file: _File) -> str:
    data = file.file_data or ""
    if data.startswith("data:"):
        return data[5:].partition(";")[0]
    return mimetypes.guess_type(file.filename or "")[0] or "application/pdf"


def _tool_mode(body: ChatBody, conv: Conversation) -> None:
    choice = body.tool_choice
    if choice is None:
        return
    if not conv.tools:
        raise SimError(
            400,
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise SimError(400, f"Invalid value for 'tool_choice': {choice!r}.", param="tool_choice")
        conv.tool_mode = "none" if choice == "none" else ("any" if choice == "required" else "auto")
        return
    function = choice.get("function")
    if choice.get("type") == "function" and isinstance(function, dict):
        name = function.get("name")
        if not any(t.name == name for t in conv.tools):
            raise SimError(
                400, f"Invalid value for 'tool_choice': no tool named {name!r}.", param="tool_choice"
            )
        conv.tool_mode, conv.forced_tool = "any", str(name)


def _json_mode(body: ChatBody, conv: Conversation) -> None:
    fmt = body.response_format
    if not fmt:
        return
    kind = fmt.get("type")
    if kind == "json_object":
        conv.json_mode = True
    elif kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        conv.json_mode = True
        conv.json_schema = schema if isinstance(schema, dict) else {"type": "object"}
    elif kind != "text":
        raise SimError(
            400, f"Invalid value for 'response_format.type': {kind!r}.", param="response_format.type"
        )


def parse_chat(raw: bytes) -> ChatCall:
    try:
        body = _CHAT.decode(raw)
    except msgspec.MsgspecError as exc:
        raise invalid_body(exc) from None
    conv = Conversation(model=body.model, family="openai", cache_key=body.prompt_cache_key or "")
    for i, msg in enumerate(body.messages):
        text, images = _text_of(msg.content, conv)
        if msg.content is None and msg.role != "assistant":
            raise SimError(
                400,
                f"Invalid value for 'messages[{i}].content': expected a string, got null.",
                param=f"messages[{i}].content",
            )
        if msg.role == "tool" and not msg.tool_call_id:
            raise SimError(
                400,
                f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                param=f"messages[{i}].tool_call_id",
            )
        if msg.tool_calls:
            text += "".join(c.function.name + c.function.arguments for c in msg.tool_calls if c.function)
        conv.images += images
        conv.turns.append((msg.role, text))
    last = body.messages[-1]
    conv.ends_with_user = last.role == "user"
    if last.role == "user":
        conv.last_user_text = conv.turns[-1][1]
    elif last.role in ("tool", "function"):
        conv.tool_result = conv.turns[-1][1]
    for tool in body.tools or ():
        if tool.type == "function" and tool.function is not None:
            conv.tools.append(ToolSpec(tool.function.name, tool.function.parameters))
            conv.tool_chars += len(tool.function.name) + (
                len(_encode(tool.function.parameters)) if tool.function.parameters else 0
            )
    _tool_mode(body, conv)
    _json_mode(body, conv)
    conv.parallel = body.parallel_tool_calls is not False
    effort = body.reasoning_effort
    if effort and effort != "none":
        conv.thinking_tokens = _REASONING.get(effort, 16)
    conv.max_tokens = body.max_tokens if body.max_completion_tokens is None else body.max_completion_tokens
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    return ChatCall(conv=conv, stream=bool(body.stream), include_usage=include_usage)


def _usage(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.thinking_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_calls(answer: Answer) -> list[dict[str, Any]]:
    return [
        {"id": "call_" + c.key, "type": "function", "function": {"name": c.name, "arguments": c.json}}
        for c in answer.calls
    ]


def render_chat(call: ChatCall, answer: Answer) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.content if not answer.calls else None,
        "refusal": None,
        "annotations": [],
    }
    if answer.calls:
        message["tool_calls"] = _tool_calls(answer)
    return _encode(
        {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": now(),
            "model": call.conv.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish}],
            "usage": _usage(answer.usage),
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
    )


def stream_chat(call: ChatCall, answer: Answer) -> Frames:
    head = _encode(
        {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": now(),
            "model": call.conv.model,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
    )
    open_ = b"data: " + head[:-1] + b',"choices":[{"index":0,"delta":'
    close = (
        b',"logprobs":null,"finish_reason":null}]'
        + (b',"usage":null' if call.include_usage else b"")
        + b"}\n\n"
    )
    frames = Frames()
    frames.pre.append(open_ + b'{"role":"assistant","content":"","refusal":null}' + close)
    for piece in answer.text:
        frames.content.append(open_ + b'{"content":' + _encode(piece) + b"}" + close)
    for index, c in enumerate(answer.calls):
        first = {
            "index": index,
            "id": "call_" + c.key,
            "type": "function",
            "function": {"name": c.name, "arguments": ""},
        }
        frames.content.append(open_ + b'{"tool_calls":[' + _encode(first) + b"]}" + close)
        prefix = b'{"tool_calls":[{"index":' + str(index).encode() + b',"function":{"arguments":'
        for piece in c.pieces:
            frames.content.append(open_ + prefix + _encode(piece) + b"}}]}" + close)
    finish = b',"logprobs":null,"finish_reason":"' + answer.finish.encode() + b'"}]'
    frames.post.append(open_ + b"{}" + finish + (b',"usage":null' if call.include_usage else b"") + b"}\n\n")
    if call.include_usage:
        frames.post.append(
            b"data: " + head[:-1] + b',"choices":[],"usage":' + _encode(_usage(answer.usage)) + b"}\n\n"
        )
    frames.post.append(b"data: [DONE]\n\n")
    return frames


def parse_embeddings(raw: bytes) -> EmbeddingBody:
    try:
        body = _EMBED.decode(raw)
    except msgspec.MsgspecError as exc:
        raise invalid_body(exc) from None
    if body.input == "" or body.input == []:
        raise SimError(400, "'$.input' is invalid. Please check the API reference.", param="input")
    return body


def embedding_texts(body: EmbeddingBody) -> list[str]:
    if isinstance(body.input, str):
        return [body.input]
    if all(isinstance(x, int) for x in body.input):
        return [" ".join(str(x) for x in body.input)]
    out = []
    for item in body.input:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list):
            out.append(" ".join(str(x) for x in item))
        else:
            raise SimError(400, "'$.input' is invalid. Please check the API reference.", param="input")
    return out


def render_embeddings(body: EmbeddingBody, texts: list[str], default_dims: int) -> bytes:
    dims = body.dimensions or default_dims
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, text in enumerate(texts):
        vector = embed(text, dims)
        value: Any = to_base64(vector) if body.encoding_format == "base64" else vector
        data.append({"object": "embedding", "index": index, "embedding": value})
        tokens += max(1, (len(text) + 3) // 4)
    return _encode(
        {
            "object": "list",
            "data": data,
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def render_models(ids: list[str]) -> bytes:
    data = [
        {"id": i, "object": "model", "created": 1_700_000_000, "owned_by": "switchpoint-simulator"}
        for i in ids
    ]
    return _encode({"object": "list", "data": data})
