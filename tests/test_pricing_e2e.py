"""End to end: requests through the gateway to the simulated providers, whose usage includes
cached reads, 5-minute and 1-hour cache writes, reasoning and long prompts, are costed right.

The deployments are priced from the bundled catalog (``catalog_model``). For every request the
test reads the usage the client saw on the wire, prices it by hand at the catalog's list rates
(written out below as literals) and compares with what accounting booked for that request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from switchpoint import catalog
from switchpoint.accounting import Booked
from switchpoint.api.app import create_app
from switchpoint.config import parse
from switchpoint.streaming import SSEDecoder

from gateway_harness import ENV, GATEWAY_KEY, RecordingTransport
from servers import serve_in_thread

OAI = {"authorization": f"Bearer {GATEWAY_KEY}"}
ANT = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}
# Over 1,024 tokens, so the simulated providers cache it (OpenAI and Gemini on their own,
# Anthropic where the request marks a breakpoint).
LONG = "Rule: every answer names the rule it follows and stays short. " * 100

# USD per million tokens, from src/switchpoint/data/prices.json (see docs/accounting.md).
GPT_54 = {"input": 2.5, "cached": 0.25, "output": 15.0}  # reasoning at the output rate
SONNET_45 = {"input": 3.0, "cached": 0.3, "write_5m": 3.75, "write_1h": 6.0, "output": 15.0}
SONNET_45_LONG = {"input": 6.0, "cached": 0.6, "write_5m": 7.5, "write_1h": 12.0, "output": 22.5}
GEMINI_25_PRO = {"input": 1.25, "cached": 0.125, "output": 10.0}  # thinking at the output rate
GEMINI_25_PRO_LONG = {"input": 2.5, "cached": 0.25, "output": 15.0}


class Capture:
    """A sink keeping every booked record, by request id (written on the server's loop)."""

    def __init__(self) -> None:
        self.rows: dict[str, Booked] = {}
        self.lock = threading.Lock()

    def write(self, batch: Sequence[Booked]) -> None:
        with self.lock:
            for booked in batch:
                self.rows[booked.record.request_id] = booked

    async def close(self) -> None:
        return None

    def get(self, request_id: str) -> Booked:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.lock:
                if request_id in self.rows:
                    return self.rows[request_id]
            time.sleep(0.01)
        raise AssertionError(f"request {request_id} was never booked")


@pytest.fixture(scope="module")
def priced(simulator_url: str) -> Iterator[tuple[str, Capture]]:
    key = "env:E2E_UPSTREAM_KEY"
    doc = {
        "server": {"master_key": "env:E2E_GATEWAY_KEY"},
        "providers": {
            "p-openai": {"family": "openai", "base_url": f"{simulator_url}/openai/v1", "api_key": key},
            "p-anthropic": {"family": "anthropic", "base_url": f"{simulator_url}/anthropic", "api_key": key},
            "p-gemini": {"family": "gemini", "base_url": f"{simulator_url}/gemini/v1beta", "api_key": key},
        },
        "deployments": {
            "c-gpt": {"provider": "p-openai", "model": "sim-gpt", "catalog_model": "gpt-5.4"},
            "c-claude": {
                "provider": "p-anthropic",
                "model": "sim-claude",
                "catalog_model": "claude-sonnet-4-5",
                "context_window": 1_000_000,
                # These tests price the client's own breakpoints: no gateway-placed ones.
                "prompt_cache": False,
            },
            "c-gemini": {
                "provider": "p-gemini",
                "model": "sim-gemini",
                "catalog_model": "gemini-2.5-pro",
                "context_window": 1_048_576,
            },
        },
        "models": {"gpt": "c-gpt", "claude": "c-claude", "gemini": "c-gemini"},
    }
    app = create_app(parse(doc, env=ENV), transport=RecordingTransport())
    capture = Capture()
    app.state.gateway.accounting.sinks.append(capture)
    with serve_in_thread(app) as url:
        yield url, capture


def _post(url: str, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    r = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    return r.json(), r.headers["x-request-id"]


def _booked(capture: Capture, rid: str, deployment: str) -> Booked:
    booked = capture.get(rid)
    assert booked.record.attempts[-1].deployment == deployment
    assert booked.price_version == catalog.bundled().version
    return booked


def _openai_cost(u: dict[str, Any], r: dict[str, float]) -> float:
    """OpenAI wire usage at rates ``r``: prompt_tokens include cached_tokens; completion_tokens
    include reasoning_tokens, billed at the output rate."""
    cached = u["prompt_tokens_details"]["cached_tokens"]
    return (
        (u["prompt_tokens"] - cached) * r["input"]
        + cached * r["cached"]
        + u["completion_tokens"] * r["output"]
    ) / 1e6


def _anthropic_cost(u: dict[str, Any], r: dict[str, float]) -> float:
    """Anthropic wire usage at rates ``r``: input_tokens exclude the cache reads and writes."""
    split = u["cache_creation"]
    return (
        u["input_tokens"] * r["input"]
        + u["cache_read_input_tokens"] * r["cached"]
        + split["ephemeral_5m_input_tokens"] * r["write_5m"]
        + split["ephemeral_1h_input_tokens"] * r["write_1h"]
        + u["output_tokens"] * r["output"]
    ) / 1e6


def _chat(prompt: str, model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "system", "content": prompt}, {"role": "user", "content": "Which rule?"}],
        "max_tokens": 64,
        **extra,
    }


