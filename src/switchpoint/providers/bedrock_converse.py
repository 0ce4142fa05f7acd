"""Bedrock's Converse wire (one request shape for every Bedrock model): canonical ↔ Converse JSON.

Field names follow botocore's service model for Bedrock Runtime (``bedrock-runtime/2023-09-30``),
which the tests validate every request against. Translation rules worth knowing:

* System and developer messages become ``system`` text blocks; consecutive messages of one role
  are merged (Converse wants turns that alternate); ``tool`` messages become ``toolResult``
  blocks of a user turn.
* Images go inline (``image.source.bytes``, base64) or from S3 (``s3://`` URLs become
  ``s3Location``); an ``http(s)`` image URL cannot be fetched by Bedrock and is a clear 400.
* Tool-use ids are reduced to the characters Converse accepts (``[a-zA-Z0-9_.:-]``, at most 64),
  the same way for ``toolUse`` and ``toolResult`` so pairs still match. Converse requires a
  ``toolConfig`` whenever the conversation holds tool blocks: tools named in the history but not
  given are declared with an empty object schema. ``tool_choice: none`` is said by sending no
  tools; when the history holds tool blocks they must be declared, and go with ``auto``.
* ``temperature`` is clamped to 0..1. ``json_schema`` uses ``outputConfig.textFormat``;
  ``json_object`` adds a "JSON only" system instruction.
* Anthropic models (ids containing ``anthropic.``): reasoning is sent as
  ``additionalModelRequestFields.thinking`` (budget from the effort like the Anthropic family,
  at least 1024 and below ``maxTokens``; with it on, ``temperature``/``topP`` are left out), and
  ``top_k`` there too. Other models get neither.
* Usage: Converse's ``inputTokens`` excludes cache reads and writes; the canonical input adds
  ``cacheReadInputTokens`` and ``cacheWriteInputTokens``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import msgspec

from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    MediaPart,
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
from switchpoint.config import Deployment
from switchpoint.errors import ProviderError
from switchpoint.providers.base import reject_anthropic_only_blocks
from switchpoint.providers.media_parts import refuse as refuse_media
from switchpoint.streaming import SSEFrame

JSON_ONLY = "Respond with a single valid JSON object and nothing else: no prose, no code fences."
EFFORT_BUDGETS: dict[str, int] = {"low": 1024, "medium": 4096, "high": 16384}
MIN_THINKING_BUDGET = 1024

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "model_context_window_exceeded": "length",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}
_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DATA_URL = re.compile(r"^data:([^;,]+);base64,(.*)$", re.DOTALL)
_TOOL_ID_BAD = re.compile(r"[^a-zA-Z0-9_.:-]")


def tool_use_id(value: str) -> str:
    cleaned = _TOOL_ID_BAD.sub("_", value)[:64]
    return cleaned or "tool"


def is_anthropic_model(model: str) -> bool:
    return "anthropic." in model or model.startswith("anthropic")


# --- request ---------------------------------------------------------------------------------


def _image(part: ImagePart, where: str) -> dict[str, Any]:
    data: str | None = part.data
    media: str | None = part.media_type
    url = part.url or ""
    if data is None and url.startswith("s3://"):
        fmt = _FORMATS.get((media or "").lower()) or _format_from_name(url)
        return {"image": {"format": fmt, "source": {"s3Location": {"uri": url}}}}
    if data is None:
        m = _DATA_URL.match(url)
        if m is None:
            raise ProviderError(
                "bad_request",
                f"{where}: Bedrock takes images inline (base64 data) or from S3 (s3://), not by URL",
                param=where,
            )
        media, data = m.group(1), m.group(2)
    found = _FORMATS.get((media or "").lower())
    if found is None:
        raise ProviderError(
            "bad_request", f"{where}: Bedrock takes png, jpeg, gif or webp images, not {media}", param=where
        )
    return {"image": {"format": found, "source": {"bytes": data}}}


def _format_from_name(url: str) -> str:
    ext = url.rsplit(".", 1)[-1].lower()
    return {"jpg": "jpeg"}.get(ext, ext if ext in ("png", "jpeg", "gif", "webp") else "png")


def _arguments(part: ToolCallPart) -> Any:
    try:
        value = json.loads(part.arguments or "{}")
    except ValueError:
        return {"arguments": part.arguments}
    return value if isinstance(value, dict) else {"value": value}


def _blocks(message: Message, index: int, names: set[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        where = f"messages[{index}].content[{j}]"
        if isinstance(part, TextPart):
            if part.text:
                out.append({"text": part.text})
        elif isinstance(part, ImagePart):
            out.append(_image(part, where))
        elif isinstance(part, ToolCallPart):
            names.add(part.name)
            out.append(
                {"toolUse": {"toolUseId": tool_use_id(part.id), "name": part.name, "input": _arguments(part)}}
            )
        elif isinstance(part, ToolResultPart):
            content: list[dict[str, Any]] = []
            for k, c in enumerate(part.content):
                if isinstance(c, TextPart):
                    if c.text:
                        content.append({"text": c.text})
                else:
                    content.append(_image(c, f"{where}.content[{k}]"))
            result: dict[str, Any] = {
                "toolUseId": tool_use_id(part.tool_call_id),
                "content": content or [{"json": {}}],
            }
            if part.is_error:
                result["status"] = "error"
            out.append({"toolResult": result})
        elif isinstance(part, ThinkingPart):
            if part.redacted:
                out.append({"reasoningContent": {"redactedContent": part.redacted}})
            elif part.signature and part.text:
                out.append(
                    {"reasoningContent": {"reasoningText": {"text": part.text, "signature": part.signature}}}
                )
            # unsigned thinking (another vendor's) cannot be replayed: dropped
        elif isinstance(part, MediaPart):
            raise refuse_media(part, where, "Bedrock Converse")
    return out


def _messages(request: ChatRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, msg in enumerate(request.messages):
        if msg.role in ("system", "developer"):
            text = msg.text()
            if text:
                system.append({"text": text})
            continue
        role = "assistant" if msg.role == "assistant" else "user"
        blocks = _blocks(msg, i, names)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            if msg.role == "tool":  # tool results come first in their user turn
                turns[-1]["content"][:0] = blocks
            else:
                turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns, names


def _thinking_budget(request: ChatRequest, max_tokens: int) -> int | None:
    t = request.thinking
    if t is None or not t.enabled:
        return None
    budget = t.budget_tokens
    if budget is None:
        if t.effort is None or t.effort == "minimal":
            return None
        budget = EFFORT_BUDGETS[t.effort]
    budget = max(budget, MIN_THINKING_BUDGET)
    if budget >= max_tokens:
        budget = max_tokens - 1
    return budget if budget >= MIN_THINKING_BUDGET else None


def build_body(request: ChatRequest, deployment: Deployment) -> dict[str, Any]:
    """The Converse / ConverseStream body (``modelId`` goes in the URL)."""
    reject_anthropic_only_blocks(request, "bedrock")
    system, messages, names = _messages(request)
    if not messages:
        raise ProviderError("bad_request", "the request needs at least one user or assistant message")
    body: dict[str, Any] = {"messages": messages}
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        system.append({"text": JSON_ONLY})
    if system:
        body["system"] = system
    max_tokens = request.max_tokens or deployment.max_output_tokens
    anthropic = is_anthropic_model(deployment.model)
    budget = _thinking_budget(request, max_tokens) if anthropic else None
    inference: dict[str, Any] = {"maxTokens": max_tokens}
    if budget is None:
        if request.temperature is not None:
            inference["temperature"] = min(max(request.temperature, 0.0), 1.0)
        if request.top_p is not None:
            inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    body["inferenceConfig"] = inference
    extra: dict[str, Any] = {}
    if budget is not None:
        extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if anthropic and request.top_k is not None and budget is None:
        extra["top_k"] = request.top_k
    if extra:
        body["additionalModelRequestFields"] = extra
    tools = _tool_config(request, names)
    if tools is not None:
        body["toolConfig"] = tools
    if fmt is not None and fmt.type == "json_schema" and fmt.schema is not None:
        schema: dict[str, Any] = {"schema": json.dumps(fmt.schema)}
        if fmt.name:
            schema["name"] = fmt.name
        if fmt.description:
            schema["description"] = fmt.description
        body["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}
    return body


def _tool_config(request: ChatRequest, used: set[str]) -> dict[str, Any] | None:
    tools: list[dict[str, Any]] = []
    given: set[str] = set()
    choice = request.tool_choice
    if choice is not None and choice.mode == "none" and not used:
        return None  # no tools at all is how Converse says "none" (when the history has none)
    for tool in request.tools or ():
        spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": tool.parameters}}
        if tool.description:
            spec["description"] = tool.description
        if tool.strict:
            spec["strict"] = True
        tools.append({"toolSpec": spec})
        given.add(tool.name)
    for name in sorted(used - given):  # named in the history only: declared, never chosen
        tools.append(
            {"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object", "properties": {}}}}}
        )
    if not tools:
        return None
    config: dict[str, Any] = {"tools": tools}
    if choice is not None and given:
        if choice.mode == "required":
            config["toolChoice"] = {"any": {}}
        elif choice.mode == "tool" and choice.name:
            config["toolChoice"] = {"tool": {"name": choice.name}}
        elif choice.mode == "auto":
            config["toolChoice"] = {"auto": {}}
    return config


# --- response --------------------------------------------------------------------------------


class _Usage(msgspec.Struct, rename="camel"):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


class _Message(msgspec.Struct):
    role: str = "assistant"
    content: list[dict[str, Any]] = msgspec.field(default_factory=list)


class _Output(msgspec.Struct):
    message: _Message | None = None


class _Response(msgspec.Struct, rename="camel"):
    output: _Output
    stop_reason: str | None = None
    usage: _Usage | None = None


_RESPONSE = msgspec.json.Decoder(_Response)


def usage(u: _Usage | None) -> Usage:
    if u is None:
        return Usage()
    cached, written = u.cache_read_input_tokens, u.cache_write_input_tokens
    return Usage(
        input_tokens=u.input_tokens + cached + written,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=u.output_tokens,
    )


def _parts(blocks: list[dict[str, Any]]) -> list[Part]:
    parts: list[Part] = []
    for b in blocks:
        if "text" in b and isinstance(b["text"], str):
            parts.append(TextPart(text=b["text"]))
        elif isinstance(b.get("toolUse"), dict):
            t = b["toolUse"]
            parts.append(
                ToolCallPart(
                    id=str(t.get("toolUseId", "")),
                    name=str(t.get("name", "")),
                    arguments=json.dumps(t.get("input", {})),
                )
            )
        elif isinstance(b.get("reasoningContent"), dict):
            r = b["reasoningContent"]
            text = r.get("reasoningText")
            if isinstance(text, dict):
                parts.append(ThinkingPart(text=str(text.get("text", "")), signature=text.get("signature")))
            elif isinstance(r.get("redactedContent"), str):
                parts.append(ThinkingPart(redacted=r["redactedContent"]))
    # canonical order: thinking, text, tool calls
    order: dict[type, int] = {ThinkingPart: 0, TextPart: 1, ToolCallPart: 2}
    return sorted(parts, key=lambda p: order.get(type(p), 1))


def parse_body(body: bytes, headers: Any, deployment: Deployment) -> ChatResponse:
    try:
        data = _RESPONSE.decode(body)
    except msgspec.MsgspecError as exc:
        raise ProviderError(
            "invalid_response", f"upstream Converse answer is not the expected shape: {exc}"
        ) from None
    message = data.output.message
    parts = _parts(message.content if message else [])
    reason = STOP_REASONS.get(data.stop_reason or "", "stop")
    if reason == "stop" and any(isinstance(p, ToolCallPart) for p in parts):
        reason = "tool_calls"
    return ChatResponse(
        id=response_id(headers),
        model=deployment.model,
        parts=parts,
        finish_reason=reason,
        usage=usage(data.usage),
        family="bedrock",
        raw=body,
    )


def response_id(headers: Any) -> str:
    rid = headers.get("x-amzn-requestid") if headers is not None else None
    return f"bedrock-{rid}" if rid else f"bedrock-{uuid.uuid4().hex}"


# --- stream ----------------------------------------------------------------------------------


class _Start(msgspec.Struct, rename="camel"):
    content_block_index: int = 0
    start: dict[str, Any] = msgspec.field(default_factory=dict)


class _Delta(msgspec.Struct, rename="camel"):
    content_block_index: int = 0
    delta: dict[str, Any] = msgspec.field(default_factory=dict)


class _Stop(msgspec.Struct, rename="camel"):
    stop_reason: str | None = None


class _Metadata(msgspec.Struct):
    usage: _Usage | None = None


_START, _DELTA = msgspec.json.Decoder(_Start), msgspec.json.Decoder(_Delta)
_STOP, _META = msgspec.json.Decoder(_Stop), msgspec.json.Decoder(_Metadata)


class ConverseStreamParser:
    """ConverseStream events (one frame per event-stream message) → canonical events."""

    passthrough_marks = None

    def __init__(self, deployment: Deployment, request_id: str, classify_exception: Any) -> None:
        self._model = deployment.model
        self._id = request_id
        self._classify = classify_exception
        self._tools: dict[int, int] = {}  # contentBlockIndex → tool-call index
        self._stopped = False
        self._saw_tool = False

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        event = frame.event or ""
        try:
            if event == "contentBlockDelta":
                return self._delta(_DELTA.decode(frame.data))
            if event == "messageStart":
                return [MessageStart(id=self._id, model=self._model)]
            if event == "contentBlockStart":
                return self._start(_START.decode(frame.data))
            if event == "contentBlockStop":
                return []
            if event == "messageStop":
                self._stopped = True
                reason = STOP_REASONS.get(_STOP.decode(frame.data).stop_reason or "", "stop")
                if reason == "stop" and self._saw_tool:
                    reason = "tool_calls"
                return [FinishEvent(reason=reason)]
            if event == "metadata":
                return [UsageUpdate(usage=usage(_META.decode(frame.data).usage))]
        except msgspec.MsgspecError as exc:
            raise ProviderError(
                "invalid_response", f"upstream ConverseStream event {event} is not the expected shape: {exc}"
            ) from None
        if event.startswith(":"):
            raise self._classify(event, frame.data)
        return []  # an event this gateway does not use

    def _start(self, e: _Start) -> list[StreamEvent]:
        tool = e.start.get("toolUse")
        if not isinstance(tool, dict):
            return []
        index = self._tools[e.content_block_index] = len(self._tools)
        self._saw_tool = True
        return [ToolCallDelta(index=index, id=str(tool.get("toolUseId", "")), name=str(tool.get("name", "")))]

    def _delta(self, e: _Delta) -> list[StreamEvent]:
        d = e.delta
        text = d.get("text")
        if isinstance(text, str):
            return [TextDelta(text=text)] if text else []
        tool = d.get("toolUse")
        if isinstance(tool, dict):
            index = self._tools.get(e.content_block_index)
            if index is None:
                raise ProviderError(
                    "invalid_response", "upstream ConverseStream sent tool input before its toolUse start"
                )
            return [ToolCallDelta(index=index, arguments=str(tool.get("input", "")))]
        reasoning = d.get("reasoningContent")
        if isinstance(reasoning, dict):
            if isinstance(reasoning.get("text"), str):
                return [ThinkingDelta(text=reasoning["text"])]
            if isinstance(reasoning.get("signature"), str):
                return [ThinkingDelta(signature=reasoning["signature"])]
            if isinstance(reasoning.get("redactedContent"), str):
                return [ThinkingDelta(redacted=reasoning["redactedContent"])]
        return []

    def close(self) -> list[StreamEvent]:
        if not self._stopped:
            raise ProviderError("invalid_response", "upstream ConverseStream ended before messageStop")
        return []
