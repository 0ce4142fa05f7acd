"""The Gemini wire family (``generateContent`` on the Generative Language API, ``v1beta``).

Clients never speak Gemini, so requests are always built from the canonical model.

Decisions worth knowing:

* **Images by URL** become ``fileData {fileUri, mimeType}`` with the MIME type guessed from the
  file extension (``image/jpeg`` when unknown). Gemini fetches only some URLs (its Files API,
  YouTube, and public URLs on newer models); when it refuses one, its error is the answer.
* **Tool schemas** go in ``parametersJsonSchema`` and structured output in
  ``responseJsonSchema``: both take JSON Schema as is (only ``$schema`` is dropped), so no lossy
  conversion to the older OpenAPI-subset ``Schema`` is needed.
* **Reasoning effort -> thinking budget**: minimal 512, low 1,024, medium 8,192, high 24,576
  tokens (every value is valid on the 2.5 Pro, Flash and Flash-Lite ranges). An explicit
  ``budget_tokens`` wins; ``enabled: false`` sends a budget of 0.
* **Thought signatures**: thought parts become :class:`ThinkingPart` with their signature; a
  signature on a function call or text part is kept in the canonical part's ``extra``
  (``thoughtSignature``) and sent back on the same part. Gemini 3 rejects a replayed function
  call without its signature (clients that drop ``extra`` lose it), so for those models a model
  turn whose calls carry none gets Google's documented ``skip_thought_signature_validator``
  value on its first call. Streams carry signatures of thought parts only.
* **Tool results** become ``functionResponse {name, response}`` with ``response`` the result's
  JSON object when the text is one, else ``{"content": text}`` (``{"error": ...}`` when the
  result is an error). Images in a tool result follow it as sibling parts of the user turn.
* Tool-call ids: Gemini's ``functionCall.id`` when present, else ``call_`` + a short hash of
  name, arguments and position (the same for a streamed and a non-streamed answer).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
    FinishReason,
    ImagePart,
    MediaPart,
    Message,
    MessageStart,
    Part,
    StreamEvent,
    TextDelta,
    TextPart,
    Thinking,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallPart,
    ToolResultPart,
    UsageUpdate,
)
from switchpoint.canonical import (
    Usage as CanonicalUsage,
)
from switchpoint.config import Deployment, Secret
from switchpoint.errors import ProviderError
from switchpoint.providers.base import (
    Adapter,
    UpstreamRequest,
    UpstreamResponse,
    reject_anthropic_only_blocks,
)
from switchpoint.providers.media_parts import gemini_part
from switchpoint.streaming import SSEFrame

__all__ = ["GeminiAdapter", "GeminiStreamParser"]

JSONObject = dict[str, Any]

#: Reasoning effort -> ``thinkingBudget`` tokens.
EFFORT_BUDGET: dict[str, int] = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
#: Google's documented stand-in for a thought signature that was not kept,
#: ``skip_thought_signature_validator``, in standard base64 (the field is ``bytes``: the same
#: 24 bytes in the alphabet the published schema's ``format: byte`` requires).
SKIP_SIGNATURE = "skip/thought/signature/validator"
MAX_MESSAGE = 500

_FILTER_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
_MIME_BY_EXT = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
}
_MAJOR_RE = re.compile(r"(?:^|/)gemini-(\d+)")
_CONTEXT_RE = re.compile(
    r"exceeds the maximum number of tokens|input token count|too many tokens|context (?:length|window)"
    r"|prompt is too long"
)
_DELAY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_GOOGLE_KEY_RE = re.compile(r"AIza[0-9A-Za-z_\-]{20,}")

# --- upstream wire shapes (decoding only what is used; unknown fields are ignored) -----------


class _FunctionCall(msgspec.Struct):
    name: str = ""
    args: msgspec.Raw = msgspec.Raw()
    id: str | None = None


class _Part(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool = False
    thought_signature: str | None = None
    function_call: _FunctionCall | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] = []
    role: str | None = None


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None


class _UsageMetadata(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0
    cached_content_token_count: int = 0
    candidates_token_count: int = 0
    response_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0


class _PromptFeedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class _Error(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[Any] = []


class _Response(msgspec.Struct, rename="camel"):
    candidates: list[_Candidate] = []
    prompt_feedback: _PromptFeedback | None = None
    usage_metadata: _UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    error: _Error | None = None


class _ErrorBody(msgspec.Struct):
    error: _Error


class _Values(msgspec.Struct):
    values: list[float] = []


class _EmbedUsage(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0


class _EmbedResponse(msgspec.Struct, rename="camel"):
    embedding: _Values | None = None
    embeddings: list[_Values] | None = None
    usage_metadata: _EmbedUsage | None = None


_RESPONSE = msgspec.json.Decoder(_Response)
_EMBED_RESPONSE = msgspec.json.Decoder(_EmbedResponse)
_ERROR_BODY = msgspec.json.Decoder(_ErrorBody)
_ERROR_LIST = msgspec.json.Decoder(list[_ErrorBody])
_ENCODE = msgspec.json.encode


# --- request building ------------------------------------------------------------------------


def _model_path(base_url: str, model: str) -> str:
    """``{base}/models/{model}``; a full resource name (``tunedModels/x``) is kept as is."""
    return f"{base_url}/{model}" if "/" in model else f"{base_url}/models/{model}"


def _headers(deployment: Deployment) -> dict[str, str]:
    provider = deployment.provider
    headers = {"content-type": "application/json"}
    if provider.api_key is not None:
        headers["x-goog-api-key"] = provider.api_key.reveal()
    for name, value in provider.headers:
        headers[name] = value.reveal() if isinstance(value, Secret) else value
    return headers


def _major_version(model: str) -> int:
    m = _MAJOR_RE.search(model)
    return int(m.group(1)) if m else 0


def _image(part: ImagePart) -> JSONObject:
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type or "image/jpeg", "data": part.data}}
    url = part.url or ""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";", 1)[0] or "image/jpeg"
        return {"inlineData": {"mimeType": mime, "data": data}}
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"fileData": {"fileUri": url, "mimeType": part.media_type or _MIME_BY_EXT.get(ext, "image/jpeg")}}


def _signature(extra: dict[str, Any] | None) -> str | None:
    value = extra.get("thoughtSignature") if extra else None
    return value if isinstance(value, str) else None


def _function_call(part: ToolCallPart, where: str) -> JSONObject:
    try:
        args = msgspec.json.decode(part.arguments) if part.arguments.strip() else {}
    except msgspec.DecodeError:
        args = None
    if not isinstance(args, dict):
        raise ProviderError(
            "bad_request",
            f"tool call '{part.name}' ({where}) has arguments that are not a JSON object; "
            "Gemini accepts only objects",
            param=where,
        )
    out: JSONObject = {"functionCall": {"name": part.name, "args": args, "id": part.id}}
    sig = _signature(part.extra)
    if sig is not None:
        out["thoughtSignature"] = sig
    return out


def _tool_response(text: str, is_error: bool) -> JSONObject:
    value: Any = text
    if text.lstrip().startswith("{"):
        try:
            value = msgspec.json.decode(text)
        except msgspec.DecodeError:
            value = text
    if is_error:
        return {"error": value}
    return value if isinstance(value, dict) else {"content": text}


def _function_response(part: ToolResultPart, names: dict[str, str], where: str) -> list[JSONObject]:
    name = part.name or names.get(part.tool_call_id)
    if not name:
        raise ProviderError(
            "bad_request",
            f"tool result ({where}) refers to call '{part.tool_call_id}', which no earlier tool call "
            "has; Gemini needs the tool's name",
            param=where,
        )
    text = "".join(p.text for p in part.content if isinstance(p, TextPart))
    response = _tool_response(text, part.is_error)
    out: list[JSONObject] = [
        {"functionResponse": {"name": name, "id": part.tool_call_id, "response": response}}
    ]
    out.extend(_image(p) for p in part.content if isinstance(p, ImagePart))
    return out


def _parts(message: Message, names: dict[str, str], index: int) -> list[JSONObject]:
    out: list[JSONObject] = []
    for j, part in enumerate(message.parts):
        if isinstance(part, TextPart):
            if part.text:
                item: JSONObject = {"text": part.text}
                sig = _signature(part.extra)
                if sig is not None:
                    item["thoughtSignature"] = sig
                out.append(item)
        elif isinstance(part, ImagePart):
            out.append(_image(part))
        elif isinstance(part, MediaPart):
            out.append(gemini_part(part, f"messages[{index}].content[{j}]"))
        elif isinstance(part, ToolCallPart):
            names[part.id] = part.name
            out.append(_function_call(part, f"messages[{index}].parts[{j}]"))
        elif isinstance(part, ToolResultPart):
            out.extend(_function_response(part, names, f"messages[{index}].parts[{j}]"))
        elif part.signature and part.redacted is None:  # ThinkingPart; unsigned ones are dropped
            out.append({"text": part.text, "thought": True, "thoughtSignature": part.signature})
    return out


def _contents(messages: list[Message]) -> tuple[list[JSONObject], list[JSONObject]]:
    """(systemInstruction parts, contents) with consecutive same-role turns merged."""
    system: list[JSONObject] = []
    contents: list[JSONObject] = []
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            text = message.text()
            if text:
                system.append({"text": text})
            continue
        parts = _parts(message, names, i)
        if not parts:
            continue
        role = "model" if message.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _fill_signatures(contents: list[JSONObject]) -> None:
    """Gemini 3: give a model turn's first function call a stand-in signature when none has one."""
    for content in contents:
        if content["role"] != "model":
            continue
        calls = [p for p in content["parts"] if "functionCall" in p]
        if calls and not any("thoughtSignature" in p for p in calls):
            calls[0]["thoughtSignature"] = SKIP_SIGNATURE


