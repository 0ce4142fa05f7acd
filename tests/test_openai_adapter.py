"""The ``openai`` wire family adapter: requests built, answers parsed, streams, errors."""

from __future__ import annotations

import base64
import email.utils
import json
import struct
import time
from typing import Any

import msgspec
import pytest

from switchpoint import config
from switchpoint.canonical import (
    Accumulator,
    ChatRequest,
    EmbeddingRequest,
    Finish,
    ImagePart,
    Message,
    MessageStart,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    TextPart,
    Thinking,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCallDelta,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    UsageUpdate,
)
from switchpoint.errors import ProviderError
from switchpoint.providers.base import UpstreamResponse
from switchpoint.providers.openai import OpenAIAdapter
from switchpoint.streaming import SSEDecoder

import specs

CHAT_URL = "https://api.openai.com/v1/chat/completions"
KEY = "sk-test-abc123"

CFG = config.parse(
    {
        "providers": {
            "oai": {
                "family": "openai",
                "base_url": "https://api.openai.com/v1",
                "api_key": "env:OPENAI_KEY",
                "headers": {"OpenAI-Project": "proj_1", "X-Extra": "env:EXTRA"},
            },
            "azure": {
                "family": "openai",
                "base_url": "https://res.openai.azure.com",
                "api_key": "env:AZ_KEY",
                "azure_api_version": "2024-10-21",
            },
            "local": {"family": "openai", "base_url": "http://127.0.0.1:8000/v1"},
        },
        "deployments": {
            "gpt": {"provider": "oai", "model": "gpt-4o-2024-08-06"},
            "az": {"provider": "azure", "model": "my gpt4o"},
            "vllm": {"provider": "local", "model": "Qwen/Qwen2.5-7B-Instruct"},
            "emb": {"provider": "oai", "model": "text-embedding-3-small", "kind": "embedding"},
            "az-emb": {"provider": "azure", "model": "emb-small", "kind": "embedding"},
        },
    },
    env={"OPENAI_KEY": KEY, "AZ_KEY": "az-secret-key", "EXTRA": "extra-secret"},
)
GPT = CFG.deployments["gpt"]
AZURE = CFG.deployments["az"]
VLLM = CFG.deployments["vllm"]
ADAPTER = OpenAIAdapter()
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def body_of(built: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(built.body)
    return decoded


def check_built(built: Any) -> None:
    """Validate a built request against the spec (Azure's layout maps onto the public path)."""
    url, headers = built.url, dict(built.headers)
    if "api-key" in headers:  # Azure: same body schema, different path and auth header
        url, headers["authorization"] = CHAT_URL if "chat" in url else url, "Bearer x"
    specs.check_request("openai", "POST", url, built.body, headers)


def call(call_id: str, name: str, arguments: str, index: int | None = None) -> dict[str, Any]:
    """A wire tool call (a stream piece when ``index`` is given)."""
    wire: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    return wire if index is None else {"index": index, **wire}


def weather_tool() -> Tool:
    return Tool(
        name="get_weather",
        description="Current weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        strict=True,
    )


def conversation() -> list[Message]:
    return [
        Message(role="system", parts=[TextPart(text="You are terse.")]),
        Message(role="developer", parts=[TextPart(text="Answer in English."), TextPart(text="Use tools.")]),
        Message(
            role="user",
            name="alice",
            parts=[
                TextPart(text="Compare these and check Paris weather."),
                ImagePart(url="https://example.com/a.png", detail="low"),
                ImagePart(data=PNG_B64, media_type="image/png"),
            ],
        ),
        Message(
            role="assistant",
            parts=[
                ThinkingPart(text="The user wants weather.", signature="sig"),
                TextPart(text="Checking."),
                ToolCallPart(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),
                ToolCallPart(id="call_2", name="get_weather", arguments='{"city":"Rome"}'),
            ],
        ),
        # Anthropic-style: tool results ride in a user message, with more user text after them.
        Message(
            role="user",
            parts=[
                ToolResultPart(tool_call_id="call_1", content=[TextPart(text="18C, sunny")]),
                ToolResultPart(
                    tool_call_id="call_2",
                    content=[TextPart(text="radar:"), ImagePart(data=PNG_B64, media_type="image/png")],
                    is_error=False,
                ),
                TextPart(text="And tomorrow?"),
            ],
        ),
    ]


# --- build_chat ------------------------------------------------------------------------------


def test_translated_request_covers_every_message_kind_and_option() -> None:
    request = ChatRequest(
        model="smart",
        messages=conversation(),
        tools=[weather_tool()],
        tool_choice=ToolChoice(mode="tool", name="get_weather"),
        parallel_tool_calls=False,
        response_format=ResponseFormat(type="json_schema", schema={"type": "object"}, strict=True),
        max_tokens=300,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop=["END"],
        seed=7,
        user="u-1",
        metadata={"team": "search", "n": 3},
        logprobs=True,
        top_logprobs=2,
        thinking=Thinking(effort="low", budget_tokens=2048),
        dialect="anthropic",
        raw={"model": "smart", "ignored": True},
    )
    built = ADAPTER.build_chat(request, GPT)
    check_built(built)
    assert built.method == "POST" and built.url == CHAT_URL and built.stream is False
    body = body_of(built)
    assert body["model"] == "gpt-4o-2024-08-06"
    assert "ignored" not in body  # raw of another dialect is never sent
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {
            "role": "developer",
            "content": [
                {"type": "text", "text": "Answer in English."},
                {"type": "text", "text": "Use tools."},
            ],
        },
        {
            "role": "user",
            "name": "alice",
            "content": [
                {"type": "text", "text": "Compare these and check Paris weather."},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                call("call_1", "get_weather", '{"city":"Paris"}'),
                call("call_2", "get_weather", '{"city":"Rome"}'),
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "radar:"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": weather_tool().parameters,
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "object"}, "strict": True},
    }
    assert body["max_completion_tokens"] == 300 and "max_tokens" not in body
    sampling = [body[k] for k in ("temperature", "top_p", "stop", "seed", "user")]
    assert sampling == [0.2, 0.9, ["END"], 7, "u-1"]
    assert body["parallel_tool_calls"] is False
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert body["reasoning_effort"] == "low"
    assert "top_k" not in body and "metadata" not in body and "stream" not in body


