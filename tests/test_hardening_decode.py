"""The decode boundary: whatever a request body looks like, a failure to read it is a 400 in
the client's dialect, never a 500; a failure past decoding is still a 500.

Hostile bodies go to the gateway over real HTTP (the simulator behind it); the hypothesis test
throws random JSON values at every top-level field of both chat bodies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from switchpoint.api.dialect import Dialect, decode_boundary, undecodable
from switchpoint.api.openai import OpenAIDialect
from switchpoint.canonical import ChatRequest
from switchpoint.errors import BadRequest

import specs
from gateway_harness import ENV, GATEWAY_KEY, closed_port, e2e_document

OAI = {"authorization": f"Bearer {GATEWAY_KEY}"}
ANT = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def http(gateway: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def openai_error(r: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert err["type"] == ("invalid_request_error" if status == 400 else err["type"])
    assert set(err) == {"message", "type", "param", "code"}
    return dict(err)


def anthropic_error(r: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["type"] == "error"
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    if status == 400:
        assert doc["error"]["type"] == "invalid_request_error"
    path = r.request.url.path
    if path.startswith("/v1/messages") and status < 500:  # the spec documents 4XX bodies only
        specs.check_response("anthropic", "POST", f"https://api.anthropic.com{path}", status, r.content)
    return dict(doc["error"])


def deep(depth: int) -> bytes:
    return b'{"model":"m","messages":' + b"[" * depth + b"]" * depth + b"}"


# --- the known 500s, and their relatives ------------------------------------------------------

TOOL_CHOICES: list[Any] = [
    {"type": {}},
    {"type": []},
    {"type": None},
    {"type": 1},
    {"type": True},
    {"type": "tool", "name": {}},
    {"type": "tool", "name": []},
    {"type": "auto", "disable_parallel_tool_use": {}},
    {"type": "function", "function": []},
    {"type": "function", "function": {"name": {}}},
    {"type": "allowed_tools", "allowed_tools": {"mode": {}}},
    {},
    [],
    [{}],
    {"x": {"y": {}}},
    "any",
    {"any": 1},
    1.5,
    False,
]


@pytest.mark.parametrize("choice", TOOL_CHOICES, ids=lambda c: json.dumps(c))
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_anthropic_tool_choice_of_any_shape_is_a_400(http: httpx.Client, path: str, choice: Any) -> None:
    body = {"model": "up-anthropic", "max_tokens": 5, "messages": HI, "tool_choice": choice}
    anthropic_error(http.post(path, json=body, headers=ANT))


def test_anthropic_unhashable_tool_choice_type_names_the_field(http: httpx.Client) -> None:
    body = {"model": "up-anthropic", "max_tokens": 5, "messages": HI, "tool_choice": {"type": {}}}
    err = anthropic_error(http.post("/v1/messages", json=body, headers=ANT))
    assert "tool_choice.type" in err["message"]


@pytest.mark.parametrize("choice", TOOL_CHOICES, ids=lambda c: json.dumps(c))
def test_openai_tool_choice_of_any_shape_is_a_400(http: httpx.Client, choice: Any) -> None:
    body = {"model": "up-openai", "messages": HI, "tool_choice": choice}
    openai_error(http.post("/v1/chat/completions", json=body, headers=OAI))


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_a_deeply_nested_body_is_a_400_on_every_route(http: httpx.Client, depth: int) -> None:
    body = deep(depth)
    json_ = {"content-type": "application/json"}
    openai_error(http.post("/v1/chat/completions", content=body, headers={**OAI, **json_}))
    openai_error(http.post("/v1/embeddings", content=body, headers={**OAI, **json_}))
    openai_error(http.post("/v1/route", content=body, headers={**OAI, **json_}))
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        err = anthropic_error(http.post(path, content=body, headers={**ANT, **json_}))
        assert "nested too deeply" in err["message"]
    r = http.post("/v1/route", content=body, headers={**ANT, **json_})
    anthropic_error(r)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "up-openai", "messages": [{"role": {}, "content": "hi"}]},
        {"model": "up-openai", "messages": [{"role": ["user"], "content": "hi"}]},
        {"model": "up-openai", "messages": HI, "stop": {"a": 1}},
        {"model": "up-openai", "messages": HI, "reasoning_effort": {}},
        {"model": "up-openai", "messages": HI, "response_format": {"type": {}}},
        {"model": "up-openai", "messages": HI, "tools": [{"type": {}, "function": {}}]},
        {"model": "up-openai", "messages": [{"role": "user", "content": [{"type": {}}]}]},
        {"model": "up-openai", "messages": HI, "temperature": 1e400},
        {"model": {}, "messages": HI},
        {"model": "up-openai", "messages": {"0": HI[0]}},
        {"model": "up-openai", "messages": HI, "functions": {}},
        {"model": "up-openai", "messages": HI, "functions": [[]]},
        {"model": "up-openai", "messages": HI, "functions": [{"name": {}}]},
        {"model": "up-openai", "messages": HI, "functions": [{"name": "f", "parameters": []}]},
        {"model": "up-openai", "messages": HI, "function_call": []},
        {"model": "up-openai", "messages": HI, "function_call": {"name": {}}},
        {"model": "up-openai", "messages": [*HI, {"role": "function", "name": [], "content": "x"}]},
        {"model": "up-openai", "messages": [*HI, {"role": "function", "name": "f", "content": {}}]},
        {"model": "up-openai", "messages": [*HI, {"role": "assistant", "function_call": {"name": 1}}]},
        {"model": "up-openai", "messages": [*HI, {"role": "assistant", "function_call": [1]}]},
    ],
)
def test_openai_wrong_types_are_400s(http: httpx.Client, body: dict[str, Any]) -> None:
    raw = json.dumps(body).replace("Infinity", "1e400").encode()
    openai_error(
        http.post("/v1/chat/completions", content=raw, headers={**OAI, "content-type": "application/json"})
    )


@pytest.mark.parametrize(
    "body",
    [
        {"model": "up-anthropic", "max_tokens": 5, "messages": [{"role": {}, "content": "hi"}]},
        {"model": "up-anthropic", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": {}}]}]},
        {"model": "up-anthropic", "max_tokens": 5, "messages": HI, "thinking": {"type": {}}},
        {"model": "up-anthropic", "max_tokens": 5, "messages": HI, "output_config": {"format": {"type": []}}},
        {"model": "up-anthropic", "max_tokens": 5, "messages": HI, "system": [{"type": {}}]},
        {"model": "up-anthropic", "max_tokens": 5, "messages": HI, "tools": [{"type": {}}]},
        {"model": "up-anthropic", "max_tokens": {}, "messages": HI},
        {"model": ["up-anthropic"], "max_tokens": 5, "messages": HI},
    ],
)
def test_anthropic_wrong_types_are_400s(http: httpx.Client, body: dict[str, Any]) -> None:
    anthropic_error(http.post("/v1/messages", json=body, headers=ANT))
    anthropic_error(http.post("/v1/messages/count_tokens", json=body, headers=ANT))


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe{}", b'{"model": "\xc3\x28"}', b"\x00", b"[1,2]", b"null", b'"x"', b"1e999999"],
)
def test_bodies_that_are_not_json_objects_are_400s_everywhere(http: httpx.Client, raw: bytes) -> None:
    h = {"content-type": "application/json"}
    openai_error(http.post("/v1/chat/completions", content=raw, headers={**OAI, **h}))
    openai_error(http.post("/v1/embeddings", content=raw, headers={**OAI, **h}))
    openai_error(http.post("/v1/route", content=raw, headers={**OAI, **h}))
    anthropic_error(http.post("/v1/messages", content=raw, headers={**ANT, **h}))
    anthropic_error(http.post("/v1/messages/count_tokens", content=raw, headers={**ANT, **h}))


@pytest.mark.parametrize(
    "body",
    [
        {"model": "emb-openai", "input": {"a": 1}},
        {"model": "emb-openai", "input": [[1, "a"]]},
        {"model": "emb-openai", "input": "x", "encoding_format": {}},
        {"model": "emb-openai", "input": "x", "dimensions": []},
        {"model": [], "input": "x"},
    ],
)
def test_embeddings_wrong_types_are_400s(http: httpx.Client, body: dict[str, Any]) -> None:
    openai_error(http.post("/v1/embeddings", json=body, headers=OAI))


def test_route_dry_run_with_a_body_of_any_shape_is_a_400(http: httpx.Client) -> None:
    for body in ({"model": "up-openai", "messages": 5}, {"model": "up-openai", "messages": [5, {}]}):
        openai_error(http.post("/v1/route", json=body, headers=OAI))
    body = {"model": "up-anthropic", "max_tokens": 5, "messages": HI, "tool_choice": {"type": {}}}
    anthropic_error(http.post("/v1/route", json=body, headers=ANT))


# --- the boundary itself ----------------------------------------------------------------------


class _Broken(OpenAIDialect):
    """A reader with a blind spot: it trips over a shape nobody checked for."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def read_chat(self, body: bytes, headers: Mapping[str, str]) -> ChatRequest:
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [
        TypeError("unhashable type: 'dict'"),
        KeyError("role"),
        IndexError("list index out of range"),
        AttributeError("'list' object has no attribute 'get'"),
        ValueError("bad"),
        OverflowError("too big"),
        RecursionError("maximum recursion depth exceeded"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_any_reader_failure_is_a_bad_request_without_internals(exc: Exception) -> None:
    dialect: Dialect = _Broken(exc)
    with pytest.raises(BadRequest) as info:
        dialect.decode_chat(b"{}", {})
    assert info.value.status == 400
    assert str(exc) not in info.value.message or isinstance(exc, UnicodeDecodeError)
    with pytest.raises(BadRequest):
        decode_boundary(dialect.read_chat, b"{}", {})
    assert undecodable(exc).status == 400


def test_a_bad_request_from_a_reader_passes_the_boundary_unchanged() -> None:
    err = BadRequest("'x': no", param="x")
    with pytest.raises(BadRequest) as info:
        _Broken(err).decode_chat(b"{}", {})
    assert info.value is err


@pytest.fixture
def offline_app() -> Iterator[Any]:
    """A gateway app in process; its upstreams are never reached in these tests."""
    from switchpoint.api.app import create_app
    from switchpoint.config import parse

    app = create_app(parse(e2e_document(f"http://127.0.0.1:{closed_port()}"), env=ENV))
    with TestClient(app) as client:
        yield app, client


def test_an_internal_bug_past_decoding_is_still_a_500(offline_app: Any, monkeypatch: Any) -> None:
    app, client = offline_app
    gw = app.gateway

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("a bug in routing, not in the request")

    monkeypatch.setattr(gw.router, "aroute", broken)
    r = client.post("/v1/chat/completions", json={"model": "up-openai", "messages": HI}, headers=OAI)
    err = openai_error(r, 500)
    assert err["type"] == "server_error" and "a bug in routing" not in err["message"]
    body = {"model": "up-anthropic", "max_tokens": 5, "messages": HI}
    r = client.post("/v1/messages", json=body, headers=ANT)
    assert anthropic_error(r, 500)["type"] == "api_error"


def test_an_internal_bug_past_decoding_on_count_tokens_is_still_a_500(
    offline_app: Any, monkeypatch: Any
) -> None:
    app, client = offline_app

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug in the router")

    monkeypatch.setattr(app.gateway.router, "deployments_for", broken)
    body = {"model": "up-anthropic", "messages": HI}
    r = client.post("/v1/messages/count_tokens", json=body, headers=ANT)
    assert anthropic_error(r, 500)["type"] == "api_error"


# --- random JSON at every top-level field -----------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

OPENAI_FIELDS = [
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format",
    "max_completion_tokens", "max_tokens", "temperature", "top_p", "stop", "seed", "user",
    "metadata", "logprobs", "top_logprobs", "reasoning_effort", "stream", "stream_options", "n",
    "functions", "function_call", "frequency_penalty", "presence_penalty", "logit_bias",
    "modalities", "audio", "prediction", "service_tier", "store", "web_search_options",
    "verbosity", "prompt_cache_key", "safety_identifier",
]  # fmt: skip
ANTHROPIC_FIELDS = [
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "temperature", "top_p",
    "top_k", "stop_sequences", "stream", "metadata", "thinking", "output_config", "service_tier",
    "container", "mcp_servers", "context_management", "inference_geo",
]  # fmt: skip
UPSTREAM_MODELS = ["up-openai", "up-anthropic", "up-gemini"]
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


def _check(r: httpx.Response, dialect: str) -> None:
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        return
    if dialect == "openai":
        openai_error(r, r.status_code)
    else:
        anthropic_error(r, r.status_code)


def _post(http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    with http.stream("POST", path, json=body, headers=headers) as r:
        r.read()
    return r


@FUZZ
@given(
    model=st.sampled_from(UPSTREAM_MODELS),
    fields=st.dictionaries(st.sampled_from(OPENAI_FIELDS), JSON_VALUES, min_size=1, max_size=3),
)
def test_random_values_in_openai_chat_fields_never_make_a_500(
    http: httpx.Client, model: str, fields: dict[str, Any]
) -> None:
    body: dict[str, Any] = {"model": model, "messages": HI, **fields}
    _check(_post(http, "/v1/chat/completions", body, OAI), "openai")


@FUZZ
@given(
    model=st.sampled_from(UPSTREAM_MODELS),
    fields=st.dictionaries(st.sampled_from(ANTHROPIC_FIELDS), JSON_VALUES, min_size=1, max_size=3),
)
def test_random_values_in_anthropic_message_fields_never_make_a_500(
    http: httpx.Client, model: str, fields: dict[str, Any]
) -> None:
    body: dict[str, Any] = {"model": model, "max_tokens": 16, "messages": HI, **fields}
    _check(_post(http, "/v1/messages", body, ANT), "anthropic")
    _check(_post(http, "/v1/messages/count_tokens", body, ANT), "anthropic")


# --- deep, but within what the decoder takes --------------------------------------------------


def _object_nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [400, 950])
@pytest.mark.parametrize("model", UPSTREAM_MODELS)
def test_deep_values_the_decoder_takes_never_make_a_500(http: httpx.Client, depth: int, model: str) -> None:
    """Past decoding, nothing (routing, token estimates, adapters, encoders) recurses into a
    client's deep value until it fails: each answer is below 500."""
    props, arr = _object_nested(depth), "[" * depth + "]" * depth
    hi = '"messages":[{"role":"user","content":"hi"}]'
    openai_bodies = [
        f'"tools":[{{"type":"function","function":{{"name":"f","parameters":{{"type":"object","properties":{props}}}}}}}]',
        f'"response_format":{{"type":"json_schema","json_schema":{{"name":"x","schema":{{"properties":{props}}}}}}}',
        f'"x_vendor_extension":{arr}',
    ]
    for extra in openai_bodies:
        for stream in ("false", "true"):
            body = f'{{"model":"{model}",{hi},{extra},"stream":{stream}}}'.encode()
            r = http.post(
                "/v1/chat/completions", content=body, headers={**OAI, "content-type": "application/json"}
            )
            assert r.status_code < 500, r.text
    anthropic_bodies = [
        f'"tools":[{{"name":"f","input_schema":{{"type":"object","properties":{props}}}}}]',
        f'"output_config":{{"format":{{"type":"json_schema","schema":{{"properties":{props}}}}}}}',
    ]
    for extra in anthropic_bodies:
        body = f'{{"model":"{model}","max_tokens":10,{hi},{extra}}}'.encode()
        for path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/route"):
            r = http.post(path, content=body, headers={**ANT, "content-type": "application/json"})
            assert r.status_code < 500, r.text
