"""Context trimming: make a conversation fit a window without breaking it.

The conversation is cut into turns: a turn starts at a user message that does not answer a
tool call, and holds everything up to the next one, so a tool call and its result always stay
together. System (and developer) messages and the newest ``keep_last_turns`` turns are kept.
The oldest turns are first cut short (``truncate_chars``, when set), then dropped, until the
prompt fits.

The same cut is made in the client's own body (``raw``) so that passthrough still sends the
trimmed conversation; when the body's turns cannot be matched one to one with the canonical
ones, ``raw`` is dropped and the request is translated instead.
"""

from __future__ import annotations

from typing import Any

import msgspec

from switchpoint.canonical import ChatRequest, Message, Part, TextPart, ToolResultPart
from switchpoint.config import ContextSpec
from switchpoint.routing.features import message_tokens

MARK = " [...]"
_SYSTEM_ROLES = ("system", "developer")


def turns(messages: list[Message]) -> tuple[list[int], list[list[int]]]:
    """Indices of system messages, and of every turn's messages, oldest first."""
    system: list[int] = []
    groups: list[list[int]] = []
    prev: Message | None = None
    for i, m in enumerate(messages):
        if m.role in _SYSTEM_ROLES:
            system.append(i)
            continue
        if not groups or (m.role == "user" and (prev is None or prev.role != "tool")):
            groups.append([])
        groups[-1].append(i)
        prev = m
    return system, groups


def _raw_turns(raw_messages: list[Any]) -> list[list[int]] | None:
    """Turns of an Anthropic body's ``messages`` (tool results live inside user messages)."""
    groups: list[list[int]] = []
    for i, m in enumerate(raw_messages):
        if not isinstance(m, dict):
            return None
        content = m.get("content")
        answers_tool = isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        )
        if not groups or (m.get("role") == "user" and not answers_tool):
            groups.append([])
        groups[-1].append(i)
    return groups


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n + len(MARK) else text[:n] + MARK


def _cut_part(p: Part, n: int) -> Part:
    if isinstance(p, TextPart):
        return msgspec.structs.replace(p, text=_cut(p.text, n))
    if isinstance(p, ToolResultPart):
        content = [
            msgspec.structs.replace(c, text=_cut(c.text, n)) if isinstance(c, TextPart) else c
            for c in p.content
        ]
        return msgspec.structs.replace(p, content=content)
    return p


def _cut_message(m: Message, n: int) -> Message:
    return msgspec.structs.replace(m, parts=[_cut_part(p, n) for p in m.parts])


def _cut_raw(value: Any, n: int) -> Any:
    """The same cut in a wire message: string contents and text blocks (either dialect)."""
    if isinstance(value, str):
        return _cut(value, n)
    if isinstance(value, list):
        return [_cut_raw(v, n) for v in value]
    if isinstance(value, dict):
        out = dict(value)
        if out.get("type") == "text" and isinstance(out.get("text"), str):
            out["text"] = _cut(out["text"], n)
        if "content" in out:
            out["content"] = _cut_raw(out["content"], n)
        return out
    return value


class Trim(msgspec.Struct, kw_only=True):
    request: ChatRequest
    dropped: int
    truncated: int
    note: str


def trim(request: ChatRequest, current: int, target: int, spec: ContextSpec) -> Trim | None:
    """``request`` cut down from ``current`` to about ``target`` prompt tokens, or None if it cannot be."""
    msgs = request.messages
    system, groups = turns(msgs)
    droppable = len(groups) - spec.keep_last_turns
    if droppable <= 0:
        return None
    new = list(msgs)
    est = float(current)
    truncated = 0
    if spec.truncate_chars is not None:
        for g in groups[:droppable]:
            if est <= target:
                break
            for i in g:
                cut = _cut_message(new[i], spec.truncate_chars)
                est -= message_tokens(new[i])[0] - message_tokens(cut)[0]
                new[i] = cut
            truncated += 1
    dropped = 0
    while est > target and dropped < droppable:
        est -= sum(message_tokens(new[i])[0] for i in groups[dropped])
        dropped += 1
    if est > target:
        return None
    keep = sorted(system + [i for g in groups[dropped:] for i in g])
    raw = _trim_raw(request, groups, dropped, truncated, spec.truncate_chars)
    # a Responses body is not cut: a trimmed Responses request is translated
    changed = msgspec.structs.replace(request, messages=[new[i] for i in keep], raw=raw, responses_body=None)
    note = f"dropped {dropped} oldest turn(s)"
    if truncated:
        note = f"cut {truncated} oldest turn(s) to {spec.truncate_chars} chars, " + note
    return Trim(request=changed, dropped=dropped, truncated=truncated, note=note)


def _trim_raw(
    request: ChatRequest, groups: list[list[int]], dropped: int, truncated: int, chars: int | None
) -> dict[str, Any] | None:
    raw = request.raw
    if raw is None or not isinstance(raw.get("messages"), list):
        return None
    raw_messages: list[Any] = raw["messages"]
    if request.dialect == "openai":
        if len(raw_messages) != len(request.messages):
            return None
        raw_groups, keep_sys = groups, turns(request.messages)[0]
    else:
        found = _raw_turns(raw_messages)
        if found is None or len(found) != len(groups):
            return None
        raw_groups, keep_sys = found, []
    out: list[Any] = []
    cut = {i for g in raw_groups[dropped:truncated] for i in g} if chars is not None else set()
    keep = sorted(keep_sys + [i for g in raw_groups[dropped:] for i in g])
    for i in keep:
        m = raw_messages[i]
        out.append(_cut_raw(m, chars) if i in cut and chars is not None else m)
    body = dict(raw)
    body["messages"] = out
    return body
