"""The Responses API end to end: the official ``openai`` SDK (``client.responses``) against the
gateway over real HTTP, with the simulator behind it, for a deployment of every family.

Every non-streamed body the SDK receives from ``/v1/responses…`` is validated against the
published OpenAI spec (an httpx response hook), every stream event against
``ResponseStreamEvent``, and every request the adapters sent upstream against its family's spec.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

import specs
from gateway_harness import GATEWAY_KEY, UPSTREAM_KEY, validate_sent

UPSTREAMS = ["openai", "anthropic", "gemini"]
BASE = "https://api.openai.com/v1"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    },
    "strict": False,
}
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
CHECKED: list[str] = []


def _validate(response: httpx.Response) -> None:
    path = response.request.url.path
    if not path.startswith("/v1/responses"):
        return
    if "text/event-stream" in response.headers.get("content-type", ""):
        return
    response.read()
    assert UPSTREAM_KEY not in response.text
    if response.status_code != 200:
        body = response.json()
        assert set(body["error"]) >= {"message", "type", "param", "code"}
        return
    method = response.request.method
    if method == "DELETE":
        assert response.json()["deleted"] is True
        return
    specs.check_response("openai", method, BASE + path.removeprefix("/v1"), 200, response.content)
    CHECKED.append(f"{method} {path}")


def check_stream(events: list[dict[str, Any]]) -> None:
    """Every event valid against the spec, numbered 0, 1, 2 …, in the order the API has them."""
    for event in events:
        specs.check_schema("openai", "ResponseStreamEvent", event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    if kinds[1:2] == ["response.queued"]:  # a background response's stream
        assert events[0]["response"]["status"] == "queued"
        kinds.pop(1)
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete", "response.failed")
    opened: dict[str, str] = {}
    for e in events[len(events) - len(kinds) + 2 : -1]:
        kind = e["type"]
        if kind == "response.output_item.added":
            opened[e["item"]["id"]] = "open"
        elif kind == "response.output_item.done":
            assert opened.pop(e["item"]["id"]) == "open"
        elif "item_id" in e:
            assert opened.get(e["item_id"]) == "open", f"{kind} outside its item"
    assert not opened


@pytest.fixture(autouse=True)
def upstream_requests_valid(gateway: Any) -> Iterator[None]:
    gateway.sent.clear()
    yield
    validate_sent(gateway.sent)


@pytest.fixture
def client(gateway: Any) -> Iterator[openai.OpenAI]:
    http = httpx.Client(event_hooks={"response": [_validate]})
    c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0, http_client=http)
    yield c
    c.close()


def raw_stream(gateway: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streamed body; the events as sent (``event:`` name checked against ``type``)."""
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        json={**body, "stream": True},
        headers={"authorization": f"Bearer {GATEWAY_KEY}"},
        timeout=30,
    ) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.iter_lines())
    check_stream(events)
    return events


def sse_events(lines: Iterator[str], stop_after: int | None = None) -> list[dict[str, Any]]:
    """A stream's events (``event:`` name checked against ``type``), the first ``stop_after``."""
    events: list[dict[str, Any]] = []
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            event = json.loads(line[6:])
            assert event["type"] == name
            events.append(event)
            if stop_after is not None and len(events) == stop_after:
                break
    return events


