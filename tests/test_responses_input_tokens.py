"""``POST /v1/responses/input_tokens`` with the official ``openai`` SDK
(``client.responses.input_tokens.count``) against the gateway over real HTTP.

The count is :func:`tokens.estimate_request_tokens` of the request the Responses route would
make of the same body (its conversation restored), for the family of the model's first
deployment, or OpenAI's with no model. Every answer the SDK receives is validated against the
published spec (``TokenCountsResource``; errors in OpenAI's error JSON: the ``client`` of
``test_responses_sdk``), and every body a count is compared for is a valid ``TokenCountsBody``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from governance_harness import anthropic_headers, bearer, configured_url_wins, doc, make_key
from resilience_harness import gateway as governed_gateway
from switchpoint import tokens
from switchpoint.api.responses import read_responses
from test_hardening_decode import FUZZ, JSON_VALUES, openai_error
from test_responses_keys import sim
from test_responses_sdk import CHECKED, WEATHER, client

import specs
from gateway_harness import GATEWAY_KEY

__all__ = ["client", "configured_url_wins", "sim"]  # fixtures the tests here use

PATH = "/v1/responses/input_tokens"
FAMILIES = {"up-openai": "openai", "up-anthropic": "anthropic", "up-gemini": "gemini"}


def expected(body: dict[str, Any], family: str) -> int:
    """The estimate of the canonical request the Responses dialect makes of ``body`` (a valid
    ``TokenCountsBody``)."""
    specs.check_schema("openai", "TokenCountsBody", body)
    return tokens.estimate_request_tokens(read_responses(json.dumps(body).encode(), count=True), family)


def post(gateway: Any, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{PATH}",
        content=body,
        headers=headers or {"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"},
        timeout=30,
    )


# --- the count -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", list(FAMILIES))
def test_count_is_the_estimate_of_the_same_request(client: openai.OpenAI, model: str) -> None:
    body: dict[str, Any] = {"model": model, "input": "Tell me a joke.", "instructions": "You are terse."}
    raw = client.responses.input_tokens.with_raw_response.count(**body)
    assert raw.headers["x-switchpoint-estimate"] == "true"
    counted = raw.parse()
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens == expected(body, FAMILIES[model]) > 0
    assert CHECKED[-1] == f"POST {PATH}"  # the hook validated the answer against the spec


def test_every_field_is_read_as_the_responses_route_reads_it(client: openai.OpenAI) -> None:
    body: dict[str, Any] = {
        "model": "up-openai",
        "instructions": "Answer with a tool call.",
        "input": [
            {"role": "user", "content": "Weather in Paris?"},  # parts: the spec's oneOf matches twice
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": '{"temp_c": 21}'},
        ],
        "tools": [WEATHER],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "text": {"format": {"type": "text"}},
        "reasoning": {"effort": "low"},
        "truncation": "auto",
        "personality": "pragmatic",
    }
    counted = client.responses.input_tokens.count(**body)
    assert counted.input_tokens == expected(body, "openai")
    bare = client.responses.input_tokens.count(model="up-openai", input=body["input"])
    assert counted.input_tokens > bare.input_tokens  # the tool and the instructions count


def test_more_input_more_tokens(client: openai.OpenAI) -> None:
    short = client.responses.input_tokens.count(model="up-openai", input="hi")
    long = client.responses.input_tokens.count(model="up-openai", input="hello world " * 200)
    assert 0 < short.input_tokens < long.input_tokens
    assert 400 <= long.input_tokens <= 800


def test_bare_count_uses_the_openai_tokenizer(client: openai.OpenAI) -> None:
    """No model, no input: the estimate of an empty request (its reply priming only)."""
    assert client.responses.input_tokens.count().input_tokens == tokens.TOKENS_PER_REQUEST
    counted = client.responses.input_tokens.count(input="Tell me a joke.")
    assert counted.input_tokens == expected({"input": "Tell me a joke."}, "openai")
    nulls = client.responses.input_tokens.count(model=None, input=None, tools=None, text=None)
    assert nulls.input_tokens == tokens.TOKENS_PER_REQUEST


def test_previous_response_id_counts_the_earlier_turn(client: openai.OpenAI) -> None:
    first = client.responses.create(model="up-openai", input="Tell me about Paris.")
    alone = client.responses.input_tokens.count(model="up-openai", input="And Rome?")
    continued = client.responses.input_tokens.count(
        model="up-openai", input="And Rome?", previous_response_id=first.id
    )
    history = [
        {"role": "user", "content": "Tell me about Paris."},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"role": "user", "content": "And Rome?"},
    ]
    assert continued.input_tokens == expected({"model": "up-openai", "input": history}, "openai")
    assert continued.input_tokens > alone.input_tokens
    # the instructions of the earlier turn are not carried over; this turn's count
    steered = client.responses.input_tokens.count(
        model="up-openai", input="And Rome?", previous_response_id=first.id, instructions="Be brief."
    )
    assert steered.input_tokens > continued.input_tokens


# --- refusals ------------------------------------------------------------------------------------


def test_unknown_model_is_the_chat_routes_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as counted:
        client.responses.input_tokens.count(model="no-such-model", input="hi")
    with pytest.raises(openai.NotFoundError) as chat:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert counted.value.body == chat.value.body
    assert counted.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_unknown_previous_response_id_is_the_responses_routes_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as counted:
        client.responses.input_tokens.count(model="up-openai", input="hi", previous_response_id="resp_nope")
    with pytest.raises(openai.NotFoundError) as created:
        client.responses.create(model="up-openai", input="hi", previous_response_id="resp_nope")
    assert counted.value.body == created.value.body
    assert counted.value.body["code"] == "previous_response_not_found"  # type: ignore[index]


@pytest.mark.parametrize(
    "field", [{"conversation": "conv_123"}, {"conversation": {"id": "conv_123"}}, {"prompt": {"id": "p"}}]
)
def test_conversation_and_prompt_are_400s_as_on_responses(
    client: openai.OpenAI, field: dict[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as counted:
        client.responses.input_tokens.count(model="up-openai", input="hi", extra_body=field)
    assert counted.value.body["param"] == next(iter(field))  # type: ignore[index]


def _deep(depth: int) -> bytes:
    return b'{"input":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"Tell me a joke."',
        b"3",
        b"null",
        b"{not json",
        b'{"model": 5}',
        b'{"model": ""}',
        b'{"input": 5}',
        b'{"input": [5]}',
        b'{"input": [{"type": "message", "role": "user", "content": 5}]}',
        b'{"input": [{"type": "web_search_call"}]}',
        b'{"instructions": ["x"]}',
        b'{"tools": "x"}',
        b'{"tools": [{"type": "function", "name": {}}]}',
        b'{"tool_choice": 3}',
        b'{"text": {"format": {"type": "yaml"}}}',
        b'{"reasoning": {"effort": "huge"}}',
        b'{"parallel_tool_calls": "yes"}',
        b'{"truncation": "sometimes"}',
        b'{"personality": 7}',
        b'{"previous_response_id": 7}',
        _deep(100_000),
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=lambda b: b[:40].decode(),
)
def test_bad_bodies_are_400s_in_openai_error_json(gateway: Any, body: bytes) -> None:
    openai_error(post(gateway, body))


COUNT_FIELDS = [
    "model", "input", "previous_response_id", "tools", "text", "reasoning", "truncation",
    "instructions", "personality", "conversation", "tool_choice", "parallel_tool_calls",
]  # fmt: skip


def test_the_fields_are_the_specs() -> None:
    assert sorted(COUNT_FIELDS) == sorted(
        specs._load("openai")["components"]["schemas"]["TokenCountsBody"]["properties"]
    )


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(COUNT_FIELDS), JSON_VALUES, min_size=1, max_size=3))
def test_random_values_in_every_field_never_make_a_500(gateway: Any, fields: dict[str, Any]) -> None:
    r = post(gateway, json.dumps({"model": "up-openai", "input": "hi", **fields}).encode())
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        specs.check_response("openai", "POST", f"https://api.openai.com{PATH}", 200, r.content)
    else:
        openai_error(r, r.status_code)


def test_no_key_is_a_401(gateway: Any) -> None:
    r = post(gateway, b'{"input": "hi"}', {"content-type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def _booked(gateway: Any) -> int:
    """Requests accounted so far (``/admin/stats`` waits for the queue to drain)."""
    httpx.get(f"{gateway.url}/admin/stats", headers=bearer(GATEWAY_KEY), timeout=10).raise_for_status()
    return int(gateway.gw.accounting.snapshot()["requests"])


def test_counts_are_not_booked(client: openai.OpenAI, gateway: Any) -> None:
    before = _booked(gateway)
    for _ in range(3):
        client.responses.input_tokens.count(model="up-openai", input="hi")
    with pytest.raises(openai.NotFoundError):
        client.responses.input_tokens.count(model="no-such-model", input="hi")
    assert _booked(gateway) == before
    client.responses.create(model="up-openai", input="hi")  # what a booked request does
    assert _booked(gateway) == before + 1


# --- under a virtual key -------------------------------------------------------------------------


def test_a_key_counts_only_the_models_it_may_use(sim: str, tmp_path: Path) -> None:
    with governed_gateway(doc(sim, tmp_path, None)) as (url, _, _):
        secret, _ = make_key(url, allowed_aliases=["fast"])
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)
        first = client.responses.create(model="fast", input="a secret plan")
        assert client.responses.input_tokens.count(model="fast", input="hi").input_tokens > 0
        assert client.responses.input_tokens.count(input="hi").input_tokens > 0  # no model named
        with pytest.raises(openai.PermissionDeniedError) as counted:
            client.responses.input_tokens.count(model="claude", input="hi")
        with pytest.raises(openai.PermissionDeniedError) as created:
            client.responses.create(model="claude", input="hi")
        assert counted.value.body == created.value.body
        assert counted.value.body["code"] == "model_not_allowed"  # type: ignore[index]
        # Anthropic's count goes through the same check
        r = httpx.post(
            f"{url}/v1/messages/count_tokens",
            json={"model": "claude", "messages": [{"role": "user", "content": "hi"}]},
            headers=anthropic_headers(secret),
            timeout=30,
        )
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        # another key's response is not found, as on the Responses route
        other, _ = make_key(url)
        r = httpx.post(
            f"{url}{PATH}",
            json={"model": "fast", "input": "go on", "previous_response_id": first.id},
            headers=bearer(other),
            timeout=30,
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "previous_response_not_found"
        mine = client.responses.input_tokens.count(model="fast", input="go on", previous_response_id=first.id)
        assert (
            mine.input_tokens > client.responses.input_tokens.count(model="fast", input="go on").input_tokens
        )
        client.close()
