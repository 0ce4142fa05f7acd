"""The Amazon Bedrock wire: Converse / ConverseStream and InvokeModel (Anthropic Messages bodies),
streams in AWS's binary event-stream framing, errors as restJson1 (``x-amzn-errortype``).

Paths under the simulator's ``/bedrock`` prefix are Bedrock Runtime's own:
``model/{modelId}/converse``, ``…/converse-stream``, ``…/invoke``,
``…/invoke-with-response-stream``. The request must carry a SigV4 ``Authorization`` header
(``AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…``) with ``x-amz-date``, or a
bearer token (a Bedrock API key); the signature itself is checked by the tests, which know the
secret. The event-stream encoder here is the simulator's own (it shares no code with the
gateway's decoder).
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from typing import Any, Literal

import msgspec

from . import anthropic_wire
from .common import Frames, Headers, SimError, header, invalid_body
from .content import Answer, ChatCall, Conversation, ToolSpec, Usage

EVENTSTREAM = b"application/vnd.amazon.eventstream"
_THINKING_TOKENS = 12
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_SIGV4 = re.compile(
    rb"^AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/[a-z0-9-]+/bedrock/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$"
)
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Malformed input request, please reformat your input and try again."),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "The model was not found."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    413: ("ValidationException", "Input is too long for requested model."),
    424: ("ModelErrorException", "The model returned an error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "An internal server error occurred."),
    503: ("ServiceUnavailableException", "The service is unavailable. Try again later."),
}


# --- the event-stream encoder ------------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v


def message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message (string headers only), with both CRC32 checksums."""
    block = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + block + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(name: str, payload: dict[str, Any]) -> bytes:
    return message(
        {":event-type": name, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload, separators=(",", ":")).encode(),
    )


