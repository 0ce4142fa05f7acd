"""The Bedrock family beyond the conformance suite: configuration, error classification,
credentials (the chain, kept fresh off the request path), and the whole gateway in front of the
simulated Bedrock upstream with the official SDKs as clients."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchpoint.canonical import ChatRequest, Message, TextPart
from switchpoint.config import parse
from switchpoint.errors import ConfigError, ProviderError
from switchpoint.providers import adapter_for
from switchpoint.providers import credentials as cred
from switchpoint.providers.aws_auth import AwsSource
from switchpoint.providers.base import UpstreamResponse

pytest.importorskip("botocore")

MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def bedrock_config(base_url: str = "", **dep: Any) -> Any:
    return parse(
        {
            "providers": {"aws": {"family": "bedrock", "region": "us-east-1", "base_url": base_url}},
            "deployments": {"d": {"provider": "aws", "model": MODEL, **dep}},
            "models": {"claude": "d"},
        },
        env={},
    )


# --- configuration -------------------------------------------------------------------------------


def test_config_checks_for_the_cloud_families() -> None:
    def problems(doc: dict[str, Any]) -> str:
        with pytest.raises(ConfigError) as exc:
            parse(doc, env={})
        return str(exc.value)

    text = problems(
        {
            "providers": {
                "aws": {"family": "bedrock"},
                "oa": {"family": "openai", "region": "us-east-1"},
                "gcp": {"family": "vertex", "region": "eu"},
            },
            "deployments": {
                "a": {"provider": "aws", "model": MODEL, "api": "gemini"},
                "b": {"provider": "oa", "model": "gpt", "api": "converse"},
                "c": {"provider": "gcp", "model": "gemini-2.5-pro"},
                "e": {"provider": "aws", "model": "titan", "kind": "embedding", "region": "eu-west-1"},
            },
        }
    )
    assert "$.providers.oa.base_url: required for the openai family" in text
    assert "$.providers.oa.region: only bedrock providers take it" in text
    assert "$.providers.gcp.region: only bedrock providers take it" in text
    assert "$.deployments.a.api: must be one of converse, invoke for the bedrock family" in text
    assert "$.deployments.a.region: a bedrock deployment needs a region (here or on its provider)" in text
    assert "$.deployments.b.api: only bedrock and vertex deployments take it" in text
    assert "$.deployments.c.location: a vertex deployment needs a location (here or on its provider)" in text
    assert "$.deployments.c.project: a vertex deployment needs a project (here or on its provider)" in text
    assert "$.deployments.e.kind: the bedrock family has no embeddings API" in text
    cfg = bedrock_config(api="invoke", region="eu-north-1")
    dep = cfg.deployments["d"]
    assert (dep.family, dep.api, dep.region, dep.provider.base_url) == ("bedrock", "invoke", "eu-north-1", "")
    assert bedrock_config().deployments["d"].api == "converse"


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "etype", "message", "kind", "retryable"),
    [
        (
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
            "rate_limited",
            True,
        ),
        (
            400,
            "ServiceQuotaExceededException",
            "Your request exceeds the service quota.",
            "rate_limited",
            True,
        ),
        (400, "ValidationException", "Input is too long for requested model.", "context_too_long", False),
        (
            400,
            "ValidationException",
            "prompt is too long: 210000 tokens > 200000 maximum",
            "context_too_long",
            False,
        ),
        (
            400,
            "ValidationException",
            "The model returned the following errors: temperature: range",
            "bad_request",
            False,
        ),
        (
            429,
            "ModelNotReadyException",
            "Model is not ready to serve inference requests.",
            "overloaded",
            True,
        ),
        (503, "ServiceUnavailableException", "Service is unavailable.", "overloaded", True),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            "permission",
            False,
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            "authentication",
            False,
        ),
        (
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
            "authentication",
            False,
        ),
        (404, "ResourceNotFoundException", "Could not resolve the foundation model.", "not_found", False),
        (408, "ModelTimeoutException", "Model has timed out in processing the request.", "timeout", True),
        (424, "ModelErrorException", "The model returned an error.", "server_error", True),
        (500, "InternalServerException", "", "server_error", True),
        (502, "", "", "server_error", True),
    ],
)
def test_errors_are_classified(status: int, etype: str, message: str, kind: str, retryable: bool) -> None:
    dep = bedrock_config().deployments["d"]
    headers = (
        {"x-amzn-errortype": f"{etype}:http://internal.amazon.com/coral/com.amazon.bedrock/"} if etype else {}
    )
    body = b'{"message":"' + message.encode() + b'"}' if message else b""
    err = adapter_for("bedrock").classify(UpstreamResponse(status=status, headers=headers, body=body), dep)
    assert (err.kind, err.retryable, err.upstream_status) == (kind, retryable, status)
    assert err.message == (message or f"the Bedrock upstream answered HTTP {status}")


def test_the_error_type_may_come_in_the_body_and_keys_are_redacted() -> None:
    dep = bedrock_config().deployments["d"]
    body = b'{"__type":"com.amazon.coral.service#ThrottlingException","message":"slow down AKIAIOSFODNN7EXAMPLE"}'
    err = adapter_for("bedrock").classify(
        UpstreamResponse(status=400, headers={"retry-after": "2"}, body=body), dep
    )
    assert err.kind == "rate_limited" and err.retry_after == 2.0
    assert err.message == "slow down [redacted]"


# --- credentials ---------------------------------------------------------------------------------


class _Counting(cred.CredentialSource[str]):
    def __init__(self, lifetime_s: float, fail: int = 0) -> None:
        super().__init__("test")
        self.lifetime_s = lifetime_s
        self.fail = fail
        self.threads: list[str] = []

    def fetch(self) -> tuple[str, float | None]:
        self.threads.append(threading.current_thread().name)
        if self.fail:
            self.fail -= 1
            raise OSError("token endpoint unreachable")
        return f"token-{len(self.threads)}", time.time() + self.lifetime_s


async def test_credentials_refresh_ahead_of_expiry_in_the_background(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cred, "RETRY_MIN_S", 0.05)
    src = _Counting(lifetime_s=cred.REFRESH_AHEAD_S + 0.3)  # refresh due 0.3 s after each fetch
    with pytest.raises(ProviderError) as exc:
        src.current()  # never started: it starts now, and this request fails over
    assert exc.value.kind == "authentication"
    assert exc.value.message == "the test credentials are not available yet"
    await asyncio.wait_for(src.start_background(), 5)
    assert src.current() == "token-1"
    for _ in range(1000):
        assert src.current() in ("token-1", "token-2")  # reading never fetches
    await asyncio.sleep(0.8)
    assert src.current() in ("token-2", "token-3")
    assert src.fetches >= 2
    assert all(name != threading.main_thread().name for name in src.threads)  # always in a worker thread
    await src.stop()


async def test_a_failing_fetch_is_retried_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cred, "RETRY_MIN_S", 0.05)
    src = _Counting(lifetime_s=3600, fail=2)
    await asyncio.wait_for(src.start_background(), 5)  # the first fetch failed: start-up goes on
    with pytest.raises(ProviderError) as exc:
        src.current()
    assert (
        exc.value.message == "the test credentials are not available yet: OSError: token endpoint unreachable"
    )
    await asyncio.sleep(0.4)
    assert src.current() == "token-3"
    await src.stop()


async def test_the_shared_profile_is_read(aws_env: Path) -> None:
    (aws_env / "aws-credentials").write_text(
        "[work]\naws_access_key_id = AKIAPROFILEEXAMPLE01\naws_secret_access_key = profile-secret\n"
    )
    src = AwsSource("work")
    frozen, expiry = await asyncio.to_thread(src.fetch)
    assert (frozen.access_key, frozen.secret_key, expiry) == ("AKIAPROFILEEXAMPLE01", "profile-secret", None)
    env_creds, _ = await asyncio.to_thread(AwsSource(None).fetch)
    assert env_creds.access_key == "AKIAENVEXAMPLE000001"  # the environment comes first in the chain


class _STS(http.server.BaseHTTPRequestHandler):
    calls: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        _STS.calls.append(body)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        xml = (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWEBIDENTITY00001</AccessKeyId>"
            "<SecretAccessKey>web-secret</SecretAccessKey><SessionToken>web-token</SessionToken>"
            f"<Expiration>{expires}</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
            "</AssumeRoleWithWebIdentityResponse>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/xml")
        self.send_header("content-length", str(len(xml)))
        self.end_headers()
        self.wfile.write(xml)


@pytest.fixture
def sts() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _STS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_web_identity_through_botocores_chain(
    aws_env: Path, sts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EKS-style: a token file and a role; botocore calls STS (here a local fake) for
    temporary credentials, which come with their expiry."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    token = aws_env / "token"
    token.write_text("eyJ.web-identity.token")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gateway")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts)
    _STS.calls.clear()
    frozen, expiry = await asyncio.to_thread(AwsSource(None).fetch)
    assert (frozen.access_key, frozen.token) == ("ASIAWEBIDENTITY00001", "web-token")
    assert expiry is not None and 3000 < expiry - time.time() <= 3600
    assert "AssumeRoleWithWebIdentity" in _STS.calls[0] and "eyJ.web-identity.token" in _STS.calls[0]


class _Container(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        _Container.seen.append(f"{self.path} {self.headers.get('authorization')}")
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1800))
        doc = {
            "AccessKeyId": "ASIACONTAINER0000001",
            "SecretAccessKey": "container-secret",
            "Token": "container-token",
            "Expiration": expires,
        }
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


async def test_a_container_role_through_botocores_chain(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ECS-style: the container credentials endpoint (here a local fake on loopback, which
    botocore accepts as a full URI) hands out temporary credentials with their expiry."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Container)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{server.server_address[1]}/creds"
        )
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "task-token")
        _Container.seen.clear()
        frozen, expiry = await asyncio.to_thread(AwsSource(None).fetch)
    finally:
        server.shutdown()
        server.server_close()
    assert (frozen.access_key, frozen.token) == ("ASIACONTAINER0000001", "container-token")
    assert expiry is not None and 1500 < expiry - time.time() <= 1800
    assert _Container.seen == ["/creds task-token"]


# --- the whole gateway ---------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["converse", "invoke"])
def test_the_gateway_serves_sdk_clients_from_bedrock(aws_env: Path, simulator_url: str, api: str) -> None:
    import anthropic
    import openai

    from switchpoint.api.app import create_app

    from servers import serve_in_thread

    app = create_app(bedrock_config(simulator_url + "/bedrock", api=api))
    with (
        serve_in_thread(app) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
        anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as a,
    ):
        r = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hello"}])
        assert r.choices[0].message.content and r.choices[0].message.content.startswith(
            f"[simulated {MODEL}]"
        )
        assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
        chunks = list(
            client.chat.completions.create(
                model="claude",
                messages=[{"role": "user", "content": "Hello"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == r.choices[0].message.content
        assert (
            chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == r.usage.completion_tokens
        )
        m = a.messages.create(model="claude", max_tokens=50, messages=[{"role": "user", "content": "Hello"}])
        assert m.content[0].type == "text" and m.content[0].text.startswith("[simulated")
        with a.messages.stream(
            model="claude", max_tokens=50, messages=[{"role": "user", "content": "Hello"}]
        ) as s:
            assert "".join(s.text_stream).startswith("[simulated")
        # an upstream throttle reaches the client as its own 429
        try:
            client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "hi [[sim status=429]]"}]
            )
        except openai.RateLimitError as exc:
            assert "Too many requests" in str(exc)
        else:
            raise AssertionError("expected a 429")


def test_request_building_refuses_what_bedrock_cannot_take() -> None:
    from switchpoint.canonical import ImagePart

    dep = bedrock_config().deployments["d"]
    msg = Message(role="user", parts=[TextPart(text="see"), ImagePart(url="https://example.com/cat.png")])
    with pytest.raises(ProviderError) as exc:
        adapter_for("bedrock").build_chat(ChatRequest(model="x", messages=[msg]), dep)
    assert exc.value.kind == "bad_request"
    assert "Bedrock takes images inline (base64 data) or from S3" in exc.value.message
