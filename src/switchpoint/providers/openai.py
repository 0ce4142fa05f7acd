"""The ``openai`` wire family: OpenAI Chat Completions and everything that speaks it.

One adapter serves OpenAI, Azure OpenAI, DeepSeek, Groq, Together, Mistral, OpenRouter, vLLM,
Ollama and llama.cpp; they differ only in their config row (base URL, key, headers, Azure's
``api-version``). Non-standard fields that several of them send are understood too:
``reasoning_content`` / ``reasoning`` (DeepSeek, vLLM, OpenRouter) become thinking, and
DeepSeek's ``prompt_cache_hit_tokens`` counts as cached input.

Translated requests never carry ``metadata``: OpenAI rejects it unless ``store`` is enabled,
and storing a client's conversation upstream is not a decision a gateway should make for it.
Clients that speak OpenAI themselves get their own body through unchanged (passthrough).
"""

from __future__ import annotations

import array
import base64
import binascii
import re
import sys
from typing import Any
from urllib.parse import quote

import msgspec

from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    ImagePart,
    MediaPart,
    MediaRequest,
    MediaResponse,
    Message,
    MessageStart,
    Part,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallPart,
    ToolResultPart,
    Usage,
    UsageUpdate,
)
from switchpoint.canonical import Finish as FinishEvent
from switchpoint.config import Deployment, Secret
from switchpoint.errors import ProviderError
from switchpoint.providers.base import (
    Adapter,
    UpstreamRequest,
    UpstreamResponse,
    reject_anthropic_only_blocks,
)
from switchpoint.providers.media_parts import openai_part
from switchpoint.providers.openai_media import media_body, media_response
from switchpoint.providers.openai_responses import (
    ResponsesStreamParser,
    is_response_object,
    parse_response,
    responses_body,
)
from switchpoint.providers.retry_after import retry_after
from switchpoint.streaming import Marks, SSEFrame

_encode = msgspec.json.encode
_MAX_MESSAGE = 500

# --- wire types of upstream answers (decoding only; unknown fields are ignored) --------------


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    prompt_cache_hit_tokens: int | None = None  # DeepSeek


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    id: str | None = None
    function: _Function | None = None
    index: int | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: Any = None
    tool_calls: list[_ToolCall] | None = None
    #: The deprecated single call, answered to a request with ``functions`` (passed through).
    function_call: _Function | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    id: str | None = None
    model: str | None = None
    created: int | None = None
    usage: _Usage | None = None


class _ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: _Message | None = None
    finish_reason: str | None = None


class _GroqExtra(msgspec.Struct):
    usage: _Usage | None = None


class _Chunk(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    created: int | None = None
    choices: list[_ChunkChoice] | None = None
    usage: _Usage | None = None
    error: Any = None
    x_groq: _GroqExtra | None = None


class _EmbeddingItem(msgspec.Struct):
    embedding: list[float] | str
    index: int = 0


class _EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int = 0


class _Embeddings(msgspec.Struct):
    data: list[_EmbeddingItem]
    model: str = ""
    usage: _EmbeddingUsage | None = None


_completion_decoder = msgspec.json.Decoder(_Completion)
_chunk_decoder = msgspec.json.Decoder(_Chunk)
_embeddings_decoder = msgspec.json.Decoder(_Embeddings)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
}


def _finish(reason: str | None) -> FinishReason | None:
    if reason is None:
        return None
    return _FINISH.get(reason, "stop")


def _usage(u: _Usage) -> Usage:
    cached = 0
    if u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens:
        cached = u.prompt_tokens_details.cached_tokens
    elif u.prompt_cache_hit_tokens:
        cached = u.prompt_cache_hit_tokens
    written = 0
    if u.prompt_tokens_details is not None and u.prompt_tokens_details.cache_write_tokens:
        written = u.prompt_tokens_details.cache_write_tokens
    reasoning = 0
    if u.completion_tokens_details is not None and u.completion_tokens_details.reasoning_tokens:
        reasoning = u.completion_tokens_details.reasoning_tokens
    return Usage(
        input_tokens=u.prompt_tokens or 0,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=u.completion_tokens or 0,
        reasoning_tokens=reasoning,
    )


def _thinking_text(m: _Message) -> str | None:
    if m.reasoning_content:
        return m.reasoning_content
    return m.reasoning if isinstance(m.reasoning, str) and m.reasoning else None


