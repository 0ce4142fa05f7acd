"""One conformance suite, parametrised over every adapter family: the same cases for each.

Each case builds a canonical request, lets the family's adapter build the upstream request,
validates it against the family's published spec, sends it over the real pooled transport to
the simulator, and checks the canonical result. A new family is a config row plus this suite
passing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchpoint.canonical import (
    Accumulator,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Thinking,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from switchpoint.config import Config, Deployment, parse
from switchpoint.errors import ProviderError
from switchpoint.executor import H1Transport, Transport
from switchpoint.providers import adapter_for
from switchpoint.providers.base import UpstreamResponse
from switchpoint.streaming import SSEDecoder

import specs

FAMILIES = ["openai", "anthropic", "gemini"]
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = Tool(
    name="get_weather",
    description="Current weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
)


@pytest.fixture(scope="module")
def cfg(simulator_url: str) -> Config:
    base = {"openai": "/openai/v1", "anthropic": "/anthropic", "gemini": "/gemini/v1beta"}
    return parse(
        {
            "providers": {
                f: {"family": f, "base_url": simulator_url + base[f], "api_key": "env:K"} for f in FAMILIES
            },
            "deployments": {
                **{f: {"provider": f, "model": f"sim-{f}"} for f in FAMILIES},
                **{
                    f"{f}-embed": {"provider": f, "model": "sim-embed", "kind": "embedding"}
                    for f in ("openai", "gemini")
                },
            },
        },
        env={"K": "sk-conformance"},
    )


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t: Transport = H1Transport(pool_size=8)
    yield t
    await t.close()


def user(text: str) -> Message:
    return Message(role="user", parts=[TextPart(text=text)])


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="any", messages=list(messages), max_tokens=kw.pop("max_tokens", 200), **kw)


async def call(transport: Transport, dep: Deployment, request: ChatRequest) -> ChatResponse:
    adapter = adapter_for(dep.family)
    up = adapter.build_chat(request, dep)
    specs.check_request(dep.family, up.method, up.url, up.body, up.headers)
    assert not up.stream or request.stream
    if request.stream:
        stream = await transport.open_stream(up, connect_timeout_s=5, read_timeout_s=10)
        try:
            if stream.status >= 400:
                body = await stream.read()
                raise adapter.classify(
                    UpstreamResponse(status=stream.status, headers=stream.headers, body=body), dep
                )
            parser = adapter.stream_parser(request, dep)
            decoder = SSEDecoder()
            acc = Accumulator()
            async for chunk in stream.chunks():
                for frame in decoder.feed(chunk):
                    for event in parser.feed(frame):  # raises on a frame it cannot understand
                        acc.add(event)
                    if frame.data != b"[DONE]":
                        specs.check_schema(dep.family, specs.STREAM_EVENT_SCHEMA[dep.family], frame.data)
            for frame in decoder.flush():
                for event in parser.feed(frame):
                    acc.add(event)
            for event in parser.close():
                acc.add(event)
            return acc.response()
        finally:
            stream.close()
    resp = await transport.send(up, timeout_s=10, connect_timeout_s=5)
    if resp.status >= 400:
        raise adapter.classify(resp, dep)
    return adapter.parse_chat(resp, dep)


def text_of(r: ChatResponse) -> str:
    return "".join(p.text for p in r.parts if isinstance(p, TextPart))


def calls_of(r: ChatResponse) -> list[ToolCallPart]:
    return [p for p in r.parts if isinstance(p, ToolCallPart)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True])
async def test_text(cfg: Config, transport: Transport, family: str, stream: bool) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            Message(role="system", parts=[TextPart(text="Be brief.")]),
            user("Hello there"),
            temperature=0.3,
            top_p=0.9,
            stop=["\n\n\n"],
            stream=stream,
        ),
    )
    assert text_of(r).startswith("[simulated")
    assert r.finish_reason == "stop"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0


@pytest.mark.parametrize("family", FAMILIES)
async def test_stream_and_plain_agree(cfg: Config, transport: Transport, family: str) -> None:
    dep = cfg.deployments[family]
    plain = await call(transport, dep, req(user("Tell me something")))
    streamed = await call(transport, dep, req(user("Tell me something"), stream=True))
    assert text_of(streamed) == text_of(plain)
    assert streamed.usage.output_tokens == plain.usage.output_tokens
    assert streamed.usage.input_tokens == plain.usage.input_tokens


@pytest.mark.parametrize("family", FAMILIES)
async def test_multi_turn(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            user("My name is Ada."),
            Message(role="assistant", parts=[TextPart(text="Hello Ada.")]),
            user("And yours?"),
        ),
    )
    assert text_of(r).startswith("[simulated")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_then_result(cfg: Config, transport: Transport, family: str, stream: bool) -> None:
    dep = cfg.deployments[family]
    first = await call(transport, dep, req(user("Weather in Oslo?"), tools=[WEATHER], stream=stream))
    assert first.finish_reason == "tool_calls"
    calls = calls_of(first)
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].id
    args = json.loads(calls[0].arguments)
    assert isinstance(args["city"], str) and isinstance(args["days"], int)
    second = await call(
        transport,
        dep,
        req(
            user("Weather in Oslo?"),
            Message(role="assistant", parts=list(first.parts)),
            Message(
                role="tool",
                parts=[ToolResultPart(tool_call_id=calls[0].id, content=[TextPart(text="rain, 9 degrees")])],
            ),
            tools=[WEATHER],
            stream=stream,
        ),
    )
    assert second.finish_reason == "stop"
    assert "rain" in text_of(second)


@pytest.mark.parametrize("family", FAMILIES)
async def test_forced_tool_choice(cfg: Config, transport: Transport, family: str) -> None:
    other = Tool(name="noop", parameters={"type": "object", "properties": {}})
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            user("hi"),
            tools=[other, WEATHER],
            tool_choice=ToolChoice(mode="tool", name="get_weather"),
        ),
    )
    assert [c.name for c in calls_of(r)] == ["get_weather"]


@pytest.mark.parametrize("family", FAMILIES)
async def test_tool_choice_none(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(user("hi"), tools=[WEATHER], tool_choice=ToolChoice(mode="none")),
    )
    assert not calls_of(r) and r.finish_reason == "stop"


@pytest.mark.parametrize("family", FAMILIES)
async def test_image(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            Message(
                role="user",
                parts=[
                    TextPart(text="What is this?"),
                    ImagePart(data=PNG_B64, media_type="image/png"),
                ],
            )
        ),
    )
    assert "1 image" in text_of(r)


@pytest.mark.parametrize("family", FAMILIES)
async def test_json_schema(cfg: Config, transport: Transport, family: str) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "pages": {"type": "integer"}},
        "required": ["title", "pages"],
        "additionalProperties": False,
    }
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            user("A book please"),
            response_format=ResponseFormat(type="json_schema", schema=schema, name="book"),
        ),
    )
    doc = json.loads(text_of(r))
    assert isinstance(doc["title"], str) and isinstance(doc["pages"], int)


@pytest.mark.parametrize("family", FAMILIES)
async def test_thinking_reported(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            user("Think first"),
            thinking=Thinking(budget_tokens=2048, effort="medium"),
            max_tokens=4096,
        ),
    )
    assert text_of(r).startswith("[simulated")
    assert r.usage.reasoning_tokens > 0 or any(p.__class__.__name__ == "ThinkingPart" for p in r.parts)


@pytest.mark.parametrize("family", FAMILIES)
async def test_length_limit(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(user("long answer please [[sim output_tokens=50]]"), max_tokens=5),
    )
    assert r.finish_reason == "length"
    assert r.usage.output_tokens <= 5


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("directive", "kind", "retryable"),
    [
        ("status=429 retry_after_s=3", "rate_limited", True),
        ("status=503", "overloaded", True),
        ("status=500", "server_error", True),
        ("status=400", "bad_request", False),
        ("status=401", "authentication", False),
        ("status=404", "not_found", False),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_errors_classified(
    cfg: Config,
    transport: Transport,
    family: str,
    directive: str,
    kind: str,
    retryable: bool,
    stream: bool,
) -> None:
    with pytest.raises(ProviderError) as exc:
        await call(transport, cfg.deployments[family], req(user(f"hi [[sim {directive}]]"), stream=stream))
    err = exc.value
    assert err.kind == kind and err.retryable is retryable
    assert err.upstream_status == int(directive.split()[0].split("=")[1])
    if kind == "rate_limited":
        assert err.retry_after == pytest.approx(3)
    assert "sk-conformance" not in err.message


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True])
async def test_garbage_is_invalid_response(
    cfg: Config, transport: Transport, family: str, stream: bool
) -> None:
    with pytest.raises(ProviderError) as exc:
        await call(transport, cfg.deployments[family], req(user("hi [[sim malformed=true]]"), stream=stream))
    assert exc.value.kind == "invalid_response" and exc.value.retryable


@pytest.mark.parametrize("family", FAMILIES)
async def test_cut_stream_is_an_error(cfg: Config, transport: Transport, family: str) -> None:
    with pytest.raises(ProviderError) as exc:
        await call(
            transport,
            cfg.deployments[family],
            req(user("story [[sim cut_after=2 output_tokens=30]]"), stream=True),
        )
    assert exc.value.kind in {"invalid_response", "connection"}


@pytest.mark.parametrize("family", ["openai", "gemini"])
@pytest.mark.parametrize("inputs", [["one text"], ["first", "second", "third"]])
async def test_embeddings(cfg: Config, transport: Transport, family: str, inputs: list[str]) -> None:
    dep = cfg.deployments[f"{family}-embed"]
    adapter = adapter_for(family)
    up = adapter.build_embeddings(EmbeddingRequest(model="e", inputs=inputs), dep)
    specs.check_request(family, up.method, up.url, up.body, up.headers)
    resp = await transport.send(up, timeout_s=10, connect_timeout_s=5)
    assert resp.status == 200, resp.body[:200]
    out = adapter.parse_embeddings(resp, dep)
    assert [e.index for e in out.data] == list(range(len(inputs)))
    assert all(len(e.vector) > 8 for e in out.data)
