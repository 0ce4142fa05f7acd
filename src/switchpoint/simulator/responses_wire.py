"""OpenAI's Responses API on the simulator's OpenAI wire: ``POST /openai/v1/responses``.

Input items (messages with ``input_text`` / ``output_text`` / ``input_image`` parts,
``function_call``, ``function_call_output``), ``instructions``, function tools and
``tool_choice``, ``text.format`` (JSON object or schema), ``reasoning.effort`` and
``max_output_tokens`` decide the answer as for Chat Completions. The answer is a Response
object, or its stream of events (``response.created`` … ``response.completed`` /
``response.incomplete``), numbered by ``sequence_number``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .common import Frames, SimError, invalid_body, new_id, now
from .content import Answer, ChatCall, Conversation, ToolSpec

_REASONING = {"minimal": 4, "low": 8, "medium": 16, "high": 32, "xhigh": 48}
_encode = msgspec.json.encode


class ResponsesBody(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    stream: bool | None = None
    parallel_tool_calls: bool | None = None
    prompt_cache_key: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    previous_response_id: str | None = None


_BODY = msgspec.json.Decoder(ResponsesBody)


def _content(content: Any, conv: Conversation) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            texts.append(str(part.get("text", "")))
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        elif kind == "input_image":
            conv.images += 1
    return "\n".join(texts)


def _items(body: ResponsesBody, conv: Conversation) -> None:
    items = (
        [{"type": "message", "role": "user", "content": body.input}]
        if isinstance(body.input, str)
        else body.input
    )
    if not items:
        raise SimError(400, "Invalid 'input': empty array.", param="input")
    last = ""
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message":
            role = str(item.get("role", "user"))
            conv.turns.append(
                ("system" if role == "developer" else role, _content(item.get("content"), conv))
            )
            last = role
        elif kind == "function_call":
            conv.turns.append(("assistant", f"{item.get('name', '')}{item.get('arguments', '')}"))
            last = "assistant"
        elif kind == "function_call_output":
            output = item.get("output")
            conv.turns.append(("tool", output if isinstance(output, str) else _content(output, conv)))
            last = "tool"
        elif kind == "reasoning":
            continue
        else:
            raise SimError(400, f"Invalid value for 'input[{i}].type': {kind!r}.", param=f"input[{i}].type")
    conv.ends_with_user = last == "user"
    if last == "user":
        conv.last_user_text = conv.turns[-1][1]
    elif last == "tool":
        conv.tool_result = conv.turns[-1][1]


def _options(body: ResponsesBody, conv: Conversation) -> None:
    for tool in body.tools or ():
        if tool.get("type") == "function" and tool.get("name"):
            conv.tools.append(ToolSpec(str(tool["name"]), tool.get("parameters")))
            conv.tool_chars += len(_encode(tool))
    choice = body.tool_choice
    if isinstance(choice, str):
        conv.tool_mode = "none" if choice == "none" else ("any" if choice == "required" else "auto")
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if not any(t.name == name for t in conv.tools):
            raise SimError(
                400, f"Invalid value for 'tool_choice': no tool named {name!r}.", param="tool_choice"
            )
        conv.tool_mode, conv.forced_tool = "any", str(name)
    fmt = (body.text or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        conv.json_mode = True
        if fmt["type"] == "json_schema":
            schema = fmt.get("schema")
            conv.json_schema = schema if isinstance(schema, dict) else {"type": "object"}
    effort = (body.reasoning or {}).get("effort")
    if isinstance(effort, str) and effort != "none":
        conv.thinking_tokens = _REASONING.get(effort, 16)
    conv.parallel = body.parallel_tool_calls is not False
    conv.max_tokens = body.max_output_tokens


class ResponsesCall(ChatCall):
    """A Responses call: the conversation, and the request fields its Response object repeats."""

    def __init__(self, conv: Conversation, body: ResponsesBody) -> None:
        super().__init__(conv=conv, stream=bool(body.stream), include_usage=True)
        self.body = body


def parse_responses(raw: bytes) -> ResponsesCall:
    try:
        body = _BODY.decode(raw)
    except msgspec.MsgspecError as exc:
        raise invalid_body(exc) from None
    if body.previous_response_id is not None:
        raise SimError(404, f"Previous response with id '{body.previous_response_id}' not found.")
    conv = Conversation(model=body.model, family="openai", cache_key=body.prompt_cache_key or "")
    if body.instructions:
        conv.turns.append(("system", body.instructions))
    _items(body, conv)
    _options(body, conv)
    return ResponsesCall(conv, body)


def _usage(answer: Answer) -> dict[str, Any]:
    u = answer.usage
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cached_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.thinking_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def _message(answer: Answer, mid: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": answer.content, "annotations": [], "logprobs": []}
    return {"id": mid, "type": "message", "role": "assistant", "status": status, "content": [part]}


def _output(answer: Answer, ids: list[str]) -> list[dict[str, Any]]:
    status = "incomplete" if answer.finish == "length" else "completed"
    items: list[dict[str, Any]] = []
    if answer.thinking:
        summary = [{"type": "summary_text", "text": "".join(answer.thinking)}]
        items.append({"id": ids[0], "type": "reasoning", "summary": summary, "status": "completed"})
    if answer.calls:
        for i, c in enumerate(answer.calls):
            items.append(
                {
                    "id": ids[1 + i],
                    "type": "function_call",
                    "call_id": "call_" + c.key,
                    "name": c.name,
                    "arguments": c.json,
                    "status": "completed",
                }
            )
    else:
        items.append(_message(answer, ids[1], status))
    return items


def _ids(answer: Answer) -> list[str]:
    """Ids of the output items: a reasoning item's, then each call's or the message's."""
    rest = [new_id("fc_") for _ in answer.calls] if answer.calls else [new_id("msg_")]
    return [new_id("rs_"), *rest]


