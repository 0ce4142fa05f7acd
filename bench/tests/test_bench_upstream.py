"""The fake upstream's fixtures: the Anthropic Messages bodies say what the OpenAI ones say."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import targets

UPSTREAM = targets.BENCH / "upstream"
SPEC = targets.REPO / "specs" / "anthropic" / "openapi.normalized.json"


def _openai_stream() -> list[dict[str, Any]]:
    text = (UPSTREAM / "stream.sse").read_text()
    frames = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


def _anthropic_stream() -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) per SSE event of messages.sse; every event is `event:` + `data:`."""
    text = (UPSTREAM / "messages.sse").read_text()
    assert text.endswith("\n\n")
    events = []
    for block in text.removesuffix("\n\n").split("\n\n"):
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: ")
        events.append((event[len("event: ") :], json.loads(data[len("data: ") :])))
    return events


def test_anthropic_stream_has_the_event_sequence_of_the_messages_api() -> None:
    events = _anthropic_stream()
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 20,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert (start["id"], start["role"], start["content"], start["stop_reason"]) == (
        targets.ANTHROPIC_MESSAGE_ID,
        "assistant",
        [],
        None,
    )
    assert events[1][1]["content_block"] == {"type": "text", "text": "", "citations": None}
    assert {data["index"] for _, data in events[1:-2]} == {0}
    assert {data["delta"]["type"] for _, data in events[2:22]} == {"text_delta"}


def test_anthropic_stream_carries_the_openai_streams_text_piece_by_piece() -> None:
    openai_pieces = [c["choices"][0]["delta"].get("content") for c in _openai_stream() if c["choices"]]
    anthropic_pieces = [
        data["delta"]["text"] for name, data in _anthropic_stream() if name == "content_block_delta"
    ]
    assert len(openai_pieces) == 20
    assert anthropic_pieces == openai_pieces
    assert "".join(anthropic_pieces) == targets.UPSTREAM_REPLY


def test_all_fixtures_give_the_same_answer_and_usage() -> None:
    completion = json.loads((UPSTREAM / "completion.json").read_text())
    message = json.loads((UPSTREAM / "message.json").read_text())
    openai_usage = [c["usage"] for c in _openai_stream() if c.get("usage")]
    delta = next(data for name, data in _anthropic_stream() if name == "message_delta")
    assert completion["choices"][0]["message"]["content"] == targets.UPSTREAM_REPLY
    assert message["content"] == [{"type": "text", "text": targets.UPSTREAM_REPLY, "citations": None}]
    assert (message["id"], message["type"], message["stop_reason"]) == (
        targets.ANTHROPIC_MESSAGE_ID,
        "message",
        "end_turn",
    )
    assert delta["delta"]["stop_reason"] == "end_turn"
    for usage in (message["usage"], delta["usage"]):
        assert (
            usage["input_tokens"] == completion["usage"]["prompt_tokens"] == openai_usage[0]["prompt_tokens"]
        )
        assert usage["output_tokens"] == completion["usage"]["completion_tokens"]


def _validator(name: str) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT202012

    doc = json.loads(SPEC.read_text())
    resource = referencing.Resource(contents=doc, specification=DRAFT202012)
    registry = referencing.Registry().with_resource("urn:spec", resource)
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:spec#/components/schemas/{name}"}, registry=registry
    )


def test_anthropic_fixtures_match_the_published_spec() -> None:
    _validator("Message").validate(json.loads((UPSTREAM / "message.json").read_text()))
    event = _validator("MessageStreamEvent")
    for _, data in _anthropic_stream():
        event.validate(data)


def _locations(conf: str) -> dict[str, list[str]]:
    """``location = /x { ... }`` blocks of an nginx config: path -> directives."""
    found = re.findall(r"location = (\S+) \{([^}]*)\}", conf)
    return {path: [d.strip() for d in body.split(";") if d.strip()] for path, body in found}


def test_nginx_routes_v1_messages_to_the_anthropic_bodies(tmp_path: Path) -> None:
    locations = _locations(targets.nginx_conf(tmp_path, 4321))
    assert locations["/v1/messages"] == ["js_content fake.messages"]
    for internal, fixture in (("/_message", "message.json"), ("/_message_stream", "messages.sse")):
        directives = locations[internal]
        assert "internal" in directives
        assert f"alias {UPSTREAM / fixture}" in directives
        assert (UPSTREAM / fixture).exists()
    assert "default_type text/event-stream" in locations["/_message_stream"]
    assert "default_type application/json" in locations["/_message"]
    js = (UPSTREAM / "fake.js").read_text()
    assert "'/_message_stream' : '/_message'" in js
    assert "export default {completions, messages};" in js


def test_bench_translate_alias_reaches_v1_messages_on_the_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = pytest.importorskip("switchpoint.config")
    from switchpoint.canonical import ChatRequest, Message, TextPart
    from switchpoint.providers.base import UpstreamResponse
    from switchpoint.providers.registry import ADAPTERS

    monkeypatch.setenv("SWITCHPOINT_MASTER_KEY", targets.MASTER_KEY)
    monkeypatch.setenv("BENCH_UPSTREAM_KEY", targets.UPSTREAM_KEY)
    text = (targets.BENCH / "configs" / "switchpoint.yaml").read_text().replace("${UPSTREAM_PORT}", "18999")
    path = tmp_path / "switchpoint.yaml"
    path.write_text(text)
    cfg = config.load(path)
    (dep,) = cfg.candidates(targets.TRANSLATE_MODEL)
    assert dep.provider.family == "anthropic"
    (plain,) = cfg.candidates("bench")
    assert plain.provider.family == "openai"
    adapter = ADAPTERS["anthropic"]
    request = ChatRequest(
        model=targets.TRANSLATE_MODEL, messages=[Message(role="user", parts=[TextPart(text="hi")])]
    )
    assert adapter.build_chat(request, dep).url == "http://127.0.0.1:18999/v1/messages"
    body = (UPSTREAM / "message.json").read_bytes()
    parsed = adapter.parse_chat(UpstreamResponse(status=200, headers={}, body=body), dep)
    assert [p.text for p in parsed.parts if isinstance(p, TextPart)] == [targets.UPSTREAM_REPLY]
    assert parsed.finish_reason == "stop"
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens) == (12, 19)