# --- text, stream and not ------------------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_text_with_instructions(client: openai.OpenAI, upstream: str) -> None:
    raw = client.responses.with_raw_response.create(
        model=f"up-{upstream}",
        instructions="You are terse.",
        input="Say hello",
        max_output_tokens=50,
        temperature=0.2,
        metadata={"purpose": "test"},
        user="end-user-1",
    )
    assert raw.headers["x-switchpoint-deployment"] == f"d-{upstream}"
    r = raw.parse()
    assert r.id.startswith("resp_") and r.object == "response" and r.status == "completed"
    assert r.output_text.startswith("[simulated")
    assert r.instructions == "You are terse." and r.metadata == {"purpose": "test"}
    assert r.max_output_tokens == 50 and r.temperature == 0.2
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.input_tokens_details.cached_tokens >= 0
    assert r.usage.output_tokens_details.reasoning_tokens >= 0
    assert "POST /v1/responses" in CHECKED


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_stream_events_through_the_sdk(client: openai.OpenAI, upstream: str) -> None:
    stream = client.responses.create(model=f"up-{upstream}", input="Say hello", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    for kind in (
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas == done.text == final.output_text and deltas.startswith("[simulated")
    assert final.usage is not None and final.usage.output_tokens > 0
    assert [e.sequence_number for e in events] == list(range(len(events)))


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_stream_helper_accumulates_the_response(client: openai.OpenAI, upstream: str) -> None:
    with client.responses.stream(model=f"up-{upstream}", input="Say hello") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_every_stream_event_matches_the_spec(gateway: Any, upstream: str) -> None:
    events = raw_stream(gateway, {"model": f"up-{upstream}", "input": "Say hello", "max_output_tokens": 40})
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["type"] == "message"
    specs.check_schema("openai", "Response", final)


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_max_output_tokens_makes_the_response_incomplete(
    client: openai.OpenAI, gateway: Any, upstream: str
) -> None:
    r = client.responses.create(model=f"up-{upstream}", input="Tell me a long story", max_output_tokens=16)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    events = raw_stream(
        gateway, {"model": f"up-{upstream}", "input": "Tell me a long story", "max_output_tokens": 16}
    )
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_image_input(client: openai.OpenAI, upstream: str) -> None:
    r = client.responses.create(
        model=f"up-{upstream}",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in this picture?"},
                    {
                        "type": "input_image",
                        "image_url": f"data:image/png;base64,{PNG_B64}",
                        "detail": "auto",
                    },
                ],
            }
        ],
    )
    assert "I see 1 image" in r.output_text