def exception(name: str, text: str) -> bytes:
    return message(
        {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": text}).encode(),
    )


# --- auth, errors ------------------------------------------------------------------------------


def check_auth(headers: Headers, query: bytes) -> SimError | None:
    value = header(headers, b"authorization") or b""
    if value[:7].lower() == b"bearer " and len(value) > 7:
        return None
    if not _SIGV4.match(value):
        return SimError(
            403, "Missing Authentication Token" if not value else "The request signature is malformed."
        )
    if not header(headers, b"x-amz-date"):
        return SimError(
            403, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    return None


def error_type(status: int) -> str:
    return _ERRORS.get(status, ("InternalServerException" if status >= 500 else "ValidationException", ""))[0]


def error_body(err: SimError) -> bytes:
    default = _ERRORS.get(err.status, ("", "Request failed."))[1]
    return json.dumps({"message": err.message or default}).encode()


def error_headers(err: SimError) -> Headers:
    kind = (
        "UnrecognizedClientException"
        if err.status == 403 and "ignature" in err.message
        else error_type(err.status)
    )
    if err.status == 403 and "Authentication Token" in err.message:
        kind = "MissingAuthenticationTokenException"
    return [(b"x-amzn-errortype", f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/".encode())]


def response_headers() -> Headers:
    return [(b"x-amzn-requestid", b"00000000-0000-4000-8000-000000000000")]


# --- Converse ------------------------------------------------------------------------------------


class _ImageSource(msgspec.Struct, forbid_unknown_fields=True):
    bytes: str | None = None
    s3Location: dict[str, Any] | None = None


class _Image(msgspec.Struct, forbid_unknown_fields=True):
    format: Literal["png", "jpeg", "gif", "webp"]
    source: _ImageSource


class _ToolUse(msgspec.Struct, forbid_unknown_fields=True):
    toolUseId: str
    name: str
    input: Any


class _ResultContent(msgspec.Struct, forbid_unknown_fields=True):
    text: str | None = None
    json: Any = None
    image: _Image | None = None


class _ToolResult(msgspec.Struct, forbid_unknown_fields=True):
    toolUseId: str
    content: list[_ResultContent]
    status: Literal["success", "error"] | None = None


class _Block(msgspec.Struct, forbid_unknown_fields=True):
    text: str | None = None
    image: _Image | None = None
    toolUse: _ToolUse | None = None
    toolResult: _ToolResult | None = None
    reasoningContent: dict[str, Any] | None = None
    cachePoint: dict[str, Any] | None = None


class _Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["user", "assistant"]
    content: list[_Block]


class _Inference(msgspec.Struct, forbid_unknown_fields=True):
    maxTokens: int | None = None
    temperature: float | None = None
    topP: float | None = None
    stopSequences: list[str] | None = None


class _ToolSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    inputSchema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class _Tool(msgspec.Struct, forbid_unknown_fields=True):
    toolSpec: _ToolSpec | None = None
    cachePoint: dict[str, Any] | None = None


class _ToolConfig(msgspec.Struct, forbid_unknown_fields=True):
    tools: list[_Tool]
    toolChoice: dict[str, Any] | None = None


class _System(msgspec.Struct, forbid_unknown_fields=True):
    text: str | None = None
    cachePoint: dict[str, Any] | None = None


class ConverseBody(msgspec.Struct, forbid_unknown_fields=True):
    messages: list[_Message]
    system: list[_System] | None = None
    inferenceConfig: _Inference | None = None
    toolConfig: _ToolConfig | None = None
    additionalModelRequestFields: dict[str, Any] | None = None
    outputConfig: dict[str, Any] | None = None


_CONVERSE = msgspec.json.Decoder(ConverseBody)


def _block_text(block: _Block, conv: Conversation) -> str:
    if block.text is not None:
        return block.text
    if block.image is not None:
        conv.images += 1
        return ""
    if block.toolUse is not None:
        return block.toolUse.name + json.dumps(block.toolUse.input, separators=(",", ":"))
    if block.toolResult is not None:
        return "\n".join(
            c.text if c.text is not None else json.dumps(c.json)
            for c in block.toolResult.content
            if c.image is None
        )
    return ""


def _check_tools(body: ConverseBody, conv: Conversation) -> None:
    uses_tools = any(b.toolUse or b.toolResult for m in body.messages for b in m.content)
    config = body.toolConfig
    if uses_tools and config is None:
        raise SimError(
            400,
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        )
    if config is None:
        return
    for tool in config.tools:
        if tool.toolSpec is not None:
            schema = tool.toolSpec.inputSchema.get("json")
            conv.tools.append(ToolSpec(tool.toolSpec.name, schema))
            conv.tool_chars += len(tool.toolSpec.name) + len(json.dumps(schema or {}))
    choice = config.toolChoice or {}
    if "any" in choice:
        conv.tool_mode = "any"
    elif "tool" in choice:
        name = choice["tool"].get("name")
        if not any(t.name == name for t in conv.tools):
            raise SimError(400, f"The tool {name} in toolChoice is not in toolConfig.tools.")
        conv.tool_mode, conv.forced_tool = "any", str(name)


def parse_converse(raw: bytes, model: str, *, stream: bool) -> ChatCall:
    try:
        body = _CONVERSE.decode(raw)
    except msgspec.MsgspecError as exc:
        raise invalid_body(exc) from None
    if not body.messages:
        raise SimError(
            400,
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        )
    if body.messages[0].role != "user":
        raise SimError(
            400,
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        )
    for a, b in zip(body.messages, body.messages[1:], strict=False):
        if a.role == b.role:
            raise SimError(
                400,
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
            )
    conv = Conversation(model=model, family="anthropic", explicit_cache=True)
    for s in body.system or ():
        if s.text:
            conv.turns.append(("system", s.text))
    for m in body.messages:
        for blk in m.content:
            if blk.text is not None and not blk.text.strip():
                raise SimError(
                    400,
                    "The text field in the ContentBlock object is blank. Add text to the text field, and try again.",
                )
        conv.turns.append((m.role, "\n".join(t for t in (_block_text(b, conv) for b in m.content) if t)))
    last = body.messages[-1]
    conv.ends_with_user = last.role == "user"
    results = [b.toolResult for b in last.content if b.toolResult is not None]
    if results:
        conv.tool_result = _block_text(_Block(toolResult=results[-1]), Conversation(model=""))
    elif last.role == "user":
        conv.last_user_text = conv.turns[-1][1]
    _check_tools(body, conv)
    inference = body.inferenceConfig
    if inference is not None:
        conv.max_tokens = inference.maxTokens
        if inference.temperature is not None and not 0 <= inference.temperature <= 1:
            raise SimError(400, "The value at inferenceConfig.temperature must be between 0 and 1.")
    extra = body.additionalModelRequestFields or {}
    thinking = extra.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        conv.thinking_tokens = _THINKING_TOKENS
    text_format = (body.outputConfig or {}).get("textFormat")
    if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
        schema = text_format.get("structure", {}).get("jsonSchema", {}).get("schema")
        conv.json_mode = True
        conv.json_schema = json.loads(schema) if isinstance(schema, str) else {"type": "object"}
    return ChatCall(conv=conv, stream=stream)


def _usage(u: Usage) -> dict[str, Any]:
    fresh = u.input_tokens - u.cached_tokens - u.cache_write_tokens
    out = {
        "inputTokens": fresh,
        "outputTokens": u.output_tokens,
        "totalTokens": u.input_tokens + u.output_tokens,
    }
    if u.cached_tokens or u.cache_write_tokens:
        out["cacheReadInputTokens"] = u.cached_tokens
        out["cacheWriteInputTokens"] = u.cache_write_tokens
    return out


def render_converse(call: ChatCall, answer: Answer) -> bytes:
    content: list[dict[str, Any]] = []
    if answer.thinking:
        content.append(
            {
                "reasoningContent": {
                    "reasoningText": {"text": "".join(answer.thinking), "signature": answer.signature}
                }
            }
        )
    if answer.text:
        content.append({"text": answer.content})
    for c in answer.calls:
        content.append({"toolUse": {"toolUseId": "tooluse_" + c.key, "name": c.name, "input": c.arguments}})
    return json.dumps(
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": _STOP[answer.finish],
            "usage": _usage(answer.usage),
            "metrics": {"latencyMs": 42},
        }
    ).encode()


def stream_converse(call: ChatCall, answer: Answer) -> Frames:
    frames = Frames(media_type=EVENTSTREAM)
    frames.pre.append(event("messageStart", {"role": "assistant", "p": "abcd"}))
    index = 0
    if answer.thinking:
        frames.content += [
            event(
                "contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": {"text": p}}}
            )
            for p in answer.thinking
        ]
        frames.content[-1] += event(
            "contentBlockDelta",
            {"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": answer.signature}}},
        ) + event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    if answer.text:
        frames.content += [
            event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": p}})
            for p in answer.text
        ]
        frames.content[-1] += event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    for c in answer.calls:
        start = event(
            "contentBlockStart",
            {
                "contentBlockIndex": index,
                "start": {"toolUse": {"toolUseId": "tooluse_" + c.key, "name": c.name}},
            },
        )
        pieces = [
            event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": p}}})
            for p in c.pieces
        ]
        pieces[0] = start + pieces[0]
        pieces[-1] += event("contentBlockStop", {"contentBlockIndex": index})
        frames.content += pieces
        index += 1
    frames.post.append(
        event("messageStop", {"stopReason": _STOP[answer.finish]})
        + event("metadata", {"usage": _usage(answer.usage), "metrics": {"latencyMs": 42}})
    )
    return frames