def test_translated_streaming_request_always_asks_for_usage() -> None:
    request = ChatRequest(
        model="m",
        messages=[Message(role="user", parts=[TextPart(text="hi")])],
        tool_choice=ToolChoice(mode="required"),
        tools=[weather_tool()],
        response_format=ResponseFormat(type="json_object"),
        stream=True,
        dialect="anthropic",
    )
    built = ADAPTER.build_chat(request, GPT)
    check_built(built)
    body = body_of(built)
    assert built.stream is True
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["tool_choice"] == "required" and body["response_format"] == {"type": "json_object"}


def test_tool_role_message_and_empty_assistant_turns() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="user", parts=[TextPart(text="go")]),
            Message(role="assistant", parts=[ToolCallPart(id="c1", name="get_weather", arguments="{}")]),
            Message(role="tool", parts=[ToolResultPart(tool_call_id="c1", content=[])]),
            Message(role="assistant", parts=[]),
        ],
        dialect="anthropic",
    )
    built = ADAPTER.build_chat(request, GPT)
    check_built(built)
    assert body_of(built)["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call("c1", "get_weather", "{}")],
        },
        {"role": "tool", "tool_call_id": "c1", "content": ""},
        {"role": "assistant", "content": ""},
    ]


def test_passthrough_keeps_unknown_fields_and_only_changes_model_and_usage_reporting() -> None:
    raw = {
        "model": "my-alias",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "frequency_penalty": 0.5,
        "service_tier": "flex",
        "store": True,
        "metadata": {"k": "v"},
        "stream": True,
        "stream_options": {"include_obfuscation": False},
        "x_vendor_option": {"a": 1},
    }
    request = ChatRequest(
        model="my-alias",
        messages=[Message(role="user", parts=[TextPart(text="hi")])],
        stream=True,
        dialect="openai",
        raw=raw,
    )
    built = ADAPTER.build_chat(request, GPT)
    body = body_of(built)
    assert body == {
        **raw,
        "model": "gpt-4o-2024-08-06",
        "stream_options": {"include_obfuscation": False, "include_usage": True},
    }
    assert raw["model"] == "my-alias" and raw["stream_options"] == {"include_obfuscation": False}
    without_vendor_field = {k: v for k, v in body.items() if k != "x_vendor_option"}
    specs.check_request("openai", "POST", built.url, without_vendor_field, built.headers)


