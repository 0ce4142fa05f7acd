"""The Responses dialect on its own: items read into canonical messages, canonical answers and
stream events encoded into Response objects and events that match the published spec."""

from __future__ import annotations

import json
from typing import Any

import pytest

from switchpoint.api.responses import ResponsesDialect, ResponsesRequest, read_items, read_responses
from switchpoint.api.responses_out import REDACTED, ResponsesStreamEncoder, response_object
from switchpoint.canonical import (
    ChatResponse,
    Finish,
    ImagePart,
    MessageStart,
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
from switchpoint.errors import BadRequest, ProviderError

import specs

DIALECT = ResponsesDialect()


def _request(**body: Any) -> ResponsesRequest:
    req = DIALECT.decode_chat(json.dumps({"model": "m", "input": "hi", **body}).encode(), {})
    assert isinstance(req, ResponsesRequest)
    return req


def _events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == "event: " + event["type"]
        specs.check_schema("openai", "ResponseStreamEvent", event)
        out.append(event)
    return out


def test_items_become_canonical_messages() -> None:
    messages = read_items(
        [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                ],
            },
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "hmm"}],
                "encrypted_content": "sig",
            },
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "two"}],
            },
            {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": REDACTED + "opaque"},
            {"role": "assistant", "content": "done"},
        ]
    )
    assert [m.role for m in messages] == ["developer", "user", "assistant", "tool", "tool", "assistant"]
    assert isinstance(messages[1].parts[1], ImagePart) and messages[1].parts[1].detail == "low"
    turn = messages[2].parts
    assert turn[0] == ThinkingPart(text="hmm", signature="sig")
    assert turn[1] == TextPart(text="calling")
    assert [p.id for p in turn[2:] if isinstance(p, ToolCallPart)] == ["c1", "c2"]
    result = messages[4].parts[0]
    assert (
        isinstance(result, ToolResultPart)
        and result.tool_call_id == "c2"
        and result.content[0] == TextPart(text="two")
    )
    assert messages[5].parts == [ThinkingPart(redacted="opaque"), TextPart(text="done")]


def test_request_options_reach_the_canonical_request() -> None:
    req = _request(
        instructions="sys",
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
        tool_choice={"type": "function", "name": "f"},
        text={"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}, "strict": True}},
        reasoning={"effort": "xhigh"},
        max_output_tokens=99,
        metadata={"session_id": "s1"},
        user="u",
        parallel_tool_calls=False,
        store=False,
        previous_response_id="resp_1",
    )
    assert req.messages[0].role == "system" and req.lead == 1
    assert req.tools is not None and req.tools[0].name == "f"
    assert req.tool_choice is not None and (req.tool_choice.mode, req.tool_choice.name) == ("tool", "f")
    assert req.response_format is not None and req.response_format.type == "json_schema"
    assert req.thinking is not None and req.thinking.effort == "high"
    assert (req.max_tokens, req.metadata, req.user, req.parallel_tool_calls) == (
        99,
        {"session_id": "s1"},
        "u",
        False,
    )
    assert (req.store, req.previous_response_id, req.raw) == (False, "resp_1", None)  # never passed through
    assert _request(reasoning={"effort": "none"}).thinking is not None
    assert _request(reasoning={"effort": "none"}).thinking.enabled is False  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"metadata": {"a": 1}}, "metadata.a"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"truncation": "middle"}, "truncation"),
        ({"input": [{"role": "user", "content": []}]}, "input[0].content"),
        ({"conversation": "conv_1"}, "conversation"),
    ],
)
def test_bad_requests_name_their_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        read_responses(json.dumps({"model": "m", "input": "hi", **body}).encode())
    assert err.value.param == param


