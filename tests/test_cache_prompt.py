"""Provider prompt caching planned by the gateway: Anthropic breakpoints on the longest stable
prefix (at most four, the client's never moved, the model's minimum, TTL order), OpenAI
``prompt_cache_key``, per-rule and per-deployment opt-outs, and the ``cache:`` section."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from switchpoint import config
from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.openai import OpenAIDialect
from switchpoint.cache.prompt import PromptCaching, cache_key
from switchpoint.canonical import ChatRequest, PromptCachePlan
from switchpoint.errors import ConfigError
from switchpoint.providers.anthropic import AnthropicAdapter
from switchpoint.providers.anthropic_cache import min_cacheable_tokens, place_breakpoints
from switchpoint.providers.openai import OpenAIAdapter

LONG = "Follow these rules with care. " * 200  # ≈ 1500 tokens
EPHEMERAL = {"type": "ephemeral"}
PLAN = PromptCachePlan()

CONFIG = config.parse(
    {
        "providers": {
            "anthropic": {"family": "anthropic", "base_url": "https://api.anthropic.com", "api_key": "env:K"},
            "openai": {"family": "openai", "base_url": "https://api.openai.com/v1", "api_key": "env:K"},
            "vllm": {"family": "openai", "base_url": "http://127.0.0.1:8000/v1"},
        },
        "deployments": {
            "sonnet": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
            "haiku": {"provider": "anthropic", "model": "claude-3-5-haiku-latest"},
            "sonnet-off": {"provider": "anthropic", "model": "claude-sonnet-4-5", "prompt_cache": False},
            "gpt": {"provider": "openai", "model": "gpt-4o"},
            "local": {"provider": "vllm", "model": "llama"},
        },
    },
    env={"K": "sk-test"},
)


def marks(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every breakpoint in a body, as (where, cache_control), in the API's order."""
    out: list[tuple[str, Any]] = []
    for i, tool in enumerate(body.get("tools") or ()):
        if "cache_control" in tool:
            out.append((f"tools.{i}", tool["cache_control"]))
    system = body.get("system")
    for i, block in enumerate(system if isinstance(system, list) else ()):
        if "cache_control" in block:
            out.append((f"system.{i}", block["cache_control"]))
    for i, message in enumerate(body["messages"]):
        content = message["content"]
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if "cache_control" in block:
                out.append((f"messages.{i}.{j}", block["cache_control"]))
    return out


def conversation(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        messages += [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    return [*messages, {"role": "user", "content": "the last question"}]


def test_breakpoints_on_the_last_message_the_system_and_the_previous_user_turn() -> None:
    body = {"model": "m", "system": LONG, "messages": conversation(3)}
    assert place_breakpoints(body, PLAN, "claude-sonnet-4-5") == 3
    assert marks(body) == [("system.0", EPHEMERAL), ("messages.4.0", EPHEMERAL), ("messages.6.0", EPHEMERAL)]
    assert body["system"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]


def test_tools_are_the_stable_prefix_without_a_system_prompt() -> None:
    tools = [{"name": "t", "description": LONG, "input_schema": {"type": "object"}}]
    body = {"model": "m", "tools": tools, "messages": conversation(0)}
    place_breakpoints(body, PromptCachePlan(ttl="1h"), "claude-sonnet-4-5")
    one_hour = {"type": "ephemeral", "ttl": "1h"}
    assert marks(body) == [("tools.0", one_hour), ("messages.0.0", one_hour)]
    assert "cache_control" not in tools[0]  # the client's objects are not changed


def test_never_more_than_four_and_the_clients_stay_where_they_are() -> None:
    messages = conversation(3)
    messages[0] = {"role": "user", "content": [{"type": "text", "text": "q0", "cache_control": EPHEMERAL}]}
    messages[2] = {"role": "user", "content": [{"type": "text", "text": "q1", "cache_control": EPHEMERAL}]}
    body = {
        "model": "m",
        "system": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}],
        "messages": messages,
    }
    assert place_breakpoints(body, PLAN, "claude-sonnet-4-5") == 1
    got = marks(body)
    assert len(got) == 4
    assert [where for where, _ in got] == ["system.0", "messages.0.0", "messages.2.0", "messages.6.0"]
    full = {"model": "m", "system": LONG, "messages": conversation(1)}
    for message in full["messages"]:
        message["content"] = [{"type": "text", "text": message["content"], "cache_control": EPHEMERAL}]
    full["tools"] = [{"name": "t", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}]
    before = json.dumps(full, sort_keys=True)
    assert place_breakpoints(full, PLAN, "claude-sonnet-4-5") == 0  # four of the client's: no room
    assert json.dumps(full, sort_keys=True) == before