def test_openai_cached_reads_and_reasoning(priced: tuple[str, Capture]) -> None:
    url, capture = priced
    prompt = "OpenAI. " + LONG
    _post(url, "/v1/chat/completions", OAI, _chat(prompt, "gpt", reasoning_effort="low"))
    doc, rid = _post(url, "/v1/chat/completions", OAI, _chat(prompt, "gpt", reasoning_effort="low"))
    u = doc["usage"]
    assert (
        u["prompt_tokens_details"]["cached_tokens"] > 0
        and u["completion_tokens_details"]["reasoning_tokens"] > 0
    )
    booked = _booked(capture, rid, "c-gpt")
    assert booked.cost.total == pytest.approx(_openai_cost(u, GPT_54), rel=1e-12)
    assert booked.cost.reasoning == pytest.approx(
        u["completion_tokens_details"]["reasoning_tokens"] * 15.0 / 1e6
    )
    assert booked.cost.cached_input == pytest.approx(u["prompt_tokens_details"]["cached_tokens"] * 0.25 / 1e6)


@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_anthropic_cache_writes_then_reads(priced: tuple[str, Capture], ttl: str) -> None:
    url, capture = priced
    control = {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": "1h"}
    body = {
        "model": "claude",
        "max_tokens": 64,
        "system": [{"type": "text", "text": f"Anthropic {ttl}. " + LONG, "cache_control": control}],
        "messages": [{"role": "user", "content": "Which rule?"}],
    }
    first, rid1 = _post(url, "/v1/messages", ANT, body)
    u1 = first["usage"]
    written = u1["cache_creation"][f"ephemeral_{ttl}_input_tokens"]
    assert written > 0 and written == u1["cache_creation_input_tokens"]
    booked1 = _booked(capture, rid1, "c-claude")
    assert booked1.cost.total == pytest.approx(_anthropic_cost(u1, SONNET_45), rel=1e-12)
    expected_write = written * (3.75 if ttl == "5m" else 6.0) / 1e6
    assert getattr(booked1.cost, f"cache_write_{ttl}") == pytest.approx(expected_write, rel=1e-12)
    usage1 = booked1.record.attempts[-1].usage
    assert usage1 is not None and usage1.cache_write_1h_tokens == (written if ttl == "1h" else 0)

    second, rid2 = _post(url, "/v1/messages", ANT, body)
    u2 = second["usage"]
    assert u2["cache_read_input_tokens"] == written and u2["cache_creation_input_tokens"] == 0
    booked2 = _booked(capture, rid2, "c-claude")
    assert booked2.cost.total == pytest.approx(_anthropic_cost(u2, SONNET_45), rel=1e-12)
    assert booked2.cost.cached_input == pytest.approx(written * 0.3 / 1e6, rel=1e-12)


def test_gemini_cached_content_and_thinking_translated(priced: tuple[str, Capture]) -> None:
    url, capture = priced
    prompt = "Gemini. " + LONG
    _post(url, "/v1/chat/completions", OAI, _chat(prompt, "gemini", reasoning_effort="medium"))
    doc, rid = _post(url, "/v1/chat/completions", OAI, _chat(prompt, "gemini", reasoning_effort="medium"))
    u = doc["usage"]
    assert (
        u["prompt_tokens_details"]["cached_tokens"] > 0
        and u["completion_tokens_details"]["reasoning_tokens"] > 0
    )
    booked = _booked(capture, rid, "c-gemini")
    assert booked.cost.total == pytest.approx(_openai_cost(u, GEMINI_25_PRO), rel=1e-12)
    # the same answer to an Anthropic client: input_tokens without the cached part, same cost
    doc2, rid2 = _post(
        url,
        "/v1/messages",
        ANT,
        {
            "model": "gemini",
            "max_tokens": 64,
            "system": prompt,
            "messages": [{"role": "user", "content": "Which rule?"}],
        },
    )
    u2 = doc2["usage"]
    assert u2["cache_read_input_tokens"] > 0
    assert u2["input_tokens"] + u2["cache_read_input_tokens"] == u["prompt_tokens"]
    rates = {**GEMINI_25_PRO, "write_5m": 0.0, "write_1h": 0.0}
    assert _booked(capture, rid2, "c-gemini").cost.total == pytest.approx(
        _anthropic_cost(u2, rates), rel=1e-12
    )


def test_long_prompts_bill_the_whole_request_at_the_long_context_rates(priced: tuple[str, Capture]) -> None:
    url, capture = priced
    huge = "word " * 170_000  # about 212,500 tokens: past the 200K tier of both models
    doc, rid = _post(
        url,
        "/v1/messages",
        ANT,
        {
            "model": "claude",
            "max_tokens": 32,
            "system": huge,
            "messages": [{"role": "user", "content": "Sum up."}],
        },
    )
    u = doc["usage"]
    assert u["input_tokens"] > 200_000
    booked = _booked(capture, rid, "c-claude")
    assert booked.cost.total == pytest.approx(_anthropic_cost(u, SONNET_45_LONG), rel=1e-12)
    assert booked.cost.input == pytest.approx(u["input_tokens"] * 6.0 / 1e6, rel=1e-12)

    doc, rid = _post(url, "/v1/chat/completions", OAI, _chat("Gemini long. " + huge, "gemini"))
    u = doc["usage"]
    assert u["prompt_tokens"] > 200_000
    booked = _booked(capture, rid, "c-gemini")
    assert booked.cost.total == pytest.approx(_openai_cost(u, GEMINI_25_PRO_LONG), rel=1e-12)


def _events(
    url: str, path: str, headers: dict[str, str], body: dict[str, Any]
) -> tuple[list[dict[str, Any]], str]:
    with httpx.stream("POST", f"{url}{path}", json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        raw = r.read()
    frames = SSEDecoder().feed(raw)
    return [json.loads(f.data) for f in frames if f.data and f.data != b"[DONE]"], rid


def test_streams_are_costed_from_their_usage_events(priced: tuple[str, Capture]) -> None:
    url, capture = priced
    # Anthropic passthrough stream, 1-hour writes: message_start has the input side, message_delta the output
    body = {
        "model": "claude",
        "max_tokens": 64,
        "stream": True,
        "system": [
            {
                "type": "text",
                "text": "Stream 1h. " + LONG,
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ],
        "messages": [{"role": "user", "content": "Which rule?"}],
    }
    events, rid = _events(url, "/v1/messages", ANT, body)
    usage = dict(events[0]["message"]["usage"])
    usage["output_tokens"] = next(e for e in events if e["type"] == "message_delta")["usage"]["output_tokens"]
    assert usage["cache_creation"]["ephemeral_1h_input_tokens"] > 0
    booked = _booked(capture, rid, "c-claude")
    assert booked.cost.total == pytest.approx(_anthropic_cost(usage, SONNET_45), rel=1e-12)
    assert booked.cost.cache_write_1h == pytest.approx(
        usage["cache_creation"]["ephemeral_1h_input_tokens"] * 6.0 / 1e6
    )

    # OpenAI client, Gemini upstream (translated stream), usage in the last chunk
    prompt = "Stream Gemini. " + LONG
    chat = _chat(
        prompt, "gemini", reasoning_effort="low", stream=True, stream_options={"include_usage": True}
    )
    _events(url, "/v1/chat/completions", OAI, chat)
    chunks, rid = _events(url, "/v1/chat/completions", OAI, chat)
    u = next(c["usage"] for c in reversed(chunks) if c.get("usage"))
    assert (
        u["prompt_tokens_details"]["cached_tokens"] > 0
        and u["completion_tokens_details"]["reasoning_tokens"] > 0
    )
    booked = _booked(capture, rid, "c-gemini")
    assert booked.cost.total == pytest.approx(_openai_cost(u, GEMINI_25_PRO), rel=1e-12)