def test_non_streaming_passthrough_is_the_client_body_with_the_upstream_model() -> None:
    raw = {"model": "a", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"50256": -100}}
    request = ChatRequest(model="a", messages=[], dialect="openai", raw=raw)
    built = ADAPTER.build_chat(request, GPT)
    check_built(built)
    assert body_of(built) == {**raw, "model": "gpt-4o-2024-08-06"}


def test_headers_bearer_key_and_provider_headers_with_secrets() -> None:
    built = ADAPTER.build_chat(ChatRequest(model="m", messages=[], dialect="anthropic"), GPT)
    assert built.headers == {
        "content-type": "application/json",
        "authorization": f"Bearer {KEY}",
        "openai-project": "proj_1",
        "x-extra": "extra-secret",
    }


def test_azure_layout_uses_deployment_path_api_version_and_api_key_header() -> None:
    request = ChatRequest(
        model="m", messages=[Message(role="user", parts=[TextPart(text="hi")])], dialect="anthropic"
    )
    built = ADAPTER.build_chat(request, AZURE)
    assert built.url == (
        "https://res.openai.azure.com/openai/deployments/my%20gpt4o/chat/completions?api-version=2024-10-21"
    )
    assert built.headers["api-key"] == "az-secret-key"
    assert "authorization" not in built.headers
    check_built(built)


def test_keyless_upstream_gets_no_auth_header() -> None:
    request = ChatRequest(
        model="m", messages=[Message(role="user", parts=[TextPart(text="hi")])], dialect="anthropic"
    )
    built = ADAPTER.build_chat(request, VLLM)
    assert built.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert built.headers == {"content-type": "application/json"}
    specs.check_request(
        "openai", "POST", built.url, built.body, {**built.headers, "authorization": "Bearer x"}
    )


# --- parse_chat ------------------------------------------------------------------------------


def completion(
    message: dict[str, Any], finish: str = "stop", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "system_fingerprint": "fp_1",
    }
    if usage is not None:
        body["usage"] = usage
    return body


def parse(body: dict[str, Any], deployment: config.Deployment = GPT) -> Any:
    raw = json.dumps(body).encode()
    return ADAPTER.parse_chat(UpstreamResponse(status=200, headers={}, body=raw), deployment)


def test_parse_tool_calls_and_detailed_usage() -> None:
    body = completion(
        {
            "role": "assistant",
            "content": "Let me look.",
            "refusal": None,
            "annotations": [],
            "tool_calls": [call("call_9", "get_weather", '{"city":"Oslo"}')],
        },
        finish="tool_calls",
        usage={
            "prompt_tokens": 1117,
            "completion_tokens": 46,
            "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0},
        },
    )
    specs.check_response("openai", "POST", CHAT_URL, 200, body)
    response = parse(body)
    assert response.parts == [
        TextPart(text="Let me look."),
        ToolCallPart(id="call_9", name="get_weather", arguments='{"city":"Oslo"}'),
    ]
    assert response.finish_reason == "tool_calls"
    assert (response.id, response.model, response.created) == (
        "chatcmpl-abc",
        "gpt-4o-2024-08-06",
        1741570283,
    )
    u = response.usage
    assert [u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens] == [
        1117,
        1024,
        46,
        12,
    ]
    assert response.family == "openai" and response.raw == json.dumps(body).encode()


def test_parse_deepseek_reasoning_content_and_cache_hit_usage() -> None:
    body = completion(
        {"role": "assistant", "content": "42", "reasoning_content": "Think step by step."},
        finish="length",
        usage={
            "prompt_tokens": 100,
            "completion_tokens": 30,
            "total_tokens": 130,
            "prompt_cache_hit_tokens": 64,
        },
    )
    response = parse(body)
    assert response.parts == [ThinkingPart(text="Think step by step."), TextPart(text="42")]
    assert response.finish_reason == "length"
    assert response.usage.cached_input_tokens == 64 and response.usage.input_tokens == 100


def test_parse_refusal_becomes_text_with_content_filter_finish() -> None:
    body = completion({"role": "assistant", "content": None, "refusal": "I can't help with that."})
    specs.check_response("openai", "POST", CHAT_URL, 200, body)
    response = parse(body)
    assert response.parts == [TextPart(text="I can't help with that.")]
    assert response.finish_reason == "content_filter"


