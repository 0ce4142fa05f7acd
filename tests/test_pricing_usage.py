"""Usage read right from every wire family (answers and streams) and written back right to each
client dialect: each family counts cached, cache-written and reasoning tokens its own way; the
canonical ``Usage`` counts them one way (input includes cache reads and writes, output includes
reasoning), and the cost follows from it.

Every upstream body here is validated against its family's published schema first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from switchpoint import config
from switchpoint.api.anthropic import AnthropicDialect, AnthropicStreamEncoder
from switchpoint.api.openai import OpenAIDialect
from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamEvent,
    TextPart,
    Usage,
    UsageUpdate,
)
from switchpoint.canonical import Finish as FinishEvent
from switchpoint.pricing import cost_breakdown
from switchpoint.providers.anthropic import AnthropicAdapter
from switchpoint.providers.base import Adapter, UpstreamResponse
from switchpoint.providers.gemini import GeminiAdapter
from switchpoint.providers.openai import OpenAIAdapter
from switchpoint.streaming import SSEDecoder

import specs

CFG = config.parse(
    {
        "providers": {
            "o": {"family": "openai", "base_url": "https://api.openai.com/v1"},
            "a": {"family": "anthropic", "base_url": "https://api.anthropic.com"},
            "g": {"family": "gemini", "base_url": "https://generativelanguage.googleapis.com/v1beta"},
        },
        "deployments": {
            "gpt": {"provider": "o", "model": "gpt-5.4"},
            "claude": {"provider": "a", "model": "claude-sonnet-4-5"},
            "gemini": {"provider": "g", "model": "gemini-2.5-pro"},
        },
    }
)
REQUEST = ChatRequest(model="m", messages=[Message(role="user", parts=[TextPart(text="hi")])], stream=True)


def _parse(adapter: Adapter, dep: str, body: dict[str, Any]) -> Usage:
    raw = json.dumps(body).encode()
    return adapter.parse_chat(UpstreamResponse(status=200, headers={}, body=raw), CFG.deployments[dep]).usage


def _stream(adapter: Adapter, dep: str, payloads: list[dict[str, Any]]) -> Usage:
    parser = adapter.stream_parser(REQUEST, CFG.deployments[dep])
    raw = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
    if dep == "gpt":
        raw += b"data: [DONE]\n\n"
    decoder = SSEDecoder()
    events: list[StreamEvent] = []
    for i in range(0, len(raw), 13):  # in small pieces, as the network would
        for frame in decoder.feed(raw[i : i + 13]):
            events.extend(parser.feed(frame))
    for frame in decoder.flush():
        events.extend(parser.feed(frame))
    events.extend(parser.close())
    usage = Usage()
    for event in events:
        if isinstance(event, UsageUpdate):
            usage = usage.merge(event.usage)
    return usage


# --- OpenAI: prompt_tokens includes cached_tokens; completion_tokens includes reasoning_tokens

OPENAI_USAGE = {
    "prompt_tokens": 12_000,
    "completion_tokens": 3_000,
    "total_tokens": 15_000,
    "prompt_tokens_details": {"cached_tokens": 9_984, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 2_048,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
OPENAI_CANONICAL = Usage(
    input_tokens=12_000, cached_input_tokens=9_984, output_tokens=3_000, reasoning_tokens=2_048
)
# gpt-5.4: (12,000 - 9,984) x 2.50 = 5,040; 9,984 x 0.25 = 2,496; (3,000 - 2,048) x 15 = 14,280;
# 2,048 x 15 = 30,720; sum 52,536 per 1M = 0.052536 USD
OPENAI_COST = 0.052536


def test_openai_answer_usage() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-5.4",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": OPENAI_USAGE,
    }
    specs.check_response("openai", "POST", "https://api.openai.com/v1/chat/completions", 200, body)
    usage = _parse(OpenAIAdapter(), "gpt", body)
    assert usage == OPENAI_CANONICAL
    assert cost_breakdown(usage, CFG.deployments["gpt"].price).total == pytest.approx(OPENAI_COST, abs=1e-12)


def test_openai_stream_usage_in_the_last_chunk() -> None:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5.4"}
    chunks = [
        {
            **head,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None}],
        },
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
        {**head, "choices": [], "usage": OPENAI_USAGE},
    ]
    for chunk in chunks:
        specs.check_schema("openai", "CreateChatCompletionStreamResponse", chunk)
    assert _stream(OpenAIAdapter(), "gpt", chunks) == OPENAI_CANONICAL


def test_deepseek_cache_hits_count_as_cached_input() -> None:
    body = {
        "id": "x",
        "model": "deepseek-chat",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 5_000,
            "completion_tokens": 10,
            "prompt_cache_hit_tokens": 4_864,
            "prompt_cache_miss_tokens": 136,
        },
    }
    assert _parse(OpenAIAdapter(), "gpt", body) == Usage(
        input_tokens=5_000, cached_input_tokens=4_864, output_tokens=10
    )


# --- Anthropic: input_tokens EXCLUDES cache reads and writes; cache_creation splits the writes

ANTHROPIC_USAGE = {
    "input_tokens": 50,
    "output_tokens": 700,
    "cache_creation_input_tokens": 3_000,
    "cache_read_input_tokens": 20_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 2_000},
    "inference_geo": None,
    "server_tool_use": None,
    "service_tier": "standard",
}
# canonical input = 50 + 20,000 + 3,000 = 23,050
ANTHROPIC_CANONICAL = Usage(
    input_tokens=23_050,
    cached_input_tokens=20_000,
    cache_write_tokens=3_000,
    cache_write_1h_tokens=2_000,
    output_tokens=700,
)
# sonnet-4-5: 50 x 3 = 150; 20,000 x 0.30 = 6,000; 1,000 x 3.75 = 3,750; 2,000 x 6 = 12,000;
# 700 x 15 = 10,500; sum 32,400 per 1M = 0.0324 USD
ANTHROPIC_COST = 0.0324


def _anthropic_message(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "ok", "citations": None}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "stop_details": None,
        "container": None,
        "usage": usage,
    }


def test_anthropic_answer_usage_adds_cache_reads_and_writes_to_input() -> None:
    body = _anthropic_message(ANTHROPIC_USAGE)
    specs.check_response("anthropic", "POST", "https://api.anthropic.com/v1/messages", 200, body)
    usage = _parse(AnthropicAdapter(), "claude", body)
    assert usage == ANTHROPIC_CANONICAL
    assert cost_breakdown(usage, CFG.deployments["claude"].price).total == pytest.approx(
        ANTHROPIC_COST, abs=1e-12
    )


def test_anthropic_without_the_ttl_split_every_write_is_5_minutes() -> None:
    body = _anthropic_message({**ANTHROPIC_USAGE, "cache_creation": None})
    specs.check_response("anthropic", "POST", "https://api.anthropic.com/v1/messages", 200, body)
    usage = _parse(AnthropicAdapter(), "claude", body)
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (3_000, 0)


def test_anthropic_thinking_tokens_are_the_reasoning_part_of_the_output() -> None:
    body = _anthropic_message({**ANTHROPIC_USAGE, "output_tokens_details": {"thinking_tokens": 400}})
    usage = _parse(AnthropicAdapter(), "claude", body)
    assert (usage.output_tokens, usage.reasoning_tokens) == (700, 400)
    # thinking bills at the output rate: the total is unchanged
    assert cost_breakdown(usage, CFG.deployments["claude"].price).total == pytest.approx(
        ANTHROPIC_COST, abs=1e-12
    )


def test_anthropic_stream_usage_from_message_start_and_message_delta() -> None:
    start_usage = {**ANTHROPIC_USAGE, "output_tokens": 1}
    events = [
        {
            "type": "message_start",
            "message": {**_anthropic_message(start_usage), "content": [], "stop_reason": None},
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": "", "citations": None},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "stop_details": None,
                "container": None,
            },
            "usage": {
                "input_tokens": 50,
                "output_tokens": 700,
                "cache_creation_input_tokens": 3_000,
                "cache_read_input_tokens": 20_000,
                "server_tool_use": None,
            },
        },
        {"type": "message_stop"},
    ]
    for event in events:
        specs.check_schema("anthropic", "MessageStreamEvent", event)
    assert _stream(AnthropicAdapter(), "claude", events) == ANTHROPIC_CANONICAL


def test_anthropic_stream_delta_with_only_output_keeps_the_start_counts() -> None:
    events = [
        {"type": "message_start", "message": {**_anthropic_message(ANTHROPIC_USAGE), "content": []}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 900}},
        {"type": "message_stop"},
    ]
    usage = _stream(AnthropicAdapter(), "claude", events)
    assert usage == Usage(
        input_tokens=23_050,
        cached_input_tokens=20_000,
        cache_write_tokens=3_000,
        cache_write_1h_tokens=2_000,
        output_tokens=900,
    )


# --- Gemini: promptTokenCount includes cachedContentTokenCount; thoughtsTokenCount is NOT in
#     candidatesTokenCount (the canonical output adds it)

GEMINI_USAGE = {
    "promptTokenCount": 30_000,
    "cachedContentTokenCount": 24_000,
    "candidatesTokenCount": 500,
    "thoughtsTokenCount": 1_500,
    "totalTokenCount": 32_000,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 30_000}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 24_000}],
}
GEMINI_CANONICAL = Usage(
    input_tokens=30_000, cached_input_tokens=24_000, output_tokens=2_000, reasoning_tokens=1_500
)
# gemini-2.5-pro: 6,000 x 1.25 = 7,500; 24,000 x 0.125 = 3,000; 500 x 10 = 5,000;
# 1,500 x 10 = 15,000; sum 30,500 per 1M = 0.0305 USD
GEMINI_COST = 0.0305


def _gemini_reply(usage: dict[str, Any], text: str = "ok", finish: str | None = "STOP") -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-pro"}


def test_gemini_answer_usage_adds_thoughts_to_output() -> None:
    body = _gemini_reply(GEMINI_USAGE)
    specs.check_schema("gemini", "GenerateContentResponse", body)
    usage = _parse(GeminiAdapter(), "gemini", body)
    assert usage == GEMINI_CANONICAL
    assert cost_breakdown(usage, CFG.deployments["gemini"].price).total == pytest.approx(
        GEMINI_COST, abs=1e-12
    )


def test_gemini_stream_usage_is_cumulative_per_chunk() -> None:
    first = {"promptTokenCount": 30_000, "cachedContentTokenCount": 24_000, "thoughtsTokenCount": 1_500}
    chunks = [
        _gemini_reply({**first, "candidatesTokenCount": 1, "totalTokenCount": 31_501}, "o", None),
        _gemini_reply(GEMINI_USAGE, "k"),
    ]
    for chunk in chunks:
        specs.check_schema("gemini", "GenerateContentResponse", chunk)
    assert _stream(GeminiAdapter(), "gemini", chunks) == GEMINI_CANONICAL


def test_gemini_long_prompt_bills_at_the_long_context_rates() -> None:
    usage = _parse(
        GeminiAdapter(),
        "gemini",
        _gemini_reply(
            {"promptTokenCount": 200_001, "candidatesTokenCount": 1_000, "totalTokenCount": 201_001}
        ),
    )
    # 200,001 > 200,000: 200,001 x 2.50 = 500,002.5; 1,000 x 15 = 15,000; per 1M = 0.5150025
    assert cost_breakdown(usage, CFG.deployments["gemini"].price).total == pytest.approx(0.5150025, abs=1e-12)


# --- back out to each client dialect


def _answer(usage: Usage) -> ChatResponse:
    return ChatResponse(id="r-1", model="m", parts=[TextPart(text="ok")], usage=usage, family="gemini")


@pytest.mark.parametrize(
    "usage", [OPENAI_CANONICAL, ANTHROPIC_CANONICAL, GEMINI_CANONICAL], ids=["o", "a", "g"]
)
def test_openai_dialect_writes_prompt_tokens_with_cached_and_reasoning(usage: Usage) -> None:
    body = json.loads(OpenAIDialect().encode_chat(_answer(usage), REQUEST))
    specs.check_response("openai", "POST", "https://api.openai.com/v1/chat/completions", 200, body)
    u = body["usage"]
    assert u["prompt_tokens"] == usage.input_tokens
    assert u["prompt_tokens_details"]["cached_tokens"] == usage.cached_input_tokens
    assert u["completion_tokens"] == usage.output_tokens
    assert u["completion_tokens_details"]["reasoning_tokens"] == usage.reasoning_tokens
    assert u["total_tokens"] == usage.input_tokens + usage.output_tokens


def test_anthropic_dialect_writes_input_without_the_cache_and_the_ttl_split() -> None:
    body = json.loads(AnthropicDialect().encode_chat(_answer(ANTHROPIC_CANONICAL), REQUEST))
    specs.check_response("anthropic", "POST", "https://api.anthropic.com/v1/messages", 200, body)
    u = body["usage"]
    # 23,050 - 20,000 read - 3,000 written = 50, as the upstream sent it
    assert (u["input_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"]) == (
        50,
        20_000,
        3_000,
    )
    assert u["cache_creation"] == {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 2_000}
    assert u["output_tokens"] == 700 and "output_tokens_details" not in u
    # read back by the adapter of the same family: the same canonical usage (a round trip)
    assert _parse(AnthropicAdapter(), "claude", body) == ANTHROPIC_CANONICAL


def test_anthropic_dialect_writes_reasoning_as_thinking_tokens() -> None:
    body = json.loads(AnthropicDialect().encode_chat(_answer(GEMINI_CANONICAL), REQUEST))
    u = body["usage"]
    # 30,000 - 24,000 read = 6,000; no writes
    assert (u["input_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"]) == (
        6_000,
        24_000,
        0,
    )
    assert u["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    assert u["output_tokens"] == 2_000 and u["output_tokens_details"] == {"thinking_tokens": 1_500}
    assert _parse(AnthropicAdapter(), "claude", body) == GEMINI_CANONICAL


def test_anthropic_stream_encoder_writes_the_same_numbers() -> None:
    enc = AnthropicStreamEncoder(REQUEST)
    enc.commit("openai")
    out = enc.encode([UsageUpdate(usage=Usage(input_tokens=23_050))], None)
    out += enc.encode([UsageUpdate(usage=ANTHROPIC_CANONICAL), FinishEvent(reason="stop")], None)
    out += enc.finish()
    events = [json.loads(f.data) for f in SSEDecoder().feed(out) if f.data]
    for event in events:
        specs.check_schema("anthropic", "MessageStreamEvent", event)
    delta = next(e for e in events if e["type"] == "message_delta")["usage"]
    assert (
        delta["input_tokens"],
        delta["cache_read_input_tokens"],
        delta["cache_creation_input_tokens"],
    ) == (
        50,
        20_000,
        3_000,
    )
    assert delta["cache_creation"] == {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 2_000}
    assert _stream(AnthropicAdapter(), "claude", events) == ANTHROPIC_CANONICAL