def _json_schema(schema: JSONObject) -> JSONObject:
    if "$schema" in schema:
        return {k: v for k, v in schema.items() if k != "$schema"}
    return schema


def _tools(request: ChatRequest) -> list[JSONObject]:
    declarations: list[JSONObject] = []
    for tool in request.tools or ():
        decl: JSONObject = {"name": tool.name}
        if tool.description:
            decl["description"] = tool.description
        if tool.parameters:
            decl["parametersJsonSchema"] = _json_schema(tool.parameters)
        declarations.append(decl)
    return [{"functionDeclarations": declarations}]


def _tool_config(request: ChatRequest) -> JSONObject | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if choice.mode == "tool":
        if not choice.name:
            raise ProviderError("bad_request", "tool_choice names no tool", param="tool_choice")
        config: JSONObject = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    else:
        config = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice.mode]}
    return {"functionCallingConfig": config}


def _thinking_config(thinking: Thinking) -> JSONObject:
    if not thinking.enabled:
        return {"thinkingBudget": 0}
    config: JSONObject = {"includeThoughts": True}
    if thinking.budget_tokens is not None:
        config["thinkingBudget"] = thinking.budget_tokens
    elif thinking.effort is not None:
        config["thinkingBudget"] = EFFORT_BUDGET[thinking.effort]
    return config