def test_parse_minimal_body_of_a_local_server() -> None:
    body = {"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "eos"}]}
    response = parse(body, VLLM)
    assert response.model == "Qwen/Qwen2.5-7B-Instruct" and response.id == ""
    assert response.parts == [TextPart(text="hi")] and response.finish_reason == "stop"
    assert response.usage.input_tokens == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"choices": []}',
        b'{"choices": [{"message": 3}]}',
        b'{"object": "chat.completion"}',
    ],
)
def test_parse_rejects_bodies_of_the_wrong_shape(raw: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        ADAPTER.parse_chat(UpstreamResponse(status=200, headers={}, body=raw), GPT)
    assert info.value.kind == "invalid_response" and info.value.retryable


# --- stream parser ---------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp_x",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    data.update(extra)
    specs.check_schema("openai", "CreateChatCompletionStreamResponse", data)
    return data


def sse(*payloads: dict[str, Any] | str) -> bytes:
    out = b""
    for p in payloads:
        data = p if isinstance(p, str) else json.dumps(p)
        out += f"data: {data}\n\n".encode()
    return out


def run_stream(raw: bytes, split: int = 7) -> list[StreamEvent]:
    parser = ADAPTER.stream_parser(ChatRequest(model="m", messages=[]), GPT)
    decoder = SSEDecoder()
    events: list[StreamEvent] = []
    for i in range(0, len(raw), split):  # arbitrary network chunking
        for frame in decoder.feed(raw[i : i + split]):
            events.extend(parser.feed(frame))
    for frame in decoder.flush():
        events.extend(parser.feed(frame))
    events.extend(parser.close())
    return events


USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 9,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def test_stream_of_text_with_usage_chunk_and_done() -> None:
    raw = sse(
        chunk({"role": "assistant", "content": "", "refusal": None}, usage=None),
        chunk({"content": "Hel"}, usage=None),
        chunk({"content": "lo"}, usage=None),
        chunk({}, "stop", usage=None),
        chunk(None, usage=USAGE),
        "[DONE]",
    )
    events = run_stream(raw)
    assert events == [
        MessageStart(id="chatcmpl-s1", model="gpt-4o-mini", created=1700000000),
        TextDelta(text="Hel"),
        TextDelta(text="lo"),
        Finish(reason="stop"),
        UsageUpdate(usage=events[-1].usage),  # type: ignore[union-attr]
    ]
    assert isinstance(events[-1], UsageUpdate)
    assert (events[-1].usage.input_tokens, events[-1].usage.output_tokens) == (20, 9)


def test_stream_of_parallel_tool_calls_accumulates_into_the_final_calls() -> None:
    raw = sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [call("call_a", "get_weather", "", index=0)]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        chunk({"tool_calls": [call("call_b", "get_time", "{}", index=1)]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    )
    events = run_stream(raw, split=5)
    assert ToolCallDelta(index=0, id="call_a", name="get_weather", arguments="") in events
    acc = Accumulator()
    for e in events:
        acc.add(e)
    final = acc.response()
    assert final.parts == [
        ToolCallPart(id="call_a", name="get_weather", arguments='{"city":"Oslo"}'),
        ToolCallPart(id="call_b", name="get_time", arguments="{}"),
    ]
    assert final.finish_reason == "tool_calls" and final.id == "chatcmpl-s1"


def test_stream_reasoning_content_becomes_thinking() -> None:
    raw = sse(
        {"id": "d1", "object": "chat.completion.chunk", "created": 1, "model": "deepseek-reasoner",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": None, "reasoning_content": "Hmm"}, "finish_reason": None}]},
        {"id": "d1", "object": "chat.completion.chunk", "created": 1, "model": "deepseek-reasoner",
         "choices": [{"index": 0, "delta": {"content": "Yes"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12, "prompt_cache_hit_tokens": 3}},
    )  # fmt: skip
    events = run_stream(raw)  # no [DONE], but the finish_reason ended it properly
    assert events[1:4] == [ThinkingDelta(text="Hmm"), TextDelta(text="Yes"), Finish(reason="stop")]
    assert isinstance(events[4], UsageUpdate) and events[4].usage.cached_input_tokens == 3


def test_a_streamed_refusal_is_text_that_finishes_as_content_filter() -> None:
    raw = sse(
        chunk({"role": "assistant", "content": None, "refusal": ""}),
        chunk({"refusal": "I can't help with that."}),
        chunk({}, "stop"),
        "[DONE]",
    )
    events = run_stream(raw)
    assert events[1:] == [TextDelta(text="I can't help with that."), Finish(reason="content_filter")]


def test_azure_anonymous_filter_chunk_does_not_start_the_message() -> None:
    azure_filter = dict(choices=[], created=0, id="", model="", object="", prompt_filter_results=[])
    raw = sse(azure_filter, chunk({"role": "assistant", "content": "ok"}), chunk({}, "stop"), "[DONE]")
    events = run_stream(raw)
    assert events == [
        MessageStart(id="chatcmpl-s1", model="gpt-4o-mini", created=1700000000),
        TextDelta(text="ok"),
        Finish(reason="stop"),
    ]


def test_groq_usage_in_x_groq_is_reported() -> None:
    groq_usage = {"usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}}
    raw = sse(chunk({"content": "x"}), chunk({}, "stop", x_groq=groq_usage), "[DONE]")
    usage = [e for e in run_stream(raw) if isinstance(e, UsageUpdate)]
    assert [(u.usage.input_tokens, u.usage.output_tokens) for u in usage] == [(11, 2)]


def test_a_cut_stream_is_an_invalid_response() -> None:
    raw = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "partial"}))
    with pytest.raises(ProviderError) as info:
        run_stream(raw)
    assert info.value.kind == "invalid_response"
    assert info.value.message == "upstream stream ended before completion"


def test_an_error_payload_mid_stream_raises_the_classified_error() -> None:
    error = openai_error("Rate limit reached for gpt-4o", "requests", "rate_limit_exceeded")
    raw = sse(chunk({"content": "a"}), error)
    with pytest.raises(ProviderError) as info:
        run_stream(raw)
    assert info.value.kind == "rate_limited" and info.value.message == "Rate limit reached for gpt-4o"
    assert info.value.code == "rate_limit_exceeded"


def test_an_openrouter_style_error_with_numeric_code_mid_stream() -> None:
    raw = sse(chunk({"content": "a"}), {"error": {"code": 502, "message": "Provider returned error"}})
    with pytest.raises(ProviderError) as info:
        run_stream(raw)
    assert info.value.kind == "server_error" and info.value.retryable


def test_undecodable_stream_data_is_an_invalid_response() -> None:
    with pytest.raises(ProviderError) as info:
        run_stream(b"data: {not json\n\n")
    assert info.value.kind == "invalid_response"


# --- classify --------------------------------------------------------------------------------


def classify(status: int, body: Any, headers: dict[str, str] | None = None) -> ProviderError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ADAPTER.classify(UpstreamResponse(status=status, headers=headers or {}, body=raw), GPT)


def openai_error(
    message: str, etype: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def test_rate_limit_with_retry_after_seconds() -> None:
    err = classify(
        429, openai_error("Rate limit reached", "requests", "rate_limit_exceeded"), {"retry-after": "7"}
    )
    assert (err.kind, err.status, err.retry_after, err.retryable) == ("rate_limited", 429, 7.0, True)
    assert err.upstream_status == 429 and err.deployment == "gpt"


def test_rate_limit_retry_after_ms_wins_and_http_date_is_understood() -> None:
    assert classify(429, b"", {"retry-after-ms": "1500", "retry-after": "9"}).retry_after == 1.5
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    retry = classify(429, b"", {"retry-after": when}).retry_after
    assert retry is not None and 25 <= retry <= 31


def test_unreadable_retry_after_values_are_ignored() -> None:
    headers = {"retry-after-ms": "soon", "retry-after": "Someday, maybe", "x-ratelimit-reset-tokens": "2s"}
    assert classify(429, b"", headers).retry_after == 2.0
    assert classify(503, b"", {"retry-after": "later"}).retry_after is None
    assert classify(503, b"", {"retry-after": "inf", "retry-after-ms": "nan"}).retry_after is None


def test_rate_limit_reset_headers_pick_the_exhausted_limit() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert classify(429, openai_error("TPM", "tokens"), headers).retry_after == 360.0
    assert classify(429, b"", {"x-ratelimit-reset-requests": "1m30.5s"}).retry_after == 90.5
    assert classify(429, b"", {"x-ratelimit-reset-requests": "soon"}).retry_after is None


def test_context_length_by_code_and_by_message() -> None:
    by_code = classify(
        400,
        openai_error("This model's maximum context length is 128000 tokens.", code="context_length_exceeded"),
    )
    assert by_code.kind == "context_too_long" and not by_code.retryable
    vllm = {
        "object": "error",
        "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens",
        "type": "BadRequestError",
        "code": 400,
    }
    assert classify(400, vllm).kind == "context_too_long"


def test_content_filter_codes() -> None:
    azure = {
        "error": {
            "message": "The response was filtered",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
        }
    }
    err = classify(400, azure)
    assert err.kind == "content_filtered" and err.param == "prompt"
    assert classify(400, openai_error("flagged", code="content_policy_violation")).kind == "content_filtered"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "bad_request"),
        (401, "authentication"),
        (403, "permission"),
        (404, "not_found"),
        (408, "timeout"),
        (413, "request_too_large"),
        (422, "unprocessable"),
        (500, "server_error"),
        (502, "server_error"),
        (503, "overloaded"),
        (504, "timeout"),
        (529, "overloaded"),
        (418, "bad_request"),
        (599, "server_error"),
    ],
)
def test_status_classification(status: int, kind: str) -> None:
    err = classify(status, openai_error("upstream said no"))
    assert err.kind == kind and err.message == "upstream said no"


@pytest.mark.parametrize("body", [b"<html>Bad Gateway</html>", b"", b"[1, 2]", b'{"error": 5}', b"null"])
def test_garbage_bodies_still_classify_by_status(body: bytes) -> None:
    err = classify(502, body)
    assert err.kind == "server_error" and err.message == "upstream answered HTTP 502 without an error message"


def test_ollama_string_errors_and_long_messages_are_truncated() -> None:
    assert classify(404, {"error": "model 'llama9' not found"}).message == "model 'llama9' not found"
    err = classify(400, openai_error("x" * 5000))
    assert len(err.message) <= 501 and err.message.startswith("xxx")


def test_error_messages_never_carry_the_request_key() -> None:
    err = classify(401, openai_error("Incorrect API key provided: sk-test-***123.", code="invalid_api_key"))
    assert KEY not in err.message and err.kind == "authentication" and err.code == "invalid_api_key"


# --- embeddings ------------------------------------------------------------------------------

EMB = CFG.deployments["emb"]


def test_build_embeddings_translated_and_passthrough() -> None:
    built = ADAPTER.build_embeddings(
        EmbeddingRequest(model="e", inputs=["a", "b"], dimensions=256, encoding_format="base64", user="u"),
        EMB,
    )
    assert built.url == "https://api.openai.com/v1/embeddings"
    assert body_of(built) == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "base64",
        "dimensions": 256,
        "user": "u",
    }
    specs.check_request("openai", "POST", built.url, built.body, built.headers)
    raw = {"model": "e", "input": [[1212, 318]], "encoding_format": "float"}
    passthrough = ADAPTER.build_embeddings(EmbeddingRequest(model="e", inputs=[], raw=raw), EMB)
    assert body_of(passthrough) == {**raw, "model": "text-embedding-3-small"}
    specs.check_request("openai", "POST", passthrough.url, passthrough.body, passthrough.headers)
    azure = ADAPTER.build_embeddings(EmbeddingRequest(model="e", inputs=["a"]), CFG.deployments["az-emb"])
    assert (
        azure.url
        == "https://res.openai.azure.com/openai/deployments/emb-small/embeddings?api-version=2024-10-21"
    )
    assert azure.headers["api-key"] == "az-secret-key"


