"""SigV4: AWS's published test vectors, and the gateway's signed Bedrock requests verified the way
AWS verifies them, from the bytes that arrive.

The vectors are from AWS's Signature Version 4 test suite (``aws-sig-v4-test-suite``, published
by Amazon Web Services under the Apache License 2.0; credentials ``AKIDEXAMPLE`` /
``wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY``, region ``us-east-1``, service ``service``,
time ``20150830T123600Z``): ``get-vanilla``, ``get-vanilla-query-order-key-case``,
``post-vanilla``, ``get-utf8``. Both the gateway's signer (botocore's ``SigV4Auth`` through
``providers/aws_auth.sign``) and this file's own verifier, written from AWS's description of
the algorithm, must reproduce them; the verifier then checks requests the gateway really sent.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

from switchpoint.canonical import ChatRequest, Message, TextPart
from switchpoint.config import parse
from switchpoint.executor import H1Transport
from switchpoint.providers import adapter_for
from switchpoint.providers.aws_auth import sign
from switchpoint.providers.credentials import CREDENTIALS
from test_h1_transport import Request, Upstream, answer, keep_alive

botocore_credentials = pytest.importorskip("botocore.credentials")

KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
VECTORS = [
    (
        "get-vanilla",
        "GET",
        "https://example.amazonaws.com/",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        "https://example.amazonaws.com/?Param2=value2&Param1=value1",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "post-vanilla",
        "POST",
        "https://example.amazonaws.com/",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    (
        "get-utf8",
        "GET",
        "https://example.amazonaws.com/\u1234",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
]


# --- an independent SigV4 verifier ---------------------------------------------------------------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _uri(path: str) -> str:
    """The canonical URI of a non-S3 service: each segment URI-encoded (again)."""
    return "/".join(quote(seg, safe="-_.~") for seg in (path or "/").split("/"))


def _query(query: str) -> str:
    pairs = []
    for item in query.split("&") if query else []:
        k, _, v = item.partition("=")
        pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def signature(
    secret: str,
    method: str,
    target: str,
    headers: dict[str, str],
    signed: list[str],
    body: bytes,
    scope: str,
    amz_date: str,
) -> str:
    parts = urlsplit(target)
    canonical_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed)
    canonical = "\n".join(
        [
            method,
            _uri(parts.path),
            _query(parts.query),
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), "aws4_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def verify(secret: str, method: str, target: str, headers: dict[str, str], body: bytes) -> str:
    """Check a received request's ``authorization`` as AWS would; returns its credential scope."""
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 ")
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    key_id, scope = fields["Credential"].split("/", 1)
    signed = fields["SignedHeaders"].split(";")
    assert signed == sorted(signed) and "host" in signed and "x-amz-date" in signed
    expected = signature(secret, method, target, headers, signed, body, scope, headers["x-amz-date"])
    assert hmac.compare_digest(fields["Signature"], expected), "signature does not verify"
    return f"{key_id}/{scope}"


# --- the published vectors -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "method", "url", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_the_independent_verifier_reproduces_the_aws_vectors(
    name: str, method: str, url: str, expected: str
) -> None:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}
    got = signature(
        SECRET,
        method,
        target,
        headers,
        ["host", "x-amz-date"],
        b"",
        "20150830/us-east-1/service/aws4_request",
        "20150830T123600Z",
    )
    assert got == expected


@pytest.mark.parametrize(("name", "method", "url", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_the_gateways_signer_reproduces_the_aws_vectors(
    name: str, method: str, url: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.auth

    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda: datetime.datetime(2015, 8, 30, 12, 36, 0)
    )
    creds = botocore_credentials.ReadOnlyCredentials(KEY_ID, SECRET, None)
    headers = sign(creds, "us-east-1", method, url, {}, b"", service="service")
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={expected}"
    )
    assert headers["X-Amz-Date"] == "20150830T123600Z"


# --- the gateway's Bedrock requests, verified from what arrives -----------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-of-the-test")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.mark.parametrize("api", ["converse", "invoke"])
@pytest.mark.parametrize("stream", [False, True])
async def test_requests_the_gateway_sends_verify_on_arrival(
    aws_env: None, api: str, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Request] = []
    async with Upstream(keep_alive(lambda r: answer(b"{}"), seen)) as up:
        cfg = parse(
            {
                "providers": {"aws": {"family": "bedrock", "region": "eu-central-1", "base_url": up.url}},
                "deployments": {
                    "d": {
                        "provider": "aws",
                        "model": "anthropic.claude-sonnet-4-5-20250929-v1:0",
                        "api": api,
                        "region": "ap-south-1",
                    }
                },
            },
            env={},
        )
        await CREDENTIALS.start(cfg.providers.values())
        t = H1Transport()
        try:
            dep = cfg.deployments["d"]
            msg = [Message(role="user", parts=[TextPart(text="Grüße, Bedrock")])]
            up_req = adapter_for("bedrock").build_chat(
                ChatRequest(model="x", messages=msg, max_tokens=9, stream=stream), dep
            )
            await t.send(up_req, timeout_s=5, connect_timeout_s=5)
        finally:
            await t.close()
            await CREDENTIALS.close()
    [got] = seen
    action = {("converse", False): "converse", ("converse", True): "converse-stream"}.get(
        (api, stream), "invoke-with-response-stream" if stream else "invoke"
    )
    assert got.target == f"/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/{action}"
    scope = verify("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", got.method, got.target, got.headers, got.body)
    # the deployment's region wins over the provider's; the session token is sent (and signed)
    assert scope.startswith("AKIAIOSFODNN7EXAMPLE/") and scope.endswith("/ap-south-1/bedrock/aws4_request")
    assert got.headers["x-amz-security-token"] == "session-token-of-the-test"
    assert "x-amz-security-token" in got.headers["authorization"]
    # botocore's own signer, given the same inputs (what arrived, at the request's time), agrees
    import botocore.auth
    from botocore.awsrequest import AWSRequest

    when = datetime.datetime.strptime(got.headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
    signed = got.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    again = AWSRequest(
        method=got.method,
        url=f"http://{got.headers['host']}{got.target}",
        data=got.body,
        headers={
            h: got.headers[h] for h in signed if h not in ("host", "x-amz-date", "x-amz-security-token")
        },
    )
    creds = botocore_credentials.ReadOnlyCredentials(
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session-token-of-the-test"
    )
    botocore.auth.SigV4Auth(creds, "bedrock", "ap-south-1").add_auth(again)
    assert again.headers["Authorization"] == got.headers["authorization"]
    # a changed byte of the body no longer verifies
    with pytest.raises(AssertionError, match="does not verify"):
        verify(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", got.method, got.target, got.headers, got.body + b" "
        )


def test_bedrock_api_keys_are_sent_as_bearer_tokens() -> None:
    cfg = parse(
        {
            "providers": {"aws": {"family": "bedrock", "region": "us-west-2", "api_key": "env:BEDROCK_KEY"}},
            "deployments": {"d": {"provider": "aws", "model": "amazon.nova-pro-v1:0"}},
        },
        env={"BEDROCK_KEY": "bedrock-api-key-123"},
    )
    msg = [Message(role="user", parts=[TextPart(text="hi")])]
    up: Any = adapter_for("bedrock").build_chat(ChatRequest(model="x", messages=msg), cfg.deployments["d"])
    assert up.url == "https://bedrock-runtime.us-west-2.amazonaws.com/model/amazon.nova-pro-v1%3A0/converse"
    assert up.headers["authorization"] == "Bearer bedrock-api-key-123"