def _doc(
    call: ResponsesCall, answer: Answer | None, rid: str, created: int, output: list[dict[str, Any]]
) -> dict[str, Any]:
    body = call.body
    status = "in_progress" if answer is None else ("incomplete" if answer.finish == "length" else "completed")
    doc: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": body.model,
        "output": output,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": None,
        "reasoning": {"effort": (body.reasoning or {}).get("effort"), "summary": None},
        "store": body.store is not False,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "text": body.text or {"format": {"type": "text"}},
        "tool_choice": body.tool_choice or "auto",
        "tools": body.tools or [],
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "truncation": "disabled",
        "metadata": body.metadata or {},
    }
    if answer is not None:
        doc["usage"] = _usage(answer)
    return doc


def render_responses(call: ChatCall, answer: Answer) -> bytes:
    assert isinstance(call, ResponsesCall)
    return _encode(_doc(call, answer, new_id("resp_"), now(), _output(answer, _ids(answer))))


class _Events:
    def __init__(self) -> None:
        self.seq = 0

    def __call__(self, kind: str, fields: dict[str, Any]) -> bytes:
        data = _encode({"type": kind, "sequence_number": self.seq, **fields})
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def stream_responses(call: ChatCall, answer: Answer) -> Frames:
    assert isinstance(call, ResponsesCall)
    rid, created, ids = new_id("resp_"), now(), _ids(answer)
    event = _Events()
    frames = Frames()
    head = _doc(call, None, rid, created, [])
    frames.pre += [
        event("response.created", {"response": head}),
        event("response.in_progress", {"response": head}),
    ]
    items = _output(answer, ids)
    for index, item in enumerate(items):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "reasoning":
            frames.content.append(event("response.output_item.added", {"output_index": index, "item": item}))
        elif item["type"] == "function_call":
            c = answer.calls[index - (1 if answer.thinking else 0)]
            frames.content.append(
                event(
                    "response.output_item.added",
                    {"output_index": index, "item": {**item, "arguments": "", "status": "in_progress"}},
                )
            )
            for piece in c.pieces:
                frames.content.append(
                    event("response.function_call_arguments.delta", {**where, "delta": piece})
                )
            frames.content.append(
                event("response.function_call_arguments.done", {**where, "name": c.name, "arguments": c.json})
            )
        else:
            empty = {**item, "status": "in_progress", "content": []}
            frames.content.append(event("response.output_item.added", {"output_index": index, "item": empty}))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            at = {**where, "content_index": 0}
            frames.content.append(event("response.content_part.added", {**at, "part": part}))
            for piece in answer.text:
                frames.content.append(
                    event("response.output_text.delta", {**at, "delta": piece, "logprobs": []})
                )
            text = answer.content
            frames.post.append(event("response.output_text.done", {**at, "text": text, "logprobs": []}))
            frames.post.append(event("response.content_part.done", {**at, "part": {**part, "text": text}}))
        (frames.post if item["type"] == "message" else frames.content).append(
            event("response.output_item.done", {"output_index": index, "item": item})
        )
    done = _doc(call, answer, rid, created, items)
    kind = "response.incomplete" if done["status"] == "incomplete" else "response.completed"
    frames.post.append(event(kind, {"response": done}))
    return frames
