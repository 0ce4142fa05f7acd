"""One conformance suite, parametrised over every adapter family: the same cases for each.

Each case builds a canonical request, lets the family's adapter build the upstream request,
validates it against the family's published spec, sends it over the real pooled transport to
the simulator, and checks the canonical result. A new family is a config row plus this suite
passing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import bedrock_model
from switchpoint.canonical import (
    Accumulator,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Thinking,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from switchpoint.config import Config, Deployment, parse
from switchpoint.errors import ProviderError
from switchpoint.executor import H1Transport, Transport
from switchpoint.providers import adapter_for
from switchpoint.providers.base import UpstreamResponse
from switchpoint.streaming import SSEDecoder
from vertex_auth import TokenServer

import specs

#: Deployment names; each is its family's but ``bedrock-invoke`` (Bedrock, InvokeModel with the
#: Anthropic Messages body); ``bedrock`` is Bedrock's Converse.
#: ``vertex`` is Gemini on Vertex AI, ``vertex-anthropic`` Claude on Vertex AI.
FAMILIES = ["openai", "anthropic", "gemini", "bedrock", "bedrock-invoke", "vertex", "vertex-anthropic"]
BASE_FAMILIES = ["openai", "anthropic", "gemini"]
BEDROCK_MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = Tool(
    name="get_weather",
    description="Current weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
)


@pytest.fixture(scope="module")
def google_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TokenServer, Path]]:
    """A token endpoint of the test's own and a service-account key made for it."""
    server = TokenServer()
    with server.running():
        yield server, server.service_account(tmp_path_factory.mktemp("gcp") / "sa.json")


@pytest.fixture(scope="module")
def cfg(simulator_url: str, google_token: tuple[TokenServer, Path]) -> Config:
    base = {"openai": "/openai/v1", "anthropic": "/anthropic", "gemini": "/gemini/v1beta"}
    return parse(
        {
            "providers": {
                **{
                    f: {"family": f, "base_url": simulator_url + base[f], "api_key": "env:K"}
                    for f in BASE_FAMILIES
                },
                # SigV4 with the credentials of the aws_credentials fixture
                "bedrock": {
                    "family": "bedrock",
                    "base_url": simulator_url + "/bedrock",
                    "region": "eu-west-1",
                },
                # OAuth tokens from the service account, issued by the test's token endpoint
                "vertex": {
                    "family": "vertex",
                    "base_url": simulator_url + "/vertex",
                    "project": "sim-project",
                    "location": "us-east5",
                    "credentials_file": str(google_token[1]),
                },
            },
            "deployments": {
                **{f: {"provider": f, "model": f"sim-{f}"} for f in BASE_FAMILIES},
                "bedrock": {"provider": "bedrock", "model": BEDROCK_MODEL},
                "bedrock-invoke": {"provider": "bedrock", "model": BEDROCK_MODEL, "api": "invoke"},
                "vertex": {"provider": "vertex", "model": "gemini-2.5-flash"},
                "vertex-anthropic": {"provider": "vertex", "model": "claude-sonnet-4-5@20250929"},
                **{
                    f"{f}-embed": {"provider": f, "model": "sim-embed", "kind": "embedding"}
                    for f in ("openai", "gemini")
                },
            },
        },
        env={"K": "sk-conformance"},
    )


@pytest.fixture(autouse=True)
async def aws_credentials(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """Bedrock cases: static credentials in the environment, fetched by botocore's chain
    before the case runs (as the gateway does at start-up)."""
    callspec = getattr(request.node, "callspec", None)
    family = str(callspec.params.get("family", "") if callspec is not None else "")
    if not family.startswith(("bedrock", "vertex")):
        yield
        return
    from switchpoint.providers.credentials import CREDENTIALS

    aws_env(monkeypatch)
    cfg: Config = request.getfixturevalue("cfg")
    await CREDENTIALS.start([cfg.providers[family.split("-")[0]]])
    yield
    await CREDENTIALS.close()


def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLECONFORM01",
        "AWS_SECRET_ACCESS_KEY": "conformance-secret",
        "AWS_SESSION_TOKEN": "conformance-session-token",
        "AWS_CONFIG_FILE": "/nonexistent/switchpoint-aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/switchpoint-aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t: Transport = H1Transport(pool_size=8)
    yield t
    await t.close()


def user(text: str) -> Message:
    return Message(role="user", parts=[TextPart(text=text)])


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="any", messages=list(messages), max_tokens=kw.pop("max_tokens", 200), **kw)


