"""Lossless passthrough: same wire in and out keeps fields the gateway does not model."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway_harness import GATEWAY_KEY, validate_sent

OAI = {"authorization": f"Bearer {GATEWAY_KEY}"}
ANT = {
    "x-api-key": GATEWAY_KEY,
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "fancy-feature-2026-01-01",
}


def _sent_body(gateway: Any) -> dict[str, Any]:
    assert len(gateway.sent) == 1
    return dict(json.loads(gateway.sent[0].body))


def test_openai_request_fields_survive_to_an_openai_upstream(gateway: Any) -> None:
    gateway.sent.clear()
    body = {
        "model": "up-openai",
        "messages": [{"role": "user", "content": "hi", "vendor_note": "kept"}],
        "prediction": {"type": "content", "content": "hello"},
        "service_tier": "flex",
        "x_vendor_extension": {"nested": [1, 2, 3]},
    }
    with httpx.Client(base_url=gateway.url) as c:
        r = c.post("/v1/chat/completions", json=body, headers=OAI)
    assert r.status_code == 200, r.text
    sent = _sent_body(gateway)
    assert sent["model"] == "sim-gpt"  # only the model id changes
    assert sent["x_vendor_extension"] == {"nested": [1, 2, 3]}
    assert sent["prediction"] == body["prediction"] and sent["service_tier"] == "flex"
    assert sent["messages"][0]["vendor_note"] == "kept"
    gateway.sent.clear()  # the made-up fields are not in the published spec, by design


def test_openai_response_fields_survive_from_an_openai_upstream(gateway: Any) -> None:
    with httpx.Client(base_url=gateway.url) as c:
        r = c.post(
            "/v1/chat/completions",
            json={"model": "up-openai", "messages": [{"role": "user", "content": "hi"}]},
            headers=OAI,
        )
    doc = r.json()
    assert doc["id"].startswith("chatcmpl-")
    assert doc["choices"][0]["message"]["annotations"] == []
    assert "accepted_prediction_tokens" in doc["usage"]["completion_tokens_details"]
    validate_sent(gateway.sent)
    gateway.sent.clear()


def test_anthropic_request_and_response_pass_losslessly(gateway: Any) -> None:
    gateway.sent.clear()
    body = {
        "model": "up-anthropic",
        "max_tokens": 30,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                ],
            }
        ],
        "service_tier": "auto",
    }
    with httpx.Client(base_url=gateway.url) as c:
        r = c.post("/v1/messages", json=body, headers=ANT)
    assert r.status_code == 200, r.text
    sent = _sent_body(gateway)
    assert sent["system"] == body["system"] and sent["messages"] == body["messages"]
    assert sent["service_tier"] == "auto" and sent["model"] == "sim-claude"
    assert gateway.sent[0].headers["anthropic-beta"] == "fancy-feature-2026-01-01"
    doc = r.json()
    assert "ephemeral_5m_input_tokens" in doc["usage"]["cache_creation"]
    assert doc["usage"]["service_tier"] == "standard"
    validate_sent(gateway.sent)
    gateway.sent.clear()


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_passthrough_stream_frames_are_forwarded_unchanged(gateway: Any, dialect: str) -> None:
    """Same family: the client receives the upstream's own frames byte for byte."""
    if dialect == "openai":
        path, headers = "/v1/chat/completions", OAI
        body: dict[str, Any] = {
            "model": "up-openai",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "stream"}],
        }
        direct_path, direct_headers = "/openai/v1/chat/completions", {"authorization": "Bearer x"}
    else:
        path, headers = "/v1/messages", ANT
        body = {
            "model": "up-anthropic",
            "stream": True,
            "max_tokens": 40,
            "messages": [{"role": "user", "content": "stream"}],
        }
        direct_path, direct_headers = (
            "/anthropic/v1/messages",
            {"x-api-key": "x", "anthropic-version": "2023-06-01"},
        )
    with httpx.Client(base_url=gateway.url) as c:
        via = c.post(path, json=body, headers=headers).text
    sim_url = gateway.sent[-1].url.split(direct_path.rsplit("/", 1)[0])[0]
    upstream_body = json.loads(gateway.sent[-1].body)
    with httpx.Client(base_url=sim_url) as c:
        direct = c.post(direct_path, json=upstream_body, headers=direct_headers).text

    # ids and timestamps differ per response; everything else is the same text
    def norm(t: str) -> list[str]:
        out = []
        for line in t.splitlines():
            if line.startswith("data: {"):
                d = json.loads(line[6:])
                for k in ("id", "created"):
                    d.pop(k, None)
                if "message" in d:
                    d["message"].pop("id", None)
                line = "data: " + json.dumps(d, sort_keys=True)
            out.append(line)
        return out

    assert norm(via) == norm(direct)
    validate_sent(gateway.sent)
    gateway.sent.clear()
