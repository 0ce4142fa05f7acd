"""The OpenAI client dialect: decoding, response and stream encoding, error rendering."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from switchpoint.api.openai import OpenAIDialect
from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
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
    Usage,
    UsageUpdate,
)
from switchpoint.errors import (
    AuthenticationFailed,
    BadRequest,
    InternalError,
    NotFound,
    PaymentRequired,
    PermissionDenied,
    ProviderError,
    RateLimited,
    SwitchpointError,
)
from switchpoint.streaming import SSEDecoder, SSEFrame

import specs

CHAT_URL = "https://api.openai.com/v1/chat/completions"
EMB_URL = "https://api.openai.com/v1/embeddings"
DIALECT = OpenAIDialect()
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def decode(body: dict[str, Any]) -> ChatRequest:
    return DIALECT.decode_chat(json.dumps(body).encode(), {})


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


# --- decode_chat -----------------------------------------------------------------------------


def test_decode_a_full_request() -> None:
    body = {
        "model": "smart",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "English only."}]},
            {
                "role": "user",
                "name": "alice",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.png", "detail": "high"},
                    },
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"x":1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "a cat"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
            user("Thanks"),
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "look",
                    "description": "Look closer",
                    "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
                    "strict": False,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "parallel_tool_calls": True,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {"type": "object"},
                "strict": True,
                "description": "d",
            },
        },
        "max_tokens": 50,
        "max_completion_tokens": 100,
        "temperature": 0.5,
        "top_p": 1,
        "stop": "END",
        "seed": 3,
        "user": "u-9",
        "metadata": {"team": "a"},
        "logprobs": True,
        "top_logprobs": 3,
        "reasoning_effort": "medium",
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 1,
        "prediction": {"type": "content", "content": "kept in raw"},
    }
    specs.check_request("openai", "POST", CHAT_URL, body, {"authorization": "Bearer x"})
    request = decode(body)
    assert request.model == "smart" and request.dialect == "openai" and request.raw == body
    assert request.messages == [
        Message(role="system", parts=[TextPart(text="Be terse.")]),
        Message(role="developer", parts=[TextPart(text="English only.")]),
        Message(
            role="user",
            name="alice",
            parts=[
                TextPart(text="What is in these?"),
                ImagePart(url="https://example.com/cat.png", detail="high"),
                ImagePart(data=PNG_B64, media_type="image/png"),
            ],
        ),
        Message(role="assistant", parts=[ToolCallPart(id="call_1", name="look", arguments='{"x":1}')]),
        Message(role="tool", parts=[ToolResultPart(tool_call_id="call_1", content=[TextPart(text="a cat")])]),
        Message(role="assistant", parts=[TextPart(text="A cat.")]),
        Message(role="user", parts=[TextPart(text="Thanks")]),
    ]
    assert request.tools == [
        Tool(
            name="look",
            description="Look closer",
            parameters={"type": "object", "properties": {"x": {"type": "integer"}}},
            strict=False,
        )
    ]
    assert request.tool_choice == ToolChoice(mode="tool", name="look")
    assert request.parallel_tool_calls is True
    assert request.response_format == ResponseFormat(
        type="json_schema", name="answer", schema={"type": "object"}, strict=True, description="d"
    )
    assert request.max_tokens == 100  # max_completion_tokens wins over the deprecated max_tokens
    assert (request.temperature, request.top_p, request.stop, request.seed) == (0.5, 1.0, ["END"], 3)
    assert (request.user, request.metadata, request.logprobs, request.top_logprobs) == (
        "u-9",
        {"team": "a"},
        True,
        3,
    )
    assert request.thinking == Thinking(effort="medium")
    assert request.stream is True and request.include_usage is True


def test_decode_minimal_request_defaults() -> None:
    request = decode(
        {"model": "m", "messages": [user()], "max_tokens": 10, "stream_options": {"include_usage": True}}
    )
    assert request.max_tokens == 10 and request.stream is False and request.include_usage is False
    assert request.tools is None and request.tool_choice is None and request.thinking is None


@pytest.mark.parametrize(
    ("effort", "thinking"),
    [
        ("none", Thinking(enabled=False)),
        ("xhigh", Thinking(effort="high")),
        ("minimal", Thinking(effort="minimal")),
    ],
)
def test_reasoning_effort_maps_onto_canonical_levels(effort: str, thinking: Thinking) -> None:
    assert decode({"model": "m", "messages": [user()], "reasoning_effort": effort}).thinking == thinking


def test_plain_response_formats_and_empty_stop_list() -> None:
    for kind in ("text", "json_object"):
        request = decode({"model": "m", "messages": [user()], "response_format": {"type": kind}, "stop": []})
        assert request.response_format == ResponseFormat(type=kind) and request.stop is None


def test_tool_choice_modes_and_allowed_tools() -> None:
    for mode in ("auto", "none", "required"):
        assert decode({"model": "m", "messages": [user()], "tool_choice": mode}).tool_choice == ToolChoice(
            mode=mode
        )
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": []}}
    assert decode({"model": "m", "messages": [user()], "tool_choice": allowed}).tool_choice == ToolChoice(
        mode="required"
    )


def test_assistant_refusal_and_empty_content_with_tool_calls() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    request = decode(
        {
            "model": "m",
            "messages": [
                user(),
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c", "content": "ok"},
                {"role": "assistant", "content": None, "refusal": "No."},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "Still no."}]},
            ],
        }
    )
    assert request.messages[1].parts == [ToolCallPart(id="c", name="f", arguments="{}")]
    assert request.messages[3].parts == [TextPart(text="No.")]
    assert request.messages[4].parts == [TextPart(text="Still no.")]


def good(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [user()], **fields}


def with_message(message: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [user(), message]}


def image(url: Any) -> dict[str, Any]:
    return with_message({"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]})


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"messages": [user()]}, "model", "expected a string"),
        ({"model": 5, "messages": [user()]}, "model", "got an integer"),
        ({"model": "", "messages": [user()]}, "model", "must not be empty"),
        ({"model": "m"}, "messages", "expected an array"),
        ({"model": "m", "messages": []}, "messages", "must not be empty"),
        (with_message("hi"), "messages[1]", "expected an object"),
        (with_message({"role": "robot", "content": "x"}), "messages[1].role", "must be one of"),
        (with_message({"role": "function", "name": "f", "content": 3}), "messages[1].content", "expected"),
        (with_message({"role": "user", "content": 5}), "messages[1].content", "array of content parts"),
        (with_message({"role": "user"}), "messages[1].content", "got null"),
        (with_message({"role": "user", "content": []}), "messages[1].content", "must not be empty"),
        (
            with_message({"role": "system", "content": [{"type": "image_url"}]}),
            "messages[1].content[0].type",
            "'image_url'",
        ),
        (
            with_message({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}),
            "messages[1].content[0].input_audio.data",
            "required",
        ),
        (
            with_message({"role": "user", "content": [{"type": "file", "file": {}}]}),
            "messages[1].content[0].file",
            "file_data or file_id",
        ),
        (
            with_message({"role": "system", "content": [{"type": "input_audio", "input_audio": {}}]}),
            "messages[1].content[0].type",
            "'input_audio' are not supported",
        ),
        (
            with_message({"role": "user", "content": [{"type": "text"}]}),
            "messages[1].content[0].text",
            "expected a string",
        ),
        (
            image("ftp://example.com/a.png"),
            "messages[1].content[0].image_url.url",
            "http(s) URL or a data: URI",
        ),
        (image("data:image/png,abc"), "messages[1].content[0].image_url.url", "invalid data URI"),
        (image("data:;base64,abc"), "messages[1].content[0].image_url.url", "invalid data URI"),
        (image("data:image/png;base64,"), "messages[1].content[0].image_url.url", "invalid data URI"),
        (image(None), "messages[1].content[0].image_url.url", "expected a string"),
        (with_message({"role": "assistant"}), "messages[1].content", "unless tool_calls"),
        (
            with_message({"role": "assistant", "content": None, "tool_calls": []}),
            "messages[1].tool_calls",
            "must not be empty",
        ),
        (
            with_message(
                {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}
            ),
            "messages[1].tool_calls[0].id",
            "expected a string",
        ),
        (
            with_message({"role": "assistant", "function_call": "f"}),
            "messages[1].function_call",
            "expected an object",
        ),
        (
            with_message({"role": "function", "content": "22C"}),
            "messages[1].name",
            "expected a string",
        ),
        (with_message({"role": "tool", "content": "x"}), "messages[1].tool_call_id", "expected a string"),
        (with_message({"role": "user", "content": "x", "name": 3}), "messages[1].name", "expected a string"),
        (
            with_message({"role": "user", "content": [{"text": "x"}]}),
            "messages[1].content[0].type",
            "got null",
        ),
        (
            with_message({"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]}),
            "messages[1].tool_calls[0].type",
            "'function'",
        ),
        (
            good(tools=[{"type": "function", "function": {"name": ""}}]),
            "tools[0].function.name",
            "must not be empty",
        ),
        (
            good(tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "none"}}),
            "tool_choice.allowed_tools.mode",
            "'auto'",
        ),
        (good(tool_choice={"type": "custom"}), "tool_choice.type", "'function' or 'allowed_tools'"),
        (good(n=2), "n", "n=1"),
        (good(functions=[{"name": ""}]), "functions[0].name", "must not be empty"),
        (
            good(functions=[{"name": 1}], tools=[{"type": "function", "function": {"name": "g"}}]),
            "functions[0].name",
            "expected a string",
        ),
        (good(function_call={}, tool_choice="auto"), "function_call.name", "expected a string"),
        (good(function_call="any"), "function_call", "'none', 'auto'"),
        (good(tools={}), "tools", "expected an array"),
        (good(tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools[0].type", "function"),
        (
            good(tools=[{"type": "function", "function": {"description": "d"}}]),
            "tools[0].function.name",
            "string",
        ),
        (
            good(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
            "tools[0].function.parameters",
            "object",
        ),
        (good(tool_choice="any"), "tool_choice", "'auto', 'none', 'required'"),
        (good(tool_choice={"type": "function", "function": {}}), "tool_choice.function.name", "string"),
        (good(response_format={"type": "yaml"}), "response_format.type", "json_schema"),
        (
            good(response_format={"type": "json_schema", "json_schema": {}}),
            "response_format.json_schema.name",
            "string",
        ),
        (good(max_tokens="10"), "max_tokens", "expected an integer"),
        (good(max_completion_tokens=-1), "max_completion_tokens", "out of range"),
        (good(max_completion_tokens=5, max_tokens=-1), "max_tokens", "out of range"),
        (good(temperature=True), "temperature", "expected a number"),
        (good(temperature=2.5), "temperature", "out of range"),
        (good(top_p=-0.1), "top_p", "out of range"),
        (good(stop=[1]), "stop", "array of strings"),
        (good(seed=1.5), "seed", "integer"),
        (good(user=1), "user", "string"),
        (good(metadata={"k": 1}), "metadata.k", "string"),
        (good(logprobs="yes"), "logprobs", "boolean"),
        (good(top_logprobs=21), "top_logprobs", "out of range"),
        (good(reasoning_effort="extreme"), "reasoning_effort", "must be one of"),
        (good(stream="true"), "stream", "boolean"),
        (good(stream=True, stream_options={"include_usage": 1}), "stream_options.include_usage", "boolean"),
        (good(stream=True, stream_options=[]), "stream_options", "object"),
    ],
)
def test_bad_requests_name_the_param(body: dict[str, Any], param: str, fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode(body)
    assert info.value.status == 400
    assert info.value.param == param
    assert fragment in info.value.message
    status, rendered = DIALECT.render_error(info.value)
    assert status == 400 and json.loads(rendered)["error"]["param"] == param


@pytest.mark.parametrize("raw", [b"{", b"", b'{"model": "m",}'])
def test_unparseable_json_is_a_bad_request(raw: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        DIALECT.decode_chat(raw, {})
    assert info.value.status == 400 and info.value.message.startswith("could not parse the JSON body: ")


def test_a_json_array_body_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="must be a JSON object"):
        DIALECT.decode_chat(b"[]", {})


# --- encode_chat -----------------------------------------------------------------------------


def request_for(**fields: Any) -> ChatRequest:
    return ChatRequest(model="smart", messages=[Message(role="user", parts=[TextPart(text="hi")])], **fields)


def test_translated_response_is_a_valid_chat_completion() -> None:
    response = ChatResponse(
        id="msg_01",
        model="claude-x",
        parts=[
            ThinkingPart(text="Let me think.", signature="sig"),
            TextPart(text="Calling "),
            TextPart(text="a tool."),
            ToolCallPart(id="toolu_1", name="look", arguments='{"x":1}'),
        ],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=100, cached_input_tokens=40, output_tokens=20, reasoning_tokens=5),
        created=1700000000,
        family="anthropic",
        raw=b'{"anthropic": "bytes"}',
    )
    out = DIALECT.encode_chat(response, request_for())
    specs.check_response("openai", "POST", CHAT_URL, 200, out)
    body = json.loads(out)
    message = body["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": "Calling a tool.",
        "refusal": None,
        "reasoning_content": "Let me think.",
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "look", "arguments": '{"x":1}'}}
        ],
    }
    assert body["choices"][0]["finish_reason"] == "tool_calls" and body["choices"][0]["logprobs"] is None
    assert (body["id"], body["model"], body["created"], body["object"]) == (
        "msg_01",
        "claude-x",
        1700000000,
        "chat.completion",
    )
    assert body["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 120,
        "prompt_tokens_details": {"cached_tokens": 40},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    sdk = ChatCompletion.model_validate_json(out)  # the official client reads it
    assert sdk.choices[0].message.tool_calls is not None
    assert sdk.choices[0].message.tool_calls[0].function.name == "look"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("reason", "wire"),
    [
        ("stop_sequence", "stop"),
        ("pause", "stop"),
        ("length", "length"),
        ("content_filter", "content_filter"),
        (None, "stop"),
    ],
)
def test_finish_reasons_map_onto_the_openai_enum(reason: Any, wire: str) -> None:
    response = ChatResponse(id="", model="", parts=[], finish_reason=reason)
    out = DIALECT.encode_chat(response, request_for())
    specs.check_response("openai", "POST", CHAT_URL, 200, out)
    body = json.loads(out)
    assert body["choices"][0]["finish_reason"] == wire
    assert body["choices"][0]["message"]["content"] is None
    assert body["id"].startswith("chatcmpl-") and body["model"] == "smart" and body["created"] > 1700000000


def test_openai_upstream_bytes_pass_through_unchanged() -> None:
    raw = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[],"x_unknown":1}'
    response = ChatResponse(
        id="chatcmpl-1", model="m", parts=[TextPart(text="ignored")], family="openai", raw=raw
    )
    assert DIALECT.encode_chat(response, request_for()) is raw


# --- streaming -------------------------------------------------------------------------------


def frames(data: bytes) -> list[SSEFrame]:
    decoder = SSEDecoder()
    return decoder.feed(data) + decoder.flush()


def payloads(data: bytes) -> list[dict[str, Any]]:
    """Every chunk of an encoded stream, validated against the spec; checks the [DONE] ending."""
    found = frames(data)
    assert found[-1].data == b"[DONE]"
    chunks = [json.loads(f.data) for f in found[:-1]]
    for c in chunks:
        specs.check_schema("openai", "CreateChatCompletionStreamResponse", c)
    return chunks


def translated_events() -> list[list[StreamEvent]]:
    return [
        [
            MessageStart(id="msg_9", model="claude-x", created=1700000001),
            UsageUpdate(usage=Usage(input_tokens=30)),
        ],
        [ThinkingDelta(text="Hmm."), ThinkingDelta(signature="sig-only")],
        [TextDelta(text="Let me "), TextDelta(text="check.")],
        [ToolCallDelta(index=0, id="toolu_a", name="look", arguments="")],
        [ToolCallDelta(index=0, arguments='{"x":'), ToolCallDelta(index=0, arguments="1}")],
        [ToolCallDelta(index=1, id="toolu_b", name="time", arguments="{}")],
        [Finish(reason="tool_calls"), UsageUpdate(usage=Usage(output_tokens=12, reasoning_tokens=2))],
    ]


def test_translated_stream_is_valid_chunks_the_official_client_assembles() -> None:
    encoder = DIALECT.stream_encoder(request_for(stream=True, include_usage=True))
    encoder.commit("anthropic")
    out = b"".join(encoder.encode(batch, None) for batch in translated_events()) + encoder.finish()
    chunks = payloads(out)
    assert {(c["id"], c["created"], c["model"]) for c in chunks} == {("msg_9", 1700000001, "claude-x")}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-2]]
    assert deltas == [
        {"reasoning_content": "Hmm."},
        {"content": "Let me "},
        {"content": "check."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_a",
                    "type": "function",
                    "function": {"name": "look", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "toolu_b",
                    "type": "function",
                    "function": {"name": "time", "arguments": "{}"},
                }
            ]
        },
    ]
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 30 and chunks[-1]["usage"]["completion_tokens"] == 12
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 2}

    state = ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(c))
    final = state.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert [(t.id, t.function.name, t.function.arguments) for t in message.tool_calls or []] == [
        ("toolu_a", "look", '{"x":1}'),
        ("toolu_b", "time", "{}"),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.total_tokens == 42


def test_translated_stream_without_usage_and_without_message_start() -> None:
    encoder = DIALECT.stream_encoder(request_for(stream=True))
    encoder.commit("gemini")
    out = encoder.encode([TextDelta(text="Hi")], None) + encoder.encode([Finish(reason="length")], None)
    out += encoder.finish()
    chunks = payloads(out)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[0]["id"].startswith("chatcmpl-") and chunks[0]["model"] == "smart"
    assert len({c["id"] for c in chunks}) == 1


def test_text_chunks_carry_the_text_exactly_with_the_chunk_shape() -> None:
    encoder = DIALECT.stream_encoder(request_for(stream=True))
    encoder.commit("anthropic")
    texts = ["Hello", 'a "quote", a \\ backslash', "ünïcödé ✓", "line\nbreak", "\u2028", "}]"]
    out = encoder.encode([MessageStart(id="msg_1", model="claude-x", created=5)], None)
    out += b"".join(encoder.encode([TextDelta(text=t)], None) for t in texts)
    out += encoder.encode([TextDelta(text="a"), TextDelta(text="b")], None) + encoder.finish()
    chunks = payloads(out)
    assert [c["choices"][0]["delta"] for c in chunks[1:]] == [{"content": t} for t in [*texts, "a", "b"]]
    for c in chunks:
        assert (c["id"], c["object"], c["created"], c["model"]) == (
            "msg_1",
            "chat.completion.chunk",
            5,
            "claude-x",
        )
        assert c["choices"][0]["index"] == 0 and c["choices"][0]["finish_reason"] is None


def test_an_empty_translated_stream_still_reports_usage_when_asked() -> None:
    encoder = DIALECT.stream_encoder(request_for(stream=True, include_usage=True))
    encoder.commit("anthropic")
    start = MessageStart(id="m1", model="x")
    assert encoder.encode([start], None).count(b"data: ") == 1
    assert encoder.encode([start], None) == b""  # a repeated start adds nothing
    chunks = payloads(encoder.finish())
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 0


def upstream_frames(include_usage_chunk: bool = True) -> list[tuple[list[StreamEvent], SSEFrame]]:
    head = '"id":"chatcmpl-u","object":"chat.completion.chunk","created":1,"model":"gpt-4o"'
    texts = [
        f'{{{head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"finish_reason":null}}],"x_vendor":1}}',
        f'{{{head},"choices":[{{"index":0,"delta":{{"content":"Hi"}},"finish_reason":"stop"}}]}}',
    ]
    if include_usage_chunk:
        texts.append(
            f'{{{head},"choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}}}'
        )
    texts.append("[DONE]")
    found = frames(b"".join(f"data: {t}\n\n".encode() for t in texts))
    events: list[list[StreamEvent]] = [
        [MessageStart(id="chatcmpl-u", model="gpt-4o", created=1)],
        [TextDelta(text="Hi"), Finish(reason="stop")],
    ]
    if include_usage_chunk:
        events.append([UsageUpdate(usage=Usage(input_tokens=3, output_tokens=1))])
    events.append([])
    return list(zip(events, found, strict=True))


@pytest.mark.parametrize("include_usage", [True, False])
def test_passthrough_stream_forwards_upstream_frames_byte_for_byte(include_usage: bool) -> None:
    encoder = DIALECT.stream_encoder(request_for(stream=True, include_usage=include_usage))
    encoder.commit("openai")
    pairs = upstream_frames()
    outputs = [encoder.encode(events, frame) for events, frame in pairs]
    assert outputs[0] == pairs[0][1].raw and b"x_vendor" in outputs[0]
    assert outputs[1] == pairs[1][1].raw
    assert outputs[2] == (pairs[2][1].raw if include_usage else b"")
    assert outputs[3] == b""  # the upstream's [DONE] is sent once, by finish()
    assert encoder.finish() == b"data: [DONE]\n\n"


def test_stream_error_frame_is_openai_mid_stream_error_shape() -> None:
    encoder = DIALECT.stream_encoder(request_for(stream=True))
    encoder.commit("openai")
    out = encoder.error(ProviderError("overloaded", "upstream overloaded", code="overloaded_error"))
    [frame] = frames(out)
    assert out.startswith(b"data: ") and out.endswith(b"\n\n") and frame.event is None
    payload = json.loads(frame.data)
    specs.check_schema("openai", "ErrorResponse", payload)
    assert payload == {
        "error": {
            "message": "upstream overloaded",
            "type": "service_unavailable_error",
            "param": None,
            "code": "overloaded_error",
        }
    }


# --- render_error ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "status", "etype", "code"),
    [
        (BadRequest("bad", param="messages[0].content"), 400, "invalid_request_error", "invalid_request"),
        (AuthenticationFailed("no key"), 401, "authentication_error", "authentication"),
        (PaymentRequired("budget spent"), 402, "insufficient_quota", "budget_exceeded"),
        (PermissionDenied("nope"), 403, "permission_error", "permission"),
        (NotFound("no such model"), 404, "not_found_error", "not_found"),
        (RateLimited("slow down", retry_after=2), 429, "rate_limit_error", "rate_limit_exceeded"),
        (InternalError("oops"), 500, "server_error", "internal_error"),
        (
            ProviderError("context_too_long", "too long"),
            400,
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (ProviderError("context_too_long", "too long", code="ctx"), 400, "invalid_request_error", "ctx"),
        (ProviderError("server_error", "boom"), 502, "server_error", "server_error"),
        (ProviderError("timeout", "slow"), 504, "server_error", "timeout"),
    ],
)
def test_render_error_shapes(err: SwitchpointError, status: int, etype: str, code: str) -> None:
    got_status, body = DIALECT.render_error(err)
    payload = json.loads(body)
    specs.check_schema("openai", "ErrorResponse", payload)
    assert got_status == status
    assert payload["error"] == {"message": err.message, "type": etype, "param": err.param, "code": code}


# --- embeddings ------------------------------------------------------------------------------


def decode_embeddings(body: dict[str, Any]) -> EmbeddingRequest:
    return DIALECT.decode_embeddings(json.dumps(body).encode(), {})


def test_decode_embeddings_inputs() -> None:
    single = decode_embeddings(
        {"model": "e", "input": "hello", "dimensions": 64, "user": "u", "encoding_format": "base64"}
    )
    assert (single.inputs, single.dimensions, single.user, single.encoding_format) == (
        ["hello"],
        64,
        "u",
        "base64",
    )
    assert decode_embeddings({"model": "e", "input": ["a", "b"]}).inputs == ["a", "b"]
    tokens = decode_embeddings({"model": "e", "input": [[1, 2], [3]]})
    assert tokens.inputs == [] and tokens.raw == {"model": "e", "input": [[1, 2], [3]]}
    assert decode_embeddings({"model": "e", "input": [1212, 318]}).inputs == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "e"}, "input"),
        ({"model": "e", "input": ""}, "input"),
        ({"model": "e", "input": []}, "input"),
        ({"model": "e", "input": ["a", 1]}, "input"),
        ({"model": "e", "input": [[]]}, "input"),
        ({"model": "e", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "e", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_decode_embeddings_rejects_bad_bodies(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_embeddings(body)
    assert info.value.param == param and info.value.status == 400


def test_encode_embeddings_float_base64_and_passthrough() -> None:
    response = EmbeddingResponse(
        model="gemini-embedding",
        data=[Embedding(index=0, vector=[0.5, -2.0]), Embedding(index=1, vector=[1.25, 0.0])],
        usage=Usage(input_tokens=6),
        family="gemini",
    )
    out = DIALECT.encode_embeddings(response, EmbeddingRequest(model="e", inputs=["a", "b"]))
    specs.check_response("openai", "POST", EMB_URL, 200, out)
    body = json.loads(out)
    assert body == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -2.0]},
            {"object": "embedding", "index": 1, "embedding": [1.25, 0.0]},
        ],
        "model": "gemini-embedding",
        "usage": {"prompt_tokens": 6, "total_tokens": 6},
    }
    b64 = json.loads(
        DIALECT.encode_embeddings(
            response, EmbeddingRequest(model="e", inputs=["a"], encoding_format="base64")
        )
    )
    assert struct.unpack("<2f", base64.b64decode(b64["data"][0]["embedding"])) == (0.5, -2.0)
    raw = b'{"object":"list","data":[],"model":"x","usage":{"prompt_tokens":0,"total_tokens":0}}'
    passthrough = EmbeddingResponse(model="x", data=[], family="openai", raw=raw)
    assert DIALECT.encode_embeddings(passthrough, EmbeddingRequest(model="e", inputs=["a"])) is raw


# --- end to end with the adapter ---------------------------------------------------------------


def test_decoded_request_passes_through_the_openai_adapter_losslessly() -> None:
    from switchpoint import config
    from switchpoint.providers.openai import OpenAIAdapter

    cfg = config.parse(
        {
            "providers": {
                "p": {"family": "openai", "base_url": "https://api.openai.com/v1", "api_key": "env:K"}
            },
            "deployments": {"d": {"provider": "p", "model": "gpt-4.1"}},
        },
        env={"K": "sk-x"},
    )
    body = {"model": "alias", "messages": [user()], "store": False, "verbosity": "low", "stream": True}
    built = OpenAIAdapter().build_chat(decode(body), cfg.deployments["d"])
    specs.check_request("openai", "POST", built.url, built.body, built.headers)
    assert json.loads(built.body) == {**body, "model": "gpt-4.1", "stream_options": {"include_usage": True}}
