"""Bad input and upstream failures: clear errors in the client's dialect, nothing leaked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

import specs
from gateway_harness import FAMILIES, GATEWAY_KEY, UPSTREAM_KEY, validate_sent

UPSTREAMS = ["openai", "anthropic", "gemini"]


@pytest.fixture(autouse=True)
def upstream_requests_valid(gateway: Any) -> Iterator[None]:
    gateway.sent.clear()
    yield
    validate_sent(gateway.sent)


@pytest.fixture
def http(gateway: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        yield c


AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
ANT = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}


def _no_leak(r: httpx.Response) -> None:
    assert UPSTREAM_KEY not in r.text
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert r.headers.get("x-request-id")


def _openai_error(r: httpx.Response, status: int) -> dict[str, Any]:
    _no_leak(r)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "type" in body["error"]
    return dict(body["error"])


def _anthropic_error(r: httpx.Response, status: int) -> dict[str, Any]:
    _no_leak(r)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["message"]
    if status < 500:  # the spec describes 4XX error bodies only
        specs.check_response("anthropic", "POST", "https://api.anthropic.com/v1/messages", status, r.content)
    else:
        specs.check_schema("anthropic", "ErrorResponse", body)
    return dict(body["error"])


def test_missing_and_wrong_key(http: httpx.Client) -> None:
    body = {"model": "up-openai", "messages": [{"role": "user", "content": "hi"}]}
    err = _openai_error(http.post("/v1/chat/completions", json=body), 401)
    assert err["type"] == "authentication_error" or "auth" in err["type"]
    _openai_error(http.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer nope"}), 401)
    ant = {"model": "up-openai", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    e = _anthropic_error(
        http.post("/v1/messages", json=ant, headers={"anthropic-version": "2023-06-01"}), 401
    )
    assert e["type"] == "authentication_error"


def test_sdks_raise_their_own_auth_error(gateway: Any) -> None:
    with (
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="wrong", max_retries=0) as oai,
        pytest.raises(openai.AuthenticationError),
    ):
        oai.chat.completions.create(model="up-openai", messages=[{"role": "user", "content": "hi"}])
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0) as ant,
        pytest.raises(anthropic.AuthenticationError),
    ):
        ant.messages.create(model="up-openai", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_malformed_json(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", content=b'{"model": "up-openai", "messages": [', headers=AUTH)
    _openai_error(r, 400)
    r = http.post("/v1/messages", content=b"not json at all", headers=ANT)
    assert _anthropic_error(r, 400)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "up-openai"}, "messages"),
        ({"model": "up-openai", "messages": []}, "messages"),
        ({"model": "up-openai", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        (
            {"model": "up-openai", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"},
            "temperature",
        ),
        ({"model": "up-openai", "messages": [{"role": "user", "content": "hi"}], "n": 3}, "n"),
    ],
)
def test_openai_validation_errors_name_the_field(
    http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    err = _openai_error(http.post("/v1/chat/completions", json=body, headers=AUTH), 400)
    assert err.get("param") == param or param in err["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "up-anthropic", "messages": [{"role": "user", "content": "hi"}]},  # no max_tokens
        {"model": "up-anthropic", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
        {"model": "up-anthropic", "max_tokens": "five", "messages": [{"role": "user", "content": "hi"}]},
    ],
)
def test_anthropic_validation_errors(http: httpx.Client, body: dict[str, Any]) -> None:
    _anthropic_error(http.post("/v1/messages", json=body, headers=ANT), 400)


def test_unknown_model_is_404_in_both_dialects(gateway: Any) -> None:
    with (
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oai,
        pytest.raises(openai.NotFoundError) as e1,
    ):
        oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert "no-such-model" in str(e1.value)
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0) as ant,
        pytest.raises(anthropic.NotFoundError),
    ):
        ant.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_body_over_limit_is_413(http: httpx.Client) -> None:
    big = "x" * (3 * 1024 * 1024)
    body = {"model": "up-openai", "messages": [{"role": "user", "content": big}]}
    _openai_error(http.post("/v1/chat/completions", json=body, headers=AUTH), 413)
    ant = {"model": "up-openai", "max_tokens": 5, "messages": [{"role": "user", "content": big}]}
    _anthropic_error(http.post("/v1/messages", json=ant, headers=ANT), 413)


def test_unknown_route_is_404_json(http: httpx.Client) -> None:
    _openai_error(http.get("/v1/nothing-here", headers=AUTH), 404)


STATUSES = [400, 401, 403, 404, 413, 422, 429, 500, 502, 503, 504]


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("status", STATUSES)
def test_upstream_errors_in_openai_dialect(http: httpx.Client, upstream: str, status: int) -> None:
    directive = f"[[sim status={status} retry_after_s=2]]" if status == 429 else f"[[sim status={status}]]"
    body = {"model": f"up-{upstream}", "messages": [{"role": "user", "content": f"hi {directive}"}]}
    r = http.post("/v1/chat/completions", json=body, headers=AUTH)
    _openai_error(r, status)
    if status == 429:
        assert r.headers["retry-after"] == "2"


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("status", STATUSES)
def test_upstream_errors_in_anthropic_dialect(http: httpx.Client, upstream: str, status: int) -> None:
    directive = f"[[sim status={status} retry_after_s=2]]" if status == 429 else f"[[sim status={status}]]"
    body = {
        "model": f"up-{upstream}",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": f"hi {directive}"}],
    }
    r = http.post("/v1/messages", json=body, headers=ANT)
    err = _anthropic_error(r, status)
    if status == 429:
        assert r.headers["retry-after"] == "2"
        assert err["type"] == "rate_limit_error"


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_upstream_garbage_is_502(http: httpx.Client, upstream: str) -> None:
    body = {"model": f"up-{upstream}", "messages": [{"role": "user", "content": "hi [[sim malformed=true]]"}]}
    _openai_error(http.post("/v1/chat/completions", json=body, headers=AUTH), 502)
    ant = {
        "model": f"up-{upstream}",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi [[sim malformed=true]]"}],
    }
    _anthropic_error(http.post("/v1/messages", json=ant, headers=ANT), 502)


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_stream_cut_midway_ends_with_error_event(http: httpx.Client, upstream: str) -> None:
    body = {
        "model": f"up-{upstream}",
        "stream": True,
        "messages": [{"role": "user", "content": "a long story [[sim cut_after=3 output_tokens=40]]"}],
    }
    with http.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as r:
        assert r.status_code == 200
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    payloads = [ln[6:] for ln in lines]
    assert "[DONE]" not in payloads, "a cut stream must not pretend to finish"
    last = json.loads(payloads[-1])
    assert "error" in last and last["error"]["message"]
    content = [json.loads(p) for p in payloads[:-1]]
    texts = [c["choices"][0]["delta"].get("content") or "" for c in content if c.get("choices")]
    assert sum(1 for t in texts if t) >= 1, "what arrived before the cut reached the client once"


def test_stream_fails_over_before_first_content(gateway: Any) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="failover", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert raw.headers["x-switchpoint-deployment"] == "d-openai"
        text = "".join((c.choices[0].delta.content or "") for c in raw.parse() if c.choices)
    assert text.startswith("[simulated")
    gateway.sent.pop(0)  # the dead upstream's request


def test_gateway_keeps_serving_and_accounts(gateway: Any, http: httpx.Client) -> None:
    for _ in range(3):
        http.post("/v1/chat/completions", content=b"{bad", headers=AUTH)
    r = http.post(
        "/v1/chat/completions",
        json={"model": "up-openai", "messages": [{"role": "user", "content": "hi"}]},
        headers=AUTH,
    )
    assert r.status_code == 200
    stats = http.get("/admin/stats", headers=AUTH).json()
    assert stats["requests"] >= 4 and stats["failed"] >= 3
    d = stats["deployments"]["d-openai"]
    assert d["input_tokens"] > 0 and d["output_tokens"] > 0 and d["cost_usd"] > 0


def test_health_and_ready(http: httpx.Client) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    ready = http.get("/ready").json()
    assert ready["status"] == "ready"


def test_wrong_method_is_405_with_request_id(http: httpx.Client) -> None:
    r = http.delete("/v1/chat/completions", headers=AUTH)  # GET lists stored completions
    assert r.status_code == 405 and r.headers["x-request-id"]
    assert r.json()["error"]["message"]
    assert "POST" in r.headers.get("allow", "")


def test_client_request_id_is_echoed(http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat/completions",
        headers={**AUTH, "x-request-id": "trace-123"},
        json={"model": "up-openai", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.headers["x-request-id"] == "trace-123"
    r = http.post(
        "/v1/chat/completions",
        headers={**AUTH, "x-request-id": "bad id\twith spaces"},
        json={"model": "up-openai", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.headers["x-request-id"].startswith("req_")


def test_document_blocks_cannot_go_to_other_families(http: httpx.Client) -> None:
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a memo"}}
    body = {
        "model": "up-openai",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": [doc, {"type": "text", "text": "summarise"}]}],
    }
    err = _anthropic_error(http.post("/v1/messages", json=body, headers=ANT), 400)
    assert "document" in err["message"]
    body["model"] = "up-anthropic"
    r = http.post("/v1/messages", json=body, headers=ANT)
    assert r.status_code == 200, r.text


def test_secrets_never_reach_the_logs(
    gateway: Any, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Upstream failures, auth failures and successes log nothing that holds a key."""
    with caplog.at_level(logging.DEBUG):
        http.post(
            "/v1/chat/completions",
            json={"model": "up-openai", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer sk-wrong-client-key"},
        )
        for directive in ("[[sim status=401]]", "[[sim malformed=true]]", "[[sim status=500]]"):
            http.post(
                "/v1/chat/completions",
                headers=AUTH,
                json={"model": "up-anthropic", "messages": [{"role": "user", "content": f"hi {directive}"}]},
            )
        http.post(
            "/v1/chat/completions",
            headers=AUTH,
            json={"model": "failover", "messages": [{"role": "user", "content": "hi"}]},
        )
    # the failover attempt at the dead upstream never reached a spec'd server
    gateway.sent[:] = [r for r in gateway.sent if any(f"/{f}/" in r.url for f in FAMILIES)]
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert UPSTREAM_KEY not in text and GATEWAY_KEY not in text and "sk-wrong-client-key" not in text