def test_a_response_object_matches_the_spec() -> None:
    req = _request(tools=[{"type": "function", "name": "f", "parameters": None}], reasoning={"effort": "low"})
    answer = ChatResponse(
        id="x",
        model="up",
        parts=[
            ThinkingPart(text="think", signature="sig"),
            ThinkingPart(redacted="blob"),
            TextPart(text="a"),
            TextPart(text="b"),
            ToolCallPart(id="c1", name="f", arguments='{"q":1}'),
        ],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=10, cached_input_tokens=4, output_tokens=7, reasoning_tokens=3),
    )
    doc = json.loads(response_object(answer, req))
    specs.check_schema("openai", "Response", doc)
    assert [o["type"] for o in doc["output"]] == ["reasoning", "reasoning", "message", "function_call"]
    assert doc["output"][0]["encrypted_content"] == "sig"
    assert doc["output"][1]["encrypted_content"] == REDACTED + "blob"
    assert doc["output"][2]["content"][0]["text"] == "ab"
    assert doc["usage"]["input_tokens_details"]["cached_tokens"] == 4
    assert doc["usage"]["output_tokens_details"]["reasoning_tokens"] == 3
    assert doc["usage"]["total_tokens"] == 17 and doc["status"] == "completed"
    # the output items are valid input items: a next turn reads them back
    messages = read_items(doc["output"])
    assert messages[0].parts[-1] == ToolCallPart(id="c1", name="f", arguments='{"q":1}')


def test_the_stream_sequence_for_thinking_text_and_two_calls() -> None:
    enc = ResponsesStreamEncoder(_request(tools=[{"type": "function", "name": "f"}]))
    enc.commit("anthropic")
    out = enc.encode([MessageStart(id="u", model="up")], None)
    out += enc.encode([ThinkingDelta(text="let me "), ThinkingDelta(text="see")], None)
    out += enc.encode([ThinkingDelta(signature="sig")], None)
    out += enc.encode([TextDelta(text="Hel"), TextDelta(text="lo")], None)
    out += enc.encode(
        [ToolCallDelta(index=0, id="c1", name="f"), ToolCallDelta(index=0, arguments='{"a"')], None
    )
    out += enc.encode(
        [ToolCallDelta(index=0, arguments=":1}"), ToolCallDelta(index=1, id="c2", name="f", arguments="{}")],
        None,
    )
    out += enc.encode(
        [UsageUpdate(usage=Usage(input_tokens=5, output_tokens=9)), Finish(reason="tool_calls")], None
    )
    out += enc.finish()
    events = _events(out)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert [o["type"] for o in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][0]["summary"][0]["text"] == "let me see"
    assert final["output"][0]["encrypted_content"] == "sig"
    assert final["output"][2]["arguments"] == '{"a":1}' and final["output"][3]["call_id"] == "c2"
    assert final["usage"]["total_tokens"] == 14
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.done"] == [0, 1, 2, 3]
    assert json.loads(enc.result() or b"") == final  # what the store keeps


def test_a_length_finish_streams_response_incomplete() -> None:
    enc = ResponsesStreamEncoder(_request(max_output_tokens=3))
    events = _events(enc.encode([TextDelta(text="a b c"), Finish(reason="length")], None) + enc.finish())
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == "incomplete"


def test_a_failure_after_commit_ends_with_error_then_response_failed() -> None:
    enc = ResponsesStreamEncoder(_request())
    out = enc.encode([TextDelta(text="partial")], None)
    out += enc.error(ProviderError("connection", "upstream went away"))
    events = _events(out)
    assert [e["type"] for e in events[-5:]] == [
        "error",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
    ]
    assert events[-5]["code"] == "connection" and events[-5]["message"] == "upstream went away"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert failed["output"][0]["status"] == "incomplete"
    assert enc.result() is None  # nothing to keep


def test_an_empty_stream_still_completes() -> None:
    enc = ResponsesStreamEncoder(_request())
    events = _events(enc.finish())
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert events[-1]["response"]["output"] == []


def test_every_kind_of_input_item_lists_as_an_item_resource() -> None:
    from switchpoint.api.responses_state import item_resource

    items: list[dict[str, Any]] = [
        {"role": "user", "content": "plain"},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
        {"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}]},
        {"role": "assistant", "content": "said"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "said"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}], "encrypted_content": "s"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "function_call", "id": "fc_mine", "call_id": "c2", "name": "f", "arguments": "{}"},
    ]
    read_items(items)  # items the decoder accepts
    listed = [item_resource(item, "resp_abc", i) for i, item in enumerate(items)]
    for entry in listed:
        specs.check_schema("openai", "ItemResource", entry)
    assert [e["id"] for e in listed][:2] == ["msg_abc0000", "msg_abc0001"]
    assert listed[-1]["id"] == "fc_mine"  # the client's own id is kept
    assert len({e["id"] for e in listed}) == len(listed)