async def call(transport: Transport, dep: Deployment, request: ChatRequest) -> ChatResponse:
    adapter = adapter_for(dep.family)
    up = adapter.build_chat(request, dep)
    operation = ""
    if dep.family == "bedrock":  # botocore's service model for Bedrock Runtime
        operation = bedrock_model.check_request(up.method, up.url, up.body, up.headers)
        assert up.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLECONFORM01/")
        if operation.startswith("InvokeModel"):  # the Anthropic Messages body, model in the URL
            body = json.loads(up.body)
            del body["anthropic_version"]
            body["model"] = dep.model
            body["stream"] = request.stream
            specs.check_request("anthropic", "POST", "https://api.anthropic.com/v1/messages", body)
    elif dep.family == "vertex":  # Vertex follows Gemini's and Anthropic's published schemas
        operation = check_vertex_request(dep, up.url, up.body, request.stream)
        assert up.headers["authorization"].startswith("Bearer ya29.sim-")
    else:
        specs.check_request(dep.family, up.method, up.url, up.body, up.headers)
    assert not up.stream or request.stream
    if request.stream:
        stream = await transport.open_stream(up, connect_timeout_s=5, read_timeout_s=10)
        try:
            if stream.status >= 400:
                body = await stream.read()
                raise adapter.classify(
                    UpstreamResponse(status=stream.status, headers=stream.headers, body=body), dep
                )
            parser = adapter.stream_parser(request, dep)
            make = getattr(parser, "frame_decoder", None)  # Bedrock: AWS's event stream
            decoder = SSEDecoder() if make is None else make()
            acc = Accumulator()
            async for chunk in stream.chunks():
                for frame in decoder.feed(chunk):
                    for event in parser.feed(frame):  # raises on a frame it cannot understand
                        acc.add(event)
                    if dep.family == "bedrock":
                        check_bedrock_event(operation, frame.event or "", frame.data)
                    elif dep.family == "vertex":
                        specs.check_schema(operation, specs.STREAM_EVENT_SCHEMA[operation], frame.data)
                    elif frame.data != b"[DONE]":
                        specs.check_schema(dep.family, specs.STREAM_EVENT_SCHEMA[dep.family], frame.data)
            for frame in decoder.flush():
                for event in parser.feed(frame):
                    acc.add(event)
            for event in parser.close():
                acc.add(event)
            return acc.response()
        finally:
            stream.close()
    resp = await transport.send(up, timeout_s=10, connect_timeout_s=5)
    if resp.status >= 400:
        raise adapter.classify(resp, dep)
    parsed = adapter.parse_chat(resp, dep)  # raises on a body it cannot understand
    if operation == "Converse":
        bedrock_model.check_value(json.loads(resp.body), "ConverseResponse")
    elif operation in ("InvokeModel", "anthropic"):
        specs.check_schema("anthropic", "Message", resp.body)
    elif operation == "gemini":
        specs.check_schema("gemini", "GenerateContentResponse", resp.body)
    return parsed


def check_vertex_request(dep: Deployment, url: str, body: bytes, stream: bool) -> str:
    """A Vertex URL (project, location, publisher, model, action) and its body against the
    publisher's own published schema; returns the family the publisher speaks."""
    path = url.split("/vertex", 1)[1]
    prefix = "/v1/projects/sim-project/locations/us-east5/publishers/"
    assert path.startswith(prefix), url
    publisher, _, rest = path[len(prefix) :].partition("/models/")
    model, _, action = rest.partition(":")
    assert model == dep.model
    doc = json.loads(body)
    if publisher == "anthropic":
        assert action == ("streamRawPredict" if stream else "rawPredict")
        assert doc.pop("anthropic_version") == "vertex-2023-10-16" and "model" not in doc
        doc["model"] = model
        specs.check_request("anthropic", "POST", "https://api.anthropic.com/v1/messages", doc)
        return "anthropic"
    assert publisher == "google"
    assert action == ("streamGenerateContent?alt=sse" if stream else "generateContent")
    gemini_url = f"https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent"
    specs.check_request("gemini", "POST", gemini_url, body)
    return "gemini"