def test_under_the_models_minimum_nothing_is_placed() -> None:
    short = {"model": "m", "system": "Be brief.", "messages": conversation(2)}
    assert place_breakpoints(short, PLAN, "claude-sonnet-4-5") == 0 and marks(short) == []
    assert min_cacheable_tokens("claude-3-5-haiku-latest") == 2048
    assert (
        min_cacheable_tokens("claude-haiku-4-5") == 4096 and min_cacheable_tokens("claude-opus-4-1") == 1024
    )
    body = {"model": "m", "system": LONG, "messages": conversation(1)}  # ≈ 1500 tokens
    assert place_breakpoints(body, PLAN, "claude-3-5-haiku-latest") == 0


def test_thinking_blocks_never_carry_a_breakpoint() -> None:
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    messages = [
        {"role": "user", "content": LONG},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, thinking]},
    ]
    body = {"model": "m", "messages": messages}
    place_breakpoints(body, PLAN, "claude-sonnet-4-5")
    assert body["messages"][1]["content"][0]["cache_control"] == EPHEMERAL
    assert "cache_control" not in body["messages"][1]["content"][1]


def test_ttl_order_is_kept_around_the_clients_breakpoints() -> None:
    one_hour = {"type": "ephemeral", "ttl": "1h"}
    # A client's 1 h breakpoint late in the prompt: the gateway's earlier one must be 1 h too.
    messages = conversation(1)
    messages[-1] = {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": one_hour}]}
    body = {"model": "m", "system": LONG, "messages": messages}
    place_breakpoints(body, PLAN, "claude-sonnet-4-5")
    assert ("system.0", one_hour) in marks(body)
    # A client's 5 m breakpoint early: the gateway's later ones cannot be 1 h.
    body = {
        "model": "m",
        "system": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}],
        "messages": conversation(1),
    }
    place_breakpoints(body, PromptCachePlan(ttl="1h"), "claude-sonnet-4-5")
    assert all(control == EPHEMERAL for _, control in marks(body))


def test_a_top_level_cache_control_is_the_clients_choice() -> None:
    body = {"model": "m", "system": LONG, "messages": conversation(1), "cache_control": EPHEMERAL}
    assert place_breakpoints(body, PLAN, "claude-sonnet-4-5") == 0


def _decode(dialect: Any, body: dict[str, Any]) -> ChatRequest:
    request: ChatRequest = dialect.decode_chat(msgspec.json.encode(body), {})
    return request


def test_passthrough_stays_lossless_but_for_the_added_cache_control() -> None:
    body = {
        "model": "claude",
        "max_tokens": 100,
        "system": LONG,
        "messages": [
            *conversation(2)[:-1],
            {"role": "user", "content": [{"type": "text", "text": "last", "x_vendor": 1}]},
        ],
        "x_unknown_field": {"kept": True},
    }
    request = _decode(AnthropicDialect(), body)
    request = msgspec.structs.replace(request, prompt_cache=PLAN)
    sent = json.loads(AnthropicAdapter().build_chat(request, CONFIG.deployments["sonnet"]).body)
    assert len(marks(sent)) == 3

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "cache_control"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    expected = dict(body, model="claude-sonnet-4-5")
    expected["system"] = [{"type": "text", "text": LONG}]
    expected["messages"] = [dict(m) for m in body["messages"]]
    expected["messages"][2] = {"role": "user", "content": [{"type": "text", "text": "question 1"}]}
    assert strip(sent) == expected
    assert request.raw is not None and "cache_control" not in json.dumps(
        request.raw
    )  # the client's body unchanged
    off = json.loads(AnthropicAdapter().build_chat(request, CONFIG.deployments["sonnet-off"]).body)
    assert marks(off) == [] and off["system"] == LONG


