"""Micro-benchmarks of the gateway's own pieces, with pytest-benchmark.

    .venv/bin/pytest bench/micro --benchmark-only --benchmark-columns=mean,median,ops

Each benchmark is one step of the request path, so a change that slows one shows here first:
request decode per dialect, upstream build per family (passthrough and translated), response
parse and re-encode, and stream handling per chunk (parse + passthrough, parse + translate).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.openai import OpenAIDialect
from switchpoint.canonical import ChatRequest
from switchpoint.config import Config, parse
from switchpoint.providers import adapter_for
from switchpoint.providers.base import UpstreamResponse
from switchpoint.streaming import SSEDecoder

OPENAI = OpenAIDialect()
ANTHROPIC = AnthropicDialect()

CFG: Config = parse(
    {
        "providers": {
            "o": {"family": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "env:K"},
            "a": {"family": "anthropic", "base_url": "http://127.0.0.1:9", "api_key": "env:K"},
            "g": {"family": "gemini", "base_url": "http://127.0.0.1:9/v1beta", "api_key": "env:K"},
        },
        "deployments": {
            "openai": {"provider": "o", "model": "gpt-4o-mini"},
            "anthropic": {"provider": "a", "model": "claude"},
            "gemini": {"provider": "g", "model": "gemini"},
        },
    },
    env={"K": "k"},
)

CHAT_BODY = msgspec.json.encode(
    {
        "model": "bench",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Summarise the following paragraph in one sentence. " * 8},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
    }
)
MESSAGES_BODY = msgspec.json.encode(
    {
        "model": "bench",
        "max_tokens": 256,
        "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": "Summarise the following paragraph in one sentence. " * 8}],
    }
)
OPENAI_RESPONSE = msgspec.json.encode(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A short answer. " * 10, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160},
    }
)


def _openai_stream(n: int = 20) -> bytes:
    out = []
    for i in range(n):
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": f" word{i}"}, "finish_reason": None}],
        }
        out.append(b"data: " + msgspec.json.encode(chunk) + b"\n\n")
    out.append(
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    )
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


STREAM = _openai_stream()


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_decode_request(benchmark: Any, dialect: str) -> None:
    d, body = (OPENAI, CHAT_BODY) if dialect == "openai" else (ANTHROPIC, MESSAGES_BODY)
    req = benchmark(d.decode_chat, body, {})
    assert req.messages


@pytest.mark.parametrize("family", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("ingress", ["openai", "anthropic"])
def test_build_upstream(benchmark: Any, family: str, ingress: str) -> None:
    request: ChatRequest = (
        OPENAI.decode_chat(CHAT_BODY, {}) if ingress == "openai" else ANTHROPIC.decode_chat(MESSAGES_BODY, {})
    )
    adapter, dep = adapter_for(family), CFG.deployments[family]
    up = benchmark(adapter.build_chat, request, dep)
    assert up.body


def test_parse_and_encode_translated(benchmark: Any) -> None:
    """An OpenAI upstream's answer re-encoded for an Anthropic client."""
    adapter, dep = adapter_for("openai"), CFG.deployments["openai"]
    request = ANTHROPIC.decode_chat(MESSAGES_BODY, {})
    resp = UpstreamResponse(status=200, headers={}, body=OPENAI_RESPONSE)

    def step() -> bytes:
        return ANTHROPIC.encode_chat(adapter.parse_chat(resp, dep), request)

    assert benchmark(step)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_stream_per_response(benchmark: Any, client: str) -> None:
    """A 20-chunk OpenAI upstream stream: passthrough to an OpenAI client, translated to Anthropic."""
    adapter, dep = adapter_for("openai"), CFG.deployments["openai"]
    dialect = OPENAI if client == "openai" else ANTHROPIC
    body = CHAT_BODY if client == "openai" else MESSAGES_BODY
    request = msgspec.structs.replace(dialect.decode_chat(body, {}), stream=True)

    def step() -> int:
        parser = adapter.stream_parser(request, dep)
        encoder = dialect.stream_encoder(request)
        encoder.commit("openai")
        decoder = SSEDecoder()
        size = 0
        for frame in decoder.feed(STREAM):
            size += len(encoder.encode(parser.feed(frame), frame))
        parser.close()
        return size + len(encoder.finish())

    assert benchmark(step) > 0