def check_bedrock_event(operation: str, event: str, data: bytes) -> None:
    """An event-stream message's payload against its shape in the service model; an
    InvokeModel chunk's Anthropic event against Anthropic's published schema."""
    if event.startswith(":"):
        return  # an exception: the parser raised on it
    payload = json.loads(data)
    payload.pop("p", None)  # AWS pads payloads with a "p" member the model does not list
    bedrock_model.check_value(payload, bedrock_model.stream_shape(event, operation))
    if event == "chunk":
        inner = base64.b64decode(payload["bytes"])
        specs.check_schema("anthropic", specs.STREAM_EVENT_SCHEMA["anthropic"], inner)


def text_of(r: ChatResponse) -> str:
    return "".join(p.text for p in r.parts if isinstance(p, TextPart))


def calls_of(r: ChatResponse) -> list[ToolCallPart]:
    return [p for p in r.parts if isinstance(p, ToolCallPart)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True])
async def test_text(cfg: Config, transport: Transport, family: str, stream: bool) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            Message(role="system", parts=[TextPart(text="Be brief.")]),
            user("Hello there"),
            temperature=0.3,
            top_p=0.9,
            stop=["\n\n\n"],
            stream=stream,
        ),
    )
    assert text_of(r).startswith("[simulated")
    assert r.finish_reason == "stop"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0


@pytest.mark.parametrize("family", FAMILIES)
async def test_stream_and_plain_agree(cfg: Config, transport: Transport, family: str) -> None:
    dep = cfg.deployments[family]
    plain = await call(transport, dep, req(user("Tell me something")))
    streamed = await call(transport, dep, req(user("Tell me something"), stream=True))
    assert text_of(streamed) == text_of(plain)
    assert streamed.usage.output_tokens == plain.usage.output_tokens
    assert streamed.usage.input_tokens == plain.usage.input_tokens


@pytest.mark.parametrize("family", FAMILIES)
async def test_multi_turn(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            user("My name is Ada."),
            Message(role="assistant", parts=[TextPart(text="Hello Ada.")]),
            user("And yours?"),
        ),
    )
    assert text_of(r).startswith("[simulated")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_then_result(cfg: Config, transport: Transport, family: str, stream: bool) -> None:
    dep = cfg.deployments[family]
    first = await call(transport, dep, req(user("Weather in Oslo?"), tools=[WEATHER], stream=stream))
    assert first.finish_reason == "tool_calls"
    calls = calls_of(first)
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].id
    args = json.loads(calls[0].arguments)
    assert isinstance(args["city"], str) and isinstance(args["days"], int)
    second = await call(
        transport,
        dep,
        req(
            user("Weather in Oslo?"),
            Message(role="assistant", parts=list(first.parts)),
            Message(
                role="tool",
                parts=[ToolResultPart(tool_call_id=calls[0].id, content=[TextPart(text="rain, 9 degrees")])],
            ),
            tools=[WEATHER],
            stream=stream,
        ),
    )
    assert second.finish_reason == "stop"
    assert "rain" in text_of(second)


@pytest.mark.parametrize("family", FAMILIES)
async def test_forced_tool_choice(cfg: Config, transport: Transport, family: str) -> None:
    other = Tool(name="noop", parameters={"type": "object", "properties": {}})
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            user("hi"),
            tools=[other, WEATHER],
            tool_choice=ToolChoice(mode="tool", name="get_weather"),
        ),
    )
    assert [c.name for c in calls_of(r)] == ["get_weather"]


@pytest.mark.parametrize("family", FAMILIES)
async def test_tool_choice_none(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(user("hi"), tools=[WEATHER], tool_choice=ToolChoice(mode="none")),
    )
    assert not calls_of(r) and r.finish_reason == "stop"


