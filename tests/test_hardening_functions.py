"""The deprecated ``functions`` / ``function_call`` of Chat Completions (still in the spec).

OpenAI client → OpenAI upstream: passed through as sent. Any other upstream: translated to
tools and a tool choice, and the answer comes back in the shape the OpenAI API gave a client
that used ``functions``: ``message.function_call`` (``delta.function_call`` when streamed) and
``finish_reason: "function_call"``. History with assistant ``function_call`` and ``function``
messages decodes into tool calls and their results.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from switchpoint import config
from switchpoint.api.openai import OpenAIDialect
from switchpoint.canonical import (
    ChatRequest,
    ChatResponse,
    Finish,
    ToolCallDelta,
    ToolCallPart,
    ToolResultPart,
)
from switchpoint.errors import BadRequest
from switchpoint.providers.base import UpstreamResponse
from switchpoint.providers.openai import OpenAIAdapter, OpenAIStreamParser
from switchpoint.streaming import SSEDecoder

import specs
from gateway_harness import GATEWAY_KEY, family_of_url, validate_sent

OAI = {"authorization": f"Bearer {GATEWAY_KEY}"}
URL = "https://api.openai.com/v1/chat/completions"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    },
    {"role": "function", "name": "get_weather", "content": "22C and sunny"},
    {"role": "user", "content": "And in Rome?"},
]
DIALECT = OpenAIDialect()


@pytest.fixture
def http(gateway: Any) -> Iterator[httpx.Client]:
    gateway.sent.clear()
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client
    validate_sent(gateway.sent)  # every upstream request is valid in its family's spec
    gateway.sent.clear()


def _sent(gateway: Any) -> tuple[str, dict[str, Any]]:
    assert len(gateway.sent) == 1
    req = gateway.sent[0]
    return family_of_url(req.url), dict(json.loads(req.body))


def _valid_completion(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    specs.check_response("openai", "POST", URL, 200, r.content)
    return dict(r.json())


def _chunks(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    out = []
    for frame in SSEDecoder().feed(r.content):
        if frame.data == b"[DONE]":
            continue
        specs.check_schema("openai", "CreateChatCompletionStreamResponse", frame.data)
        out.append(json.loads(frame.data))
    return out


# --- OpenAI → OpenAI: as sent -----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_functions_pass_through_to_an_openai_upstream_unchanged(
    gateway: Any, http: httpx.Client, stream: bool
) -> None:
    body = {
        "model": "up-openai",
        "messages": HISTORY,
        "functions": [WEATHER],
        "function_call": {"name": "get_weather"},
        "stream": stream,
    }
    r = http.post("/v1/chat/completions", json=body, headers=OAI)
    assert r.status_code == 200, r.text
    family, sent = _sent(gateway)
    assert family == "openai"
    assert sent["functions"] == [WEATHER] and sent["function_call"] == {"name": "get_weather"}
    assert sent["messages"] == HISTORY  # the history too, function messages and all
    assert "tools" not in sent and "tool_choice" not in sent and "parallel_tool_calls" not in sent


def test_the_official_client_sends_functions_through(gateway: Any, http: httpx.Client) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        done = client.chat.completions.create(
            model="up-openai",
            messages=HISTORY,  # type: ignore[arg-type]
            functions=[WEATHER],  # type: ignore[list-item]
            function_call="auto",
        )
    assert done.choices[0].message.role == "assistant"
    _, sent = _sent(gateway)
    assert sent["functions"] == [WEATHER] and sent["function_call"] == "auto"


# --- any other family: translated, answered as function_call ----------------------------------


@pytest.mark.parametrize("upstream", ["anthropic", "gemini"])
def test_functions_become_tools_and_the_answer_a_function_call(
    gateway: Any, http: httpx.Client, upstream: str
) -> None:
    body = {
        "model": f"up-{upstream}",
        "messages": [{"role": "user", "content": "Weather in Rome?"}],
        "functions": [WEATHER],
        "max_tokens": 50,
    }
    doc = _valid_completion(http.post("/v1/chat/completions", json=body, headers=OAI))
    choice = doc["choices"][0]
    message = choice["message"]
    assert choice["finish_reason"] == "function_call"
    assert "tool_calls" not in message and message["content"] is None
    assert message["function_call"]["name"] == "get_weather"
    assert isinstance(json.loads(message["function_call"]["arguments"]), dict)
    family, sent = _sent(gateway)
    assert family == upstream and "functions" not in sent
    if upstream == "anthropic":
        assert [t["name"] for t in sent["tools"]] == ["get_weather"]
        assert sent["tools"][0]["input_schema"] == WEATHER["parameters"]
        assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}  # one call
    else:
        decls = sent["tools"][0]["functionDeclarations"]
        assert [d["name"] for d in decls] == ["get_weather"]


def _blocks(sent: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for m in sent["messages"] for b in m["content"] if isinstance(b, dict) and b["type"] == kind]


@pytest.mark.parametrize("upstream", ["anthropic", "gemini"])
def test_legacy_history_becomes_tool_calls_and_results(
    gateway: Any, http: httpx.Client, upstream: str
) -> None:
    body = {"model": f"up-{upstream}", "messages": HISTORY, "functions": [WEATHER], "max_tokens": 50}
    doc = _valid_completion(http.post("/v1/chat/completions", json=body, headers=OAI))
    assert doc["choices"][0]["message"]["content"]  # the simulator answers a tool result in text
    family, sent = _sent(gateway)
    assert family == upstream
    if upstream == "anthropic":
        uses, results = _blocks(sent, "tool_use"), _blocks(sent, "tool_result")
        assert len(uses) == 1 and len(results) == 1
        assert uses[0]["name"] == "get_weather" and uses[0]["input"] == {"city": "Paris"}
        assert results[0]["tool_use_id"] == uses[0]["id"]  # the synthetic id pairs them
        assert "22C and sunny" in json.dumps(results[0]["content"])
    else:
        parts = [p for c in sent["contents"] for p in c["parts"]]
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        answers = [p["functionResponse"] for p in parts if "functionResponse" in p]
        assert [c["name"] for c in calls] == ["get_weather"] and calls[0]["args"] == {"city": "Paris"}
        assert [a["name"] for a in answers] == ["get_weather"]


@pytest.mark.parametrize("upstream", ["anthropic", "gemini"])
def test_a_streamed_answer_carries_delta_function_call(
    gateway: Any, http: httpx.Client, upstream: str
) -> None:
    body = {
        "model": f"up-{upstream}",
        "messages": [{"role": "user", "content": "Weather in Rome?"}],
        "functions": [WEATHER],
        "function_call": {"name": "get_weather"},
        "stream": True,
    }
    chunks = _chunks(http.post("/v1/chat/completions", json=body, headers=OAI))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert not any("tool_calls" in d for d in deltas)
    calls = [d["function_call"] for d in deltas if "function_call" in d]
    assert calls[0]["name"] == "get_weather"
    assert all("name" not in c for c in calls[1:])
    assert isinstance(json.loads("".join(c["arguments"] for c in calls)), dict)
    finishes = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert finishes == ["function_call"]
    _, sent = _sent(gateway)
    if upstream == "anthropic":
        assert sent["tool_choice"] == {
            "type": "tool",
            "name": "get_weather",
            "disable_parallel_tool_use": True,
        }


def test_the_official_client_reads_the_translated_function_call(gateway: Any, http: httpx.Client) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        done = client.chat.completions.create(
            model="up-anthropic",
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            functions=[WEATHER],  # type: ignore[list-item]
        )
        call = done.choices[0].message.function_call
        assert call is not None and call.name == "get_weather"
        assert done.choices[0].finish_reason == "function_call"
        stream = client.chat.completions.create(
            model="up-gemini",
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            functions=[WEATHER],  # type: ignore[list-item]
            stream=True,
        )
        names = [
            c.choices[0].delta.function_call.name
            for c in stream
            if c.choices and c.choices[0].delta.function_call
        ]
    assert names[0] == "get_weather"


def test_function_call_none_asks_for_no_call(gateway: Any, http: httpx.Client) -> None:
    body = {"model": "up-anthropic", "messages": HISTORY, "functions": [WEATHER], "function_call": "none"}
    doc = _valid_completion(http.post("/v1/chat/completions", json=body, headers=OAI))
    message = doc["choices"][0]["message"]
    assert "function_call" not in message and "tool_calls" not in message
    assert doc["choices"][0]["finish_reason"] == "stop" and message["content"]
    _, sent = _sent(gateway)
    assert sent["tool_choice"]["type"] == "none"


def test_tools_clients_still_get_tool_calls() -> None:
    """Legacy history alone does not change the answer's shape: ``tools`` gives tool_calls."""
    body = {"model": "m", "messages": HISTORY, "tools": [{"type": "function", "function": WEATHER}]}
    req = DIALECT.decode_chat(json.dumps(body).encode(), {})
    response = ChatResponse(
        id="r1",
        model="m",
        parts=[ToolCallPart(id="a", name="get_weather", arguments="{}")],
        finish_reason="tool_calls",
        family="anthropic",
    )
    doc = json.loads(DIALECT.encode_chat(response, req))
    specs.check_response("openai", "POST", URL, 200, doc)
    assert doc["choices"][0]["finish_reason"] == "tool_calls"
    assert "function_call" not in doc["choices"][0]["message"]
    assert doc["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


# --- decoding, unit by unit -------------------------------------------------------------------


def _decode(body: dict[str, Any]) -> ChatRequest:
    return DIALECT.decode_chat(json.dumps(body).encode(), {})


def test_history_pairs_each_function_result_with_the_call_before_it() -> None:
    history = [
        *HISTORY,
        {"role": "assistant", "content": "", "function_call": {"name": "get_weather", "arguments": "{}"}},
        {"role": "function", "name": "get_weather", "content": None},
    ]
    req = _decode({"model": "m", "messages": history, "functions": [WEATHER]})
    calls = [p for m in req.messages for p in m.parts if isinstance(p, ToolCallPart)]
    results = [p for m in req.messages for p in m.parts if isinstance(p, ToolResultPart)]
    assert [c.id for c in calls] == [r.tool_call_id for r in results]
    assert len({c.id for c in calls}) == 2  # distinct, and stable: decoding again gives the same
    assert [c.id for c in calls] == [
        p.id
        for m in _decode({"model": "m", "messages": history}).messages
        for p in m.parts
        if isinstance(p, ToolCallPart)
    ]
    assert results[0].name == "get_weather" and results[0].content[0].text == "22C and sunny"  # type: ignore[union-attr]
    assert results[1].content == []
    assert req.tools is not None and req.tools[0].name == "get_weather"
    assert req.tools[0].parameters == WEATHER["parameters"]
    assert req.parallel_tool_calls is False


@pytest.mark.parametrize(
    ("function_call", "mode", "name"),
    [("auto", "auto", None), ("none", "none", None), ({"name": "get_weather"}, "tool", "get_weather")],
)
def test_function_call_maps_onto_tool_choice(function_call: Any, mode: str, name: str | None) -> None:
    req = _decode(
        {"model": "m", "messages": HISTORY[:1], "functions": [WEATHER], "function_call": function_call}
    )
    assert req.tool_choice is not None
    assert (req.tool_choice.mode, req.tool_choice.name) == (mode, name)


def test_an_explicit_parallel_setting_is_kept() -> None:
    req = _decode(
        {"model": "m", "messages": HISTORY[:1], "functions": [WEATHER], "parallel_tool_calls": True}
    )
    assert req.parallel_tool_calls is True


def test_a_translated_answer_with_several_calls_names_only_the_first() -> None:
    req = _decode({"model": "m", "messages": HISTORY[:1], "functions": [WEATHER]})
    response = ChatResponse(
        id="r1",
        model="m",
        parts=[ToolCallPart(id="a", name="get_weather", arguments="{}"), ToolCallPart(id="b", name="other")],
        finish_reason="tool_calls",
        family="anthropic",
    )
    doc = json.loads(DIALECT.encode_chat(response, req))
    specs.check_response("openai", "POST", URL, 200, doc)
    assert doc["choices"][0]["message"]["function_call"] == {"name": "get_weather", "arguments": "{}"}


def test_a_translated_stream_drops_a_second_call() -> None:
    req = _decode({"model": "m", "messages": HISTORY[:1], "functions": [WEATHER], "stream": True})
    enc = DIALECT.stream_encoder(req)
    enc.commit("anthropic")
    events = [
        ToolCallDelta(index=0, id="a", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city":'),
        ToolCallDelta(index=1, id="b", name="other"),
        ToolCallDelta(index=1, arguments="{}"),
        ToolCallDelta(index=0, arguments='"Rome"}'),
        Finish(reason="tool_calls"),
    ]
    out = b"".join(enc.encode([e], None) for e in events) + enc.finish()
    frames = [json.loads(f.data) for f in SSEDecoder().feed(out) if f.data != b"[DONE]"]
    calls = [
        f["choices"][0]["delta"]["function_call"]
        for f in frames
        if "function_call" in f["choices"][0]["delta"]
    ]
    assert calls == [
        {"name": "get_weather", "arguments": ""},
        {"arguments": '{"city":'},
        {"arguments": '"Rome"}'},
    ]
    assert frames[-1]["choices"][0]["finish_reason"] == "function_call"


# --- an OpenAI upstream's function_call is read (accounting, stream commit) --------------------

DEPLOYMENT = config.parse(
    {
        "providers": {"local": {"family": "openai", "base_url": "http://127.0.0.1:8000/v1"}},
        "deployments": {"d": {"provider": "local", "model": "gpt"}},
    }
).deployments["d"]


def test_an_upstream_function_call_is_a_tool_call_to_the_gateway() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
                "finish_reason": "function_call",
            }
        ],
    }
    response = UpstreamResponse(status=200, headers={}, body=json.dumps(body).encode())
    parsed = OpenAIAdapter().parse_chat(response, DEPLOYMENT)
    assert parsed.finish_reason == "tool_calls"
    assert parsed.parts == [ToolCallPart(id="", name="get_weather", arguments='{"city":"Rome"}')]


