"""Responses passthrough: a Responses client and an OpenAI-family deployment that serves the
Responses API (``responses_api: true``) — the body goes upstream unchanged but for ``model``,
the answer (or every stream frame) comes back unchanged, and the ledger has the upstream's
usage. What was sent and returned is checked against OpenAI's published spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from resilience_harness import AUTH, GATEWAY_KEY, Server, document, gateway, provider, records
from switchpoint.config.storage import ENV_URL
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim

import specs

BASE = "https://api.openai.com/v1"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


@dataclass
class Exchange:
    path: str
    body: bytes
    answer: bytes = b""


@dataclass
class Recorder:
    """The simulator, keeping every call's path, body and answer bytes."""

    app: Any
    seen: list[Exchange] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        exchange = Exchange(scope["path"], b"".join(chunks))
        self.seen.append(exchange)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": exchange.body, "more_body": False}
            return await receive()

        async def keep(message: Any) -> None:
            if message["type"] == "http.response.body":
                exchange.answer += message.get("body", b"")
            await send(message)

        await self.app(scope, replay, keep)


@pytest.fixture(autouse=True)
def configured_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder(create_sim(SimConfig()))
    with Server(recorder) as server:
        yield server.url, recorder


@pytest.fixture
def gw(sim: tuple[str, Recorder], tmp_path: Path) -> Iterator[tuple[str, Any, Recorder]]:
    url, recorder = sim
    doc = document(
        {"p": provider(url, "openai")},
        {
            "d-fwd": {"provider": "p", "model": "gpt-4o-mini", "responses_api": True},
            "d-chat": {"provider": "p", "model": "gpt-4o-mini"},
        },
        {"fwd": "d-fwd", "chat": "d-chat"},
        storage={"url": f"sqlite:///{tmp_path / 'ledger.db'}", "flush_interval_ms": 20},
    )
    with gateway(doc) as (gurl, gateway_, _):
        recorder.seen.clear()
        yield gurl, gateway_, recorder


def _sent_upstream(recorder: Recorder) -> Exchange:
    (exchange,) = [e for e in recorder.seen if e.path != "/openai/v1/models"]
    return exchange


def _check_sent(exchange: Exchange) -> None:
    headers = {"content-type": "application/json", "authorization": "Bearer x"}
    specs.check_request("openai", "POST", f"{BASE}/responses", exchange.body, headers)


def _stream_events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]