@pytest.mark.parametrize("family", FAMILIES)
async def test_image(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            Message(
                role="user",
                parts=[
                    TextPart(text="What is this?"),
                    ImagePart(data=PNG_B64, media_type="image/png"),
                ],
            )
        ),
    )
    assert "1 image" in text_of(r)


@pytest.mark.parametrize("family", FAMILIES)
async def test_json_schema(cfg: Config, transport: Transport, family: str) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "pages": {"type": "integer"}},
        "required": ["title", "pages"],
        "additionalProperties": False,
    }
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            user("A book please"),
            response_format=ResponseFormat(type="json_schema", schema=schema, name="book"),
        ),
    )
    doc = json.loads(text_of(r))
    assert isinstance(doc["title"], str) and isinstance(doc["pages"], int)


@pytest.mark.parametrize("family", FAMILIES)
async def test_thinking_reported(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(
            user("Think first"),
            thinking=Thinking(budget_tokens=2048, effort="medium"),
            max_tokens=4096,
        ),
    )
    assert text_of(r).startswith("[simulated")
    assert r.usage.reasoning_tokens > 0 or any(p.__class__.__name__ == "ThinkingPart" for p in r.parts)


@pytest.mark.parametrize("family", FAMILIES)
async def test_length_limit(cfg: Config, transport: Transport, family: str) -> None:
    r = await call(
        transport,
        cfg.deployments[family],
        req(user("long answer please [[sim output_tokens=50]]"), max_tokens=5),
    )
    assert r.finish_reason == "length"
    assert r.usage.output_tokens <= 5


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("directive", "kind", "retryable"),
    [
        ("status=429 retry_after_s=3", "rate_limited", True),
        ("status=503", "overloaded", True),
        ("status=500", "server_error", True),
        ("status=400", "bad_request", False),
        ("status=401", "authentication", False),
        ("status=404", "not_found", False),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_errors_classified(
    cfg: Config,
    transport: Transport,
    family: str,
    directive: str,
    kind: str,
    retryable: bool,
    stream: bool,
) -> None:
    with pytest.raises(ProviderError) as exc:
        await call(transport, cfg.deployments[family], req(user(f"hi [[sim {directive}]]"), stream=stream))
    err = exc.value
    assert err.kind == kind and err.retryable is retryable
    assert err.upstream_status == int(directive.split()[0].split("=")[1])
    if kind == "rate_limited":
        assert err.retry_after == pytest.approx(3)
    assert "sk-conformance" not in err.message


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", [False, True])
async def test_garbage_is_invalid_response(
    cfg: Config, transport: Transport, family: str, stream: bool
) -> None:
    with pytest.raises(ProviderError) as exc:
        await call(transport, cfg.deployments[family], req(user("hi [[sim malformed=true]]"), stream=stream))
    assert exc.value.kind == "invalid_response" and exc.value.retryable


@pytest.mark.parametrize("family", FAMILIES)
async def test_cut_stream_is_an_error(cfg: Config, transport: Transport, family: str) -> None:
    with pytest.raises(ProviderError) as exc:
        await call(
            transport,
            cfg.deployments[family],
            req(user("story [[sim cut_after=2 output_tokens=30]]"), stream=True),
        )
    assert exc.value.kind in {"invalid_response", "connection"}


@pytest.mark.parametrize("family", ["openai", "gemini"])
@pytest.mark.parametrize("inputs", [["one text"], ["first", "second", "third"]])
async def test_embeddings(cfg: Config, transport: Transport, family: str, inputs: list[str]) -> None:
    dep = cfg.deployments[f"{family}-embed"]
    adapter = adapter_for(family)
    up = adapter.build_embeddings(EmbeddingRequest(model="e", inputs=inputs), dep)
    specs.check_request(family, up.method, up.url, up.body, up.headers)
    resp = await transport.send(up, timeout_s=10, connect_timeout_s=5)
    assert resp.status == 200, resp.body[:200]
    out = adapter.parse_embeddings(resp, dep)
    assert [e.index for e in out.data] == list(range(len(inputs)))
    assert all(len(e.vector) > 8 for e in out.data)
