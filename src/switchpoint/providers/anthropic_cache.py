"""Prompt-cache breakpoints on an Anthropic Messages body (pure; the adapter calls it).

The gateway's plan (``canonical.PromptCachePlan``, decided in ``cache/prompt.py``) says to
cache and with which TTL; this module says where, on the body about to be sent (the client's
own in passthrough, the translated one otherwise):

* The prefix boundaries are, in the API's order, the end of the tools, the end of the system
  prompt and the end of each message. A boundary whose prefix is under the model's minimum
  cacheable length (:func:`min_cacheable_tokens`) gets nothing.
* At most four breakpoints in all, the client's included; the client's are never moved or
  changed. The gateway adds, while there is room: the end of the last message (the longest
  prefix: the next turn of the conversation reads it), the end of the system prompt (or of the
  tools: stable across conversations), and the end of the message before the last user turn
  (a read anchor when a turn adds more than the API's 20-block lookback).
* A breakpoint goes on the last block of its segment that can carry one (not thinking); a
  string ``system`` or message ``content`` becomes one text block to carry it — the only
  change made to a passthrough body besides the added ``cache_control``.
* TTLs keep the API's order (a 1-hour breakpoint never after a 5-minute one): an added
  breakpoint takes the plan's TTL unless a client breakpoint forces the other.
"""

from __future__ import annotations

from typing import Any

import msgspec

from switchpoint.canonical import PromptCachePlan

MAX_BREAKPOINTS = 4
_ENCODE = msgspec.json.encode
_NO_CACHE_TYPES = frozenset({"thinking", "redacted_thinking"})


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix Anthropic caches for ``model`` (its published minimums: 4096 for
    Haiku 4.5 and Opus 4.5, 2048 for the Haiku 3 models, 1024 otherwise)."""
    name = model.lower()
    if "haiku-4-5" in name or "opus-4-5" in name:
        return 4096
    return 2048 if "haiku" in name else 1024


def _tokens(value: Any) -> int:
    """A cheap token estimate of a JSON value (≈ 4 bytes a token)."""
    if isinstance(value, str):
        return (len(value) + 3) // 4
    return (len(_ENCODE(value)) + 3) // 4


def _ttl_of(block: Any) -> str | None:
    if isinstance(block, dict):
        control = block.get("cache_control")
        if isinstance(control, dict):
            return "1h" if control.get("ttl") == "1h" else "5m"
    return None


class _Segment:
    """One prefix boundary: its key (``tools``, ``system`` or a message index), the tokens up
    to its end, and the TTLs of the client's breakpoints in it, in order."""

    __slots__ = ("end_tokens", "key", "marks")

    def __init__(self, key: str | int, end_tokens: int, marks: list[str]) -> None:
        self.key = key
        self.end_tokens = end_tokens
        self.marks = marks


def _blocks(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _marks(blocks: Any) -> list[str]:
    return [t for t in map(_ttl_of, _blocks(blocks)) if t]


def _segments(body: dict[str, Any]) -> list[_Segment]:
    out: list[_Segment] = []
    total = 0
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        total += _tokens(tools)
        out.append(_Segment("tools", total, _marks(tools)))
    system = body.get("system")
    if system:
        total += _tokens(system)
        out.append(_Segment("system", total, _marks(system)))
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        if not isinstance(message, dict):
            return []
        total += _tokens(message.get("content")) + 4
        out.append(_Segment(i, total, _marks(message.get("content"))))
    return out


def _last_cacheable(blocks: Any) -> dict[str, Any] | None:
    for candidate in reversed(_blocks(blocks)):
        if not isinstance(candidate, dict) or candidate.get("type") in _NO_CACHE_TYPES:
            continue
        if candidate.get("type") == "text" and not candidate.get("text"):
            continue
        return candidate
    return None


def _target(body: dict[str, Any], key: str | int) -> dict[str, Any] | None:
    """The block a breakpoint at ``key`` goes on (a string made a text block first), or None.
    The containers on the way are copied first: a passthrough body shares the client's."""
    if key == "tools":
        tools = body["tools"] = list(body["tools"])
        last = tools[-1]
        if not isinstance(last, dict):
            return None
        block = tools[-1] = dict(last)
        return block
    if key == "system":
        holder, field = body, "system"
    else:
        assert isinstance(key, int)
        messages = body["messages"]
        holder = messages[key] = dict(messages[key])
        field = "content"
    content = holder[field]
    if isinstance(content, str):
        if not content:
            return None
        block = {"type": "text", "text": content}
        holder[field] = [block]
        return block
    if not isinstance(content, list):
        return None
    found = _last_cacheable(content)
    if found is None:
        return None
    copied = holder[field] = list(content)
    block = dict(found)
    copied[next(i for i in range(len(content) - 1, -1, -1) if content[i] is found)] = block
    return block


def place_breakpoints(body: dict[str, Any], plan: PromptCachePlan, model: str) -> int:
    """Add the plan's breakpoints to ``body`` in place (its nested containers are copied before
    they change). Returns how many were added."""
    if "cache_control" in body:  # the client asked for automatic caching itself
        return 0
    segments = _segments(body)
    if not segments:
        return 0
    used = sum(len(s.marks) for s in segments)
    room = MAX_BREAKPOINTS - used
    if room <= 0:
        return 0
    minimum = min_cacheable_tokens(model)
    messages = [s for s in segments if not isinstance(s.key, str)]
    wanted: list[_Segment] = []
    if messages:
        wanted.append(messages[-1])
    stable = [s for s in segments if isinstance(s.key, str)]
    if stable:
        wanted.append(stable[-1])
    users = [s for s in messages[:-1] if body["messages"][s.key].get("role") == "user"]
    if users:
        wanted.append(users[-1])
    chosen: list[_Segment] = []
    for seg in wanted:
        if len(chosen) == room:
            break
        if seg.end_tokens >= minimum and not seg.marks and seg not in chosen:
            chosen.append(seg)
    if not chosen:
        return 0
    chosen.sort(key=segments.index)
    if any(isinstance(s.key, int) for s in chosen):
        body["messages"] = list(body["messages"])
    added = 0
    for seg in chosen:
        block = _target(body, seg.key)
        if block is None:
            continue
        position = segments.index(seg)
        before = [t for s in segments[:position] for t in s.marks]
        after = [t for s in segments[position + 1 :] for t in s.marks]
        ttl = plan.ttl
        if ttl == "1h" and "5m" in before:
            ttl = "5m"
        elif ttl == "5m" and "1h" in after:
            ttl = "1h"
        block["cache_control"] = {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}
        seg.marks.append(ttl)
        added += 1
    return added
