"""Property-based: no routing decision ever breaks a hard constraint.

Configs (deployments with random capabilities, windows, usable fractions and prices; rules
with random matches, strategies and context policies), requests (sizes around the windows,
tools, images, JSON schema, streams, output limits, tool-call pairs) and live health are all
generated. Every decision is then checked independently of the router's own code paths:
capabilities from the request itself, prompt size with the tokenizer, cost from the price.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from switchpoint import tokens
from switchpoint.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
)
from switchpoint.config import Config, load, parse
from switchpoint.errors import BadRequest, PaymentRequired, PermissionDenied, SwitchpointError
from switchpoint.health import HealthSnapshot
from switchpoint.routing import Decision, Router
from switchpoint.routing.constraints import rates_for
from switchpoint.routing.features import family_factor
from switchpoint.routing.trimming import turns

CAPS = ("tools", "vision", "json_schema", "streaming")
TASKS = ("classify", "summarize", "code_review", "reasoning")
STRATEGIES = ("priority", "weighted", "lowest_latency", "lowest_cost", "least_busy", "cost_under_constraint")
WORDS = ("the", "routing", "policy", "def", "return", "x", "=", "{", "}", "réseau", "数据", "42", "model")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "router_config.yaml"


@st.composite
def deployment_docs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 6))
    out: dict[str, Any] = {}
    for i in range(n):
        doc: dict[str, Any] = {
            "provider": draw(st.sampled_from(["p-openai", "p-anthropic", "p-gemini"])),
            "model": f"m{i}",
            "context_window": draw(st.integers(300, 20_000)),
            "usable_fraction": draw(st.floats(0.3, 1.0)),
            "capabilities": draw(st.lists(st.sampled_from(CAPS), unique=True)),
        }
        if draw(st.booleans()):
            doc["price"] = {"input": draw(st.floats(0, 20)), "output": draw(st.floats(0, 60))}
        out[f"d{i}"] = doc
    return out


@st.composite
def rule_docs(draw: st.DrawFn, names: list[str], index: int) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if draw(st.booleans()):
        match["task"] = draw(st.sampled_from(TASKS))
    if draw(st.booleans()):
        lo = draw(st.integers(0, 5000))
        match["prompt_tokens"] = {"min": lo, "max": lo + draw(st.integers(0, 20_000))}
    if draw(st.booleans()):
        match["tools"] = draw(st.booleans())
    if draw(st.booleans()):
        match["priority"] = draw(st.sampled_from(["accuracy", "speed", "budget"]))
    cands = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    rule: dict[str, Any] = {
        "name": f"r{index}",
        "match": match,
        "candidates": cands,
        "strategy": draw(st.sampled_from(STRATEGIES)),
    }
    if rule["strategy"] == "weighted":
        rule["weights"] = {c: draw(st.floats(0.1, 10)) for c in cands}
    if draw(st.booleans()):
        rule["context"] = {
            "overflow": draw(st.sampled_from(["reject", "trim"])),
            "keep_last_turns": draw(st.integers(1, 2)),
            "overflow_to": draw(st.lists(st.sampled_from(names), unique=True, max_size=2)),
        }
        if draw(st.booleans()):
            rule["context"]["truncate_chars"] = draw(st.integers(5, 200))
    if draw(st.booleans()):
        rule["params"] = {"max_tokens": draw(st.integers(1, 4000)), "temperature": 0.5}
    return rule


@st.composite
def configs(draw: st.DrawFn) -> Config:
    deps = draw(deployment_docs())
    names = list(deps)
    rules = [draw(rule_docs(names, i)) for i in range(draw(st.integers(1, 4)))]
    base = "http://127.0.0.1:9"
    doc = {
        "providers": {
            "p-openai": {"family": "openai", "base_url": f"{base}/v1"},
            "p-anthropic": {"family": "anthropic", "base_url": base},
            "p-gemini": {"family": "gemini", "base_url": f"{base}/v1beta"},
        },
        "deployments": deps,
        "models": {"alias": names[: draw(st.integers(1, len(names)))]},
        "routing": {
            "rules": rules,
            "default": {
                "candidates": names,
                "strategy": draw(st.sampled_from(STRATEGIES)),
                "context": {"overflow": draw(st.sampled_from(["reject", "trim"])), "truncate_chars": 50},
            },
            "classifier": {"rules": [{"task": "summarize", "when": {"prompt_tokens": {"min": 2000}}}]},
            "direct_access": ["master"],
        },
    }
    return parse(doc, env={})


@st.composite
def requests(draw: st.DrawFn) -> ChatRequest:
    messages = [Message(role="system", parts=[TextPart(text="be brief")])]
    n_turns = draw(st.integers(1, 5))
    for t in range(n_turns):
        words = draw(st.integers(0, 2500))
        rnd = random.Random(draw(st.integers(0, 2**16)))
        text = " ".join(rnd.choice(WORDS) for _ in range(words))
        parts: list[Any] = [TextPart(text=text or "hi")]
        if draw(st.booleans()) and draw(st.booleans()):
            parts.append(ImagePart(url="https://example.com/i.png"))
        messages.append(Message(role="user", parts=parts))
        if t < n_turns - 1:
            if draw(st.booleans()):
                messages.append(
                    Message(role="assistant", parts=[ToolCallPart(id=f"c{t}", name="f", arguments="{}")])
                )
                messages.append(
                    Message(
                        role="tool",
                        parts=[ToolResultPart(tool_call_id=f"c{t}", content=[TextPart(text=text)])],
                    )
                )
            messages.append(
                Message(role="assistant", parts=[TextPart(text="ok " * draw(st.integers(0, 50)))])
            )
    schema = draw(st.booleans())
    return ChatRequest(
        model=draw(st.sampled_from(["auto", "auto", "alias", "d0", "d1"])),
        messages=messages,
        tools=[Tool(name="f")] if draw(st.booleans()) else None,
        response_format=ResponseFormat(type="json_schema", schema={"type": "object"}) if schema else None,
        stream=draw(st.booleans()),
        max_tokens=draw(st.one_of(st.none(), st.integers(1, 8000))),
    )


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    h: dict[str, str] = {}
    if draw(st.booleans()):
        h["x-switchpoint-max-cost-usd"] = f"{draw(st.floats(0, 0.5)):.6f}"
    if draw(st.booleans()):
        h["x-switchpoint-latency-ms"] = str(draw(st.integers(1, 5000)))
    if draw(st.booleans()):
        h["x-switchpoint-priority"] = draw(st.sampled_from(["accuracy", "speed", "budget"]))
    if draw(st.booleans()):
        h["x-switchpoint-task"] = draw(st.sampled_from(TASKS))
    return h


class Health:
    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.cache: dict[str, HealthSnapshot] = {}

    def snapshot(self, name: str) -> HealthSnapshot:
        if name not in self.cache:
            r = self.rnd
            self.cache[name] = HealthSnapshot(
                inflight=r.randint(0, 20),
                ttft_ewma_ms=r.choice([None, r.uniform(10, 9000)]),
                total_ewma_ms=r.choice([None, r.uniform(10, 9000)]),
                breaker=r.choice(["closed", "closed", "open", "half_open"]),
            )
        return self.cache[name]


def _has_image(req: ChatRequest) -> bool:
    for m in req.messages:
        for p in m.parts:
            if isinstance(p, ImagePart):
                return True
            if isinstance(p, ToolResultPart) and any(isinstance(c, ImagePart) for c in p.content):
                return True
    return False


def check_decision(d: Decision, original: ChatRequest, hdrs: dict[str, str]) -> None:
    req = d.request or original
    needs = set()
    if original.tools:
        needs.add("tools")
    if _has_image(original):
        needs.add("vision")
    if original.response_format is not None and original.response_format.type == "json_schema":
        needs.add("json_schema")
    if original.stream:
        needs.add("streaming")
    assert d.candidates, "a decision always has a candidate"
    assert len({c.deployment.name for c in d.candidates}) == len(d.candidates), "no candidate twice"
    exact = tokens.estimate_request_tokens(req, "openai")
    reserve = req.max_tokens or 0
    budget = float(hdrs["x-switchpoint-max-cost-usd"]) if "x-switchpoint-max-cost-usd" in hdrs else None
    for c in d.candidates:
        dep = c.deployment
        assert needs <= dep.capabilities, (dep.name, needs)  # capabilities
        on_dep = int(exact * family_factor(dep.family) + 0.999)
        assert on_dep + reserve <= dep.usable_window, (
            dep.name,
            on_dep,
            reserve,
            dep.usable_window,
        )  # context
        if budget is not None and c.cost_usd is not None:  # budget (unpriced counts as free)
            assert c.cost_usd <= budget + 1e-12
        if dep.price is not None and c.cost_usd is not None:
            n = int(d.prompt_tokens * family_factor(dep.family) + 0.999)
            rates = rates_for(dep.price, n)
            assert abs(c.cost_usd - (n * rates.input + d.output_tokens * rates.output) / 1e6) < 1e-9
    healthy = [c.healthy for c in d.candidates]
    assert healthy == sorted(healthy, reverse=True) or d.affinity is not None, "unhealthy ones go last"
    if d.trimmed is not None:  # trimming keeps every tool call with its result, and the system prompt
        calls = {p.id for m in req.messages for p in m.parts if isinstance(p, ToolCallPart)}
        results = {p.tool_call_id for m in req.messages for p in m.parts if isinstance(p, ToolResultPart)}
        assert calls == results
        assert req.messages[0].role == "system"
        assert turns(req.messages)[1], "the newest turn is kept"


ALLOWED = (BadRequest, PaymentRequired, PermissionDenied)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    cfg=configs(),
    req=requests(),
    hdrs=headers(),
    seed=st.integers(0, 2**16),
    principal=st.sampled_from(["master", "x"]),
)
def test_generated_policies_never_break_a_hard_constraint(
    cfg: Config, req: ChatRequest, hdrs: dict[str, str], seed: int, principal: str
) -> None:
    router = Router(cfg, rng=random.Random(seed))
    try:
        d = router.route(req, headers=hdrs, principal=principal, health=Health(seed))
    except SwitchpointError as exc:
        event(f"refused: {type(exc).__name__}")
        assert isinstance(exc, ALLOWED), exc
        if isinstance(exc, PermissionDenied):
            assert principal != "master" and req.model in cfg.deployments
        return
    event("routed" + (", trimmed" if d.trimmed else "") + (", skipped some" if d.skipped else ""))
    check_decision(d, req, hdrs)


_EXAMPLE_ENV = {
    k: "sk-test"
    for k in (
        "SWITCHPOINT_MASTER_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "DEEPSEEK_API_KEY",
    )
}
_EXAMPLE_ROUTER: list[Router] = []


def _example_router() -> Router:
    if not _EXAMPLE_ROUTER:
        cfg = load(EXAMPLE, env=_EXAMPLE_ENV)
        _EXAMPLE_ROUTER.append(Router(cfg, rng=random.Random(7), embedder=None))
    return _EXAMPLE_ROUTER[0]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(req=requests(), hdrs=headers(), seed=st.integers(0, 2**16))
def test_the_shipped_policy_never_breaks_a_hard_constraint(
    req: ChatRequest, hdrs: dict[str, str], seed: int
) -> None:
    req.model = "auto" if req.model in ("d0", "d1", "alias") else req.model
    try:
        d = _example_router().route(req, headers=hdrs, principal="master", health=Health(seed))
    except SwitchpointError as exc:
        event(f"refused: {type(exc).__name__}")
        assert isinstance(exc, ALLOWED), exc
        return
    event(f"routed by {d.rule}")
    check_decision(d, req, hdrs)


def _trim_config(keep: int, truncate: int | None) -> Config:
    base = "http://127.0.0.1:9"
    context: dict[str, Any] = {"overflow": "trim", "keep_last_turns": keep}
    if truncate is not None:
        context["truncate_chars"] = truncate
    return parse(
        {
            "providers": {
                "p-openai": {"family": "openai", "base_url": f"{base}/v1"},
                "p-anthropic": {"family": "anthropic", "base_url": base},
            },
            "deployments": {
                "small": {
                    "provider": "p-anthropic",
                    "model": "s",
                    "context_window": 2500,
                    "usable_fraction": 0.8,
                },
                "mid": {"provider": "p-openai", "model": "m", "context_window": 4000, "usable_fraction": 0.9},
            },
            "routing": {"default": {"candidates": ["small", "mid"], "context": context}},
        },
        env={},
    )


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    req=requests(),
    keep=st.integers(1, 3),
    truncate=st.one_of(st.none(), st.integers(10, 300)),
)
def test_trimming_always_lands_inside_a_window(req: ChatRequest, keep: int, truncate: int | None) -> None:
    req.model, req.tools, req.response_format, req.stream = "auto", None, None, False
    req.messages = [
        m for m in req.messages if not any(isinstance(p, ImagePart) for p in m.parts)
    ] or req.messages
    try:
        d = Router(_trim_config(keep, truncate)).route(req)
    except BadRequest as exc:
        event("refused")
        assert "too long" in exc.message or "supports" in exc.message
        return
    event("trimmed" if d.trimmed else "fits")
    check_decision(d, req, {})
    if d.trimmed is not None:
        assert d.request is not None
        assert len(turns(d.request.messages)[1]) >= min(keep, len(turns(req.messages)[1]))
