"""The Responses dialect's encoders: canonical answers as a Response object, canonical stream
events as the Responses stream (``response.created`` … ``response.completed``).

Output items, in the order the model produced them: ``reasoning`` (thinking text as one
``summary_text``; an Anthropic signature, or redacted thinking marked ``redacted:``, in
``encrypted_content``, so a conversation continued through ``previous_response_id`` gives the
model its thinking back), one assistant ``message`` with one ``output_text`` part, and one
``function_call`` per tool call. A ``length`` finish makes the response ``incomplete``
(``max_output_tokens``), a content filter too (``content_filter``).

Every stream event carries its ``sequence_number`` (0, 1, 2 … per stream). A failure after
the stream committed ends it with an ``error`` event and then ``response.failed`` (the
response with what was produced so far and the error), so a client waiting for a terminal
event gets one.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from switchpoint.api.dialect import StreamEncoder
from switchpoint.canonical import (
    ChatResponse,
    Finish,
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
from switchpoint.errors import SwitchpointError
from switchpoint.streaming import SSEFrame, encode

if TYPE_CHECKING:
    from switchpoint.api.responses import ResponsesRequest

_json = msgspec.json.encode
#: Marks a reasoning item's ``encrypted_content`` as redacted thinking rather than a signature.
REDACTED = "redacted:"
#: The wire of an upstream that answered in the Responses API itself (its answer is forwarded).
FORWARDED = "openai-responses"
#: The stream events that end a Response: they carry the whole response.
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
#: Finishes that leave a response incomplete, and the reason the Response object gives.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage_out(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cached_input_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }


def failure_code(err: SwitchpointError) -> str:
    """The Response object's ``error.code`` (the published enum has few values for a gateway)."""
    return "rate_limit_exceeded" if err.kind == "rate_limited" else "server_error"


def response_doc(
    request: ResponsesRequest,
    rid: str,
    created: int,
    status: str,
    output: list[dict[str, Any]],
    *,
    usage: Usage | None = None,
    finish: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Response object: what was produced, and the request's settings it repeats."""
    echo = request.echo
    reason = _INCOMPLETE.get(finish or "")
    if status == "completed" and reason is not None:
        status = "incomplete"
    doc: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": request.background,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": reason} if status == "incomplete" else None,
        "instructions": request.instructions,
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": request.model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": request.previous_response_id,
        "reasoning": echo.get("reasoning", {"effort": None, "summary": None}),
        "store": request.store,
        "temperature": echo.get("temperature"),
        "text": echo.get("text", {"format": {"type": "text"}}),
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools", []),
        "top_p": echo.get("top_p"),
        "truncation": echo.get("truncation", "disabled"),
        "metadata": echo.get("metadata", {}),
    }
    for key in ("user", "safety_identifier", "top_logprobs"):
        if key in echo:
            doc[key] = echo[key]
    if usage is not None:
        doc["usage"] = usage_out(usage)
    return doc


