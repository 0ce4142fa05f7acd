"""The Gemini wire: generateContent, streamGenerateContent, embedContent, batchEmbedContents."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import msgspec

from .common import Frames, Headers, SimError, bearer, header, invalid_body, new_id
from .content import Answer, ChatCall, Conversation, ToolSpec, Usage, media_seen
from .embeddings import embed

_THINKING_TOKENS = 12
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


class _Blob(msgspec.Struct):
    mimeType: str = ""


class _FunctionCall(msgspec.Struct):
    name: str = ""
    args: dict[str, Any] | None = None


class _FunctionResponse(msgspec.Struct):
    name: str = ""
    response: dict[str, Any] | None = None


class _Part(msgspec.Struct):
    text: str | None = None
    thought: bool | None = None
    inlineData: _Blob | None = None
    fileData: _Blob | None = None
    functionCall: _FunctionCall | None = None
    functionResponse: _FunctionResponse | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] = msgspec.field(default_factory=list)
    role: Literal["user", "model", "function", "tool"] | None = None


class _Declaration(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None
    parametersJsonSchema: Any = None


class _Tool(msgspec.Struct):
    functionDeclarations: list[_Declaration] | None = None


class _CallingConfig(msgspec.Struct):
    mode: Literal["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"] | None = None
    allowedFunctionNames: list[str] | None = None


class _ToolConfig(msgspec.Struct):
    functionCallingConfig: _CallingConfig | None = None


class _ThinkingConfig(msgspec.Struct):
    includeThoughts: bool | None = None
    thinkingBudget: int | None = None
    thinkingLevel: str | None = None


class _GenerationConfig(msgspec.Struct):
    maxOutputTokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    responseMimeType: str | None = None
    responseSchema: dict[str, Any] | None = None
    responseJsonSchema: Any = None
    thinkingConfig: _ThinkingConfig | None = None


class GenerateBody(msgspec.Struct):
    contents: Annotated[list[_Content], msgspec.Meta(min_length=1)]
    systemInstruction: _Content | None = None
    tools: list[_Tool] | None = None
    toolConfig: _ToolConfig | None = None
    generationConfig: _GenerationConfig | None = None


class _EmbedConfig(msgspec.Struct):
    outputDimensionality: Annotated[int, msgspec.Meta(ge=1, le=8192)] | None = None


class EmbedBody(msgspec.Struct):
    content: _Content
    outputDimensionality: Annotated[int, msgspec.Meta(ge=1, le=8192)] | None = None
    embedContentConfig: _EmbedConfig | None = None


class BatchEmbedBody(msgspec.Struct):
    requests: Annotated[list[EmbedBody], msgspec.Meta(min_length=1)]


_GENERATE = msgspec.json.Decoder(GenerateBody)
_EMBED = msgspec.json.Decoder(EmbedBody)
_BATCH = msgspec.json.Decoder(BatchEmbedBody)
_encode = msgspec.json.encode

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


def error_body(err: SimError) -> bytes:
    status = _STATUS.get(err.status, "INVALID_ARGUMENT" if err.status < 500 else "INTERNAL")
    error: dict[str, Any] = {
        "code": err.status,
        "message": err.message or _MESSAGES.get(err.status, "Request failed."),
        "status": status,
    }
    if err.retry_after_s is not None and err.status in (429, 503):
        delay = f"{err.retry_after_s:g}s"
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]
    return _encode({"error": error})


def check_auth(headers: Headers, query: bytes) -> SimError | None:
    if header(headers, b"x-goog-api-key") or bearer(headers):
        return None
    if query and parse_qs(query.decode("latin-1")).get("key"):
        return None
    return SimError(
        401,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def response_headers() -> Headers:
    return []


def _content_text(content: _Content, conv: Conversation) -> str:
    texts: list[str] = []
    for part in content.parts:
        if part.text is not None:
            texts.append(part.text)
        elif part.inlineData is not None or part.fileData is not None:
            blob = part.inlineData or part.fileData
            if blob is not None and blob.mimeType.startswith("image/"):
                conv.images += 1
            elif blob is not None:
                media_seen(conv, blob.mimeType)
        elif part.functionCall is not None:
            call = part.functionCall
            texts.append(call.name + (_encode(call.args).decode() if call.args else ""))
        elif part.functionResponse is not None:
            texts.append(_encode(part.functionResponse.response or {}).decode())
    return "\n".join(texts)


def _tools(body: GenerateBody, conv: Conversation) -> None:
    for tool in body.tools or ():
        for decl in tool.functionDeclarations or ():
            schema = decl.parametersJsonSchema if decl.parametersJsonSchema is not None else decl.parameters
            conv.tools.append(ToolSpec(decl.name, schema))
            conv.tool_chars += len(decl.name) + (len(_encode(schema)) if schema else 0)
    calling = body.toolConfig.functionCallingConfig if body.toolConfig else None
    if calling is None:
        return
    if calling.mode == "NONE":
        conv.tool_mode = "none"
    elif calling.mode == "ANY":
        conv.tool_mode = "any"
        allowed = [n for n in calling.allowedFunctionNames or () if any(t.name == n for t in conv.tools)]
        if allowed and len(allowed) < len(conv.tools):
            conv.forced_tool = allowed[0]


def _generation(body: GenerateBody, conv: Conversation, call: ChatCall) -> None:
    gen = body.generationConfig
    if gen is None:
        return
    schema = gen.responseJsonSchema if gen.responseJsonSchema is not None else gen.responseSchema
    if schema is not None:
        conv.json_mode, conv.json_schema = True, schema
    elif gen.responseMimeType == "application/json":
        conv.json_mode = True
    thinking = gen.thinkingConfig
    if thinking is not None and thinking.thinkingBudget != 0:
        conv.thinking_tokens = _THINKING_TOKENS
        call.show_thinking = bool(thinking.includeThoughts)
    conv.max_tokens = gen.maxOutputTokens


def parse_chat(raw: bytes, model: str, *, stream: bool, sse: bool) -> ChatCall:
    try:
        body = _GENERATE.decode(raw)
    except msgspec.MsgspecError as exc:
        raise invalid_body(exc) from None
    conv = Conversation(model=model, family="gemini")
    call = ChatCall(conv=conv, stream=stream, sse=sse)
    if body.systemInstruction is not None:
        conv.turns.append(("system", _content_text(body.systemInstruction, conv)))
    for i, content in enumerate(body.contents):
        if not content.parts:
            raise SimError(
                400, f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        conv.turns.append((content.role or "user", _content_text(content, conv)))
    last = body.contents[-1]
    responses = [p.functionResponse for p in last.parts if p.functionResponse is not None]
    if responses:
        conv.tool_result = _encode(responses[-1].response or {}).decode()
    elif last.role in (None, "user"):
        conv.last_user_text = conv.turns[-1][1]
    conv.ends_with_user = last.role in (None, "user", "function", "tool")
    _tools(body, conv)
    _generation(body, conv, call)
    return call


def _usage(u: Usage) -> dict[str, Any]:
    visible = u.output_tokens - u.thinking_tokens
    out: dict[str, Any] = {
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": visible,
        "totalTokenCount": u.input_tokens + u.output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.input_tokens}],
    }
    if u.cached_tokens:
        out["cachedContentTokenCount"] = u.cached_tokens
        out["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.cached_tokens}]
    if u.thinking_tokens:
        out["thoughtsTokenCount"] = u.thinking_tokens
    return out


def _call_part(c: Any) -> dict[str, Any]:
    return {"functionCall": {"name": c.name, "args": c.arguments}}


def render_chat(call: ChatCall, answer: Answer) -> bytes:
    parts: list[dict[str, Any]] = []
    if answer.thinking and call.show_thinking:
        parts.append({"text": "".join(answer.thinking), "thought": True})
    if answer.text:
        parts.append({"text": answer.content})
    parts.extend(_call_part(c) for c in answer.calls)
    candidate = {
        "content": {"parts": parts, "role": "model"},
        "finishReason": _FINISH[answer.finish],
        "index": 0,
    }
    return _encode(
        {
            "candidates": [candidate],
            "usageMetadata": _usage(answer.usage),
            "modelVersion": call.conv.model,
            "responseId": new_id(""),
        }
    )


def stream_chat(call: ChatCall, answer: Answer) -> Frames:
    tail = b',"modelVersion":' + _encode(call.conv.model) + b',"responseId":' + _encode(new_id("")) + b"}"
    open_ = b'{"candidates":[{"content":{"parts":['
    close = b'],"role":"model"},"index":0}]' + tail
    chunks: list[bytes] = []
    if call.show_thinking:
        chunks += [open_ + b'{"text":' + _encode(p) + b',"thought":true}' + close for p in answer.thinking]
    chunks += [open_ + b'{"text":' + _encode(p) + b"}" + close for p in answer.text]
    chunks += [open_ + _encode(_call_part(c)) + close for c in answer.calls]
    final = (
        open_
        + b'{"text":""}],"role":"model"},"finishReason":"'
        + _FINISH[answer.finish].encode()
        + b'","index":0}],"usageMetadata":'
        + _encode(_usage(answer.usage))
        + tail
    )
    if call.sse:
        return Frames(
            content=[b"data: " + c + b"\r\n\r\n" for c in chunks], post=[b"data: " + final + b"\r\n\r\n"]
        )
    frames = Frames(pre=[b"["], media_type=b"application/json")
    frames.content = [(b",\r\n" if i else b"") + c for i, c in enumerate(chunks)]
    frames.post = [(b",\r\n" if chunks else b"") + final, b"]"]
    return frames


def _embed_text(body: EmbedBody) -> str:
    return "\n".join(p.text for p in body.content.parts if p.text is not None)


def _dims(body: EmbedBody, default: int) -> int:
    config = body.embedContentConfig
    return (config.outputDimensionality if config else None) or body.outputDimensionality or default


def parse_embed(raw: bytes, batch: bool) -> list[EmbedBody]:
    try:
        return _BATCH.decode(raw).requests if batch else [_EMBED.decode(raw)]
    except msgspec.MsgspecError as exc:
        raise invalid_body(exc) from None


def embed_texts(bodies: list[EmbedBody]) -> list[str]:
    return [_embed_text(b) for b in bodies]


def render_embed(bodies: list[EmbedBody], batch: bool, default_dims: int) -> bytes:
    vectors = [{"values": embed(_embed_text(b), _dims(b, default_dims))} for b in bodies]
    return _encode({"embeddings": vectors} if batch else {"embedding": vectors[0]})