def _generation_config(request: ChatRequest) -> JSONObject:
    config: JSONObject = {"candidateCount": 1}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.top_k is not None:
        config["topK"] = request.top_k
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = request.stop
    if request.seed is not None:
        config["seed"] = request.seed
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            config["responseJsonSchema"] = _json_schema(fmt.schema)
    if request.thinking is not None:
        config["thinkingConfig"] = _thinking_config(request.thinking)
    if request.logprobs:
        config["responseLogprobs"] = True
        if request.top_logprobs is not None:
            config["logprobs"] = request.top_logprobs
    return config


def build_body(request: ChatRequest, deployment: Deployment) -> JSONObject:
    """The ``GenerateContentRequest`` for a canonical request."""
    system, contents = _contents(request.messages)
    if _major_version(deployment.model) >= 3:
        _fill_signatures(contents)
    body: JSONObject = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = _tools(request)
        tool_config = _tool_config(request)
        if tool_config is not None:
            body["toolConfig"] = tool_config
    body["generationConfig"] = _generation_config(request)
    return body


# --- response parsing ------------------------------------------------------------------------


def _invalid(what: str, deployment: Deployment) -> ProviderError:
    return ProviderError("invalid_response", f"Gemini returned {what}", deployment=deployment.name)


def _call_id(call: _FunctionCall, arguments: str, position: int) -> str:
    if call.id:
        return call.id
    digest = hashlib.blake2b(f"{call.name}\x00{arguments}\x00{position}".encode(), digest_size=9).hexdigest()
    return f"call_{digest}"