def _reasoning_item(part: ThinkingPart, rid: str | None = None) -> dict[str, Any]:
    opaque = part.signature
    if part.redacted:
        opaque = REDACTED + part.redacted
    return {
        "id": rid or new_id("rs"),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": part.text}] if part.text else [],
        "encrypted_content": opaque,
        "status": "completed",
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(text: str, status: str, mid: str | None = None) -> dict[str, Any]:
    return {
        "id": mid or new_id("msg"),
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [_text_part(text)],
    }


def _call_item(call_id: str, name: str, arguments: str, fid: str | None = None) -> dict[str, Any]:
    return {
        "id": fid or new_id("fc"),
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def output_items(response: ChatResponse) -> list[dict[str, Any]]:
    """A canonical answer's parts as Response output items."""
    items: list[dict[str, Any]] = []
    incomplete = response.finish_reason in _INCOMPLETE
    texts = [p.text for p in response.parts if isinstance(p, TextPart)]
    message_at = None
    for part in response.parts:
        if isinstance(part, ThinkingPart):
            items.append(_reasoning_item(part))
        elif isinstance(part, TextPart) and message_at is None:
            message_at = len(items)
            items.append(_message_item("".join(texts), "incomplete" if incomplete else "completed"))
        elif isinstance(part, ToolCallPart):
            items.append(_call_item(part.id, part.name, part.arguments or "{}"))
    return items


def response_object(response: ChatResponse, request: ResponsesRequest) -> bytes:
    """A non-streamed answer as a Response object."""
    doc = response_doc(
        request,
        new_id("resp"),
        response.created or int(time.time()),
        "completed",
        output_items(response),
        usage=response.usage,
        finish=response.finish_reason,
    )
    return _json(doc)


class ResponsesStreamEncoder(StreamEncoder):
    """One Responses stream: canonical events in, ``event: <type>`` / ``data: {...}`` frames out.

    One output item is open at a time (providers stream reasoning, text and each tool call in
    turn); the next kind of event closes it with its ``.done`` events.
    """

    def __init__(self, request: ResponsesRequest) -> None:
        self._request = request
        self.id = request.response_id or new_id("resp")
        self._created = request.response_created or int(time.time())
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any]] = []
        #: The open item (a dict that becomes its ``output`` entry), its kind and its text.
        self._open: dict[str, Any] | None = None
        self._pieces: list[str] = []
        self._tool_index: int | None = None
        self._usage = Usage()
        self._finish: str | None = None
        self._final: bytes | None = None
        self._forwarded = False

    def commit(self, family: str) -> None:
        """Translated from canonical events, but for an upstream that streams the Responses
        API itself: its frames are forwarded unchanged."""
        self._forwarded = family == FORWARDED

    # --- framing ---------------------------------------------------------------------------

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        fields["type"] = kind
        fields["sequence_number"] = self._seq
        self._seq += 1
        return encode(_json(fields), kind)

    def _snapshot(self, status: str, **kw: Any) -> dict[str, Any]:
        return response_doc(self._request, self.id, self._created, status, list(self._output), **kw)

    def _begin(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        if self._request.background:  # created and queued went out when it was queued
            self._seq = 2
            return self._event("response.in_progress", {"response": self._snapshot("in_progress")})
        return self._event("response.created", {"response": self._snapshot("in_progress")}) + self._event(
            "response.in_progress", {"response": self._snapshot("in_progress")}
        )

    # --- items -----------------------------------------------------------------------------

    def _add(self, item: dict[str, Any]) -> bytes:
        self._open = item
        self._pieces = []
        self._output.append(item)
        return self._event(
            "response.output_item.added", {"output_index": len(self._output) - 1, "item": dict(item)}
        )

    def _where(self) -> dict[str, Any]:
        assert self._open is not None
        return {"item_id": self._open["id"], "output_index": len(self._output) - 1}

    def _close(self, status: str = "completed") -> bytes:
        item = self._open
        if item is None:
            return b""
        where = self._where()
        text = "".join(self._pieces)
        kind = item["type"]
        out = b""
        if kind == "message":
            part = _text_part(text)
            out += self._event(
                "response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []}
            )
            out += self._event("response.content_part.done", {**where, "content_index": 0, "part": part})
            item["content"] = [part]
        elif kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            out += self._event(
                "response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text}
            )
            out += self._event(
                "response.reasoning_summary_part.done", {**where, "summary_index": 0, "part": part}
            )
            item["summary"] = [part]
        else:
            item["arguments"] = text or "{}"
            out += self._event(
                "response.function_call_arguments.done",
                {**where, "name": item["name"], "arguments": item["arguments"]},
            )
        item["status"] = status
        out += self._event(
            "response.output_item.done", {"output_index": where["output_index"], "item": dict(item)}
        )
        self._open = None
        self._tool_index = None
        return out

    def _kind(self) -> str | None:
        return self._open["type"] if self._open is not None else None

    def _text(self, text: str) -> bytes:
        out = b""
        if self._kind() != "message":
            out += self._close()
            out += self._add(
                {
                    "id": new_id("msg"),
                    "type": "message",
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                }
            )
            out += self._event(
                "response.content_part.added", {**self._where(), "content_index": 0, "part": _text_part("")}
            )
        self._pieces.append(text)
        return out + self._event(
            "response.output_text.delta", {**self._where(), "content_index": 0, "delta": text, "logprobs": []}
        )

    def _thinking(self, event: ThinkingDelta) -> bytes:
        out = b""
        if event.redacted:
            out += self._close()
            out += self._add(
                _reasoning_item(ThinkingPart(redacted=event.redacted), new_id("rs"))
                | {"status": "in_progress"}
            )
            return out + self._close()
        if event.text:
            if self._kind() != "reasoning":
                out += self._close()
                out += self._add(
                    {"id": new_id("rs"), "type": "reasoning", "summary": [], "status": "in_progress"}
                )
                out += self._event(
                    "response.reasoning_summary_part.added",
                    {**self._where(), "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
                )
            self._pieces.append(event.text)
            out += self._event(
                "response.reasoning_summary_text.delta",
                {**self._where(), "summary_index": 0, "delta": event.text},
            )
        if event.signature:
            target = self._open if self._kind() == "reasoning" else None
            if target is None:
                target = next((i for i in reversed(self._output) if i["type"] == "reasoning"), None)
            if target is not None:
                target["encrypted_content"] = event.signature
        return out

    def _tool(self, event: ToolCallDelta) -> bytes:
        out = b""
        if self._kind() != "function_call" or self._tool_index != event.index:
            out += self._close()
            item = {
                "id": new_id("fc"),
                "type": "function_call",
                "call_id": event.id or "",
                "name": event.name or "",
                "arguments": "",
                "status": "in_progress",
            }
            out += self._add(item)
            self._tool_index = event.index
        if event.arguments:
            self._pieces.append(event.arguments)
            out += self._event(
                "response.function_call_arguments.delta", {**self._where(), "delta": event.arguments}
            )
        return out

    # --- the StreamEncoder protocol ----------------------------------------------------------

    def encode(self, events: list[StreamEvent], frame: SSEFrame | None) -> bytes:
        if self._forwarded:
            return self._forward(frame)
        out = self._begin()
        for event in events:
            if isinstance(event, TextDelta):
                if event.text:
                    out += self._text(event.text)
            elif isinstance(event, ToolCallDelta):
                out += self._tool(event)
            elif isinstance(event, ThinkingDelta):
                out += self._thinking(event)
            elif isinstance(event, UsageUpdate):
                self._usage = self._usage.merge(event.usage)
            elif isinstance(event, Finish):
                self._finish = event.reason
        return out

    def _forward(self, frame: SSEFrame | None) -> bytes:
        """An upstream frame (or a run of them) as it came; the whole response kept from the
        last one (for the conversation store). Events are counted, for an error event's number."""
        self._started = True
        if frame is None:
            return b""
        if frame.data:
            self._seq += 1
            if frame.event in _TERMINAL:
                self._final = _json(msgspec.json.decode(frame.data).get("response"))
        else:
            self._seq += frame.raw.count(b"\n\n")
        return frame.raw

    def finish(self) -> bytes:
        if self._forwarded:
            return b""
        out = self._begin()
        incomplete = self._finish in _INCOMPLETE
        out += self._close("incomplete" if incomplete else "completed")
        doc = self._snapshot("completed", usage=self._usage, finish=self._finish)
        self._final = _json(doc)
        kind = "response.incomplete" if doc["status"] == "incomplete" else "response.completed"
        return out + self._event(kind, {"response": doc})

    def result(self) -> bytes | None:
        return self._final

    def error(self, err: SwitchpointError) -> bytes:
        out = self._begin()
        out += self._event(
            "error", {"code": err.code or err.kind, "message": err.message, "param": err.param}
        )
        if self._open is not None:
            out += self._close("incomplete")
        failed = {"code": failure_code(err), "message": err.message}
        doc = self._snapshot("failed", usage=self._usage, error=failed)
        return out + self._event("response.failed", {"response": doc})


# --- a stored Response streamed again --------------------------------------------------------

#: The stream's terminal event for a finished Response's status (a cancelled one has none).
TERMINAL_EVENT = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
}


def split_events(data: bytes) -> list[bytes]:
    """A run of SSE frames as one frame each (the encoder's frames end with a blank line and
    carry compact JSON, so a blank line only ever ends a frame)."""
    return [frame + b"\n\n" for frame in data.split(b"\n\n") if frame]


def queued_events(request: ResponsesRequest, doc: dict[str, Any]) -> bytes:
    """A background response's first events, sent when it is queued: ``response.created`` and
    ``response.queued`` (numbers 0 and 1; its run's encoder goes on from 2)."""
    first = ResponsesStreamEncoder(request)
    return first._event("response.created", {"response": doc}) + first._event(
        "response.queued", {"response": doc}
    )


class StoredStream(ResponsesStreamEncoder):
    """A stored Response object as the stream that would have produced it, through the same
    encoder: ``response.created``, ``response.in_progress``, each output item's events (its
    text, summary or arguments in one delta), and the terminal event of its status. The
    snapshots in ``response.created`` / ``in_progress`` are the stored object in progress."""

    def __init__(self, doc: dict[str, Any]) -> None:
        from switchpoint.api.responses import ResponsesRequest

        super().__init__(
            ResponsesRequest(model=str(doc.get("model", "")), messages=[], response_id=doc["id"])
        )
        self._doc = doc

    def _begin(self) -> bytes:
        if self._started or not self._doc.get("background"):
            return super()._begin()
        self._started = True  # a background response: created and queued, then in progress
        out = self._event("response.created", {"response": self._snapshot("queued")})
        out += self._event("response.queued", {"response": self._snapshot("queued")})
        return out + self._event("response.in_progress", {"response": self._snapshot("in_progress")})

    def _snapshot(self, status: str, **kw: Any) -> dict[str, Any]:
        doc = dict(self._doc)
        doc.update(status=status, output=list(self._output), completed_at=None, error=None)
        doc["incomplete_details"] = None
        doc.pop("usage", None)  # as the live stream's snapshots: no usage until the end
        return doc

    def events(self) -> list[bytes]:
        out = self._begin()
        for item in self._doc.get("output") or []:
            out += self._item(item)
        terminal = TERMINAL_EVENT.get(str(self._doc.get("status")))
        if terminal is not None:
            out += self._event(terminal, {"response": self._doc})
        return split_events(out)

    def _item(self, item: dict[str, Any]) -> bytes:
        kind = item.get("type")
        status = str(item.get("status") or "completed")
        if kind == "message":
            content = item.get("content") or []
            text = "".join(str(p.get("text") or p.get("refusal") or "") for p in content)
            out = self._add({**item, "status": "in_progress", "content": []})
            where = self._where()
            out += self._event(
                "response.content_part.added", {**where, "content_index": 0, "part": _text_part("")}
            )
            if text:
                self._pieces.append(text)
                out += self._event(
                    "response.output_text.delta", {**where, "content_index": 0, "delta": text, "logprobs": []}
                )
            return out + self._close(status)
        if kind == "reasoning":
            text = "".join(str(p.get("text") or "") for p in item.get("summary") or [])
            out = self._add({**item, "status": "in_progress", "summary": []})
            if text:
                where = self._where()
                part = {"type": "summary_text", "text": ""}
                out += self._event(
                    "response.reasoning_summary_part.added", {**where, "summary_index": 0, "part": part}
                )
                self._pieces.append(text)
                out += self._event(
                    "response.reasoning_summary_text.delta", {**where, "summary_index": 0, "delta": text}
                )
            return out + self._close(status)
        if kind == "function_call":
            arguments = str(item.get("arguments") or "")
            out = self._add({**item, "status": "in_progress", "arguments": ""})
            if arguments:
                self._pieces.append(arguments)
                out += self._event(
                    "response.function_call_arguments.delta", {**self._where(), "delta": arguments}
                )
            return out + self._close(status)
        # an item the gateway does not stream itself (a forwarded upstream's): added, then done
        self._output.append(item)
        index = len(self._output) - 1
        return self._event("response.output_item.added", {"output_index": index, "item": item}) + self._event(
            "response.output_item.done", {"output_index": index, "item": item}
        )
