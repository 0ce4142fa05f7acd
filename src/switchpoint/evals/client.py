"""One case through the gateway: streamed Chat Completions, tool results fed back, timed.

The time to the first token is the first streamed content (text or a tool call) of the first
turn; the latency is every turn's. Cost is the gateway's deployment price applied to each
turn's reported usage (the deployment named by ``x-switchpoint-deployment``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from switchpoint import pricing
from switchpoint.canonical import Usage
from switchpoint.evals.suite import Case

#: The deployment's price for an answer, or None when it is not known (a gateway over HTTP).
CostOf = Callable[[str | None, Usage], float | None]


class ToolCall(msgspec.Struct, kw_only=True):
    name: str
    arguments: Any
    """The decoded arguments; the raw text when they are not JSON."""
    raw: str = ""


class Outcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    text: str = ""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    error: str | None = None
    status: int = 200
    ttft_s: float | None = None
    latency_s: float = 0.0
    cost_usd: float | None = None
    deployment: str | None = None
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class _Turn:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage = Usage()
        self.first: float | None = None

    def feed(self, chunk: dict[str, Any], now: float) -> None:
        if chunk.get("usage"):
            u = chunk["usage"]
            details = u.get("prompt_tokens_details") or {}
            out_details = u.get("completion_tokens_details") or {}
            self.usage = Usage(
                input_tokens=int(u.get("prompt_tokens") or 0),
                cached_input_tokens=int(details.get("cached_tokens") or 0),
                output_tokens=int(u.get("completion_tokens") or 0),
                reasoning_tokens=int(out_details.get("reasoning_tokens") or 0),
            )
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text.append(delta["content"])
                self.first = self.first if self.first is not None else now
            for tc in delta.get("tool_calls") or ():
                self.first = self.first if self.first is not None else now
                slot = self.calls.setdefault(int(tc.get("index", 0)), {"id": "", "name": "", "args": ""})
                fn = tc.get("function") or {}
                slot["id"] = tc.get("id") or slot["id"]
                slot["name"] += fn.get("name") or ""
                slot["args"] += fn.get("arguments") or ""

    def tool_calls(self) -> list[ToolCall]:
        out = []
        for slot in (self.calls[i] for i in sorted(self.calls)):
            try:
                args = json.loads(slot["args"]) if slot["args"] else {}
            except ValueError:
                args = slot["args"]
            out.append(ToolCall(name=slot["name"], arguments=args, raw=slot["args"]))
        return out


def request_body(
    case: Case, model: str, messages: list[dict[str, Any]], defaults: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {**defaults, **(case.params or {})}
    body.update(model=model, messages=messages, stream=True, stream_options={"include_usage": True})
    if case.tools:
        body["tools"] = case.tools
    if case.response_format:
        body["response_format"] = case.response_format
    return body


def _error_text(status: int, raw: bytes) -> str:
    try:
        err = json.loads(raw).get("error") or {}
        return f"{status}: {err.get('message') or raw[:200].decode(errors='replace')}"
    except (ValueError, AttributeError):
        return f"{status}: {raw[:200].decode(errors='replace')}"


async def _turn(
    client: httpx.AsyncClient, body: dict[str, Any], started: float
) -> tuple[_Turn, str | None, int]:
    turn = _Turn()
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        deployment = resp.headers.get("x-switchpoint-deployment") or None
        if resp.status_code != 200:
            raise _Failed(_error_text(resp.status_code, await resp.aread()), resp.status_code, deployment)
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise _Failed(str(chunk["error"].get("message")), 502, deployment)
            turn.feed(chunk, time.perf_counter() - started)
    return turn, deployment, resp.status_code


class _Failed(Exception):
    def __init__(self, message: str, status: int, deployment: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.deployment = deployment


def _follow_up(turn: _Turn, case: Case) -> list[dict[str, Any]] | None:
    """The messages answering the turn's tool calls, when the case has every result."""
    results = case.tool_results or {}
    calls = [turn.calls[i] for i in sorted(turn.calls)]
    if not calls or any(c["name"] not in results for c in calls):
        return None
    asked = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": c["id"] or f"call_{i}",
                "type": "function",
                "function": {"name": c["name"], "arguments": c["args"]},
            }
            for i, c in enumerate(calls)
        ],
    }
    answers = [
        {"role": "tool", "tool_call_id": c["id"] or f"call_{i}", "content": _as_text(results[c["name"]])}
        for i, c in enumerate(calls)
    ]
    return [asked, *answers]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def run_case(
    client: httpx.AsyncClient,
    case: Case,
    model: str,
    *,
    defaults: dict[str, Any],
    max_turns: int,
    cost_of: CostOf,
) -> Outcome:
    """Run the case's conversation; the outcome of its last answer (errors included, never raised)."""
    messages = list(case.messages)
    started = time.perf_counter()
    out = Outcome()
    costs: list[float | None] = []
    calls: list[ToolCall] = []
    try:
        for _ in range(max_turns):
            turn, out.deployment, out.status = await _turn(
                client, request_body(case, model, messages, defaults), started
            )
            out.turns += 1
            if out.ttft_s is None:
                out.ttft_s = turn.first
            out.input_tokens += turn.usage.input_tokens
            out.output_tokens += turn.usage.output_tokens
            costs.append(cost_of(out.deployment, turn.usage))
            calls.extend(turn.tool_calls())
            out.text = "".join(turn.text)
            more = _follow_up(turn, case)
            if more is None:
                break
            messages.extend(more)
    except _Failed as exc:
        out.error, out.status, out.deployment = str(exc), exc.status, exc.deployment or out.deployment
    except (httpx.HTTPError, ValueError) as exc:
        out.error, out.status = f"{type(exc).__name__}: {exc}", 0
    out.tool_calls = calls
    out.latency_s = time.perf_counter() - started
    known = [c for c in costs if c is not None]
    out.cost_usd = sum(known) if known and len(known) == len(costs) else None
    return out


def price_lookup(prices: dict[str, Any]) -> CostOf:
    """Cost from a map of deployment name → :class:`switchpoint.config.Price` (or None)."""

    def cost_of(deployment: str | None, usage: Usage) -> float | None:
        if deployment is None or deployment not in prices:
            return None
        return pricing.cost_usd(usage, prices[deployment])

    return cost_of
