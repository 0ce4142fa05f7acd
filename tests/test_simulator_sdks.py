"""The official OpenAI and Anthropic SDKs as outside clients of the simulated provider: their
typed parsing, stream accumulation and error mapping must accept what it sends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import httpx
import httpx2
import openai
import pytest

from switchpoint.simulator import create_app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app())) as client:
        yield client


@pytest.fixture
async def http2() -> AsyncIterator[httpx2.AsyncClient]:
    """The Anthropic SDK runs on httpx2, which has its own ASGI transport."""
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app())) as client:
        yield client


def _openai(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://sim/openai/v1", api_key="sk-test", http_client=http, max_retries=0
    )


def _anthropic(http: httpx2.AsyncClient) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url="http://sim/anthropic", api_key="sk-ant", http_client=http, max_retries=0
    )


async def test_openai_sdk_chat_stream_tools_and_embeddings(http: httpx.AsyncClient) -> None:
    client = _openai(http)
    plain = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    text = plain.choices[0].message.content
    assert text is not None and text.startswith("[simulated gpt-4o]")
    streamed = ""
    usage = None
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.choices:
            streamed += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert streamed == text
    assert usage is not None and usage.completion_tokens == 24
    tools: list[openai.types.chat.ChatCompletionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
            },
        }
    ]
    called = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "find it"}], tools=tools
    )
    calls = called.choices[0].message.tool_calls
    assert calls is not None and calls[0].type == "function"
    assert calls[0].function.name == "lookup" and calls[0].function.arguments == '{"q":"sim"}'
    vectors = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [len(d.embedding) for d in vectors.data] == [256, 256]
    models = await client.models.list()
    assert "gpt-4o" in [m.id async for m in models]


async def test_openai_sdk_maps_scripted_errors(http: httpx.AsyncClient) -> None:
    client = _openai(http)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[sim status=429 retry_after_s=3]]"}]
        )
    assert caught.value.response.headers["retry-after"] == "3"
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[sim status=503]]"}]
        )
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[sim nope]]"}]
        )


async def test_anthropic_sdk_message_stream_and_thinking(http2: httpx2.AsyncClient) -> None:
    client = _anthropic(http2)
    message = await client.messages.create(
        model="claude-sonnet-4-6", max_tokens=4096, messages=[{"role": "user", "content": "hi"}]
    )
    block = message.content[0]
    assert block.type == "text" and block.text.startswith("[simulated claude-sonnet-4-6]")
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        final = await stream.get_final_message()
    kinds = [b.type for b in final.content]
    assert kinds == ["thinking", "text"]
    thinking = final.content[0]
    assert thinking.type == "thinking" and thinking.signature
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == message.usage.output_tokens + len(thinking.thinking.split())
    count = await client.messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}]
    )
    assert count.input_tokens == message.usage.input_tokens


async def test_anthropic_sdk_tool_use_stream(http2: httpx2.AsyncClient) -> None:
    client = _anthropic(http2)
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        tools=[
            {
                "name": "lookup",
                "input_schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "minimum": 3}},
                    "required": ["n"],
                },
            }
        ],
        messages=[{"role": "user", "content": "look it up"}],
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "lookup" and block.input == {"n": 3}
    assert final.stop_reason == "tool_use"


async def test_anthropic_sdk_maps_scripted_errors(http2: httpx2.AsyncClient) -> None:
    client = _anthropic(http2)
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.create(
            model="m",
            max_tokens=9,
            messages=[{"role": "user", "content": "[[sim status=429 retry_after_s=1]]"}],
        )
    with pytest.raises(anthropic.InternalServerError) as caught:
        await client.messages.create(
            model="m", max_tokens=9, messages=[{"role": "user", "content": "[[sim status=529]]"}]
        )
    assert caught.value.status_code == 529
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        async with client.messages.stream(
            model="m", max_tokens=9, messages=[{"role": "user", "content": "[[sim status=529]]"}]
        ) as stream:
            await stream.get_final_message()
    assert overloaded.value.status_code == 529