def test_parse_embeddings_float_and_base64() -> None:
    floats = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -1.5]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    specs.check_response("openai", "POST", "https://api.openai.com/v1/embeddings", 200, floats)
    parsed = ADAPTER.parse_embeddings(
        UpstreamResponse(status=200, headers={}, body=json.dumps(floats).encode()), EMB
    )
    assert [(e.index, e.vector) for e in parsed.data] == [(0, [0.25, -1.5])]
    assert parsed.usage.input_tokens == 4 and parsed.family == "openai"
    packed = base64.b64encode(struct.pack("<3f", 0.5, -2.0, 1.25)).decode()
    b64 = {**floats, "data": [{"object": "embedding", "index": 1, "embedding": packed}]}
    parsed = ADAPTER.parse_embeddings(
        UpstreamResponse(status=200, headers={}, body=msgspec.json.encode(b64)), EMB
    )
    assert parsed.data[0].index == 1 and parsed.data[0].vector == [0.5, -2.0, 1.25]


@pytest.mark.parametrize(
    "raw", [b"{}", b'{"data": [{"embedding": "!!!"}]}', b'{"data": [{"embedding": "AAA="}]}']
)
def test_parse_embeddings_rejects_bad_bodies(raw: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        ADAPTER.parse_embeddings(UpstreamResponse(status=200, headers={}, body=raw), EMB)
    assert info.value.kind == "invalid_response"