# --- tools -------------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_tool_round_trip_without_store(client: openai.OpenAI, upstream: str) -> None:
    """The client carries the conversation itself: the call and its output go back as items."""
    question = {"role": "user", "content": "Weather in Paris?"}
    r1 = client.responses.create(
        model=f"up-{upstream}", input=[question], tools=[WEATHER], tool_choice="auto", store=False
    )
    calls = [o for o in r1.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert "city" in json.loads(calls[0].arguments)
    call = calls[0]
    r2 = client.responses.create(
        model=f"up-{upstream}",
        input=[
            question,
            *[o.model_dump(exclude_none=True) for o in r1.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'},
        ],
        tools=[WEATHER],
        store=False,
    )
    assert "The tool returned" in r2.output_text and '"temp_c":' in r2.output_text  # Gemini re-spaces JSON
    with pytest.raises(openai.NotFoundError):  # store: false kept nothing
        client.responses.retrieve(r1.id)


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_tool_round_trip_with_previous_response_id(client: openai.OpenAI, upstream: str) -> None:
    r1 = client.responses.create(
        model=f"up-{upstream}",
        instructions="Use the tools.",
        input="Weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    call = next(o for o in r1.output if o.type == "function_call")
    r2 = client.responses.create(
        model=f"up-{upstream}",
        previous_response_id=r1.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert r2.previous_response_id == r1.id
    assert "The tool returned" in r2.output_text and "sunny" in r2.output_text
    r3 = client.responses.create(model=f"up-{upstream}", previous_response_id=r2.id, input="Thanks!")
    assert r3.output_text.startswith("[simulated")
    # the third turn's upstream request carried the whole conversation
    assert r3.usage is not None and r2.usage is not None and r3.usage.input_tokens > r2.usage.input_tokens


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_streamed_function_call_events(gateway: Any, upstream: str) -> None:
    events = raw_stream(
        gateway,
        {
            "model": f"up-{upstream}",
            "input": "Weather in Paris?",
            "tools": [WEATHER],
            "tool_choice": "required",
        },
    )
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.done" in kinds
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert deltas == done["arguments"] and done["name"] == "get_weather"
    item = events[-1]["response"]["output"][-1]
    assert item["type"] == "function_call" and item["arguments"] == done["arguments"] and item["call_id"]


# --- structured output and reasoning -------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_json_schema_output(client: openai.OpenAI, upstream: str) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    r = client.responses.create(
        model=f"up-{upstream}",
        input="Describe a city",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    doc = json.loads(r.output_text)
    assert isinstance(doc["city"], str) and isinstance(doc["population"], int)
    assert r.text is not None and r.text.format is not None and r.text.format.type == "json_schema"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_json_object_output(client: openai.OpenAI, upstream: str) -> None:
    r = client.responses.create(
        model=f"up-{upstream}", input="Answer in JSON: a city", text={"format": {"type": "json_object"}}
    )
    assert isinstance(json.loads(r.output_text), dict)


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_reasoning_effort_reaches_the_upstream(client: openai.OpenAI, gateway: Any, upstream: str) -> None:
    r = client.responses.create(
        model=f"up-{upstream}", input="Think, then say hi", reasoning={"effort": "high"}
    )
    assert r.reasoning is not None and r.reasoning.effort == "high"
    assert r.usage is not None
    sent = json.loads(gateway.sent[-1].body)
    if upstream == "openai":
        assert sent["reasoning_effort"] == "high"
    elif upstream == "anthropic":
        assert sent["thinking"]["type"] in ("enabled", "adaptive")
    else:
        assert "thinkingConfig" in sent["generationConfig"]
    if upstream == "anthropic":  # Messages usage has no reasoning count; the thinking is shown
        reasoning = next(o for o in r.output if o.type == "reasoning")
        assert reasoning.summary[0].text.startswith("Simulated reasoning")
        assert reasoning.encrypted_content  # the signature, for the next turn
    else:
        assert r.usage.output_tokens_details.reasoning_tokens > 0


def test_anthropic_thinking_goes_back_with_its_signature(client: openai.OpenAI, gateway: Any) -> None:
    r1 = client.responses.create(model="up-anthropic", input="Think first", reasoning={"effort": "low"})
    signature = next(o for o in r1.output if o.type == "reasoning").encrypted_content
    client.responses.create(
        model="up-anthropic", previous_response_id=r1.id, input="And now?", reasoning={"effort": "low"}
    )
    sent = json.loads(gateway.sent[-1].body)
    assistant = sent["messages"][1]
    assert assistant["role"] == "assistant" and assistant["content"][0]["type"] == "thinking"
    assert assistant["content"][0]["signature"] == signature


# --- stored responses ----------------------------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_retrieve_input_items_and_delete(client: openai.OpenAI, upstream: str) -> None:
    r = client.responses.create(
        model=f"up-{upstream}",
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "noted"},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    )
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text
    items = client.responses.input_items.list(r.id, order="asc")
    assert [i.type for i in items.data] == ["message"] * 3
    assert items.data[0].content[0].text == "first"  # type: ignore[union-attr]
    newest_first = client.responses.input_items.list(r.id, limit=2)
    assert [i.id for i in newest_first.data] == [items.data[2].id, items.data[1].id]
    assert newest_first.has_more is True
    rest = client.responses.input_items.list(r.id, limit=2, after=newest_first.data[-1].id)
    assert [i.id for i in rest.data] == [items.data[0].id] and rest.has_more is False
    # limit: 0 is an empty page (has_more: there are items), above 100 is 100, negative a 400
    none = client.responses.input_items.list(r.id, limit=0)
    assert none.data == [] and none.has_more is True
    assert len(client.responses.input_items.list(r.id, limit=101).data) == 3
    with pytest.raises(openai.BadRequestError) as negative:
        client.responses.input_items.list(r.id, limit=-1)
    assert negative.value.body["param"] == "limit"  # type: ignore[index]
    assert {"GET /v1/responses/" + r.id, f"GET /v1/responses/{r.id}/input_items"} <= set(CHECKED)
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model=f"up-{upstream}", previous_response_id=r.id, input="again")
    assert missing.value.body["code"] == "previous_response_not_found"  # type: ignore[index]


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_a_streamed_response_is_stored_before_it_completes(client: openai.OpenAI, upstream: str) -> None:
    stream = client.responses.create(model=f"up-{upstream}", input="Say hello", stream=True)
    for event in stream:
        if event.type == "response.completed":
            # the stream has not ended yet: the response is already there
            got = client.responses.retrieve(event.response.id)
            assert got.output_text == event.response.output_text
    r2 = client.responses.create(model=f"up-{upstream}", previous_response_id=got.id, input="And again?")
    assert r2.status == "completed"


def test_another_key_cannot_read_a_stored_response(client: openai.OpenAI, gateway: Any) -> None:
    r = client.responses.create(model="up-openai", input="mine")
    other = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        other.responses.retrieve(r.id)
    other.close()


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "up-openai"}, "input"),
        ({"input": "hi"}, "model"),
        ({"model": "up-openai", "input": 5}, "input"),
        ({"model": "up-openai", "input": [{"type": "web_search_call", "id": "x"}]}, "input[0].type"),
        ({"model": "up-openai", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"model": "up-openai", "input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input[0].content[0].type",
        ),
        ({"model": "up-openai", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "up-openai", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "up-openai", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"model": "up-openai", "input": "x", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"model": "up-openai", "input": "x", "max_output_tokens": "many"}, "max_output_tokens"),
        ({"model": "up-openai", "input": "x", "background": True, "store": False}, "background"),
        (
            {"model": "up-openai", "input": [{"type": "function_call_output", "call_id": "c"}]},
            "input[0].output",
        ),
    ],
)
def test_bad_input_is_a_400_in_openai_error_json(gateway: Any, body: dict[str, Any], param: str) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/responses", json=body, headers={"authorization": f"Bearer {GATEWAY_KEY}"}
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param


