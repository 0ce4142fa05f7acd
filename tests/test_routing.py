"""Routing units: config checks, the price catalog, strategies, affinity, presets, trimming,
features, the explanation, and the behaviour of configs without a ``routing`` section."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import msgspec
import pytest

from switchpoint import catalog
from switchpoint.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    TextPart,
    Thinking,
    Tool,
    ToolCallPart,
    ToolResultPart,
)
from switchpoint.config import Config, ContextSpec, ParamsSpec, parse
from switchpoint.errors import BadRequest, ConfigError, ModelNotFound, PaymentRequired
from switchpoint.health import HealthSnapshot
from switchpoint.routing import AffinityStore, Router
from switchpoint.routing import features as feats
from switchpoint.routing.presets import apply
from switchpoint.routing.trimming import trim, turns

BASE = "http://127.0.0.1:9"


def document(routing: dict[str, Any] | None = None, **deployments: dict[str, Any]) -> dict[str, Any]:
    deps = {
        "a": {"provider": "p-openai", "model": "m-a", "price": {"input": 1, "output": 2}},
        "b": {"provider": "p-anthropic", "model": "m-b", "price": {"input": 3, "output": 15}},
        "c": {"provider": "p-gemini", "model": "m-c", "price": {"input": 0.5, "output": 1}},
        **deployments,
    }
    doc: dict[str, Any] = {
        "providers": {
            "p-openai": {"family": "openai", "base_url": f"{BASE}/v1"},
            "p-anthropic": {"family": "anthropic", "base_url": BASE},
            "p-gemini": {"family": "gemini", "base_url": f"{BASE}/v1beta"},
        },
        "deployments": deps,
        "models": {"trio": ["a", "b", "c"]},
    }
    if routing is not None:
        doc["routing"] = routing
    return doc


def cfg(routing: dict[str, Any] | None = None, **deployments: dict[str, Any]) -> Config:
    return parse(document(routing, **deployments), env={})


def req(text: str = "hi", *, model: str = "auto", **kw: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", parts=[TextPart(text=text)])], **kw)


class Health:
    def __init__(self, **snaps: HealthSnapshot) -> None:
        self.snaps = snaps

    def snapshot(self, name: str) -> HealthSnapshot:
        return self.snaps.get(name, HealthSnapshot())


def order(d: Any) -> list[str]:
    return [c.deployment.name for c in d.candidates]


# --- config ------------------------------------------------------------------------------------


def test_routing_problems_are_all_reported_with_their_paths() -> None:
    routing = {
        "rules": [
            {"name": "r", "candidates": ["a", "ghost"], "weights": {"c": 1, "a": -1}},
            {
                "name": "r",
                "match": {"model": "a", "prompt_tokens": {"min": 10, "max": 1}},
                "candidates": ["trio"],
            },
            {"name": "bad", "strategy": "fastest", "candidates": ["a"]},
            {"name": "empty"},
            {
                "name": "ctx",
                "candidates": ["a"],
                "context": {"overflow_to": ["nowhere"], "keep_last_turns": 0},
            },
            {"name": "p", "candidates": ["a"], "params": {"temperature": 3, "top_p": 0, "max_tokens": 0}},
        ],
        "default": {"match": {"tools": True}, "candidates": ["a"]},
        "classifier": {"rules": [{"task": "x", "when": {"priority": "speed"}}], "semantic": {"examples": {}}},
        "affinity": {"ttl_s": 0},
        "catalog": {"usd_rate": 0},
    }
    with pytest.raises(ConfigError) as exc:
        parse(document(routing, d={"provider": "p-openai", "model": "x", "usable_fraction": 1.5}), env={})
    text = "\n".join(exc.value.problems)
    for needle in [
        "$.routing.rules[0].candidates[1]: no deployment or alias named 'ghost'",
        "$.routing.rules[0].weights.c: not one of the rule's candidates",
        "$.routing.rules[0].weights.a: must be positive",
        "$.routing.rules[1].name: 'r' is used by an earlier rule",
        "$.routing.rules[1].match.model: 'a' is not 'auto', '*' or an alias",
        "$.routing.rules[1].match.prompt_tokens: min is above max",
        "$.routing.rules[2].strategy",
        "$.routing.rules[3].candidates: at least one",
        "$.routing.rules[4].context.overflow_to[0]: no deployment or alias named 'nowhere'",
        "$.routing.rules[4].context.keep_last_turns",
        "$.routing.rules[5].params.temperature",
        "$.routing.rules[5].params.top_p",
        "$.routing.rules[5].params.max_tokens",
        "$.routing.default.match",
        "$.routing.classifier.rules[0].when: classifier rules match request content only, not priority",
        "$.routing.classifier.semantic.examples",
        "$.routing.affinity",
        "$.routing.catalog.usd_rate",
        "$.deployments.d.usable_fraction",
    ]:
        assert needle in text, f"{needle!r} missing from:\n{text}"


def test_embedding_deployments_cannot_be_rule_candidates() -> None:
    with pytest.raises(ConfigError) as exc:
        cfg(
            {"rules": [{"name": "r", "candidates": ["e"]}]},
            e={"provider": "p-openai", "model": "x", "kind": "embedding"},
        )
    assert "$.routing.rules[0].candidates[0]: 'e' is an embedding deployment" in exc.value.problems


# --- catalog -----------------------------------------------------------------------------------


def test_catalog_lookup_handles_snapshots_and_vendor_prefixes() -> None:
    assert catalog.lookup("gpt-5.5") is not None
    found = catalog.lookup("claude-haiku-4-5-20251001")
    assert found is not None and found[0] == "claude-haiku-4-5"
    assert (catalog.lookup("anthropic/claude-opus-4-7") or ("", None))[0] == "claude-opus-4-7"
    assert (catalog.lookup("claude-opus-4-7@20260101") or ("", None))[0] == "claude-opus-4-7"
    assert catalog.lookup("gpt-5.5x") is None and catalog.lookup("my-local-model") is None
    assert catalog.lookup("gpt-5-mini") is not None and catalog.lookup("gpt-5-mini")[0] == "gpt-5-mini"  # type: ignore[index]


def test_catalog_is_versioned_and_complete() -> None:
    cat = catalog.bundled()
    assert cat.version and cat.currency == "USD"
    providers = {e.provider for e in cat.models.values()}
    assert {"openai", "anthropic", "gemini", "deepseek"} <= providers
    for name, e in cat.models.items():
        units = [r for r in (e.per_second, e.per_character, e.per_image) if r is not None]
        if units:  # an audio or image model: billed by its own units (docs/accounting.md)
            assert len(units) == 1 and units[0] > 0, name
            continue
        assert e.input > 0 and e.output >= e.input, name
        assert e.cached_input is not None and e.cached_input <= e.input, name
        if e.long_context is not None:
            assert e.long_context.input > e.input, name


def test_deployment_prices_resolve_against_the_catalog() -> None:
    c = cfg(
        gpt={"provider": "p-openai", "model": "gpt-5.5"},
        gpt_cheaper_cache={"provider": "p-openai", "model": "gpt-5.5", "price": {"cached_input": 0.1}},
        own={"provider": "p-openai", "model": "gpt-5.5", "price": {"input": 1, "output": 2}},
        aliased={"provider": "p-anthropic", "model": "my-proxy-name", "catalog_model": "claude-haiku-4-5"},
    )
    gpt = c.deployments["gpt"].price
    assert gpt is not None and (gpt.input, gpt.cached_input, gpt.output) == (5.0, 0.5, 30.0)
    assert gpt.source.startswith("catalog:") and gpt.long_context_above == 272000
    assert gpt.long_context is not None and gpt.long_context.input == 10.0
    cheaper = c.deployments["gpt_cheaper_cache"].price
    assert cheaper is not None and (cheaper.input, cheaper.cached_input) == (5.0, 0.1)
    assert cheaper.source.startswith("config+catalog:")
    own = c.deployments["own"].price
    assert own is not None and (own.input, own.cached_input, own.source) == (1, 1, "config")
    aliased = c.deployments["aliased"].price
    assert aliased is not None and (aliased.input, aliased.cache_write) == (1.0, 1.25)
    with pytest.raises(ConfigError) as exc:
        cfg(x={"provider": "p-openai", "model": "x", "catalog_model": "nope"})
    assert "$.deployments.x.catalog_model: 'nope' is not in the price catalog" in exc.value.problems
    off = cfg({"catalog": {"enabled": False}}, gpt={"provider": "p-openai", "model": "gpt-5.5"})
    assert off.deployments["gpt"].price is None


# --- configs without a routing section keep the simple behaviour -------------------------------


def test_plain_alias_routing_is_unchanged() -> None:
    r = Router(cfg())
    d = r.route(req(model="trio"))
    assert order(d) == ["a", "b", "c"] and d.rule is None
    assert [c.reason for c in d.candidates] == ["priority 1", "priority 2", "priority 3"]
    assert d.header().startswith("model=trio; strategy=priority; candidates=a,b,c")
    with pytest.raises(ModelNotFound):
        r.route(req(model="auto"))
    limited = Router(cfg(n={"provider": "p-openai", "model": "n", "capabilities": ["streaming"]}))
    with pytest.raises(BadRequest) as exc:
        limited.route(req(model="n", tools=[Tool(name="t")]))
    assert "No deployment behind 'n' supports this request (n: lacks tools)" in exc.value.message


def test_plain_routing_still_applies_health_and_hard_constraints() -> None:
    r = Router(cfg())
    d = r.route(req(model="trio"), health=Health(a=HealthSnapshot(breaker="open")))
    assert order(d) == ["b", "c", "a"] and "unhealthy" in d.candidates[-1].reason
    with pytest.raises(PaymentRequired):
        r.route(req(model="trio", max_tokens=1000), headers={"x-switchpoint-max-cost-usd": "0.0000001"})
    small = Router(cfg(tiny={"provider": "p-openai", "model": "t", "context_window": 100}))
    with pytest.raises(BadRequest) as exc:
        small.route(req("word " * 200, model="tiny"))
    assert exc.value.code == "context_length_exceeded"


# --- strategies ----------------------------------------------------------------------------------


def test_weighted_order_follows_the_weights() -> None:
    routing = {
        "default": {
            "candidates": ["a", "b", "c"],
            "strategy": "weighted",
            "weights": {"a": 6, "b": 3, "c": 1},
        }
    }
    r = Router(cfg(routing), rng=random.Random(1234))
    firsts = Counter(order(r.route(req()))[0] for _ in range(4000))
    assert firsts["a"] / 4000 == pytest.approx(0.6, abs=0.04)
    assert firsts["b"] / 4000 == pytest.approx(0.3, abs=0.04)
    assert firsts["c"] / 4000 == pytest.approx(0.1, abs=0.03)


def test_weighted_order_is_reproducible_with_a_seeded_rng() -> None:
    routing = {"default": {"candidates": ["a", "b", "c"], "strategy": "weighted"}}
    one = Router(cfg(routing), rng=random.Random(99))
    two = Router(cfg(routing), rng=random.Random(99))
    assert [order(one.route(req())) for _ in range(20)] == [order(two.route(req())) for _ in range(20)]


@pytest.mark.parametrize(
    ("strategy", "health", "stream", "expected"),
    [
        (
            "lowest_latency",
            {"a": (None, 900.0, 0), "b": (None, 300.0, 0), "c": (None, 600.0, 0)},
            False,
            ["b", "c", "a"],
        ),
        (
            "lowest_latency",
            {"a": (50.0, 900.0, 0), "b": (400.0, 300.0, 0), "c": (90.0, 1.0, 0)},
            True,
            ["a", "c", "b"],
        ),
        (
            "least_busy",
            {"a": (None, None, 7), "b": (None, None, 2), "c": (None, None, 2)},
            False,
            ["b", "c", "a"],
        ),
        ("lowest_cost", {}, False, ["c", "a", "b"]),
        ("cost_under_constraint", {"c": (None, 5000.0, 0), "a": (None, 100.0, 0)}, False, ["a", "b", "c"]),
        ("priority", {"a": (None, 9999.0, 50)}, False, ["a", "b", "c"]),
    ],
)
def test_strategies_order_by_live_health_and_price(
    strategy: str,
    health: dict[str, tuple[float | None, float | None, int]],
    stream: bool,
    expected: list[str],
) -> None:
    routing = {"default": {"candidates": ["a", "b", "c"], "strategy": strategy, "max_latency_ms": 1000}}
    snaps = {
        n: HealthSnapshot(ttft_ewma_ms=t, total_ewma_ms=tot, inflight=i) for n, (t, tot, i) in health.items()
    }
    d = Router(cfg(routing)).route(req(stream=stream), health=Health(**snaps))
    assert order(d) == expected, [c.reason for c in d.candidates]
    assert d.strategy == strategy


def test_cost_under_constraint_prefers_the_request_latency_target() -> None:
    routing = {
        "default": {"candidates": ["a", "b", "c"], "strategy": "cost_under_constraint", "max_latency_ms": 10}
    }
    h = Health(c=HealthSnapshot(total_ewma_ms=800), a=HealthSnapshot(total_ewma_ms=200))
    d = Router(cfg(routing)).route(req(), headers={"x-switchpoint-latency-ms": "500"}, health=h)
    assert order(d) == ["a", "b", "c"] and "over 500ms" in d.candidates[-1].reason


# --- affinity ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_affinity_store_expires_and_evicts() -> None:
    clock = Clock()
    store = AffinityStore(ttl_s=10, max_sessions=2, clock=clock)
    store.pin("s1", "a")
    assert store.get("s1") == "a"
    clock.now += 9.9
    assert store.get("s1") == "a"
    store.pin("s1", "a")  # use refreshes the TTL
    clock.now += 9.9
    assert store.get("s1") == "a"
    clock.now += 10
    assert store.get("s1") is None and len(store) == 0
    store.pin("x", "a")
    store.pin("y", "b")
    store.pin("z", "c")
    assert store.get("x") is None and store.get("z") == "c" and len(store) == 2


def test_sessions_stay_on_their_deployment_and_re_pin_on_failure() -> None:
    clock = Clock()
    routing = {
        "default": {"candidates": ["a", "b", "c"], "strategy": "lowest_cost"},
        "affinity": {"ttl_s": 60},
    }
    r = Router(cfg(routing), clock=clock)
    h = {"x-switchpoint-session": "conv-1"}
    first = r.route(req(), headers=h)
    assert order(first)[0] == "c" and first.affinity == "new session"
    r.pin(first, "b")  # b served it (c failed over, say)
    kept = r.route(req(), headers=h)
    assert order(kept) == ["b", "c", "a"] and kept.affinity == "kept on b"
    assert kept.candidates[0].reason.startswith("session affinity")
    assert "affinity=kept" in kept.header()
    sick = r.route(req(), headers=h, health=Health(b=HealthSnapshot(breaker="open")))
    assert order(sick)[0] == "c" and sick.affinity == "re-pin: b is unhealthy"
    r.pin(sick, "c")
    assert r.route(req(), headers=h).affinity == "kept on c"
    clock.now += 61
    assert r.route(req(), headers=h).affinity == "new session"
    via_meta = r.route(req(metadata={"session_id": "conv-1"}))
    assert via_meta.session == "conv-1"


def test_session_pins_survive_a_new_router() -> None:
    routing = {"default": {"candidates": ["a", "b"]}, "affinity": {"ttl_s": 60}}
    first = Router(cfg(routing))
    assert first.affinity is not None and len(first.affinity) == 0
    reloaded = Router(cfg(routing), affinity=first.affinity)
    assert reloaded.affinity is first.affinity  # even while still empty
    reloaded.pin(reloaded.route(req(), headers={"x-switchpoint-session": "s"}), "b")
    again = Router(cfg(routing), affinity=reloaded.affinity)
    assert order(again.route(req(), headers={"x-switchpoint-session": "s"}))[0] == "b"


def test_affinity_never_breaks_a_constraint() -> None:
    routing = {"default": {"candidates": ["a", "n"]}}
    r = Router(cfg(routing, n={"provider": "p-openai", "model": "n", "capabilities": ["streaming"]}))
    d = r.route(req(), headers={"x-switchpoint-session": "s"})
    r.pin(d, "n")
    with_tools = r.route(req(tools=[Tool(name="t")]), headers={"x-switchpoint-session": "s"})
    assert (
        order(with_tools) == ["a"] and with_tools.affinity == "re-pin: n is not a candidate for this request"
    )


# --- presets -------------------------------------------------------------------------------------

PARAMS = ParamsSpec(temperature=0.2, top_p=0.8, max_tokens=300, reasoning_effort="high", stop=["###"])


def test_presets_fill_unset_parameters_in_canonical_and_openai_raw() -> None:
    raw = {"model": "auto", "messages": [], "temperature": 1.0, "metadata": {"task": "x", "team": "ml"}}
    r = req(temperature=1.0, raw=raw, metadata={"task": "x", "team": "ml"})
    out, names = apply(r, PARAMS)
    assert sorted(names) == ["max_tokens", "reasoning_effort", "stop", "top_p"]
    assert (out.temperature, out.top_p, out.max_tokens, out.stop) == (1.0, 0.8, 300, ["###"])
    assert out.thinking == Thinking(enabled=True, effort="high")
    assert out.raw is not None and out.raw is not raw
    assert {
        k: out.raw[k] for k in ("temperature", "top_p", "max_completion_tokens", "reasoning_effort", "stop")
    } == {
        "temperature": 1.0,
        "top_p": 0.8,
        "max_completion_tokens": 300,
        "reasoning_effort": "high",
        "stop": ["###"],
    }
    assert out.raw["metadata"] == {"team": "ml"} and out.metadata == {"team": "ml"}
    assert raw["metadata"] == {"task": "x", "team": "ml"}  # the client's body is not mutated


def test_presets_in_anthropic_raw() -> None:
    raw = {"model": "auto", "max_tokens": 4000, "messages": [], "metadata": {"session_id": "s"}}
    r = req(max_tokens=4000, raw=raw, dialect="anthropic")
    out, names = apply(r, ParamsSpec(temperature=0.2, thinking_budget=2000, stop=["x"]))
    assert out.raw is not None
    assert out.raw["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert "temperature" not in out.raw and out.raw["stop_sequences"] == ["x"] and "metadata" not in out.raw
    assert out.temperature == 0.2  # translated upstreams decide for themselves
    assert sorted(names) == ["stop", "temperature", "thinking_budget"]
    tiny = req(max_tokens=500, raw={"model": "auto", "max_tokens": 500, "messages": []}, dialect="anthropic")
    out2, _ = apply(tiny, ParamsSpec(temperature=0.2, reasoning_effort="medium"))
    assert out2.raw is not None and "thinking" not in out2.raw and out2.raw["temperature"] == 0.2


def test_no_presets_no_copy() -> None:
    r = req(raw={"model": "auto", "messages": []})
    assert apply(r, None) == (r, ())
    assert apply(r, ParamsSpec())[0] is r


# --- trimming ------------------------------------------------------------------------------------


def conversation() -> list[Message]:
    return [
        Message(role="system", parts=[TextPart(text="sys")]),
        Message(role="user", parts=[TextPart(text="one " * 400)]),
        Message(role="assistant", parts=[ToolCallPart(id="c1", name="f", arguments="{}")]),
        Message(role="tool", parts=[ToolResultPart(tool_call_id="c1", content=[TextPart(text="r " * 400)])]),
        Message(role="user", parts=[TextPart(text="thanks")]),
        Message(role="assistant", parts=[TextPart(text="two " * 400)]),
        Message(role="user", parts=[TextPart(text="three " * 400)]),
    ]


def test_turns_keep_tool_calls_with_their_results() -> None:
    system, groups = turns(conversation())
    assert system == [0]
    assert groups == [[1, 2, 3, 4, 5], [6]]  # 'thanks' answers a tool result: same turn


def test_trim_drops_oldest_turns_in_canonical_and_openai_raw() -> None:
    msgs = conversation()
    raw_msgs = [{"role": m.role, "content": f"raw {i}"} for i, m in enumerate(msgs)]
    r = ChatRequest(model="auto", messages=msgs, raw={"model": "auto", "messages": raw_msgs, "x": 1})
    size = feats.cheap_tokens(r)[0]
    cut = trim(r, size, 800, ContextSpec(overflow="trim"))
    assert cut is not None and cut.dropped == 1
    assert [m.role for m in cut.request.messages] == ["system", "user"]
    assert cut.request.raw is not None and cut.request.raw["x"] == 1
    assert [m["content"] for m in cut.request.raw["messages"]] == ["raw 0", "raw 6"]
    assert trim(r, size, 10, ContextSpec(overflow="trim")) is None  # the newest turn alone is too big
    assert trim(r, size, 800, ContextSpec(overflow="trim", keep_last_turns=2)) is None


def test_trim_truncates_before_dropping() -> None:
    r = ChatRequest(model="auto", messages=conversation())
    size = feats.cheap_tokens(r)[0]
    cut = trim(r, size, size - 300, ContextSpec(overflow="trim", truncate_chars=20))
    assert cut is not None and (cut.truncated, cut.dropped) == (1, 0)
    first = cut.request.messages[1].text()
    assert first.endswith(" [...]") and len(first) == 20 + len(" [...]")
    result = cut.request.messages[3].parts[0]
    assert isinstance(result, ToolResultPart) and result.content[0].text.endswith("[...]")  # type: ignore[union-attr]


def test_trim_anthropic_raw_by_turns() -> None:
    msgs = conversation()
    raw_msgs: list[dict[str, Any]] = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "r"},
                {"type": "text", "text": "thanks"},
            ],
        },
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
    ]
    r = ChatRequest(
        model="auto", messages=msgs, dialect="anthropic", raw={"system": "sys", "messages": raw_msgs}
    )
    cut = trim(r, feats.cheap_tokens(r)[0], 800, ContextSpec(overflow="trim"))
    assert cut is not None and cut.request.raw is not None
    assert cut.request.raw["messages"] == [raw_msgs[4]] and cut.request.raw["system"] == "sys"
    odd = ChatRequest(model="auto", messages=msgs, dialect="anthropic", raw={"messages": raw_msgs[:2]})
    cut2 = trim(odd, feats.cheap_tokens(odd)[0], 800, ContextSpec(overflow="trim"))
    assert cut2 is not None and cut2.request.raw is None  # cannot match the turns: translate instead


# --- features ------------------------------------------------------------------------------------


def test_features_from_headers_metadata_and_content() -> None:
    r = req(
        tools=[Tool(name="t")],
        max_tokens=50,
        stream=True,
        metadata={"task": "from-meta", "priority": "budget", "tier": "gold", "n": "1"},
    )
    r.messages[0].parts.append(ImagePart(url="https://x/y.png"))
    f = feats.extract(
        r,
        {"x-switchpoint-task": "from-header", "x-switchpoint-tags": "team=ml, tier = platinum"},
        principal="master",
    )
    assert (f.task, f.task_source, f.priority, f.output_tokens) == ("from-header", "declared", "budget", 50)
    assert f.tags == {"tier": "platinum", "n": "1", "team": "ml"}
    assert f.needs == ("tools", "vision", "streaming") and f.principal == "master"
    with pytest.raises(BadRequest):
        feats.extract(req(), {"x-switchpoint-tags": "novalue"})
    with pytest.raises(BadRequest):
        feats.extract(req(), {"x-switchpoint-session": "has space"})
    anthropic_meta = req(raw={"metadata": {"task": "t", "user_id": "u"}}, dialect="anthropic")
    assert feats.extract(anthropic_meta).task == "t"


def test_size_estimate_is_cheap_far_from_limits_and_counted_near_them() -> None:
    small = req("hello " * 100)
    f = feats.extract(small)
    feats.refine(f, small, [1_000_000.0])
    assert not f.tokens_exact and f.prompt_tokens == feats.cheap_tokens(small)[0]
    near = req("hello " * 100_000)
    g = feats.extract(near)
    feats.refine(g, near, [120_000.0])
    assert g.tokens_exact and abs(g.prompt_tokens - 100_000) < 20
    cjk = req("数据" * 1000)
    assert feats.cheap_tokens(cjk)[0] > 1000  # non-ASCII text is not estimated at 4 chars a token


def test_header_is_ascii_even_with_unusual_names() -> None:
    routing = {"rules": [{"name": "règle-数据", "candidates": ["a"]}]}
    d = Router(cfg(routing)).route(req())
    h = d.header()
    assert h.isascii() and "rule=r?gle-??" in h
    assert d.trace()["rule"] == "règle-数据"


def test_direct_access_is_open_without_a_list() -> None:
    r = Router(cfg({"default": {"candidates": ["a"]}}))
    assert order(r.route(req(model="b"), principal="anyone")) == ["b"]


def test_decision_is_a_frozen_value() -> None:
    d = Router(cfg({"default": {"candidates": ["a"]}})).route(req())
    with pytest.raises(AttributeError):
        d.rule = "x"  # type: ignore[misc]
    assert msgspec.json.encode(d.trace())
