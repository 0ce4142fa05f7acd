"""Micro-benchmarks of the gateway's own pieces, with pytest-benchmark.

    .venv/bin/pytest bench/micro --benchmark-only --benchmark-columns=mean,median,ops

Each benchmark is one step of the request path, so a change that slows one shows here first:
request decode per dialect, upstream build per family (passthrough and translated), response
parse and re-encode, and stream handling per chunk (parse + passthrough, parse + translate);
and a whole 20-chunk passthrough stream through the executor's stream path and the dialect's
encoder, as one upstream read or one read per frame (``test_passthrough_stream``).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.api.openai import OpenAIDialect
from switchpoint.canonical import ChatRequest
from switchpoint.config import Config, TimeoutLimits, parse
from switchpoint.executor import RequestContext
from switchpoint.executor.stream import CommittedStream, open_stream
from switchpoint.health import HealthRegistry
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


# --- a whole passthrough stream through the executor and the dialect's encoder ---------------

_OPENAI_HEAD = (
    b'{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741570283,'
    b'"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_06737a9306",'
)


def _openai_usage_stream(n: int = 20) -> bytes:
    """What an OpenAI upstream sends the gateway (which always asks for the usage chunk)."""
    choice = b'"choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}],"usage":null}'
    out = [b"data: " + _OPENAI_HEAD + choice % (b'{"role":"assistant","content":"","refusal":null}', b"null")]
    for i in range(n):
        delta = msgspec.json.encode({"content": f" word{i}"})
        out.append(b"data: " + _OPENAI_HEAD + choice % (delta, b"null"))
    out.append(b"data: " + _OPENAI_HEAD + choice % (b"{}", b'"stop"'))
    out.append(
        b"data: "
        + _OPENAI_HEAD
        + b'"choices":[],"usage":{"prompt_tokens":120,"completion_tokens":20,"total_tokens":140,'
        + b'"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
        + b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}'
    )
    out.append(b"data: [DONE]")
    return b"".join(frame + b"\n\n" for frame in out)


def _anthropic_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


def _anthropic_stream(n: int = 20) -> bytes:
    usage = {
        "input_tokens": 120,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }
    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    out = [
        _anthropic_event("message_start", {"type": "message_start", "message": message}),
        _anthropic_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        _anthropic_event("ping", {"type": "ping"}),
    ]
    for i in range(n):
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": f" word{i}"},
        }
        out.append(_anthropic_event("content_block_delta", delta))
    out.append(_anthropic_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(
        _anthropic_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 20},
            },
        )
    )
    out.append(_anthropic_event("message_stop", {"type": "message_stop"}))
    return b"".join(out)


UPSTREAM_STREAMS = {"openai": _openai_usage_stream(), "anthropic": _anthropic_stream()}


class _Stream:
    status = 200
    headers: dict[str, str] = {}

    def __init__(self, reads: list[bytes]) -> None:
        self._reads = reads

    async def chunks(self) -> Any:
        for read in self._reads:
            yield read

    async def read(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


class _Transport:
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def open_stream(self, request: Any, **kw: Any) -> _Stream:
        return _Stream(self.reads)


def _frames(stream: bytes) -> list[bytes]:
    return [block + b"\n\n" for block in stream.split(b"\n\n") if block]


def _drive(coro: Any) -> Any:
    """Run a coroutine that never waits (the fake transport answers at once) without a loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine waited")


@pytest.mark.parametrize("reads", ["one_read", "read_per_frame"])
@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_passthrough_stream(benchmark: Any, family: str, reads: str) -> None:
    """A 20-chunk upstream stream forwarded to a client of the same dialect, end to end of the
    stream path: open_stream → CommittedStream → the dialect's encoder."""
    dialect = OPENAI if family == "openai" else ANTHROPIC
    body = CHAT_BODY if family == "openai" else MESSAGES_BODY
    request = msgspec.structs.replace(dialect.decode_chat(body, {}), stream=True)
    adapter, dep = adapter_for(family), CFG.deployments[family]
    stream = UPSTREAM_STREAMS[family]
    transport = _Transport([stream] if reads == "one_read" else _frames(stream))
    limits, health = TimeoutLimits(), HealthRegistry()

    async def one() -> int:
        ctx = RequestContext("bench")
        health.on_start(dep.name)
        opened = await open_stream(transport, adapter, request, dep, limits, 0.0)  # type: ignore[arg-type]
        committed = CommittedStream(opened, ctx, health)
        encoder = dialect.stream_encoder(request)
        encoder.commit(committed.family)
        encode = encoder.encode
        size = 0
        async for batch in committed:
            size += len(b"".join([encode(events, frame) for events, frame in batch]))
        assert ctx.usage is not None and ctx.usage.output_tokens == 20
        return size + len(encoder.finish())

    assert benchmark(lambda: _drive(one())) > 0
