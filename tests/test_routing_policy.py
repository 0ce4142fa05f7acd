"""The shipped policy (examples/router_config.yaml) decides 50+ varied requests as intended."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchpoint.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Thinking,
    Tool,
    ToolCallPart,
    ToolResultPart,
)
from switchpoint.config import Config, load
from switchpoint.errors import BadRequest, ModelNotFound, PaymentRequired, PermissionDenied, SwitchpointError
from switchpoint.health import HealthSnapshot
from switchpoint.routing import Decision, Router

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "router_config.yaml"
ENV = {
    k: "sk-test"
    for k in (
        "SWITCHPOINT_MASTER_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "DEEPSEEK_API_KEY",
    )
}


class Health:
    """Health snapshots by deployment name (the rest: never measured, healthy)."""

    def __init__(self, **snaps: HealthSnapshot) -> None:
        self.snaps = {k.replace("_", "-"): v for k, v in snaps.items()}

    def snapshot(self, name: str) -> HealthSnapshot:
        return self.snaps.get(name, HealthSnapshot())


def total(ms: float) -> HealthSnapshot:
    return HealthSnapshot(total_ewma_ms=ms, requests=10)


def ttft(ms: float) -> HealthSnapshot:
    return HealthSnapshot(ttft_ewma_ms=ms, requests=10)


def chat(
    text: str = "hello",
    *,
    model: str = "auto",
    tools: bool = False,
    image: bool = False,
    schema: bool = False,
    stream: bool = False,
    max_tokens: int | None = None,
    filler_tokens: int = 0,
    turns: int = 1,
    metadata: dict[str, Any] | None = None,
    thinking: Thinking | None = None,
) -> ChatRequest:
    """A chat request; ``filler_tokens`` adds that many o200k tokens per turn (' hello' is one)."""
    messages = [Message(role="system", parts=[TextPart(text="You are helpful.")])]
    for i in range(turns):
        parts: list[Any] = [TextPart(text=text + " hello" * filler_tokens)]
        if image and i == turns - 1:
            parts.append(ImagePart(url="https://example.com/cat.png"))
        messages.append(Message(role="user", parts=parts))
        if i < turns - 1:
            messages.append(Message(role="assistant", parts=[TextPart(text="ok")]))
    return ChatRequest(
        model=model,
        messages=messages,
        tools=[Tool(name="run", description="run a command")] if tools else None,
        response_format=ResponseFormat(type="json_schema", schema={"type": "object"}) if schema else None,
        stream=stream,
        max_tokens=max_tokens,
        metadata=metadata,
        thinking=thinking,
    )


@pytest.fixture(scope="module")
def config() -> Config:
    return load(EXAMPLE, env=ENV)


@pytest.fixture(scope="module")
def router(config: Config) -> Iterator[Router]:
    yield Router(config)


def names(d: Decision) -> list[str]:
    return [c.deployment.name for c in d.candidates]


def T(task: str, **more: str) -> dict[str, str]:
    return {"x-switchpoint-task": task, **more}


# (id, request, headers, principal, health, rule, candidates, extra checks)
Case = tuple[str, ChatRequest, dict[str, str], str, Health | None, str | None, list[str], dict[str, Any]]
CASES: list[Case] = [
    # --- cheap and fast tasks -----------------------------------------------------------------
    (
        "classify-cheapest-first",
        chat("Label this ticket"),
        T("classify"),
        "master",
        None,
        "classify",
        ["deepseek", "gpt-mini", "gemini-flash", "haiku"],
        {"presets": ("temperature", "max_tokens"), "out": 64},
    ),
    (
        "classify-image-skips-text-only",
        chat("what animal?", image=True),
        T("classify"),
        "master",
        None,
        "classify",
        ["gpt-mini", "gemini-flash", "haiku"],
        {"skipped": {"deepseek": "lacks vision"}},
    ),
    (
        "classify-schema-skips-no-schema",
        chat("label", schema=True),
        T("classify"),
        "master",
        None,
        "classify",
        ["gpt-mini", "gemini-flash", "haiku"],
        {"skipped": {"deepseek": "lacks json_schema"}},
    ),
    (
        "classify-client-temperature-kept",
        chat("label"),
        T("classify"),
        "master",
        None,
        "classify",
        ["deepseek", "gpt-mini", "gemini-flash", "haiku"],
        {"out": 64},
    ),
    (
        "summarize-cost-under-latency",
        chat("summarize this"),
        T("summarize"),
        "master",
        None,
        "summarize",
        ["deepseek", "gpt-mini", "gemini-flash", "haiku"],
        {"strategy": "cost_under_constraint", "out": 1024},
    ),
    (
        "summarize-slow-cheapest-goes-last",
        chat("summarize this"),
        T("summarize"),
        "master",
        Health(deepseek=total(5000), gpt_mini=total(900)),
        "summarize",
        ["gpt-mini", "gemini-flash", "haiku", "deepseek"],
        {"reason0": "within 3000ms"},
    ),
    (
        "summarize-request-latency-target",
        chat("summarize this"),
        T("summarize", **{"x-switchpoint-latency-ms": "800"}),
        "master",
        Health(deepseek=total(400), gemini_flash=total(600), haiku=total(700), gpt_mini=total(1200)),
        "summarize",
        ["deepseek", "gemini-flash", "haiku", "gpt-mini"],
        {},
    ),
    # --- coding -------------------------------------------------------------------------------
    (
        "code-review-cheapest-capable",
        chat("review"),
        T("code_review"),
        "master",
        None,
        "code-review",
        ["gemini-pro", "sonnet", "gpt"],
        {"presets": ("temperature",)},
    ),
    (
        "code-review-slow-model-falls-back",
        chat("review"),
        T("code_review"),
        "master",
        Health(gemini_pro=total(12000), sonnet=total(4000)),
        "code-review",
        ["sonnet", "gpt", "gemini-pro"],
        {"reason_last": "over 8000ms"},
    ),
    (
        "code-review-stream-uses-ttft",
        chat("review", stream=True),
        T("code_review"),
        "master",
        Health(gemini_pro=ttft(9000), sonnet=total(90000)),
        "code-review",
        ["sonnet", "gpt", "gemini-pro"],
        {},
    ),
    (
        "code-review-budget-keeps-cheapest",
        chat("review"),
        T("code_review", **{"x-switchpoint-max-cost-usd": "0.013"}),
        "master",
        None,
        "code-review",
        ["gemini-pro"],
        {"skipped": {"sonnet": "budget", "gpt": "budget"}},
    ),
    (
        "refactor-opus-then-gpt",
        chat("refactor all files"),
        T("multi_file_refactor"),
        "master",
        None,
        "multi-file-refactor",
        ["opus", "gpt"],
        {"presets": ("max_tokens", "reasoning_effort"), "options": True},
    ),
    (
        "refactor-client-max-tokens",
        chat("refactor", max_tokens=1000),
        T("multi_file_refactor"),
        "master",
        None,
        "multi-file-refactor",
        ["opus", "gpt"],
        {"presets": ("reasoning_effort",), "out": 1000},
    ),
    (
        "refactor-huge-overflows-to-long-window",
        chat("refactor", filler_tokens=700_000),
        T("multi_file_refactor"),
        "master",
        None,
        "multi-file-refactor",
        ["gemini-pro"],
        {"skipped": {"opus": "usable window", "gpt": "usable window"}, "reason0": "overflow", "exact": True},
    ),
    (
        "terminal-agent-gpt-first",
        chat("run the tests"),
        T("terminal_agent"),
        "master",
        None,
        "terminal-agent",
        ["gpt", "sonnet"],
        {"presets": ("reasoning_effort",)},
    ),
    (
        "terminal-agent-unhealthy-to-back",
        chat("run the tests"),
        T("terminal_agent"),
        "master",
        Health(gpt=HealthSnapshot(breaker="open")),
        "terminal-agent",
        ["sonnet", "gpt"],
        {"reason_last": "unhealthy"},
    ),
    (
        "tool-heavy-least-busy",
        chat("go", tools=True),
        T("tool_heavy"),
        "master",
        Health(
            sonnet=HealthSnapshot(inflight=5),
            gpt=HealthSnapshot(inflight=1),
            gemini_pro=HealthSnapshot(inflight=3),
        ),
        "tool-heavy",
        ["gpt", "gemini-pro", "sonnet"],
        {},
    ),
    (
        "tool-heavy-idle-keeps-order",
        chat("go", tools=True),
        T("tool_heavy"),
        "master",
        None,
        "tool-heavy",
        ["sonnet", "gpt", "gemini-pro"],
        {},
    ),
    # --- reasoning, modes ----------------------------------------------------------------------
    (
        "reasoning-accuracy-mode",
        chat("prove it"),
        T("reasoning", **{"x-switchpoint-priority": "accuracy"}),
        "master",
        None,
        "reasoning-accuracy",
        ["gpt", "opus"],
        {"presets": ("reasoning_effort",)},
    ),
    (
        "reasoning-client-thinking-kept",
        chat("prove it", thinking=Thinking(effort="low")),
        T("reasoning", **{"x-switchpoint-priority": "accuracy"}),
        "master",
        None,
        "reasoning-accuracy",
        ["gpt", "opus"],
        {"presets": ()},
    ),
    (
        "budget-mode-beats-task",
        chat("prove it"),
        T("reasoning", **{"x-switchpoint-priority": "budget"}),
        "master",
        None,
        "budget-mode",
        ["local", "deepseek", "gpt-mini", "gemini-flash", "haiku"],
        {},
    ),
    (
        "budget-mode-image-skips-text-only",
        chat("look", image=True),
        {"x-switchpoint-priority": "budget"},
        "master",
        None,
        "budget-mode",
        ["gpt-mini", "gemini-flash", "haiku"],
        {"skipped": {"local": "lacks vision"}},
    ),
    (
        "speed-mode-unmeasured-first",
        chat("quick"),
        {"x-switchpoint-priority": "speed"},
        "master",
        Health(haiku=total(300), gemini_flash=total(500)),
        "speed-mode",
        ["gpt-mini", "haiku", "gemini-flash"],
        {"presets": ("reasoning_effort",)},
    ),
    (
        "speed-mode-fastest-first",
        chat("quick"),
        {"x-switchpoint-priority": "speed"},
        "master",
        Health(haiku=total(300), gemini_flash=total(500), gpt_mini=total(800)),
        "speed-mode",
        ["haiku", "gemini-flash", "gpt-mini"],
        {},
    ),
    (
        "voice-fastest-ttft",
        chat("hi", stream=True),
        T("voice_low_latency"),
        "master",
        Health(gemini_flash=ttft(200), haiku=ttft(150), gpt_mini=ttft(400)),
        "voice",
        ["haiku", "gemini-flash", "gpt-mini"],
        {"presets": ("temperature", "max_tokens"), "options": True},
    ),
    (
        "priority-header-via-metadata",
        chat("quick", metadata={"priority": "speed", "task": "general"}),
        {},
        "master",
        None,
        "speed-mode",
        ["gemini-flash", "haiku", "gpt-mini"],
        {},
    ),
    # --- classification by request content ------------------------------------------------------
    (
        "image-classified-vision",
        chat("what is this?", image=True),
        {},
        "master",
        None,
        "vision",
        ["gemini-flash", "gpt", "opus"],
        {"task": ("vision", "rules")},
    ),
    (
        "image-and-tools-vision-first",
        chat("what is this?", image=True, tools=True),
        {},
        "master",
        None,
        "vision",
        ["gemini-flash", "gpt", "opus"],
        {"task": ("vision", "rules")},
    ),
    (
        "tools-classified-tool-heavy",
        chat("do it", tools=True),
        {},
        "master",
        None,
        "tool-heavy",
        ["sonnet", "gpt", "gemini-pro"],
        {"task": ("tool_heavy", "rules")},
    ),
    (
        "small-schema-classified-classify",
        chat("extract", schema=True),
        {},
        "master",
        None,
        "classify",
        ["gpt-mini", "gemini-flash", "haiku"],
        {"task": ("classify", "rules")},
    ),
    (
        "long-prompt-classified-retrieval",
        chat("find the clause", filler_tokens=300_000),
        {},
        "master",
        None,
        "long-context-retrieval",
        ["gemini-pro", "gpt"],
        {"task": ("long_context_retrieval", "rules"), "exact": True},
    ),
    (
        "very-long-prompt-one-window-left",
        chat("find the clause", filler_tokens=700_000),
        {},
        "master",
        None,
        "long-context-retrieval",
        ["gemini-pro"],
        {"skipped": {"gpt": "usable window"}},
    ),
    (
        "too-long-conversation-trimmed",
        chat("q", filler_tokens=90_000, turns=10),
        {},
        "master",
        None,
        "long-context-retrieval",
        ["gemini-pro"],
        {"trimmed": "cut 2 oldest"},
    ),
    (
        "semantic-terminal",
        chat("Run the test suite, find the failing test and fix it."),
        {},
        "master",
        None,
        "terminal-agent",
        ["gpt", "sonnet"],
        {"task": ("terminal_agent", "semantic")},
    ),
    (
        "semantic-summary",
        chat("Summarize this article in three bullet points: the council voted to expand parks."),
        {},
        "master",
        None,
        "summarize",
        ["deepseek", "gpt-mini", "gemini-flash", "haiku"],
        {"task": ("summarize", "semantic")},
    ),
    # --- aliases, direct, callers -----------------------------------------------------------------
    (
        "alias-smart-own-list",
        chat("hi", model="smart"),
        {},
        "master",
        None,
        "alias:smart",
        ["opus", "gpt", "gemini-pro"],
        {},
    ),
    (
        "alias-smart-with-tools-rule",
        chat("hi", model="smart", tools=True),
        {},
        "master",
        None,
        "smart-tools",
        ["sonnet", "gpt"],
        {},
    ),
    (
        "alias-fast-rule-latency",
        chat("hi", model="fast"),
        {},
        "master",
        Health(haiku=total(100), gemini_flash=total(300), gpt_mini=total(200)),
        "fast-alias",
        ["haiku", "gpt-mini", "gemini-flash"],
        {},
    ),
    (
        "alias-cheap-priority",
        chat("hi", model="cheap"),
        {},
        "master",
        None,
        "alias:cheap",
        ["deepseek", "gemini-flash", "gpt-mini"],
        {},
    ),
    (
        "alias-cheap-image",
        chat("hi", model="cheap", image=True),
        {},
        "master",
        None,
        "alias:cheap",
        ["gemini-flash", "gpt-mini"],
        {"skipped": {"deepseek": "lacks vision"}},
    ),
    (
        "alias-cheap-unhealthy",
        chat("hi", model="cheap"),
        {},
        "master",
        Health(deepseek=HealthSnapshot(breaker="open")),
        "alias:cheap",
        ["gemini-flash", "gpt-mini", "deepseek"],
        {},
    ),
    ("direct-deployment-master", chat("hi", model="haiku"), {}, "master", None, None, ["haiku"], {}),
    (
        "direct-deployment-capability",
        chat("hi", model="local", tools=True),
        {},
        "master",
        None,
        None,
        [],
        {"error": (BadRequest, "lacks tools")},
    ),
    (
        "direct-deployment-not-allowed",
        chat("hi", model="haiku"),
        {},
        "team-a",
        None,
        None,
        [],
        {"error": (PermissionDenied, "directly")},
    ),
    (
        "unknown-model",
        chat("hi", model="gpt-7"),
        {},
        "master",
        None,
        None,
        [],
        {"error": (ModelNotFound, "gpt-7")},
    ),
    (
        "enterprise-tag-metadata",
        chat("hi", metadata={"tier": "enterprise", "task": "general"}),
        {},
        "master",
        None,
        "enterprise-accuracy",
        ["opus", "gpt", "gemini-pro"],
        {},
    ),
    (
        "enterprise-tag-header",
        chat("hi"),
        T("general", **{"x-switchpoint-tags": "tier=enterprise, team=ml"}),
        "master",
        None,
        "enterprise-accuracy",
        ["opus", "gpt", "gemini-pro"],
        {},
    ),
    (
        "long-output-rule",
        chat("write a book", max_tokens=40_000),
        T("general"),
        "master",
        None,
        "long-output",
        ["gpt", "opus", "gemini-pro"],
        {"out": 40_000},
    ),
    (
        "strict-latency-cheapest",
        chat("hi"),
        T("general", **{"x-switchpoint-latency-ms": "1000"}),
        "master",
        None,
        "strict-latency",
        ["gpt-mini", "gemini-flash", "haiku"],
        {},
    ),
    # --- budgets and the default ------------------------------------------------------------------
    (
        "small-budget-drops-over-budget",
        chat("hi"),
        T("general", **{"x-switchpoint-max-cost-usd": "0.005"}),
        "master",
        None,
        "small-budget",
        ["deepseek", "gpt-mini", "gemini-flash"],
        {"skipped": {"haiku": "budget"}},
    ),
    (
        "default-budget-goes-cheaper",
        chat("hi"),
        T("general", **{"x-switchpoint-max-cost-usd": "0.02"}),
        "master",
        None,
        "default",
        ["sonnet", "gemini-flash"],
        {"skipped": {"gpt": "budget"}},
    ),
    (
        "budget-nothing-fits-402",
        chat("hi"),
        T("general", **{"x-switchpoint-max-cost-usd": "0.0001"}),
        "master",
        None,
        None,
        [],
        {"error": (PaymentRequired, "budget")},
    ),
    (
        "budget-mode-free-model-fits",
        chat("hi"),
        {"x-switchpoint-priority": "budget", "x-switchpoint-max-cost-usd": "0.0001"},
        "master",
        None,
        "budget-mode",
        ["local"],
        {},
    ),
    (
        "code-review-budget-402",
        chat("review"),
        T("code_review", **{"x-switchpoint-max-cost-usd": "0.001"}),
        "master",
        None,
        None,
        [],
        {"error": (PaymentRequired, "budget")},
    ),
    (
        "default-rule",
        chat("hi"),
        T("general"),
        "master",
        None,
        "default",
        ["sonnet", "gpt", "gemini-flash"],
        {"task": ("general", "declared")},
    ),
    (
        "single-huge-turn-refused",
        chat("q", filler_tokens=900_000),
        {},
        "master",
        None,
        None,
        [],
        {"error": (BadRequest, "too long")},
    ),
    (
        "bad-latency-header",
        chat("hi"),
        {"x-switchpoint-latency-ms": "fast"},
        "master",
        None,
        None,
        [],
        {"error": (BadRequest, "x-switchpoint-latency-ms")},
    ),
    (
        "bad-priority-header",
        chat("hi"),
        {"x-switchpoint-priority": "urgent"},
        "master",
        None,
        None,
        [],
        {"error": (BadRequest, "accuracy, speed, budget")},
    ),
    (
        "bad-task-name",
        chat("hi"),
        {"x-switchpoint-task": "code review!"},
        "master",
        None,
        None,
        [],
        {"error": (BadRequest, "x-switchpoint-task")},
    ),
    (
        "bad-budget",
        chat("hi"),
        {"x-switchpoint-max-cost-usd": "-1"},
        "master",
        None,
        None,
        [],
        {"error": (BadRequest, "x-switchpoint-max-cost-usd")},
    ),
]


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 50
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("cid", "request_", "headers", "principal", "health", "rule", "expected", "extra"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_policy_decision(
    router: Router,
    cid: str,
    request_: ChatRequest,
    headers: dict[str, str],
    principal: str,
    health: Health | None,
    rule: str | None,
    expected: list[str],
    extra: dict[str, Any],
) -> None:
    if "error" in extra:
        kind, needle = extra["error"]
        with pytest.raises(SwitchpointError) as exc:
            router.route(request_, headers=headers, principal=principal, health=health)
        assert type(exc.value) is kind, exc.value
        assert needle in exc.value.message
        return
    d = router.route(request_, headers=headers, principal=principal, health=health)
    assert d.rule == rule, d.header()
    assert names(d) == expected, d.trace()
    skipped = dict(d.skipped)
    for name, why in extra.get("skipped", {}).items():
        assert why in skipped.get(name, ""), d.skipped
    if "presets" in extra:
        assert sorted(d.presets) == sorted(extra["presets"])
    if "out" in extra:
        assert d.output_tokens == extra["out"]
    if "task" in extra:
        assert (d.task, d.task_source) == extra["task"]
    if "reason0" in extra:
        assert extra["reason0"] in d.candidates[0].reason
    if "reason_last" in extra:
        assert extra["reason_last"] in d.candidates[-1].reason
    if "strategy" in extra:
        assert d.strategy == extra["strategy"]
    if extra.get("exact"):
        assert d.tokens_exact
    if extra.get("options"):
        assert d.options is not None
    if "trimmed" in extra:
        assert d.trimmed is not None and extra["trimmed"] in d.trimmed
        assert d.request is not None and len(d.request.messages) == len(request_.messages)
    # the header always names the rule and the order, in one ASCII line
    header = d.header()
    assert header.isascii() and "\n" not in header
    assert "candidates=" + ",".join(expected) in header


def test_presets_reach_the_executed_request(router: Router) -> None:
    d = router.route(chat("label"), headers=T("classify"), principal="master")
    assert d.request is not None
    assert (d.request.temperature, d.request.max_tokens) == (0, 64)


def test_client_set_parameters_win(router: Router) -> None:
    req = chat("label", max_tokens=10)
    req.temperature = 0.9
    d = router.route(req, headers=T("classify"), principal="master")
    assert d.presets == ()
    assert d.request is None


def test_refactor_execution_options_come_from_the_rule(router: Router) -> None:
    d = router.route(chat("refactor"), headers=T("multi_file_refactor"), principal="master")
    assert d.options is not None and d.options.timeouts is not None and d.options.retry is not None
    assert (d.options.timeouts.total_s, d.options.retry.attempts) == (900, 2)


def test_long_context_cost_uses_the_long_context_tier(router: Router) -> None:
    d = router.route(chat("find", filler_tokens=300_000), principal="master")
    gpt = next(c for c in d.candidates if c.deployment.name == "gpt")
    # gpt-5.5 above 272K prompt tokens bills $10 / $45 per million for the whole request
    expected = (d.prompt_tokens * 10.0 + d.output_tokens * 45.0) / 1e6
    assert gpt.cost_usd == pytest.approx(expected)


def test_trimmed_conversation_keeps_system_and_newest_turns(router: Router) -> None:
    req = chat("q", filler_tokens=90_000, turns=10)
    d = router.route(req, principal="master")
    assert d.request is not None
    kept = d.request.messages
    assert kept[0].role == "system"
    assert kept[-1].text() == req.messages[-1].text()  # newest turn untouched
    assert len(kept[1].text()) < len(req.messages[1].text())  # oldest cut short


def test_trace_is_complete_and_in_display_currency(router: Router) -> None:
    d = router.route(chat("review"), headers=T("code_review", **{"x-switchpoint-max-cost-usd": "0.013"}))
    t = d.trace()
    assert t["rule"] == "code-review" and t["task"] == "code_review" and t["currency"] == "EUR"
    first = t["candidates"][0]
    assert first["deployment"] == "gemini-pro" and first["upstream_model"] == "gemini-3.1-pro-preview"
    assert first["est_cost"] == pytest.approx(d.candidates[0].cost_usd * 0.92)  # type: ignore[operator]
    assert {s["deployment"] for s in t["skipped"]} == {"sonnet", "gpt"}


def test_tool_call_pairs_survive_trimming(router: Router) -> None:
    big = " hello" * 120_000
    messages = [Message(role="system", parts=[TextPart(text="sys")])]
    for i in range(8):
        messages.append(Message(role="user", parts=[TextPart(text=f"turn {i}" + big)]))
        messages.append(
            Message(role="assistant", parts=[ToolCallPart(id=f"c{i}", name="grep", arguments="{}")])
        )
        messages.append(
            Message(role="tool", parts=[ToolResultPart(tool_call_id=f"c{i}", content=[TextPart(text="r")])])
        )
        messages.append(Message(role="assistant", parts=[TextPart(text="done")]))
    req = ChatRequest(model="auto", messages=messages)
    d = router.route(req, headers=T("long_context_retrieval"), principal="master")
    assert d.request is not None and d.trimmed is not None
    calls = {p.id for m in d.request.messages for p in m.parts if isinstance(p, ToolCallPart)}
    results = {p.tool_call_id for m in d.request.messages for p in m.parts if isinstance(p, ToolResultPart)}
    assert calls == results and calls