# --- building requests -----------------------------------------------------------------------


def _headers(deployment: Deployment) -> dict[str, str]:
    provider = deployment.provider
    headers = {"content-type": "application/json"}
    if provider.api_key is not None:
        if provider.azure_api_version:
            headers["api-key"] = provider.api_key.reveal()
        else:
            headers["authorization"] = "Bearer " + provider.api_key.reveal()
    for name, value in provider.headers:
        headers[name] = value.reveal() if isinstance(value, Secret) else value
    return headers


def _url(deployment: Deployment, operation: str) -> str:
    provider = deployment.provider
    if provider.azure_api_version:
        model = quote(deployment.model, safe="")
        version = quote(provider.azure_api_version, safe="")
        return f"{provider.base_url}/openai/deployments/{model}/{operation}?api-version={version}"
    return f"{provider.base_url}/{operation}"


def _image(part: ImagePart) -> dict[str, Any]:
    url = (
        part.url
        if part.url is not None
        else f"data:{part.media_type or 'image/png'};base64,{part.data or ''}"
    )
    image: dict[str, Any] = {"url": url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _texts(parts: list[Part] | list[TextPart | ImagePart]) -> list[str]:
    return [p.text for p in parts if isinstance(p, TextPart)]


def _text_content(texts: list[str]) -> str | list[dict[str, Any]]:
    if len(texts) == 1:
        return texts[0]
    if not texts:
        return ""
    return [{"type": "text", "text": t} for t in texts]


def _user_content(parts: list[Part], i: int) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            out.append(_image(p))
        elif isinstance(p, MediaPart):
            out.append(openai_part(p, f"messages[{i}].content"))
    return out or ""


def _tool_messages(parts: list[Part], out: list[dict[str, Any]]) -> list[Part]:
    """Append one ``tool`` message per tool result; return the images they carried."""
    images: list[Part] = []
    for p in parts:
        if isinstance(p, ToolResultPart):
            out.append(
                {"role": "tool", "tool_call_id": p.tool_call_id, "content": "\n\n".join(_texts(p.content))}
            )
            images.extend(c for c in p.content if isinstance(c, ImagePart))
    return images


def _assistant(m: Message) -> dict[str, Any]:
    texts = _texts(m.parts)
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
        for p in m.parts
        if isinstance(p, ToolCallPart)
    ]
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        msg: dict[str, Any] | None
        if m.role in ("system", "developer"):
            msg = {"role": m.role, "content": _text_content(_texts(m.parts))}
        elif m.role == "assistant":
            msg = _assistant(m)
        else:
            images = _tool_messages(m.parts, out)
            rest: list[Part] = (
                []
                if m.role == "tool"
                else [p for p in m.parts if isinstance(p, TextPart | ImagePart | MediaPart)]
            )
            content = images + rest
            only_results = any(isinstance(p, ToolResultPart) for p in m.parts) or m.role == "tool"
            msg = (
                {"role": "user", "content": _user_content(content, i)}
                if content or not only_results
                else None
            )
        if msg is not None:
            if m.name and msg["role"] != "tool":
                msg["name"] = m.name
            out.append(msg)
    return out


def _tool_choice(request: ChatRequest) -> str | dict[str, Any] | None:
    tc = request.tool_choice
    if tc is None:
        return None
    if tc.mode == "tool":
        return {"type": "function", "function": {"name": tc.name or ""}}
    return tc.mode


def _response_format(request: ChatRequest) -> dict[str, Any] | None:
    rf = request.response_format
    if rf is None:
        return None
    if rf.type != "json_schema":
        return {"type": rf.type}
    spec: dict[str, Any] = {"name": rf.name or "response"}
    if rf.description is not None:
        spec["description"] = rf.description
    if rf.schema is not None:
        spec["schema"] = rf.schema
    if rf.strict is not None:
        spec["strict"] = rf.strict
    return {"type": "json_schema", "json_schema": spec}


def _tools(request: ChatRequest) -> list[dict[str, Any]] | None:
    if not request.tools:
        return None
    tools = []
    for t in request.tools:
        fn: dict[str, Any] = {"name": t.name}
        if t.description is not None:
            fn["description"] = t.description
        fn["parameters"] = t.parameters
        if t.strict is not None:
            fn["strict"] = t.strict
        tools.append({"type": "function", "function": fn})
    return tools