def test_an_upstream_streamed_function_call_is_content_to_the_gateway() -> None:
    parser = OpenAIStreamParser(DEPLOYMENT)
    head = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt","choices":[{"index":0,'
    stream = (
        f'data: {head}"delta":{{"role":"assistant","content":null,'
        '"function_call":{"name":"get_weather","arguments":""}},"finish_reason":null}]}\n\n'
        f'data: {head}"delta":{{"function_call":{{"arguments":"{{}}"}}}},"finish_reason":null}}]}}\n\n'
        f'data: {head}"delta":{{}},"finish_reason":"function_call"}}]}}\n\n'
    ).encode()
    events = [e for frame in SSEDecoder().feed(stream) for e in parser.feed(frame)]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas == [
        ToolCallDelta(index=0, name="get_weather", arguments=""),
        ToolCallDelta(index=0, arguments="{}"),
    ]
    assert any(isinstance(e, Finish) and e.reason == "tool_calls" for e in events)


def test_beside_tools_the_newer_fields_decide() -> None:
    """The spec allows both at once (the SDK's own all-params test sends both): tools and
    tool_choice decide, functions and function_call are still checked, the answer has tool_calls."""
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    body = {
        "model": "m",
        "messages": HISTORY[:1],
        "functions": [WEATHER],
        "function_call": "none",
        "tools": [tool],
        "tool_choice": "required",
    }
    req = _decode(body)
    assert req.tools is not None and [t.name for t in req.tools] == ["lookup"]
    assert req.tool_choice is not None and req.tool_choice.mode == "required"
    assert req.parallel_tool_calls is None
    response = ChatResponse(
        id="r1",
        model="m",
        parts=[ToolCallPart(id="a", name="lookup", arguments="{}")],
        finish_reason="tool_calls",
        family="gemini",
    )
    doc = json.loads(DIALECT.encode_chat(response, req))
    assert doc["choices"][0]["finish_reason"] == "tool_calls"
    assert "function_call" not in doc["choices"][0]["message"]
    with pytest.raises(BadRequest):
        _decode({**body, "function_call": "sometimes"})


def test_function_call_alone_picks_the_tool_choice() -> None:
    tool = {"type": "function", "function": {"name": "lookup"}}
    req = _decode(
        {"model": "m", "messages": HISTORY[:1], "tools": [tool], "function_call": {"name": "lookup"}}
    )
    assert req.tool_choice is not None and (req.tool_choice.mode, req.tool_choice.name) == ("tool", "lookup")
