"""The simulated provider, in-process: every wire's responses and stream events against the
providers' published specs, plus the simulated model's behaviour (determinism, tools, JSON,
images, thinking, usage, prompt caching, embeddings, auth and validation errors)."""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from switchpoint.simulator import SimConfig, create_app

import specs

OPENAI_H = {"authorization": "Bearer sk-test"}
ANTHROPIC_H = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_H = {"x-goog-api-key": "g-test"}
OPENAI_SPEC = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_SPEC = "https://api.anthropic.com/v1/messages"
GEMINI_SPEC = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
GEMINI_PATH = "/gemini/v1beta/models/gemini-2.5-flash"

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "hourly": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["city", "unit", "days", "hourly", "tags"],
}
TIME = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}


def client_for(config: SimConfig | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(config)), base_url="http://sim")


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(SimConfig(seed=7)) as client:
        yield client


def sse(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event; any line other than event:/data: fails the test."""
    events: list[tuple[str | None, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block:
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        events.append((name, "\n".join(data)))
    return events


async def openai_chat(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("model", "gpt-4o")
    return await client.post("/openai/v1/chat/completions", json=body, headers=OPENAI_H)


async def anthropic_chat(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("model", "claude-sonnet-4-5")
    body.setdefault("max_tokens", 1024)
    return await client.post("/anthropic/v1/messages", json=body, headers=ANTHROPIC_H)


async def gemini_chat(client: httpx.AsyncClient, stream: bool = False, **body: Any) -> httpx.Response:
    action = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
    return await client.post(GEMINI_PATH + action, json=body, headers=GEMINI_H)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def gemini_user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"text": text}]}]


def openai_ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    specs.check_response("openai", "POST", OPENAI_SPEC, 200, resp.content)
    body: dict[str, Any] = resp.json()
    return body


def anthropic_ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    specs.check_response("anthropic", "POST", ANTHROPIC_SPEC, 200, resp.content)
    body: dict[str, Any] = resp.json()
    return body


def gemini_ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    specs.check_response("gemini", "POST", GEMINI_SPEC, 200, resp.content)
    body: dict[str, Any] = resp.json()
    return body


def openai_stream(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse(resp.text)
    assert events[-1] == (None, "[DONE]")
    chunks = []
    for name, data in events[:-1]:
        assert name is None
        specs.check_schema("openai", specs.STREAM_EVENT_SCHEMA["openai"], data)
        chunks.append(json.loads(data))
    return chunks


def anthropic_stream(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    out = []
    for name, data in sse(resp.text):
        specs.check_schema("anthropic", specs.STREAM_EVENT_SCHEMA["anthropic"], data)
        event = json.loads(data)
        assert event["type"] == name
        out.append(event)
    return out


def gemini_stream(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    out = []
    for name, data in sse(resp.text):
        assert name is None
        specs.check_schema("gemini", specs.STREAM_EVENT_SCHEMA["gemini"], data)
        out.append(json.loads(data))
    return out


def openai_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def anthropic_text(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["delta"]["text"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )


def gemini_text(chunks: list[dict[str, Any]]) -> str:
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


# --- plain answers and streams, per wire ---------------------------------------------------


async def test_openai_chat_is_labelled_and_conforms(sim: httpx.AsyncClient) -> None:
    body = openai_ok(await openai_chat(sim, messages=user("Hello there")))
    choice = body["choices"][0]
    assert choice["message"]["content"].startswith("[simulated gpt-4o] ")
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == 24
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_openai_stream_framing_matches_plain_answer(sim: httpx.AsyncClient) -> None:
    messages = user("Stream me something")
    plain = openai_ok(await openai_chat(sim, messages=messages))
    resp = await openai_chat(sim, messages=messages, stream=True, stream_options={"include_usage": True})
    chunks = openai_stream(resp)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) == 24  # one piece per chunk
    assert openai_text(chunks) == plain["choices"][0]["message"]["content"]
    finish = chunks[-2]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 24
    assert last["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]
    assert len({c["id"] for c in chunks}) == 1


async def test_openai_stream_without_usage_has_no_usage_chunk(sim: httpx.AsyncClient) -> None:
    chunks = openai_stream(await openai_chat(sim, messages=user("hi"), stream=True))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


async def test_anthropic_message_is_labelled_and_conforms(sim: httpx.AsyncClient) -> None:
    body = anthropic_ok(await anthropic_chat(sim, messages=user("Hello"), system="Be brief."))
    assert body["content"][0]["type"] == "text"
    assert body["content"][0]["text"].startswith("[simulated claude-sonnet-4-5] ")
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["output_tokens"] == 24
    assert body["id"].startswith("msg_")


async def test_anthropic_stream_framing_matches_plain_answer(sim: httpx.AsyncClient) -> None:
    messages = user("Stream please")
    plain = anthropic_ok(await anthropic_chat(sim, messages=messages))
    events = anthropic_stream(await anthropic_chat(sim, messages=messages, stream=True))
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[3:-3] == ["content_block_delta"] * 24
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert anthropic_text(events) == plain["content"][0]["text"]
    start = events[0]["message"]
    assert start["usage"]["input_tokens"] == plain["usage"]["input_tokens"]
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 24


async def test_gemini_generate_is_labelled_and_conforms(sim: httpx.AsyncClient) -> None:
    body = gemini_ok(
        await gemini_chat(
            sim, contents=gemini_user("Hi"), systemInstruction={"parts": [{"text": "Be brief."}]}
        )
    )
    candidate = body["candidates"][0]
    assert candidate["content"]["role"] == "model"
    assert candidate["content"]["parts"][0]["text"].startswith("[simulated gemini-2.5-flash] ")
    assert candidate["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert usage["candidatesTokenCount"] == 24
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 24


async def test_gemini_stream_framing_matches_plain_answer(sim: httpx.AsyncClient) -> None:
    contents = gemini_user("Stream it")
    plain = gemini_ok(await gemini_chat(sim, contents=contents))
    resp = await gemini_chat(sim, stream=True, contents=contents)
    assert "\r\n\r\n" in resp.text
    chunks = gemini_stream(resp)
    assert len(chunks) == 25
    assert all("usageMetadata" not in c and "finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == plain["usageMetadata"]
    assert gemini_text(chunks) == plain["candidates"][0]["content"]["parts"][0]["text"]


async def test_gemini_stream_without_sse_is_a_json_array(sim: httpx.AsyncClient) -> None:
    resp = await sim.post(
        GEMINI_PATH + ":streamGenerateContent", json={"contents": gemini_user("x")}, headers=GEMINI_H
    )
    assert resp.status_code == 200
    chunks = resp.json()
    assert isinstance(chunks, list) and len(chunks) == 25
    for chunk in chunks:
        specs.check_schema("gemini", "GenerateContentResponse", chunk)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


# --- determinism ---------------------------------------------------------------------------


async def test_same_prompt_same_answer_other_prompt_or_seed_differs(sim: httpx.AsyncClient) -> None:
    first = openai_ok(await openai_chat(sim, messages=user("What is up?")))
    again = openai_ok(await openai_chat(sim, messages=user("What is up?")))
    other = openai_ok(await openai_chat(sim, messages=user("What is down?")))
    text = first["choices"][0]["message"]["content"]
    assert again["choices"][0]["message"]["content"] == text
    assert other["choices"][0]["message"]["content"] != text
    async with client_for(SimConfig(seed=8)) as reseeded:
        moved = openai_ok(await openai_chat(reseeded, messages=user("What is up?")))
    assert moved["choices"][0]["message"]["content"] != text


# --- tools -------------------------------------------------------------------------------


def openai_tools(*schemas: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": n, "parameters": s}} for n, s in schemas]


async def test_openai_tool_call_has_schema_valid_arguments(sim: httpx.AsyncClient) -> None:
    body = openai_ok(
        await openai_chat(sim, messages=user("Weather?"), tools=openai_tools(("weather", WEATHER)))
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "weather" and call["id"].startswith("call_")
    Draft202012Validator(WEATHER).validate(json.loads(call["function"]["arguments"]))


async def test_openai_forced_tool_and_none(sim: httpx.AsyncClient) -> None:
    tools = openai_tools(("weather", WEATHER), ("time", TIME))
    forced = openai_ok(
        await openai_chat(
            sim,
            messages=user("x"),
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "time"}},
        )
    )
    assert [c["function"]["name"] for c in forced["choices"][0]["message"]["tool_calls"]] == ["time"]
    none = openai_ok(await openai_chat(sim, messages=user("x"), tools=tools, tool_choice="none"))
    assert none["choices"][0]["finish_reason"] == "stop"
    assert none["choices"][0]["message"]["content"].startswith("[simulated")


async def test_openai_parallel_calls_when_asked(sim: httpx.AsyncClient) -> None:
    tools = openai_tools(("weather", WEATHER), ("time", TIME))
    body = openai_ok(await openai_chat(sim, messages=user("Do both in parallel please"), tools=tools))
    names = [c["function"]["name"] for c in body["choices"][0]["message"]["tool_calls"]]
    assert names == ["weather", "time"]
    single = openai_ok(
        await openai_chat(sim, messages=user("Do both in parallel"), tools=tools, parallel_tool_calls=False)
    )
    assert len(single["choices"][0]["message"]["tool_calls"]) == 1


async def test_openai_tool_result_is_quoted(sim: httpx.AsyncClient) -> None:
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny and 21 degrees in Oslo"},
    ]
    body = openai_ok(await openai_chat(sim, messages=messages, tools=openai_tools(("weather", WEATHER))))
    assert body["choices"][0]["finish_reason"] == "stop"
    assert "Sunny and 21 degrees in Oslo" in body["choices"][0]["message"]["content"]


async def test_openai_streamed_tool_call_reassembles(sim: httpx.AsyncClient) -> None:
    tools = openai_tools(("weather", WEATHER), ("time", TIME))
    resp = await openai_chat(sim, messages=user("both in parallel"), tools=tools, stream=True)
    chunks = openai_stream(resp)
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    for chunk in chunks:
        for delta in chunk["choices"][0]["delta"].get("tool_calls", []):
            if "id" in delta:
                names[delta["index"]] = delta["function"]["name"]
            args[delta["index"]] = args.get(delta["index"], "") + delta["function"].get("arguments", "")
    assert names == {0: "weather", 1: "time"}
    Draft202012Validator(WEATHER).validate(json.loads(args[0]))
    Draft202012Validator(TIME).validate(json.loads(args[1]))
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_anthropic_tool_use_plain_and_streamed(sim: httpx.AsyncClient) -> None:
    tools = [{"name": "weather", "input_schema": WEATHER}, {"name": "time", "input_schema": TIME}]
    body = anthropic_ok(
        await anthropic_chat(sim, messages=user("x"), tools=tools, tool_choice={"type": "any"})
    )
    assert body["stop_reason"] == "tool_use"
    (block,) = body["content"]
    assert block["type"] == "tool_use" and block["name"] == "weather" and block["id"].startswith("toolu_")
    Draft202012Validator(WEATHER).validate(block["input"])
    events = anthropic_stream(await anthropic_chat(sim, messages=user("x"), tools=tools, stream=True))
    partial = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == block["input"]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


async def test_anthropic_forced_tool_and_tool_result(sim: httpx.AsyncClient) -> None:
    tools = [{"name": "weather", "input_schema": WEATHER}, {"name": "time", "input_schema": TIME}]
    forced = anthropic_ok(
        await anthropic_chat(
            sim, messages=user("x"), tools=tools, tool_choice={"type": "tool", "name": "time"}
        )
    )
    assert forced["content"][0]["name"] == "time"
    messages = [
        {"role": "user", "content": "time?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "time", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "It is 10:42 in Lima"}],
        },
    ]
    answer = anthropic_ok(await anthropic_chat(sim, messages=messages, tools=tools))
    assert answer["stop_reason"] == "end_turn"
    assert "It is 10:42 in Lima" in answer["content"][0]["text"]


async def test_gemini_function_call_and_response(sim: httpx.AsyncClient) -> None:
    tools = [
        {
            "functionDeclarations": [
                {"name": "weather", "parametersJsonSchema": WEATHER},
                {
                    "name": "time",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"zone": {"type": "STRING"}},
                        "required": ["zone"],
                    },
                },
            ]
        }
    ]
    body = gemini_ok(await gemini_chat(sim, contents=gemini_user("both in parallel"), tools=tools))
    calls = [p["functionCall"] for p in body["candidates"][0]["content"]["parts"]]
    assert [c["name"] for c in calls] == ["weather", "time"]
    Draft202012Validator(WEATHER).validate(calls[0]["args"])
    assert calls[1]["args"] == {"zone": "sim"}
    forced = gemini_ok(
        await gemini_chat(
            sim,
            contents=gemini_user("x"),
            tools=tools,
            toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["time"]}},
        )
    )
    assert forced["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "time"
    contents = [
        *gemini_user("weather?"),
        {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "weather", "response": {"sky": "overcast"}}}],
        },
    ]
    answer = gemini_ok(await gemini_chat(sim, contents=contents, tools=tools))
    assert "overcast" in answer["candidates"][0]["content"]["parts"][0]["text"]
    chunks = gemini_stream(await gemini_chat(sim, stream=True, contents=gemini_user("go"), tools=tools))
    assert chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "weather"


# --- JSON mode, images, thinking ------------------------------------------------------------


async def test_json_schema_answers_conform(sim: httpx.AsyncClient) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER, "strict": True}}
    body = openai_ok(await openai_chat(sim, messages=user("x"), response_format=fmt))
    Draft202012Validator(WEATHER).validate(json.loads(body["choices"][0]["message"]["content"]))
    plain = openai_ok(await openai_chat(sim, messages=user("x"), response_format={"type": "json_object"}))
    assert json.loads(plain["choices"][0]["message"]["content"])["simulated"] == "gpt-4o"
    anth = anthropic_ok(
        await anthropic_chat(
            sim, messages=user("x"), output_config={"format": {"type": "json_schema", "schema": TIME}}
        )
    )
    Draft202012Validator(TIME).validate(json.loads(anth["content"][0]["text"]))
    gem = gemini_ok(
        await gemini_chat(
            sim,
            contents=gemini_user("x"),
            generationConfig={"responseMimeType": "application/json", "responseJsonSchema": WEATHER},
        )
    )
    Draft202012Validator(WEATHER).validate(json.loads(gem["candidates"][0]["content"]["parts"][0]["text"]))
    chunks = openai_stream(await openai_chat(sim, messages=user("x"), response_format=fmt, stream=True))
    assert json.loads(openai_text(chunks)) == json.loads(body["choices"][0]["message"]["content"])


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


async def test_images_are_counted(sim: httpx.AsyncClient) -> None:
    url = {"url": "data:image/png;base64," + PIXEL}
    parts = [{"type": "text", "text": "What is here?"}, {"type": "image_url", "image_url": url}] * 2
    body = openai_ok(await openai_chat(sim, messages=[{"role": "user", "content": parts}]))
    assert "I see 2 images." in body["choices"][0]["message"]["content"]
    text_only = openai_ok(await openai_chat(sim, messages=user("What is here?\nWhat is here?")))
    assert body["usage"]["prompt_tokens"] > text_only["usage"]["prompt_tokens"] + 100
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}
    anth = anthropic_ok(await anthropic_chat(sim, messages=[{"role": "user", "content": [image]}]))
    assert "I see 1 image." in anth["content"][0]["text"]
    gem = gemini_ok(
        await gemini_chat(
            sim,
            contents=[{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": PIXEL}}]}],
        )
    )
    assert "I see 1 image." in gem["candidates"][0]["content"]["parts"][0]["text"]


async def test_anthropic_thinking_has_signed_blocks(sim: httpx.AsyncClient) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    body = anthropic_ok(await anthropic_chat(sim, messages=user("think"), max_tokens=4096, thinking=thinking))
    first, second = body["content"]
    assert first["type"] == "thinking" and first["thinking"] and first["signature"]
    assert second["type"] == "text"
    assert body["usage"]["output_tokens"] == 24 + len(first["thinking"].split())
    events = anthropic_stream(
        await anthropic_chat(sim, messages=user("think"), max_tokens=4096, thinking=thinking, stream=True)
    )
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta") == first["thinking"]
    assert [d["signature"] for d in deltas if d["type"] == "signature_delta"] == [first["signature"]]
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text"]
    bad = await anthropic_chat(sim, messages=user("x"), max_tokens=1500, thinking=thinking)
    assert bad.status_code == 400
    specs.check_response("anthropic", "POST", ANTHROPIC_SPEC, 400, bad.content)


async def test_openai_reasoning_tokens(sim: httpx.AsyncClient) -> None:
    body = openai_ok(await openai_chat(sim, messages=user("think"), reasoning_effort="high"))
    usage = body["usage"]
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert reasoning > 0
    assert usage["completion_tokens"] == 24 + reasoning


async def test_gemini_thoughts(sim: httpx.AsyncClient) -> None:
    config = {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}
    body = gemini_ok(await gemini_chat(sim, contents=gemini_user("think"), generationConfig=config))
    parts = body["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and parts[1]["text"].startswith("[simulated")
    thoughts = body["usageMetadata"]["thoughtsTokenCount"]
    assert thoughts > 0
    assert (
        body["usageMetadata"]["totalTokenCount"] == body["usageMetadata"]["promptTokenCount"] + 24 + thoughts
    )
    hidden = gemini_ok(
        await gemini_chat(
            sim, contents=gemini_user("think"), generationConfig={"thinkingConfig": {"thinkingBudget": 512}}
        )
    )
    assert [p.get("thought") for p in hidden["candidates"][0]["content"]["parts"]] == [None]
    assert hidden["usageMetadata"]["thoughtsTokenCount"] == thoughts


# --- usage, limits and caching ------------------------------------------------------------


async def test_input_tokens_same_for_stream_and_grow_with_prompt(sim: httpx.AsyncClient) -> None:
    short = openai_ok(await openai_chat(sim, messages=user("a" * 40)))
    long = openai_ok(await openai_chat(sim, messages=user("a" * 400)))
    assert long["usage"]["prompt_tokens"] - short["usage"]["prompt_tokens"] == 90
    count = await sim.post(
        "/anthropic/v1/messages/count_tokens",
        json={"model": "claude-sonnet-4-5", "messages": user("count me")},
        headers=ANTHROPIC_H,
    )
    assert count.status_code == 200
    specs.check_response(
        "anthropic", "POST", "https://api.anthropic.com/v1/messages/count_tokens", 200, count.content
    )
    message = anthropic_ok(await anthropic_chat(sim, messages=user("count me")))
    assert count.json()["input_tokens"] == message["usage"]["input_tokens"]
    events = anthropic_stream(await anthropic_chat(sim, messages=user("count me"), stream=True))
    assert events[0]["message"]["usage"]["input_tokens"] == message["usage"]["input_tokens"]


async def test_max_tokens_truncates_with_length_finish(sim: httpx.AsyncClient) -> None:
    body = openai_ok(await openai_chat(sim, messages=user("x"), max_completion_tokens=5))
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    anth = anthropic_ok(await anthropic_chat(sim, messages=user("x"), max_tokens=5))
    assert anth["stop_reason"] == "max_tokens" and anth["usage"]["output_tokens"] == 5
    gem = gemini_ok(
        await gemini_chat(sim, contents=gemini_user("x"), generationConfig={"maxOutputTokens": 5})
    )
    assert gem["candidates"][0]["finishReason"] == "MAX_TOKENS"


LONG = "The quick brown fox jumps over the lazy dog. " * 100  # ≈ 1125 tokens


async def test_openai_prompt_cache_on_repeat_and_prefix(sim: httpx.AsyncClient) -> None:
    messages = [{"role": "system", "content": LONG}, *user("first question")]
    first = openai_ok(await openai_chat(sim, messages=messages))
    assert first["usage"]["prompt_tokens"] >= 1024
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    second = openai_ok(await openai_chat(sim, messages=messages, stream=False))
    prompt = second["usage"]["prompt_tokens"]
    # OpenAI caches 1024 tokens and then steps of 128: the cached part is the prompt rounded down.
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == 1024 + (prompt - 1024) // 128 * 128
    longer = [*messages, {"role": "assistant", "content": "ok"}, *user("follow-up")]
    third = openai_ok(await openai_chat(sim, messages=longer))
    cached = third["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert (cached - 1024) % 128 == 0
    assert first["usage"]["prompt_tokens"] - 128 < cached < third["usage"]["prompt_tokens"]
    short = openai_ok(await openai_chat(sim, messages=user("tiny")))
    again = openai_ok(await openai_chat(sim, messages=user("tiny")))
    assert short["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


async def test_anthropic_cache_needs_cache_control(sim: httpx.AsyncClient) -> None:
    system = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    first = anthropic_ok(await anthropic_chat(sim, system=system, messages=user("q")))["usage"]
    assert first["cache_creation_input_tokens"] > 1000 and first["cache_read_input_tokens"] == 0
    second = anthropic_ok(await anthropic_chat(sim, system=system, messages=user("q")))["usage"]
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] == first["input_tokens"]
    events = anthropic_stream(await anthropic_chat(sim, system=system, messages=user("q"), stream=True))
    assert events[-2]["usage"]["cache_read_input_tokens"] == second["cache_read_input_tokens"]
    plain_system = [{"type": "text", "text": LONG}]
    for _ in range(2):
        usage = anthropic_ok(await anthropic_chat(sim, system=plain_system, messages=user("q")))["usage"]
        assert usage["cache_read_input_tokens"] == 0 and usage["cache_creation_input_tokens"] == 0


async def test_gemini_implicit_cache(sim: httpx.AsyncClient) -> None:
    contents = gemini_user(LONG)
    first = gemini_ok(await gemini_chat(sim, contents=contents))["usageMetadata"]
    assert "cachedContentTokenCount" not in first
    second = gemini_ok(await gemini_chat(sim, contents=contents))["usageMetadata"]
    assert second["cachedContentTokenCount"] == second["promptTokenCount"] == first["promptTokenCount"]


async def test_cache_is_bounded() -> None:
    async with client_for(SimConfig(cache_entries=1)) as client:
        a = [{"role": "system", "content": LONG + "a"}, *user("q")]
        b = [{"role": "system", "content": LONG + "b"}, *user("q")]
        for messages in (a, b, a):
            body = openai_ok(await openai_chat(client, messages=messages))
            assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


# --- embeddings and models ------------------------------------------------------------------


async def test_openai_embeddings(sim: httpx.AsyncClient) -> None:
    url = "/openai/v1/embeddings"
    resp = await sim.post(
        url,
        json={"model": "text-embedding-3-small", "input": ["a cat", "a cat", "stock market"]},
        headers=OPENAI_H,
    )
    assert resp.status_code == 200
    specs.check_response("openai", "POST", "https://api.openai.com/v1/embeddings", 200, resp.content)
    body = resp.json()
    vectors = [d["embedding"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(len(v) == 256 for v in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-9) for v in vectors)
    assert vectors[0] == vectors[1] and vectors[0] != vectors[2]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    small = await sim.post(
        url,
        json={"model": "m", "input": "a cat", "dimensions": 32, "encoding_format": "base64"},
        headers=OPENAI_H,
    )
    assert small.status_code == 200
    packed = base64.b64decode(small.json()["data"][0]["embedding"])
    values = struct.unpack("<32f", packed)
    assert math.isclose(sum(x * x for x in values), 1.0, rel_tol=1e-5)
    empty = await sim.post(url, json={"model": "m", "input": ""}, headers=OPENAI_H)
    assert empty.status_code == 400
    specs.check_schema("openai", "ErrorResponse", empty.json())


async def test_similar_texts_have_similar_embeddings(sim: httpx.AsyncClient) -> None:
    texts = ["the weather in paris today", "the weather in paris tomorrow", "quarterly revenue report"]
    resp = await sim.post("/openai/v1/embeddings", json={"model": "m", "input": texts}, headers=OPENAI_H)
    a, b, c = (d["embedding"] for d in resp.json()["data"])
    assert sum(x * y for x, y in zip(a, b, strict=True)) > sum(x * y for x, y in zip(a, c, strict=True)) + 0.3


async def test_gemini_embeddings(sim: httpx.AsyncClient) -> None:
    base = "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001"
    one = await sim.post(
        "/gemini/v1beta/models/gemini-embedding-001:embedContent",
        json={"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 64},
        headers=GEMINI_H,
    )
    assert one.status_code == 200
    specs.check_response("gemini", "POST", base + ":embedContent", 200, one.content)
    assert len(one.json()["embedding"]["values"]) == 64
    batch = await sim.post(
        "/gemini/v1beta/models/gemini-embedding-001:batchEmbedContents",
        json={
            "requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}} for t in "ab"
            ]
        },
        headers=GEMINI_H,
    )
    assert batch.status_code == 200
    specs.check_response("gemini", "POST", base + ":batchEmbedContents", 200, batch.content)
    assert [len(e["values"]) for e in batch.json()["embeddings"]] == [256, 256]


async def test_models_list(sim: httpx.AsyncClient) -> None:
    resp = await sim.get("/openai/v1/models", headers=OPENAI_H)
    assert resp.status_code == 200
    specs.check_response("openai", "GET", "https://api.openai.com/v1/models", 200, resp.content)
    assert "gpt-4o" in [m["id"] for m in resp.json()["data"]]
