"""The Anthropic client dialect: decoding requests, encoding responses, streams and errors."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from switchpoint import config
from switchpoint.api.anthropic import EXTRA_KEY, AnthropicDialect
from switchpoint.canonical import (
    Accumulator,
    ChatRequest,
    ChatResponse,
    Finish,
    ImagePart,
    MessageStart,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallPart,
    ToolResultPart,
    Usage,
    UsageUpdate,
)
from switchpoint.errors import (
    AllCandidatesFailed,
    AuthenticationFailed,
    BadRequest,
    InternalError,
    ModelNotFound,
    PayloadTooLarge,
    PaymentRequired,
    PermissionDenied,
    ProviderError,
    RateLimited,
    SwitchpointError,
    Unprocessable,
)
from switchpoint.providers.anthropic import AnthropicAdapter, AnthropicStreamParser
from switchpoint.streaming import SSEDecoder, SSEFrame

import specs

DIALECT = AnthropicDialect()
URL = "https://api.anthropic.com/v1/messages"

FULL: dict[str, Any] = {
    "model": "smart",
    "max_tokens": 4096,
    "system": [{"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
                {"type": "redacted_thinking", "data": "b3BhcXVl"},
                {"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cats", "n": 2}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "before"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [
                        {"type": "text", "text": "found"},
                        {
                            "type": "search_result",
                            "source": "https://s",
                            "title": "T",
                            "content": [{"type": "text", "text": "x"}],
                        },
                    ],
                    "is_error": False,
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "text", "text": "after"},
            ],
        },
    ],
    "tools": [
        {
            "name": "lookup",
            "description": "Search",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
        {"type": "web_search_20250305", "name": "web_search"},
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "stop_sequences": ["END"],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 20,
    "metadata": {"user_id": "user-7"},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    "stream": True,
}


def decode(body: dict[str, Any], headers: dict[str, str] | None = None) -> ChatRequest:
    raw = json.dumps(body).encode()
    return DIALECT.decode_chat(raw, headers or {})


def test_full_request_is_spec_valid_and_decodes() -> None:
    specs.check_request("anthropic", "POST", URL, FULL, {"x-api-key": "k"})
    r = decode(FULL, {"Anthropic-Beta": "files-api-2025-04-14"})
    assert r.dialect == "anthropic" and r.raw == FULL and r.model == "smart" and r.max_tokens == 4096
    assert r.passthrough_headers == {"anthropic-beta": "files-api-2025-04-14"}
    assert [m.role for m in r.messages] == ["system", "user", "assistant", "user", "tool", "user"]
    system, first, assistant, before, tool, after = r.messages
    assert system.parts == [TextPart(text="You are helpful.", extra={"cache_control": {"type": "ephemeral"}})]
    assert first.parts == [
        TextPart(text="Look:"),
        ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
        ImagePart(url="https://example.com/a.jpg"),
    ]
    assert first.extra == {EXTRA_KEY: [[3, FULL["messages"][0]["content"][3]]]}
    assert assistant.parts == [
        ThinkingPart(text="hmm", signature="c2ln"),
        ThinkingPart(redacted="b3BhcXVl"),
        TextPart(text="Calling."),
        ToolCallPart(id="toolu_1", name="lookup", arguments='{"q":"cats","n":2}'),
    ]
    assert before.parts == [TextPart(text="before")] and after.parts == [TextPart(text="after")]
    result = tool.parts[0]
    assert isinstance(result, ToolResultPart)
    assert (
        result.tool_call_id == "toolu_1"
        and result.content == [TextPart(text="found")]
        and not result.is_error
    )
    assert result.extra is not None and result.extra["cache_control"] == {"type": "ephemeral"}
    assert result.extra[EXTRA_KEY][0][0] == 1 and result.extra[EXTRA_KEY][0][1]["type"] == "search_result"
    assert [t.name for t in r.tools or []] == ["lookup"]
    assert r.tool_choice is not None and r.tool_choice.mode == "auto" and r.parallel_tool_calls is False
    assert (r.stop, r.temperature, r.top_p, r.top_k, r.user, r.stream) == (
        ["END"],
        0.5,
        0.9,
        20,
        "user-7",
        True,
    )
    assert r.thinking is not None and r.thinking.budget_tokens == 2048 and r.thinking.enabled
    assert r.response_format is not None and r.response_format.type == "json_schema"


def test_minimal_and_string_forms() -> None:
    body = {
        "model": "m",
        "max_tokens": 1,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
    }
    specs.check_request("anthropic", "POST", URL, body)
    r = decode(body)
    assert [(m.role, m.text()) for m in r.messages] == [("system", "Be brief."), ("user", "hi")]
    assert r.stream is False and r.passthrough_headers is None and r.tools is None


@pytest.mark.parametrize(
    ("extra", "check"),
    [
        ({"thinking": {"type": "disabled"}}, lambda r: r.thinking.enabled is False),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
            lambda r: r.thinking.effort == "high" and r.thinking.budget_tokens is None,
        ),
        (
            {
                "tool_choice": {"type": "tool", "name": "f"},
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            },
            lambda r: (r.tool_choice.mode, r.tool_choice.name) == ("tool", "f"),
        ),
        (
            {"tool_choice": {"type": "none"}},
            lambda r: r.tool_choice.mode == "none" and r.parallel_tool_calls is None,
        ),
        ({"tool_choice": {"type": "any"}}, lambda r: r.tool_choice.mode == "required"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, lambda r: r.tools is None),
    ],
)
def test_optional_fields(extra: dict[str, Any], check: Any) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **extra}
    assert check(decode(body))


BASE = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def with_content(*blocks: Any) -> dict[str, Any]:
    return {**BASE, "messages": [{"role": "user", "content": list(blocks)}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({k: v for k, v in BASE.items() if k != "model"}, "model"),
        ({**BASE, "model": 5}, "model"),
        ({k: v for k, v in BASE.items() if k != "max_tokens"}, "max_tokens"),
        ({**BASE, "max_tokens": -1}, "max_tokens"),
        ({**BASE, "max_tokens": True}, "max_tokens"),
        ({**BASE, "max_tokens": "10"}, "max_tokens"),
        ({**BASE, "messages": []}, "messages"),
        ({**BASE, "messages": "hi"}, "messages"),
        ({**BASE, "messages": ["hi"]}, "messages.0"),
        ({**BASE, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({**BASE, "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        (with_content({"text": "no type"}), "messages.0.content.0.type"),
        (with_content({"type": "text", "text": 1}), "messages.0.content.0.text"),
        (
            with_content({"type": "image", "source": {"type": "file", "file_id": "f"}}),
            "messages.0.content.0.source.type",
        ),
        (
            with_content({"type": "image", "source": {"type": "base64", "media_type": "image/png"}}),
            "messages.0.content.0.source.data",
        ),
        (with_content({"type": "image", "source": {"type": "url"}}), "messages.0.content.0.source.url"),
        (with_content({"type": "image"}), "messages.0.content.0.source"),
        (
            with_content({"type": "tool_use", "id": "t", "name": "f", "input": "x"}),
            "messages.0.content.0.input",
        ),
        (with_content({"type": "tool_result"}), "messages.0.content.0.tool_use_id"),
        (
            with_content({"type": "tool_result", "tool_use_id": "t", "content": 3}),
            "messages.0.content.0.content",
        ),
        (
            with_content({"type": "tool_result", "tool_use_id": "t", "is_error": "no"}),
            "messages.0.content.0.is_error",
        ),
        (with_content({"type": "thinking", "signature": "s"}), "messages.0.content.0.thinking"),
        (with_content({"type": "redacted_thinking"}), "messages.0.content.0.data"),
        (
            {
                **BASE,
                "messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}],
            },
            "messages.0.content.0.type",
        ),
        ({**BASE, "system": [{"type": "image"}]}, "system.0.type"),
        ({**BASE, "system": 3}, "system"),
        ({**BASE, "tools": {"name": "f"}}, "tools"),
        ({**BASE, "tools": [{"name": "f"}]}, "tools.0.input_schema"),
        ({**BASE, "tools": [{"input_schema": {}}]}, "tools.0.name"),
        ({**BASE, "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({**BASE, "tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({**BASE, "thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens"),
        ({**BASE, "thinking": {"type": "on"}}, "thinking.type"),
        ({**BASE, "temperature": "hot"}, "temperature"),
        ({**BASE, "top_k": 1.5}, "top_k"),
        ({**BASE, "stop_sequences": "END"}, "stop_sequences"),
        ({**BASE, "metadata": {"user_id": 7}}, "metadata.user_id"),
        ({**BASE, "stream": "yes"}, "stream"),
        ({**BASE, "output_config": {"format": {"type": "regex"}}}, "output_config.format.type"),
    ],
)
def test_bad_bodies(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as exc:
        decode(body)
    assert exc.value.status == 400 and exc.value.param == param
    assert exc.value.message.startswith(param)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b""])
def test_bodies_that_are_not_objects(raw: bytes) -> None:
    with pytest.raises(BadRequest) as exc:
        DIALECT.decode_chat(raw, {})
    assert exc.value.status == 400 and exc.value.param is None


def test_count_tokens_does_not_need_max_tokens() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    specs.check_request("anthropic", "POST", "https://api.anthropic.com/v1/messages/count_tokens", body)
    assert DIALECT.decode_count_tokens(json.dumps(body).encode(), {}).max_tokens is None
    with pytest.raises(BadRequest):
        DIALECT.decode_chat(json.dumps(body).encode(), {})
    with pytest.raises(BadRequest) as exc:
        DIALECT.decode_count_tokens(json.dumps({**body, "max_tokens": -1}).encode(), {})
    assert exc.value.param == "max_tokens"


def test_canonical_round_trip_to_an_anthropic_upstream() -> None:
    """Without ``raw`` (e.g. a rewritten request), the adapter rebuilds the client's body."""
    dep = config.parse(
        {
            "providers": {"a": {"family": "anthropic", "base_url": "https://api.anthropic.com"}},
            "deployments": {"d": {"provider": "a", "model": "claude-sonnet-4-5"}},
        },
        env={},
    ).deployments["d"]
    decoded = msgspec.structs.replace(decode(FULL), raw=None)
    up = AnthropicAdapter().build_chat(decoded, dep)
    specs.check_request("anthropic", "POST", up.url, up.body, up.headers)
    body = json.loads(up.body)
    first, assistant, results = FULL["messages"]
    assert body["system"] == FULL["system"]
    assert body["messages"][:2] == [first, assistant]  # incl. the kept document block, in place
    # tool results move ahead of the turn's text, as the API requires
    result = {k: v for k, v in results["content"][1].items() if k != "is_error"}  # false is the default
    assert body["messages"][2]["content"] == [
        result,
        results["content"][0],
        results["content"][2],
    ]
    assert body["tools"] == FULL["tools"][:1]  # the server tool exists only in raw
    assert body["tool_choice"] == FULL["tool_choice"] and body["thinking"] == FULL["thinking"]
    assert body["output_config"] == FULL["output_config"] and body["stop_sequences"] == ["END"]
    assert body["metadata"] == FULL["metadata"] and body["stream"] is True


