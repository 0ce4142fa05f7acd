"""The Responses API of an OpenAI-family upstream, for lossless passthrough.

A Responses client's body goes unchanged (but for ``model`` and ``stream``) to a deployment
with ``responses_api: true``; its answer, or its stream's frames, go back unchanged too. What the
gateway reads of them: the output as canonical parts (the conversation store, output
guarantees), the finish, the usage (the ledger), and the stream's events up to commit and at its
end (``response.completed`` / ``response.incomplete`` / ``response.failed``, ``error``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    MessageStart,
    Part,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallPart,
    Usage,
    UsageUpdate,
)
from switchpoint.canonical import Finish as FinishEvent
from switchpoint.config import Deployment
from switchpoint.errors import ProviderError
from switchpoint.streaming import Marks, SSEFrame

#: The wire a forwarded Responses stream or answer is in (what the client's encoder forwards).
WIRE = "openai-responses"
#: Frames read after commit: the end (with the usage and the whole response), and errors.
_MARKS = Marks(b"response.completed", b"response.incomplete", b"response.failed", b'"type":"error"')
_decode = msgspec.json.decode


def responses_body(request: ChatRequest, deployment: Deployment) -> dict[str, Any]:
    """The client's Responses body for this deployment."""
    assert request.responses_body is not None
    body = dict(request.responses_body)
    body["model"] = deployment.model
    if request.stream:
        body["stream"] = True
    return body


def _invalid(what: str) -> ProviderError:
    return ProviderError("invalid_response", f"upstream returned an invalid {what}")


def _usage(u: Any) -> Usage:
    if not isinstance(u, dict):
        return Usage()
    inp = u.get("input_tokens_details") or {}
    out = u.get("output_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("input_tokens") or 0),
        cached_input_tokens=int(inp.get("cached_tokens") or 0),
        output_tokens=int(u.get("output_tokens") or 0),
        reasoning_tokens=int(out.get("reasoning_tokens") or 0),
    )


def _parts(output: Any) -> list[Part]:
    parts: list[Part] = []
    texts: list[str] = []
    for item in output if isinstance(output, list) else ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for c in item.get("content") or ():
                if isinstance(c, dict) and c.get("type") in ("output_text", "refusal"):
                    texts.append(str(c.get("text") or c.get("refusal") or ""))
        elif kind == "function_call":
            parts.append(
                ToolCallPart(
                    id=str(item.get("call_id") or ""),
                    name=str(item.get("name") or ""),
                    arguments=str(item.get("arguments") or ""),
                )
            )
        elif kind == "reasoning":
            summary = "".join(
                str(s.get("text", "")) for s in item.get("summary") or () if isinstance(s, dict)
            )
            parts.append(ThinkingPart(text=summary, signature=item.get("encrypted_content") or None))
    if texts:
        parts.insert(sum(isinstance(p, ThinkingPart) for p in parts), TextPart(text="".join(texts)))
    return parts


def _finish(doc: dict[str, Any], parts: list[Part] | None) -> FinishReason:
    if doc.get("status") == "incomplete":
        reason = (doc.get("incomplete_details") or {}).get("reason")
        return "content_filter" if reason == "content_filter" else "length"
    if parts is not None and any(isinstance(p, ToolCallPart) for p in parts):
        return "tool_calls"
    return "stop"


def is_response_object(body: bytes) -> bool:
    """Whether an upstream answer is a Response object (not a chat completion)."""
    try:
        doc = _decode(body)
    except msgspec.DecodeError:
        return False
    return isinstance(doc, dict) and doc.get("object") == "response"


def parse_response(body: bytes, deployment: Deployment) -> ChatResponse:
    """A Response object, read for the gateway; ``raw`` keeps it for the client."""
    try:
        doc = _decode(body)
    except msgspec.DecodeError:
        raise _invalid("response object") from None
    if not isinstance(doc, dict):
        raise _invalid("response object")
    parts = _parts(doc.get("output"))
    return ChatResponse(
        id=str(doc.get("id") or ""),
        model=str(doc.get("model") or deployment.model),
        parts=parts,
        finish_reason=_finish(doc, parts),
        usage=_usage(doc.get("usage")),
        created=int(doc.get("created_at") or 0),
        family=WIRE,
        raw=body,
    )


class ResponsesStreamParser:
    """A forwarded Responses stream, read into canonical events (the frames go out unchanged)."""

    __slots__ = ("_calls", "_deployment", "_ended")

    passthrough_marks = _MARKS
    wire = WIRE

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._calls: dict[int, int] = {}  # output_index -> tool call index
        self._ended = False

    def feed(self, frame: SSEFrame) -> list[StreamEvent]:
        data = frame.data
        if not data:
            return []
        try:
            event = _decode(data)
        except msgspec.DecodeError:
            raise _invalid("stream event") from None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "response.output_text.delta":
            return [TextDelta(text=str(event.get("delta") or ""))]
        if kind == "response.function_call_arguments.delta":
            index = self._calls.get(int(event.get("output_index") or 0), 0)
            return [ToolCallDelta(index=index, arguments=str(event.get("delta") or ""))]
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return [ThinkingDelta(text=str(event.get("delta") or ""))]
        if kind == "response.output_item.added":
            item = event.get("item") or {}
            if item.get("type") == "function_call":
                index = self._calls[int(event.get("output_index") or 0)] = len(self._calls)
                return [ToolCallDelta(index=index, id=item.get("call_id"), name=item.get("name"))]
            return []
        if kind == "response.created":
            doc = event.get("response") or {}
            return [
                MessageStart(
                    id=str(doc.get("id") or ""),
                    model=str(doc.get("model") or ""),
                    created=int(doc.get("created_at") or 0),
                )
            ]
        if kind in ("response.completed", "response.incomplete"):
            self._ended = True
            doc = event.get("response") or {}
            calls = bool(self._calls)
            reason = _finish(doc, None)
            return [
                UsageUpdate(usage=_usage(doc.get("usage"))),
                FinishEvent(reason="tool_calls" if calls and reason == "stop" else reason),
            ]
        if kind in ("response.failed", "error"):
            self._ended = True
            doc = event.get("response") or {}
            err = doc.get("error") or event
            message = (
                str(err.get("message") or "the upstream's response failed") if isinstance(err, dict) else ""
            )
            raise ProviderError("server_error", message[:500], deployment=self._deployment.name)
        return []

    def close(self) -> list[StreamEvent]:
        if not self._ended:
            raise ProviderError("connection", "the upstream's Responses stream ended before its last event")
        return []