@pytest.mark.parametrize("body", [b"{", b"[1]", b'{"model": "up-openai", "input": [[[[]]]]}', b"\xff"])
def test_undecodable_bodies_are_400s(gateway: Any, body: bytes) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/responses",
        content=body,
        headers={"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_an_openai_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")


@pytest.mark.parametrize("upstream", ["openai", "gemini"])
def test_cached_input_tokens_reach_the_usage(client: openai.OpenAI, upstream: str) -> None:
    """The simulator caches a long prompt's prefix (OpenAI from 1,024 tokens, Gemini implicitly):
    the second call's cached tokens are in ``input_tokens_details``, and part of ``input_tokens``."""
    long = "Context: " + " ".join(f"fact {i} is {i * 7} units." for i in range(900))
    body = {"model": f"up-{upstream}", "instructions": long, "input": "Summarise.", "store": False}
    client.responses.create(**body)  # type: ignore[call-overload]
    again = client.responses.create(**body)  # type: ignore[call-overload]
    assert again.usage is not None
    cached = again.usage.input_tokens_details.cached_tokens
    assert 0 < cached <= again.usage.input_tokens


@pytest.mark.parametrize("stream", [False, True])
def test_failover_before_commit_is_invisible(client: openai.OpenAI, gateway: Any, stream: bool) -> None:
    """The alias ``failover`` lists a deployment that does not answer, then an OpenAI one: the
    executor moves on as for chat, and the client sees one clean response."""
    raw = client.responses.with_raw_response.create(model="failover", input="hello", stream=stream)
    assert raw.headers["x-switchpoint-deployment"] == "d-openai"
    if stream:
        events = list(raw.parse())  # type: ignore[call-overload]
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        text = events[-1].response.output_text
    else:
        text = raw.parse().output_text  # type: ignore[union-attr]
    assert text.startswith("[simulated sim-gpt]")
    dead = [r for r in gateway.sent if "/openai/" not in r.url]
    assert dead and all(r.url.endswith("/v1/chat/completions") for r in dead)  # tried first
    gateway.sent[:] = [r for r in gateway.sent if r not in dead]  # no spec for a closed port
