"""The OpenAI Responses dialect (``POST /v1/responses``): input items → canonical, and back.

A Responses body is read into a :class:`ResponsesRequest`: a canonical :class:`ChatRequest`
(instructions as the first system message, then the input items as messages) plus what the
Response object echoes and what the conversation store needs (``previous_response_id``,
``store``, the input items as sent). Every upstream family is reached through the canonical
model: no upstream receives the Responses body itself (``raw`` stays None), so the OpenAI
adapter speaks Chat Completions to an OpenAI-family deployment.

Items: messages (string content, or ``input_text`` / ``input_image`` parts; an assistant's
``output_text`` / ``refusal``), ``function_call``, ``function_call_output`` and ``reasoning``.
Consecutive assistant-side items (a message, its reasoning, its function calls) become one
assistant message, as a Chat Completions client would send them. Anything else (built-in
tools' items, ``item_reference``, files) is a 400 naming the item.

The same reader decodes ``POST /v1/responses/input_tokens`` (``count=True``: every field
optional), so a token count sees the request the Responses route would make.

The encoders (the Response object and the stream's events) are in :mod:`.responses_out`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from switchpoint.api.dialect import Dialect, decode_boundary
from switchpoint.api.openai import (
    _array,
    _bad,
    _bool,
    _decode_object,
    _error_object,
    _image_at,
    _int,
    _metadata,
    _number,
    _object,
    _str,
    _wrong,
)
from switchpoint.api.responses_out import FORWARDED, REDACTED, ResponsesStreamEncoder, response_object
from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Thinking,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from switchpoint.errors import SwitchpointError

_ROLES = ("user", "assistant", "system", "developer")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
#: Body keys the gateway cannot honour: asked for, they are a 400 rather than silently ignored.
_UNSUPPORTED = {
    "conversation": "conversations are not supported; use previous_response_id",
    "prompt": "stored prompts are not supported by this gateway",
}


class ResponsesRequest(ChatRequest, kw_only=True, omit_defaults=True):
    """A canonical chat request, plus what a Responses call carries beyond it."""

    previous_response_id: str | None = None
    #: Keep the response for ``GET /v1/responses/{id}`` and ``previous_response_id`` (default true).
    store: bool = True
    instructions: str | None = None
    #: This turn's input items as the client sent them (a string input as one user message).
    items: list[dict[str, Any]] = []
    #: How many of ``messages`` come before this turn's items (the instructions' system message).
    lead: int = 0
    #: The request fields the Response object repeats (tools, tool_choice, text, reasoning …).
    echo: dict[str, Any] = {}
    #: ``background: true``: answered at once, run by the gateway in a task of its own.
    background: bool = False
    #: The Response's id and ``created_at`` when the gateway chose them before the run
    #: (a background response).
    response_id: str | None = None
    response_created: int | None = None


# --- input items -----------------------------------------------------------------------------


def _image(part: dict[str, Any], param: str) -> ImagePart:
    if part.get("file_id") is not None:
        raise _bad(f"{param}.file_id", "file inputs are not supported by this gateway; send image_url")
    url = _str(part, "image_url", f"{param}.image_url", required=True) or ""
    detail = _str(part, "detail", f"{param}.detail")
    return _image_at(url, detail, f"{param}.image_url")


def _parts(content: Any, param: str, images: bool) -> list[TextPart | ImagePart]:
    """A message's content: a string, or ``input_text`` / ``output_text`` / ``refusal`` parts
    (and ``input_image`` where ``images``)."""
    if isinstance(content, str):
        return [TextPart(text=content)]
    if not isinstance(content, list):
        raise _wrong(param, "a string or an array of content parts", content)
    parts: list[TextPart | ImagePart] = []
    for j, raw in enumerate(content):
        pp = f"{param}[{j}]"
        part = _object(raw, pp)
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            parts.append(TextPart(text=_str(part, "text", f"{pp}.text", required=True) or ""))
        elif kind == "refusal":
            parts.append(TextPart(text=_str(part, "refusal", f"{pp}.refusal", required=True) or ""))
        elif kind == "input_image" and images:
            parts.append(_image(part, pp))
        elif not isinstance(kind, str):
            raise _wrong(f"{pp}.type", "a string", kind)
        else:
            raise _bad(f"{pp}.type", f"content parts of type '{kind}' are not supported here")
    return parts


def _reasoning(item: dict[str, Any], param: str) -> ThinkingPart:
    texts: list[str] = []
    for key, kind in (("summary", "summary_text"), ("content", "reasoning_text")):
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise _wrong(f"{param}.{key}", "an array", value)
        for j, raw in enumerate(value):
            part = _object(raw, f"{param}.{key}[{j}]")
            if part.get("type") != kind:
                raise _bad(f"{param}.{key}[{j}].type", f"must be '{kind}'")
            texts.append(_str(part, "text", f"{param}.{key}[{j}].text", required=True) or "")
        if texts and key == "summary":
            break  # the gateway writes one or the other; the summary is what clients show
    opaque = _str(item, "encrypted_content", f"{param}.encrypted_content")
    if opaque is not None and opaque.startswith(REDACTED):
        return ThinkingPart(redacted=opaque[len(REDACTED) :])
    return ThinkingPart(text="".join(texts), signature=opaque or None)


def _output_text(output: Any, param: str) -> list[TextPart | ImagePart]:
    if isinstance(output, str):
        return [TextPart(text=output)]
    if not isinstance(output, list):
        raise _wrong(param, "a string or an array of content parts", output)
    return _parts(output, param, images=True)


def read_items(items: list[Any], param: str = "input") -> list[Message]:
    """Input items (as sent, or as the gateway stored them) as canonical messages."""
    messages: list[Message] = []
    assistant: Message | None = None  # the assistant message consecutive items add to

    def turn() -> Message:
        nonlocal assistant
        if assistant is None:
            assistant = Message(role="assistant", parts=[])
            messages.append(assistant)
        return assistant

    for i, raw in enumerate(items):
        pp = f"{param}[{i}]"
        item = _object(raw, pp)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise _bad(f"{pp}.role", f"must be one of {', '.join(_ROLES)}")
            if "content" not in item:
                raise _bad(f"{pp}.content", "is required")
            parts: list[Part] = list(_parts(item["content"], f"{pp}.content", images=role == "user"))
            if role == "assistant":
                # text after the turn's function calls starts a new turn
                if assistant is not None and any(isinstance(p, ToolCallPart) for p in assistant.parts):
                    assistant = None
                turn().parts.extend(parts)
                continue
            if not parts:
                raise _bad(f"{pp}.content", "must not be empty")
            assistant = None
            messages.append(Message(role=role, parts=parts))
        elif kind == "function_call":
            call_id = _str(item, "call_id", f"{pp}.call_id", required=True) or ""
            name = _str(item, "name", f"{pp}.name", required=True) or ""
            arguments = _str(item, "arguments", f"{pp}.arguments", required=True) or "{}"
            turn().parts.append(ToolCallPart(id=call_id, name=name, arguments=arguments))
        elif kind == "reasoning":
            thinking = _reasoning(item, pp)
            if assistant is not None and any(not isinstance(p, ThinkingPart) for p in assistant.parts):
                assistant = None  # reasoning after text or calls begins the next assistant turn
            if thinking.text or thinking.signature or thinking.redacted:
                turn().parts.append(thinking)
        elif kind == "function_call_output":
            assistant = None
            call_id = _str(item, "call_id", f"{pp}.call_id", required=True) or ""
            if "output" not in item:
                raise _bad(f"{pp}.output", "is required")
            content = _output_text(item["output"], f"{pp}.output")
            messages.append(
                Message(role="tool", parts=[ToolResultPart(tool_call_id=call_id, content=content)])
            )
        elif not isinstance(kind, str):
            raise _wrong(f"{pp}.type", "a string", kind)
        else:
            raise _bad(f"{pp}.type", f"input items of type '{kind}' are not supported by this gateway")
    return messages


def _input(value: Any, required: bool = True) -> list[dict[str, Any]]:
    if value is None:
        if not required:
            return []
        raise _bad("input", "is required")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    items = _array(value, "input")
    return [_object(item, f"input[{i}]") for i, item in enumerate(items)]


# --- options -----------------------------------------------------------------------------------


def _tools(value: Any) -> tuple[list[Tool], list[dict[str, Any]]]:
    tools: list[Tool] = []
    echo: list[dict[str, Any]] = []
    for i, raw in enumerate(_array(value, "tools")):
        param = f"tools[{i}]"
        tool = _object(raw, param)
        kind = tool.get("type")
        if kind != "function":
            raise _bad(f"{param}.type", f"only tools of type 'function' are supported (got {kind!r})")
        name = _str(tool, "name", f"{param}.name", required=True)
        if not name:
            raise _bad(f"{param}.name", "must not be empty")
        parameters = tool.get("parameters")
        strict = _bool(tool, "strict", f"{param}.strict")
        t = Tool(name=name, description=_str(tool, "description", f"{param}.description"), strict=strict)
        if parameters is not None:
            t.parameters = _object(parameters, f"{param}.parameters")
        tools.append(t)
        echo.append(
            {
                "type": "function",
                "name": name,
                "description": t.description,
                "parameters": parameters,
                "strict": strict,  # as sent: the gateway does not make a tool strict by itself
            }
        )
    return tools, echo


def _tool_choice(value: Any) -> ToolChoice:
    if value in ("auto", "none", "required"):
        return ToolChoice(mode=value)
    if isinstance(value, str):
        raise _bad("tool_choice", "must be 'auto', 'none', 'required' or an object naming a function")
    choice = _object(value, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        return ToolChoice(mode="tool", name=_str(choice, "name", "tool_choice.name", required=True))
    if kind == "allowed_tools":
        mode = choice.get("mode")
        if mode not in ("auto", "required"):
            raise _bad("tool_choice.mode", "must be 'auto' or 'required'")
        return ToolChoice(mode=mode)
    raise _bad("tool_choice.type", "must be 'function' or 'allowed_tools'")


def _text_format(value: Any) -> tuple[ResponseFormat | None, dict[str, Any]]:
    text = _object(value, "text")
    echo: dict[str, Any] = {"format": {"type": "text"}}
    if text.get("verbosity") is not None:
        echo["verbosity"] = _str(text, "verbosity", "text.verbosity")
    spec = text.get("format")
    if spec is None:
        return None, echo
    fmt = _object(spec, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None, echo
    if kind == "json_object":
        echo["format"] = {"type": "json_object"}
        return ResponseFormat(type="json_object"), echo
    if kind != "json_schema":
        raise _bad("text.format.type", "must be 'text', 'json_object' or 'json_schema'")
    name = _str(fmt, "name", "text.format.name", required=True)
    schema = _object(fmt.get("schema"), "text.format.schema")
    rf = ResponseFormat(
        type="json_schema",
        name=name,
        schema=schema,
        strict=_bool(fmt, "strict", "text.format.strict"),
        description=_str(fmt, "description", "text.format.description"),
    )
    echo["format"] = {"type": "json_schema", "name": name, "schema": schema, "strict": rf.strict}
    if rf.description is not None:
        echo["format"]["description"] = rf.description
    return rf, echo


def _reasoning_option(value: Any) -> tuple[Thinking | None, dict[str, Any]]:
    spec = _object(value, "reasoning")
    effort = spec.get("effort")
    summary = spec.get("summary")
    if summary is not None and summary not in ("auto", "concise", "detailed"):
        raise _bad("reasoning.summary", "must be 'auto', 'concise' or 'detailed'")
    echo = {"effort": effort, "summary": summary}
    if effort is None:
        return None, echo
    if effort not in _EFFORTS:
        raise _bad("reasoning.effort", f"must be one of {', '.join(_EFFORTS)}")
    if effort == "none":
        return Thinking(enabled=False), echo
    return Thinking(effort="high" if effort in ("xhigh", "max") else effort), echo


def read_responses(body: bytes, *, count: bool = False) -> ResponsesRequest:
    """Decode and validate a ``POST /v1/responses`` body (through the decode boundary only).

    ``count``: a ``POST /v1/responses/input_tokens`` body, read the same way except that
    ``model`` and ``input`` may be absent (no model: ``model`` is ``""``; no input: no items)."""
    data = _decode_object(body)
    for key, why in _UNSUPPORTED.items():
        if data.get(key) not in (None, False):
            raise _bad(key, why)
    model = _str(data, "model", "model", required=not count)
    if model is not None and not model:
        raise _bad("model", "must not be empty")
    items = _input(data.get("input"), required=not count)
    instructions = _str(data, "instructions", "instructions")
    lead: list[Message] = (
        [Message(role="system", parts=[TextPart(text=instructions)])] if instructions else []
    )
    fields: dict[str, Any] = {}
    echo: dict[str, Any] = {"tools": [], "tool_choice": "auto", "text": {"format": {"type": "text"}}}
    if data.get("tools") not in (None, []):  # the Agents SDK sends [] for no tools
        fields["tools"], echo["tools"] = _tools(data["tools"])
    if data.get("tool_choice") is not None:
        fields["tool_choice"] = _tool_choice(data["tool_choice"])
        echo["tool_choice"] = data["tool_choice"]
    if data.get("text") is not None:
        fields["response_format"], echo["text"] = _text_format(data["text"])
    if data.get("reasoning") is not None:
        fields["thinking"], echo["reasoning"] = _reasoning_option(data["reasoning"])
    max_output = _int(data, "max_output_tokens", 1)
    fields["max_tokens"] = max_output
    echo["max_output_tokens"] = max_output
    for key, high in (("temperature", 2.0), ("top_p", 1.0)):
        fields[key] = echo[key] = _number(data, key, high)
    top_logprobs = _int(data, "top_logprobs", 0, 20)
    if top_logprobs is not None:
        echo["top_logprobs"] = top_logprobs
    parallel = _bool(data, "parallel_tool_calls", "parallel_tool_calls")
    fields["parallel_tool_calls"] = parallel
    echo["parallel_tool_calls"] = True if parallel is None else parallel
    metadata = _metadata(data.get("metadata"))
    if metadata is not None and len(metadata) > 16:
        raise _bad("metadata", "at most 16 keys")
    fields["metadata"] = metadata
    echo["metadata"] = metadata or {}
    user = _str(data, "user", "user")
    safety = _str(data, "safety_identifier", "safety_identifier")
    fields["user"] = user or safety
    if user is not None:
        echo["user"] = user
    if safety is not None:
        echo["safety_identifier"] = safety
    truncation = data.get("truncation")
    if truncation not in (None, "auto", "disabled"):
        raise _bad("truncation", "must be 'auto' or 'disabled'")
    echo["truncation"] = truncation or "disabled"
    for key in ("prompt_cache_key", "service_tier", "personality"):
        _str(data, key, key)
    include = data.get("include")
    if include is not None and not isinstance(include, list):
        raise _wrong("include", "an array", include)
    previous = _str(data, "previous_response_id", "previous_response_id")
    store = _bool(data, "store", "store")
    stream = bool(_bool(data, "stream", "stream"))
    background = bool(_bool(data, "background", "background"))
    if background and store is False:
        raise _bad("background", "Background mode requires store=true; set store to true or omit it.")
    echo["store"] = store is not False
    return ResponsesRequest(
        model=model or "",
        messages=lead + read_items(items),
        stream=stream,
        include_usage=stream,
        dialect="openai",
        previous_response_id=previous or None,
        store=store is not False,
        instructions=instructions,
        items=items,
        lead=len(lead),
        echo=echo,
        background=background,
        # forwarded as is to a deployment serving the Responses API; a continued conversation
        # is the gateway's (its earlier turns live here), so it is translated, and so is a
        # background response (the gateway runs it, and owns its id and its events)
        responses_body=data if previous is None and not background else None,
        **fields,
    )


def _read_input_tokens(body: bytes, headers: Mapping[str, str]) -> ResponsesRequest:
    return read_responses(body, count=True)


class ResponsesDialect(Dialect):
    """``POST /v1/responses``: decoded and encoded here, errors in OpenAI's error JSON."""

    name = "openai"

    def read_chat(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        return read_responses(body)

    def decode_input_tokens(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """``POST /v1/responses/input_tokens``: as :meth:`decode_chat`, every field optional,
        behind the same decode boundary."""
        return decode_boundary(_read_input_tokens, body, headers)

    def encode_chat(self, response: ChatResponse, request: ChatRequest) -> bytes:
        assert isinstance(request, ResponsesRequest)
        if response.family == FORWARDED and response.raw is not None:
            return response.raw  # the upstream's own Response object
        return response_object(response, request)

    def stream_encoder(self, request: ChatRequest) -> ResponsesStreamEncoder:
        assert isinstance(request, ResponsesRequest)
        return ResponsesStreamEncoder(request)

    def render_error(self, err: SwitchpointError) -> tuple[int, bytes]:
        return err.status, msgspec.json.encode({"error": _error_object(err)})
