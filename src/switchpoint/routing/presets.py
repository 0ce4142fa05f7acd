"""Parameter presets of a rule, applied to the request unless the client set them.

Both forms of the request change: the canonical one (translated upstreams) and a copy of the
client's own body (``raw``, sent as is to an upstream of the same wire family). The routing
keys of ``metadata`` (task, session id, priority) are removed from both, since upstreams
reject keys they do not know there.
"""

from __future__ import annotations

from typing import Any

import msgspec

from switchpoint.canonical import ChatRequest, Thinking
from switchpoint.config import ParamsSpec
from switchpoint.routing.features import ROUTING_META_KEYS

#: Anthropic thinking budget for an effort level given without a budget (as the adapter maps it).
EFFORT_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}
MIN_THINKING_BUDGET = 1024


def _strip_meta(meta: Any) -> tuple[Any, bool]:
    if not isinstance(meta, dict) or not ROUTING_META_KEYS.intersection(meta):
        return meta, False
    kept = {k: v for k, v in meta.items() if k not in ROUTING_META_KEYS}
    return (kept or None), True


def _canonical(request: ChatRequest, p: ParamsSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.temperature is not None and request.temperature is None:
        out["temperature"] = p.temperature
    if p.top_p is not None and request.top_p is None:
        out["top_p"] = p.top_p
    if p.max_tokens is not None and request.max_tokens is None:
        out["max_tokens"] = p.max_tokens
    if p.stop is not None and request.stop is None:
        out["stop"] = list(p.stop)
    if (p.reasoning_effort is not None or p.thinking_budget is not None) and request.thinking is None:
        out["thinking"] = Thinking(enabled=True, budget_tokens=p.thinking_budget, effort=p.reasoning_effort)
    return out


def _openai_raw(body: dict[str, Any], changes: dict[str, Any]) -> None:
    for key in ("temperature", "top_p", "stop"):
        if key in changes:
            body[key] = changes[key]
    if "max_tokens" in changes and "max_completion_tokens" not in body and "max_tokens" not in body:
        body["max_completion_tokens"] = changes["max_tokens"]
    thinking = changes.get("thinking")
    if thinking is not None and thinking.effort is not None and "reasoning_effort" not in body:
        body["reasoning_effort"] = thinking.effort


def _anthropic_thinking(thinking: Thinking, max_tokens: Any) -> dict[str, Any] | None:
    budget = thinking.budget_tokens
    if budget is None:
        budget = EFFORT_BUDGET.get(thinking.effort or "")
    if budget is None or not isinstance(max_tokens, int):
        return None
    budget = min(max(budget, MIN_THINKING_BUDGET), max_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget >= MIN_THINKING_BUDGET else None


def _anthropic_raw(body: dict[str, Any], changes: dict[str, Any]) -> None:
    if "max_tokens" in changes and "max_tokens" not in body:
        body["max_tokens"] = changes["max_tokens"]
    thinking = changes.get("thinking")
    block = _anthropic_thinking(thinking, body.get("max_tokens")) if thinking is not None else None
    if block is not None and "thinking" not in body:
        body["thinking"] = block
    current = body.get("thinking")
    if not (isinstance(current, dict) and current.get("type") != "disabled"):
        # the Messages API takes sampling presets only without extended thinking
        for key in ("temperature", "top_p"):
            if key in changes:
                body[key] = changes[key]
    if "stop" in changes:
        body["stop_sequences"] = changes["stop"]


def apply(request: ChatRequest, params: ParamsSpec | None) -> tuple[ChatRequest, tuple[str, ...]]:
    """The request to execute and the names of the presets applied."""
    changes = _canonical(request, params) if params is not None else {}
    meta, meta_changed = _strip_meta(request.metadata)
    raw = request.raw
    raw_meta, raw_meta_changed = _strip_meta(raw.get("metadata")) if raw is not None else (None, False)
    if not changes and not meta_changed and not raw_meta_changed:
        return request, ()
    if raw is not None:
        body = dict(raw)
        if raw_meta_changed:
            if raw_meta is None:
                body.pop("metadata", None)
            else:
                body["metadata"] = raw_meta
        if changes:
            (_openai_raw if request.dialect == "openai" else _anthropic_raw)(body, changes)
        raw = body
    update: dict[str, Any] = dict(changes)
    if meta_changed:
        update["metadata"] = meta
    names = [k for k in changes if k != "thinking"]
    if "thinking" in changes and params is not None:
        names += [k for k in ("reasoning_effort", "thinking_budget") if getattr(params, k) is not None]
    return msgspec.structs.replace(request, raw=raw, **update), tuple(names)


def cap_output(request: ChatRequest, limit: int) -> ChatRequest:
    """The request asking for at most ``limit`` output tokens (an output budget's room), in
    both forms: the canonical one and the client's own body."""
    if request.max_tokens is not None and request.max_tokens <= limit:
        return request
    forwarded = request.responses_body
    if forwarded is not None:  # the Responses API takes 16 output tokens at the least
        forwarded = {**forwarded, "max_output_tokens": limit} if limit >= 16 else None
    raw = request.raw
    if raw is not None:
        body = dict(raw)
        if request.dialect == "openai":
            key = "max_tokens" if "max_tokens" in body and "max_completion_tokens" not in body else None
            body[key or "max_completion_tokens"] = limit
        else:
            body["max_tokens"] = limit
        raw = body
    return msgspec.structs.replace(request, raw=raw, responses_body=forwarded, max_tokens=limit)
