"""The OpenAI client dialect: Chat Completions and Embeddings as clients send them.

Requests are validated field by field so a client learns exactly what is wrong (message and
``param`` path, e.g. ``messages[2].content``); fields the gateway does not know are kept in
``raw`` and reach an OpenAI-family upstream unchanged.

Thinking text is exposed as ``reasoning_content`` on the message (and on stream deltas). The
published schema has no field for it but does not forbid extra ones; ``reasoning_content`` is
the name DeepSeek and vLLM use, so the clients that already read reasoning from
OpenAI-compatible servers find it there, and the rest ignore it. Signatures and redacted
reasoning have no place in this wire and are not sent.
"""

from __future__ import annotations

import array
import base64
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from switchpoint.api.dialect import Dialect, StreamEncoder
from switchpoint.api.media_parts import openai_media
from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
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
from switchpoint.errors import BadRequest, BudgetExceeded, SwitchpointError
from switchpoint.streaming import SSEFrame, encode

_json = msgspec.json.encode
_DONE = b"data: [DONE]\n\n"
_OPEN_END = b',"logprobs":null,"finish_reason":null}]}\n\n'
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
#: Roles whose string content is one text part, as is (a tuple: a role of any JSON type may be
#: tested against it).
_PLAIN_ROLES = ("user", "system", "developer")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_FINISH_OUT = {"length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}
#: The codes OpenAI clients test for, where the gateway's kind name differs.
_CODES = {"context_too_long": "context_length_exceeded", "rate_limited": "rate_limit_exceeded"}

# --- validation helpers ----------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _bad(param: str, message: str) -> BadRequest:
    return BadRequest(f"'{param}': {message}", param=param)


def _wrong(param: str, expected: str, value: Any) -> BadRequest:
    return _bad(param, f"expected {expected}, got {_type_name(value)}")


def _str(obj: dict[str, Any], key: str, param: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _wrong(param, "a string", value)
    return value


def _int(data: dict[str, Any], key: str, low: int | None = None, high: int | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(key, "an integer", value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise _bad(key, f"{value} is out of range (expected {low} to {'any' if high is None else high})")
    return value


def _number(data: dict[str, Any], key: str, high: float) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(key, "a number", value)
    if not 0 <= value <= high:
        raise _bad(key, f"{value} is out of range (expected 0 to {high:g})")
    return float(value)


def _bool(obj: dict[str, Any], key: str, param: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _wrong(param, "a boolean", value)
    return value


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong(param, "an object", value)
    return value


def _array(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _wrong(param, "an array", value)
    if not value:
        raise _bad(param, "must not be empty")
    return value


def _decode_object(body: bytes) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"could not parse the JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object, got {_type_name(data)}")
    return data


# --- messages --------------------------------------------------------------------------------

_MEDIA_PARTS = ("input_audio", "file")


def _image(part: dict[str, Any], param: str) -> ImagePart:
    spec = part.get("image_url")
    if isinstance(spec, str):
        spec = {"url": spec}
    spec = _object(spec, f"{param}.image_url")
    url = _str(spec, "url", f"{param}.image_url.url", required=True) or ""
    detail = _str(spec, "detail", f"{param}.image_url.detail")
    return _image_at(url, detail, f"{param}.image_url.url")


def _image_at(url: str, detail: str | None, param: str) -> ImagePart:
    """An image given by URL: a ``data:<media type>;base64,`` URI (inline) or an http(s) URL."""
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type = header.partition(";")[0]
        if not sep or not data or not header.endswith(";base64") or "/" not in media_type:
            raise _bad(param, "invalid data URI: expected data:<media type>;base64,<data>")
        return ImagePart(data=data, media_type=media_type, detail=detail)
    if not url.lower().startswith(("http://", "https://")):
        raise _bad(param, "image_url must be an http(s) URL or a data: URI")
    return ImagePart(url=url, detail=detail)


def _content_parts(content: Any, param: str, allowed: tuple[str, ...]) -> list[Part]:
    """A message's content: a string, or an array of parts of the ``allowed`` types."""
    if isinstance(content, str):
        return [TextPart(text=content)]
    if not isinstance(content, list):
        raise _wrong(param, "a string or an array of content parts", content)
    if not content:
        raise _bad(param, "must not be empty")
    parts: list[Part] = []
    for j, raw in enumerate(content):
        pp = f"{param}[{j}]"
        part = _object(raw, pp)
        kind = part.get("type")
        if kind not in allowed:
            if not isinstance(kind, str):
                raise _wrong(f"{pp}.type", "a string", kind)
            raise _bad(f"{pp}.type", f"content parts of type '{kind}' are not supported here")
        if kind == "image_url":
            parts.append(_image(part, pp))
        elif kind in _MEDIA_PARTS:
            parts.append(openai_media(part, kind, pp))
        else:
            parts.append(TextPart(text=_str(part, kind, f"{pp}.{kind}", required=True) or ""))
    return parts


def _tool_calls(value: Any, param: str) -> list[Part]:
    calls: list[Part] = []
    for k, raw in enumerate(_array(value, param)):
        pp = f"{param}[{k}]"
        call = _object(raw, pp)
        if call.get("type", "function") != "function":
            raise _bad(f"{pp}.type", "only tool calls of type 'function' are supported")
        fn = _object(call.get("function"), f"{pp}.function")
        calls.append(
            ToolCallPart(
                id=_str(call, "id", f"{pp}.id", required=True) or "",
                name=_str(fn, "name", f"{pp}.function.name", required=True) or "",
                arguments=_str(fn, "arguments", f"{pp}.function.arguments") or "{}",
            )
        )
    return calls


def _legacy_call_id(i: int) -> str:
    """The id given to the legacy ``function_call`` of ``messages[i]`` (the wire has none)."""
    return f"call_legacy_{i}"


def _legacy_call(value: Any, param: str, i: int, calls: list[str]) -> ToolCallPart:
    """An assistant message's deprecated ``function_call``; its id is remembered in ``calls``
    for the ``function`` message that answers it."""
    fn = _object(value, param)
    call = ToolCallPart(
        id=_legacy_call_id(i),
        name=_str(fn, "name", f"{param}.name", required=True) or "",
        arguments=_str(fn, "arguments", f"{param}.arguments") or "{}",
    )
    calls.append(call.id)
    return call


def _assistant_parts(m: dict[str, Any], param: str, i: int, legacy: list[str]) -> list[Part]:
    content = m.get("content")
    calls = _tool_calls(m["tool_calls"], f"{param}.tool_calls") if m.get("tool_calls") is not None else []
    if m.get("function_call") is not None:
        calls.append(_legacy_call(m["function_call"], f"{param}.function_call", i, legacy))
    refusal = _str(m, "refusal", f"{param}.refusal")
    if content is None:
        if not calls and refusal is None:
            raise _bad(f"{param}.content", "required unless tool_calls or function_call is given")
        texts: list[Part] = [TextPart(text=refusal)] if refusal else []
    elif content == "" and calls:
        texts = []
    else:
        texts = _content_parts(content, f"{param}.content", ("text", "refusal"))
    return texts + calls


def _message(raw: Any, i: int, legacy: list[str]) -> Message:
    """``messages[i]``; ``legacy`` collects the ids given to deprecated function calls so far."""
    if isinstance(raw, dict):
        role, content = raw.get("role"), raw.get("content")
        if type(content) is str and role in _PLAIN_ROLES and raw.get("name") is None:
            return Message(role=role, parts=[TextPart(text=content)])  # the common case
    return _message_in_full(raw, i, legacy)


def _function_result(m: dict[str, Any], param: str, i: int, legacy: list[str]) -> Message:
    """A deprecated ``function`` message: the result of the latest legacy function call (a
    ``function`` message before any call keeps an id of its own; the upstream judges it)."""
    name = _str(m, "name", f"{param}.name", required=True) or ""
    content = m.get("content")
    texts: list[TextPart | ImagePart] = []
    if content is not None:
        texts = [p for p in _content_parts(content, f"{param}.content", ("text",)) if isinstance(p, TextPart)]
    call_id = legacy[-1] if legacy else _legacy_call_id(i)
    return Message(role="tool", parts=[ToolResultPart(tool_call_id=call_id, content=texts, name=name)])


def _message_in_full(raw: Any, i: int, legacy: list[str]) -> Message:
    param = f"messages[{i}]"
    m = _object(raw, param)
    role = m.get("role")
    if role == "function":
        return _function_result(m, param, i, legacy)
    if role not in _ROLES:
        raise _bad(f"{param}.role", f"must be one of {', '.join(_ROLES)}")
    name = _str(m, "name", f"{param}.name")
    cp = f"{param}.content"
    parts: list[Part]
    if role == "assistant":
        parts = _assistant_parts(m, param, i, legacy)
    elif role == "tool":
        call_id = _str(m, "tool_call_id", f"{param}.tool_call_id", required=True) or ""
        texts = [p for p in _content_parts(m.get("content"), cp, ("text",)) if isinstance(p, TextPart)]
        parts = [ToolResultPart(tool_call_id=call_id, content=list(texts))]
    elif role == "user":
        parts = _content_parts(m.get("content"), cp, ("text", "image_url", *_MEDIA_PARTS))
    else:
        parts = _content_parts(m.get("content"), cp, ("text",))
    return Message(role=role, parts=parts, name=name)


# --- request options -------------------------------------------------------------------------


def _function(value: Any, param: str) -> Tool:
    """A function definition (a tool's ``function``, or one of the deprecated ``functions``)."""
    fn = _object(value, param)
    name = _str(fn, "name", f"{param}.name", required=True)
    if not name:
        raise _bad(f"{param}.name", "must not be empty")
    parameters = fn.get("parameters")
    t = Tool(
        name=name,
        description=_str(fn, "description", f"{param}.description"),
        strict=_bool(fn, "strict", f"{param}.strict"),
    )
    if parameters is not None:
        t.parameters = _object(parameters, f"{param}.parameters")
    return t


def _tools(value: Any) -> list[Tool]:
    tools = []
    for i, raw in enumerate(_array(value, "tools")):
        param = f"tools[{i}]"
        tool = _object(raw, param)
        if tool.get("type") != "function":
            raise _bad(f"{param}.type", "only tools of type 'function' are supported")
        tools.append(_function(tool.get("function"), f"{param}.function"))
    return tools


def _tool_choice(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return ToolChoice(mode=value)
    if isinstance(value, str):
        raise _bad("tool_choice", "must be 'auto', 'none', 'required' or an object naming a function")
    choice = _object(value, "tool_choice")
    if choice.get("type") == "function":
        fn = _object(choice.get("function"), "tool_choice.function")
        return ToolChoice(mode="tool", name=_str(fn, "name", "tool_choice.function.name", required=True))
    if choice.get("type") == "allowed_tools":
        allowed = _object(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        mode = allowed.get("mode")
        if mode not in ("auto", "required"):
            raise _bad("tool_choice.allowed_tools.mode", "must be 'auto' or 'required'")
        return ToolChoice(mode=mode)
    raise _bad("tool_choice.type", "must be 'function' or 'allowed_tools'")


def _response_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    rf = _object(value, "response_format")
    kind = rf.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(type=kind)
    if kind != "json_schema":
        raise _bad("response_format.type", "must be 'text', 'json_object' or 'json_schema'")
    spec = _object(rf.get("json_schema"), "response_format.json_schema")
    schema = spec.get("schema")
    return ResponseFormat(
        type="json_schema",
        name=_str(spec, "name", "response_format.json_schema.name", required=True),
        schema=None if schema is None else _object(schema, "response_format.json_schema.schema"),
        strict=_bool(spec, "strict", "response_format.json_schema.strict"),
        description=_str(spec, "description", "response_format.json_schema.description"),
    )


def _stop(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _wrong("stop", "a string or an array of strings", value)
    return value or None


def _metadata(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    meta = _object(value, "metadata")
    for key, item in meta.items():
        if not isinstance(item, str):
            raise _wrong(f"metadata.{key}", "a string", item)
    return meta


def _thinking(value: Any) -> Thinking | None:
    if value is None:
        return None
    if value not in _EFFORTS:
        raise _bad("reasoning_effort", f"must be one of {', '.join(_EFFORTS)}")
    if value == "none":
        return Thinking(enabled=False)
    return Thinking(effort="high" if value in ("xhigh", "max") else value)


def _include_usage(data: dict[str, Any]) -> bool:
    options = data.get("stream_options")
    if options is None:
        return False
    return bool(_bool(_object(options, "stream_options"), "include_usage", "stream_options.include_usage"))


def _function_call(value: Any) -> ToolChoice:
    if value in ("none", "auto"):
        return ToolChoice(mode=value)
    if isinstance(value, str):
        raise _bad("function_call", "must be 'none', 'auto' or an object naming a function")
    choice = _object(value, "function_call")
    return ToolChoice(mode="tool", name=_str(choice, "name", "function_call.name", required=True))


def _legacy_functions(data: dict[str, Any], fields: dict[str, Any]) -> None:
    """The deprecated ``functions`` and ``function_call`` (still in the published spec), as
    tools and a tool choice; one call at a time, as they had it. Sent beside ``tools`` /
    ``tool_choice`` (the spec allows both), they are checked, and the newer fields decide.
    An OpenAI upstream gets the body as sent (``raw``); the answer to a client that sent only
    ``functions`` carries ``function_call`` (see :func:`uses_functions`)."""
    functions, call = data.get("functions"), data.get("function_call")
    if functions is not None:
        tools = [_function(f, f"functions[{i}]") for i, f in enumerate(_array(functions, "functions"))]
        if data.get("tools") is None:
            fields["tools"] = tools
            if fields.get("parallel_tool_calls") is None:
                fields["parallel_tool_calls"] = False
    if call is not None:
        choice = _function_call(call)
        if data.get("tool_choice") is None:
            fields["tool_choice"] = choice


def uses_functions(request: ChatRequest) -> bool:
    """The client declared the deprecated ``functions`` and no ``tools``: answer with
    ``function_call``."""
    raw = request.raw
    return raw is not None and raw.get("functions") is not None and raw.get("tools") is None


#: Request options: wire key -> (ChatRequest field, reader). A reader is called only when the
#: key is in the body, and answers None for a null.
_OPTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
    "tools": ("tools", lambda d: _tools(d["tools"]) if d["tools"] is not None else None),
    "tool_choice": ("tool_choice", lambda d: _tool_choice(d["tool_choice"])),
    "parallel_tool_calls": (
        "parallel_tool_calls",
        lambda d: _bool(d, "parallel_tool_calls", "parallel_tool_calls"),
    ),
    "response_format": ("response_format", lambda d: _response_format(d["response_format"])),
    "max_completion_tokens": ("max_completion_tokens", lambda d: _int(d, "max_completion_tokens", 0)),
    "max_tokens": ("max_tokens", lambda d: _int(d, "max_tokens", 0)),
    "temperature": ("temperature", lambda d: _number(d, "temperature", 2.0)),
    "top_p": ("top_p", lambda d: _number(d, "top_p", 1.0)),
    "stop": ("stop", lambda d: _stop(d["stop"])),
    "seed": ("seed", lambda d: _int(d, "seed")),
    "user": ("user", lambda d: _str(d, "user", "user")),
    "metadata": ("metadata", lambda d: _metadata(d["metadata"])),
    "logprobs": ("logprobs", lambda d: _bool(d, "logprobs", "logprobs")),
    "top_logprobs": ("top_logprobs", lambda d: _int(d, "top_logprobs", 0, 20)),
    "reasoning_effort": ("thinking", lambda d: _thinking(d["reasoning_effort"])),
    "stream": ("stream", lambda d: bool(_bool(d, "stream", "stream"))),
    "store": ("store", lambda d: bool(_bool(d, "store", "store"))),
}


# --- responses -------------------------------------------------------------------------------


def usage_out(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _finish_out(reason: str | None) -> str:
    return _FINISH_OUT.get(reason or "stop", "stop")


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def _error_object(err: SwitchpointError) -> dict[str, Any]:
    etype = _ERROR_TYPES.get(err.status) or ("server_error" if err.status >= 500 else "invalid_request_error")
    if isinstance(err, BudgetExceeded):  # a key's or team's budget (governance)
        etype = "budget_exceeded"
    return {
        "message": err.message,
        "type": etype,
        "param": err.param,
        "code": err.code or _CODES.get(err.kind, err.kind),
    }


def _float32_base64(vector: list[float]) -> str:
    values = array.array("f", vector)
    if sys.byteorder == "big":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


class OpenAIStreamEncoder(StreamEncoder):
    """Encodes one client stream as ``chat.completion.chunk`` frames ending in ``[DONE]``."""

    def __init__(self, request: ChatRequest) -> None:
        self._model = request.model
        self._include_usage = request.include_usage
        self._passthrough = False
        self._head = b""
        #: Every chunk frame up to its delta: set with ``_head``, once per stream.
        self._frame_start = b""
        self._tools_seen: set[int] = set()
        self._usage = Usage()
        #: The client declared the deprecated ``functions``: deltas carry ``function_call``.
        self._functions = uses_functions(request)

    def commit(self, family: str) -> None:
        self._passthrough = family == "openai"

    def encode(self, events: list[StreamEvent], frame: SSEFrame | None) -> bytes:
        if self._passthrough and frame is not None:
            if frame.data == b"[DONE]":
                return b""
            if events and not self._include_usage and _usage_only(events):
                return b""
            return frame.raw
        if len(events) == 1:
            return self._event(events[0])
        return b"".join([self._event(e) for e in events])

    def _start(self, event: MessageStart | None) -> None:
        chunk_id = event.id if event is not None and event.id else _new_id()
        model = event.model if event is not None and event.model else self._model
        created = event.created if event is not None and event.created else int(time.time())
        self._head = (
            b'{"id":'
            + _json(chunk_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + _json(model)
            + b',"choices":['
        )
        self._frame_start = b"data: " + self._head + b'{"index":0,"delta":'

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._frame(_json(delta), finish)

    def _frame(self, delta: bytes, finish: str | None = None) -> bytes:
        """One chunk frame around an encoded delta: the fixed parts are bytes made once."""
        end = (
            _OPEN_END if finish is None else b',"logprobs":null,"finish_reason":' + _json(finish) + b"}]}\n\n"
        )
        return self._frame_start + delta + end

    def _event(self, event: StreamEvent) -> bytes:
        started = bool(self._head)
        if isinstance(event, MessageStart):
            if started:
                return b""
            self._start(event)
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, UsageUpdate):
            self._usage = self._usage.merge(event.usage)
            return b""
        prefix = b""
        if not started:
            self._start(None)
            prefix = self._chunk({"role": "assistant", "content": ""})
        return prefix + self._content(event)

    def _content(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            return self._frame(b'{"content":' + _json(event.text) + b"}") if event.text else b""
        if isinstance(event, ThinkingDelta):
            return self._chunk({"reasoning_content": event.text}) if event.text else b""
        if isinstance(event, ToolCallDelta):
            if self._functions:
                return self._function_delta(event)
            call: dict[str, Any] = {"index": event.index}
            fn: dict[str, Any] = {"arguments": event.arguments}
            if event.index not in self._tools_seen:
                self._tools_seen.add(event.index)
                call["id"] = event.id or ""
                call["type"] = "function"
                fn = {"name": event.name or "", "arguments": event.arguments}
            call["function"] = fn
            return self._chunk({"tool_calls": [call]})
        if isinstance(event, Finish):
            reason = _finish_out(event.reason)
            return self._chunk({}, "function_call" if self._functions and reason == "tool_calls" else reason)
        return b""

    def _function_delta(self, event: ToolCallDelta) -> bytes:
        """A deprecated ``delta.function_call``: of the calls the model makes, the first (that
        wire has room for one; the upstream was asked for one at a time)."""
        if not self._tools_seen:
            self._tools_seen.add(event.index)
            return self._chunk({"function_call": {"name": event.name or "", "arguments": event.arguments}})
        if event.index not in self._tools_seen:
            return b""
        return self._chunk({"function_call": {"arguments": event.arguments}}) if event.arguments else b""

    def finish(self) -> bytes:
        if self._passthrough or not self._include_usage:
            return _DONE
        if not self._head:
            self._start(None)
        usage = self._head + b'],"usage":' + _json(usage_out(self._usage)) + b"}"
        return encode(usage) + _DONE

    def error(self, err: SwitchpointError) -> bytes:
        return encode(_json({"error": _error_object(err)}))


def _usage_only(events: list[StreamEvent]) -> bool:
    has_usage = False
    for e in events:
        if isinstance(e, UsageUpdate):
            has_usage = True
        elif not isinstance(e, MessageStart):
            return False
    return has_usage


# --- the dialect -----------------------------------------------------------------------------


class OpenAIDialect(Dialect):
    name = "openai"

    def read_chat(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        data = _decode_object(body)
        model = _str(data, "model", "model", required=True)
        if not model:
            raise _bad("model", "must not be empty")
        n = data.get("n")
        if n is not None and n != 1:
            raise _bad("n", "only n=1 is supported")
        legacy: list[str] = []
        messages = [_message(m, i, legacy) for i, m in enumerate(_array(data.get("messages"), "messages"))]
        fields: dict[str, Any] = {}
        for key in data:  # only the options the client sent are read
            option = _OPTIONS.get(key)
            if option is not None:
                fields[option[0]] = option[1](data)
        if "functions" in data or "function_call" in data:
            _legacy_functions(data, fields)
        newer = fields.pop("max_completion_tokens", None)
        if newer is not None:
            fields["max_tokens"] = newer
        if fields.get("stream"):
            fields["include_usage"] = _include_usage(data)
        return ChatRequest(model=model, messages=messages, dialect="openai", raw=data, **fields)

    def encode_chat(self, response: ChatResponse, request: ChatRequest) -> bytes:
        """The upstream's own bytes when it speaks OpenAI, else a ``chat.completion`` object."""
        if response.family == "openai" and response.raw is not None:
            return response.raw
        texts = [p.text for p in response.parts if isinstance(p, TextPart)]
        thinking = "".join(p.text for p in response.parts if isinstance(p, ThinkingPart))
        calls = [
            {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
            for p in response.parts
            if isinstance(p, ToolCallPart)
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(texts) if texts else None,
            "refusal": None,
        }
        if thinking:
            message["reasoning_content"] = thinking
        finish = _finish_out(response.finish_reason)
        if calls and uses_functions(request):  # the deprecated shape: one function_call
            message["function_call"] = calls[0]["function"]
            finish = "function_call" if finish == "tool_calls" else finish
        elif calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        return _json(
            {
                "id": response.id or _new_id(),
                "object": "chat.completion",
                "created": response.created or int(time.time()),
                "model": response.model or request.model,
                "choices": [choice],
                "usage": usage_out(response.usage),
            }
        )

    def stream_encoder(self, request: ChatRequest) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder(request)

    def render_error(self, err: SwitchpointError) -> tuple[int, bytes]:
        return err.status, _json({"error": _error_object(err)})

    def read_embeddings(self, body: bytes, headers: Mapping[str, str]) -> EmbeddingRequest:
        data = _decode_object(body)
        model = _str(data, "model", "model", required=True)
        if not model:
            raise _bad("model", "must not be empty")
        encoding = data.get("encoding_format")
        if encoding not in (None, "float", "base64"):
            raise _bad("encoding_format", "must be 'float' or 'base64'")
        return EmbeddingRequest(
            model=model,
            inputs=_embedding_inputs(data.get("input")),
            dimensions=_int(data, "dimensions", 1),
            encoding_format="base64" if encoding == "base64" else "float",
            user=_str(data, "user", "user"),
            raw=data,
        )

    def encode_embeddings(self, response: EmbeddingResponse, request: EmbeddingRequest) -> bytes:
        if response.family == "openai" and response.raw is not None:
            return response.raw
        b64 = request.encoding_format == "base64"
        data = [
            {
                "object": "embedding",
                "index": e.index,
                "embedding": _float32_base64(e.vector) if b64 else e.vector,
            }
            for e in response.data
        ]
        tokens = response.usage.input_tokens
        return _json(
            {
                "object": "list",
                "data": data,
                "model": response.model or request.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def _embedding_inputs(value: Any) -> list[str]:
    """Text inputs; token-id arrays give ``[]`` (they stay in ``raw`` for an OpenAI upstream)."""
    if isinstance(value, str):
        if not value:
            raise _bad("input", "must not be an empty string")
        return [value]
    items = _array(value, "input")
    if all(isinstance(s, str) for s in items):
        return items
    if all(isinstance(t, int) and not isinstance(t, bool) for t in items):
        return []
    if all(
        isinstance(a, list) and a and all(isinstance(t, int) and not isinstance(t, bool) for t in a)
        for a in items
    ):
        return []
    raise _wrong("input", "a string, an array of strings or an array of token ids", value)
