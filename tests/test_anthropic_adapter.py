"""The Anthropic upstream adapter: request building, response and stream parsing, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from switchpoint import config
from switchpoint.api.anthropic import AnthropicDialect
from switchpoint.canonical import (
    Accumulator,
    ChatRequest,
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
from switchpoint.providers.anthropic import AnthropicAdapter, retry_after
from switchpoint.providers.base import UpstreamResponse
from switchpoint.streaming import SSEDecoder

import specs

API_KEY = "sk-ant-api03-secret-value-123"
CONFIG = config.parse(
    {
        "providers": {
            "anthropic": {
                "family": "anthropic",
                "base_url": "https://api.anthropic.com",
                "api_key": "env:ANTHROPIC_API_KEY",
                "headers": {"anthropic-beta": "context-1m-2025-08-07", "x-team": "env:TEAM_TOKEN"},
            },
            "proxy": {"family": "anthropic", "base_url": "http://127.0.0.1:9000/v1"},
        },
        "deployments": {
            "sonnet": {"provider": "anthropic", "model": "claude-sonnet-4-5", "max_output_tokens": 8192},
            "local": {"provider": "proxy", "model": "claude-haiku-4-5", "max_output_tokens": 1000},
        },
    },
    env={"ANTHROPIC_API_KEY": API_KEY, "TEAM_TOKEN": "team-secret"},
)
DEP = CONFIG.deployments["sonnet"]
LOCAL = CONFIG.deployments["local"]
ADAPTER = AnthropicAdapter()
MESSAGES_URL = "https://api.anthropic.com/v1/messages"


def build(request: ChatRequest, deployment: config.Deployment = DEP) -> dict[str, Any]:
    up = ADAPTER.build_chat(request, deployment)
    specs.check_request("anthropic", "POST", up.url, up.body, up.headers)
    body: dict[str, Any] = json.loads(up.body)
    return body


def user(text: str) -> Message:
    return Message(role="user", parts=[TextPart(text=text)])


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="claude", messages=list(messages), **kw)


# --- build_chat: translation from canonical --------------------------------------------------


def test_url_headers_and_defaults() -> None:
    r = req(user("hi"), passthrough_headers={"anthropic-beta": "files-api-2025-04-14", "x-api-key": "stolen"})
    up = ADAPTER.build_chat(r, DEP)
    assert up.method == "POST" and up.url == MESSAGES_URL and up.stream is False
    assert up.headers["x-api-key"] == API_KEY
    assert up.headers["anthropic-version"] == "2023-06-01"
    assert up.headers["content-type"] == "application/json"
    assert up.headers["x-team"] == "team-secret"
    assert up.headers["anthropic-beta"] == "context-1m-2025-08-07,files-api-2025-04-14"
    body = build(r)
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 8192,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


def test_base_url_with_v1_and_no_key() -> None:
    up = ADAPTER.build_chat(req(user("hi"), passthrough_headers={"openai-beta": "x"}), LOCAL)
    assert up.url == "http://127.0.0.1:9000/v1/messages"
    assert "x-api-key" not in up.headers and "openai-beta" not in up.headers


def test_system_developer_and_role_merging() -> None:
    r = req(
        Message(role="system", parts=[TextPart(text="You are terse.")]),
        user("first"),
        user("second"),
        Message(role="developer", parts=[TextPart(text="Answer in French.")]),
        Message(role="assistant", parts=[TextPart(text="D'accord.")]),
        Message(role="assistant", parts=[TextPart(text=""), TextPart(text="Oui.")]),
        user("third"),
        max_tokens=100,
        stream=True,
    )
    body = build(r)
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "first"},
        {"type": "text", "text": "second"},
    ]
    assert [b["text"] for b in body["messages"][1]["content"]] == ["D'accord.", "Oui."]
    assert body["max_tokens"] == 100 and body["stream"] is True
    assert ADAPTER.build_chat(r, DEP).stream is True


def test_system_with_cache_control_becomes_blocks() -> None:
    cache = {"type": "ephemeral"}
    r = req(
        Message(
            role="system", parts=[TextPart(text="Long rules", extra={"cache_control": cache, "vendor_x": 1})]
        ),
        Message(role="system", parts=[TextPart(text="More")]),
        user("hi"),
    )
    body = build(r)
    assert body["system"] == [
        {"type": "text", "text": "Long rules", "cache_control": cache},
        {"type": "text", "text": "More"},
    ]


def test_tool_round_trip_from_openai_shape() -> None:
    weather = Tool(
        name="get_weather",
        description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        strict=True,
    )
    no_schema_type = Tool(name="now", parameters={"properties": {}})
    r = req(
        user("Weather in Paris and Rome?"),
        Message(
            role="assistant",
            parts=[
                TextPart(text="Checking."),
                ToolCallPart(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
                ToolCallPart(id="call.2", name="get_weather", arguments=""),
            ],
        ),
        user("also hurry"),
        Message(role="tool", parts=[ToolResultPart(tool_call_id="call_1", content=[TextPart(text="18C")])]),
        Message(role="tool", parts=[ToolResultPart(tool_call_id="call.2", content=[], is_error=True)]),
        tools=[weather, no_schema_type],
        tool_choice=ToolChoice(mode="tool", name="get_weather"),
        parallel_tool_calls=False,
    )
    body = build(r)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
        {"name": "now", "input_schema": {"properties": {}, "type": "object"}},
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    assistant, results = body["messages"][1], body["messages"][2]
    assert assistant["content"][1] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert assistant["content"][2]["id"] == "call_2" and assistant["content"][2]["input"] == {}
    # tool results come first in the user turn, text after them
    assert [b["type"] for b in results["content"]] == ["tool_result", "tool_result", "text"]
    assert results["content"][0] == {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"}
    assert results["content"][1] == {"type": "tool_result", "tool_use_id": "call_2", "is_error": True}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (ToolChoice(mode="auto"), None, {"type": "auto"}),
        (ToolChoice(mode="required"), False, {"type": "any", "disable_parallel_tool_use": True}),
        (ToolChoice(mode="none"), False, {"type": "none"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice(
    choice: ToolChoice | None, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    tool = Tool(name="f", parameters={"type": "object", "properties": {}})
    body = build(req(user("x"), tools=[tool], tool_choice=choice, parallel_tool_calls=parallel))
    assert body.get("tool_choice") == expected


def test_tool_choice_without_tools_is_left_out() -> None:
    assert "tool_choice" not in build(req(user("x"), tool_choice=ToolChoice(mode="required")))


def test_tool_result_with_image_uses_blocks() -> None:
    result = ToolResultPart(
        tool_call_id="toolu_1",
        content=[TextPart(text="chart:"), ImagePart(data="iVBORw0KGgo=", media_type="image/png")],
    )
    r = req(
        user("plot it"),
        Message(role="assistant", parts=[ToolCallPart(id="toolu_1", name="plot", arguments="{}")]),
        Message(role="tool", parts=[result]),
    )
    body = build(r)
    assert body["messages"][2]["content"][0]["content"] == [
        {"type": "text", "text": "chart:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    ]


@pytest.mark.parametrize("arguments", ["[1, 2]", "not json", '"text"'])
def test_tool_arguments_must_be_an_object(arguments: str) -> None:
    r = req(user("x"), Message(role="assistant", parts=[ToolCallPart(id="c", name="f", arguments=arguments)]))
    with pytest.raises(ProviderError) as exc:
        ADAPTER.build_chat(r, DEP)
    assert exc.value.kind == "bad_request" and exc.value.status == 400
    assert "not a JSON object" in exc.value.message and "'c'" in exc.value.message


def test_images() -> None:
    r = req(
        Message(
            role="user",
            parts=[
                TextPart(text="compare"),
                ImagePart(data="R0lGODlhAQABAAAAACw=", media_type="image/gif"),
                ImagePart(url="https://example.com/cat.jpg", detail="high"),
                ImagePart(url="data:image/webp;base64,UklGRg=="),
            ],
        )
    )
    content = build(r)["messages"][0]["content"]
    assert content[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGODlhAQABAAAAACw="},
    }
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert content[3] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="},
    }


def test_thinking_parts_only_when_replayable() -> None:
    r = req(
        user("solve"),
        Message(
            role="assistant",
            parts=[
                ThinkingPart(text="from another vendor"),
                ThinkingPart(text="signed", signature="sig=="),
                ThinkingPart(redacted="opaque"),
                TextPart(text="42"),
            ],
        ),
        user("why?"),
    )
    content = build(r)["messages"][1]["content"]
    assert content == [
        {"type": "thinking", "thinking": "signed", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "42"},
    ]


@pytest.mark.parametrize(
    ("thinking", "max_tokens", "expected"),
    [
        (Thinking(budget_tokens=2000), 4000, {"type": "enabled", "budget_tokens": 2000}),
        (Thinking(budget_tokens=500), 4000, {"type": "enabled", "budget_tokens": 1024}),
        (Thinking(budget_tokens=9000), 4000, {"type": "enabled", "budget_tokens": 3999}),
        (Thinking(effort="low"), None, {"type": "enabled", "budget_tokens": 1024}),
        (Thinking(effort="medium"), None, {"type": "enabled", "budget_tokens": 4096}),
        (Thinking(effort="high"), None, {"type": "enabled", "budget_tokens": 8191}),
        (Thinking(effort="high"), 20000, {"type": "enabled", "budget_tokens": 16384}),
        (Thinking(), None, {"type": "enabled", "budget_tokens": 4096}),
        (Thinking(effort="minimal"), None, None),
        (Thinking(effort="low"), 1000, None),
        (Thinking(enabled=False), None, {"type": "disabled"}),
    ],
)
def test_thinking_config(thinking: Thinking, max_tokens: int | None, expected: dict[str, Any] | None) -> None:
    body = build(req(user("x"), thinking=thinking, max_tokens=max_tokens))
    assert body.get("thinking") == expected


def test_sampling_with_and_without_thinking() -> None:
    plain = build(req(user("x"), temperature=1.7, top_p=0.5, top_k=40, stop=["END"], user="u-1", seed=7))
    assert plain["temperature"] == 1.0 and plain["top_p"] == 0.5 and plain["top_k"] == 40
    assert plain["stop_sequences"] == ["END"] and plain["metadata"] == {"user_id": "u-1"}
    assert "seed" not in plain
    thinking = build(
        req(user("x"), temperature=0.2, top_p=0.5, top_k=40, thinking=Thinking(budget_tokens=2048))
    )
    assert not {"temperature", "top_p", "top_k"} & thinking.keys()
    allowed = build(req(user("x"), temperature=1.0, top_p=0.97, thinking=Thinking(budget_tokens=2048)))
    assert allowed["temperature"] == 1.0 and allowed["top_p"] == 0.97


def test_forced_tool_choice_turns_thinking_off() -> None:
    tool = Tool(name="extract", parameters={"type": "object", "properties": {}})
    forced = build(
        req(
            user("x"),
            tools=[tool],
            tool_choice=ToolChoice(mode="tool", name="extract"),
            thinking=Thinking(budget_tokens=2048),
            temperature=0.3,
        )
    )
    assert "thinking" not in forced and forced["temperature"] == 0.3
    free = build(
        req(
            user("x"),
            tools=[tool],
            tool_choice=ToolChoice(mode="auto"),
            thinking=Thinking(budget_tokens=2048),
        )
    )
    assert free["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_response_formats() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    body = build(req(user("x"), response_format=ResponseFormat(type="json_schema", schema=schema, name="n")))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "system" not in body
    obj = build(
        req(
            Message(role="system", parts=[TextPart(text="Be nice.")]),
            user("x"),
            response_format=ResponseFormat(type="json_object"),
        )
    )
    assert obj["system"].startswith("Be nice.\n\n") and "JSON" in obj["system"]
    assert "output_config" not in obj


def test_only_system_messages_is_a_bad_request() -> None:
    with pytest.raises(ProviderError) as exc:
        ADAPTER.build_chat(req(Message(role="system", parts=[TextPart(text="s")])), DEP)
    assert exc.value.kind == "bad_request"


def test_openai_extras_are_not_sent_but_cache_control_is() -> None:
    r = req(
        Message(
            role="user",
            parts=[TextPart(text="hi", extra={"cache_control": {"type": "ephemeral"}, "annotations": []})],
        )
    )
    assert build(r)["messages"][0]["content"] == [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    ]


# --- build_chat: passthrough -----------------------------------------------------------------


ANTHROPIC_BODY: dict[str, Any] = {
    "model": "sonnet",
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "Rules", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "The grass is green."},
                    "citations": {"enabled": True},
                },
                {"type": "text", "text": "What color is the grass?", "cache_control": {"type": "ephemeral"}},
            ],
        }
    ],
    "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
    "service_tier": "auto",
    "stream": False,
}


def test_passthrough_keeps_the_client_body() -> None:
    decoded = AnthropicDialect().decode_chat(
        json.dumps(ANTHROPIC_BODY).encode(), {"anthropic-beta": "x-2025"}
    )
    body = build(decoded)
    expected = dict(ANTHROPIC_BODY, model="claude-sonnet-4-5")
    del expected["stream"]
    assert body == expected
    up = ADAPTER.build_chat(decoded, DEP)
    assert up.headers["anthropic-beta"] == "context-1m-2025-08-07,x-2025"
    streamed = msgspec.structs.replace(decoded, stream=True)
    assert build(streamed)["stream"] is True


def test_passthrough_keeps_unknown_future_fields() -> None:
    raw = {**ANTHROPIC_BODY, "future_knob": {"a": 1}}
    decoded = AnthropicDialect().decode_chat(json.dumps(raw).encode(), {})
    up = ADAPTER.build_chat(decoded, DEP)
    body = json.loads(up.body)
    assert body["future_knob"] == {"a": 1} and body["model"] == "claude-sonnet-4-5"
    del body["future_knob"]
    specs.check_request("anthropic", "POST", up.url, body, up.headers)


# --- parse_chat ------------------------------------------------------------------------------


RESPONSE: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAh=="},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
        {"type": "text", "text": "Let me check.", "citations": None},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "celsius"},
            "caller": {"type": "direct"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "stop_details": None,
    "container": None,
    "usage": {
        "input_tokens": 472,
        "output_tokens": 89,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "cache_creation": None,
        "inference_geo": None,
        "server_tool_use": None,
        "service_tier": "standard",
    },
}


def parse(body: dict[str, Any]) -> Any:
    raw = json.dumps(body).encode()
    specs.check_response("anthropic", "POST", MESSAGES_URL, 200, raw)
    return ADAPTER.parse_chat(UpstreamResponse(status=200, headers={}, body=raw), DEP), raw


def test_parse_chat() -> None:
    resp, raw = parse(RESPONSE)
    assert resp.id == "msg_01XFDUDYJgAACzvnptvVoYEL" and resp.model == "claude-sonnet-4-5-20250929"
    assert resp.family == "anthropic" and resp.raw == raw
    assert resp.parts == [
        ThinkingPart(text="The user wants weather.", signature="EqQBCgIYAh=="),
        ThinkingPart(redacted="EmwKAhgBEgy3va3pzix/LafPsn4a"),
        TextPart(text="Let me check."),
        ToolCallPart(
            id="toolu_01A09q90qw90lq917835lq9",
            name="get_weather",
            arguments='{"location":"San Francisco, CA","unit":"celsius"}',
        ),
    ]
    assert resp.finish_reason == "tool_calls"
    u = resp.usage
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens) == (
        2572,
        2000,
        100,
        89,
    )


@pytest.mark.parametrize(
    ("stop_reason", "stop_sequence", "finish"),
    [
        ("end_turn", None, "stop"),
        ("max_tokens", None, "length"),
        ("stop_sequence", "###", "stop_sequence"),
        ("refusal", None, "content_filter"),
        ("pause_turn", None, "pause"),
    ],
)
def test_parse_stop_reasons(stop_reason: str, stop_sequence: str | None, finish: str) -> None:
    body = {
        **RESPONSE,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "content": [{"type": "text", "text": "ok", "citations": None}],
    }
    resp, _ = parse(body)
    assert resp.finish_reason == finish and resp.stop_sequence == stop_sequence


def test_parse_keeps_citations_and_skips_server_blocks() -> None:
    citation = {
        "type": "char_location",
        "cited_text": "green",
        "document_index": 0,
        "document_title": None,
        "start_char_index": 0,
        "end_char_index": 5,
        "file_id": None,
    }
    body = {
        **RESPONSE,
        "stop_reason": "end_turn",
        "content": [
            {
                "type": "server_tool_use",
                "id": "srvtoolu_01",
                "name": "web_search",
                "input": {"query": "x"},
                "caller": {"type": "direct"},
            },
            {"type": "text", "text": "Green.", "citations": [citation]},
        ],
    }
    resp, _ = parse(body)
    assert resp.parts == [TextPart(text="Green.", extra={"citations": [citation]})]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"type": "message"}',
        b'{"id": "x", "model": "m", "content": "text", "type": "message"}',
        b'{"id":"x","model":"m","content":[],"type":"completion"}',
    ],
)
def test_parse_bad_shapes(body: bytes) -> None:
    with pytest.raises(ProviderError) as exc:
        ADAPTER.parse_chat(UpstreamResponse(status=200, headers={}, body=body), DEP)
    assert exc.value.kind == "invalid_response" and exc.value.retryable


# --- stream parser ---------------------------------------------------------------------------


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def run_stream(data: bytes, *, chunk: int = 7, close: bool = True) -> list[StreamEvent]:
    parser = ADAPTER.stream_parser(req(user("x")), DEP)
    decoder = SSEDecoder()
    out: list[StreamEvent] = []
    for i in range(0, len(data), chunk):
        for frame in decoder.feed(data[i : i + chunk]):
            out.extend(parser.feed(frame))
    for frame in decoder.flush():
        out.extend(parser.feed(frame))
    if close:
        out.extend(parser.close())
    return out


START = {
    "type": "message_start",
    "message": {
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 472,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1000,
            "output_tokens": 2,
        },
    },
}


def delta(index: int, **d: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": d}


def start(index: int, **block: Any) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(reason: str, usage: dict[str, int], sequence: str | None = None) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": sequence},
        "usage": usage,
    }


TOOL_STREAM = sse(
    START,
    start(0, type="thinking", thinking="", signature=""),
    {"type": "ping"},
    delta(0, type="thinking_delta", thinking="Need the "),
    delta(0, type="thinking_delta", thinking="weather."),
    delta(0, type="signature_delta", signature="EqQBCgIYAhIM"),
    stop(0),
    start(1, type="text", text=""),
    delta(1, type="text_delta", text="Okay, "),
    delta(1, type="text_delta", text="checking."),
    stop(1),
    start(2, type="server_tool_use", id="srvtoolu_1", name="web_search", input={}),
    delta(2, type="input_json_delta", partial_json='{"query": "x"}'),
    stop(2),
    start(3, type="tool_use", id="toolu_A", name="get_weather", input={}),
    delta(3, type="input_json_delta", partial_json=""),
    delta(3, type="input_json_delta", partial_json='{"location": '),
    delta(3, type="input_json_delta", partial_json='"Paris"}'),
    stop(3),
    start(4, type="tool_use", id="toolu_B", name="get_time", input={}),
    delta(4, type="input_json_delta", partial_json="{}"),
    stop(4),
    message_delta("tool_use", {"output_tokens": 89}),
    {"type": "message_stop"},
)


def test_stream_with_thinking_text_and_tools() -> None:
    events = run_stream(TOOL_STREAM)
    first = events[0]
    assert isinstance(first, MessageStart) and first.created > 0
    assert (first.id, first.model) == ("msg_014p7gG3wDgGV9EUtLvnow3U", "claude-sonnet-4-5-20250929")
    assert ThinkingDelta(signature="EqQBCgIYAhIM") in events
    assert ToolCallDelta(index=0, id="toolu_A", name="get_weather", arguments="") in events
    assert ToolCallDelta(index=1, id="toolu_B", name="get_time", arguments="") in events
    assert not any(isinstance(e, ToolCallDelta) and "query" in e.arguments for e in events)
    assert Finish(reason="tool_calls") in events
    acc = Accumulator()
    for e in events:
        acc.add(e)
    resp = acc.response()
    assert resp.parts == [
        ThinkingPart(text="Need the weather.", signature="EqQBCgIYAhIM"),
        TextPart(text="Okay, checking."),
        ToolCallPart(id="toolu_A", name="get_weather", arguments='{"location": "Paris"}'),
        ToolCallPart(id="toolu_B", name="get_time", arguments="{}"),
    ]
    assert resp.finish_reason == "tool_calls"
    assert (resp.usage.input_tokens, resp.usage.cached_input_tokens, resp.usage.output_tokens) == (
        1472,
        1000,
        89,
    )


def test_stream_message_delta_with_cumulative_input_usage() -> None:
    usage = {
        "input_tokens": 500,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 1000,
        "output_tokens": 3,
    }
    data = sse(
        START,
        start(0, type="text", text="Hi"),
        stop(0),
        start(1, type="redacted_thinking", data="opaque"),
        stop(1),
        message_delta("stop_sequence", usage, "END"),
        {"type": "message_stop"},
    )
    events = run_stream(data, chunk=1000)
    assert TextDelta(text="Hi") in events and ThinkingDelta(redacted="opaque") in events
    assert Finish(reason="stop_sequence", stop_sequence="END") in events
    last = [e.usage for e in events if isinstance(e, UsageUpdate)][-1]
    assert (last.input_tokens, last.cache_write_tokens, last.output_tokens) == (1520, 20, 3)


@pytest.mark.parametrize(
    ("etype", "message", "kind", "retryable"),
    [
        ("overloaded_error", "Overloaded", "overloaded", True),
        (
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            "context_too_long",
            False,
        ),
        ("api_error", "Internal server error", "server_error", True),
    ],
)
def test_stream_error_event_raises_classified_error(
    etype: str, message: str, kind: str, retryable: bool
) -> None:
    data = sse(START, {"type": "error", "error": {"type": etype, "message": message}})
    with pytest.raises(ProviderError) as exc:
        run_stream(data, close=False)
    assert (exc.value.kind, exc.value.retryable, exc.value.message) == (kind, retryable, message)
    assert exc.value.deployment == "sonnet"


def test_cut_stream_raises_on_close() -> None:
    data = sse(START, start(0, type="text", text=""), delta(0, type="text_delta", text="partial"))
    with pytest.raises(ProviderError) as exc:
        run_stream(data)
    assert exc.value.kind == "invalid_response" and "message_stop" in exc.value.message
    assert exc.value.deployment == "sonnet"


@pytest.mark.parametrize(
    "data",
    [
        b"event: message_start\ndata: {not json\n\n",
        b'data: {"type": "content_block_start", "index": 0}\n\n',
        b'data: {"no_type": 1}\n\n',
    ],
)
def test_undecodable_stream_frames(data: bytes) -> None:
    with pytest.raises(ProviderError) as exc:
        run_stream(data, close=False)
    assert exc.value.kind == "invalid_response"


def test_unknown_events_and_empty_data_are_ignored() -> None:
    data = (
        sse(START, {"type": "future_event", "x": 1}, {"type": "message_stop"})
        + b": keep-alive\n\nevent: ping\ndata:\n\n"
    )
    events = run_stream(data)
    assert [type(e) for e in events] == [MessageStart, UsageUpdate]


# --- classify --------------------------------------------------------------------------------


def classify(status: int, body: Any, headers: dict[str, str] | None = None) -> ProviderError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ADAPTER.classify(UpstreamResponse(status=status, headers=headers or {}, body=raw), DEP)


def err(etype: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": etype, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }


@pytest.mark.parametrize(
    ("status", "etype", "message", "kind", "retryable"),
    [
        (400, "invalid_request_error", "max_tokens: Field required", "bad_request", False),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 250000 tokens > 200000 maximum",
            "context_too_long",
            False,
        ),
        (
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
            "context_too_long",
            False,
        ),
        (401, "authentication_error", "invalid x-api-key", "authentication", False),
        (403, "permission_error", "Your API key does not have permission", "permission", False),
        (400, "billing_error", "Your credit balance is too low", "permission", False),
        (404, "not_found_error", "model: claude-9", "not_found", False),
        (413, "request_too_large", "Request exceeds the maximum size", "request_too_large", False),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            "rate_limited",
            True,
        ),
        (500, "api_error", "Internal server error", "server_error", True),
        (529, "overloaded_error", "Overloaded", "overloaded", True),
        (504, "api_error", "upstream timeout", "timeout", True),
        (504, "timeout_error", "Request timeout", "timeout", True),
    ],
)
def test_classify_error_types(status: int, etype: str, message: str, kind: str, retryable: bool) -> None:
    e = classify(status, err(etype, message))
    assert (e.kind, e.retryable, e.upstream_status, e.message, e.code) == (
        kind,
        retryable,
        status,
        message,
        etype,
    )
    assert e.deployment == "sonnet"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (529, "overloaded"),
        (503, "overloaded"),
        (504, "timeout"),
        (502, "server_error"),
        (429, "rate_limited"),
        (418, "bad_request"),
        (401, "authentication"),
    ],
)
def test_classify_garbage_bodies_by_status(status: int, kind: str) -> None:
    for body in (b"<html>Bad Gateway</html>", b"", b'{"error": "flat string"}', b"[1,2]"):
        e = classify(status, body)
        assert e.kind == kind and e.upstream_status == status
        assert str(status) in e.message and "<html>" not in e.message


def test_classify_never_leaks_keys_and_truncates() -> None:
    e = classify(401, err("authentication_error", f"invalid x-api-key {API_KEY} and sk-ant-other-key-999"))
    assert API_KEY not in e.message and "sk-ant-other-key-999" not in e.message
    long = classify(400, err("invalid_request_error", "x" * 5000))
    assert len(long.message) <= 500


def test_retry_after_header_forms() -> None:
    assert classify(429, err("rate_limit_error", "slow"), {"retry-after": "17"}).retry_after == 17.0
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    ts = now.timestamp()
    assert retry_after({"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}, now=ts) == 30.0
    reset = {
        "anthropic-ratelimit-requests-remaining": "10",
        "anthropic-ratelimit-requests-reset": (now + timedelta(seconds=5)).isoformat().replace("+00:00", "Z"),
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": (now + timedelta(seconds=42))
        .isoformat()
        .replace("+00:00", "Z"),
    }
    assert retry_after(reset, now=ts) == 42.0
    reset["anthropic-ratelimit-input-tokens-remaining"] = "5000"
    assert retry_after(reset, now=ts) == 5.0
    assert retry_after({"anthropic-ratelimit-tokens-reset": "garbage"}, now=ts) is None
    assert retry_after({}, now=ts) is None
