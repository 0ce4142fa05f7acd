"""The simulated provider's prompt cache: reads only when a prefix repeats, within its TTL,
with each family's rules (Anthropic breakpoints and minimums, OpenAI steps of 128 per
``prompt_cache_key``, Gemini implicit caching)."""

from __future__ import annotations

from typing import Any

import msgspec

from switchpoint.simulator import anthropic_wire, gemini_wire, openai_wire
from switchpoint.simulator.content import TTL_1H, TTL_5M, PromptCache, Usage, cache_min_tokens, generate

LONG = "The quick brown fox jumps over the lazy dog. " * 100  # ≈ 1125 tokens
EPHEMERAL = {"type": "ephemeral"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def anthropic(cache: PromptCache, model: str = "claude-sonnet-4-5", **body: Any) -> Usage:
    body.setdefault("max_tokens", 16)
    call = anthropic_wire.parse_chat(msgspec.json.encode({"model": model, **body}))
    return generate(call.conv, 4, 0, cache).usage


def openai(cache: PromptCache, **body: Any) -> Usage:
    call = openai_wire.parse_chat(msgspec.json.encode({"model": "gpt-4o", **body}))
    return generate(call.conv, 4, 0, cache).usage


def system_marked(text: str = LONG, ttl: str | None = None) -> list[dict[str, Any]]:
    control = dict(EPHEMERAL, ttl=ttl) if ttl else EPHEMERAL
    return [{"type": "text", "text": text, "cache_control": control}]


def test_anthropic_reads_only_a_repeated_prefix_within_its_ttl() -> None:
    clock = Clock()
    cache = PromptCache(100, clock)
    first = anthropic(cache, system=system_marked(), messages=[{"role": "user", "content": "q"}])
    assert first.cached_tokens == 0 and first.cache_write_tokens > 1024
    clock.now += TTL_5M - 1
    second = anthropic(cache, system=system_marked(), messages=[{"role": "user", "content": "other q"}])
    assert second.cached_tokens == first.cache_write_tokens and second.cache_write_tokens == 0
    # The read refreshed the entry: another 299 s later it is still there.
    clock.now += TTL_5M - 1
    assert anthropic(cache, system=system_marked(), messages=[{"role": "user", "content": "q"}]).cached_tokens
    clock.now += TTL_5M + 1  # past the TTL: written again
    late = anthropic(cache, system=system_marked(), messages=[{"role": "user", "content": "q"}])
    assert late.cached_tokens == 0 and late.cache_write_tokens == first.cache_write_tokens
    # A different prefix is never read.
    changed = anthropic(cache, system=system_marked(LONG + "!"), messages=[{"role": "user", "content": "q"}])
    assert changed.cached_tokens == 0


def test_anthropic_one_hour_ttl() -> None:
    clock = Clock()
    cache = PromptCache(100, clock)
    body = {"system": system_marked(ttl="1h"), "messages": [{"role": "user", "content": "q"}]}
    first = anthropic(cache, **body)
    assert first.cache_write_1h_tokens == first.cache_write_tokens > 0
    clock.now += TTL_1H - 10
    assert anthropic(cache, **body).cached_tokens == first.cache_write_tokens


def test_anthropic_needs_a_breakpoint_and_the_models_minimum() -> None:
    cache = PromptCache(100, Clock())
    plain = {"system": LONG, "messages": [{"role": "user", "content": "q"}]}
    for _ in range(2):
        u = anthropic(cache, **plain)
        assert (u.cached_tokens, u.cache_write_tokens) == (0, 0)
    # ≈1130 tokens is over Sonnet's 1024 but under Haiku 3.5's 2048: Haiku caches nothing.
    assert cache_min_tokens("anthropic", "claude-3-5-haiku-latest") == 2048
    body = {"system": system_marked(), "messages": [{"role": "user", "content": "q"}]}
    for _ in range(2):
        u = anthropic(cache, model="claude-3-5-haiku-latest", **body)
        assert (u.cached_tokens, u.cache_write_tokens) == (0, 0)


def test_anthropic_writes_up_to_the_last_breakpoint_and_reads_by_lookback() -> None:
    cache = PromptCache(100, Clock())
    turns: list[dict[str, Any]] = [{"role": "user", "content": "question 0"}]
    previous_total = 0
    for turn in range(4):
        messages = [dict(m) for m in turns]
        last = messages[-1]
        messages[-1] = {
            "role": last["role"],
            "content": [{"type": "text", "text": last["content"], "cache_control": EPHEMERAL}],
        }
        u = anthropic(cache, system=LONG, messages=messages)
        if turn == 0:
            assert u.cached_tokens == 0
        else:  # the previous request's whole prompt, found within the lookback
            assert u.cached_tokens == previous_total
        assert u.cached_tokens + u.cache_write_tokens == u.input_tokens
        previous_total = u.input_tokens
        turns += [
            {"role": "assistant", "content": f"answer {turn}"},
            {"role": "user", "content": f"q {turn + 1}"},
        ]


def test_openai_steps_of_128_and_prompt_cache_key() -> None:
    cache = PromptCache(100, Clock())
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "q"}]
    first = openai(cache, messages=messages, prompt_cache_key="session-a")
    assert first.cached_tokens == 0
    again = openai(cache, messages=messages, prompt_cache_key="session-a")
    assert again.cached_tokens == 1024 + (again.input_tokens - 1024) // 128 * 128
    # Another key is another cache.
    assert openai(cache, messages=messages, prompt_cache_key="session-b").cached_tokens == 0
    short = [{"role": "user", "content": "tiny"}]
    openai(cache, messages=short)
    assert openai(cache, messages=short).cached_tokens == 0


def test_openai_ttl_and_bound() -> None:
    clock = Clock()
    cache = PromptCache(100, clock)
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "q"}]
    openai(cache, messages=messages)
    clock.now += TTL_5M + 1
    assert openai(cache, messages=messages).cached_tokens == 0
    assert openai(cache, messages=messages).cached_tokens > 0


def test_gemini_implicit_minimum_by_model() -> None:
    cache = PromptCache(100, Clock())
    body = msgspec.json.encode({"contents": [{"role": "user", "parts": [{"text": LONG}]}]})
    for model, hit in (("gemini-2.5-flash", True), ("gemini-2.5-pro", False)):
        call = gemini_wire.parse_chat(body, model, stream=False, sse=False)
        generate(call.conv, 4, 0, cache)
        usage = generate(call.conv, 4, 0, cache).usage
        assert (usage.cached_tokens == usage.input_tokens) is hit


def test_anthropic_writes_each_part_at_the_ttl_of_the_breakpoint_that_ends_it() -> None:
    cache = PromptCache(100, Clock())
    one_hour = {"type": "ephemeral", "ttl": "1h"}
    body = {
        "system": [{"type": "text", "text": LONG, "cache_control": one_hour}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q " * 400, "cache_control": EPHEMERAL}]}
        ],
    }
    u = anthropic(cache, **body)
    system_only = anthropic(
        PromptCache(100, Clock()), system=body["system"], messages=[{"role": "user", "content": "x"}]
    )
    # The system prompt's prefix at 1 h, the user turn after it at 5 m; all of it written.
    assert u.cache_write_1h_tokens == system_only.cache_write_tokens
    assert u.cache_write_tokens == u.input_tokens > u.cache_write_1h_tokens > 0
