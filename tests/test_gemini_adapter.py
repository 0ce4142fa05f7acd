"""The Gemini upstream adapter: requests checked against Google's published spec, answers parsed."""

from __future__ import annotations

import json
from typing import Any

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
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse
from switchpoint.providers.gemini import SKIP_SIGNATURE, GeminiAdapter
from switchpoint.streaming import SSEDecoder

import specs

API_KEY = "AIzaSyTest_0123456789abcdefghijklmnopqrs"
BASE = "https://generativelanguage.googleapis.com/v1beta"
CFG = config.parse(
    {
        "providers": {
            "google": {
                "family": "gemini",
                "base_url": BASE + "/",
                "api_key": "env:GEMINI_API_KEY",
                "headers": {"X-Goog-User-Project": "env:GOOGLE_PROJECT", "x-client-tag": "switchpoint"},
            },
            "keyless": {"family": "gemini", "base_url": "http://127.0.0.1:9999/v1beta"},
        },
        "deployments": {
            "flash": {"provider": "google", "model": "gemini-2.5-flash"},
            "g3": {"provider": "google", "model": "gemini-3-pro-preview"},
            "tuned": {"provider": "keyless", "model": "tunedModels/my-tune"},
            "embed": {"provider": "google", "model": "gemini-embedding-001", "kind": "embedding"},
        },
    },
    env={"GEMINI_API_KEY": API_KEY, "GOOGLE_PROJECT": "proj-42"},
)
FLASH = CFG.deployments["flash"]
G3 = CFG.deployments["g3"]
EMBED = CFG.deployments["embed"]
ADAPTER = GeminiAdapter()


def user(*parts: Any) -> Message:
    return Message(role="user", parts=[TextPart(text=p) if isinstance(p, str) else p for p in parts])


def assistant(*parts: Any) -> Message:
    return Message(role="assistant", parts=[TextPart(text=p) if isinstance(p, str) else p for p in parts])


def chat(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), **kw)


def build(
    request: ChatRequest, deployment: config.Deployment = FLASH
) -> tuple[UpstreamRequest, dict[str, Any]]:
    """Build, validate against the spec, and return the request with its decoded body."""
    up = ADAPTER.build_chat(request, deployment)
    specs.check_request("gemini", up.method, up.url, up.body, up.headers)
    return up, json.loads(up.body)


def answer(
    body: dict[str, Any] | bytes, status: int = 200, headers: dict[str, str] | None = None
) -> UpstreamResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return UpstreamResponse(status=status, headers=headers or {}, body=raw)