def _arguments(call: _FunctionCall) -> str:
    raw = bytes(call.args)
    return raw.decode() if raw and raw != b"null" else "{}"


def _usage(meta: _UsageMetadata | None) -> CanonicalUsage:
    if meta is None:
        return CanonicalUsage()
    candidates = meta.candidates_token_count or meta.response_token_count
    return CanonicalUsage(
        input_tokens=meta.prompt_token_count + meta.tool_use_prompt_token_count,
        cached_input_tokens=meta.cached_content_token_count,
        output_tokens=candidates + meta.thoughts_token_count,
        reasoning_tokens=meta.thoughts_token_count,
    )


def _finish(reason: str | None, saw_calls: bool) -> FinishReason:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTER_REASONS:
        return "content_filter"
    return "tool_calls" if saw_calls else "stop"


def _output_parts(parts: list[_Part]) -> tuple[list[Part], bool]:
    """Canonical parts (consecutive text and thought runs merged) and whether a call was seen."""
    out: list[Part] = []
    calls = 0
    for part in parts:
        sig = part.thought_signature
        if part.function_call is not None:
            arguments = _arguments(part.function_call)
            call = ToolCallPart(
                id=_call_id(part.function_call, arguments, calls),
                name=part.function_call.name,
                arguments=arguments,
                extra={"thoughtSignature": sig} if sig else None,
            )
            out.append(call)
            calls += 1
        elif part.thought:
            last = out[-1] if out else None
            if isinstance(last, ThinkingPart) and last.signature is None:
                last.text += part.text or ""
                last.signature = sig
            else:
                out.append(ThinkingPart(text=part.text or "", signature=sig))
        elif part.text:
            last = out[-1] if out else None
            if isinstance(last, TextPart):
                last.text += part.text
            else:
                last = TextPart(text=part.text)
                out.append(last)
            if sig:
                last.extra = {"thoughtSignature": sig}
    return out, calls > 0


def _new_id() -> str:
    return f"gen-{uuid.uuid4().hex}"


def parse_body(body: bytes, deployment: Deployment) -> ChatResponse:
    """A ``GenerateContentResponse`` body as a canonical response."""
    try:
        resp = _RESPONSE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise _invalid("a body that is not a GenerateContentResponse", deployment) from None
    if resp.error is not None:
        raise _error(resp.error.code or 500, resp.error, {}, deployment)
    response_id = resp.response_id or _new_id()
    model = resp.model_version or deployment.model
    usage = _usage(resp.usage_metadata)
    if not resp.candidates:
        block = resp.prompt_feedback.block_reason if resp.prompt_feedback else None
        if not block:
            raise _invalid("no candidates and no block reason", deployment)
        return ChatResponse(
            id=response_id,
            model=model,
            parts=[],
            finish_reason="content_filter",
            usage=usage,
            created=int(time.time()),
            family="gemini",
            raw=body,
            extra={"blockReason": block},
        )
    candidate = resp.candidates[0]
    parts, saw_calls = _output_parts(candidate.content.parts if candidate.content else [])
    return ChatResponse(
        id=response_id,
        model=model,
        parts=parts,
        finish_reason=_finish(candidate.finish_reason, saw_calls),
        usage=usage,
        created=int(time.time()),
        family="gemini",
        raw=body,
    )