def _translated_body(request: ChatRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": _messages(request.messages)}
    optional: dict[str, Any] = {
        "tools": _tools(request),
        "tool_choice": _tool_choice(request),
        "parallel_tool_calls": request.parallel_tool_calls,
        "response_format": _response_format(request),
        "max_completion_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop or None,
        "seed": request.seed,
        "user": request.user,
        "logprobs": request.logprobs,
        "top_logprobs": request.top_logprobs,
        "reasoning_effort": request.thinking.effort if request.thinking is not None else None,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _takes_cache_key(deployment: Deployment) -> bool:
    """Whether the upstream knows ``prompt_cache_key`` (OpenAI itself, Azure OpenAI, the
    simulator); other OpenAI-compatible servers may refuse a field they do not know."""
    provider = deployment.provider
    url = provider.base_url
    return provider.simulated or provider.azure_api_version is not None or "api.openai.com" in url


def _passthrough_body(request: ChatRequest, raw: dict[str, Any], model: str) -> dict[str, Any]:
    body = dict(raw)
    body["model"] = model
    if request.stream:
        body["stream"] = True
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return body


# --- errors ----------------------------------------------------------------------------------

_CONTEXT_RE = re.compile(
    r"maximum context length|context[ _]length|context window|too many tokens|prompt is too long", re.I
)
_FILTER_CODES = frozenset(
    {"content_filter", "content_policy_violation", "responsibleaipolicyviolation", "invalid_prompt"}
)
_STATUS_KIND = {
    401: "authentication",
    402: "rate_limited",
    403: "permission",
    404: "not_found",
    408: "timeout",
    409: "server_error",
    413: "request_too_large",
    422: "unprocessable",
    429: "rate_limited",
    500: "server_error",
    502: "server_error",
    503: "overloaded",
    504: "timeout",
    529: "overloaded",
}
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "tokens": 429,
    "requests": 429,
    "insufficient_quota": 429,
    "overloaded_error": 503,
    "service_unavailable_error": 503,
}


def _error_fields(body: bytes) -> tuple[str, str, str, str | None]:
    """(message, type, code, param) from any of the error shapes seen in this family."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return "", "", "", None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    return _fields_of(data.get("error", data) if isinstance(data, dict) else None)


def _fields_of(err: Any) -> tuple[str, str, str, str | None]:
    if isinstance(err, str):
        return err, "", "", None
    if not isinstance(err, dict):
        return "", "", "", None
    message = err.get("message")
    param = err.get("param")
    return (
        message if isinstance(message, str) else "",
        str(err.get("type") or ""),
        str(err.get("code") or ""),
        param if isinstance(param, str) else None,
    )


def _kind(status: int, message: str, etype: str, code: str) -> str:
    lowered = code.lower()
    if lowered == "context_length_exceeded" or (status in (400, 413, 422) and _CONTEXT_RE.search(message)):
        return "context_too_long"
    if lowered in _FILTER_CODES or etype.lower() in _FILTER_CODES:
        return "content_filtered"
    if status == 400:
        return "bad_request"
    kind = _STATUS_KIND.get(status)
    if kind is not None:
        return kind
    return "server_error" if status >= 500 else "bad_request"


def _provider_error(
    status: int | None, headers: Any, body: bytes, deployment: Deployment, *, fields: Any = None
) -> ProviderError:
    message, etype, code, param = fields if fields is not None else _error_fields(body)
    if status is None:
        status = int(code) if code.isdigit() and 400 <= int(code) < 600 else _TYPE_STATUS.get(etype, 500)
    if not message:
        message = f"upstream answered HTTP {status} without an error message"
    elif len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    return ProviderError(
        _kind(status, message, etype, code),
        message,
        upstream_status=status if headers is not None else None,
        retry_after=retry_after(headers) if headers is not None else None,
        deployment=deployment.name,
        param=param,
        code=code or None,
    )


def _stream_error(err: Any, deployment: Deployment) -> ProviderError:
    return _provider_error(None, None, b"", deployment, fields=_fields_of(err))


# --- parsing ---------------------------------------------------------------------------------


def _invalid(what: str) -> ProviderError:
    return ProviderError("invalid_response", f"upstream returned an invalid {what}")


def _response_parts(m: _Message) -> list[Part]:
    parts: list[Part] = []
    thinking = _thinking_text(m)
    if thinking:
        parts.append(ThinkingPart(text=thinking))
    if m.content:
        parts.append(TextPart(text=m.content))
    elif m.refusal:
        parts.append(TextPart(text=m.refusal))
    for tc in m.tool_calls or ():
        fn = tc.function or _Function()
        parts.append(ToolCallPart(id=tc.id or "", name=fn.name or "", arguments=fn.arguments or "{}"))
    if m.function_call is not None:
        fn = m.function_call
        parts.append(ToolCallPart(id="", name=fn.name or "", arguments=fn.arguments or "{}"))
    return parts


def _little_endian_floats(data: str) -> list[float]:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("embeddings body (bad base64)") from None
    if len(raw) % 4:
        raise _invalid("embeddings body (base64 length is not a multiple of 4)")
    values = array.array("f", raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


#: Frames a forwarded stream still parses after commit: a ``usage`` that is not null (also Groq's
#: ``x_groq.usage``), a finish reason (a stream may end without ``[DONE]``), an error, ``[DONE]``,
#: and, to stay on the safe side, any ASCII letter spelled as an escape (``"\u0075sage"``).
#: Key names cannot hide in text: a quote inside a JSON string is always escaped. Usage and the
#: finish are reported once, near the end (usage cumulatively: ``Usage.merge`` keeps the
#: largest), so a read's last frame with either stands for any earlier one; ``[DONE]`` is the
#: last frame of a stream, so it is looked for from the end too (the text ``[DONE]`` inside an
#: earlier chunk's content needs no parsing).
_PASSTHROUGH_MARKS = Marks(
    b'"error"',
    (b"\\", re.compile(rb"\\u00[4-7]")),
    latest=(
        (b"[DONE]", re.compile(rb"\[DONE\]")),
        (b'"usage"', re.compile(rb'"usage"(?!\s*:\s*null)')),
        (b'"finish_reason"', re.compile(rb'"finish_reason"(?!\s*:\s*null)')),
    ),
)


class OpenAIStreamParser:
    """Parses one Chat Completions stream into canonical events."""

    __slots__ = ("_deployment", "_done", "_finished", "_refusal_only", "_started", "_text_seen")

    passthrough_marks = _PASSTHROUGH_MARKS

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._started = False
        self._done = False
        self._finished = False
        self._text_seen = False
        self._refusal_only = False

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        data = frame.data
        if not data or data == b"[DONE]":
            self._done = self._done or bool(data)
            return []
        try:
            chunk = _chunk_decoder.decode(data)
        except msgspec.DecodeError:
            raise _invalid("stream chunk") from None
        if chunk.error is not None:
            raise _stream_error(chunk.error, self._deployment)
        events: list[StreamEvent] = []
        if not self._started and (chunk.id or chunk.choices):  # Azure opens with an anonymous filter chunk
            self._started = True
            events.append(
                MessageStart(id=chunk.id or "", model=chunk.model or "", created=chunk.created or 0)
            )
        for choice in chunk.choices or ():
            if choice.index == 0:
                self._choice(choice, events)
        usage = chunk.usage if chunk.usage is not None or chunk.x_groq is None else chunk.x_groq.usage
        if usage is not None:
            events.append(UsageUpdate(usage=_usage(usage)))
        return events

    def _choice(self, choice: _ChunkChoice, events: list[StreamEvent]) -> None:
        delta = choice.delta
        if delta is not None:
            thinking = _thinking_text(delta)
            if thinking:
                events.append(ThinkingDelta(text=thinking))
            if delta.content:
                self._text_seen = True
                events.append(TextDelta(text=delta.content))
            if delta.refusal:
                self._refusal_only = not self._text_seen
                events.append(TextDelta(text=delta.refusal))
            for i, tc in enumerate(delta.tool_calls or ()):
                fn = tc.function or _Function()
                index = tc.index if tc.index is not None else i
                events.append(
                    ToolCallDelta(index=index, id=tc.id, name=fn.name, arguments=fn.arguments or "")
                )
            if delta.function_call is not None:
                fn = delta.function_call
                events.append(ToolCallDelta(index=0, name=fn.name, arguments=fn.arguments or ""))
        reason = _finish(choice.finish_reason)
        if reason is not None:
            if reason == "stop" and self._refusal_only:
                reason = "content_filter"
            self._finished = True
            events.append(FinishEvent(reason=reason))

    def close(self) -> list[StreamEvent]:
        if not (self._done or self._finished):
            raise ProviderError(
                "invalid_response",
                "upstream stream ended before completion",
                deployment=self._deployment.name,
            )
        return []


class OpenAIAdapter(Adapter):
    family = "openai"

    def build_chat(self, request: ChatRequest, deployment: Deployment) -> UpstreamRequest:
        operation = "chat/completions"
        if request.dialect == "openai" and request.raw is not None:
            body = _passthrough_body(request, request.raw, deployment.model)
        elif request.responses_body is not None and deployment.responses_api:
            body, operation = responses_body(request, deployment), "responses"
        else:
            reject_anthropic_only_blocks(request, self.family)
            body = _translated_body(request, deployment.model)
        plan = request.prompt_cache
        if plan is not None and plan.key and deployment.prompt_cache and _takes_cache_key(deployment):
            body.setdefault("prompt_cache_key", plan.key)
        return UpstreamRequest(
            method="POST",
            url=_url(deployment, operation),
            headers=_headers(deployment),
            body=_encode(body),
            stream=request.stream,
        )

    def parse_chat(self, response: UpstreamResponse, deployment: Deployment) -> ChatResponse:
        try:
            completion = _completion_decoder.decode(response.body)
        except msgspec.DecodeError:
            completion = None
        if completion is None or not completion.choices:
            if deployment.responses_api and is_response_object(response.body):  # a forwarded Responses call
                return parse_response(response.body, deployment)
            raise _invalid(
                "chat completion body" if completion is None else "chat completion body (no choices)"
            )
        choice = completion.choices[0]
        parts = _response_parts(choice.message)
        finish = _finish(choice.finish_reason)
        if choice.message.refusal and not choice.message.content:
            finish = "content_filter"
        return ChatResponse(
            id=completion.id or "",
            model=completion.model or deployment.model,
            parts=parts,
            finish_reason=finish,
            usage=_usage(completion.usage) if completion.usage is not None else Usage(),
            created=completion.created or 0,
            family=self.family,
            raw=response.body,
        )

    def stream_parser(
        self, request: ChatRequest, deployment: Deployment
    ) -> OpenAIStreamParser | ResponsesStreamParser:
        if request.responses_body is not None and deployment.responses_api and request.raw is None:
            return ResponsesStreamParser(deployment)
        return OpenAIStreamParser(deployment)

    def classify(self, response: UpstreamResponse, deployment: Deployment) -> ProviderError:
        return _provider_error(response.status, response.headers, response.body, deployment)

    def build_media(self, request: MediaRequest, deployment: Deployment) -> UpstreamRequest:
        body, content_type = media_body(request, deployment.model)
        headers = {**_headers(deployment), "content-type": content_type}
        return UpstreamRequest(
            method="POST", url=_url(deployment, request.operation), headers=headers, body=body
        )

    def parse_media(self, response: UpstreamResponse, request: MediaRequest) -> MediaResponse:
        return media_response(request, response.body, response.headers.get("content-type", ""))

    def build_embeddings(self, request: EmbeddingRequest, deployment: Deployment) -> UpstreamRequest:
        if request.raw is not None:
            body = dict(request.raw)
            body["model"] = deployment.model
        else:
            body = {"model": deployment.model, "input": request.inputs}
            if request.encoding_format == "base64":
                body["encoding_format"] = "base64"
            if request.dimensions is not None:
                body["dimensions"] = request.dimensions
            if request.user is not None:
                body["user"] = request.user
        return UpstreamRequest(
            method="POST",
            url=_url(deployment, "embeddings"),
            headers=_headers(deployment),
            body=_encode(body),
        )

    def parse_embeddings(self, response: UpstreamResponse, deployment: Deployment) -> EmbeddingResponse:
        try:
            decoded = _embeddings_decoder.decode(response.body)
        except msgspec.DecodeError:
            raise _invalid("embeddings body") from None
        data = [
            Embedding(
                index=item.index,
                vector=_little_endian_floats(item.embedding)
                if isinstance(item.embedding, str)
                else item.embedding,
            )
            for item in decoded.data
        ]
        tokens = decoded.usage.prompt_tokens if decoded.usage is not None else 0
        return EmbeddingResponse(
            model=decoded.model or deployment.model,
            data=data,
            usage=Usage(input_tokens=tokens),
            family=self.family,
            raw=response.body,
        )