def test_translated_requests_get_breakpoints_too() -> None:
    body = {"model": "claude", "messages": [{"role": "system", "content": LONG}, *conversation(2)]}
    request = msgspec.structs.replace(_decode(OpenAIDialect(), body), prompt_cache=PLAN)
    sent = json.loads(AnthropicAdapter().build_chat(request, CONFIG.deployments["sonnet"]).body)
    assert [w for w, _ in marks(sent)] == ["system.0", "messages.2.0", "messages.4.0"]


def test_openai_prompt_cache_key_when_the_client_gave_none() -> None:
    plan = PromptCachePlan(key=cache_key("s:session-1"))
    request = _decode(OpenAIDialect(), {"model": "gpt", "messages": [{"role": "user", "content": LONG}]})
    request = msgspec.structs.replace(request, prompt_cache=plan)
    sent = json.loads(OpenAIAdapter().build_chat(request, CONFIG.deployments["gpt"]).body)
    assert sent["prompt_cache_key"] == plan.key and "session-1" not in plan.key
    given = {"model": "gpt", "messages": [{"role": "user", "content": LONG}], "prompt_cache_key": "mine"}
    request = msgspec.structs.replace(_decode(OpenAIDialect(), given), prompt_cache=plan)
    assert (
        json.loads(OpenAIAdapter().build_chat(request, CONFIG.deployments["gpt"]).body)["prompt_cache_key"]
        == "mine"
    )
    # An OpenAI-compatible server the gateway cannot vouch for gets no unknown field.
    request = msgspec.structs.replace(request, raw=None)
    assert "prompt_cache_key" not in json.loads(
        OpenAIAdapter().build_chat(request, CONFIG.deployments["local"]).body
    )


ROUTED = {
    "providers": {"p": {"family": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "deployments": {"d": {"provider": "p", "model": "m"}},
    "models": {"fast": "d"},
    "routing": {
        "rules": [{"name": n, "match": {"model": "fast"}, "candidates": ["d"]} for n in ("bulk", "long")]
    },
}


def caching(section: dict[str, Any]) -> PromptCaching:
    return PromptCaching(config.parse({**ROUTED, "cache": section}).cache)


def test_the_plan_per_rule_session_and_key() -> None:
    default = caching({})
    assert default.plan(None, 500, session="s", key_id="k") is None  # under every family's minimum
    plan = default.plan(None, 5000, session="s", key_id="k")
    assert plan == PromptCachePlan(ttl="5m", key=cache_key("s:s"))
    assert default.plan(None, 5000, session=None, key_id="k") == PromptCachePlan(key=cache_key("k:k"))
    assert default.plan(None, 5000, session=None, key_id=None) == PromptCachePlan()
    rules = caching(
        {"rules": {"bulk": {"prompt": False}, "long": {"prompt_ttl": "1h"}}, "prompt": {"openai_key": "off"}}
    )
    assert rules.plan("bulk", 5000, session="s", key_id=None) is None
    assert rules.plan("long", 5000, session="s", key_id=None) == PromptCachePlan(ttl="1h")
    off = caching({"prompt": {"enabled": False}, "rules": {"long": {"prompt": True}}})
    assert off.plan(None, 5000, session=None, key_id=None) is None
    assert off.plan("long", 5000, session=None, key_id=None) == PromptCachePlan()


def test_the_cache_section_is_checked() -> None:
    with pytest.raises(ConfigError) as err:
        config.parse({"cache": {"prompt": {"ttl": "2h"}, "response": {"backend": "redis"}, "bogus": 1}})
    text = str(err.value)
    assert "$.cache" in text
    with pytest.raises(ConfigError) as err:
        config.parse({"cache": {"response": {"backend": "redis", "ttl_s": 0}}})
    assert "redis needs state.redis_url" in str(err.value) and "ttl_s" in str(err.value)
    with pytest.raises(ConfigError) as err:
        config.parse({**ROUTED, "cache": {"rules": {"bluk": {"prompt": False}, "alias:fast": {"ttl_s": 5}}}})
    assert "$.cache.rules.bluk: no routing rule has this name" in str(err.value)
    assert "alias:fast" not in str(err.value).split("expected")[0]
    with pytest.raises(ConfigError) as err:
        config.parse({"cache": {"rules": {"bulk": {"prompt": False}}}})
    assert "there is no routing section" in str(err.value)
    ok = config.parse({"cache": {"response": {"enabled": True, "scope": "team"}}})
    assert ok.cache.response and ok.cache.scope == "team" and ok.cache.prompt