# --- errors ----------------------------------------------------------------------------------

_KIND_BY_STATUS = {
    "RESOURCE_EXHAUSTED": "rate_limited",
    "INVALID_ARGUMENT": "bad_request",
    "FAILED_PRECONDITION": "bad_request",
    "OUT_OF_RANGE": "bad_request",
    "UNAUTHENTICATED": "authentication",
    "PERMISSION_DENIED": "permission",
    "NOT_FOUND": "not_found",
    "UNAVAILABLE": "overloaded",
    "INTERNAL": "server_error",
    "UNKNOWN": "server_error",
    "DEADLINE_EXCEEDED": "timeout",
}
_KIND_BY_CODE = {
    400: "bad_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    413: "request_too_large",
    422: "unprocessable",
    429: "rate_limited",
    500: "server_error",
    503: "overloaded",
    504: "timeout",
}


def _kind(code: int, err: _Error | None) -> str:
    kind = _KIND_BY_STATUS.get(err.status) if err is not None else None
    if kind is None:
        kind = _KIND_BY_CODE.get(code)
    if kind is None:
        kind = "server_error" if code >= 500 or code < 400 else "bad_request"
    if err is None:
        return kind
    if kind == "bad_request":
        text = err.message.lower()
        if _CONTEXT_RE.search(text):
            return "context_too_long"
        if "api key not valid" in text or "api key expired" in text or _has_reason(err, "API_KEY_INVALID"):
            return "authentication"
    return kind


def _has_reason(err: _Error, reason: str) -> bool:
    return any(isinstance(d, dict) and d.get("reason") == reason for d in err.details)


def _retry_after(err: _Error | None, headers: Mapping[str, str]) -> float | None:
    if err is not None:
        for detail in err.details:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
                m = _DELAY_RE.match(str(detail.get("retryDelay", "")))
                if m:
                    return float(m.group(1))
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def _safe_message(message: str, deployment: Deployment) -> str:
    key = deployment.provider.api_key
    if key is not None and key.reveal() and key.reveal() in message:
        message = message.replace(key.reveal(), "[redacted]")
    message = _GOOGLE_KEY_RE.sub("[redacted]", message)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return message


def _error(
    code: int, err: _Error | None, headers: Mapping[str, str], deployment: Deployment
) -> ProviderError:
    kind = _kind(code, err)
    message = err.message if err is not None and err.message else f"Gemini answered HTTP {code}"
    return ProviderError(
        kind,
        _safe_message(message, deployment),
        upstream_status=code,
        retry_after=_retry_after(err, headers) if kind == "rate_limited" else None,
        deployment=deployment.name,
        code=(err.status or None) if err is not None else None,
    )


def _decode_error(body: bytes) -> _Error | None:
    try:
        return _ERROR_BODY.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        items = _ERROR_LIST.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return items[0].error if items else None


# --- streaming -------------------------------------------------------------------------------


