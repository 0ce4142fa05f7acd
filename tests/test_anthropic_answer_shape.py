"""Anthropic-dialect answers shaped as the real API sends them (issue #19), for translated answers
(an OpenAI or Gemini upstream behind an Anthropic client; passthrough answers are the upstream's
own bytes).

Checked three ways: the published schema (tests/specs.py, which names the one place the gateway
follows the clients instead: a text block's ``citations``), the anthropic SDK parsing the answer,
and the rules of Vercel's ``@ai-sdk/anthropic`` response schema (3.0.x): a text block's
``citations`` is an array or absent, never null; ``usage.input_tokens`` and ``output_tokens`` are
numbers; the cache counts are numbers or null.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from switchpoint.api.anthropic import AnthropicDialect, AnthropicStreamEncoder
from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    Message,
    MessageStart,
    TextDelta,
    TextPart,
    Usage,
    UsageUpdate,
)
from switchpoint.canonical import Finish as FinishEvent
from switchpoint.streaming import SSEDecoder

import specs
from gateway_harness import GATEWAY_KEY

URL = "https://api.anthropic.com/v1/messages"
HEADERS = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
REQUEST = ChatRequest(model="m", messages=[Message(role="user", parts=[TextPart(text="hi")])])
# Long enough (> 1,024 tokens) for the simulated upstreams to cache it on the second call.
LONG_SYSTEM = "You answer questions about the house rules. " * 120


def ai_sdk_accepts(message: dict[str, Any]) -> None:
    """The checks @ai-sdk/anthropic's zod schema makes on the parts we write."""
    for block in message["content"]:
        if block["type"] == "text":
            assert isinstance(block["text"], str)
            assert "citations" not in block or isinstance(block["citations"], list), block
    usage = message["usage"]
    assert isinstance(usage["input_tokens"], int) and isinstance(usage["output_tokens"], int)
    for key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        assert usage.get(key) is None or isinstance(usage[key], int)


def real_api_usage(usage: dict[str, Any]) -> None:
    """``cache_creation`` is present with both TTL counts, and they add up to the writes."""
    split = usage["cache_creation"]
    assert set(split) == {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"}
    assert (
        split["ephemeral_5m_input_tokens"] + split["ephemeral_1h_input_tokens"]
        == usage["cache_creation_input_tokens"]
    )


# --- the encoder, canonical in ------------------------------------------------------------------


def test_text_blocks_carry_citations_only_when_there_are_some() -> None:
    cite = {"type": "char_location", "cited_text": "x", "document_index": 0, "document_title": None}
    cite |= {"start_char_index": 0, "end_char_index": 1, "file_id": None}
    parts: list[Any] = [
        TextPart(text="plain"),
        TextPart(text="cited", extra={"citations": [cite]}),
        TextPart(text="empty list", extra={"citations": []}),
    ]
    response = ChatResponse(id="r", model="m", parts=parts, family="openai")
    body = json.loads(AnthropicDialect().encode_chat(response, REQUEST))
    specs.check_response("anthropic", "POST", URL, 200, body)
    ai_sdk_accepts(body)
    assert body["content"] == [
        {"type": "text", "text": "plain"},
        {"type": "text", "text": "cited", "citations": [cite]},
        {"type": "text", "text": "empty list"},
    ]
    parsed = anthropic.types.Message.model_validate(body)
    assert next(b.citations for b in parsed.content if b.type == "text") is None


def test_usage_has_the_ttl_split_as_the_real_api_sends_it() -> None:
    usage = Usage(input_tokens=5_000, cache_write_tokens=4_000, cache_write_1h_tokens=1_500, output_tokens=9)
    body = json.loads(
        AnthropicDialect().encode_chat(ChatResponse(id="r", model="m", parts=[], usage=usage), REQUEST)
    )
    specs.check_response("anthropic", "POST", URL, 200, body)
    real_api_usage(body["usage"])
    assert body["usage"]["cache_creation"] == {
        "ephemeral_5m_input_tokens": 2_500,
        "ephemeral_1h_input_tokens": 1_500,
    }
    parsed = anthropic.types.Message.model_validate(body)
    assert parsed.usage.cache_creation is not None
    assert parsed.usage.cache_creation.ephemeral_1h_input_tokens == 1_500
    assert parsed.usage.input_tokens == 1_000  # 5,000 - 4,000 written


def test_stream_events_have_no_null_citations_and_carry_the_split() -> None:
    enc = AnthropicStreamEncoder(REQUEST)
    enc.commit("gemini")
    first = Usage(input_tokens=2_000, cached_input_tokens=1_200)
    out = enc.encode([MessageStart(id="r", model="m"), UsageUpdate(usage=first), TextDelta(text="Hi")], None)
    last = Usage(input_tokens=2_000, cached_input_tokens=1_200, output_tokens=30, reasoning_tokens=20)
    out += enc.encode([UsageUpdate(usage=last), FinishEvent(reason="stop")], None)
    out += enc.finish()
    events = [json.loads(f.data) for f in SSEDecoder().feed(out) if f.data]
    for event in events:
        specs.check_schema("anthropic", "MessageStreamEvent", event)
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts == [{"type": "text", "text": ""}]
    start_usage = events[0]["message"]["usage"]
    real_api_usage(start_usage)
    assert (start_usage["input_tokens"], start_usage["cache_read_input_tokens"]) == (800, 1_200)
    delta_usage = next(e for e in events if e["type"] == "message_delta")["usage"]
    real_api_usage(delta_usage)
    assert delta_usage["output_tokens"] == 30 and delta_usage["output_tokens_details"] == {
        "thinking_tokens": 20
    }


# --- through the gateway, with the SDK as the client ----------------------------------------------


@pytest.fixture
def ant(gateway: Any) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, http_client=httpx2.Client()
    )
    yield client
    client.close()