# --- encode_chat -----------------------------------------------------------------------------


def test_encode_passthrough_returns_upstream_bytes() -> None:
    raw = b'{"id":"msg_1","type":"message","untouched":true}'
    resp = ChatResponse(id="msg_1", model="m", parts=[], family="anthropic", raw=raw)
    assert DIALECT.encode_chat(resp, decode(BASE)) is raw


def test_encode_translated_response() -> None:
    resp = ChatResponse(
        id="chatcmpl-abc123",
        model="gpt-4.1",
        parts=[
            ThinkingPart(text="reasoning summary"),
            TextPart(text="Here you go."),
            ToolCallPart(id="call_9", name="lookup", arguments='{"q": "x"}'),
            ToolCallPart(id="call:bad", name="broken", arguments="{oops"),
        ],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=1200, cached_input_tokens=1000, output_tokens=50, reasoning_tokens=10),
        family="openai",
        raw=b"{}",
    )
    body = DIALECT.encode_chat(resp, decode(BASE))
    specs.check_response("anthropic", "POST", URL, 200, body)
    data = json.loads(body)
    assert data["id"] == "msg_chatcmpl-abc123" and data["model"] == "gpt-4.1"
    assert [b["type"] for b in data["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    assert data["content"][2]["input"] == {"q": "x"} and data["content"][3]["input"] == {}
    assert data["content"][3]["id"] == "call_bad"
    assert data["stop_reason"] == "tool_use" and data["stop_sequence"] is None
    usage = data["usage"]
    assert (
        usage["input_tokens"],
        usage["cache_read_input_tokens"],
        usage["cache_creation_input_tokens"],
        usage["output_tokens"],
    ) == (200, 1000, 0, 50)


@pytest.mark.parametrize(
    ("finish", "stop_sequence", "reason", "sequence"),
    [
        ("stop", None, "end_turn", None),
        ("length", None, "max_tokens", None),
        ("content_filter", None, "refusal", None),
        ("stop_sequence", "###", "stop_sequence", "###"),
        (None, None, "end_turn", None),
        ("pause", None, "pause_turn", None),
    ],
)
def test_encode_stop_reasons(
    finish: Any, stop_sequence: str | None, reason: str, sequence: str | None
) -> None:
    resp = ChatResponse(
        id="msg_x", model="m", parts=[TextPart(text="ok")], finish_reason=finish, stop_sequence=stop_sequence
    )
    body = DIALECT.encode_chat(resp, decode(BASE))
    specs.check_response("anthropic", "POST", URL, 200, body)
    data = json.loads(body)
    assert (data["id"], data["stop_reason"], data["stop_sequence"]) == ("msg_x", reason, sequence)


def test_encode_uses_request_model_when_response_has_none() -> None:
    resp = ChatResponse(id="", model="", parts=[])
    data = json.loads(DIALECT.encode_chat(resp, decode(BASE)))
    assert data["model"] == "m" and data["id"].startswith("msg_") and len(data["id"]) > 4


# --- streams ---------------------------------------------------------------------------------


def frames_of(data: bytes) -> list[SSEFrame]:
    decoder = SSEDecoder()
    return decoder.feed(data) + decoder.flush()


def run_translated(batches: list[list[StreamEvent]], *, finish: bool = True) -> bytes:
    enc = DIALECT.stream_encoder(decode({**BASE, "stream": True}))
    enc.commit("openai")
    out = b"".join(enc.encode(events, None) for events in batches)
    if finish:
        out += enc.finish()
        assert enc.finish() == b""
    return out


def validated(data: bytes) -> list[dict[str, Any]]:
    events = []
    for frame in frames_of(data):
        payload = json.loads(frame.data)
        assert frame.event == payload["type"]
        specs.check_schema("anthropic", "MessageStreamEvent", payload)
        events.append(payload)
    return events


def reparse(data: bytes) -> ChatResponse:
    parser = AnthropicStreamParser()
    acc = Accumulator()
    for frame in frames_of(data):
        for event in parser.feed(frame):
            acc.add(event)
    parser.close()
    return acc.response()


OPENAI_LIKE: list[list[StreamEvent]] = [
    [MessageStart(id="chatcmpl-1", model="gpt-4.1")],
    [ThinkingDelta(text="Let me think. ")],
    [ThinkingDelta(text="Done.")],
    [TextDelta(text="Checking ")],
    [TextDelta(text="now.")],
    [ToolCallDelta(index=0, id="call_a", name="lookup", arguments="")],
    [ToolCallDelta(index=0, arguments='{"q": ')],
    [ToolCallDelta(index=0, arguments='"cats"}')],
    [ToolCallDelta(index=1, id="call_b", name="clock", arguments="{}")],
    [Finish(reason="tool_calls")],
    [UsageUpdate(usage=Usage(input_tokens=300, cached_input_tokens=100, output_tokens=42))],
]


def test_translated_stream_is_valid_and_round_trips() -> None:
    data = run_translated(OPENAI_LIKE)
    events = validated(data)
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use", "tool_use"]
    assert types.count("content_block_start") == types.count("content_block_stop")
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["input_tokens"] == 200 and delta["usage"]["cache_read_input_tokens"] == 100
    assert delta["usage"]["output_tokens"] == 42
    resp = reparse(data)
    assert resp.parts == [
        ThinkingPart(text="Let me think. Done.", signature=None),
        TextPart(text="Checking now."),
        ToolCallPart(id="call_a", name="lookup", arguments='{"q": "cats"}'),
        ToolCallPart(id="call_b", name="clock", arguments="{}"),
    ]
    assert resp.finish_reason == "tool_calls" and resp.usage.input_tokens == 300


def test_translated_stream_with_signatures_redaction_and_stop_sequence() -> None:
    batches: list[list[StreamEvent]] = [
        [MessageStart(id="msg_up", model="gemini-2.5-pro"), UsageUpdate(usage=Usage(input_tokens=50))],
        [ThinkingDelta(text="a"), ThinkingDelta(signature="sig1")],
        [ThinkingDelta(text="b")],
        [ThinkingDelta(redacted="secret")],
        [TextDelta(text="x"), Finish(reason="stop_sequence", stop_sequence="STOP")],
    ]
    data = run_translated(batches)
    events = validated(data)
    assert events[0]["message"]["id"] == "msg_up" and events[0]["message"]["usage"]["input_tokens"] == 50
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "thinking", "redacted_thinking", "text"]
    assert events[-2]["delta"] | {} == {
        "stop_reason": "stop_sequence",
        "stop_sequence": "STOP",
        "stop_details": None,
        "container": None,
    }
    resp = reparse(data)
    assert resp.parts[0] == ThinkingPart(text="a", signature="sig1")
    assert resp.finish_reason == "stop_sequence" and resp.stop_sequence == "STOP"


def test_finish_without_finish_event_closes_everything() -> None:
    data = run_translated([[TextDelta(text="cut")]])
    types = [e["type"] for e in validated(data)]
    assert types == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_empty_translated_stream_is_still_a_message() -> None:
    types = [e["type"] for e in validated(run_translated([]))]
    assert types == ["message_start", "message_delta", "message_stop"]


def test_error_event_ends_a_translated_stream() -> None:
    enc = DIALECT.stream_encoder(decode(BASE))
    enc.commit("gemini")
    enc.encode([TextDelta(text="hi")], None)
    out = enc.error(ProviderError("overloaded", "upstream overloaded"))
    (frame,) = frames_of(out)
    assert frame.event == "error"
    payload = json.loads(frame.data)
    assert payload["error"] == {"type": "overloaded_error", "message": "upstream overloaded"}
    specs.check_schema("anthropic", "ErrorResponse", payload)
    assert enc.finish() == b"" and enc.encode([TextDelta(text="late")], None) == b""


def test_passthrough_stream_forwards_frames_unchanged() -> None:
    upstream = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
        b'"content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    enc = DIALECT.stream_encoder(decode(BASE))
    enc.commit("anthropic")
    parser = AnthropicStreamParser()
    out = b"".join(enc.encode(parser.feed(f), f) for f in frames_of(upstream))
    assert out == upstream and enc.finish() == b""
    (frame,) = frames_of(enc.error(RateLimited("slow down")))
    assert json.loads(frame.data)["error"]["type"] == "rate_limit_error"


def test_translated_stream_read_by_the_official_sdk() -> None:
    anthropic = pytest.importorskip("anthropic")
    httpx2 = pytest.importorskip("httpx2")  # the HTTP client this SDK release is built on
    data = run_translated(OPENAI_LIKE)

    def handler(request: Any) -> Any:
        return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = anthropic.Anthropic(api_key="test", base_url="http://gateway.test", http_client=http)
    with client.messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[1].text == "Checking now." and final.content[2].input == {"q": "cats"}
    assert (
        final.stop_reason == "tool_use"
        and final.usage.output_tokens == 42
        and final.usage.input_tokens == 200
    )
    http.close()


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "status", "etype"),
    [
        (BadRequest("bad"), 400, "invalid_request_error"),
        (AuthenticationFailed("who"), 401, "authentication_error"),
        (PaymentRequired("budget"), 402, "billing_error"),
        (PermissionDenied("no"), 403, "permission_error"),
        (ModelNotFound("no model"), 404, "not_found_error"),
        (PayloadTooLarge("big"), 413, "invalid_request_error"),
        (Unprocessable("odd"), 422, "invalid_request_error"),
        (RateLimited("slow"), 429, "rate_limit_error"),
        (InternalError("oops"), 500, "api_error"),
        (ProviderError("server_error", "upstream 500"), 502, "api_error"),
        (ProviderError("overloaded", "busy"), 503, "overloaded_error"),
        (ProviderError("timeout", "slow"), 504, "timeout_error"),
        (ProviderError("context_too_long", "too long"), 400, "invalid_request_error"),
        (
            AllCandidatesFailed([ProviderError("server_error", "a"), ProviderError("rate_limited", "b")]),
            429,
            "rate_limit_error",
        ),
    ],
)
def test_render_error(err: SwitchpointError, status: int, etype: str) -> None:
    got_status, body = DIALECT.render_error(err)
    payload = json.loads(body)
    assert got_status == status
    assert payload["type"] == "error" and payload["error"] == {"type": etype, "message": err.message}
    specs.check_schema("anthropic", "ErrorResponse", payload)
    if status < 500:
        specs.check_response("anthropic", "POST", URL, status, body)
