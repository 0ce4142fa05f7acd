"""Stream framing as clients receive it, validated event by event against the published schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import specs
from gateway_harness import GATEWAY_KEY, validate_sent

UPSTREAMS = ["openai", "anthropic", "gemini"]


@pytest.fixture(autouse=True)
def upstream_requests_valid(gateway: Any) -> Iterator[None]:
    gateway.sent.clear()
    yield
    validate_sent(gateway.sent)


def _frames(r: httpx.Response) -> list[tuple[str | None, str]]:
    frames: list[tuple[str | None, str]] = []
    event: str | None = None
    data: list[str] = []
    for line in r.iter_lines():
        if line == "":
            if data:
                frames.append((event, "\n".join(data)))
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        frames.append((event, "\n".join(data)))
    return frames


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
]


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("tools", [False, True])
def test_openai_stream_events_match_schema(gateway: Any, upstream: str, tools: bool) -> None:
    body: dict[str, Any] = {
        "model": f"up-{upstream}",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "stream please"}],
    }
    if tools:
        body["tools"] = TOOLS
    with (
        httpx.Client(base_url=gateway.url, timeout=30) as c,
        c.stream(
            "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {GATEWAY_KEY}"}
        ) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        frames = _frames(r)
    assert frames[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in frames[:-1]]
    for chunk in chunks:
        specs.check_schema("openai", "CreateChatCompletionStreamResponse", chunk)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch.get("finish_reason")]
    assert finishes == (["tool_calls"] if tools else ["stop"])


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("tools", [False, True])
def test_anthropic_stream_events_match_schema(gateway: Any, upstream: str, tools: bool) -> None:
    body: dict[str, Any] = {
        "model": f"up-{upstream}",
        "stream": True,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "stream please"}],
    }
    if tools:
        body["tools"] = [{"name": "lookup", "input_schema": TOOLS[0]["function"]["parameters"]}]  # type: ignore[index]
    headers = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
    with (
        httpx.Client(base_url=gateway.url, timeout=30) as c,
        c.stream("POST", "/v1/messages", json=body, headers=headers) as r,
    ):
        assert r.status_code == 200
        frames = _frames(r)
    types = []
    for event, data in frames:
        doc = json.loads(data)
        assert event == doc["type"], "the SSE event name equals the payload type"
        specs.check_schema("anthropic", "MessageStreamEvent", doc)
        types.append(doc["type"])
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert types[-2] == "message_delta"
    starts = types.count("content_block_start")
    assert starts >= 1 and starts == types.count("content_block_stop")
    stop_reason = json.loads(frames[-2][1])["delta"]["stop_reason"]
    assert stop_reason == ("tool_use" if tools else "end_turn")