def _ask(gateway: Any, model: str, **extra: Any) -> dict[str, Any]:
    body = {
        "model": model,
        "max_tokens": 40,
        "system": LONG_SYSTEM,
        "messages": [{"role": "user", "content": "May I paint the door?"}],
        **extra,
    }
    r = httpx.post(f"{gateway.url}/v1/messages", json=body, headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    specs.check_response("anthropic", "POST", URL, 200, r.content)
    ai_sdk_accepts(doc)
    real_api_usage(doc["usage"])
    return doc


@pytest.mark.parametrize("upstream", ["openai", "gemini"])
def test_translated_answers_through_the_gateway(
    gateway: Any, ant: anthropic.Anthropic, upstream: str
) -> None:
    first = _ask(gateway, f"up-{upstream}")
    assert all("citations" not in b for b in first["content"] if b["type"] == "text")
    second = _ask(gateway, f"up-{upstream}")  # the simulated upstream read the prompt from its cache
    u1, u2 = first["usage"], second["usage"]
    assert u2["cache_read_input_tokens"] > 0
    # Anthropic's input_tokens leaves the cached part out: the two add up to the whole prompt
    assert (
        u2["input_tokens"] + u2["cache_read_input_tokens"]
        == u1["input_tokens"] + u1["cache_read_input_tokens"]
    )
    m = ant.messages.create(
        model=f"up-{upstream}",
        max_tokens=40,
        system=LONG_SYSTEM,
        messages=[{"role": "user", "content": "May I paint the door?"}],
    )
    assert m.content[0].type == "text" and m.content[0].citations is None
    assert (
        m.usage.cache_creation is not None
        and m.usage.cache_read_input_tokens == u2["cache_read_input_tokens"]
    )


@pytest.mark.parametrize("upstream", ["openai", "gemini"])
def test_translated_streams_through_the_gateway(
    gateway: Any, ant: anthropic.Anthropic, upstream: str
) -> None:
    _ask(gateway, f"up-{upstream}")  # warm the upstream's cache
    body = {
        "model": f"up-{upstream}",
        "max_tokens": 40,
        "stream": True,
        "system": LONG_SYSTEM,
        "messages": [{"role": "user", "content": "May I paint the door?"}],
    }
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body, headers=HEADERS, timeout=30) as r:
        assert r.status_code == 200
        raw = r.read()
    events = [json.loads(f.data) for f in SSEDecoder().feed(raw) if f.data]
    for event in events:
        specs.check_schema("anthropic", "MessageStreamEvent", event)
    assert all("citations" not in e["content_block"] for e in events if e["type"] == "content_block_start")
    real_api_usage(events[0]["message"]["usage"])
    delta = next(e for e in events if e["type"] == "message_delta")["usage"]
    real_api_usage(delta)
    assert delta["cache_read_input_tokens"] > 0
    with ant.messages.stream(
        model=f"up-{upstream}",
        max_tokens=40,
        system=LONG_SYSTEM,
        messages=[{"role": "user", "content": "May I paint the door?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == delta["cache_read_input_tokens"]
    assert final.usage.input_tokens == delta["input_tokens"] and final.usage.cache_creation is not None