def test_a_responses_body_is_forwarded_and_answered_unchanged(gw: tuple[str, Any, Recorder]) -> None:
    url, gateway_, recorder = gw
    body = {
        "model": "fwd",
        "instructions": "You are terse.",
        "input": [{"type": "message", "role": "user", "content": "Say hello"}],
        "max_output_tokens": 64,
        "metadata": {"purpose": "test"},
        "temperature": 0.3,
        "service_tier": "auto",  # read by no part of the gateway: still forwarded
        "store": True,
    }
    r = httpx.post(f"{url}/v1/responses", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    sent = _sent_upstream(recorder)
    assert sent.path == "/openai/v1/responses"
    assert json.loads(sent.body) == {**body, "model": "gpt-4o-mini"}  # lossless but for the model
    _check_sent(sent)
    assert r.content == sent.answer  # the upstream's own Response object
    specs.check_response("openai", "POST", f"{BASE}/responses", 200, r.content)
    assert r.headers["x-switchpoint-deployment"] == "d-fwd"
    upstream_usage = json.loads(sent.answer)["usage"]
    (record,) = records(url, gateway_)
    assert record.endpoint == "responses" and record.deployment == "d-fwd" and record.status == 200
    assert record.usage.input_tokens == upstream_usage["input_tokens"] > 0
    assert record.usage.output_tokens == upstream_usage["output_tokens"] > 0
    # stored by the gateway under the upstream's id: GET answers it
    rid = r.json()["id"]
    got = httpx.get(f"{url}/v1/responses/{rid}", headers=AUTH, timeout=30)
    assert got.status_code == 200 and got.json()["id"] == rid


def test_a_stream_is_forwarded_frame_for_frame_with_its_usage_read(gw: tuple[str, Any, Recorder]) -> None:
    url, gateway_, recorder = gw
    body = {"model": "fwd", "input": "Tell me something", "stream": True, "reasoning": {"effort": "low"}}
    with httpx.stream("POST", f"{url}/v1/responses", json=body, headers=AUTH, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        got = r.read()
    sent = _sent_upstream(recorder)
    assert sent.path == "/openai/v1/responses" and json.loads(sent.body) == {**body, "model": "gpt-4o-mini"}
    _check_sent(sent)
    assert got == sent.answer  # every frame as the upstream sent it
    events = _stream_events(got)
    for event in events:
        specs.check_schema("openai", "ResponseStreamEvent", event)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]["usage"]
    (record,) = records(url, gateway_)
    assert record.stream and record.deployment == "d-fwd" and record.status == 200
    assert record.usage.output_tokens == final["output_tokens"] > 0
    assert record.usage.reasoning_tokens == final["output_tokens_details"]["reasoning_tokens"] > 0


def test_the_sdk_round_trips_a_function_call_through_passthrough(gw: tuple[str, Any, Recorder]) -> None:
    url, _, recorder = gw
    with openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        first = client.responses.create(
            model="fwd", input="What is the weather in Paris?", tools=[WEATHER], tool_choice="required"
        )
        calls = [item for item in first.output if item.type == "function_call"]
        assert len(calls) == 1 and calls[0].name == "get_weather"
        assert json.loads(calls[0].arguments)["city"]
        second = client.responses.create(
            model="fwd",
            tools=[WEATHER],
            input=[
                {
                    "type": "function_call",
                    "call_id": calls[0].call_id,
                    "name": "get_weather",
                    "arguments": calls[0].arguments,
                },
                {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C and sunny"},
            ],
        )
        assert "18C and sunny" in second.output_text
        streamed = list(client.responses.create(model="fwd", input="Stream it", stream=True))
        assert streamed[-1].type == "response.completed" and streamed[-1].response.output_text
    sent = [e for e in recorder.seen if e.path != "/openai/v1/models"]
    assert [e.path for e in sent] == ["/openai/v1/responses"] * 3
    for exchange in sent:
        _check_sent(exchange)


def test_without_the_flag_or_when_continuing_the_request_is_translated(gw: tuple[str, Any, Recorder]) -> None:
    url, _, recorder = gw
    with openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        plain = client.responses.create(model="chat", input="Hello there")
        assert plain.output_text
        assert [e.path for e in recorder.seen] == ["/openai/v1/chat/completions"]
        recorder.seen.clear()
        first = client.responses.create(model="fwd", input="Remember the word quartz")
        follow = client.responses.create(model="fwd", input="Which word?", previous_response_id=first.id)
        assert follow.previous_response_id == first.id and follow.output_text
    # the first forwarded; the follow-up carries the gateway's conversation, so it is translated
    assert [e.path for e in recorder.seen] == ["/openai/v1/responses", "/openai/v1/chat/completions"]
    translated = json.loads(recorder.seen[1].body)
    assert "quartz" in json.dumps(translated["messages"])


def test_a_flag_on_another_family_is_refused_up_front(sim: tuple[str, Recorder]) -> None:
    from switchpoint.config import parse

    url, _ = sim
    doc = document(
        {"q": provider(url, "anthropic")},
        {"d": {"provider": "q", "model": "claude-haiku-4-5", "responses_api": True}},
        {"m": "d"},
    )
    with pytest.raises(Exception, match=r"deployments\.d\.responses_api: only the openai family"):
        parse(doc, env={"RES_UPSTREAM_KEY": "k", "RES_GATEWAY_KEY": "g"})


def _guarded(sim: tuple[str, Recorder], tmp_path: Path, guarantees: dict[str, Any]) -> dict[str, Any]:
    url, _ = sim
    return document(
        {"p": provider(url, "openai")},
        {"d-fwd": {"provider": "p", "model": "gpt-4o-mini", "responses_api": True}},
        {"fwd": "d-fwd"},
        routing={
            "rules": [
                {
                    "name": "guarded",
                    "match": {"model": "fwd"},
                    "candidates": ["d-fwd"],
                    "execution": {"retry": {"attempts": 6, "backoff_base_s": 0.001, "max_total_attempts": 6}},
                    "guarantees": guarantees,
                }
            ]
        },
        storage={"url": f"sqlite:///{tmp_path / 'guarded.db'}", "flush_interval_ms": 20},
    )


def test_output_guarantees_hold_on_forwarded_responses(sim: tuple[str, Recorder], tmp_path: Path) -> None:
    _, recorder = sim
    schema = {
        "type": "object",
        "properties": {"word": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["word", "n"],
        "additionalProperties": False,
    }
    text = {"format": {"type": "json_schema", "name": "pair", "schema": schema, "strict": True}}
    doc = _guarded(sim, tmp_path, {"json": {}, "output_budget": {"request": 20}})
    with gateway(doc) as (url, gateway_, _):
        recorder.seen.clear()
        answers = []
        for i in range(30):
            r = httpx.post(
                f"{url}/v1/responses",
                json={"model": "fwd", "input": f"pair {i} [[sim bad_json_rate=0.3]]", "text": text},
                headers=AUTH,
                timeout=30,
            )
            assert r.status_code == 200, r.text
            answers.append(r.json()["output"][-1]["content"][0]["text"])
        refused = [a for rec in records(url, gateway_) for a in rec.attempts if a.error == "invalid_output"]
        assert all(set(json.loads(a)) == {"word", "n"} for a in answers)
        assert refused  # broken answers were retried, never returned
        assert {e.path for e in recorder.seen} == {"/openai/v1/responses"}
        assert {json.loads(e.body)["max_output_tokens"] for e in recorder.seen} == {20}  # the budget's cap
        # a long streamed answer under the 20-token budget: ended as incomplete, re-encoded
        with httpx.stream(
            "POST",
            f"{url}/v1/responses",
            json={"model": "fwd", "input": "a long story [[sim output_tokens=200]]", "stream": True},
            headers=AUTH,
            timeout=30,
        ) as s:
            events = _stream_events(s.read())
        for event in events:
            specs.check_schema("openai", "ResponseStreamEvent", event)
        assert events[-1]["type"] == "response.incomplete"
        assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
        last = records(url, gateway_)[-1]
        assert last.stream and last.error == "output_budget" and last.status == 200