class GeminiStreamParser:
    """``streamGenerateContent?alt=sse``: every frame's data is one GenerateContentResponse."""

    __slots__ = ("_calls", "_deployment", "_finished", "_started")

    #: No dialect speaks Gemini: its streams are always translated, every frame parsed.
    passthrough_marks = None

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._started = False
        self._calls = 0
        self._finished = False

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        data = frame.data
        if not data.strip():
            return []
        try:
            chunk = _RESPONSE.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise _invalid("a stream chunk that is not a GenerateContentResponse", self._deployment) from None
        if chunk.error is not None:
            raise _error(chunk.error.code or 500, chunk.error, {}, self._deployment)
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(
                MessageStart(
                    id=chunk.response_id or _new_id(),
                    model=chunk.model_version or self._deployment.model,
                    created=int(time.time()),
                )
            )
        candidate = chunk.candidates[0] if chunk.candidates else None
        if candidate is not None and candidate.content is not None:
            self._content_events(candidate.content.parts, events)
        if chunk.usage_metadata is not None:
            events.append(UsageUpdate(usage=_usage(chunk.usage_metadata)))
        reason: FinishReason | None = None
        if candidate is not None and candidate.finish_reason not in (None, "FINISH_REASON_UNSPECIFIED"):
            reason = _finish(candidate.finish_reason, self._calls > 0)
        elif candidate is None and chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason:
            reason = "content_filter"
        if reason is not None and not self._finished:
            self._finished = True
            events.append(Finish(reason=reason))
        return events

    def _content_events(self, parts: list[_Part], events: list[StreamEvent]) -> None:
        for part in parts:
            if part.function_call is not None:
                arguments = _arguments(part.function_call)
                events.append(
                    ToolCallDelta(
                        index=self._calls,
                        id=_call_id(part.function_call, arguments, self._calls),
                        name=part.function_call.name,
                        arguments=arguments,
                    )
                )
                self._calls += 1
            elif part.thought:
                if part.text or part.thought_signature:
                    events.append(ThinkingDelta(text=part.text or "", signature=part.thought_signature))
            elif part.text:
                events.append(TextDelta(text=part.text))

    def close(self) -> list[StreamEvent]:
        if not self._finished:
            raise _invalid("a stream that ended before its finish reason", self._deployment)
        return []


# --- the adapter -----------------------------------------------------------------------------


class GeminiAdapter(Adapter):
    family = "gemini"

    def build_chat(self, request: ChatRequest, deployment: Deployment) -> UpstreamRequest:
        reject_anthropic_only_blocks(request, self.family)
        base = _model_path(deployment.provider.base_url, deployment.model)
        url = f"{base}:streamGenerateContent?alt=sse" if request.stream else f"{base}:generateContent"
        return UpstreamRequest(
            method="POST",
            url=url,
            headers=_headers(deployment),
            body=_ENCODE(build_body(request, deployment)),
            stream=request.stream,
        )

    def parse_chat(self, response: UpstreamResponse, deployment: Deployment) -> ChatResponse:
        return parse_body(response.body, deployment)

    def stream_parser(self, request: ChatRequest, deployment: Deployment) -> GeminiStreamParser:
        return GeminiStreamParser(deployment)

    def classify(self, response: UpstreamResponse, deployment: Deployment) -> ProviderError:
        err = _decode_error(response.body)
        return _error(response.status, err, response.headers, deployment)

    def build_embeddings(self, request: EmbeddingRequest, deployment: Deployment) -> UpstreamRequest:
        base = _model_path(deployment.provider.base_url, deployment.model)
        if len(request.inputs) == 1:
            url = f"{base}:embedContent"
            body: JSONObject = _embed_request(request.inputs[0], request.dimensions, None)
        else:
            url = f"{base}:batchEmbedContents"
            name = deployment.model if "/" in deployment.model else f"models/{deployment.model}"
            body = {"requests": [_embed_request(text, request.dimensions, name) for text in request.inputs]}
        return UpstreamRequest(method="POST", url=url, headers=_headers(deployment), body=_ENCODE(body))

    def parse_embeddings(self, response: UpstreamResponse, deployment: Deployment) -> EmbeddingResponse:
        try:
            resp = _EMBED_RESPONSE.decode(response.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise _invalid("a body that is not an embeddings response", deployment) from None
        if resp.embeddings is not None:
            vectors = resp.embeddings
        elif resp.embedding is not None:
            vectors = [resp.embedding]
        else:
            raise _invalid("an embeddings response without embeddings", deployment)
        tokens = resp.usage_metadata.prompt_token_count if resp.usage_metadata else 0
        return EmbeddingResponse(
            model=deployment.model,
            data=[Embedding(index=i, vector=v.values) for i, v in enumerate(vectors)],
            usage=CanonicalUsage(input_tokens=tokens),
            family="gemini",
            raw=response.body,
        )


def _embed_request(text: str, dimensions: int | None, model: str | None) -> JSONObject:
    body: JSONObject = {"content": {"parts": [{"text": text}]}}
    if model is not None:
        body["model"] = model
    if dimensions is not None:
        body["outputDimensionality"] = dimensions
    return body