def reply(parts: list[dict[str, Any]], finish: str | None = None, **top: Any) -> dict[str, Any]:
    """A GenerateContentResponse with one candidate."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **top}


def checked(body: dict[str, Any]) -> UpstreamResponse:
    specs.check_schema("gemini", "GenerateContentResponse", body)
    return answer(body)


# --- building chat requests ----------------------------------------------------------------------


def test_url_headers_system_and_merged_turns() -> None:
    request = chat(
        Message(role="system", parts=[TextPart(text="Be brief.")]),
        Message(role="developer", parts=[TextPart(text="Answer in French.")]),
        user("Hello"),
        user("", "Are you there?"),
        assistant("Oui."),
        user("Merci"),
    )
    up, body = build(request)
    assert up.method == "POST"
    assert up.url == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert up.stream is False
    assert up.headers["x-goog-api-key"] == API_KEY
    assert up.headers["x-goog-user-project"] == "proj-42"
    assert up.headers["x-client-tag"] == "switchpoint"
    assert up.headers["content-type"] == "application/json"
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}, {"text": "Are you there?"}]},
        {"role": "model", "parts": [{"text": "Oui."}]},
        {"role": "user", "parts": [{"text": "Merci"}]},
    ]
    assert body["generationConfig"] == {"candidateCount": 1}
    assert "tools" not in body and "toolConfig" not in body


def test_stream_url_and_keyless_tuned_model() -> None:
    up, _ = build(chat(user("hi"), stream=True))
    assert up.url == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert up.stream is True
    tuned = ADAPTER.build_chat(chat(user("hi")), CFG.deployments["tuned"])
    assert tuned.url == "http://127.0.0.1:9999/v1beta/tunedModels/my-tune:generateContent"
    assert "x-goog-api-key" not in tuned.headers


def test_sampling_parameters() -> None:
    request = chat(
        user("hi"),
        temperature=0.3,
        top_p=0.9,
        top_k=40,
        max_tokens=256,
        stop=["END", "STOP"],
        seed=7,
        logprobs=True,
        top_logprobs=3,
    )
    _, body = build(request)
    assert body["generationConfig"] == {
        "candidateCount": 1,
        "temperature": 0.3,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 256,
        "stopSequences": ["END", "STOP"],
        "seed": 7,
        "responseLogprobs": True,
        "logprobs": 3,
    }


WEATHER = Tool(
    name="get_weather",
    description="Weather for a city",
    parameters={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"city": {"$ref": "#/$defs/City"}},
        "required": ["city"],
        "additionalProperties": False,
        "$defs": {"City": {"type": "string"}},
    },
)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        (ToolChoice(mode="auto"), {"mode": "AUTO"}),
        (ToolChoice(mode="none"), {"mode": "NONE"}),
        (ToolChoice(mode="required"), {"mode": "ANY"}),
        (
            ToolChoice(mode="tool", name="get_weather"),
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tools_and_tool_choice(choice: ToolChoice | None, expected: dict[str, Any] | None) -> None:
    bare = Tool(name="ping", parameters={})
    _, body = build(chat(user("weather?"), tools=[WEATHER, bare], tool_choice=choice))
    (declarations,) = body["tools"]
    weather, ping = declarations["functionDeclarations"]
    assert weather["name"] == "get_weather"
    assert weather["description"] == "Weather for a city"
    schema = weather["parametersJsonSchema"]
    assert "$schema" not in schema
    assert schema["$defs"] == {"City": {"type": "string"}}
    assert schema["additionalProperties"] is False
    assert "parameters" not in weather
    assert ping == {"name": "ping"}
    if expected is None:
        assert "toolConfig" not in body
    else:
        assert body["toolConfig"] == {"functionCallingConfig": expected}


def test_tool_calls_and_results_in_tool_and_user_messages() -> None:
    request = chat(
        user("Weather in Paris and Rome, then the time?"),
        assistant(
            "Checking.",
            ToolCallPart(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
            ToolCallPart(id="call_2", name="get_weather", arguments='{"city":"Rome"}'),
        ),
        Message(
            role="tool",
            parts=[ToolResultPart(tool_call_id="call_1", content=[TextPart(text='{"temp": 21}')])],
        ),
        Message(
            role="tool", parts=[ToolResultPart(tool_call_id="call_2", content=[TextPart(text="sunny, 25C")])]
        ),
        assistant(ToolCallPart(id="toolu_9", name="clock", arguments="")),
        user(
            ToolResultPart(tool_call_id="toolu_9", content=[TextPart(text="no clock")], is_error=True),
            ToolResultPart(tool_call_id="other", name="lookup", content=[TextPart(text="[1, 2]")]),
            "Thanks!",
        ),
        tools=[WEATHER],
    )
    _, body = build(request)
    contents = body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "model", "user"]
    assert contents[1]["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}, "id": "call_2"}},
    ]
    # Two tool-role messages become one user turn of function responses.
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "id": "call_1", "response": {"temp": 21}}},
        {"functionResponse": {"name": "get_weather", "id": "call_2", "response": {"content": "sunny, 25C"}}},
    ]
    assert contents[3]["parts"] == [{"functionCall": {"name": "clock", "args": {}, "id": "toolu_9"}}]
    assert contents[4]["parts"] == [
        {"functionResponse": {"name": "clock", "id": "toolu_9", "response": {"error": "no clock"}}},
        {"functionResponse": {"name": "lookup", "id": "other", "response": {"content": "[1, 2]"}}},
        {"text": "Thanks!"},
    ]


@pytest.mark.parametrize("arguments", ["[1, 2]", '"text"', "{not json"])
def test_tool_call_arguments_must_be_an_object(arguments: str) -> None:
    request = chat(user("x"), assistant(ToolCallPart(id="c", name="f", arguments=arguments)))
    with pytest.raises(ProviderError) as info:
        ADAPTER.build_chat(request, FLASH)
    assert info.value.kind == "bad_request"
    assert info.value.status == 400
    assert info.value.param == "messages[1].parts[0]"


def test_tool_result_without_a_known_call_is_rejected() -> None:
    request = chat(user("x"), Message(role="tool", parts=[ToolResultPart(tool_call_id="ghost")]))
    with pytest.raises(ProviderError) as info:
        ADAPTER.build_chat(request, FLASH)
    assert info.value.kind == "bad_request"
    assert "ghost" in info.value.message


def test_images_inline_url_and_in_tool_results() -> None:
    request = chat(
        user(
            "Compare these.",
            ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
            ImagePart(url="https://example.com/photos/cat.PNG?size=large"),
            ImagePart(url="https://example.com/render"),
            ImagePart(url="data:image/webp;base64,UklGRg=="),
        ),
        assistant(ToolCallPart(id="c1", name="snap", arguments="{}")),
        Message(
            role="tool",
            parts=[
                ToolResultPart(
                    tool_call_id="c1",
                    content=[
                        TextPart(text="took a photo"),
                        ImagePart(data="/9j/4AAQ", media_type="image/jpeg"),
                    ],
                )
            ],
        ),
    )
    _, body = build(request)
    assert body["contents"][0]["parts"][1:] == [
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "https://example.com/photos/cat.PNG?size=large", "mimeType": "image/png"}},
        {"fileData": {"fileUri": "https://example.com/render", "mimeType": "image/jpeg"}},
        {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
    ]
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "snap", "id": "c1", "response": {"content": "took a photo"}}},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
    ]


def test_json_schema_and_json_object() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"answer": {"type": ["string", "null"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    _, body = build(
        chat(user("x"), response_format=ResponseFormat(type="json_schema", name="a", schema=schema))
    )
    config_ = body["generationConfig"]
    assert config_["responseMimeType"] == "application/json"
    assert config_["responseJsonSchema"] == {k: v for k, v in schema.items() if k != "$schema"}
    assert "responseSchema" not in config_
    _, body = build(chat(user("x"), response_format=ResponseFormat(type="json_object")))
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert "responseJsonSchema" not in body["generationConfig"]
    _, body = build(chat(user("x"), response_format=ResponseFormat(type="text")))
    assert "responseMimeType" not in body["generationConfig"]


@pytest.mark.parametrize(
    ("thinking", "expected"),
    [
        (Thinking(effort="minimal"), {"includeThoughts": True, "thinkingBudget": 512}),
        (Thinking(effort="low"), {"includeThoughts": True, "thinkingBudget": 1024}),
        (Thinking(effort="medium"), {"includeThoughts": True, "thinkingBudget": 8192}),
        (Thinking(effort="high"), {"includeThoughts": True, "thinkingBudget": 24576}),
        (Thinking(budget_tokens=3000, effort="high"), {"includeThoughts": True, "thinkingBudget": 3000}),
        (Thinking(), {"includeThoughts": True}),
        (Thinking(enabled=False), {"thinkingBudget": 0}),
    ],
)
def test_thinking_config(thinking: Thinking, expected: dict[str, Any]) -> None:
    _, body = build(chat(user("think"), thinking=thinking))
    assert body["generationConfig"]["thinkingConfig"] == expected


def test_thought_signatures_are_sent_back() -> None:
    request = chat(
        user("plan"),
        assistant(
            ThinkingPart(text="Let me think.", signature="c2lnLXRob3VnaHQ="),
            ThinkingPart(text="unsigned thoughts are not sent"),
            ThinkingPart(redacted="opaque", signature="anthropic-sig"),
            TextPart(text="Here.", extra={"thoughtSignature": "c2lnLXRleHQ="}),
            ToolCallPart(id="c1", name="f", arguments="{}", extra={"thoughtSignature": "c2lnLWNhbGw="}),
        ),
        Message(role="tool", parts=[ToolResultPart(tool_call_id="c1", content=[TextPart(text="ok")])]),
    )
    _, body = build(request, G3)
    assert body["contents"][1]["parts"] == [
        {"text": "Let me think.", "thought": True, "thoughtSignature": "c2lnLXRob3VnaHQ="},
        {"text": "Here.", "thoughtSignature": "c2lnLXRleHQ="},
        {"functionCall": {"name": "f", "args": {}, "id": "c1"}, "thoughtSignature": "c2lnLWNhbGw="},
    ]


def test_gemini_3_gets_a_stand_in_signature_only_when_none_is_kept() -> None:
    request = chat(
        user("two calls"),
        assistant(
            ToolCallPart(id="a", name="f", arguments="{}"),
            ToolCallPart(id="b", name="f", arguments="{}"),
        ),
        Message(role="tool", parts=[ToolResultPart(tool_call_id="a"), ToolResultPart(tool_call_id="b")]),
    )
    _, body = build(request, G3)
    first, second = body["contents"][1]["parts"]
    assert first["thoughtSignature"] == SKIP_SIGNATURE
    assert "thoughtSignature" not in second
    assert body["contents"][2]["parts"][0]["functionResponse"]["response"] == {"content": ""}
    # Older models validate no signature: nothing is invented for them.
    _, body = build(request, FLASH)
    assert all("thoughtSignature" not in p for p in body["contents"][1]["parts"])


# --- parsing answers -----------------------------------------------------------------------------


def test_parse_text_usage_and_identity() -> None:
    body = reply(
        [{"text": "Hello"}, {"text": ", world"}],
        "STOP",
        usageMetadata={
            "promptTokenCount": 120,
            "cachedContentTokenCount": 100,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 30,
            "toolUsePromptTokenCount": 7,
            "totalTokenCount": 162,
        },
        modelVersion="gemini-2.5-flash-001",
        responseId="resp-abc",
    )
    response = ADAPTER.parse_chat(checked(body), FLASH)
    assert response.parts == [TextPart(text="Hello, world")]
    assert response.finish_reason == "stop"
    assert response.id == "resp-abc"
    assert response.model == "gemini-2.5-flash-001"
    assert response.family == "gemini"
    assert response.raw == json.dumps(body).encode()
    usage = response.usage
    assert (usage.input_tokens, usage.cached_input_tokens) == (127, 100)
    assert (usage.output_tokens, usage.reasoning_tokens) == (35, 30)
    assert usage.total_tokens == 162


def test_parse_function_calls_thoughts_and_signatures() -> None:
    paris = {"name": "get_weather", "args": {"city": "Paris"}}
    body = reply(
        [
            {"text": "Considering the cities", "thought": True},
            {"text": " in turn.", "thought": True, "thoughtSignature": "dGhvdWdodA=="},
            {"text": "Looking up."},
            {"functionCall": paris, "thoughtSignature": "Y2FsbA=="},
            {"functionCall": paris},
            {"functionCall": {"id": "fc-7", "name": "clock"}},
        ],
        "STOP",
    )
    response = ADAPTER.parse_chat(checked(body), FLASH)
    thinking, text, call1, call2, call3 = response.parts
    assert thinking == ThinkingPart(text="Considering the cities in turn.", signature="dGhvdWdodA==")
    assert text == TextPart(text="Looking up.")
    assert (
        isinstance(call1, ToolCallPart)
        and isinstance(call2, ToolCallPart)
        and isinstance(call3, ToolCallPart)
    )
    assert call1.name == "get_weather" and json.loads(call1.arguments) == {"city": "Paris"}
    assert call1.extra == {"thoughtSignature": "Y2FsbA=="}
    # Same call twice: generated ids stay distinct and are stable across parses.
    assert call1.id.startswith("call_") and call2.id.startswith("call_") and call1.id != call2.id
    assert ADAPTER.parse_chat(answer(body), FLASH).parts[2] == call1
    assert (call3.id, call3.arguments) == ("fc-7", "{}")
    assert response.finish_reason == "tool_calls"
    assert response.id and response.model == "gemini-2.5-flash"


def test_text_signature_is_kept_for_replay() -> None:
    body = reply([{"text": "Done.", "thoughtSignature": "dHh0"}], "STOP")
    response = ADAPTER.parse_chat(checked(body), G3)
    assert response.parts == [TextPart(text="Done.", extra={"thoughtSignature": "dHh0"})]
    _, request_body = build(chat(user("q"), assistant(*response.parts), user("more")), G3)
    assert request_body["contents"][1]["parts"] == [{"text": "Done.", "thoughtSignature": "dHh0"}]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("LANGUAGE", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    body = reply([{"text": "x"}], reason)
    assert ADAPTER.parse_chat(checked(body), FLASH).finish_reason == expected


def test_max_tokens_during_a_call_stays_length() -> None:
    body = reply([{"functionCall": {"name": "f", "args": {}}}], "MAX_TOKENS")
    assert ADAPTER.parse_chat(checked(body), FLASH).finish_reason == "length"


def test_blocked_prompt_is_a_filtered_answer_not_an_error() -> None:
    body = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    response = ADAPTER.parse_chat(checked(body), FLASH)
    assert response.parts == []
    assert response.finish_reason == "content_filter"
    assert response.usage.input_tokens == 9
    assert response.extra == {"blockReason": "SAFETY"}


def test_candidate_without_content() -> None:
    body = {"candidates": [{"finishReason": "SAFETY"}]}
    response = ADAPTER.parse_chat(checked(body), FLASH)
    assert response.parts == [] and response.finish_reason == "content_filter"


@pytest.mark.parametrize(
    "raw",
    [
        b"<html>oops</html>",
        b'{"candidates": {"not": "a list"}}',
        b"{}",
        b'{"candidates": [{"content": {"parts": 5}}]}',
    ],
)
def test_bad_shapes_are_invalid_responses(raw: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        ADAPTER.parse_chat(answer(raw), FLASH)
    assert info.value.kind == "invalid_response"
    assert info.value.retryable is True


# --- streaming -----------------------------------------------------------------------------------

STREAM_CHUNKS: list[dict[str, Any]] = [
    reply(
        [{"text": "Weighing it", "thought": True}],
        usageMetadata={"promptTokenCount": 50, "totalTokenCount": 50},
        modelVersion="gemini-2.5-flash",
        responseId="r-1",
    ),
    reply([{"text": "", "thought": True, "thoughtSignature": "c2ln"}], responseId="r-1"),
    reply([{"text": "Let me "}, {"text": "check."}], responseId="r-1"),
    reply(
        [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
        ],
        "STOP",
        usageMetadata={
            "promptTokenCount": 50,
            "candidatesTokenCount": 12,
            "thoughtsTokenCount": 20,
            "totalTokenCount": 82,
        },
        responseId="r-1",
    ),
]


def sse(chunks: list[dict[str, Any]]) -> bytes:
    """SSE bytes as Gemini sends them (CRLF line ends); every chunk but an error is spec-checked."""
    for chunk in chunks:
        if "error" not in chunk:
            specs.check_schema("gemini", specs.STREAM_EVENT_SCHEMA["gemini"], chunk)
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


def run_stream(raw: bytes, deployment: config.Deployment = FLASH, piece: int = 17) -> list[StreamEvent]:
    """Feed ``raw`` through the SSE decoder in small pieces, as the network would."""
    parser = ADAPTER.stream_parser(chat(user("x"), stream=True), deployment)
    decoder = SSEDecoder()
    events: list[StreamEvent] = []
    for i in range(0, len(raw), piece):
        for frame in decoder.feed(raw[i : i + piece]):
            events.extend(parser.feed(frame))
    for frame in decoder.flush():
        events.extend(parser.feed(frame))
    events.extend(parser.close())
    return events


def test_stream_events() -> None:
    events = run_stream(sse(STREAM_CHUNKS))
    start = events[0]
    assert isinstance(start, MessageStart) and (start.id, start.model) == ("r-1", "gemini-2.5-flash")
    assert sum(isinstance(e, MessageStart) for e in events) == 1
    assert [e for e in events if isinstance(e, ThinkingDelta)] == [
        ThinkingDelta(text="Weighing it"),
        ThinkingDelta(text="", signature="c2ln"),
    ]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Let me ", "check."]
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(c.index, c.name, json.loads(c.arguments)) for c in calls] == [
        (0, "get_weather", {"city": "Paris"}),
        (1, "get_weather", {"city": "Rome"}),
    ]
    assert all(c.id and c.id.startswith("call_") for c in calls)
    assert [e for e in events if isinstance(e, Finish)] == [Finish(reason="tool_calls")]
    assert isinstance(events[-1], Finish)
    usage = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert len(usage) == 2 and usage[-1].output_tokens == 32 and usage[-1].reasoning_tokens == 20

    acc = Accumulator()
    for event in events:
        acc.add(event)
    streamed = acc.response()
    assert streamed.parts[0] == ThinkingPart(text="Weighing it", signature="c2ln")
    assert streamed.parts[1] == TextPart(text="Let me check.")
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (50, 32)
    # The same answer in one piece parses to the same tool-call ids.
    whole = reply([p for c in STREAM_CHUNKS for p in c["candidates"][0]["content"]["parts"]], "STOP")
    parsed_calls = [p for p in ADAPTER.parse_chat(answer(whole), FLASH).parts if isinstance(p, ToolCallPart)]
    assert [p.id for p in parsed_calls] == [c.id for c in calls]


def test_stream_text_only_stops_with_length() -> None:
    chunks = [
        reply([{"text": "abc"}]),
        reply(
            [{"text": "def"}], "MAX_TOKENS", usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 2}
        ),
    ]
    events = run_stream(sse(chunks), piece=5)
    start = events[0]
    assert isinstance(start, MessageStart) and start.model == "gemini-2.5-flash" and start.id
    assert [e for e in events if isinstance(e, Finish)] == [Finish(reason="length")]


def test_stream_blocked_prompt_finishes_with_content_filter() -> None:
    chunk = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 4},
    }
    events = run_stream(sse([chunk]))
    assert isinstance(events[0], MessageStart)
    assert events[-1] == Finish(reason="content_filter")


def test_cut_stream_raises_on_close() -> None:
    with pytest.raises(ProviderError) as info:
        run_stream(sse(STREAM_CHUNKS[:3]))
    assert info.value.kind == "invalid_response"


def test_stream_error_payload_is_classified() -> None:
    error = {
        "error": {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
    }
    with pytest.raises(ProviderError) as info:
        run_stream(sse([STREAM_CHUNKS[0], error]))
    assert info.value.kind == "overloaded"
    assert info.value.upstream_status == 503
    assert info.value.message == "The model is overloaded. Please try again later."


def test_stream_garbage_frame_is_invalid() -> None:
    with pytest.raises(ProviderError) as info:
        run_stream(b"data: {not json\n\n")
    assert info.value.kind == "invalid_response"


# --- errors --------------------------------------------------------------------------------------


def google_error(
    code: int, status: str, message: str = "upstream says no", details: list[Any] | None = None
) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "status": status, "details": details or []}}
    ).encode()


@pytest.mark.parametrize(
    ("code", "status", "kind", "retryable"),
    [
        (429, "RESOURCE_EXHAUSTED", "rate_limited", True),
        (400, "INVALID_ARGUMENT", "bad_request", False),
        (400, "FAILED_PRECONDITION", "bad_request", False),
        (401, "UNAUTHENTICATED", "authentication", False),
        (403, "PERMISSION_DENIED", "permission", False),
        (404, "NOT_FOUND", "not_found", False),
        (503, "UNAVAILABLE", "overloaded", True),
        (500, "INTERNAL", "server_error", True),
        (504, "DEADLINE_EXCEEDED", "timeout", True),
    ],
)
def test_classify_google_statuses(code: int, status: str, kind: str, retryable: bool) -> None:
    err = ADAPTER.classify(answer(google_error(code, status), status=code), FLASH)
    assert (err.kind, err.retryable, err.upstream_status) == (kind, retryable, code)
    assert err.message == "upstream says no"
    assert err.code == status
    assert err.deployment == "flash"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (400, "bad_request"),
        (401, "authentication"),
        (403, "permission"),
        (404, "not_found"),
        (413, "request_too_large"),
        (429, "rate_limited"),
        (500, "server_error"),
        (502, "server_error"),
        (503, "overloaded"),
        (504, "timeout"),
        (418, "bad_request"),
    ],
)
def test_classify_garbage_body_by_status(code: int, kind: str) -> None:
    err = ADAPTER.classify(answer(b"<html>Bad Gateway</html>", status=code), FLASH)
    assert err.kind == kind
    assert str(code) in err.message


@pytest.mark.parametrize(("delay", "seconds"), [("2s", 2.0), ("1.5s", 1.5), ("37s", 37.0)])
def test_rate_limit_retry_info(delay: str, seconds: float) -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
    ]
    err = ADAPTER.classify(
        answer(google_error(429, "RESOURCE_EXHAUSTED", "quota", details), status=429), FLASH
    )
    assert err.kind == "rate_limited" and err.retry_after == seconds


def test_rate_limit_retry_after_header() -> None:
    resp = answer(google_error(429, "RESOURCE_EXHAUSTED"), status=429, headers={"retry-after": "12"})
    assert ADAPTER.classify(resp, FLASH).retry_after == 12.0
    resp = answer(google_error(429, "RESOURCE_EXHAUSTED"), status=429, headers={"retry-after": "soon"})
    assert ADAPTER.classify(resp, FLASH).retry_after is None


def test_context_too_long_and_bad_key() -> None:
    msg = "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
    err = ADAPTER.classify(answer(google_error(400, "INVALID_ARGUMENT", msg), status=400), FLASH)
    assert err.kind == "context_too_long" and err.status == 400
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        }
    ]
    body = google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details)
    err = ADAPTER.classify(answer(body, status=400), FLASH)
    assert err.kind == "authentication" and err.retryable is False
    assert err.upstream_status == 400


def test_error_messages_are_truncated_and_never_carry_keys() -> None:
    message = f"bad request for key={API_KEY} and AIzaSyOther_abcdefghijklmnopqrstuvwx " + "x" * 2000
    err = ADAPTER.classify(answer(google_error(400, "INVALID_ARGUMENT", message), status=400), FLASH)
    assert len(err.message) <= 500
    assert API_KEY not in err.message and "AIza" not in err.message
    assert "[redacted]" in err.message


def test_error_array_body() -> None:
    body = b"[" + google_error(404, "NOT_FOUND", "models/nope is not found") + b"]"
    err = ADAPTER.classify(answer(body, status=404), FLASH)
    assert err.kind == "not_found" and err.message == "models/nope is not found"


# --- embeddings ----------------------------------------------------------------------------------


def test_single_embedding() -> None:
    up = ADAPTER.build_embeddings(EmbeddingRequest(model="e", inputs=["hello"], dimensions=256), EMBED)
    specs.check_request("gemini", up.method, up.url, up.body, up.headers)
    assert up.url == f"{BASE}/models/gemini-embedding-001:embedContent"
    assert up.headers["x-goog-api-key"] == API_KEY
    assert json.loads(up.body) == {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 256}
    raw = {"embedding": {"values": [0.1, -0.2, 0.3]}}
    specs.check_schema("gemini", "EmbedContentResponse", raw)
    result = ADAPTER.parse_embeddings(answer(raw), EMBED)
    assert [(e.index, e.vector) for e in result.data] == [(0, [0.1, -0.2, 0.3])]
    assert result.usage.input_tokens == 0
    assert (result.model, result.family) == ("gemini-embedding-001", "gemini")


def test_batch_embeddings() -> None:
    up = ADAPTER.build_embeddings(EmbeddingRequest(model="e", inputs=["a", "b"]), EMBED)
    specs.check_request("gemini", up.method, up.url, up.body, up.headers)
    assert up.url == f"{BASE}/models/gemini-embedding-001:batchEmbedContents"
    assert json.loads(up.body) == {
        "requests": [
            {"content": {"parts": [{"text": "a"}]}, "model": "models/gemini-embedding-001"},
            {"content": {"parts": [{"text": "b"}]}, "model": "models/gemini-embedding-001"},
        ]
    }
    raw = {
        "embeddings": [{"values": [1.0, 0.0]}, {"values": [0.0, 1.0]}],
        "usageMetadata": {"promptTokenCount": 4},
    }
    specs.check_schema("gemini", "BatchEmbedContentsResponse", raw)
    result = ADAPTER.parse_embeddings(answer(raw), EMBED)
    assert [(e.index, e.vector) for e in result.data] == [(0, [1.0, 0.0]), (1, [0.0, 1.0])]
    assert result.usage.input_tokens == 4


@pytest.mark.parametrize("raw", [b"nope", b"{}", b'{"embedding": {"values": ["x"]}}'])
def test_bad_embedding_answers(raw: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        ADAPTER.parse_embeddings(answer(raw), EMBED)
    assert info.value.kind == "invalid_response"