# --- InvokeModel with the Anthropic Messages body -------------------------------------------------


def parse_invoke(raw: bytes, model: str, *, stream: bool) -> ChatCall:
    try:
        body = json.loads(raw)
    except ValueError:
        raise SimError(400, "Malformed input request: the body is not JSON") from None
    if not isinstance(body, dict):
        raise SimError(400, "Malformed input request: expected a JSON object")
    if body.get("anthropic_version") != "bedrock-2023-05-31":
        raise SimError(400, "Malformed input request: #: required key [anthropic_version] not found")
    for key in ("model", "stream"):
        if key in body:
            raise SimError(400, f"Malformed input request: #: extraneous key [{key}] is not permitted")
    body.pop("anthropic_version")
    body.pop("anthropic_beta", None)
    body["model"] = model
    call = anthropic_wire.parse_chat(json.dumps(body).encode())
    call.stream = stream
    return call


def render_invoke(call: ChatCall, answer: Answer) -> bytes:
    return anthropic_wire.render_chat(call, answer)


def _chunks(sse: bytes) -> bytes:
    out = b""
    for line in sse.split(b"\n"):
        if line.startswith(b"data: "):
            data = line[6:]
            out += event("chunk", {"bytes": base64.b64encode(data).decode()})
    return out


def stream_invoke(call: ChatCall, answer: Answer) -> Frames:
    sse = anthropic_wire.stream_chat(call, answer)
    frames = Frames(media_type=EVENTSTREAM)
    frames.pre = [_chunks(f) for f in sse.pre]
    frames.content = [_chunks(f) for f in sse.content]
    frames.post = [_chunks(f) for f in sse.post]
    return frames
